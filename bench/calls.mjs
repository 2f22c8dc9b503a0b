// Suite: the calls users make (issue 22). 4 KiB alloc+free through the entry points the README
// teaches, `defaultHandler().alloc()` and the controller's `alloc()` (outside every scope, and
// inside `controller.run()` of a named scope bound to defaultHandler()), against an explicit
// `pool(locked())` (own ArrayBuffers, and slab views), `new ArrayBuffer(4096)` and the floor of
// alloc-small.mjs (a JS free list, a Uint8Array over a slab, an object). Each user-facing case in
// four variants:
//   warm     freed in the same iteration, in a warm process
//   gc       a full collection (`gc()`) before each batch; the batch after it is timed
//   garbage  the loop also makes ordinary garbage (small objects, an array, a string) that
//            lives a little while, as request handlers do, so scavenges run between hits
//   keep     each buffer and its `bytes` are kept until the next iteration and freed after the
//            next one is allocated, as real code does
// Batches of BATCH alloc+free; figures are per alloc+free, the median of ROUNDS rounds of every
// case, and each ratio the median of that ratio within each round. gc() needs --expose-gc: without it
// the suite runs itself again in a child `node --expose-gc` (so `npm run bench` works) and
// returns the child's report.
//
//   node --expose-gc bench/calls.mjs [--quick]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { alloc, controller, defaultHandler, locked, pool } from 'pinpool';
import { measure, quick, ratio, report } from './lib.mjs';

