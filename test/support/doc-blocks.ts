// The rules for code blocks in shipped Markdown (every .md file in the npm tarball), and the
// runner that enforces them: every fenced block runs in CI as written, or is an output block, or
// is marked "not run" for one of a short list of reasons. test/host/docs.test.ts runs them; the
// rules themselves are unit-tested there too, so each is shown to fail when it should.
//
// The rules, by fence language:
// - js: an ES module, run by node from a file inside the checkout (so `import 'pinpool'` reaches
//   it), cwd a fresh directory, without a CUDA driver: exit 0, empty stderr. A first line
//   starting `// Needs an NVIDIA GPU` runs it on the CUDA test double instead, and without a
//   driver it must fail cleanly (an exit status, an ERR_PINPOOL_ code on stderr). A block using
//   `using` must be a SyntaxError on a Node too old for it. Never require().
// - text (or json) right after a js or sh block, blank lines only between: its expected stdout.
//   Lines compared after trimming their ends; `...` in a line matches any text, a line of just
//   `...` any number of lines (json: "..." matches any value).
// - sh: one bash script (set -euo pipefail) in a project where pinpool is installed, shared by
//   the file's sh blocks. Install lines must be those of test/prebuilds/install-commands.txt and
//   are not run. A block whose only command is `[VAR=x] npx pinpool serve ...` starts the
//   service in the background (port 9464 must be free) for the rest of its file. A block whose
//   first line is `# In a clone of the repository` holds the repository's own commands
//   (`npm ci && npm test`): each must be one that .ci/run runs, where CI runs it; it is not run
//   here (it would reinstall this checkout's node_modules).
// - c: cc -std=c11 -Wall -Werror against include/ and the Node-API headers; linked and run if
//   it has main(). json: parses. yaml: `# prometheus.yml` or `# rules` as its first line,
//   checked by promtool. ts: only in the generated docs/api.md.
// - Anything else, no language, or a "not run" marker whose reason is not listed, fails.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';

export const root = join(__dirname, '..', '..');

/** The only reasons a block may be left out; any other "not run" marker fails. */
export const NOT_RUN_REASONS: readonly string[] = [
  'onnxruntime-node is not a dependency of pinpool',
];

/** The only spelling of the marker, on a line of its own before the block. */
const NOT_RUN = /^<!-- docs\.test: not run \((.*)\) -->$/;
/** Anything that looks like a marker but is not the spelling above (an old or misspelled one). */
const LOOKS_LIKE_NOT_RUN = /<!--.*\bnot run\b/;

/** The first line of a block that needs a GPU: it runs on the CUDA test double. */
const NEEDS_GPU = '// Needs an NVIDIA GPU';
/** The same, for a sh block. */
const NEEDS_GPU_SH = '# Needs an NVIDIA GPU';

/** The first line of a block of the repository's commands: .ci/run runs each of them. */
const IN_A_CLONE = '# In a clone of the repository';

/** A line that installs packages: it must be one of test/prebuilds/install-commands.txt. */
const INSTALL = /^(npm\s+(install|i|add|ci)|pnpm\s+(add|install|i)|yarn\s+(add|install))\b/;

