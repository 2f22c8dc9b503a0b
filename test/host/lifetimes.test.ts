// Memory lifetimes without a GPU (docs/decisions/0009-leases.md): every path from JavaScript to a block keeps the
// block alive and unreused while it is reachable. Copies are in test/fake-cuda/lifetimes.test.ts.
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import {
  adopt,
  attach,
  Handler,
  limit,
  pageable,
  pool,
  type BufferToken,
  type HostBuffer,
} from 'pinpool';

import { binding, constants } from '../../dist/src/boundary/native.js';
import { collected } from '../support/collect.js';
import { expectCode } from '../support/expect-error.js';

const nodeMajor = Number(process.versions.node.split('.')[0]);
const hasTransfer =
  typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer === 'function';

function fill(buf: HostBuffer | Uint8Array, seed: number): void {
  const bytes = buf instanceof Uint8Array ? buf : buf.bytes;
  for (let i = 0; i < bytes.length; i++) bytes[i] = (seed + i) & 0xff;
}

function intact(buf: HostBuffer, seed: number): boolean {
  const bytes = buf.bytes;
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== ((seed + i) & 0xff)) return false;
  return true;
}

describe('ArrayBuffers that escape their HostBuffer', () => {
  for (const method of ['transfer', 'transferToFixedLength'] as const) {
    it.skipIf(!hasTransfer)(
      `a block whose ArrayBuffer was moved by ${method}() is not reused while that ArrayBuffer lives`,
      async () => {
        const h = pool(pageable());
        const b = h.alloc(4096);
        const address = b.address;
        let moved: ArrayBuffer | undefined = (
          b.bytes.buffer as unknown as Record<typeof method, () => ArrayBuffer>
        )[method]();
        b.free();
        expect(h.stats().bytesInUse).toBe(0); // the owner's accounting ended
        const next = Array.from({ length: 4 }, () => h.alloc(4096));
        expect(next.map((n) => n.address)).not.toContain(address);
        next.forEach((n, i) => fill(n, i));
        new Uint8Array(moved).fill(0xee); // still reaches the first block, and only it
        expect(next.every((n, i) => intact(n, i))).toBe(true);
        next.forEach((n) => n.free());
        // Once no ArrayBuffer reaches it, the block comes back.
        moved = undefined;
        await collected();
        const again = Array.from({ length: 8 }, () => h.alloc(4096));
        expect(again.map((n) => n.address)).toContain(address);
        again.forEach((n) => n.free());
        expect(h.stats().bytesInUse).toBe(0);
      },
    );
  }

  it.skipIf(!hasTransfer)(
    'the garbage-collection backstop waits for an ArrayBuffer that transfer() made',
    async () => {
      const h = pool(pageable());
      let b: HostBuffer | undefined = h.alloc(4096);
      const address = b.address;
      const moved = (b.bytes.buffer as ArrayBuffer & { transfer(): ArrayBuffer }).transfer();
      b = undefined;
      await collected();
      await sleep(20);
      expect(h.stats().gcReleased).toBe(1);
      const next = Array.from({ length: 4 }, () => h.alloc(4096));
      expect(next.map((n) => n.address)).not.toContain(address);
      next.forEach((n, i) => fill(n, i));
      new Uint8Array(moved).fill(0xee);
      expect(next.every((n, i) => intact(n, i))).toBe(true);
      next.forEach((n) => n.free());
    },
  );

  it.skipIf(!hasTransfer)(
    'a transferred HostBuffer keeps the lease of an ArrayBuffer that escaped in the sending thread',
    async () => {
      const h = pool(pageable());
      const b = h.alloc(4096);
      const address = b.address;
      const moved = (b.bytes.buffer as ArrayBuffer & { transfer(): ArrayBuffer }).transfer();
      const adopted = adopt(b.transfer());
      adopted.free();
      const next = Array.from({ length: 4 }, () => h.alloc(4096));
      expect(next.map((n) => n.address)).not.toContain(address);
      new Uint8Array(moved).fill(1);
      next.forEach((n) => n.free());
    },
  );

  it(`runs where ArrayBuffer.prototype.transfer exists (Node ${nodeMajor}: ${String(hasTransfer)})`, () => {
    expect(hasTransfer).toBe(nodeMajor >= 22);
  });
});

