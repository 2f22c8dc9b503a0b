// Another native addon built on pinpool's C API (test/doubles/native-addon/): it takes a pool from
// JavaScript with handler.nativeHandle(), allocates from two native threads and frees each
// block on the other; pinpool's statistics and metrics count what it did.
import diagnostics_channel from 'node:diagnostics_channel';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  collectMetrics,
  createController,
  fallback,
  info,
  locked,
  pageable,
  pool,
  type PinpoolNativeHandle,
} from 'pinpool';

import { binding } from '../../dist/src/boundary/native.js';

interface Stats {
  allocations: number;
  buffersInUse: number;
  bytesInUse: number;
  frees: number;
  invalidFrees: number;
}
const addon = createRequire(__filename)(
  join(__dirname, '..', '..', 'build', 'native-addon', 'example_addon.node'),
) as {
  exchange(
    handle: PinpoolNativeHandle,
    blocks: number,
    bytes: number,
  ): {
    allocated: number;
    freed: number;
    failures: number;
    badPatterns: number;
    threads: number;
    stats: Stats;
  };
  ownChain(handle: PinpoolNativeHandle): {
    version: string;
    abiVersion: number;
    id: number;
    trimmed: number;
    pool: Stats;
  };
  isHandle(value: unknown): boolean;
  freeBlock(handle: PinpoolNativeHandle, address: bigint, bytes: number, alignment: number): void;
  fallbackOnce(handle: PinpoolNativeHandle, name: string): void;
};