/** `[NAME=value ...] npx pinpool serve [args]`: the service. */
const SERVICE = /^((?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*)npx\s+pinpool\s+serve\b(.*)$/;

export const LANGUAGES = ['js', 'text', 'sh', 'c', 'json', 'yaml'] as const;

export interface Block {
  /** The Markdown file, relative to the checkout. */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The nearest heading above the block ('' before the first). */
  heading: string;
  /** The first word of the info string ('' when there is none). */
  lang: string;
  code: string;
  /** The reason of a `<!-- docs.test: not run (...) -->` marker before the block. */
  notRun?: string;
}

export interface Problem {
  line: number;
  message: string;
}

/** Every fenced block (``` or ~~~, CommonMark's rules) of a Markdown text, and what is malformed. */
export function parseMarkdown(
  text: string,
  file: string,
): { blocks: Block[]; problems: Problem[] } {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  const problems: Problem[] = [];
  let heading = '';
  let marker: { reason: string; line: number } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const open = /^(\s*)(`{3,}|~{3,})(.*)$/.exec(line);
    if (open !== null) {
      const [, indent, fence, info] = open as unknown as [string, string, string, string];
      if (fence.startsWith('`') && info.includes('`')) continue; // inline code, not a fence
      const code: string[] = [];
      let j = i + 1;
      const close = new RegExp(`^\\s*${fence.startsWith('`') ? '`' : '~'}{${fence.length},}\\s*$`);
      while (j < lines.length && !close.test(lines[j]!)) {
        const body = lines[j]!;
        // Content lines lose up to the fence's own indentation (a block inside a list item).
        const strip = Math.min(indent.length, /^ */.exec(body)![0].length);
        code.push(body.slice(strip));
        j++;
      }
      if (j === lines.length) problems.push({ line: i + 1, message: 'the fence is never closed' });
      const block: Block = {
        file,
        line: i + 1,
        heading,
        lang: info.trim().split(/\s+/)[0] ?? '',
        code: code.join('\n') + (code.length > 0 ? '\n' : ''),
      };
      if (marker !== undefined) block.notRun = marker.reason;
      marker = undefined;
      blocks.push(block);
      i = j;
      continue;
    }
    const h = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (h !== null) heading = h[1]!;
    const m = NOT_RUN.exec(line.trim());
    if (m !== null) {
      if (marker !== undefined)
        problems.push({ line: marker.line, message: 'a "not run" marker with no block after it' });
      marker = { reason: m[1]!, line: i + 1 };
    } else if (LOOKS_LIKE_NOT_RUN.test(line)) {
      problems.push({
        line: i + 1,
        message: `a "not run" marker must read exactly <!-- docs.test: not run (REASON) --> (got ${line.trim()})`,
      });
    } else if (marker !== undefined && line.trim() !== '') {
      problems.push({
        line: marker.line,
        message: 'a "not run" marker must come right before a block',
      });
      marker = undefined;
    }
  }
  if (marker !== undefined)
    problems.push({ line: marker.line, message: 'a "not run" marker with no block after it' });
  return { blocks, problems };
}

/** Lines of `text` between the end of block `a` and the start of block `b` are all blank. */
function adjacent(text: string[], a: Block, b: Block): boolean {
  // 0-based index of a's closing fence: its opening fence's line plus its code lines.
  const close = a.line + a.code.split('\n').length - 1;
  for (let l = close + 1; l < b.line - 1; l++) if (text[l]!.trim() !== '') return false;
  return true;
}

export interface Service {
  env: Record<string, string>;
  args: string[];
  port: number;
}

export type Step =
  | { kind: 'js'; block: Block; gpu: boolean; usesUsing: boolean; output?: Block }
  | { kind: 'sh'; block: Block; gpu: boolean; script: string; output?: Block }
  | { kind: 'service'; block: Block; service: Service; output?: Block }
  | { kind: 'c'; block: Block }
  | { kind: 'json'; block: Block }
  | { kind: 'yaml'; block: Block; check: 'config' | 'rules' }
  | { kind: 'generated'; block: Block }
  | { kind: 'not-run'; block: Block; output?: Block }
  | { kind: 'ci'; block: Block }
  | { kind: 'invalid'; block: Block; errors: string[] };

export interface Rules {
  /** test/prebuilds/install-commands.txt, one command a line. */
  installCommands: readonly string[];
  /** The npm commands .ci/run runs (ciCommands()): a repository block's commands must be among them. */
  ciCommands?: readonly string[];
  /** docs/api.md: its ```ts signature blocks are generated, exempt from running. */
  generated?: boolean;
}

/** Shell words of a simple command line: whitespace-separated, '...' and "..." quoting. */
export function shellWords(text: string): string[] {
  const words: string[] = [];
  const re = /'([^']*)'|"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (const m of text.matchAll(re)) words.push(m[1] ?? m[2]?.replace(/\\(.)/g, '$1') ?? m[3]!);
  return words;
}

/** Joins backslash-continued lines, so a command is checked whole. */
function logicalLines(code: string): string[] {
  return code.replace(/\\\n/g, ' ').split('\n');
}

/** What the runner does with each block of one file, with the rule each block breaks. */
export function planBlocks(text: string, blocks: readonly Block[], rules: Rules): Step[] {
  const lines = text.split('\n');
  const steps: Step[] = [];
  let previous: Step | undefined;
  for (const block of blocks) {
    const follows =
      previous !== undefined &&
      (previous.kind === 'js' ||
        previous.kind === 'sh' ||
        previous.kind === 'service' ||
        previous.kind === 'not-run') &&
      previous.output === undefined &&
      adjacent(lines, previous.block, block);
    if ((block.lang === 'text' || block.lang === 'json') && follows && previous !== undefined) {
      if (block.lang === 'json' && previous.kind !== 'not-run') {
        try {
          JSON.parse(block.code);
        } catch (err) {
          steps.push({
            kind: 'invalid',
            block,
            errors: [`the json output block does not parse: ${String(err)}`],
          });
          continue;
        }
      }
      (previous as { output?: Block }).output = block;
      continue;
    }
    const step = planBlock(block, rules);
    steps.push(step);
    previous = step;
  }
  return steps;
}

