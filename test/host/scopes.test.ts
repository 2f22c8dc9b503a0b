// Named scopes (the named-scopes issue, first slice): a scope name bound to a registered
// handler, switched at run time; run() and route configs resolve it when they are entered.
import { once } from 'node:events';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import {
  adopt,
  collectMetrics,
  createController,
  pageable,
  pool,
  type BufferToken,
  type SharedBufferToken,
  type Controller,
  type HostBuffer,
} from 'pinpool';
import { pinpoolScope } from 'pinpool/server';

import { collected } from '../support/collect.js';
import { expectCode } from '../support/expect-error.js';

function setup() {
  const c = createController();
  const a = pool(pageable({ name: 'a-leaf' }), { name: 'a' });
  const b = pool(pageable({ name: 'b-leaf' }), { name: 'b' });
  c.register('a', a);
  c.register('b', b);
  c.scope('ingest', 'a');
  return { c, a, b };
}

describe('named scopes', () => {
  it('run(scope) uses the handler the scope is bound to; switch() rebinds it and returns the old one', async () => {
    const { c, a, b } = setup();
    expect(c.run('ingest', () => c.current())).toBe(a);
    expect(c.switch('ingest', 'b')).toBe('a');
    expect(c.run('ingest', () => c.current())).toBe(b);
    expect(c.scopes()).toEqual([
      {
        name: 'ingest',
        handler: 'b',
        switches: 1,
        allocations: 0,
        allocatedBytes: 0,
        bytesInUse: 0,
        buffersInUse: 0,
      },
    ]);
    expect(c.resolve('ingest')).toBe(b);
    expect(c.resolve('a')).toBe(a);
  });

  it('work entered before a switch keeps its handler across awaits; work entered after uses the new one', async () => {
    const { c, a, b } = setup();
    const before = c.run('ingest', async () => {
      const first = c.current();
      await sleep(20);
      const buf = c.alloc(64);
      const served = buf.handler;
      buf.free();
      return [first, c.current(), served];
    });
    await sleep(5);
    c.switch('ingest', 'b');
    const after = await c.run('ingest', async () => {
      await sleep(1);
      return c.current();
    });
    expect(await before).toEqual([a, a, a]);
    expect(after).toBe(b);
    expect([a.stats().allocations, b.stats().allocations]).toEqual([1, 0]);
  });

  it('one namespace: a scope cannot take a handler name, nor a handler a scope name; unknown names throw', () => {
    const { c } = setup();
    expectCode(() => c.scope('a', 'b'), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => c.register('ingest', pool(pageable())), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => c.scope('ingest', 'b'), 'ERR_PINPOOL_INVALID_ARGUMENT'); // defined already
    expectCode(() => c.scope('other', 'nope'), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => c.scope('Bad Name', 'a'), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => c.switch('nope', 'a'), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => c.switch('ingest', 'nope'), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => c.run('nope', () => 0), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => c.resolve(3 as never), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expect(c.scopes()).toEqual([
      {
        name: 'ingest',
        handler: 'a',
        switches: 0,
        allocations: 0,
        allocatedBytes: 0,
        bytesInUse: 0,
        buffersInUse: 0,
      },
    ]); // nothing changed
  });

  it('a fastify route configured with a scope follows its switches, request by request', async () => {
    const { c } = setup();
    const app = Fastify();
    await app.register(pinpoolScope, { controller: c });
    app.get('/', { config: { pinpool: 'ingest' } }, async () => {
      const buf = c.alloc(64);
      try {
        return { handler: buf.handler.name };
      } finally {
        buf.free();
      }
    });
    expect(() => app.get('/bad', { config: { pinpool: 'nope' } }, async () => 0)).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
    );
    await app.ready();
    const served = async () => (await app.inject({ url: '/' })).json<{ handler: string }>().handler;
    expect(await served()).toBe('a');
    c.switch('ingest', 'b');
    expect(await served()).toBe('b');
    await app.close();
  });
});

/** The counters of each scope, by name. */
function counts(c: Controller) {
  return Object.fromEntries(
    c.scopes().map((s) => [
      s.name,
      {
        allocations: s.allocations,
        allocatedBytes: s.allocatedBytes,
        bytesInUse: s.bytesInUse,
        buffersInUse: s.buffersInUse,
      },
    ]),
  );
}

function adoptWorker(): Worker {
  return new Worker(join(__dirname, '..', 'support', 'workers', 'adopt-free-worker.cjs'));
}

