// The thread cache (src/memory/thread-cache.ts, native/binding/thread_cache.*): a pool hit in the same
// thread never calls into native code, and nothing else about the pool changes: statistics,
// limits, trim(), the end of a thread, a stale view.
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { attach, controller, Handler, pageable, pool, type HostBuffer } from 'pinpool';

import { movesBuffers } from '../../dist/src/memory/thread-cache.js';

import { collected } from '../support/collect.js';
import { nativeCalls, random } from '../support/native-calls.js';
import { expectCode } from '../support/expect-error.js';

const dist = JSON.stringify(join(__dirname, '..', '..', 'dist', 'src', 'index.js'));

const modes = [
  { name: 'own ArrayBuffers', slabViews: false, cached: movesBuffers },
  { name: 'slabViews', slabViews: true, cached: true },
];

describe.each(modes)('thread cache, $name', ({ slabViews, cached }) => {
  it(
    cached
      ? 'a pool hit in the same thread makes no native call'
      : 'is off without transfer() (Node 20): every call is native',
    () => {
      const h = pool(pageable(), { slabViews });
      h.alloc(4096).free();
      const calls = nativeCalls(() => {
        for (let i = 0; i < 1000; i++) h.alloc(4096).free();
      });
      expect(calls).toEqual(cached ? { alloc: 0, free: 0 } : { alloc: 1000, free: 1000 });
    },
  );

  it('a freed buffer reaches nothing, and the next owner gets the same memory with its bytes', () => {
    const h = pool(pageable(), { slabViews });
    const a = h.alloc(4096);
    a.bytes.fill(7);
    const address = a.address;
    const stale = a.bytes;
    a.free();
    if (!slabViews) expect(stale.length).toBe(0); // detached (a slab view cannot be)
    const b = h.alloc(4096);
    expect(b.address).toBe(address);
    expect(b.bytes.length).toBe(4096);
    expect(b.bytes.every((x) => x === 7)).toBe(true); // not zeroed, like Buffer.allocUnsafe
    if (!slabViews) expect(b.bytes.buffer).not.toBe(stale.buffer);
    expect(h.alloc(4096, { zero: true }).bytes.every((x) => x === 0)).toBe(true);
    b.free();
  });

  it('statistics read the same as a pool without one, peaks included', () => {
    const sizes = [64, 100, 4096, 5000, 65536, 300_000, 1 << 20];
    const withCache = pool(pageable(), { slabViews });
    const without = pool(pageable(), { slabViews, threadCacheBytes: 0 });
    const next = random(9);
    const live: [HostBuffer, HostBuffer][] = [];
    for (let step = 0; step < 3000; step++) {
      if (live.length > 0 && (next() < 0.5 || live.length > 40)) {
        const [a, b] = live.splice(Math.floor(next() * live.length), 1)[0]!;
        a.free();
        b.free();
      } else {
        const bytes = sizes[Math.floor(next() * sizes.length)]!;
        const alignment = next() < 0.1 ? 4096 : 64;
        live.push([withCache.alloc(bytes, { alignment }), without.alloc(bytes, { alignment })]);
      }
      if (step % 97 === 0 || live.length === 0) {
        const [s, t] = [withCache.stats(), without.stats()];
        expect([
          s.bytesInUse,
          s.bytesPeak,
          s.allocatedBytes,
          s.buffersInUse,
          s.buffersPeak,
          s.allocations,
          s.frees,
          s.gcReleased,
        ]).toEqual([
          t.bytesInUse,
          t.bytesPeak,
          t.allocatedBytes,
          t.buffersInUse,
          t.buffersPeak,
          t.allocations,
          t.frees,
          t.gcReleased,
        ]);
      }
    }
    for (const [a, b] of live) {
      a.free();
      b.free();
    }
    const s = withCache.stats();
    const t = without.stats();
    expect([
      s.bytesInUse,
      s.bytesPeak,
      s.allocatedBytes,
      s.buffersInUse,
      s.buffersPeak,
      s.allocations,
      s.frees,
    ]).toEqual([
      t.bytesInUse,
      t.bytesPeak,
      t.allocatedBytes,
      t.buffersInUse,
      t.buffersPeak,
      t.allocations,
      t.frees,
    ]);
    expect(s.cachedBytes).toBe(s.reservedBytes); // nothing in use: everything held is cached
    withCache.trim();
    expect([withCache.stats().cachedBytes, withCache.stats().reservedBytes]).toEqual([0, 0]);
  });

  it('a hit that raises the buffers in use past their peak, with bytes to spare, raises the peak', () => {
    const h = pool(pageable(), { slabViews });
    Array.from({ length: 3 }, () => h.alloc(64)).forEach((b) => b.free()); // 3 wait in the cache
    const kept = h.alloc(4096); // native: 1 in use
    const big = h.alloc(200_000); // native: 2 in use; the cache holds 192 bytes now
    big.free(); // the cache holds 200 192 bytes
    const hits = Array.from({ length: 3 }, () => h.alloc(64)); // 4 in use; the cache never
    // held fewer bytes than at the last native call, but fewer blocks
    expect(h.stats().buffersInUse).toBe(4);
    expect(h.stats().buffersPeak).toBe(4);
    [kept, ...hits].forEach((b) => b.free());
  });

  it('keeps at most threadCacheBytes; a free past it goes to the pool', () => {
    const h = pool(pageable(), { slabViews, threadCacheBytes: 8192 });
    const bufs = [h.alloc(4096), h.alloc(4096), h.alloc(4096)];
    const calls = nativeCalls(() => bufs.forEach((b) => b.free()));
    expect(calls.free).toBe(cached ? 1 : 3);
    expect(h.stats().frees).toBe(3);
  });

  it('counts its hits in controller.measure()', async () => {
    const h = pool(pageable(), { slabViews });
    h.alloc(4096).free();
    const m = await controller.measure(() => {
      for (let i = 0; i < 10; i++) h.alloc(4096).free();
    });
    expect([m.allocations, m.bytesAllocated, m.peakBytes]).toEqual([10, 40960, 4096]);
  });
});