describe('a native addon on the C API', () => {
  it('allocates from two threads, frees on the other, and the pool counts it in stats() and metrics', async () => {
    const h = pool(pageable(), { name: 'addon-shared' });
    const result = addon.exchange(h.nativeHandle(), 500, 3000);
    expect(result).toMatchObject({
      allocated: 1000,
      freed: 1000,
      failures: 0,
      badPatterns: 0,
      threads: 2,
    });
    // What the addon read through the C API is what JavaScript reads.
    expect(result.stats).toEqual({
      allocations: 1000,
      buffersInUse: 0,
      bytesInUse: 0,
      frees: 1000,
      invalidFrees: 0,
    });
    const s = h.stats();
    expect(s.allocations).toBe(1000);
    expect(s.frees).toBe(1000);
    expect(s.bytesInUse).toBe(0);
    expect(s.cachedBytes).toBeGreaterThan(0); // the pool kept the blocks for reuse
    const c = createController();
    c.register('addon', h);
    const text = await collectMetrics({ controller: c }).metrics();
    expect(text).toContain('pinpool_allocations_total{handler="addon-shared",kind="pool"} 1000');
    expect(text).toContain('pinpool_frees_total{handler="addon-shared",kind="pool"} 1000');
  });

  it('makes a leaf and a pool of its own through the table, reads and trims them', () => {
    const h = pool(pageable());
    const out = addon.ownChain(h.nativeHandle());
    expect(out.version).toBe(info().version);
    expect(out.abiVersion).toBe(info().abiVersion);
    expect(out.id).toBe((h as unknown as { id: number }).id);
    expect(out.trimmed).toBeGreaterThan(0); // the freed block went back upstream
    expect(out.pool).toEqual({
      allocations: 1,
      buffersInUse: 0,
      bytesInUse: 0,
      frees: 1,
      invalidFrees: 0,
    });
  });

  it('the handle keeps the handler alive while the addon uses it, and nothing else passes for one', () => {
    const handle = pool(pageable()).nativeHandle(); // the Handler itself may be collected
    globalThis.gc?.();
    expect(addon.exchange(handle, 10, 64)).toMatchObject({ allocated: 20, freed: 20, failures: 0 });
    for (const value of [undefined, null, {}, 1, 'handle', pageable(), Object.create(null)]) {
      expect(addon.isHandle(value)).toBe(false);
      expect(() => addon.exchange(value as PinpoolNativeHandle, 1, 1)).toThrow(
        /not a pinpool native handle/,
      );
    }
    expect(addon.isHandle(handle)).toBe(true);
    // ... and a native handle passes for no handler inside pinpool: its type tag is another.
    expect(() => pool(handle as never)).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
    );
    expect(() => binding.trim(handle as never)).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
    );
  });

  it("a block JavaScript holds is not the addon's to free: refused, counted, never handed out again", () => {
    for (const h of [
      pool(pageable(), { name: 'held-pool' }),
      pageable({ name: 'held-leaf' }),
      locked(),
    ]) {
      const buf = h.alloc(4096);
      buf.bytes.fill(7);
      addon.freeBlock(h.nativeHandle(), buf.address, 4096, 64);
      expect(h.stats()).toMatchObject({ invalidFrees: 1, frees: 0, buffersInUse: 1 });
      const other = h.alloc(4096); // the held block is still in use: never this one
      expect(other.address).not.toBe(buf.address);
      expect(buf.bytes.every((b) => b === 7)).toBe(true);
      other.free();
      buf.free(); // JavaScript's own free still works, and counts once
      expect(h.stats()).toMatchObject({ invalidFrees: 1, frees: 2, buffersInUse: 0 });
    }
  });

  it("nor is a block waiting in a thread cache, or a slab view's block", () => {
    for (const h of [
      pool(pageable(), { name: 'cached-pool' }),
      pool(pageable(), { name: 'slab-pool', slabViews: true }),
    ]) {
      const buf = h.alloc(4096);
      const address = buf.address;
      buf.free(); // waits in this thread's cache (where transfer() or slab views allow), still held
      addon.freeBlock(h.nativeHandle(), address, 4096, 64);
      expect(h.stats()).toMatchObject({ invalidFrees: 1, frees: 1, buffersInUse: 0 });
      const again = h.alloc(4096);
      again.bytes.fill(3);
      const other = h.alloc(4096); // the refused block was not given out twice
      expect(other.address).not.toBe(again.address);
      other.free();
      again.free();
      h.trim();
      expect(h.stats()).toMatchObject({ invalidFrees: 1, frees: 3, buffersInUse: 0 });
    }
  });

  it("a block an adaptor took from its upstream is not the addon's to free through the upstream", () => {
    const leaf = pageable({ name: 'under-fallback' });
    const f = fallback(leaf, pageable(), { name: 'over-leaf' });
    const buf = f.alloc(4096); // the leaf's block, held by the fallback (and by JavaScript)
    buf.bytes.fill(9);
    addon.freeBlock(leaf.nativeHandle(), buf.address, 4096, 64);
    expect(leaf.stats()).toMatchObject({ invalidFrees: 1, frees: 0, buffersInUse: 1 });
    const other = leaf.alloc(4096);
    expect(other.address).not.toBe(buf.address);
    expect(buf.bytes.every((b) => b === 9)).toBe(true);
    other.free();
    buf.free();
    expect(leaf.stats()).toMatchObject({ invalidFrees: 1, frees: 2, buffersInUse: 0 });
  });

  it("an addon's fallbacks on this thread never show as a later JavaScript allocation's", () => {
    const fallbacks: unknown[] = [];
    const listen = (message: unknown) => fallbacks.push(message);
    diagnostics_channel.subscribe('pinpool:fallback', listen);
    try {
      const h = pageable({ name: 'after-addon' });
      h.alloc(8).free(); // the fallback log is on from here
      addon.fallbackOnce(h.nativeHandle(), 'addon-fallback-'.padEnd(120, 'x'));
      // Overwrite the heap where the addon's names were.
      const junk = Array.from({ length: 200 }, () => 'Z'.repeat(120));
      h.alloc(8).free(); // a leaf: no fallback at all
      expect(junk.length).toBe(200);
      expect(fallbacks).toEqual([]);
    } finally {
      diagnostics_channel.unsubscribe('pinpool:fallback', listen);
    }
  });
});
