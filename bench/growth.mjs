// Suite: growth at the speed of the hardware (issue 23). Grows a pool(locked()) by SIZE (2 GiB;
// 256 MiB with --quick), each way, every way in every round with the order rotated:
//   today      pinpool before issue 23: one mmap and one mlock of the whole length, 4 KiB
//              pages, on the calling thread (locked({ hugePages: false, touchThreads: 1,
//              chunkBytes: 2 ** 40 }): the same calls, the pages faulted in by
//              MADV_POPULATE_WRITE just before the mlock instead of by it; within 15% of the
//              real 2d334ea, see bench/RESULTS.md)
//   4k-threads 4 KiB pages, first touch on every core, mlock in 64 MiB chunks
//   grow       the default: huge pages, first touch on every core, mlock in 64 MiB chunks
//   reserve    pool.reserve(SIZE) with the default leaf: 64 MiB chunks on a thread of its own, the event
//              loop free; its worst lag is measured with perf_hooks.monitorEventLoopDelay
//   limit      the machine's limit: the same bytes faulted in with huge pages on every core,
//              nothing locked (binding.testing.faultIn: the same mapping and touch code)
// in two states of the machine's free memory, each case starting from the same one:
//   cold  the memory was freed a while ago (3 s before each case). On a virtual machine whose
//         balloon reports free pages to the host (virtio_balloon's free page reporting), the
//         host has taken them back and every first touch faults on the host too: the state a
//         service starting on a quiet machine meets.
//   warm  2 GiB of huge pages were faulted in and freed just before each case: the guest's
//         free memory is backed by the host, and only the guest's own work is timed.
// Figures: the median time of the rounds, GiB/s, minor page faults (process.resourceUsage,
// every thread of the process), and ratios of medians.
//
//   node bench/growth.mjs [--quick]
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { resourceUsage } from 'node:process';

import { locked, pool } from 'pinpool';
import { binding } from '../dist/src/boundary/native.js';
import { quick, report } from './lib.mjs';

const GiB = 2 ** 30;
const SIZE = quick ? GiB / 4 : 2 * GiB;
const SUITE = `growth: a pool(locked()) grows by ${SIZE / GiB} GiB`;

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Grows a pool over `leaf` by SIZE with one block, and gives it back. */
function growBy(leaf) {
  const h = pool(leaf, { maxCachedBytes: 4 * GiB });
  const b = h.alloc(SIZE);
  b.free();
  h.trim();
}

const cases = {
  today: () => growBy(locked({ hugePages: false, touchThreads: 1, chunkBytes: 2 ** 40 })),
  '4k-threads': () => growBy(locked({ hugePages: false })),
  grow: () => growBy(locked()),
  reserve: async () => {
    const h = pool(locked());
    const lag = monitorEventLoopDelay({ resolution: 1 });
    lag.enable();
    // Something for the event loop to do meanwhile, as a server would.
    const tick = setInterval(() => {}, 1);
    await h.reserve(SIZE);
    clearInterval(tick);
    lag.disable();
    h.trim({ reservation: true });
    return lag.max / 1e6;
  },
  limit: () => {
    binding.testing?.faultIn(SIZE, 0, true);
  },
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const scenarios = {
  cold: { rounds: quick ? 1 : 3, prepare: () => sleep(3000) },
  warm: {
    rounds: quick ? 2 : 5,
    prepare: () => {
      binding.testing?.faultIn(2 * GiB, 0, true);
    },
  },
};

/** Every case of `cases` in `rounds` rounds, each after `prepare()`: rows of medians. */
async function measureScenario(name, { rounds, prepare }) {
  const names = Object.keys(cases);
  /** @type {Record<string, { ms: number[], faults: number[], lag: number[] }>} */
  const samples = Object.fromEntries(names.map((n) => [n, { ms: [], faults: [], lag: [] }]));
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < names.length; i++) {
      const c = names[(i + round) % names.length];
      await prepare();
      const faults = resourceUsage().minorPageFault;
      const start = performance.now();
      const lag = await cases[c]();
      samples[c].ms.push(performance.now() - start);
      samples[c].faults.push(resourceUsage().minorPageFault - faults);
      if (typeof lag === 'number') samples[c].lag.push(lag);
    }
  }
  return names.map((c) => {
    const ms = median(samples[c].ms);
    return {
      case: `${name}/${c}`,
      opsPerSec: 1000 / ms,
      medianNs: ms * 1e6,
      p99Ns: Math.max(...samples[c].ms) * 1e6,
      samples: samples[c].ms.length,
      ms,
      gibPerSec: SIZE / GiB / (ms / 1000),
      faults: median(samples[c].faults),
      lagMs: samples[c].lag.length ? median(samples[c].lag) : undefined,
    };
  });
}

export async function run() {
  if (binding.testing === undefined)
    throw new Error('bench/growth.mjs needs the test hooks: build with `npm run build`');
  const rows = [];
  for (const [name, scenario] of Object.entries(scenarios))
    rows.push(...(await measureScenario(name, scenario)));
  console.log(`\n## ${SUITE}: times, faults, event-loop lag (medians)`);
  console.table(
    rows.map((r) => ({
      case: r.case,
      'median ms': r.ms.toFixed(0),
      'worst ms': (r.p99Ns / 1e6).toFixed(0),
      'GiB/s': r.gibPerSec.toFixed(2),
      'minor faults': r.faults,
      'worst lag ms': r.lagMs === undefined ? '' : r.lagMs.toFixed(1),
    })),
  );
  const of = (name) => {
    const row = rows.find((r) => r.case === name);
    if (row === undefined) throw new Error(`no case ${name}`);
    return row;
  };
  const targets = Object.keys(scenarios).flatMap((s) => [
    {
      label: `${s}: grow throughput / today`,
      value: of(`${s}/today`).ms / of(`${s}/grow`).ms,
      min: 1.6,
    },
    {
      label: `${s}: grow time / limit time`,
      value: of(`${s}/grow`).ms / of(`${s}/limit`).ms,
      max: 1.5,
    },
    {
      label: `${s}: huge-page faults / 4 KiB faults`,
      value: of(`${s}/grow`).faults / of(`${s}/4k-threads`).faults,
      max: 0.01,
    },
    {
      label: `${s}: reserve, worst event-loop lag (ms)`,
      value: of(`${s}/reserve`).lagMs ?? NaN,
      max: 10,
    },
    {
      label: `${s}: today blocks the event loop for (ms)`,
      value: of(`${s}/today`).ms,
      max: Infinity,
    },
  ]);
  return report(SUITE, rows, targets);
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
