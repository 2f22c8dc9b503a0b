// The thread cache in front of every chain a user allocates from (src/memory/thread-cache.ts,
// native core/handler.hpp `Route`): defaultHandler(), the controller's alloc(), a fallback or a
// limit over pools. A hit anywhere in the chain makes no native call; every handler of the chain
// reads the statistics it would read without the cache; a limit's cap holds across threads.
import { once } from 'node:events';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import {
  alloc,
  attach,
  defaultHandler,
  fallback,
  limit,
  locked,
  pageable,
  pool,
  type Handler,
  type HandlerStats,
  type HostBuffer,
  type PoolOptions,
} from 'pinpool';

import { movesBuffers } from '../../dist/src/memory/thread-cache.js';

import { collected } from '../support/collect.js';
import { nativeCalls, random } from '../support/native-calls.js';
import { expectCode } from '../support/expect-error.js';

const dist = JSON.stringify(join(__dirname, '..', '..', 'dist', 'src', 'index.js'));

/**
 * A worker that attaches `h`, allocates and frees `blocks` blocks of 4 KiB (they wait in its
 * thread cache), then idles, never calling the handler again; resolves once they are cached.
 */
async function idleWorkerCaching(h: Handler, blocks: number): Promise<Worker> {
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const { attach } = require(${dist});
     const h = attach(workerData.token);
     Array.from({ length: workerData.blocks }, () => h.alloc(4096)).forEach((b) => b.free());
     parentPort.postMessage('cached');
     setInterval(() => {}, 1000);`,
    { eval: true, workerData: { token: h.share(), blocks } },
  );
  await once(worker, 'message');
  return worker;
}

/**
 * The counts a cache must not change. What the pools hold from upstream may differ: a pool
 * over its cacheRatio gives its own blocks back at once, a thread cache's at the thread's next
 * call; so do the leaves' counts, which are the pools' traffic upstream.
 */
function counts(s: HandlerStats): number[] {
  return [
    s.bytesInUse,
    s.bytesPeak,
    s.allocatedBytes,
    s.buffersInUse,
    s.buffersPeak,
    s.allocations,
    s.frees,
    s.gcReleased,
  ];
}

/** Every adaptor of a chain (pools, fallbacks, limits), top first. */
function chainOf(h: Handler): Handler[] {
  return h.upstreams.length === 0 ? [] : [h, ...h.upstreams.flatMap(chainOf)];
}

// Each shape twice: with thread caches (the default), and with none (threadCacheBytes 0 on its
// pools, which a chain's caches follow): the two must read alike at every level.
const shapes: Record<string, (o?: PoolOptions) => Handler> = {
  'fallback(pool, pageable)': (o) => fallback(pool(pageable(), o), pageable(), { minBytes: 128 }),
  'limit(pool)': (o) => limit(pool(pageable(), o), { maxBytes: 2 ** 26 }),
  // A limit it never reaches: a block waiting in a cache holds its bytes of the limit's budget,
  // so near the cap a fallback over a limit moves on sooner with caches than without (the
  // tests of the cap below).
  'fallback(limit(pool), pool)': (o) =>
    fallback(limit(pool(pageable(), o), { maxBytes: 2 ** 26 }), pool(pageable(), o)),
  'fallback(pool(locked), fallback(pool(pageable), pageable))': (o) =>
    fallback(pool(locked(), o), fallback(pool(pageable(), o), pageable()), { maxBytes: 2 ** 20 }),
};

describe('a thread cache in front of every chain', () => {
  it.each([
    ['defaultHandler()', () => defaultHandler().alloc(4096)],
    ['the controller’s alloc()', () => alloc(4096)],
    ...Object.entries(shapes).map(([name, make]): [string, () => HostBuffer] => {
      const h = make();
      return [name, () => h.alloc(4096)];
    }),
  ])(
    movesBuffers
      ? '%s: a hit makes no native call'
      : '%s: is off without transfer() (Node 20): every call is native',
    (_, allocate) => {
      allocate().free();
      const calls = nativeCalls(() => {
        for (let i = 0; i < 1000; i++) allocate().free();
      });
      expect(calls).toEqual(movesBuffers ? { alloc: 0, free: 0 } : { alloc: 1000, free: 1000 });
    },
  );

  it.each(Object.keys(shapes))(
    '%s: every handler of the chain reads what it reads without the cache',
    (name) => {
      const make = shapes[name]!;
      const [cached, plain] = [chainOf(make()), chainOf(make({ threadCacheBytes: 0 }))];
      const sizes = [64, 100, 4096, 5000, 65536, 300_000, 1 << 20];
      const next = random(22);
      const live: [HostBuffer, HostBuffer][] = [];
      const compare = () => {
        for (const [i, h] of cached.entries())
          expect([h.name, ...counts(h.stats())]).toEqual([
            plain[i]!.name,
            ...counts(plain[i]!.stats()),
          ]);
      };
      for (let step = 0; step < 2000; step++) {
        if (live.length > 0 && (next() < 0.5 || live.length > 30)) {
          const [a, b] = live.splice(Math.floor(next() * live.length), 1)[0]!;
          a.free();
          b.free();
        } else {
          const bytes = sizes[Math.floor(next() * sizes.length)]!;
          const alignment = next() < 0.1 ? 4096 : 64;
          live.push([
            cached[0]!.alloc(bytes, { alignment }),
            plain[0]!.alloc(bytes, { alignment }),
          ]);
          const [a, b] = live.at(-1)!;
          expect(a.servedBy).toBe(b.servedBy);
        }
        if (step % 89 === 0) compare();
      }
      for (const [a, b] of live) {
        a.free();
        b.free();
      }
      compare();
      cached[0]!.trim();
      plain[0]!.trim();
      compare();
      for (const h of cached) expect(h.stats().reservedBytes).toBe(0);
    },
  );

  it.skipIf(!movesBuffers)(
    'keeps blocks of each route apart: a block the secondary’s pool served comes back from it',
    () => {
      const primary = pool(pageable(), { name: 'primary' });
      const secondary = pool(pageable(), { name: 'secondary' });
      const h = fallback(limit(primary, { maxBytes: 4096 }), secondary);
      const [a, b] = [h.alloc(4096), h.alloc(4096)];
      expect([a.servedBy, b.servedBy]).toEqual(['pageable', 'pageable']);
      const addresses = [a.address, b.address];
      a.free();
      b.free();
      for (const p of [primary, secondary]) {
        expect(p.stats().buffersInUse).toBe(0);
        expect(p.stats().cachedBytes).toBe(p.stats().reservedBytes);
      }
      const calls = nativeCalls(() => {
        const again = [h.alloc(4096), h.alloc(4096)];
        expect(again.map((x) => x.address).sort()).toEqual(addresses.sort());
        expect([primary.stats().buffersInUse, secondary.stats().buffersInUse]).toEqual([1, 1]);
        again.forEach((x) => x.free());
      });
      expect(calls).toEqual({ alloc: 0, free: 0 });
      expect(h.stats().fallbacks).toEqual({ 'out-of-memory': 1 }); // the hit is no new move
    },
  );

  it('caches nothing that no pool holds: a chain of leaves goes native every time', () => {
    const h = fallback(pageable(), pageable());
    h.alloc(4096).free();
    expect(nativeCalls(() => h.alloc(4096).free())).toEqual({ alloc: 1, free: 1 });
  });
});

describe('a limit’s cap holds with thread caches in front', () => {
  it('a block waiting in this thread’s cache still counts; a request that needs it gets it', () => {
    const inner = pool(pageable());
    const h = limit(inner, { maxBytes: 8192 });
    const [a, b] = [h.alloc(4096), h.alloc(4096)];
    a.free();
    b.free(); // both wait in this thread's cache, holding the whole budget
    expect(h.stats().bytesInUse).toBe(0);
    const big = h.alloc(8192); // needs the budget: the cache gives its blocks back, then it fits
    expect(h.stats().bytesInUse).toBe(8192);
    expectCode(() => h.alloc(64), 'ERR_PINPOOL_OUT_OF_MEMORY');
    big.free();
    // The first try of `big` was refused, and counted so, before the cache gave the budget back
    // (where blocks with their own buffers are cached: not on Node 20).
    expect(h.stats().failures).toEqual({ limit: movesBuffers ? 2 : 1 });
    expect(h.stats().allocations).toBe(3);
  });

  it.skipIf(!movesBuffers)(
    'another thread’s cache cannot take this thread past the cap; asked, it gives the budget back',
    async () => {
      const h = limit(pool(pageable()), { maxBytes: 65536 });
      const worker = await idleWorkerCaching(h, 16);
      expect(h.stats().bytesInUse).toBe(0); // the worker's 64 KiB wait in its cache
      expectCode(() => h.alloc(4096), 'ERR_PINPOOL_OUT_OF_MEMORY'); // they still hold the budget
      let got: HostBuffer | undefined;
      for (let i = 0; i < 500 && got === undefined; i++) {
        await sleep(10);
        try {
          got = h.alloc(65536);
        } catch {
          got = undefined;
        }
      }
      expect(got?.byteLength).toBe(65536); // the worker heard, and gave the whole budget back
      got?.free();
      await worker.terminate();
      const s = h.stats();
      expect([s.bytesInUse, s.buffersInUse, s.allocations, s.frees]).toEqual([0, 0, 17, 17]);
    },
  );
});

describe('a chain’s thread caches give their blocks back', () => {
  it('on trim() of the chain, and of a pool in it', () => {
    const inner = pool(pageable());
    const h = fallback(inner, pageable());
    Array.from({ length: 4 }, () => h.alloc(1 << 20)).forEach((b) => b.free());
    expect(inner.stats().cachedBytes).toBe(4 << 20);
    expect(h.trim()).toBe(4 << 20);
    expect(inner.stats().reservedBytes).toBe(0);
  });

  it('when their thread ends, counted as frees at every level', async () => {
    const inner = pool(pageable());
    const h = fallback(inner, pageable());
    const worker = await idleWorkerCaching(h, 8);
    await worker.terminate();
    for (const x of [h, inner]) {
      const s = x.stats();
      expect([s.allocations, s.frees, s.gcReleased, s.bytesInUse]).toEqual([8, 8, 0, 0]);
    }
    h.trim();
    expect(inner.stats().reservedBytes).toBe(0);
  });

  it('when a pool of the chain is trimmed in another thread, by a thread that makes no further call', async () => {
    const inner = pool(pageable());
    const h = fallback(inner, pageable());
    const worker = await idleWorkerCaching(h, 8);
    expect(inner.stats().reservedBytes).toBeGreaterThan(0);
    inner.trim();
    for (let i = 0; i < 500 && inner.stats().reservedBytes !== 0; i++) await sleep(10);
    expect([inner.stats().reservedBytes, inner.stats().cachedBytes]).toEqual([0, 0]);
    await worker.terminate();
  });

  it('when the chain’s wrapper is collected', async () => {
    const inner = pageable();
    const token = (() => {
      const h = fallback(pool(inner), pageable());
      Array.from({ length: 8 }, () => h.alloc(4096)).forEach((b) => b.free());
      return h.share();
    })();
    expect(inner.stats().bytesInUse).toBeGreaterThan(0);
    await collected(4);
    let again: Handler | undefined;
    try {
      again = attach(token);
    } catch {
      again = undefined;
    }
    again?.trim();
    expect(inner.stats().bytesInUse).toBe(0);
  });
});