function planBlock(block: Block, rules: Rules): Step {
  const { lang, code } = block;
  if (block.notRun !== undefined) {
    if (!NOT_RUN_REASONS.includes(block.notRun))
      return invalid(
        block,
        `"${block.notRun}" is not an allowed reason not to run a block (allowed: ${NOT_RUN_REASONS.map((r) => JSON.stringify(r)).join(', ')})`,
      );
    return { kind: 'not-run', block };
  }
  switch (lang) {
    case 'js': {
      if (/\brequire\s*\(/.test(code))
        return invalid(block, 'a js block is an ES module: use import, never require()');
      const usesUsing = /^\s*(await\s+)?using\s+[A-Za-z_$]/m.test(code);
      return { kind: 'js', block, gpu: code.startsWith(NEEDS_GPU), usesUsing };
    }
    case 'text':
      return invalid(
        block,
        "a text block must come right after a js or sh block (only blank lines between): it is that block's output",
      );
    case 'sh':
      return planSh(block, rules);
    case 'c':
      return { kind: 'c', block };
    case 'json':
      try {
        JSON.parse(code);
        return { kind: 'json', block };
      } catch (err) {
        return invalid(block, `the json block does not parse: ${String(err)}`);
      }
    case 'yaml': {
      const first = code.split('\n')[0]!.trim();
      if (first === '# prometheus.yml') return { kind: 'yaml', block, check: 'config' };
      if (first === '# rules') return { kind: 'yaml', block, check: 'rules' };
      return invalid(
        block,
        'a yaml block is a Prometheus file whose first line names it: `# prometheus.yml` or `# rules`',
      );
    }
    case 'ts':
      if (rules.generated === true) return { kind: 'generated', block };
      return invalid(
        block,
        'ts blocks (signatures) appear only in the generated docs/api.md: write an example as js',
      );
    case '':
      return invalid(block, `a fence needs a language: one of ${LANGUAGES.join(', ')}`);
    default:
      return invalid(block, `unknown language "${lang}": one of ${LANGUAGES.join(', ')}`);
  }
}

function invalid(block: Block, ...errors: string[]): Step {
  return { kind: 'invalid', block, errors };
}

function planSh(block: Block, rules: Rules): Step {
  if (block.code.startsWith(IN_A_CLONE)) return planRepositoryCommands(block, rules);
  const errors: string[] = [];
  const commands: string[] = [];
  const script = logicalLines(block.code).map((raw) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return raw;
    commands.push(line);
    if (INSTALL.test(line)) {
      if (!rules.installCommands.includes(line))
        errors.push(
          `"${line}" is not one of test/prebuilds/install-commands.txt (${rules.installCommands.map((c) => JSON.stringify(c)).join(', ')})`,
        );
      return `: # installed by scripts/test-prebuilds.sh: ${line}`;
    }
    return raw;
  });
  const services = commands.filter((c) => /\bnpx\s+pinpool\s+serve\b/.test(c));
  if (services.length > 0) {
    const m = SERVICE.exec(commands[0]!);
    if (commands.length > 1 || m === null)
      errors.push(
        '`npx pinpool serve` runs in the background: it must be the only command of its block',
      );
    if (errors.length > 0) return { kind: 'invalid', block, errors };
    const env: Record<string, string> = {};
    for (const word of shellWords(m![1]!)) {
      const eq = word.indexOf('=');
      env[word.slice(0, eq)] = word.slice(eq + 1);
    }
    const args = shellWords(m![2]!);
    const portAt = args.findIndex((a) => a === '--port' || a.startsWith('--port='));
    const portText =
      portAt < 0
        ? '9464'
        : args[portAt]!.includes('=')
          ? args[portAt]!.split('=')[1]!
          : (args[portAt + 1] ?? '');
    return { kind: 'service', block, service: { env, args, port: Number(portText) } };
  }
  if (errors.length > 0) return { kind: 'invalid', block, errors };
  return { kind: 'sh', block, gpu: block.code.startsWith(NEEDS_GPU_SH), script: script.join('\n') };
}

// ---------------------------------------------------------------------------------------------
// Output matching

/** Lines without trailing whitespace, and without trailing empty lines. */
function outputLines(text: string): string[] {
  const lines = text.split('\n').map((l) => l.trimEnd());
  while (lines.length > 0 && lines.at(-1) === '') lines.pop();
  return lines;
}

