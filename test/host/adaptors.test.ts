import { describe, expect, it } from 'vitest';
import { fallback, limit, locked, pageable, pinned, pool } from 'pinpool';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('fallback', () => {
  it('routes by size: in range to the primary, others to the secondary, each fallback counted', () => {
    const h = fallback(pool(locked(), { name: 'small' }), pageable({ name: 'big' }), {
      minBytes: 16,
      maxBytes: 64 * KiB,
    });
    const small = h.alloc(4 * KiB);
    const tiny = h.alloc(8);
    const big = h.alloc(1 * MiB);
    expect(small.servedBy).toBe('locked');
    expect(tiny.servedBy).toBe('big');
    expect(big.servedBy).toBe('big');
    expect(h.stats().fallbacks).toEqual({ size: 2 });
    for (const b of [small, tiny, big]) b.free();
    expect(h.upstreams[0]!.stats().bytesInUse).toBe(0);
    expect(h.upstreams[1]!.stats().bytesInUse).toBe(0);
  });

  it('moves on when the primary is out of memory, and frees each block to the handler that served it', () => {
    const primary = limit(pageable({ name: 'first' }), { maxBytes: 10 * KiB });
    const secondary = pageable({ name: 'second' });
    const h = fallback(primary, secondary);
    const a = h.alloc(8 * KiB); // fits the limit
    const b = h.alloc(8 * KiB); // over it: the secondary serves
    expect(a.servedBy).toBe('first');
    expect(b.servedBy).toBe('second');
    expect(h.stats().fallbacks).toEqual({ 'out-of-memory': 1 });
    expect(primary.stats().failures).toEqual({ limit: 1 });
    b.free();
    a.free();
    expect(primary.stats().bytesInUse).toBe(0);
    expect(secondary.stats().bytesInUse).toBe(0);
    expect(secondary.stats().frees).toBe(1);
  });

  it('moves on when the primary is unavailable (no CUDA here), counts that once, then skips it', () => {
    const secondary = pageable();
    const h = fallback(pool(pinned()), secondary);
    for (let i = 0; i < 3; i++) h.alloc(100).free();
    // On a host without CUDA every allocation is the secondary's: one fallback says why, not one
    // per allocation (which on a CPU host would count every default allocation).
    expect(h.stats().fallbacks).toEqual({ unavailable: 1 });
    expect(secondary.stats().allocations).toBe(3);
  });

  it('propagates errors other than out-of-memory and unavailable', () => {
    const h = fallback(pageable(), pageable({ name: 'never' }));
    expect(() => h.alloc(-1)).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
    );
    expect(h.stats().fallbacks).toEqual({});
  });

  it('fails with out-of-memory when both sides fail', () => {
    const h = fallback(limit(pageable(), { maxBytes: 100 }), limit(pageable(), { maxBytes: 100 }));
    expect(() => h.alloc(1000)).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_OUT_OF_MEMORY', reason: 'limit' }),
    );
    expect(h.stats().bytesInUse).toBe(0);
  });
});

describe('limit', () => {
  it('caps bytes in use and lets them be reused after free', () => {
    const h = limit(pageable(), { maxBytes: 1 * MiB });
    const a = h.alloc(600 * KiB);
    expect(() => h.alloc(600 * KiB)).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_OUT_OF_MEMORY', reason: 'limit' }),
    );
    a.free();
    h.alloc(600 * KiB).free();
    expect(h.stats().failures).toEqual({ limit: 1 });
    expect(h.stats().bytesPeak).toBe(600 * KiB);
    expect(h.stats().capBytes).toBe(1 * MiB); // the cap itself, for "near its cap" alerts
    expect(pageable().stats().capBytes).toBe(0);
  });
});

