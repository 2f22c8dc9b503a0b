/**
 * Handler statistics, as the native snapshot (native/core/stats.hpp, declared once there)
 * reports them. Bytes are in bytes, times in seconds.
 */
import { binding, type NativeHandle } from '../boundary/native.js';


/** A value that goes up and down, with its high-water mark and the sum of its increases. */
export interface Gauge {
  current: number;
  peak: number;
  total: number;
}

export interface HandlerStats {
  /** Bytes handed to callers and not yet returned. */
  bytes: Gauge;
  /** Blocks handed to callers and not yet returned. */
  allocations: Gauge;
  /** Blocks returned. */
  frees: number;
  /** Pools: bytes held from the upstream (in use plus cached). */
  reserved: Gauge;
  /** Pools: bytes held from the upstream and free for reuse. */
  cachedBytes: number;
  /**
   * Limits: the cap on bytes in use (their `maxBytes`). Page-locking leaves (pinned, locked):
   * the cap on what they hold page-locked (see `info().lockedCap`). 0 for other handlers.
   */
  capBytes: number;
  /** Pools: allocation and free calls made to the upstream. */
  upstreamAllocs: number;
  upstreamFrees: number;
  /** Pools: time spent in upstream calls, in seconds. */
  upstreamSeconds: number;
  /** Blocks (and their bytes) returned by the garbage-collection backstop, not by free(). */
  releasedByGc: number;
  releasedByGcBytes: number;
  /**
   * Frees the handler refused: a pointer it never handed out or already took back, a size or
   * alignment other than the allocation's. Nothing was freed; other native code misusing the C
   * ABI is the usual cause (JavaScript's own double frees stop at ERR_PINPOOL_DOUBLE_FREE).
   */
  invalidFrees: number;
  /**
   * Bytes (and blocks) kept out of use for good: an ArrayBuffer over them was moved to another
   * thread (`transfer()`, then postMessage; Node 22 and later), and the thread that allocated
   * them ended while it might still live. Never reused, never given back; a slab counts once.
   * Hand buffers between threads with `buf.transfer()` and `adopt()` instead.
   */
  orphanedBytes: number;
  orphanedBlocks: number;
  /** Failed allocations by reason ('out-of-memory', 'mlock', 'limit', 'no-cuda' ...). */
  failures: Record<string, number>;
  /** Fallbacks: moves to the secondary handler by reason ('size', 'unavailable', 'out-of-memory'). */
  fallbacks: Record<string, number>;
}

// The native layout, read once: names like 'bytesCurrent', 'failures.mlock'.
let layout: { index: Map<string, number>; reasons: { name: string; failure: number; fallback: number }[]; size: number } | undefined;
let slots: Float64Array | undefined;

function layoutOf(names: string[]) {
  const index = new Map(names.map((n, i) => [n, i]));
  const reasons = names.filter((n) => n.startsWith('failures.')).map((n) => {
    const name = n.slice('failures.'.length);
    return { name, failure: index.get(n)!, fallback: index.get(`fallbacks.${name}`)! };
  });
  return { index, reasons, size: names.length };
}

/** @internal Reads a handler's statistics from one native call. */
export function readStats(handle: NativeHandle): HandlerStats {
  layout ??= layoutOf(binding.statsLayout());
  slots ??= new Float64Array(layout.size);
  binding.stats(handle, slots);
  const { index, reasons } = layout;
  const v = (name: string) => slots![index.get(name)!]!;
  const gauge = (name: string): Gauge => ({ current: v(`${name}Current`), peak: v(`${name}Peak`), total: v(`${name}Total`) });
  const failures: Record<string, number> = {};
  const fallbacks: Record<string, number> = {};
  for (const r of reasons) {
    if (slots[r.failure]! > 0) failures[r.name] = slots[r.failure]!;
    if (slots[r.fallback]! > 0) fallbacks[r.name] = slots[r.fallback]!;
  }
  return {
    bytes: gauge('bytes'),
    allocations: gauge('allocations'),
    frees: v('frees'),
    reserved: gauge('reserved'),
    cachedBytes: v('cachedBytes'),
    capBytes: v('capBytes'),
    upstreamAllocs: v('upstreamAllocs'),
    upstreamFrees: v('upstreamFrees'),
    upstreamSeconds: v('upstreamNanos') / 1e9,
    releasedByGc: v('releasedByGc'),
    releasedByGcBytes: v('releasedByGcBytes'),
    invalidFrees: v('invalidFrees'),
    orphanedBytes: v('orphanedBytes'),
    orphanedBlocks: v('orphanedBlocks'),
    failures,
    fallbacks,
  };
}
