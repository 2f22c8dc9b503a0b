// Suite: alloc+free through the capsule. Two copies of this checkout are installed side by side
// (test/capsule/copies.cjs) and loaded in this process: the first publishes the registry, the
// second hands out the first's module (src/capsule.ts). A pool hit of 4 KiB, slab views and own
// ArrayBuffers, is timed through each copy and, given a checkout built before the capsule
// (`--before <dir>` or PINPOOL_BENCH_BEFORE: a clone at 283ff78 with `npx cmake-js compile &&
// npx tsc -p tsconfig.build.json` run in it), through that build, which has no registry at all.
// All in one process, so the ratios compare like with like.
//
//   node bench/capsule.mjs [--quick] [--before <dir>]
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { measure, ratio, report } from './lib.mjs';

const require = createRequire(import.meta.url);
const { makeCopies } = require('../test/capsule/copies.cjs');

const SIZE = 4096;
const BATCH = 1000;

function beforeCheckout() {
  const i = process.argv.indexOf('--before');
  return i > 0 ? process.argv[i + 1] : process.env.PINPOOL_BENCH_BEFORE;
}

export async function run() {
  const root = mkdtempSync(join(tmpdir(), 'pinpool-bench-copies-'));
  makeCopies(root, [{ name: 'a', version: '0.1.0' }, { name: 'b', version: '0.2.0' }]);
  delete process.env.PINPOOL_NATIVE_PATH; // each copy loads its own addon
  const load = (path) => {
    const t = performance.now();
    const module = require(path);
    return [module, performance.now() - t];
  };
  const [a, loadA] = load(join(root, 'node_modules', 'a'));
  const [b, loadB] = load(join(root, 'node_modules', 'b'));
  if (b.info().registry.thisCopy.publisher || a.controller !== b.controller) throw new Error('bench: the second copy did not join the first');
  const beforeDir = beforeCheckout();
  const [before, loadBefore] = beforeDir ? load(join(beforeDir, 'dist', 'src', 'index.js')) : [undefined, NaN];

  const loop = (h) => () => {
    for (let i = 0; i < BATCH; i++) {
      const buf = h.alloc(SIZE);
      sink += buf.bytes.length;
      buf.free();
    }
  };
  let sink = 0;
  const cases = {};
  for (const [label, p] of [['first copy', a], ['second copy', b], ['before the capsule', before]]) {
    if (p === undefined) continue;
    cases[`${label}, slabViews`] = loop(p.pool(p.pageable(), { slabViews: true }));
    cases[`${label}, own buffers`] = loop(p.pool(p.pageable()));
  }
  const rows = await measure(cases, { batch: BATCH });
  if (sink === 42) console.log('');
  rmSync(root, { recursive: true, force: true });
  console.log(`load: first copy ${loadA.toFixed(1)} ms, second copy ${loadB.toFixed(1)} ms${before ? `, before the capsule ${loadBefore.toFixed(1)} ms` : ''}`);
  const targets = [];
  for (const mode of ['slabViews', 'own buffers']) {
    targets.push({ label: `second copy / first copy, ${mode}`, value: ratio(rows, `second copy, ${mode}`, `first copy, ${mode}`), min: 0.9 });
    if (before) {
      targets.push({ label: `second copy / before the capsule, ${mode}`, value: ratio(rows, `second copy, ${mode}`, `before the capsule, ${mode}`), min: 0.9 });
      targets.push({ label: `first copy / before the capsule, ${mode}`, value: ratio(rows, `first copy, ${mode}`, `before the capsule, ${mode}`), min: 0.9 });
    }
  }
  return report('alloc+free through the capsule, 4 KiB pool hit', rows, targets);
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
