// The shared leaf in one process (issue 24): what it serves, its statistics, its tokens, how it
// composes, and what it refuses. Across processes: shared-processes.test.ts.
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import {
  adopt,
  collectMetrics,
  createController,
  fallback,
  info,
  limit,
  pageable,
  pool,
  shared,
  sharedRegion,
  type SharedBufferToken,
} from 'pinpool';

import { collected } from '../support/collect.js';
import { expectCode } from '../support/expect-error.js';
import { regionName, removeRegions } from '../support/shared-regions.js';

afterAll(removeRegions);

const UNIT = 64 << 10;
const moves = typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer === 'function';
const MiB = 1 << 20;

describe('shared()', () => {
  it('serves page-aligned blocks of whole units, counted exactly here and in the region', () => {
    const h = shared({ region: regionName(), bytes: 4 * MiB });
    expect(h.kind).toBe('shared');
    const r = sharedRegion(h);
    expect(r).toMatchObject({ bytes: 4 * MiB, pageLocked: 'mlock' });
    expect(r.secret).toMatch(/^[0-9a-f]{32}$/);
    const a = h.alloc(1);
    const b = h.alloc(UNIT + 1);
    expect(a.kind).toBe('shared');
    expect(a.servedBy).toBe(h.name);
    expect([a.byteLength, b.byteLength]).toEqual([1, UNIT + 1]);
    b.bytes.fill(9);
    expect(h.stats()).toMatchObject({ bytesInUse: UNIT + 2, buffersInUse: 2, allocations: 2 });
    expect(sharedRegion(h).stats).toMatchObject({
      bytesInUse: 3 * UNIT,
      blocksInUse: 2,
      bytesHere: 3 * UNIT,
      blocksHere: 2,
      processes: 1,
    });
    a.free();
    b.free();
    expect(h.stats()).toMatchObject({ bytesInUse: 0, buffersInUse: 0, frees: 2, invalidFrees: 0 });
    // Freed blocks may wait in this thread's cache (Node 22 and later), still this process's in
    // the region; trim() gives them back.
    h.trim();
    expect(h.stats().cachedBytes).toBe(0);
    expect(sharedRegion(h).stats).toMatchObject({ bytesInUse: 0, blocksInUse: 0 });
  });

  it('is a host budget: full is out of memory, which a fallback or a limit composes with', () => {
    const h = shared({ region: regionName(), bytes: 2 * UNIT });
    const a = h.alloc(2 * UNIT);
    expectCode(() => h.alloc(1), 'ERR_PINPOOL_OUT_OF_MEMORY');
    const f = fallback(h, pageable());
    const spilled = f.alloc(100);
    expect(spilled.kind).toBe('pageable');
    a.free();
    const inRegion = f.alloc(100);
    expect(inRegion.kind).toBe('shared');
    const capped = limit(h, { maxBytes: 100 });
    expectCode(() => capped.alloc(101), 'ERR_PINPOOL_OUT_OF_MEMORY');
    for (const b of [spilled, inRegion]) b.free();
    expect(h.stats()).toMatchObject({ bytesInUse: 0, failures: { 'out-of-memory': 2 } });
  });

  it('refuses bad options and what it cannot serve, changing no statistics', () => {
    const region = regionName();
    const h = shared({ region, bytes: MiB });
    const { secret } = sharedRegion(h);
    const bad: [unknown, string][] = [
      [undefined, 'ERR_PINPOOL_INVALID_ARGUMENT'],
      [{ region }, 'ERR_PINPOOL_INVALID_ARGUMENT'], // neither bytes nor secret
      [{ region, bytes: MiB, secret }, 'ERR_PINPOOL_INVALID_ARGUMENT'], // both
      [{ region: '../etc', bytes: MiB }, 'ERR_PINPOOL_INVALID_ARGUMENT'],
      [{ region: '.hidden', bytes: MiB }, 'ERR_PINPOOL_INVALID_ARGUMENT'],
      [{ region: 'x'.repeat(101), bytes: MiB }, 'ERR_PINPOOL_INVALID_ARGUMENT'],
      [{ region: regionName(), bytes: 0 }, 'ERR_PINPOOL_INVALID_ARGUMENT'],
      [{ region: regionName(), bytes: -1 }, 'ERR_PINPOOL_INVALID_ARGUMENT'],
      [{ region: regionName(), secret: 'short' }, 'ERR_PINPOOL_INVALID_ARGUMENT'],
      [{ region: regionName(), bytes: MiB, pageLock: 'yes' }, 'ERR_PINPOOL_INVALID_ARGUMENT'],
      [{ region: regionName(), bytes: MiB, size: 1 }, 'ERR_PINPOOL_INVALID_ARGUMENT'],
      [{ region, bytes: MiB }, 'ERR_PINPOOL_INVALID_ARGUMENT'], // exists
      [
        { region, secret: secret.replace(/./, (c) => (c === 'a' ? 'b' : 'a')) },
        'ERR_PINPOOL_INVALID_ARGUMENT',
      ],
      [{ region: regionName(), secret }, 'ERR_PINPOOL_UNAVAILABLE'], // no such region
      [{ region: regionName(), bytes: 2 ** 44 }, 'ERR_PINPOOL_OUT_OF_MEMORY'], // no room in /dev/shm
    ];
    for (const [options, code] of bad) expectCode(() => shared(options as never), code);
    // Aligned as asked where there is room for it; a block of the whole region rarely is.
    const aligned = h.alloc(10, { alignment: 256 << 10 });
    expect(aligned.address % BigInt(256 << 10)).toBe(0n);
    aligned.free();
    h.trim();
    expectCode(() => h.alloc(2 * MiB), 'ERR_PINPOOL_OUT_OF_MEMORY');
    expect(sharedRegion(h).stats).toMatchObject({ bytesInUse: 0, processes: 1 });
    expectCode(() => sharedRegion(pageable()), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => sharedRegion({} as never), 'ERR_PINPOOL_INVALID_ARGUMENT');
  });

  it('opened again in the process, it is the same handler (one slot per process)', () => {
    const region = regionName();
    const h = shared({ region, bytes: MiB });
    expect(shared({ region, secret: sharedRegion(h).secret })).toBe(h);
    expect(sharedRegion(h).stats.processes).toBe(1);
  });

  it('pageLock false serves unlocked memory, and says so', () => {
    const h = shared({ region: regionName(), bytes: MiB, pageLock: false });
    expect(sharedRegion(h).pageLocked).toBe('off');
    h.alloc(10).free();
  });

  it.runIf(process.getuid?.() === 0 || info().lockedCap.bytes >= 8 * MiB)(
    'page-locks the region, counted against the host budget',
    () => {
      const h = shared({ region: regionName(), bytes: 4 * MiB });
      expect(sharedRegion(h).pageLocked).toBe('mlock');
      expect(h.stats().capBytes).toBe(4 * MiB);
    },
  );
});

