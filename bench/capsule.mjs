// Suite: alloc+free through the capsule. Two copies of this checkout are installed side by side
// (test/support/capsule/copies.cjs) and loaded in this process: the first publishes the registry, the
// second hands out the first's module (src/process/capsule.ts). A pool hit of 4 KiB, slab views and own
// ArrayBuffers, is timed through each copy and, given a checkout built before the capsule
// (`--before <dir>` or PINPOOL_BENCH_BEFORE: a clone at 283ff78 with `npx cmake-js compile &&
// npx tsc -p tsconfig.build.json` run in it), through that build, which has no registry at all.
// All in one process, so the ratios compare like with like; five rounds, the order of the cases
// rotated each round, each case's median round reported.
//
//   node bench/capsule.mjs [--quick] [--before <dir>]
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { measure, paired, quick, ratio, report } from './lib.mjs';

const require = createRequire(import.meta.url);
const { makeCopies } = require('../test/support/capsule/copies.cjs');

const SIZE = 4096;
const BATCH = 1000;
const ROUNDS = quick ? 1 : 5;

function beforeCheckout() {
  const i = process.argv.indexOf('--before');
  return i > 0 ? process.argv[i + 1] : process.env.PINPOOL_BENCH_BEFORE;
}

export async function run() {
  const root = mkdtempSync(join(tmpdir(), 'pinpool-bench-copies-'));
  makeCopies(root, [
    { name: 'a', version: '0.1.0' },
    { name: 'b', version: '0.2.0' },
  ]);
  delete process.env.PINPOOL_NATIVE_PATH; // each copy loads its own addon
  /** @type {(path: string) => [typeof import('pinpool'), number]} */
  const load = (path) => {
    const t = performance.now();
    const module = require(path);
    return [module, performance.now() - t];
  };
  const [a, loadA] = load(join(root, 'node_modules', 'a'));
  const [b, loadB] = load(join(root, 'node_modules', 'b'));
  if (b.info().registry.thisCopy.publisher || a.controller !== b.controller)
    throw new Error('bench: the second copy did not join the first');
  const beforeDir = beforeCheckout();
  const [before, loadBefore] = beforeDir
    ? load(join(beforeDir, 'dist', 'src', 'index.js'))
    : [undefined, NaN];

  // One function per case, each from its own source text: closures of one function literal
  // share their inline caches, and the three builds' classes would make them polymorphic.
  const loop = (h, batch = BATCH) =>
    new Function(
      'h',
      'SIZE',
      'BATCH',
      `let sink = 0; return function loop() {
      for (let i = 0; i < BATCH; i++) { const buf = h.alloc(SIZE); sink += buf.bytes.length; buf.free(); }
      return sink; /* ${Math.random()} */ };`,
    )(h, SIZE, batch);
  const cases = {};
  const long = {}; // the same, 20 000 per call, for paired()
  /** @type {[string, typeof import('pinpool') | undefined][]} */
  const copies = [
    ['first copy', a],
    ['second copy', b],
    ['before the capsule', before],
  ];
  for (const [label, p] of copies) {
    if (p === undefined) continue;
    /** @type {[string, import('pinpool').PoolOptions][]} */
    const modes = [
      ['slabViews', { slabViews: true }],
      ['own buffers', {}],
    ];
    for (const [mode, options] of modes) {
      const h = p.pool(p.pageable(), options);
      cases[`${label}, ${mode}`] = loop(h);
      long[`${label}, ${mode}`] = loop(h, 20_000);
    }
  }
  // Rounds with the order of the cases rotated, each case's median round kept: tinybench runs
  // cases one after another, and the first ones pay for warm-up and collections.
  const names = Object.keys(cases);
  /** @type {Record<string, Awaited<ReturnType<typeof measure>>>} */
  const perCase = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = names.map((_, i) => names[(i + round) % names.length]);
    for (const row of await measure(Object.fromEntries(order.map((n) => [n, cases[n]])), {
      batch: BATCH,
    }))
      perCase[row.case].push(row);
  }
  const rows = names.map((n) => {
    const sorted = perCase[n].sort((x, y) => x.opsPerSec - y.opsPerSec);
    return sorted[Math.floor(sorted.length / 2)];
  });
  rmSync(root, { recursive: true, force: true });
  console.log(
    `load: first copy ${loadA.toFixed(1)} ms, second copy ${loadB.toFixed(1)} ms${before ? `, before the capsule ${loadBefore.toFixed(1)} ms` : ''}`,
  );
  // Throughput ratios from the rounds above, and paired ratios (bench/lib.mjs paired(): time of
  // the baseline over time of the case, round by round, the median), which slow drifts of a
  // shared machine cancel out of.
  const targets = [];
  const pairs = [['second copy', 'first copy']];
  if (before)
    pairs.push(['second copy', 'before the capsule'], ['first copy', 'before the capsule']);
  for (const mode of ['slabViews', 'own buffers']) {
    for (const [x, y] of pairs) {
      targets.push({
        label: `${x} / ${y}, ${mode}`,
        value: ratio(rows, `${x}, ${mode}`, `${y}, ${mode}`),
        min: 0.9,
      });
      const speed = 1 / paired(long[`${y}, ${mode}`], long[`${x}, ${mode}`]);
      targets.push({ label: `${x} / ${y}, ${mode}, paired`, value: speed, min: 0.9 });
    }
  }
  return report('alloc+free through the capsule, 4 KiB pool hit', rows, targets);
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