describe('pool', () => {
  it('serves a repeated size from its cache without an upstream call', () => {
    const upstream = locked();
    const h = pool(upstream);
    h.alloc(1 * MiB).free();
    const calls = h.stats().upstreamAllocs;
    for (let i = 0; i < 100; i++) h.alloc(1 * MiB).free();
    expect(h.stats().upstreamAllocs).toBe(calls);
    expect(upstream.stats().allocations).toBe(1);
  });

  it('rounds large sizes with less than 1/8 waste, never to the next power of two', () => {
    const h = pool(pageable(), { cacheRatio: Infinity });
    for (const size of [1_100_000, 3 * MiB + 1, 33 * MiB, 65 * MiB - 7]) {
      const before = h.stats().reservedBytes;
      const b = h.alloc(size);
      const grew = h.stats().reservedBytes - before;
      expect(grew).toBeGreaterThanOrEqual(size);
      expect(grew / size).toBeLessThan(1.125);
      b.free();
    }
  });

  it('carves small blocks from slabs: many small allocations, few upstream calls', () => {
    const h = pool(pageable());
    const bufs = Array.from({ length: 1000 }, () => h.alloc(256));
    expect(h.stats().upstreamAllocs).toBeLessThanOrEqual(4);
    bufs.forEach((b) => b.free());
    expect(h.stats().cachedBytes).toBe(h.stats().reservedBytes);
  });

  it('trim() gives cached memory back upstream and keeps live blocks', () => {
    const upstream = pageable();
    const h = pool(upstream);
    const keep = h.alloc(2 * MiB);
    const small = Array.from({ length: 10 }, () => h.alloc(1000));
    h.alloc(8 * MiB).free();
    small.forEach((b) => b.free());
    const released = h.trim();
    expect(released).toBeGreaterThanOrEqual(8 * MiB);
    expect(h.stats().cachedBytes).toBe(0);
    expect(h.stats().reservedBytes).toBeGreaterThanOrEqual(2 * MiB);
    expect(upstream.stats().bytesInUse).toBe(h.stats().reservedBytes);
    keep.bytes.fill(1);
    keep.free();
    h.trim();
    expect(h.stats().reservedBytes).toBe(0);
    expect(upstream.stats().bytesInUse).toBe(0);
  });

  it('caps cached bytes: a free past maxCachedBytes goes back upstream', () => {
    const h = pool(pageable(), { maxCachedBytes: 3 * MiB });
    const a = h.alloc(2 * MiB);
    const b = h.alloc(2 * MiB);
    a.free();
    b.free();
    expect(h.stats().cachedBytes).toBeLessThanOrEqual(3 * MiB);
    expect(h.stats().upstreamFrees).toBe(1);
  });

  it('when it must grow, gives back cached blocks beyond cacheRatio of the bytes in use, oldest first', () => {
    const upstream = pageable();
    // The pool's own policy: no thread cache in front (its blocks are outside cacheRatio).
    const h = pool(upstream, { cacheRatio: 0.25, threadCacheBytes: 0 });
    const keep = h.alloc(4 * MiB); // in use: 4 MiB, so up to 1 MiB may stay cached
    const a = h.alloc(1 * MiB);
    const b = h.alloc(MiB / 2);
    a.free(); // cached first: the oldest
    b.free();
    expect(h.stats().cachedBytes).toBe(1.5 * MiB);
    h.alloc(MiB / 2).free(); // a hit: nothing given back
    expect(h.stats().upstreamFrees).toBe(0);
    const grown = h.alloc(2 * MiB); // a miss: 1.5 MiB cached > 1 MiB, so the oldest goes
    expect(h.stats().upstreamFrees).toBe(1);
    expect(h.stats().cachedBytes).toBe(MiB / 2);
    const calls = upstream.stats().allocations;
    h.alloc(MiB / 2).free(); // still cached
    expect(upstream.stats().allocations).toBe(calls);
    h.alloc(1 * MiB).free(); // given back: a new upstream allocation
    expect(upstream.stats().allocations).toBe(calls + 1);
    keep.free();
    grown.free();
  });

  it('keeps its upstream alive through the JS wrapper and the native reference', () => {
    const h = pool(pageable({ name: 'kept' }));
    expect(h.upstreams.map((u) => u.name)).toEqual(['kept']);
    expect(h.name).toBe('kept-pool');
    expect(h.kind).toBe('pool');
  });

  it('slabViews: views into shared slabs, reused after free, trimmed once idle', () => {
    const h = pool(pageable(), { slabViews: true });
    const a = h.alloc(4096);
    const b = h.alloc(4096);
    expect(a.bytes.buffer).toBe(b.bytes.buffer);
    expect(a.bytes.buffer.byteLength).toBeGreaterThan(4096);
    a.bytes.fill(1);
    b.bytes.fill(2);
    expect(a.bytes.every((x) => x === 1)).toBe(true);
    const slab = a.bytes.buffer;
    a.free();
    b.free();
    expect(h.trim()).toBeGreaterThan(0);
    expect(slab.byteLength).toBe(0); // the view of the slab is detached before the slab goes
    expect(h.stats().reservedBytes).toBe(0);
  });

  it('slabViews: a block that is in no slab of the pool gets a buffer of its own (found by the fuzzer)', () => {
    // Blocks above maxCachedBytes pass straight through; over a pool, the upstream carves them
    // from a slab of its own, which used to be taken for one of this pool's.
    for (const upstream of [pageable(), pool(pageable())]) {
      const h = pool(upstream, { slabViews: true, maxCachedBytes: 5000 });
      const small = h.alloc(1000); // in a slab of h
      const through = [4096 * 2, 65536, 65536, 200_000].map((bytes) => h.alloc(bytes));
      through.forEach((b, i) => {
        expect(b.bytes.byteOffset).toBe(0);
        expect(b.bytes.buffer.byteLength).toBe(b.byteLength); // its own buffer, not a slab
        b.bytes.fill(i + 1);
      });
      small.bytes.fill(9);
      expect(through.every((b, i) => b.bytes.every((x) => x === i + 1))).toBe(true);
      through.forEach((b) => b.free());
      small.free();
      h.trim();
      expect(h.stats().bytesInUse).toBe(0);
      expect(h.stats().reservedBytes).toBe(0);
    }
  });
});