async function ask(w: Worker, message: unknown): Promise<unknown> {
  const reply = once(w, 'message');
  w.postMessage(message);
  return (await reply)[0];
}

describe('per-scope accounting', () => {
  it('counts what alloc() makes in each scope until it is freed, across interleaved scopes and a switch', async () => {
    const { c, a } = setup();
    c.scope('batch', 'b');
    const kept: HostBuffer[] = [];
    const work = (scope: string, sizes: number[]) =>
      c.run(scope, async () => {
        for (const n of sizes) {
          const buf = c.alloc(n);
          await sleep(1);
          if (n % 2 === 0) kept.push(buf);
          else buf.free();
        }
      });
    await Promise.all([
      work('ingest', [100, 31, 200]),
      work('batch', [7, 64, 9]),
      work('ingest', [1, 1000]),
    ]);
    expect(counts(c)).toEqual({
      ingest: { allocations: 5, allocatedBytes: 1332, bytesInUse: 1300, buffersInUse: 3 },
      batch: { allocations: 3, allocatedBytes: 80, bytesInUse: 64, buffersInUse: 1 },
    });
    // A switch moves new work; buffers made before it still count in their scope when freed.
    c.switch('ingest', 'b');
    await work('ingest', [40]);
    for (const buf of kept.splice(0)) buf.free();
    expect(counts(c)).toEqual({
      ingest: { allocations: 6, allocatedBytes: 1372, bytesInUse: 0, buffersInUse: 0 },
      batch: { allocations: 3, allocatedBytes: 80, bytesInUse: 0, buffersInUse: 0 },
    });
    expect(a.stats().allocations).toBe(5);
  });

  it('the innermost scope counts; anonymous run(handler), handler.alloc() and bad input count in none', async () => {
    const { c, a } = setup();
    c.scope('batch', 'b');
    c.run('batch', () =>
      c.run('ingest', () => {
        c.alloc(10).free();
        c.run(a, () => c.alloc(20).free()); // a handler, not a scope: no scope's series
        a.alloc(30).free(); // directly from a handler: counted by the handler only
        expectCode(() => c.alloc(-1), 'ERR_PINPOOL_INVALID_ARGUMENT');
        expectCode(() => c.alloc(8, { alignment: 3 }), 'ERR_PINPOOL_INVALID_ARGUMENT');
      }),
    );
    expect(counts(c)).toEqual({
      ingest: { allocations: 1, allocatedBytes: 10, bytesInUse: 0, buffersInUse: 0 },
      batch: { allocations: 0, allocatedBytes: 0, bytesInUse: 0, buffersInUse: 0 },
    });
  });

  it('a buffer the garbage collector returns leaves its scope', async () => {
    const { c } = setup();
    c.run('ingest', () => {
      c.alloc(4096); // dropped without free()
    });
    expect(counts(c).ingest).toMatchObject({ bytesInUse: 4096, buffersInUse: 1 });
    for (let i = 0; i < 20 && counts(c).ingest!.buffersInUse !== 0; i++) await collected();
    expect(counts(c).ingest).toEqual({
      allocations: 1,
      allocatedBytes: 4096,
      bytesInUse: 0,
      buffersInUse: 0,
    });
  });

  it('buffers moved to another thread count in their scope until that thread frees them', async () => {
    const { c } = setup();
    c.scope('batch', 'b');
    const w = adoptWorker();
    const exited = once(w, 'exit');
    try {
      const tokens = (scope: string, sizes: number[]) =>
        c.run(scope, () => sizes.map((n) => c.alloc(n).transfer()));
      const ingest = tokens('ingest', [100, 200, 300]);
      const batch = tokens('batch', [5, 6]);
      c.run('ingest', () => c.alloc(1).free());
      // Transferred, not freed: still the scope's.
      expect(counts(c)).toEqual({
        ingest: { allocations: 4, allocatedBytes: 601, bytesInUse: 600, buffersInUse: 3 },
        batch: { allocations: 2, allocatedBytes: 11, bytesInUse: 11, buffersInUse: 2 },
      });
      await ask(w, { tokens: [ingest[0], batch[1]] }); // freed there
      await ask(w, { tokens: [ingest[1], ingest[2]], keep: true }); // adopted, kept
      expect(counts(c)).toEqual({
        ingest: { allocations: 4, allocatedBytes: 601, bytesInUse: 500, buffersInUse: 2 },
        batch: { allocations: 2, allocatedBytes: 11, bytesInUse: 5, buffersInUse: 1 },
      });
      // The series say the same.
      const text = await collectMetrics({ controller: c }).metrics();
      const inUse = text.split('\n').filter((l) => /^pinpool_scope_(bytes|buffers)_in_use/.test(l));
      expect(inUse).toEqual([
        'pinpool_scope_bytes_in_use{scope="ingest"} 500',
        'pinpool_scope_bytes_in_use{scope="batch"} 5',
        'pinpool_scope_buffers_in_use{scope="ingest"} 2',
        'pinpool_scope_buffers_in_use{scope="batch"} 1',
      ]);
      await ask(w, { freeKept: true });
      expect(counts(c).ingest).toMatchObject({ bytesInUse: 0, buffersInUse: 0 });
      // Adopted back in this thread and freed here: counted once.
      const back = c.run('batch', () => c.alloc(50).transfer());
      const { adopt } = await import('pinpool');
      adopt(batch[0]!).free();
      adopt(back).free();
      expect(counts(c).batch).toEqual({
        allocations: 3,
        allocatedBytes: 61,
        bytesInUse: 0,
        buffersInUse: 0,
      });
    } finally {
      await w.terminate();
      await exited;
    }
  });

  it('a token whose scope cell is forged adopts nothing', async () => {
    const { c } = setup();
    const token = c.run('ingest', () => c.alloc(8).transfer());
    const { adopt } = await import('pinpool');
    for (const scope of [
      new ArrayBuffer(16),
      new SharedArrayBuffer(8),
      {},
      new BigInt64Array(new SharedArrayBuffer(16)),
    ]) {
      expectCode(() => adopt({ ...token, scope } as never), 'ERR_PINPOOL_INVALID_ARGUMENT');
    }
    adopt(token).free();
    expect(counts(c).ingest).toMatchObject({ bytesInUse: 0, buffersInUse: 0 });
  });

  it('metrics: one series per defined scope, and the handler each is bound to', async () => {
    const { c } = setup();
    c.scope('batch', 'b');
    const kept = c.run('ingest', () => [c.alloc(100), c.alloc(28)]);
    c.run('batch', () => c.alloc(1).free());
    c.run('a', () => c.alloc(5).free()); // a handler name: no scope series
    c.switch('batch', 'a');
    kept[0]!.free();
    const text = await collectMetrics({ controller: c }).metrics();
    const series = text.split('\n').filter((l) => l.startsWith('pinpool_scope_'));
    expect(series).toEqual([
      'pinpool_scope_info{scope="ingest",handler="a"} 1',
      'pinpool_scope_info{scope="batch",handler="a"} 1',
      'pinpool_scope_allocations_total{scope="ingest"} 2',
      'pinpool_scope_allocations_total{scope="batch"} 1',
      'pinpool_scope_allocated_bytes_total{scope="ingest"} 128',
      'pinpool_scope_allocated_bytes_total{scope="batch"} 1',
      'pinpool_scope_bytes_in_use{scope="ingest"} 28',
      'pinpool_scope_bytes_in_use{scope="batch"} 0',
      'pinpool_scope_buffers_in_use{scope="ingest"} 1',
      'pinpool_scope_buffers_in_use{scope="batch"} 0',
      'pinpool_scope_switches_total{scope="ingest"} 0',
      'pinpool_scope_switches_total{scope="batch"} 1',
    ]);
    kept[1]!.free();
  });
});