describe.skipIf(!movesBuffers)('thread cache and transfer()', () => {
  const proto = ArrayBuffer.prototype as unknown as {
    transfer: (this: ArrayBuffer, n?: number) => ArrayBuffer;
  };
  const original = proto.transfer;
  afterEach(() => {
    proto.transfer = original;
  });

  it('uses transfer() as it was when pinpool loaded, not a later replacement', () => {
    const h = pool(pageable());
    let patched = 0;
    proto.transfer = function () {
      patched++;
      return new ArrayBuffer(this.byteLength); // a foreign buffer: must never become a block's
    };
    const a = h.alloc(4096);
    const address = a.address;
    a.free();
    const b = h.alloc(4096);
    expect(patched).toBe(0);
    expect(b.address).toBe(address);
    b.bytes[0] = 1;
    b.free();
  });

  it('a buffer the user moved away is not cached: its block waits until that buffer is gone', async () => {
    const h = pool(pageable());
    const a = h.alloc(4096);
    const address = a.address;
    let escaped: ArrayBuffer | undefined = original.call(a.bytes.buffer as ArrayBuffer);
    a.free();
    const next = [h.alloc(4096), h.alloc(4096)];
    expect(next.map((b) => b.address)).not.toContain(address);
    next.forEach((b) => b.free());
    expect(escaped.byteLength).toBe(4096);
    escaped = undefined;
    await collected(4);
    const again = [h.alloc(4096), h.alloc(4096), h.alloc(4096)];
    expect(again.map((b) => b.address)).toContain(address);
    again.forEach((b) => b.free());
  });
});

describe.skipIf(!movesBuffers)(
  'a buffer handed out from a thread cache, posted to another thread',
  () => {
    it('keeps its block out of use while that thread holds the memory, and returns it after', async () => {
      const h = pool(pageable());
      h.alloc(4096).free();
      const b = h.alloc(4096); // a hit: its ArrayBuffer was made by transfer(), which Node lets postMessage move
      const address = b.address;
      const worker = new Worker(
        `const { parentPort } = require('node:worker_threads');
       let kept;
       parentPort.on('message', (ab) => { kept = new Uint8Array(ab); kept[0] = 9; parentPort.postMessage(kept.length); });`,
        { eval: true },
      );
      worker.postMessage(b.bytes.buffer, [b.bytes.buffer as ArrayBuffer]);
      expect((await once(worker, 'message'))[0]).toBe(4096);
      b.free(); // its buffer is gone from this thread: the block waits for the worker's
      const next = [h.alloc(4096), h.alloc(4096), h.alloc(4096)];
      expect(next.map((n) => n.address)).not.toContain(address);
      next.forEach((n) => n.free());
      await worker.terminate();
      let back = false;
      for (let i = 0; i < 50 && !back; i++) {
        await collected();
        const again = [h.alloc(4096), h.alloc(4096), h.alloc(4096), h.alloc(4096)];
        back = again.some((n) => n.address === address);
        again.forEach((n) => n.free());
      }
      expect(back).toBe(true);
    });
  },
);

