/**
 * Growth (docs/decisions/0017-growth-off-critical-path.md): page-locking in chunks, huge pages
 * with their fallback counted, reservations (reserve(), initialBytes) with the miss that waits
 * for one, trim() keeping them, refusals that leave nothing half-grown, and the NUMA seam.
 * The kernel's side is played by the binding's kernel double (native/support/kernel.hpp) where
 * this machine cannot show it: one NUMA node, huge pages on or off.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { limit, locked, pageable, pool, type Handler } from 'pinpool';

import { expectCode, expectRejection } from '../support/expect-error.js';
import { testing } from '../support/testing.js';

const MiB = 1024 * 1024;
const root = join(__dirname, '..', '..');

afterEach(() => {
  testing().kernel('real');
});

/** Every field that says what a pool holds and hands out. */
function holding(h: Handler) {
  const s = h.stats();
  return {
    bytesInUse: s.bytesInUse,
    reservedBytes: s.reservedBytes,
    cachedBytes: s.cachedBytes,
    reservationBytes: s.reservationBytes,
  };
}

describe('locked(): page-locking in chunks', () => {
  it('locks a block with calls of at most chunkBytes each, in order', () => {
    testing().kernel('double', {});
    const h = locked({ chunkBytes: 1 * MiB });
    const b = h.alloc(8 * MiB + 4096);
    const calls = testing().kernel('calls');
    expect(calls.locks).toBe(9);
    expect(calls.largestLock).toBe(1 * MiB);
    b.bytes.fill(7);
    expect(b.bytes[8 * MiB + 4095]).toBe(7);
    b.free();
  });

  it('unlocks what it locked when a chunk is refused, and fails coded with nothing held', () => {
    testing().kernel('double', { lockFailsAt: 3 });
    const h = locked({ chunkBytes: 1 * MiB });
    const before = h.stats();
    const err = expectCode(() => h.alloc(4 * MiB), 'ERR_PINPOOL_OUT_OF_MEMORY');
    expect(err.reason).toBe('mlock');
    expect(testing().kernel('calls')).toMatchObject({ locks: 3, unlocks: 1 });
    const after = h.stats();
    expect(after.bytesInUse).toBe(before.bytesInUse);
    expect(after.failures).toEqual({ mlock: 1 });
    // The budget went back too: the same request fits once the kernel agrees.
    testing().kernel('real');
    h.alloc(4 * MiB).free();
  });

  it('rejects chunkBytes that are not whole pages, and growth options of the wrong type', () => {
    for (const bad of [0, 1000, 4097, -4096, 1.5, '4096', 2 ** 41])
      expectCode(() => locked({ chunkBytes: bad as number }), 'ERR_PINPOOL_INVALID_ARGUMENT');
    for (const bad of [-1, 1.5, 1025, '2'])
      expectCode(() => locked({ touchThreads: bad as number }), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(
      () => locked({ hugePages: 1 as unknown as boolean }),
      'ERR_PINPOOL_INVALID_ARGUMENT',
    );
    for (const bad of [-2, 1.5, 1024, '0'])
      expectCode(() => locked({ numaNode: bad as number }), 'ERR_PINPOOL_INVALID_ARGUMENT');
  });
});

describe('locked(): huge pages', () => {
  it('asks for huge pages on mappings of 2 MiB or more, not below', () => {
    testing().kernel('double', {});
    const h = locked();
    h.alloc(1 * MiB).free();
    expect(testing().kernel('calls').advise).toBe(0);
    h.alloc(4 * MiB).free();
    expect(testing().kernel('calls').advise).toBe(1);
    expect(h.stats().hugePageFallbacks).toBe(0);
  });

  it('counts a fallback to 4 KiB pages where the kernel offers no huge pages, and still serves', () => {
    testing().kernel('double', { hugePages: false });
    const h = locked();
    const b = h.alloc(4 * MiB);
    b.bytes.fill(1);
    b.free();
    expect(h.stats().hugePageFallbacks).toBe(1);
    // Not asked, not counted.
    const plain = locked({ hugePages: false });
    plain.alloc(4 * MiB).free();
    expect(plain.stats().hugePageFallbacks).toBe(0);
  });

  it('faults pages in inside the kernel, and by writing each page where the kernel cannot', () => {
    testing().kernel('double', {});
    const h = locked({ touchThreads: 2 });
    const a = h.alloc(32 * MiB);
    expect(testing().kernel('calls').populates).toBe(2); // one per thread
    testing().kernel('double', { populateRefused: true });
    const b = h.alloc(32 * MiB);
    expect(testing().kernel('calls').populates).toBe(2);
    for (const buf of [a, b]) {
      buf.bytes.fill(5);
      expect(buf.bytes[32 * MiB - 1]).toBe(5);
      buf.free();
    }
  });

  it('fails coded, holding nothing, when the kernel has not the memory to fault the pages in', () => {
    testing().kernel('double', { populateNoMemory: true });
    const h = locked({ touchThreads: 2 });
    for (const bytes of [4 * MiB, 32 * MiB]) {
      const err = expectCode(() => h.alloc(bytes), 'ERR_PINPOOL_OUT_OF_MEMORY');
      expect(err.reason).toBe('mmap');
    }
    expect(testing().kernel('calls').locks).toBe(0); // nothing was locked
    expect(h.stats().bytesInUse).toBe(0);
    testing().kernel('real');
    h.alloc(32 * MiB).free(); // the page-lock budget went back
  });

  it('serves every byte of a block touched by several threads', () => {
    const h = locked({ touchThreads: 4 });
    const b = h.alloc(48 * MiB);
    const words = new Uint32Array(b.bytes.buffer, b.bytes.byteOffset, b.byteLength / 4);
    for (let i = 0; i < words.length; i += 1024) words[i] = i;
    for (let i = 0; i < words.length; i += 1024) expect(words[i]).toBe(i);
    b.free();
  });
});

describe('pool.reserve()', () => {
  it('grows the pool by whole chunks off the JavaScript thread; misses then carve from them', async () => {
    const h = pool(locked(), { chunkBytes: 4 * MiB });
    expect(await h.reserve(6 * MiB)).toBe(8 * MiB);
    expect(holding(h)).toEqual({
      bytesInUse: 0,
      reservedBytes: 8 * MiB,
      cachedBytes: 8 * MiB,
      reservationBytes: 8 * MiB,
    });
    expect(h.stats().upstreamAllocs).toBe(2);
    // Each chunk's growth is timed into the histogram.
    const { growthSeconds, growthSecondsSum } = h.stats();
    expect(growthSeconds.at(-1)).toEqual({ le: Infinity, count: 2 });
    expect(growthSecondsSum).toBeGreaterThan(0);
    const big = h.alloc(3 * MiB);
    const small = h.alloc(1000);
    expect(big.servedBy).toBe('locked');
    big.bytes.fill(9);
    small.bytes.fill(8);
    expect(h.stats().upstreamAllocs).toBe(2); // no growth: both came from the reservation
    big.free();
    small.free();
  });

  it('a miss that arrives while a reservation is under way waits for it: the pool grows once', async () => {
    const h = pool(locked(), { chunkBytes: 32 * MiB });
    const grown = h.reserve(32 * MiB);
    const b = h.alloc(8 * MiB); // before the chunk lands: waits natively for it
    expect(h.stats().upstreamAllocs).toBe(1);
    expect(h.stats().reservedBytes).toBe(32 * MiB);
    await grown;
    expect(h.stats().upstreamAllocs).toBe(1);
    b.free();
  });

  it('initialBytes reserves at creation; reserve() with no argument waits and gives the total', async () => {
    const h = pool(locked(), { initialBytes: 5 * MiB, chunkBytes: 2 * MiB });
    expect(await h.reserve()).toBe(6 * MiB);
    expect(h.stats().reservationBytes).toBe(6 * MiB);
    // Nothing under way: resolves at once with what is there.
    expect(await h.reserve(0)).toBe(6 * MiB);
  });

  it('trim() keeps the reservation; trim({ reservation: true }) gives back the chunks that hold no block', async () => {
    const h = pool(locked(), { chunkBytes: 4 * MiB });
    await h.reserve(8 * MiB);
    const kept = h.alloc(3 * MiB); // carved from one chunk
    h.alloc(2 * MiB).free(); // cached
    h.trim();
    expect(h.stats().reservationBytes).toBe(8 * MiB);
    expect(h.stats().reservedBytes).toBe(8 * MiB);
    expect(h.trim({ reservation: true })).toBe(4 * MiB);
    expect(holding(h)).toEqual({
      bytesInUse: 3 * MiB,
      reservedBytes: 4 * MiB,
      cachedBytes: 1 * MiB,
      reservationBytes: 4 * MiB,
    });
    kept.free();
    expect(h.trim({ reservation: true })).toBe(4 * MiB);
    expect(holding(h)).toEqual({
      bytesInUse: 0,
      reservedBytes: 0,
      cachedBytes: 0,
      reservationBytes: 0,
    });
  });

  it('blocks larger than a chunk are never carved: they grow the pool as before', async () => {
    const h = pool(locked(), { chunkBytes: 2 * MiB });
    await h.reserve(4 * MiB);
    const b = h.alloc(3 * MiB);
    expect(h.stats().upstreamAllocs).toBe(3);
    expect(h.stats().cachedBytes).toBe(4 * MiB);
    b.free();
  });

  it('a reservation a limit refuses rejects coded, and leaves the pool and the limit as they were', async () => {
    const capped = limit(locked(), { maxBytes: 10 * MiB });
    const h = pool(capped, { chunkBytes: 4 * MiB });
    const err = await expectRejection(h.reserve(16 * MiB), 'ERR_PINPOOL_OUT_OF_MEMORY');
    expect(err.reason).toBe('limit');
    expect(err.message).toContain(String(10 * MiB));
    expect(holding(h)).toEqual({
      bytesInUse: 0,
      reservedBytes: 0,
      cachedBytes: 0,
      reservationBytes: 0,
    });
    expect(capped.stats().bytesInUse).toBe(0);
    // reserve() reports the failure once, then forgets it.
    await expectRejection(h.reserve(), 'ERR_PINPOOL_OUT_OF_MEMORY');
    expect(await h.reserve()).toBe(0);
    // What fits is reserved.
    expect(await h.reserve(8 * MiB)).toBe(8 * MiB);
  });

  it('a reservation past the page-lock cap, or refused by the kernel, leaves nothing half-grown', async () => {
    const leaf = locked({ maxBytes: 6 * MiB });
    const h = pool(leaf, { chunkBytes: 2 * MiB });
    const err = await expectRejection(h.reserve(8 * MiB), 'ERR_PINPOOL_OUT_OF_MEMORY');
    expect(err.reason).toBe('mlock');
    expect(holding(h).reservedBytes).toBe(0);
    expect(leaf.stats().bytesInUse).toBe(0);

    testing().kernel('double', { lockFailsAt: 2 });
    const other = pool(locked(), { chunkBytes: 2 * MiB });
    await expectRejection(other.reserve(6 * MiB), 'ERR_PINPOOL_OUT_OF_MEMORY');
    expect(holding(other)).toEqual({
      bytesInUse: 0,
      reservedBytes: 0,
      cachedBytes: 0,
      reservationBytes: 0,
    });
  });

  it('reserve() with no argument waits for the reservations under way, and reports a failure once', async () => {
    const h = pool(limit(locked(), { maxBytes: 6 * MiB }), { chunkBytes: 2 * MiB });
    expect(await h.reserve(4 * MiB)).toBe(4 * MiB);
    const refused = h.reserve(8 * MiB); // under way: only 2 MiB more fit
    const all = h.reserve();
    await expectRejection(refused, 'ERR_PINPOOL_OUT_OF_MEMORY');
    await expectRejection(all, 'ERR_PINPOOL_OUT_OF_MEMORY');
    expect(await h.reserve()).toBe(4 * MiB); // reported, then forgotten; the refused one left nothing
  });

  it('trim({ reservation: true }) keeps the chunks of a reservation still under way', async () => {
    const h = pool(locked(), { chunkBytes: 2 * MiB });
    const grown = h.reserve(16 * MiB);
    h.trim({ reservation: true });
    expect(await grown).toBe(16 * MiB);
    expect(h.stats().reservationBytes).toBe(16 * MiB);
    expect(h.trim({ reservation: true })).toBe(16 * MiB);
  });

  it('a reservation never waits for a thread libuv runs other work on (one thread, pools over pools)', () => {
    // With libuv's pool at one thread, busy with other work: a reservation queued there would
    // hold up the miss that waits for it, and a pool's reservation that misses in the pool
    // below it would wait for that pool's reservation queued behind itself, for good.
    const script = `
      const { pool, locked } = require(${JSON.stringify(join(root, 'dist', 'src', 'index.js'))});
      const { pbkdf2 } = require('node:crypto');
      const MiB = 2 ** 20;
      pbkdf2('x', 'y', 2e5, 64, 'sha512', () => {}); // holds libuv's only thread a while
      const below = pool(locked(), { chunkBytes: 8 * MiB });
      const above = pool(below, { chunkBytes: 4 * MiB });
      const both = Promise.all([above.reserve(8 * MiB), below.reserve(8 * MiB)]);
      const b = below.alloc(MiB); // waits for below's reservation, not for the pbkdf2
      b.free();
      both.then(([a, c]) => { console.log('grown', a, c, below.stats().upstreamAllocs); });
    `;
    const out = execFileSync(process.execPath, ['-e', script], {
      env: { ...process.env, UV_THREADPOOL_SIZE: '1' },
      encoding: 'utf8',
      timeout: 120_000, // a hang guard only: the run takes a second
    });
    expect(out.trim()).toMatch(/^grown 8388608 8388608 \d+$/);
  });

  it('refuses bad input coded, changing nothing', async () => {
    const h = pool(pageable());
    for (const bad of [-1, 1.5, NaN, '1', null, 2 ** 53])
      await expectRejection(h.reserve(bad as number), 'ERR_PINPOOL_INVALID_ARGUMENT');
    await expectRejection(pageable().reserve(MiB), 'ERR_PINPOOL_INVALID_ARGUMENT');
    await expectRejection(reserveOn({}), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => pageable().trim({ reservation: true }), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(
      () => h.trim({ reservation: 1 as unknown as boolean }),
      'ERR_PINPOOL_INVALID_ARGUMENT',
    );
    for (const bad of [-1, 1.5, '1'])
      expectCode(
        () => pool(pageable(), { initialBytes: bad as number }),
        'ERR_PINPOOL_INVALID_ARGUMENT',
      );
    for (const bad of [MiB, 2 * MiB + 1, 3 * MiB + 4096 / 2])
      expectCode(() => pool(pageable(), { chunkBytes: bad }), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expect(holding(h)).toEqual({
      bytesInUse: 0,
      reservedBytes: 0,
      cachedBytes: 0,
      reservationBytes: 0,
    });
  });
});

/** reserve() called on a value that is not a handler. */
function reserveOn(value: object): Promise<number> {
  return Reflect.apply(pool(pageable()).reserve, value, []);
}

describe('NUMA (through the kernel double)', () => {
  it('binds a locked leaf with numaNode to that node before the touch, and reports pages found elsewhere', () => {
    testing().kernel('double', { nodes: 2 });
    const h = locked({ numaNode: 1 });
    h.alloc(4 * MiB).free();
    expect(testing().kernel('calls')).toMatchObject({ prefer: 1, preferNode: 1, nodesOf: 1 });
    expect(h.stats().offNodeBytes).toBe(0);

    testing().kernel('double', { nodes: 2, placeOn: 0 });
    h.alloc(4 * MiB).free();
    expect(h.stats().offNodeBytes).toBe(4 * MiB);
  });

  it('binds nothing without numaNode, and refuses a node the machine does not have', () => {
    testing().kernel('double', { nodes: 2 });
    locked()
      .alloc(4 * MiB)
      .free();
    expect(testing().kernel('calls').prefer).toBe(0);
    const err = expectCode(() => locked({ numaNode: 2 }), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expect(err.message).toContain('2 NUMA node');
  });

  it('never hands a block of one node to a pool of another', () => {
    testing().kernel('double', { nodes: 2 });
    const near = pool(locked({ numaNode: 0, name: 'node0' }));
    const far = pool(locked({ numaNode: 1, name: 'node1' }));
    for (let i = 0; i < 4; i++) {
      const a = near.alloc(4 * MiB);
      const b = far.alloc(4 * MiB);
      expect([a.servedBy, b.servedBy]).toEqual(['node0', 'node1']);
      a.free();
      b.free();
    }
    expect(near.stats().upstreamAllocs + far.stats().upstreamAllocs).toBe(2);
  });
});