interface Reply {
  done: number;
  codes: string[];
  tokens: BufferToken[];
}

/** A scope's counts that a buffer in use changes. */
function inUse(c: Controller, scope: string) {
  const s = counts(c)[scope]!;
  return { bytesInUse: s.bytesInUse, buffersInUse: s.buffersInUse };
}

// Fixed once (docs/decisions/0010-one-typed-boundary.md): a token carried the scope's shared cell, so whoever held one could move,
// forge or lose a scope's counts. The scope now travels with the block, in native code.
describe('scope accounting no token can forge', () => {
  it('tokens with their scopes swapped move no count between scopes', async () => {
    const { c } = setup();
    c.scope('batch', 'b');
    const w = adoptWorker();
    const exited = once(w, 'exit');
    try {
      const ingest = c.run('ingest', () => c.alloc(4000).transfer());
      const batch = c.run('batch', () => c.alloc(8).transfer());
      const scopeOf = (t: BufferToken | SharedBufferToken) => (t as { scope?: unknown }).scope;
      const swapped = [
        { ...ingest, scope: scopeOf(batch) },
        { ...batch, scope: scopeOf(ingest) },
      ];
      const first = (await ask(w, { tokens: swapped, tolerate: true })) as Reply;
      // Whatever the swapped tokens did, the real ones free the rest; each buffer is adopted once.
      const second = (await ask(w, { tokens: [ingest, batch], tolerate: true })) as Reply;
      expect([...first.codes, ...second.codes].filter((code) => code === 'adopted')).toHaveLength(
        2,
      );
      expect(counts(c)).toEqual({
        ingest: { allocations: 1, allocatedBytes: 4000, bytesInUse: 0, buffersInUse: 0 },
        batch: { allocations: 1, allocatedBytes: 8, bytesInUse: 0, buffersInUse: 0 },
      });
    } finally {
      await w.terminate();
      await exited;
    }
  });

  it('a token carrying a forged scope is refused and changes nothing; the real one counts in the real scope', async () => {
    const { c } = setup();
    const w = adoptWorker();
    const exited = once(w, 'exit');
    try {
      const token = c.run('ingest', () => c.alloc(4000).transfer());
      const cell = new SharedArrayBuffer(16);
      const forged = (await ask(w, {
        tokens: [{ ...token, scope: cell }],
        tolerate: true,
      })) as Reply;
      expect(forged.codes).toEqual(['ERR_PINPOOL_INVALID_ARGUMENT']);
      expect(inUse(c, 'ingest')).toEqual({ bytesInUse: 4000, buffersInUse: 1 });
      expect([...new BigInt64Array(cell)]).toEqual([0n, 0n]);
      // Refused before anything was taken: the real token still adopts, and its free counts here.
      const real = (await ask(w, { tokens: [token], tolerate: true })) as Reply;
      expect(real.codes).toEqual(['adopted']);
      expect(counts(c).ingest).toEqual({
        allocations: 1,
        allocatedBytes: 4000,
        bytesInUse: 0,
        buffersInUse: 0,
      });
      expect([...new BigInt64Array(cell)]).toEqual([0n, 0n]);
    } finally {
      await w.terminate();
      await exited;
    }
  });

  for (const end of ['terminated', 'exits'] as const) {
    it(`a worker that ${end === 'terminated' ? 'is terminated' : 'exits'} holding adopted buffers gives their scope its counts back`, async () => {
      const { c } = setup();
      const here = c.run('ingest', () => c.alloc(100)); // stays here, in use
      const before = inUse(c, 'ingest');
      expect(before).toEqual({ bytesInUse: 100, buffersInUse: 1 });
      const w = adoptWorker();
      const exited = once(w, 'exit');
      const tokens = c.run('ingest', () => [c.alloc(4000).transfer(), c.alloc(96).transfer()]);
      await ask(w, { tokens, keep: true });
      expect(inUse(c, 'ingest')).toEqual({ bytesInUse: 4196, buffersInUse: 3 });
      if (end === 'terminated') await w.terminate();
      else w.postMessage({ exit: true });
      await exited;
      expect(inUse(c, 'ingest')).toEqual(before);
      here.free();
      expect(counts(c).ingest).toEqual({
        allocations: 3,
        allocatedBytes: 4196,
        bytesInUse: 0,
        buffersInUse: 0,
      });
    });
  }

  it('a chain main -> worker A -> worker B counts each buffer once, in the scope it was made in', async () => {
    const { c } = setup();
    const a = adoptWorker();
    const b = adoptWorker();
    const exitedA = once(a, 'exit');
    const exitedB = once(b, 'exit');
    try {
      const tokens = c.run('ingest', () => [c.alloc(4000).transfer(), c.alloc(96).transfer()]);
      const forwarded = ((await ask(a, { tokens, forward: true })) as Reply).tokens;
      expect(forwarded).toHaveLength(2);
      // A's end does not settle what it handed on.
      await a.terminate();
      await exitedA;
      expect(inUse(c, 'ingest')).toEqual({ bytesInUse: 4096, buffersInUse: 2 });
      await ask(b, { tokens: [forwarded[0]] }); // freed in B
      expect(inUse(c, 'ingest')).toEqual({ bytesInUse: 96, buffersInUse: 1 });
      await ask(b, { tokens: [forwarded[1]], keep: true }); // held by B when it ends
      await b.terminate();
      await exitedB;
      expect(counts(c).ingest).toEqual({
        allocations: 2,
        allocatedBytes: 4096,
        bytesInUse: 0,
        buffersInUse: 0,
      });
    } finally {
      await a.terminate();
      await b.terminate();
    }
  });

  it('writing into whatever a token carries changes no count: it carries its id and process only', async () => {
    const { c } = setup();
    const token = c.run('ingest', () => c.alloc(4000).transfer());
    const before = counts(c);
    for (const value of Object.values(token)) {
      if (value instanceof SharedArrayBuffer || value instanceof ArrayBuffer)
        new Uint8Array(value).fill(0x7f);
    }
    expect(counts(c)).toEqual(before);
    expect(Object.keys(token).sort()).toEqual(['id', 'pinpool', 'process', 'version']);
    adopt(token).free();
    expect(counts(c).ingest).toEqual({
      allocations: 1,
      allocatedBytes: 4000,
      bytesInUse: 0,
      buffersInUse: 0,
    });
  });

  it('an adopted buffer the garbage collector returns leaves its scope', async () => {
    const { c } = setup();
    const token = c.run('ingest', () => c.alloc(4096).transfer());
    adopt(token); // dropped without free()
    expect(inUse(c, 'ingest')).toEqual({ bytesInUse: 4096, buffersInUse: 1 });
    for (let i = 0; i < 20 && inUse(c, 'ingest').buffersInUse !== 0; i++) await collected();
    expect(counts(c).ingest).toEqual({
      allocations: 1,
      allocatedBytes: 4096,
      bytesInUse: 0,
      buffersInUse: 0,
    });
  });
});