describe('transfer() of a shared block: a token for any process', () => {
  it('adopts once, zero copy, and every altered token adopts nothing', () => {
    const h = shared({ region: regionName(), bytes: MiB });
    const b = h.alloc(3000);
    b.bytes.fill(0x5a);
    const token = b.transfer() as SharedBufferToken;
    expect(b.released).toBe(true);
    expect(token).toMatchObject({ pinpool: 'shared-buffer', version: 1, bytes: 3000 });
    expect(Object.isFrozen(token)).toBe(true);
    // Given: out of this process's counts, in flight in the region.
    expect(h.stats()).toMatchObject({ bytesInUse: 0, buffersInUse: 0, frees: 0 });
    expect(sharedRegion(h).stats).toMatchObject({ blocksInFlight: 1, givenHere: 1 });
    const before = sharedRegion(h).stats;
    const altered: [object, string][] = [
      [{ ...token, nonce: '0000000000000001' }, 'ERR_PINPOOL_RELEASED'],
      [{ ...token, unit: token.unit + 1 }, 'ERR_PINPOOL_RELEASED'],
      [{ ...token, bytes: 2 * UNIT }, 'ERR_PINPOOL_RELEASED'], // not a size of this block
      [{ ...token, bytes: -1 }, 'ERR_PINPOOL_INVALID_ARGUMENT'],
      [{ ...token, nonce: 'zz' }, 'ERR_PINPOOL_INVALID_ARGUMENT'],
      [{ ...token, version: 2 }, 'ERR_PINPOOL_INVALID_ARGUMENT'],
      [{ ...token, region: '../x' }, 'ERR_PINPOOL_INVALID_ARGUMENT'],
      [{ ...token, region: regionName() }, 'ERR_PINPOOL_UNAVAILABLE'],
      [{ ...token, pinpool: 'buffer' }, 'ERR_PINPOOL_INVALID_ARGUMENT'],
    ];
    for (const [t, code] of altered) expectCode(() => adopt(t as never), code);
    expect(sharedRegion(h).stats).toEqual(before);
    const c = adopt(token);
    expect(c.byteLength).toBe(3000);
    expect(c.bytes.every((x) => x === 0x5a)).toBe(true);
    expect(c.kind).toBe('shared');
    expectCode(() => adopt(token), 'ERR_PINPOOL_RELEASED');
    expect(h.stats()).toMatchObject({ bytesInUse: 3000, buffersInUse: 1, allocations: 2 });
    c.free();
    expect(sharedRegion(h).stats).toMatchObject({ bytesInUse: 0, blocksInFlight: 0 });
  });

  it("stays adoptable when the giver's handler is collected: the region stays open there", async () => {
    const region = regionName();
    const token = (() => {
      const h = shared({ region, bytes: MiB }); // its only reference, dropped on return
      const b = h.alloc(100);
      b.bytes[0] = 42;
      return b.transfer();
    })();
    await collected();
    const b = adopt(token);
    expect(b.bytes[0]).toBe(42);
    b.free();
  });

  it('reaches a worker thread of the same process, which frees it', async () => {
    const h = shared({ region: regionName(), bytes: MiB });
    const b = h.alloc(100);
    b.bytes[99] = 7;
    const w = new Worker(
      `const { parentPort } = require('node:worker_threads');
       const { adopt } = require('pinpool');
       parentPort.once('message', (t) => { const b = adopt(t); const v = b.bytes[99]; b.free(); parentPort.postMessage(v); });`,
      { eval: true },
    );
    w.postMessage(b.transfer());
    const [v] = (await once(w, 'message')) as [number];
    expect(v).toBe(7);
    await w.terminate();
    expect(h.stats()).toMatchObject({ bytesInUse: 0, frees: 1 });
    expect(sharedRegion(h).stats).toMatchObject({ bytesInUse: 0, blocksInFlight: 0 });
  });

  // Node 22 and later: an ArrayBuffer can move its memory into a new one (transfer()).
  it.runIf(moves)(
    'is refused while an ArrayBuffer moved out of the buffer still reaches the block',
    () => {
      const h = shared({ region: regionName(), bytes: MiB });
      const b = h.alloc(4096);
      const moved = (b.bytes.buffer as unknown as { transfer(): ArrayBuffer }).transfer();
      expectCode(() => b.transfer(), 'ERR_PINPOOL_INVALID_ARGUMENT');
      expect(b.released).toBe(false);
      expect(sharedRegion(h).stats).toMatchObject({ blocksInFlight: 0, blocksHere: 1 });
      expect(moved.byteLength).toBe(4096);
      b.free(); // waits for `moved` to be collected before the block goes back
      expect(sharedRegion(h).stats.blocksHere).toBe(1);
    },
  );

  it('a block of a chain over a shared leaf moves between threads only', () => {
    const h = pool(shared({ region: regionName(), bytes: 4 * MiB }));
    const b = h.alloc(100);
    const token = b.transfer();
    expect(token.pinpool).toBe('buffer');
    adopt(token).free();
  });
});

describe('metrics', () => {
  it('reports each region once, with what this process holds', async () => {
    const c = createController();
    const h = shared({ region: regionName(), bytes: MiB, name: 'host-pool' });
    c.register('host', h);
    const b = h.alloc(10);
    const registry = collectMetrics({ controller: c });
    const text = await registry.metrics();
    const { region } = sharedRegion(h);
    expect(text).toContain(`pinpool_shared_region_bytes{region="${region}"} ${MiB}`);
    expect(text).toContain(`pinpool_shared_region_bytes_here{region="${region}"} ${UNIT}`);
    expect(text).toContain(`pinpool_bytes_in_use{handler="host-pool",kind="shared"} 10`);
    b.free();
  });
});
