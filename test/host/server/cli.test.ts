// The `pinpool` command, run as users run it: node dist/server/cli.js ...
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

const root = join(__dirname, '..', '..', '..');
const cli = join(root, 'dist', 'server', 'cli.js');
const env = { ...process.env, PINPOOL_CUDA_LIBRARY: '', PINPOOL_ADMIN_TOKEN: '' };

function run(...args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], {
    cwd: root,
    env,
    encoding: 'utf8',
    timeout: 30_000,
  });
}

describe('pinpool info', () => {
  it('prints what a person needs to know about this host', () => {
    const r = run('info');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^pinpool \d+\.\d+\.\d+ \(Node-API \d+, handler ABI \d+/);
    expect(r.stdout).toMatch(/^CUDA: not available \(.*libcuda/m);
    expect(r.stdout).toMatch(/^memlock limit: (unlimited|unknown|[\d.]+ (bytes|KiB|MiB|GiB|TiB))/m);
    expect(r.stdout).toMatch(/^registry: published by this copy \(.*index\.js\)/m);
    expect(r.stderr).toBe('');
  });

  it('prints info() as JSON with --json', () => {
    const r = run('info', '--json');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      version: expect.any(String),
      cuda: { available: false, devices: [] },
    });
  });

  it("answers bad command lines with the command's usage and status 2", () => {
    for (const [args, usage] of [
      [[], 'pinpool <command>'],
      [['nope'], 'pinpool <command>'],
      [['help', 'nope'], 'pinpool <command>'],
      [['info', '--port', '1'], 'pinpool info'],
      [['serve', '--port', 'http'], 'pinpool serve'],
      [['serve', '--port', '70000'], 'pinpool serve'],
      [['serve', 'extra'], 'pinpool serve'],
      [['serve', '--log-format', 'xml'], 'pinpool serve'],
      [['serve', '--log-format'], 'pinpool serve'],
    ] as const) {
      const r = run(...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr, args.join(' ')).toContain(`\nusage: ${usage} `);
    }
    expect(run('serve', '--log-format', 'xml').stderr).toMatch(
      /^pinpool: --log-format must be json or pretty \(got "xml"\)\n/,
    );
  });

  it("prints each command's own help", () => {
    for (const [args, usage] of [
      [['--help'], 'pinpool <command>'],
      [['-h'], 'pinpool <command>'],
      [['help'], 'pinpool <command>'],
      [['info', '--help'], 'pinpool info'],
      [['help', 'info'], 'pinpool info'],
      [['serve', '--help'], 'pinpool serve'],
      [['serve', '-h'], 'pinpool serve'],
      [['serve', '--port', '0', '--help'], 'pinpool serve'],
    ] as const) {
      const help = run(...args);
      expect([help.status, help.stderr], args.join(' ')).toEqual([0, '']);
      expect(help.stdout.startsWith(`usage: ${usage} `), args.join(' ')).toBe(true);
    }
  });

  it('prints its version with --version', () => {
    const r = run('--version');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(
      (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version,
    );
  });
});