describe('one thread cache per pool per thread', () => {
  it('a second wrapper of a pool in the same thread is refused; attach() finds the one there is', () => {
    const h = pool(pageable());
    expectCode(() => new Handler(h.handle), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expect(attach(h.share())).toBe(h);
  });
});

describe('thread caches give their blocks back', () => {
  it('when the Handler wrapper is collected', async () => {
    const upstream = pageable();
    const token = (() => {
      const h = pool(upstream, { slabViews: true });
      const bufs = Array.from({ length: 8 }, () => h.alloc(4096));
      bufs.forEach((b) => b.free());
      return h.share();
    })();
    expect(upstream.stats().bytesInUse).toBe(65536);
    await collected(4);
    // The blocks went back to the pool with its wrapper's cache: the pool (alive while this
    // thread's binding remembers it) now gives the slab back; or the pool is gone with it.
    let pool2: Handler | undefined;
    try {
      pool2 = attach(token);
    } catch {
      pool2 = undefined;
    }
    pool2?.trim();
    expect(upstream.stats().bytesInUse).toBe(0);
  });

  it('when their thread ends, counted as frees, not as collected blocks', async () => {
    const h = pool(pageable(), { slabViews: true });
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const { attach } = require(${dist});
       const h = attach(workerData);
       const bufs = Array.from({ length: 8 }, () => h.alloc(4096));
       bufs.forEach((b) => b.free());
       parentPort.postMessage('cached');
       setInterval(() => {}, 1000);`,
      { eval: true, workerData: h.share() },
    );
    await once(worker, 'message');
    expect(h.stats().bytesInUse).toBe(0);
    expect(h.stats().cachedBytes).toBe(h.stats().reservedBytes);
    const held = h.stats().reservedBytes;
    await worker.terminate();
    const s = h.stats();
    expect([s.allocations, s.frees, s.gcReleased, s.bytesInUse]).toEqual([8, 8, 0, 0]);
    expect(h.trim()).toBe(held);
  });

  it('when the pool is trimmed in another thread, even by a thread that makes no further call', async () => {
    const h = pool(pageable(), { slabViews: true });
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const { attach } = require(${dist});
       const h = attach(workerData);
       Array.from({ length: 8 }, () => h.alloc(4096)).forEach((b) => b.free());
       parentPort.postMessage('cached');
       setInterval(() => {}, 1000); // idle: never calls the pool again`,
      { eval: true, workerData: h.share() },
    );
    await once(worker, 'message');
    const slab = h.stats().reservedBytes;
    expect(slab).toBeGreaterThan(0);
    expect(h.stats().cachedBytes).toBe(slab);
    h.trim(); // the worker's cache holds the slab's blocks: it hears of the trim and finishes it
    for (let i = 0; i < 500 && h.stats().reservedBytes !== 0; i++) await sleep(10);
    expect(h.stats().reservedBytes).toBe(0);
    expect(h.stats().cachedBytes).toBe(0);
    expect(h.stats().upstreamFrees).toBe(1);
    await worker.terminate();
  });

  it('when the pool must grow past cacheRatio: the pool asks, the thread gives them back at its next call', () => {
    const MiB = 2 ** 20;
    const h = pool(pageable(), { cacheRatio: 0.25, slabViews: true }); // slab views: cached on Node 20 too
    const keep = h.alloc(4 * MiB); // in use 4 MiB: up to 1 MiB may stay cached
    const small = Array.from({ length: 6 }, () => h.alloc(200_000)); // slab classes
    small.forEach((b) => b.free()); // into the thread cache: 1.2 MB, over the budget
    expect(h.stats().upstreamFrees).toBe(0);
    const grown = h.alloc(2 * MiB); // a miss: the pool is over budget with the thread's blocks
    h.alloc(64).free(); // the thread's next call gives its blocks back to the pool
    // So the next 200 000-byte block comes from the pool (a native call), not the thread.
    expect(nativeCalls(() => h.alloc(200_000).free()).alloc).toBe(1);
    expect(h.stats().cachedBytes).toBe(h.stats().reservedBytes - 6 * MiB); // all but the two in use
    keep.free();
    grown.free();
  });

  it('on trim() in their own thread', () => {
    const h: Handler = pool(pageable());
    Array.from({ length: 4 }, () => h.alloc(1 << 20)).forEach((b) => b.free());
    expect(h.stats().cachedBytes).toBe(4 << 20);
    expect(h.trim()).toBe(4 << 20);
    expect(h.stats().reservedBytes).toBe(0);
  });
});
