// The README's JavaScript examples run exactly as written: each block is an ES module, run by
// this Node from a file inside the package (so `import 'pinpool'` reaches this checkout), the
// GPU ones against the CUDA test double. A block marked "not run" is listed and counted.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(__dirname, '..', '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const blocks = [
  ...readme.matchAll(/(<!-- readme\.test\.ts: not run \(([^)]*)\) -->\n)?```js\n([\s\S]*?)```/g),
].map((m, i) => ({
  index: i + 1,
  notRun: m[2],
  code: m[3]!,
  heading: [...readme.slice(0, m.index).matchAll(/^##+ (.*)$/gm)].at(-1)?.[1] ?? '',
}));
const fakeCuda = join(root, 'build', 'fake-cuda', 'libpinpool-fakecuda.so');
const dir = join(root, 'build', 'readme-blocks');
const cwd = mkdtempSync(join(tmpdir(), 'pinpool-readme-'));
afterAll(() => rmSync(cwd, { recursive: true, force: true }));
const supportsUsing = spawnSync(process.execPath, ['-e', '{ using x = null; }']).status === 0;

function run(code: string, index: number, cuda: string) {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `block-${index}.mjs`);
  writeFileSync(file, code);
  return spawnSync(process.execPath, [file], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, PINPOOL_CUDA_LIBRARY: cuda },
    timeout: 30_000,
  });
}

describe('README examples', () => {
  it('are ES modules, and all but one run here (onnxruntime-node is not a dependency)', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(8);
    expect(blocks.filter((b) => b.notRun !== undefined).map((b) => b.notRun)).toEqual([
      'onnxruntime-node is not a dependency of pinpool',
    ]);
    for (const b of blocks) expect(b.code, `block ${b.index}`).not.toMatch(/\brequire\(/);
  });

  for (const b of blocks.filter((x) => x.notRun === undefined)) {
    const usesUsing = /^\s*using /m.test(b.code);
    it(`block ${b.index} (${b.heading}) runs as written${usesUsing ? ' (`using`: Node 24 and later)' : ''}`, () => {
      const r = run(b.code, b.index, fakeCuda);
      if (usesUsing && !supportsUsing) {
        // The README says `using` needs Node 24: here it must indeed not parse.
        expect(r.stderr).toMatch(/SyntaxError/);
        return;
      }
      expect(r.stderr, r.stderr).toBe('');
      expect(r.status).toBe(0);
    });
  }

  it('the Quick start prints what its comments say, with and without a CUDA driver', () => {
    const quick = blocks[0]!;
    expect(quick.heading).toBe('Quick start');
    const without = run(quick.code, quick.index, '').stdout.trim().split('\n');
    expect(without[0]).toMatch(/libcuda/);
    expect(without[1]).toMatch(/^(locked|pageable) 7$/);
    expect(without[2]).toBe('0');
    expect(run(quick.code, quick.index, fakeCuda).stdout.trim().split('\n')).toEqual([
      'CUDA is here',
      'pinned 7',
      '0',
    ]);
  });

  it('the scope and fastify examples print what they say', () => {
    const scope = blocks.find((b) => b.code.includes('controller.measure'))!;
    expect(run(scope.code, scope.index, fakeCuda).stdout.trim()).toBe('done 4096 1');
    const fastify = blocks.find((b) => b.code.includes('pinpoolScope'))!;
    expect(run(fastify.code, fastify.index, fakeCuda).stdout.trim()).toBe('pinned');
  });

  it("the operator's story prints what its comments say (the service's JSON log lines aside)", () => {
    const story = blocks.find((b) => b.heading === 'Operate scopes at run time')!;
    const printed = run(story.code, story.index, '')
      .stdout.split('\n')
      .filter((line) => line !== '' && !line.startsWith('{'));
    expect(printed).toEqual([
      'fast pinpool_scope_info{scope="ingest",handler="fast"} 1',
      'fast',
      'plain pinpool_scope_info{scope="ingest",handler="plain"} 1',
    ]);
  });
});
