/**
 * Handler statistics, as the native snapshot (native/core/stats.hpp, declared once there)
 * reports them. Bytes are in bytes, times in seconds.
 */

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
  /** Pools: allocation and free calls made to the upstream. */
  upstreamAllocs: number;
  upstreamFrees: number;
  /** Pools: time spent in upstream calls, in seconds. */
  upstreamSeconds: number;
  /** Blocks (and their bytes) returned by the garbage-collection backstop, not by free(). */
  releasedByGc: number;
  releasedByGcBytes: number;
  /** Failed allocations by reason ('out-of-memory', 'mlock', 'limit', 'no-cuda' ...). */
  failures: Record<string, number>;
  /** Fallbacks: moves to the secondary handler by reason ('size', 'unavailable', 'out-of-memory'). */
  fallbacks: Record<string, number>;
}

function gauge(raw: Record<string, unknown>, name: string): Gauge {
  return {
    current: raw[`${name}Current`] as number,
    peak: raw[`${name}Peak`] as number,
    total: raw[`${name}Total`] as number,
  };
}

/** @internal */
export function toStats(raw: Record<string, unknown>): HandlerStats {
  return {
    bytes: gauge(raw, 'bytes'),
    allocations: gauge(raw, 'allocations'),
    frees: raw.frees as number,
    reserved: gauge(raw, 'reserved'),
    cachedBytes: raw.cachedBytes as number,
    upstreamAllocs: raw.upstreamAllocs as number,
    upstreamFrees: raw.upstreamFrees as number,
    upstreamSeconds: (raw.upstreamNanos as number) / 1e9,
    releasedByGc: raw.releasedByGc as number,
    releasedByGcBytes: raw.releasedByGcBytes as number,
    failures: raw.failures as Record<string, number>,
    fallbacks: raw.fallbacks as Record<string, number>,
  };
}