describe('unforgeable handles and tokens', () => {
  it('a native object of another kind is refused where a handler is expected', () => {
    // A slab's lease is a real native object, of another kind than a handler.
    const slabs = pool(pageable(), { slabViews: true });
    slabs.alloc(64).free();
    const scratch = binding.scratch();
    const view = binding.viewSlab(
      slabs.handle as never,
      scratch[constants.slots.slab]!,
      scratch[constants.slots.slabBytes]!,
    );
    expect(view).not.toBeNull();
    const lease = view!.lease;
    const h = pool(pageable());
    const before = h.stats();
    for (const fake of [
      lease,
      {},
      { handle: h.handle },
      Object.create(null),
      1,
      'x',
      null,
      undefined,
    ]) {
      expectCode(() => new Handler(fake as never), 'ERR_PINPOOL_INVALID_ARGUMENT');
      expectCode(() => binding.alloc(fake as never, 64, 64, 1), 'ERR_PINPOOL_INVALID_ARGUMENT');
      expectCode(
        () => binding.stats(fake as never, new Float64Array(64)),
        'ERR_PINPOOL_INVALID_ARGUMENT',
      );
      expectCode(() => binding.trim(fake as never), 'ERR_PINPOOL_INVALID_ARGUMENT');
    }
    expect(h.stats()).toEqual(before);
  });

  it('handler methods with a wrong `this` are ERR_PINPOOL_INVALID_ARGUMENT, and a handle cannot be swapped', () => {
    const h = pool(pageable());
    const other = pool(pageable());
    for (const method of ['alloc', 'stats', 'trim', 'share'] as const) {
      expectCode(
        () =>
          (Handler.prototype[method] as (...a: unknown[]) => unknown).call(
            { handle: h.handle },
            64,
          ),
        'ERR_PINPOOL_INVALID_ARGUMENT',
      );
    }
    expect(() => {
      (h as unknown as { handle: unknown }).handle = other.handle;
    }).toThrow(TypeError);
    const b = h.alloc(100);
    b.free();
    expect(h.stats().bytesInUse).toBe(0);
    expect(other.stats().allocations).toBe(0);
  });

  it('share tokens carry a secret: guessed, altered and foreign tokens attach nothing', () => {
    const h = pool(pageable());
    const token = h.share();
    expect(token.secret).toMatch(/^[0-9a-f]{32}$/);
    expect(attach(token).stats().allocations).toBe(0);
    expectCode(() => attach({ ...token, secret: '0'.repeat(32) }), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(
      () => attach({ ...token, process: '0123456789abcdef' }),
      'ERR_PINPOOL_INVALID_ARGUMENT',
    );
    expectCode(
      () => attach({ pinpool: 'handler', version: 1, id: token.id } as never),
      'ERR_PINPOOL_INVALID_ARGUMENT',
    );
    expectCode(() => attach({ ...token, id: token.id + 1000 }), 'ERR_PINPOOL_RELEASED');
    // A token that claims slab views for a handler that is not a pool.
    const leaf = pageable();
    expectCode(() => attach({ ...leaf.share(), slabViews: true }), 'ERR_PINPOOL_INVALID_ARGUMENT');
  });

  it('buffer tokens are 128 random bits: guessed, replayed and foreign tokens adopt nothing', () => {
    const h = pool(pageable());
    const b = h.alloc(64);
    fill(b, 5);
    const token = b.transfer() as BufferToken;
    expect(token.id).toMatch(/^[0-9a-f]{32}$/);
    expectCode(
      () => adopt({ ...token, process: 'ffffffffffffffff' }),
      'ERR_PINPOOL_INVALID_ARGUMENT',
    );
    expectCode(() => adopt({ ...token, id: '0'.repeat(32) }), 'ERR_PINPOOL_RELEASED');
    expectCode(
      () => adopt({ pinpool: 'buffer', version: 1, id: 1 } as never),
      'ERR_PINPOOL_INVALID_ARGUMENT',
    );
    const mine = adopt(token);
    expect(intact(mine, 5)).toBe(true);
    expectCode(() => adopt(token), 'ERR_PINPOOL_RELEASED');
    mine.free();
    expect(h.stats().bytesInUse).toBe(0);
  });
});

describe('threads that end in the middle of a synchronous run', () => {
  const script = join(__dirname, '..', 'support', 'workers', 'sync-run-worker.cjs');
  for (const how of ['terminated', 'process.exit'] as const) {
    it(`returns every block of a worker ${how} before its tick ended, and a limit above it recovers`, async () => {
      const capped = limit(pool(pageable()), { maxBytes: 1000 * 4096 });
      const w = new Worker(script, {
        workerData: { token: capped.share(), count: 1000, exit: how === 'process.exit' },
      });
      // Listened for at once: a worker that exits right after posting has its last message
      // delivered and 'exit' emitted in one go, before an await on the message could resume.
      const exited = once(w, 'exit');
      const [msg] = (await once(w, 'message')) as [{ allocated: number }];
      expect(msg.allocated).toBe(1000);
      if (how === 'terminated') await w.terminate();
      await exited;
      for (let i = 0; i < 100 && capped.stats().bytesInUse !== 0; i++) await sleep(10);
      expect(capped.stats().bytesInUse).toBe(0);
      expect(capped.stats().buffersInUse).toBe(0);
      const b = capped.alloc(1000 * 4096); // the whole cap is usable again
      b.free();
    });
  }
});

describe('slab views released by the garbage collector', () => {
  it('lets trim() give the slab back', async () => {
    const h = pool(pageable(), { slabViews: true });
    (() => {
      for (let i = 0; i < 100; i++) h.alloc(1024).bytes.fill(1);
    })();
    await sleep(5);
    await collected();
    for (let i = 0; i < 50 && h.stats().gcReleased < 100; i++) await collected();
    expect(h.stats().gcReleased).toBe(100);
    h.trim();
    expect(h.stats().reservedBytes).toBe(0);
  });
});

describe('ArrayBuffers marked untransferable', () => {
  // markAsUntransferable() gives an ArrayBuffer a detach key on Node 24 and later, and Node-API's
  // detach then aborts the process. Run in a child process, so an abort is a failed test.
  const run = (body: string) => {
    const script = `
      const { pool, pageable } = require(${JSON.stringify(join(__dirname, '..', '..', 'dist', 'src', 'index.js'))});
      const { markAsUntransferable } = require('node:worker_threads');
      const report = (x) => console.log(JSON.stringify(x));
      (async () => { ${body} })().catch((e) => { console.log('threw', e.code, e.message); process.exit(3); });`;
    return spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' });
  };

  for (const slabViews of [false, true]) {
    it(`free() of a block whose buffer was marked (slabViews ${String(slabViews)}) does not abort, and the block waits for that buffer`, () => {
      const r = run(`
        const h = pool(pageable(), { slabViews: ${String(slabViews)} });
        let a = h.alloc(${slabViews ? 4096 : 1 << 20});
        const address = a.address;
        let kept = a.bytes;
        markAsUntransferable(kept.buffer);
        a.free();
        const reachable = kept.length > 0; // not detached (Node 20 still detaches a marked buffer)
        const next = [0, 1, 2].map(() => h.alloc(${slabViews ? 4096 : 1 << 20}));
        report({ reused: next.some((b) => b.address === address), frees: h.stats().frees, reachable });
        next.forEach((b) => b.free());
        h.trim();
        // Node 24+ aborts at exit while an external ArrayBuffer with a detach key lives (its
        // cleanup hook detaches it unchecked): let the marked buffer be collected first.
        kept = a = undefined;
        for (let i = 0; i < 3; i++) { gc(); await new Promise((r) => setImmediate(r)); }
        report({ trimmed: true });`);
      expect(r.signal, r.stderr).toBeNull();
      expect(r.status, r.stderr).toBe(0);
      const [first, second] = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { reused?: boolean; reachable?: boolean; frees?: number });
      // A slab view's memory stays the slab's (slabViews' documented trade); a block of its own
      // is not handed out while a buffer that cannot be detached still reaches it.
      if (!slabViews) expect(first?.reused && first.reachable).toBe(false);
      expect(first?.frees).toBe(1);
      expect(second).toEqual({ trimmed: true });
    });
  }

  it('transfer() to another thread of a block whose buffer was marked does not abort', () => {
    const r = run(`
      const h = pool(pageable());
      let a = h.alloc(4096);
      markAsUntransferable(a.bytes.buffer);
      const token = a.transfer();
      report({ released: a.released, id: typeof token.id });
      a = undefined;
      for (let i = 0; i < 3; i++) { gc(); await new Promise((r) => setImmediate(r)); }`);
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ released: true, id: 'string' });
  });
});