const SIZE = 4096;
// Large enough that a collection's after-effects (the issue saw tens of thousands of slow hits)
// show in one batch, small enough for many samples of the slowest case.
const BATCH = 10_000;
const SUITE = 'the calls users make, 4 KiB alloc+free';
// Rounds of all cases, and each case's time in a round.
const ROUNDS = quick ? 1 : 5;
const ROUND_MS = quick ? 300 : 500;
const RESULT_FILE = 'PINPOOL_BENCH_CALLS_RESULT';

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Runs this file again under `node --expose-gc` and returns the report the child wrote. */
function runWithGc() {
  const dir = mkdtempSync(join(tmpdir(), 'pinpool-calls-'));
  const out = join(dir, 'result.json');
  try {
    const child = spawnSync(
      process.execPath,
      [
        ...process.execArgv,
        '--expose-gc',
        fileURLToPath(import.meta.url),
        ...(quick ? ['--quick'] : []),
      ],
      { stdio: 'inherit', env: { ...process.env, [RESULT_FILE]: out } },
    );
    if (child.status !== 0)
      throw new Error(
        `bench/calls.mjs needs gc(): its run under 'node --expose-gc' failed (status ${child.status}, signal ${child.signal}); run it directly with 'node --expose-gc bench/calls.mjs'`,
      );
    return JSON.parse(readFileSync(out, 'utf8'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run() {
  const gc = globalThis.gc;
  if (typeof gc !== 'function') return runWithGc();

  const explicit = pool(locked(), { name: 'calls-explicit' });
  const slab = pool(locked(), { name: 'calls-slab', slabViews: true });
  const names = new Set([...controller.names(), ...controller.scopes().map((s) => s.name)]);
  if (!names.has('calls-default')) controller.register('calls-default', defaultHandler());
  if (!names.has('calls-scope')) controller.scope('calls-scope', 'calls-default');
  const inScope = (fn) => () => controller.run('calls-scope', fn);

  let sink = 0;
  // Ordinary garbage: what one iteration of a request handler leaves behind. The ring keeps it
  // alive for 256 iterations, so that it is neither optimized away nor dead at once.
  const ring = new Array(256).fill(null);
  const garbage = (i, n) => {
    ring[i & 255] = { i, key: `k${i}`, parts: [i, n, i + n], meta: { n } };
  };

  /** The four loops of one way to allocate: `get()` hands out a buffer with `bytes` and free(). */
  const variants = (get) => {
    let previous = null; // keep: the buffer of the last iteration, freed after the next alloc
    let previousBytes = null; // and its bytes, alive until then
    return {
      warm: () => {
        for (let i = 0; i < BATCH; i++) {
          const b = get();
          sink += b.bytes.length;
          b.free();
        }
      },
      garbage: () => {
        for (let i = 0; i < BATCH; i++) {
          const b = get();
          sink += b.bytes.length;
          garbage(i, b.bytes.length);
          b.free();
        }
      },
      keep: () => {
        for (let i = 0; i < BATCH; i++) {
          const b = get();
          const bytes = b.bytes;
          bytes[0] = i;
          sink += bytes.length + (previousBytes === null ? 0 : previousBytes.length);
          if (previous !== null) previous.free();
          previous = b;
          previousBytes = bytes;
        }
      },
      release: () => {
        if (previous !== null) previous.free();
        previous = null;
        previousBytes = null;
      },
    };
  };

  // Timed by the case itself: measure() times the whole function, gc() included, so each case
  // records the batch after its collection, and its row is replaced by these samples below.
  const afterGc = new Map();
  const timedAfterGc = (name, batch) => {
    const samples = [];
    afterGc.set(name, samples);
    return () => {
      gc();
      const t0 = process.hrtime.bigint();
      batch();
      samples.push(Number(process.hrtime.bigint() - t0));
    };
  };

  const floorSlab = new ArrayBuffer(64 * SIZE);
  const floorFree = Array.from({ length: 64 }, (_, i) => i * SIZE);
  const floor = () => {
    for (let i = 0; i < BATCH; i++) {
      const offset = /** @type {number} */ (floorFree.pop()); // 64 offsets, one out at a time
      const b = { bytes: new Uint8Array(floorSlab, offset, SIZE), offset, released: false };
      sink += b.bytes.length;
      b.released = true;
      floorFree.push(b.offset);
    }
  };
  const floorGarbage = () => {
    for (let i = 0; i < BATCH; i++) {
      const offset = /** @type {number} */ (floorFree.pop());
      const b = { bytes: new Uint8Array(floorSlab, offset, SIZE), offset, released: false };
      sink += b.bytes.length;
      garbage(i, b.bytes.length);
      b.released = true;
      floorFree.push(b.offset);
    }
  };

  const user = {
    'defaultHandler().alloc()': variants(() => defaultHandler().alloc(SIZE)),
    'alloc(), outside run()': variants(() => alloc(SIZE)),
    'alloc(), in run(scope -> default)': variants(() => alloc(SIZE)),
    'pool(locked()), own ArrayBuffers': variants(() => explicit.alloc(SIZE)),
    'pool(locked(), slabViews)': variants(() => slab.alloc(SIZE)),
  };
  const wrap = (name, fn) => (name === 'alloc(), in run(scope -> default)' ? inScope(fn) : fn);
  const cases = {};
  for (const [name, v] of Object.entries(user)) {
    cases[`${name}: warm`] = wrap(name, v.warm);
    cases[`${name}: gc`] = timedAfterGc(`${name}: gc`, wrap(name, v.warm));
    cases[`${name}: garbage`] = wrap(name, v.garbage);
    cases[`${name}: keep`] = wrap(name, v.keep);
  }
  cases['new ArrayBuffer(4096)'] = () => {
    for (let i = 0; i < BATCH; i++) sink += new Uint8Array(new ArrayBuffer(SIZE)).length;
  };
  cases['floor'] = floor;
  cases['floor: gc (control)'] = timedAfterGc('floor: gc (control)', floor);
  cases['floor: garbage (control)'] = floorGarbage;

  // Rounds of every case, each round one measure() of all cases; a figure is the median over
  // rounds, and a ratio the median of the ratios within each round, so that a slow drift of a
  // shared machine falls out of it.
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (const samples of afterGc.values()) samples.length = 0;
    const measured = await measure(cases, { batch: BATCH, time: ROUND_MS });
    // The after-collection rows: the last `samples` batches the case timed are tinybench's run
    // (the first ones were its warm-up).
    rounds.push(
      measured.map((row) => {
        const own = afterGc.get(row.case);
        if (own === undefined) return row;
        const ns = own.slice(-row.samples).map((t) => t / BATCH);
        const mean = ns.reduce((a, b) => a + b, 0) / ns.length;
        return {
          ...row,
          opsPerSec: 1e9 / mean,
          medianNs: median(ns),
          p99Ns: [...ns].sort((a, b) => a - b)[Math.floor((ns.length - 1) * 0.99)],
        };
      }),
    );
  }
  for (const v of Object.values(user)) v.release();
  if (sink === 42) console.log('');
  const rows = rounds[0].map((row, i) => ({
    case: row.case,
    opsPerSec: median(rounds.map((r) => r[i].opsPerSec)),
    medianNs: median(rounds.map((r) => r[i].medianNs)),
    p99Ns: median(rounds.map((r) => r[i].p99Ns)),
    samples: rounds.reduce((n, r) => n + r[i].samples, 0),
  }));

  // ratio(rows, a, b) is throughput a / throughput b, i.e. time b / time a.
  const byRound = (a, b) => median(rounds.map((r) => ratio(r, a, b)));
  const times = (x, y) => byRound(y, x); // time of x over time of y
  const targets = [];
  for (const name of Object.keys(user))
    targets.push({
      label: `new ArrayBuffer time / ${name} time (warm)`,
      value: byRound(`${name}: warm`, 'new ArrayBuffer(4096)'),
      min: 3,
    });
  for (const name of Object.keys(user).slice(0, 3))
    targets.push({
      label: `${name} / explicit pool, own ArrayBuffers (time, warm)`,
      value: times(`${name}: warm`, 'pool(locked()), own ArrayBuffers: warm'),
      max: 1.3,
    });
  for (const name of Object.keys(user))
    targets.push({
      label: `${name}: after gc() / warm (time)`,
      value: times(`${name}: gc`, `${name}: warm`),
      max: 1.3,
    });
  targets.push(
    {
      label: 'explicit pool, own ArrayBuffers / floor (time, warm)',
      value: times('pool(locked()), own ArrayBuffers: warm', 'floor'),
      max: 4,
    },
    {
      label: 'explicit pool, slabViews / floor (time, warm)',
      value: times('pool(locked(), slabViews): warm', 'floor'),
      max: 2.5,
    },
    {
      label: 'floor: after gc() / warm (time; the control)',
      value: times('floor: gc (control)', 'floor'),
      max: Infinity,
    },
    {
      label: 'floor: garbage / warm (time; what the garbage costs)',
      value: times('floor: garbage (control)', 'floor'),
      max: Infinity,
    },
  );
  for (const name of Object.keys(user))
    for (const variant of ['garbage', 'keep'])
      targets.push({
        label: `${name}: ${variant} / warm (time)`,
        value: times(`${name}: ${variant}`, `${name}: warm`),
        max: Infinity,
      });
  return report(SUITE, rows, targets);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await run();
  const out = process.env[RESULT_FILE];
  if (out !== undefined) writeFileSync(out, JSON.stringify(result));
}