function lineMatcher(expected: string): RegExp {
  const parts = expected.split('...').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('.*')}$`, 's');
}

/**
 * Compares a program's output with an output block: line by line after trimming trailing
 * whitespace; `...` inside a line matches any text; a line that is exactly `...` matches any
 * number of lines. Returns undefined on a match, else what differs.
 */
export function matchOutput(expected: string, actual: string): string | undefined {
  const want = outputLines(expected);
  const got = outputLines(actual);
  const matchers = want.map((w) => (w.trim() === '...' ? undefined : lineMatcher(w)));
  // memo[i][j]: want[i..] matches got[j..]
  const memo = new Map<number, boolean>();
  const match = (i: number, j: number): boolean => {
    const key = i * (got.length + 1) + j;
    const known = memo.get(key);
    if (known !== undefined) return known;
    let result: boolean;
    if (i === want.length) result = j === got.length;
    else if (matchers[i] === undefined)
      result = match(i + 1, j) || (j < got.length && match(i, j + 1));
    else result = j < got.length && matchers[i].test(got[j]!) && match(i + 1, j + 1);
    memo.set(key, result);
    return result;
  };
  if (match(0, 0)) return undefined;
  // Say where it first goes wrong, for the common case of no `...` lines.
  for (let k = 0; k < Math.max(want.length, got.length); k++) {
    if (matchers[k] === undefined && k < want.length) break;
    if (k >= want.length || k >= got.length || !matchers[k]!.test(got[k]!))
      return `line ${k + 1}: expected ${JSON.stringify(want[k] ?? '(end of output)')}, got ${JSON.stringify(got[k] ?? '(end of output)')}\n--- expected\n${want.join('\n')}\n--- got\n${got.join('\n')}`;
  }
  return `the output does not match\n--- expected\n${want.join('\n')}\n--- got\n${got.join('\n')}`;
}

/** A ```json output block: the whole output parses as JSON; "..." values match anything. */
export function matchJsonOutput(expected: string, actual: string): string | undefined {
  let got: unknown;
  try {
    got = JSON.parse(actual);
  } catch {
    return `the output is not JSON:\n${actual}`;
  }
  const want: unknown = JSON.parse(expected);
  const walk = (w: unknown, g: unknown, at: string): string | undefined => {
    if (w === '...') return undefined;
    if (Array.isArray(w)) {
      if (!Array.isArray(g)) return `${at}: expected an array, got ${JSON.stringify(g)}`;
      const open = w.at(-1) === '...';
      const items = open ? w.slice(0, -1) : w;
      if (open ? g.length < items.length : g.length !== items.length)
        return `${at}: expected ${items.length}${open ? ' or more' : ''} items, got ${g.length}`;
      for (let k = 0; k < items.length; k++) {
        const d = walk(items[k], g[k], `${at}[${k}]`);
        if (d !== undefined) return d;
      }
      return undefined;
    }
    if (w !== null && typeof w === 'object') {
      if (g === null || typeof g !== 'object' || Array.isArray(g))
        return `${at}: expected an object, got ${JSON.stringify(g)}`;
      const wk = Object.keys(w).sort();
      const gk = Object.keys(g).sort();
      if (wk.join() !== gk.join())
        return `${at}: expected keys ${wk.join(', ')}, got ${gk.join(', ')}`;
      for (const k of wk) {
        const d = walk(
          (w as Record<string, unknown>)[k],
          (g as Record<string, unknown>)[k],
          `${at}.${k}`,
        );
        if (d !== undefined) return d;
      }
      return undefined;
    }
    if (typeof w === 'string' && typeof g === 'string' && w.includes('...'))
      return lineMatcher(w).test(g)
        ? undefined
        : `${at}: expected ${JSON.stringify(w)}, got ${JSON.stringify(g)}`;
    return w === g ? undefined : `${at}: expected ${JSON.stringify(w)}, got ${JSON.stringify(g)}`;
  };
  return walk(want, got, '$');
}

/** Checks `stdout` against a step's output block, by the block's language. */
export function checkOutput(output: Block | undefined, stdout: string): string | undefined {
  if (output === undefined) return undefined;
  return output.lang === 'json'
    ? matchJsonOutput(output.code, stdout)
    : matchOutput(output.code, stdout);
}

/** Words as `wc -w` counts them: runs of non-space characters. */
export function wordCount(text: string): number {
  return text.split(/\s+/).filter((w) => w !== '').length;
}

/** A block of the repository's commands: each `&&`-joined command must be one .ci/run runs. */
function planRepositoryCommands(block: Block, rules: Rules): Step {
  const known = rules.ciCommands ?? [];
  const errors: string[] = [];
  for (const raw of logicalLines(block.code)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    for (const command of line.split('&&').map((c) => c.trim()))
      if (!known.includes(command))
        errors.push(
          `"${command}" is not a command .ci/run runs (${known.map((c) => JSON.stringify(c)).join(', ')})`,
        );
  }
  return errors.length > 0 ? { kind: 'invalid', block, errors } : { kind: 'ci', block };
}

