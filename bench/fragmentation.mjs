// Suite 7: fragmentation. A seeded trace of 10^5 mixed events, sizes log-uniform from 1 KiB to
// 64 MiB, replayed (with replayTrace, the same tool users run on their own traces) against a
// pool; peak bytes held / peak bytes in use. Beside it, the same ratio for a model of a
// power-of-two caching pool (what PyTorch's and CuPy's host allocators do).
import { pageable, pool, replayTrace, syntheticTrace } from 'pinpool';
import { quick, report } from './lib.mjs';

function powerOfTwoModel(trace) {
  const free = new Map(); // rounded size -> cached count
  const live = new Map(); // id -> rounded size
  let held = 0;
  let peakHeld = 0;
  let inUse = 0;
  let peakInUse = 0;
  const sizes = new Map();
  for (const e of trace) {
    if (e.op === 'alloc') {
      const rounded = 2 ** Math.ceil(Math.log2(Math.max(e.bytes, 1)));
      const n = free.get(rounded) ?? 0;
      if (n > 0) free.set(rounded, n - 1);
      else held += rounded;
      live.set(e.id, rounded);
      sizes.set(e.id, e.bytes);
      inUse += e.bytes;
      peakInUse = Math.max(peakInUse, inUse);
      peakHeld = Math.max(peakHeld, held);
    } else {
      const rounded = live.get(e.id);
      live.delete(e.id);
      free.set(rounded, (free.get(rounded) ?? 0) + 1);
      inUse -= sizes.get(e.id);
    }
  }
  return peakHeld / peakInUse;
}

/**
 * The trace through `h.alloc()` and `free()`, so that the thread cache in front of the pool
 * (blocks with their ArrayBuffers, up to threadCacheBytes) is in the figure: peak held by the
 * pool (what it reserved upstream) over peak in use.
 */
function throughJavaScript(trace, h) {
  const live = new Map();
  for (const e of trace) {
    if (e.op === 'alloc') live.set(e.id, h.alloc(e.bytes, { alignment: e.alignment }));
    else {
      live.get(e.id).free();
      live.delete(e.id);
    }
  }
  for (const b of live.values()) b.free();
  const s = h.stats();
  h.trim();
  return s.reservedBytesPeak / s.bytesPeak;
}

export async function run() {
  const seed = 42;
  const trace = syntheticTrace({ events: quick ? 20_000 : 100_000, seed });
  const r = replayTrace(trace, pool(pageable()));
  const keepAll = replayTrace(trace, pool(pageable(), { cacheRatio: Infinity }));
  const model = powerOfTwoModel(trace);
  const viaJs = throughJavaScript(trace, pool(pageable()));
  const rows = [
    {
      case: `pinpool pool (default), hit rate ${(1 - r.upstreamCalls / r.allocations).toFixed(2)}`,
      opsPerSec: trace.length / r.seconds,
      medianNs: NaN,
      p99Ns: NaN,
      samples: trace.length,
    },
    {
      case: `pinpool pool, cacheRatio Infinity, hit rate ${(1 - keepAll.upstreamCalls / keepAll.allocations).toFixed(2)}`,
      opsPerSec: trace.length / keepAll.seconds,
      medianNs: NaN,
      p99Ns: NaN,
      samples: trace.length,
    },
  ];
  console.log(
    `seed ${seed}: peak in use ${(r.peakBytesInUse / 2 ** 20).toFixed(0)} MiB; held at peak: default ${(r.peakBytesHeld / 2 ** 20).toFixed(0)} MiB, keep-all ${(keepAll.peakBytesHeld / 2 ** 20).toFixed(0)} MiB; power-of-two model ratio ${model.toFixed(3)}`,
  );
  return report('fragmentation (trace replay)', rows, [
    { label: 'peak held / peak in use, pinpool pool', value: r.overhead, max: 1.2 },
    { label: 'same, through h.alloc()/free() with the thread cache', value: viaJs, max: 1.2 },
    { label: 'same, cacheRatio Infinity (for reference)', value: keepAll.overhead, max: Infinity },
    { label: 'same, power-of-two pool model (for reference)', value: model, max: Infinity },
  ]);
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
