// What the lease model (docs/decisions/0009-leases.md) costs the hot path: alloc+free of 4 KiB pool hits, this
// checkout against another built checkout (the one before the change), in one process, in
// interleaved rounds so that both see the same machine. Each timed round ends with a turn of
// the event loop, so the work that follows a free outside the loop (the ArrayBuffers'
// finalizers, run from immediates) is paid inside the round that caused it.
//
//   node --expose-gc bench/lease-cost.mjs /path/to/other/checkout [--rounds 15]
//
// The other checkout must be built (npm ci). Both addons load side by side: they are separate
// files, and each keeps its own handlers.
import { createRequire } from 'node:module';
import { resolve } from 'node:path';

const require = createRequire(import.meta.url);
const otherRoot = process.argv[2];
if (!otherRoot) {
  console.error(
    'usage: node --expose-gc bench/lease-cost.mjs /path/to/other/checkout [--rounds N]',
  );
  process.exit(2);
}
const roundsAt = process.argv.indexOf('--rounds');
const ROUNDS = roundsAt > 0 ? Number(process.argv[roundsAt + 1]) : 15;
const BATCH = 20_000;
const SIZE = 4096;

// Each checkout's own copy, by its path.
/** @type {typeof import('pinpool')} */
const now = require(resolve(import.meta.dirname, '..', 'dist', 'src', 'index.js'));
/** @type {typeof import('pinpool')} */
const before = require(resolve(otherRoot, 'dist', 'src', 'index.js'));

/** @returns {[string, () => number][]} */
function cases(lib, label) {
  const detach = lib.pool(lib.pageable());
  const slab = lib.pool(lib.pageable(), { slabViews: true });
  let sink = 0;
  const loop = (h) => () => {
    for (let i = 0; i < BATCH; i++) {
      const b = h.alloc(SIZE);
      sink += b.bytes.length;
      b.free();
    }
    return sink;
  };
  return [
    [`${label} detach-on-free`, loop(detach)],
    [`${label} slabViews`, loop(slab)],
  ];
}

const all = [...cases(before, 'before'), ...cases(now, 'now')];
/** @type {Record<string, number[]>} */
const samples = Object.fromEntries(all.map(([name]) => [name, []]));
const turn = () => new Promise((resolve) => setImmediate(resolve));
for (const [, fn] of all) fn(); // warm up
await turn();
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 === 0 ? all : [...all].reverse();
  for (const [name, fn] of order) {
    globalThis.gc?.();
    await turn();
    const t0 = process.hrtime.bigint();
    fn();
    await turn();
    await turn();
    samples[name].push(Number(process.hrtime.bigint() - t0) / BATCH);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const m = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
console.log(
  `lease cost, ${ROUNDS} interleaved rounds of ${BATCH} alloc+free of ${SIZE} B (median ns per alloc+free), Node ${process.version}`,
);
for (const mode of ['detach-on-free', 'slabViews']) {
  const b = m[`before ${mode}`];
  const n = m[`now ${mode}`];
  console.log(
    `  ${mode.padEnd(15)} before ${b.toFixed(0).padStart(6)} ns   now ${n.toFixed(0).padStart(6)} ns   now/before ${(n / b).toFixed(3)}`,
  );
}