/**
 * The npm commands a CI script runs, as a person would type them: environment assignments, a
 * `setsid` in front, `--` options and redirections dropped (`PINPOOL_REQUIRE_PROMTOOL=1 npm test` is `npm test`, `npm ci --no-audit`
 * is `npm ci`).
 */
export function ciCommands(script: string): string[] {
  const commands = new Set<string>();
  for (const raw of logicalLines(script)) {
    const line = raw.trim();
    if (line.startsWith('#')) continue;
    const m = /^(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*(?:setsid\s+)?(npm\s.*)$/.exec(line);
    if (m === null) continue;
    const words = shellWords(m[1]!.split(/[;&|<>]/)[0]!).filter((w) => !w.startsWith('-'));
    commands.add(words.join(' '));
  }
  return [...commands];
}

// ---------------------------------------------------------------------------------------------
// Running

export interface Ran {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; bounded by the process, never by a clock. */
export function run(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; input?: string },
): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
    // A child that exits without reading its input closes the pipe first (EPIPE): what it did
    // is in its status and output, not in this write.
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

export const fakeCuda = join(root, 'build', 'fake-cuda', 'libpinpool-fakecuda.so');
/** Where block files are written: inside the checkout, so `import 'pinpool'` reaches it. */
const blockDir = join(root, 'build', 'doc-blocks');
export const cli = join(root, 'dist', 'server', 'cli.js');

/** A directory of its own for one run, under one per test process. */
const scratch = mkdtempSync(join(tmpdir(), 'pinpool-docs-'));
let scratchCount = 0;
export function scratchDir(name: string): string {
  const dir = join(scratch, `${++scratchCount}-${name.replace(/[^A-Za-z0-9]+/g, '-')}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}
export { scratch as scratchRoot };

/** The environment of a run: no CUDA driver (a path that does not exist), or the test double. */
export function blockEnv(
  driver: 'none' | 'fake',
  extra: Record<string, string> = {},
): NodeJS.ProcessEnv {
  const cuda = driver === 'fake' ? fakeCuda : join(scratch, 'no-such-libcuda.so.1');
  return { ...process.env, PINPOOL_CUDA_LIBRARY: cuda, ...extra };
}

function slug(block: Block): string {
  return `${block.file.replace(/[^A-Za-z0-9]+/g, '-')}-L${block.line}`;
}

/** Runs a js block as an ES module file inside the checkout, with cwd a fresh directory. */
export async function runJs(block: Block, driver: 'none' | 'fake'): Promise<Ran> {
  mkdirSync(blockDir, { recursive: true });
  const file = join(blockDir, `${slug(block)}-${driver}.mjs`);
  writeFileSync(file, block.code);
  return run(process.execPath, [file], { cwd: scratchDir(slug(block)), env: blockEnv(driver) });
}

/**
 * A temporary project where pinpool is installed: node_modules/pinpool is this checkout, and
 * node_modules/.bin/pinpool its command, so `npx pinpool` finds it without a registry.
 */
export function makeProject(name: string): string {
  const dir = scratchDir(name);
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'docs-project', private: true }) + '\n',
  );
  mkdirSync(join(dir, 'node_modules', '.bin'), { recursive: true });
  symlinkSync(root, join(dir, 'node_modules', 'pinpool'), 'dir');
  symlinkSync(
    join('..', 'pinpool', 'dist', 'server', 'cli.js'),
    join(dir, 'node_modules', '.bin', 'pinpool'),
  );
  return dir;
}

/**
 * The preamble of every sh block: strict mode, and `npx pinpool` resolved to this checkout's
 * command directly (what npx finds in node_modules/.bin, without npm's start-up per line).
 */
const SH_PREAMBLE = `set -euo pipefail
npx() { if [ "\${1-}" = pinpool ]; then shift; node ${JSON.stringify(cli)} "$@"; else command npx "$@"; fi; }
`;

export const hasCurl = spawnSync('bash', ['-c', 'command -v curl']).status === 0;

/** Runs a sh block as one bash script in `project`. */
export async function runSh(
  step: Extract<Step, { kind: 'sh' }>,
  project: string,
  driver: 'none' | 'fake',
): Promise<Ran> {
  if (/\bcurl\b/.test(step.script) && !hasCurl)
    throw new Error('curl is not on PATH: CI must run the curl lines of the docs, so install curl');
  return run('bash', ['-c', SH_PREAMBLE + step.script], { cwd: project, env: blockEnv(driver) });
}

/** Node-API's C headers (node-api-headers, a build-time package), found when a c block runs. */
function nodeApiHeaders(): string {
  const req = createRequire(__filename);
  return join(dirname(req.resolve('node-api-headers/package.json')), 'include');
}

/** Compiles a c block (syntax only), and links and runs it if it has a main(). */
export async function runC(block: Block): Promise<Ran> {
  const flags = [
    '-std=c11',
    '-Wall',
    '-Werror',
    '-I',
    join(root, 'include'),
    '-I',
    nodeApiHeaders(),
  ];
  const dir = scratchDir(slug(block));
  const source = join(dir, 'block.c');
  writeFileSync(source, block.code);
  const syntax = await run('cc', [...flags, '-fsyntax-only', source], { cwd: root });
  if (syntax.status !== 0 || !/\bint\s+main\s*\(/.test(block.code)) return syntax;
  const exe = join(dir, 'block');
  const linked = await run('cc', [...flags, source, '-o', exe], { cwd: root });
  if (linked.status !== 0) return linked;
  return run(exe, [], { cwd: dir });
}

export const hasPromtool = spawnSync('promtool', ['--version']).status === 0;

/** Checks a yaml block with promtool (check config, or check rules). */
export async function runYaml(step: Extract<Step, { kind: 'yaml' }>): Promise<Ran> {
  const dir = scratchDir(slug(step.block));
  const file = join(dir, step.check === 'config' ? 'prometheus.yml' : 'rules.yml');
  writeFileSync(file, step.block.code);
  return run('promtool', ['check', step.check, file], { cwd: dir });
}

/** Whether nothing listens on 127.0.0.1:port. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * `npx pinpool serve ...` in the background: started from `project` with the block's
 * environment, running until stop().
 */
export class RunningService {
  readonly child: ChildProcess;
  private lines: string[] = [];
  private stderr = '';
  private partial = '';
  private exited: Promise<void>;
  private done = false;
  private waiters: (() => void)[] = [];

  constructor(service: Service, project: string) {
    this.child = spawn(process.execPath, [cli, 'serve', ...service.args], {
      cwd: project,
      env: blockEnv('none', service.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      const parts = (this.partial + d).split('\n');
      this.partial = parts.pop()!;
      this.lines.push(...parts);
      this.wake();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) =>
      this.child.on('close', () => {
        this.done = true;
        if (this.partial !== '') this.lines.push(this.partial);
        this.wake();
        resolve();
      }),
    );
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /**
   * The first `count` lines the service prints, once it has printed them; bounded by the
   * process, which either prints or exits (then this throws with what it said).
   */
  async firstLines(count: number): Promise<string[]> {
    while (this.lines.length < count && !this.done)
      await new Promise<void>((r) => this.waiters.push(r));
    if (this.lines.length < count)
      throw new Error(
        `pinpool serve exited (status ${String(this.child.exitCode)}, signal ${String(this.child.signalCode)}) before printing ${count} line(s)\n--- stdout\n${this.lines.join('\n')}\n--- stderr\n${this.stderr}`,
      );
    return this.lines.slice(0, count);
  }

  get output(): { stdout: string; stderr: string } {
    return { stdout: this.lines.join('\n'), stderr: this.stderr };
  }

  async stop(): Promise<void> {
    if (!this.done) this.child.kill('SIGTERM');
    await this.exited;
  }
}

/** The install commands the docs may show: test/prebuilds/install-commands.txt. */
export function readInstallCommands(): string[] {
  const file = join(root, 'test', 'prebuilds', 'install-commands.txt');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** The .md files npm would ship (`npm pack --dry-run`: no build, no lifecycle scripts). */
export function shippedMarkdown(): string[] {
  const packed = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: root,
    encoding: 'utf8',
  });
  if (packed.status !== 0) throw new Error(`npm pack --dry-run failed:\n${packed.stderr}`);
  const [manifest] = JSON.parse(packed.stdout) as [{ files: { path: string }[] }];
  return manifest.files
    .map((f) => f.path)
    .filter((p) => p.toLowerCase().endsWith('.md'))
    .sort();
}

// ---------------------------------------------------------------------------------------------
// Checks: what the test asserts for each block, as functions that return what failed.

/** One check of one block: `run` resolves to undefined when it passes, else to what failed. */
export interface Check {
  title: string;
  /** The block's heading, or '' for a problem of the file. */
  heading: string;
  /** Why the check does not run here, when it does not. */
  skip?: string;
  run: () => Promise<string | undefined>;
}

/** Runs tasks one after another in the order added, all of them, once the first is asked for. */
class Sequence {
  private readonly tasks: (() => Promise<unknown>)[] = [];
  private started: Promise<unknown>[] | undefined;

  add<T>(task: () => Promise<T>): () => Promise<T> {
    const index = this.tasks.push(task) - 1;
    return () => this.start()[index] as Promise<T>;
  }

  private start(): Promise<unknown>[] {
    if (this.started === undefined) {
      let previous: Promise<unknown> = Promise.resolve();
      this.started = this.tasks.map((task) => {
        const p = previous.then(task);
        previous = p.catch(() => undefined);
        return p;
      });
      // Each result is awaited by its own check; none is an unhandled rejection meanwhile.
      for (const p of this.started) p.catch(() => undefined);
    }
    return this.started;
  }
}

const explain = (r: Ran) =>
  `exit status ${String(r.status)}, signal ${String(r.signal)}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

/** The block ran cleanly: exit 0, nothing on stderr (unless allowed), its output matches. */
function clean(r: Ran, output: Block | undefined, allowStderr = false): string | undefined {
  if (r.status !== 0) return `it failed: ${explain(r)}`;
  if (!allowStderr && r.stderr !== '') return `it wrote to stderr: ${explain(r)}`;
  const diff = checkOutput(output, r.stdout);
  return diff === undefined
    ? undefined
    : `its output (the block at line ${output!.line}) does not match: ${diff}`;
}

/** A GPU block without a driver fails cleanly: an exit status, and a PinpoolError's code. */
function cleanFailure(r: Ran): string | undefined {
  if (r.signal !== null) return `it was killed by ${r.signal}: ${explain(r)}`;
  if (r.status === 0) return `it exited 0 without a CUDA driver: ${explain(r)}`;
  if (!/ERR_PINPOOL_[A-Z_]+/.test(r.stderr))
    return `its stderr names no PinpoolError code (ERR_PINPOOL_...): ${explain(r)}`;
  return undefined;
}

const supportsUsing = spawnSync(process.execPath, ['-e', '{ using x = null; }']).status === 0;

/**
 * The checks of one Markdown file, and stop() for the service it may start. Blocks that share
 * state run in document order: every sh block (one project directory per file), and every js
 * block too in a file with a service (it holds its port); the others run in parallel.
 */
export function checksOf(
  file: string,
  text: string,
  rules: Rules,
): { checks: Check[]; stop: () => Promise<void> } {
  const { blocks, problems } = parseMarkdown(text, file);
  const steps = planBlocks(text, blocks, rules);
  const hasService = steps.some((s) => s.kind === 'service');
  const sequence = new Sequence();
  let project: string | undefined;
  const projectDir = () => (project ??= makeProject(file));
  let service: RunningService | undefined;
  const checks: Check[] = problems.map((p) => ({
    title: `${file}:${p.line}: ${p.message}`,
    heading: '',
    run: async () => p.message,
  }));
  const add = (step: Step, what: string, run: () => Promise<string | undefined>, skip?: string) => {
    const b = step.block;
    const check: Check = {
      title: `${b.file}:${b.line} (${b.heading === '' ? 'top' : b.heading}) ${b.lang === '' ? '(no language)' : b.lang}: ${what}`,
      heading: b.heading,
      run,
    };
    if (skip !== undefined) check.skip = skip;
    checks.push(check);
  };
  for (const step of steps) {
    switch (step.kind) {
      case 'invalid':
        add(step, 'breaks the rules', async () => step.errors.join('\n'));
        break;
      case 'not-run':
        add(step, `not run (${step.block.notRun ?? ''})`, async () => undefined, step.block.notRun);
        break;
      case 'ci':
        // The repository's commands: .ci/run runs each as CI's own steps (planRepositoryCommands
        // has checked that it does); running them here would reinstall this checkout.
        add(step, "the repository's commands, each run by .ci/run", async () => undefined);
        break;
      case 'generated':
        // docs/api.md's signatures: `scripts/api-docs.mjs --check` proves them current.
        break;
      case 'js': {
        const ordered = <T>(task: () => Promise<T>) => (hasService ? sequence.add(task) : task);
        const without = ordered(() => runJs(step.block, 'none'));
        if (step.usesUsing && !supportsUsing) {
          add(
            step,
            'uses `using`: a SyntaxError on this Node (it runs on 24 and later)',
            async () => {
              const r = await without();
              return r.stderr.includes('SyntaxError')
                ? undefined
                : `expected a SyntaxError: ${explain(r)}`;
            },
          );
        } else if (step.gpu) {
          const onDouble = ordered(() => runJs(step.block, 'fake'));
          add(step, 'needs a GPU: runs on the CUDA test double', async () =>
            clean(await onDouble(), step.output),
          );
          add(
            step,
            'needs a GPU: without a driver fails cleanly with a PinpoolError code',
            async () => cleanFailure(await without()),
          );
        } else {
          add(step, 'runs without a CUDA driver', async () => clean(await without(), step.output));
        }
        break;
      }
      case 'sh': {
        const ran = sequence.add(() => runSh(step, projectDir(), step.gpu ? 'fake' : 'none'));
        add(step, step.gpu ? 'needs a GPU: runs on the CUDA test double' : 'runs', async () =>
          clean(await ran(), step.output, true),
        );
        if (step.gpu) {
          const without = sequence.add(() => runSh(step, projectDir(), 'none'));
          add(
            step,
            'needs a GPU: without a driver fails cleanly with a PinpoolError code',
            async () => cleanFailure(await without()),
          );
        }
        break;
      }
      case 'service': {
        const want =
          step.output?.code.split('\n').filter((l) => l.trim() !== '' && l.trim() !== '...')
            .length ?? 0;
        const started = sequence.add(async () => {
          if (service !== undefined)
            throw new Error(`${file} starts the service twice: start it once per file`);
          if (!(await portIsFree(step.service.port)))
            throw new Error(
              `port ${step.service.port} on 127.0.0.1 is in use: the docs start \`npx pinpool serve\` there (stop what listens on it)`,
            );
          service = new RunningService(step.service, projectDir());
          return service.firstLines(Math.max(want, 1));
        });
        add(step, 'starts the service, which says where it listens', async () => {
          let lines: string[];
          try {
            lines = await started();
          } catch (err) {
            return err instanceof Error ? err.message : String(err);
          }
          if (!/(127\.0\.0\.1|localhost|\[::1?\]):\d+/.test(lines[0]!))
            return `its first line does not say where it listens: ${lines.join('\n')}`;
          const diff = checkOutput(step.output, lines.join('\n'));
          return diff === undefined ? undefined : `its first lines do not match: ${diff}`;
        });
        break;
      }
      case 'c':
        add(step, 'compiles (cc -std=c11 -Wall -Werror), and runs if it has main()', async () => {
          const r = await runC(step.block);
          return r.status === 0 ? undefined : explain(r);
        });
        break;
      case 'json':
        add(step, 'parses', async () => undefined);
        break;
      case 'yaml': {
        const required = process.env.PINPOOL_REQUIRE_PROMTOOL === '1';
        add(
          step,
          `passes promtool check ${step.check}`,
          async () => {
            if (!hasPromtool) return 'PINPOOL_REQUIRE_PROMTOOL=1 but promtool is not on PATH';
            const r = await runYaml(step);
            return r.status === 0 ? undefined : explain(r);
          },
          hasPromtool || required
            ? undefined
            : 'promtool is not installed (CI sets PINPOOL_REQUIRE_PROMTOOL=1)',
        );
        break;
      }
    }
  }
  return {
    checks,
    stop: async () => {
      await service?.stop();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Links

/** A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to hyphens. */
export function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\- _]/gu, '')
    .replace(/ /g, '-');
}

/** The anchors of a Markdown file's headings (outside code fences), repeats numbered as GitHub does. */
export function anchorsOf(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fence: string | undefined;
  for (const line of text.split('\n')) {
    const f = /^(```|~~~)/.exec(line);
    if (f) {
      if (fence === undefined) fence = f[1];
      else if (line.startsWith(fence)) fence = undefined;
      continue;
    }
    const h = fence === undefined ? /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line) : null;
    if (!h) continue;
    const base = anchorOf(h[1] ?? '');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/**
 * The relative links of a Markdown file (`[text](path#anchor)`, outside code fences) that do not
 * resolve: no such file, or no such heading in it. Web links are not followed.
 */
export function brokenLinks(
  file: string,
  text: string,
  read: (path: string) => string | undefined,
): string[] {
  const broken: string[] = [];
  const prose = text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
  for (const m of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
    const target = m[1] ?? '';
    if (/^[a-z]+:/i.test(target)) continue;
    const [path = '', anchor] = target.split('#', 2);
    const resolved = path === '' ? file : posix.normalize(posix.join(posix.dirname(file), path));
    const content = read(resolved);
    if (content === undefined) {
      broken.push(`${target}: no file ${resolved}`);
      continue;
    }
    if (anchor !== undefined && resolved.endsWith('.md') && !anchorsOf(content).has(anchor))
      broken.push(`${target}: no heading #${anchor} in ${resolved}`);
  }
  return broken;
}