describe('pinpool serve', () => {
  let child: ChildProcessWithoutNullStreams | undefined;
  afterEach(() => {
    if (child?.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    child = undefined;
  });

  interface Serving {
    url: string;
    /** stdout and stderr as they came. */
    output: () => string;
    stdout: () => string;
    stderr: () => string;
  }

  /** Starts `pinpool serve ...args` and resolves with the URL it prints. */
  async function serve(...args: string[]): Promise<Serving> {
    return serveWith(env, ...args);
  }

  async function serveWith(environment: NodeJS.ProcessEnv, ...args: string[]): Promise<Serving> {
    const c = spawn(process.execPath, [cli, 'serve', ...args], { cwd: root, env: environment });
    child = c;
    let out = '';
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => ((out += d), (stdout += d)));
    c.stderr.setEncoding('utf8').on('data', (d: string) => ((out += d), (stderr += d)));
    for (;;) {
      const url = /open (http:\/\/\S+)\/metrics/.exec(out)?.[1];
      if (url !== undefined)
        return { url, output: () => out, stdout: () => stdout, stderr: () => stderr };
      if (c.exitCode !== null) throw new Error(`serve did not start:\n${out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Every line of `text`, each parsed as JSON (throws for one that is not). */
  const jsonLines = (text: string) =>
    text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { level: number; time: number; msg: string });

  it('--port 0 serves /metrics over HTTP on the printed URL and exits cleanly on SIGTERM', async () => {
    const { url, output, stdout, stderr } = await serve('--port', '0', '--demo');
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(new URL(url).port).not.toBe('0');
    expect(output()).toMatch(
      /handlers default, (locked, )?pageable, scopes ingest -> (locked|pageable), batch -> pageable and a demo workload; admin endpoints off/,
    );

    const first = await fetch(`${url}/metrics`);
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const count = (text: string) =>
      Number(
        /^pinpool_allocations_total\{handler="default",kind="fallback"\} (\d+)$/m.exec(text)?.[1],
      );
    const before = count(await first.text());
    await new Promise((r) => setTimeout(r, 600));
    const later = await (await fetch(`${url}/metrics`)).text();
    expect(count(later)).toBeGreaterThan(before); // the demo makes the metrics move
    expect((await fetch(`${url}/v1/handlers`)).status).toBe(200);

    const started = Date.now();
    const exited = once(child!, 'exit');
    child!.kill('SIGTERM');
    const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(output()).toContain('SIGTERM, closing');

    // One format: every line a JSON object in pino's shape, fastify's and the CLI's alike.
    const lines = jsonLines(stdout());
    expect(stderr()).toBe('');
    for (const line of lines)
      expect(line).toMatchObject({ level: 30, time: expect.any(Number), msg: expect.any(String) });
    // First, the address of the status page.
    expect(lines[0]?.msg).toBe(`pinpool: status page at ${url}/`);
    expect(lines.find((l) => l.msg.startsWith('pinpool: serving'))).toMatchObject({
      url,
      handlers: expect.arrayContaining(['default', 'pageable']),
      scopes: { ingest: expect.any(String), batch: 'pageable' },
      demo: true,
      admin: false,
    });
    expect(lines.at(-1)).toMatchObject({ msg: 'pinpool: SIGTERM, closing', signal: 'SIGTERM' });
  });

  it('--log-format pretty prints one readable line each, no JSON', async () => {
    const { url, output } = await serve('--port', '0', '--demo', '--log-format', 'pretty');
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const exited = once(child!, 'exit');
    child!.kill('SIGTERM');
    expect(await exited).toEqual([0, null]);
    const lines = output()
      .split('\n')
      .filter((l) => l !== '');
    expect(lines.length).toBeGreaterThanOrEqual(4);
    for (const line of lines) {
      expect(line.startsWith('{'), line).toBe(false);
      expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARN|ERROR) /);
    }
    expect(lines[0]).toMatch(new RegExp(`Z INFO {2}pinpool: status page at ${url}/$`));
    expect(lines).toContainEqual(expect.stringMatching(/ INFO {2}pinpool: serving .* url=http:/));
    expect(lines.at(-1)).toMatch(/ INFO {2}pinpool: SIGTERM, closing signal=SIGTERM$/);
  });

  it("the operator's story: scope series, a switch with curl's request, logged, and the series move", async () => {
    const token = 'operator-token-0123456789';
    const { url, output } = await serveWith(
      { ...env, PINPOOL_ADMIN_TOKEN: token },
      '--port',
      '0',
      '--demo',
    );
    const metric = async (pattern: RegExp) =>
      pattern.exec(await (await fetch(`${url}/metrics`)).text())?.[1];
    const ingestAllocs = /^pinpool_scope_allocations_total\{scope="ingest"\} (\d+)$/m;
    expect(await metric(/^pinpool_scope_info\{scope="ingest",handler="(\w+)"\} 1$/m)).toMatch(
      /^(locked|pageable)$/,
    );
    const switched = await fetch(`${url}/v1/scopes/ingest`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ handler: 'default' }),
    });
    expect(switched.status).toBe(200);
    await new Promise((r) => setTimeout(r, 150)); // the service reuses a body rendered <100 ms ago
    expect(await metric(/^pinpool_scope_info\{scope="ingest",handler="(\w+)"\} 1$/m)).toBe(
      'default',
    );
    expect(await metric(/^pinpool_scope_switches_total\{scope="ingest"\} (\d+)$/m)).toBe('1');
    const before = Number(await metric(ingestAllocs));
    await new Promise((r) => setTimeout(r, 600));
    expect(Number(await metric(ingestAllocs))).toBeGreaterThan(before);
    const line = output()
      .split('\n')
      .find((l) => l.includes('scope switched'));
    expect(JSON.parse(line ?? '{}')).toMatchObject({
      scope: 'ingest',
      to: 'default',
      reqId: expect.any(String),
    });
  });

  it('exits cleanly on SIGINT too, with a keep-alive connection open', async () => {
    const { url } = await serve('--port', '0');
    const res = await fetch(`${url}/healthz`, { headers: { connection: 'keep-alive' } });
    expect(await res.json()).toEqual({ status: 'ok' });
    const started = Date.now();
    const exited = once(child!, 'exit');
    child!.kill('SIGINT');
    expect(await exited).toEqual([0, null]);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('reports a port in use or a bad token as an error line on stderr and exits with status 1', async () => {
    const { url } = await serve('--port', '0');
    const taken = run('serve', '--port', new URL(url).port);
    expect(taken.status).toBe(1);
    expect(taken.stdout).toBe('');
    expect(jsonLines(taken.stderr)).toEqual([
      expect.objectContaining({
        level: 50,
        msg: expect.stringMatching(/^pinpool: listen EADDRINUSE/),
        err: expect.objectContaining({ code: 'EADDRINUSE' }),
      }),
    ]);
    const badToken = spawnSync(process.execPath, [cli, 'serve', '--port', '0'], {
      cwd: root,
      env: { ...env, PINPOOL_ADMIN_TOKEN: 'two words' },
      encoding: 'utf8',
    });
    expect(badToken.status).toBe(1);
    expect(jsonLines(badToken.stderr)).toEqual([
      expect.objectContaining({
        level: 50,
        msg: 'pinpool: server option adminToken must be a token without whitespace (got "<hidden>")',
        err: expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
      }),
    ]);
    expect(badToken.stderr).not.toContain('two words');
    const pretty = run('serve', '--port', new URL(url).port, '--log-format', 'pretty');
    expect(pretty.status).toBe(1);
    expect(pretty.stderr).toMatch(/^\S+Z ERROR pinpool: listen EADDRINUSE.* err=\{/);
  });
});
