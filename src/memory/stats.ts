/**
 * Handler statistics, as the native table declares them (PINPOOL_STATS in
 * native/core/stats.hpp, handed over by `binding.statsLayout()`). Each field's metric is
 * `pinpool_<field in snake_case>`, with `_total` for a counter (src/observe/metrics.ts). Bytes
 * are in bytes, times in seconds.
 */
import { binding, type NativeHandle, type NativeStat } from '../boundary/native.js';

/**
 * A handler's statistics. Every handler has every field; one that does not apply to its kind
 * (a pool's `reservedBytes` on a leaf) is 0. The fields are the native table's names, in its
 * order; test/host/stats-table.test.ts keeps this interface and that table the same.
 */
export interface HandlerStats {
  /** Bytes handed out and not yet returned. */
  bytesInUse: number;
  /** The most `bytesInUse` has been. */
  bytesPeak: number;
  /** Bytes handed out, summed over all allocations. */
  allocatedBytes: number;
  /** Buffers (blocks) handed out and not yet returned. */
  buffersInUse: number;
  /** The most `buffersInUse` has been. */
  buffersPeak: number;
  /** Allocations served. */
  allocations: number;
  /** Buffers returned. */
  frees: number;
  /** Pools: bytes held from the upstream (in use plus cached). */
  reservedBytes: number;
  /** Pools: the most `reservedBytes` has been. */
  reservedBytesPeak: number;
  /** Pools: bytes held from the upstream and free for reuse. */
  cachedBytes: number;
  /**
   * Limits: the cap on bytes in use (their `maxBytes`). Page-locking leaves (pinned, locked):
   * the cap on what they hold page-locked (see `info().lockedCap`). 0 for other handlers.
   */
  capBytes: number;
  /** Pools: allocation calls made to the upstream (cache misses). */
  upstreamAllocs: number;
  /** Pools: free calls made to the upstream. */
  upstreamFrees: number;
  /** Pools: time spent in upstream calls, in seconds. */
  upstreamSeconds: number;
  /** Buffers returned by the garbage-collection backstop, not by free(): leaks. */
  gcReleased: number;
  /** Bytes of the buffers in `gcReleased`. */
  gcReleasedBytes: number;
  /**
   * Frees the handler refused: a pointer it never handed out or already took back, a size or
   * alignment other than the allocation's. Nothing was freed; other native code misusing the C
   * ABI is the usual cause (JavaScript's own double frees stop at ERR_PINPOOL_DOUBLE_FREE).
   */
  invalidFrees: number;
  /**
   * Bytes kept out of use for good: an ArrayBuffer over them was moved to another thread
   * (`transfer()`, then postMessage; Node 22 and later), and the thread that allocated them
   * ended while it might still live. Never reused, never given back. Hand buffers between
   * threads with `buf.transfer()` and `adopt()` instead.
   */
  orphanedBytes: number;
  /** The blocks of `orphanedBytes` (a slab counts once). */
  orphanedBlocks: number;
  /**
   * Pools: bytes reserved ahead of misses (`reserve()`, `initialBytes`), whole chunks, in use
   * or not; part of `reservedBytes`. `trim()` keeps them, `trim({ reservation: true })` gives
   * back the chunks that hold no block.
   */
  reservationBytes: number;
  /**
   * Page-locking leaves (locked, pinned with strategy 'register'): mappings of 2 MiB or more
   * that asked for huge pages and got 4 KiB pages (transparent huge pages off, or refused).
   */
  hugePageFallbacks: number;
  /**
   * Page-locking leaves with a `numaNode`: bytes found on another node after first touch
   * (sampled, one page per 2 MiB), where the node ran out of memory.
   */
  offNodeBytes: number;
  /**
   * Pools: how long each allocation call to the upstream took (the pool's growth: misses,
   * reservation chunks, requests passed through), as a histogram: for each upper bound `le` in
   * seconds (0.0001 ... 16, then Infinity), the calls that took at most that long (cumulative, as
   * Prometheus counts them). The `growth_seconds` metric.
   */
  growthSeconds: { le: number; count: number }[];
  /** Pools: the seconds of those calls, summed (the histogram's sum). */
  growthSecondsSum: number;
  /** Failed allocations by reason ('out-of-memory', 'mlock', 'limit', 'no-cuda' ...); non-zero reasons only. */
  failures: Record<string, number>;
  /** Fallbacks: moves to the secondary handler by reason ('size', 'unavailable', 'out-of-memory'); non-zero reasons only. */
  fallbacks: Record<string, number>;
}

/** The native statistics table, read once. */
let table: readonly NativeStat[] | undefined;
let slots: Float64Array | undefined;

/** @internal The statistics table of native/core/stats.hpp: what stats() and the metrics report. */
export function statsTable(): readonly NativeStat[] {
  table ??= Object.freeze(binding.statsLayout().map((s) => Object.freeze(s)));
  return table;
}

/** @internal Reads a handler's statistics from one native call. */
/** A histogram bucket's `le` label: its bound as Prometheus writes it. */
export function bucketLabel(bound: number): string {
  return bound === Infinity ? '+Inf' : String(bound);
}

export function readStats(handle: NativeHandle): HandlerStats {
  const stats = statsTable();
  const values = (slots ??= new Float64Array(
    stats.reduce((n, s) => Math.max(n, s.slot + s.width), 0),
  ));
  binding.stats(handle, values);
  const out: Record<string, number | Record<string, number> | { le: number; count: number }[]> = {};
  for (const s of stats) {
    if (s.bounds !== undefined) {
      let seen = 0;
      out[s.name] = s.bounds.map((le, i) => ({ le, count: (seen += values[s.slot + i] ?? 0) }));
      continue;
    }
    if (s.reasons === undefined) {
      out[s.name] = values[s.slot] ?? 0;
      continue;
    }
    const byReason: Record<string, number> = {};
    s.reasons.forEach((reason, i) => {
      const n = values[s.slot + i] ?? 0;
      if (n > 0) byReason[reason] = n;
    });
    out[s.name] = byReason;
  }
  return out as unknown as HandlerStats;
}