describe('per-scope accounting against a model', () => {
  it('3 000 random allocations, frees, switches and transfers leave every scope exactly counted', async () => {
    const { c, a, b } = setup();
    c.scope('batch', 'b');
    const { adopt } = await import('pinpool');
    // A small deterministic generator (seeded by PINPOOL_FUZZ_SEED when set).
    let seed = Number(process.env.PINPOOL_FUZZ_SEED ?? 12345) >>> 0;
    const int = (n: number) => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed % n;
    };
    interface Live {
      buf: HostBuffer;
      scope: string | undefined;
      bytes: number;
    }
    const live: Live[] = [];
    const model: Record<
      string,
      { allocations: number; allocatedBytes: number; bytesInUse: number; buffersInUse: number }
    > = {
      ingest: { allocations: 0, allocatedBytes: 0, bytesInUse: 0, buffersInUse: 0 },
      batch: { allocations: 0, allocatedBytes: 0, bytesInUse: 0, buffersInUse: 0 },
    };
    const where = ['ingest', 'batch', 'a', undefined] as const;
    for (let step = 0; step < 3000; step++) {
      const op = int(10);
      if (op < 5 || live.length === 0) {
        const scope = where[int(where.length)];
        const bytes = int(5000);
        const buf =
          scope === undefined
            ? (int(2) === 0 ? a : b).alloc(bytes)
            : c.run(scope, () => c.alloc(bytes));
        const counted = scope === 'ingest' || scope === 'batch' ? scope : undefined;
        if (counted !== undefined) {
          model[counted]!.allocations++;
          model[counted]!.allocatedBytes += bytes;
          model[counted]!.bytesInUse += bytes;
          model[counted]!.buffersInUse++;
        }
        live.push({ buf, scope: counted, bytes });
      } else if (op < 8) {
        const [gone] = live.splice(int(live.length), 1);
        gone!.buf.free();
        if (gone!.scope !== undefined) {
          model[gone!.scope]!.bytesInUse -= gone!.bytes;
          model[gone!.scope]!.buffersInUse--;
        }
      } else if (op < 9) {
        // Moved and adopted in this same thread: still the same scope's, counted once.
        const entry = live[int(live.length)]!;
        entry.buf = adopt(entry.buf.transfer());
      } else {
        c.switch(int(2) === 0 ? 'ingest' : 'batch', int(2) === 0 ? 'a' : 'b');
      }
      if (step % 100 === 0) expect(counts(c), `step ${step}`).toEqual(model);
    }
    for (const entry of live.splice(0)) entry.buf.free();
    for (const m of Object.values(model)) {
      m.bytesInUse = 0;
      m.buffersInUse = 0;
    }
    expect(counts(c)).toEqual(model);
  });
});
