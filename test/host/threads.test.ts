import { once } from 'node:events';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { adopt, attach, locked, pageable, pool, type BufferToken } from 'pinpool';

const script = join(__dirname, '..', 'support', 'workers', 'alloc-worker.cjs');

function start(workerData: object): Worker {
  return new Worker(script, { workerData });
}

/** The worker's next message, of the shape the caller expects. */
async function next<T = unknown>(w: Worker): Promise<T> {
  const [msg] = (await once(w, 'message')) as [T];
  return msg;
}

describe('one wrapper per thread', () => {
  it('attach() in the thread that made a handler returns that handler, whatever the token claims (found by the fuzzer)', () => {
    const h = pool(pageable());
    expect(attach(h.share())).toBe(h);
    // A token that claims slab views for a pool without them: a second wrapper used to view
    // (and lease) slabs that h.trim() could not give back.
    const forged = attach({ ...h.share(), slabViews: true });
    expect(forged).toBe(h);
    forged.alloc(1000).free();
    h.trim();
    expect(h.stats().reservedBytes).toBe(0);
  });

  it("a slabViews pool's slab, viewed through the token's wrapper, is given back by the pool's trim()", () => {
    const h = pool(pageable(), { slabViews: true });
    const b = attach(h.share()).alloc(1000);
    expect(b.handler).toBe(h);
    b.free();
    h.trim();
    expect(h.stats().reservedBytes).toBe(0);
    const adopted = adopt(h.alloc(1000).transfer());
    expect(adopted.handler).toBe(h);
    adopted.free();
    h.trim();
    expect(h.stats().reservedBytes).toBe(0);
  });
});

describe('worker threads', () => {
  it('two workers allocate from one shared pool at once, patterns intact, statistics shared', async () => {
    const h = pool(locked());
    const token = h.share();
    const workers = [
      start({ token, iterations: 5000, seed: 1 }),
      start({ token, iterations: 5000, seed: 2 }),
    ];
    const results = await Promise.all(workers.map((w) => next<{ errors: number }>(w)));
    for (const r of results) expect(r.errors).toBe(0);
    const s = h.stats();
    expect(s.allocations).toBe(10_000);
    expect(s.frees).toBe(10_000);
    expect(s.bytesInUse).toBe(0);
    await Promise.all(workers.map((w) => w.terminate()));
  });

  it("attach() keeps a pool's slabViews mode", () => {
    const h = pool(locked(), { slabViews: true });
    const token = h.share();
    expect(token.slabViews).toBe(true);
    const b = attach(token).alloc(4096);
    expect(b.bytes.buffer.byteLength).toBeGreaterThan(4096); // a view into a slab
    b.free();
    expect(pool(locked()).share().slabViews).toBeUndefined();
  });

  it('attach() in this thread reaches the same native handler', () => {
    const h = pool(locked(), { name: 'shared' });
    const again = attach(h.share());
    expect(again.name).toBe('shared');
    again.alloc(100).free();
    expect(h.stats().frees).toBe(1);
  });

  it('transfer() moves a buffer to a worker, zero copy; the worker frees it to the same pool', async () => {
    const h = pool(locked(), { name: 'mover' });
    const w = start({ token: h.share(), iterations: 0, seed: 0 });
    await next(w);
    const buf = h.alloc(4);
    buf.bytes.set([0xde, 0xad, 0xbe, 0xef]);
    const view = buf.bytes;
    const token = buf.transfer();
    expect(buf.released).toBe(true);
    expect(view.length).toBe(0); // detached in the sender
    w.postMessage({ adopt: token });
    const reply = await next(w);
    expect(reply).toEqual({ adopted: 'deadbeef', servedBy: 'locked', handler: 'mover' });
    expect(h.stats().bytesInUse).toBe(0);
    expect(h.stats().frees).toBe(1);
    await w.terminate();
  });

  it('adopt() takes a buffer a worker made; it outlives the worker', async () => {
    const h = pool(locked());
    const w = start({ token: h.share(), iterations: 0, seed: 0 });
    await next(w);
    w.postMessage({ allocAndSend: true });
    const { token } = await next<{ token: BufferToken }>(w);
    await w.terminate();
    const buf = adopt(token);
    expect([...buf.bytes]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(buf.handler.name).toBe(h.name);
    buf.free();
    expect(h.stats().bytesInUse).toBe(0);
  });
});
