// The garbage-collection backstop (run with --expose-gc, see vitest.config.mts).
import { setImmediate as tick } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { locked, pageable, pool, type Handler } from 'pinpool';

declare const gc: () => void;

async function collectUntil(done: () => boolean): Promise<void> {
  for (let i = 0; i < 50 && !done(); i++) {
    gc();
    await tick();
    await new Promise((r) => setTimeout(r, 10));
  }
}

function dropSome(h: Handler, count: number, bytes: number): void {
  for (let i = 0; i < count; i++) h.alloc(bytes).bytes.fill(i);
}

describe('GC backstop', () => {
  it('returns a dropped buffer to its pool after garbage collection, counted as gcReleased', async () => {
    const h = pool(locked());
    dropSome(h, 10, 4096);
    await tick(); // past the end of the tick: the survivors get registered
    await collectUntil(() => h.stats().gcReleased === 10);
    const s = h.stats();
    expect(s.gcReleased).toBe(10);
    expect(s.gcReleasedBytes).toBe(10 * 4096);
    expect(s.bytesInUse).toBe(0);
  });

  it('keeps a block while any view of it is reachable', async () => {
    const h = pool(pageable());
    const views = [h.alloc(4096).bytes.subarray(10, 20)];
    views[0]!.fill(5);
    await tick();
    for (let i = 0; i < 3; i++) {
      gc();
      await tick();
    }
    expect(h.stats().gcReleased).toBe(0);
    expect(h.stats().bytesInUse).toBe(4096);
    expect(views[0]![9]).toBe(5);
    views.pop();
    await collectUntil(() => h.stats().gcReleased === 1);
    expect(h.stats().bytesInUse).toBe(0);
  });

  it('never frees a buffer twice: free() before collection wins', async () => {
    const h = pool(pageable());
    const keep = Array.from({ length: 5 }, () => h.alloc(1000));
    await tick(); // registered now
    keep.forEach((b) => b.free());
    keep.length = 0;
    for (let i = 0; i < 5; i++) {
      gc();
      await tick();
    }
    expect(h.stats().gcReleased).toBe(0);
    expect(h.stats().frees).toBe(5);
  });

  it('keeps the handler alive while its buffers live, even when its JS object is dropped', async () => {
    let h: Handler | undefined = pool(pageable());
    const buf = h.alloc(64);
    const statsOf = buf.handler;
    h = undefined;
    gc();
    await tick();
    buf.bytes.fill(3);
    expect(buf.bytes[63]).toBe(3);
    buf.free();
    expect(statsOf.stats().bytesInUse).toBe(0);
  });

  it('a pool dropped and collected gives its memory back upstream then, not after four other handlers passed', async () => {
    const leaf = pageable();
    // No thread cache: where buffers move (Node 22+) it may keep the freed block, and with it
    // the pool, until the cache itself is collected, which this test is not about.
    let h: Handler | undefined = pool(leaf, { threadCacheBytes: 0 });
    h.alloc(1 << 20).free();
    expect(leaf.stats().bytesInUse).toBe(1 << 20); // cached by the pool
    h = undefined;
    await collectUntil(() => leaf.stats().bytesInUse === 0);
    expect(leaf.stats().bytesInUse).toBe(0);
  });
});
