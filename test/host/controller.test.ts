import { EventEmitter, EventEmitterAsyncResource, once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { alloc, controller, createController, locked, pageable, pool, type Handler } from 'pinpool';

describe('controller registry', () => {
  it('registers, gets and lists names; taken names need { replace: true }', () => {
    const c = createController();
    const a = pageable({ name: 'a' });
    const b = pageable({ name: 'b' });
    c.register('alpha', a);
    c.register('beta_2', b);
    expect(c.names()).toEqual(['alpha', 'beta_2']);
    expect(c.get('alpha')).toBe(a);
    expect(() => c.register('alpha', b)).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
    );
    c.register('alpha', b, { replace: true });
    expect(c.get('alpha')).toBe(b);
  });

  it('refuses bad names and unknown names, never falling back to a default', () => {
    const c = createController();
    for (const bad of ['', 'Upper', '1abc', 'a'.repeat(64), 'with space', 'dot.ted', 7, null]) {
      expect(() => c.register(bad as string, pageable())).toThrow(
        expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
      );
    }
    expect(() => c.register('ok', {} as unknown as Handler)).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
    );
    expect(() => c.get('nope')).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
    );
    expect(() => c.run('nope', () => 1)).toThrow(/no handler is registered as "nope"/);
    expect(() => c.run(42 as never, () => 1)).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
    );
  });

  it('names and options that are not what they should be: a PinpoolError, nothing registered (found by the fuzzer)', () => {
    const c = createController();
    const h = pageable();
    c.register('taken', h);
    const invalid = expect.objectContaining({
      name: 'PinpoolError',
      code: 'ERR_PINPOOL_INVALID_ARGUMENT',
    });
    for (const name of [
      10n,
      Symbol('name'),
      {
        toJSON() {
          throw new Error('toJSON');
        },
      },
    ]) {
      expect(() => c.get(name as never)).toThrow(invalid);
      expect(() => c.run(name as never, () => 1)).toThrow(invalid);
      expect(() => c.setDefault(name as never)).toThrow(invalid);
    }
    expect(() => c.get(10n as never)).toThrow(
      /handler name must be a registered name \(known: taken\), got 10n/,
    );
    const other = pageable();
    const throwing = {
      get replace(): boolean {
        throw new Error('getter');
      },
    };
    const trap = new Proxy(
      {},
      {
        ownKeys() {
          throw new Error('trap');
        },
      },
    );
    for (const options of [throwing, trap, 5, { replace: 'yes' }]) {
      expect(() => c.register('taken', other, options as never)).toThrow(invalid);
      expect(() => c.register('fresh', other, options as never)).toThrow(invalid);
    }
    expect(c.names()).toEqual(['taken']);
    expect(c.get('taken')).toBe(h);
  });

  it('setDefault returns the previous default; the first default is the default chain', () => {
    const c = createController();
    const first = c.current();
    expect(first.name).toBe('default');
    const h = pageable();
    c.register('p', h);
    expect(c.setDefault('p')).toBe(first);
    expect(c.current()).toBe(h);
    expect(c.setDefault(first)).toBe(h);
  });
});

describe('run(): the current handler follows the async context', () => {
  const c = createController();
  const A = pageable({ name: 'A' });
  const B = pageable({ name: 'B' });
  c.register('a', A);
  c.register('b', B);

  it('returns what fn returns, sync or async, and passes arguments', async () => {
    expect(c.run('a', (x: number, y: number) => x + y, 2, 3)).toBe(5);
    await expect(c.run('a', async () => c.current().name)).resolves.toBe('A');
    expect(c.current().name).toBe('default');
  });

  it('propagates across await, timers, setImmediate, nextTick, Promise.all and queueMicrotask', async () => {
    const seen = await c.run('a', async () => {
      const names: string[] = [c.current().name];
      await sleep(1);
      names.push(c.current().name);
      await new Promise<void>((r) =>
        setTimeout(() => {
          names.push(c.current().name);
          r();
        }, 1),
      );
      await new Promise<void>((r) =>
        setImmediate(() => {
          names.push(c.current().name);
          r();
        }),
      );
      await new Promise<void>((r) =>
        process.nextTick(() => {
          names.push(c.current().name);
          r();
        }),
      );
      await new Promise<void>((r) =>
        queueMicrotask(() => {
          names.push(c.current().name);
          r();
        }),
      );
      names.push(
        ...(await Promise.all([1, 2].map(async () => (await sleep(1), c.current().name)))),
      );
      return names;
    });
    expect(seen).toEqual(Array(8).fill('A'));
    expect(c.current().name).toBe('default');
  });

  it('EventEmitter listeners registered inside a scope run in it when bound, or on an EventEmitterAsyncResource', async () => {
    const emitter = new EventEmitter();
    const seen: string[] = [];
    c.run('b', () =>
      emitter.on(
        'go',
        c.bind(() => seen.push(c.current().name)),
      ),
    );
    const resource = c.run('b', () => new EventEmitterAsyncResource({ name: 'test' }));
    resource.on('go', () => seen.push(c.current().name));
    emitter.on('go', () => seen.push(`plain:${c.current().name}`)); // runs where emit() runs
    await c.run('a', async () => {
      const done = once(emitter, 'go');
      setImmediate(() => (emitter.emit('go'), resource.emit('go')));
      await done;
    });
    expect(seen).toEqual(['B', 'plain:A', 'B']);
  });

  it('nested runs override and restore', async () => {
    const names = await c.run('a', async () => {
      const inner = await c.run('b', async () => (await sleep(1), c.current().name));
      return [inner, c.current().name];
    });
    expect(names).toEqual(['B', 'A']);
  });

  it("200 interleaved tasks with different handlers never see each other's", async () => {
    const handlers = Array.from({ length: 8 }, (_, i) => {
      const h = pool(pageable({ name: `h${i}` }));
      c.register(`h${i}`, h, { replace: true });
      return h;
    });
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, task) =>
        c.run(`h${task % 8}`, async () => {
          let ok = true;
          for (let step = 0; step < 5; step++) {
            await sleep(Math.floor((task * 7 + step * 13) % 4));
            const b = c.alloc(64 + task);
            ok &&= b.handler === handlers[task % 8] && c.current() === handlers[task % 8];
            b.free();
          }
          return ok;
        }),
      ),
    );
    expect(results.every(Boolean)).toBe(true);
    handlers.forEach((h) => expect(h.stats().allocations).toBe(125));
  });

  it("top-level alloc() uses the process controller's current handler", async () => {
    const h = pool(locked(), { name: 'top-level' });
    controller.register('top-level-test', h, { replace: true });
    await controller.run('top-level-test', async () => {
      await sleep(1);
      const b = alloc(100);
      expect(b.handler).toBe(h);
      b.free();
    });
    expect(alloc(10).handler).toBe(controller.defaultHandler());
  });
});

describe('measure(): per-scope accounting', () => {
  it("counts the scope's allocations and peak, nothing from a concurrent scope", async () => {
    const c = createController();
    const h = pageable();
    const noisy = async () => {
      for (let i = 0; i < 20; i++) {
        const b = h.alloc(1000);
        await sleep(1);
        b.free();
      }
    };
    const measured = async () => {
      const a = h.alloc(100);
      await sleep(2);
      const b = h.alloc(200);
      await sleep(2);
      a.free();
      b.free();
      const d = c.alloc(50);
      d.free();
      return 'done';
    };
    const [, m] = await Promise.all([noisy(), c.measure(measured)]);
    expect(m).toEqual({ result: 'done', allocations: 3, bytesAllocated: 350, peakBytes: 300 });
  });

  it('nested measures fold into the parent: peak = max(parent peak, parent current + child peak)', async () => {
    const c = createController();
    const h = pageable();
    let child: Awaited<ReturnType<typeof c.measure<string>>> | undefined;
    const parent = await c.measure(async () => {
      const keep = h.alloc(1000); // parent current 1000, peak 1000
      child = await c.measure(async () => {
        const x = h.alloc(500);
        const y = h.alloc(700); // child peak 1200
        x.free();
        y.free();
        const z = h.alloc(300); // child current 300 at its end
        await sleep(1);
        z.free(); // freed inside the child
        return 'child';
      });
      keep.free();
      return 'parent';
    });
    expect(child).toEqual({
      result: 'child',
      allocations: 3,
      bytesAllocated: 1500,
      peakBytes: 1200,
    });
    expect(parent).toEqual({
      result: 'parent',
      allocations: 4,
      bytesAllocated: 2500,
      peakBytes: 2200,
    });
  });

  it('a buffer freed after its child scope ended counts against the parent', async () => {
    const c = createController();
    const h = pageable();
    const r = await c.measure(async () => {
      let kept: ReturnType<typeof h.alloc> | undefined;
      await c.measure(async () => {
        kept = h.alloc(400);
      });
      const more = h.alloc(100); // parent current: 400 (folded) + 100
      more.free();
      kept!.free();
      const last = h.alloc(450); // 450 <= 500: the peak stays
      last.free();
      return 0;
    });
    expect(r.peakBytes).toBe(500);
    expect(r.allocations).toBe(3);
  });

  it('propagates a rejection and leaves no measure running', async () => {
    const c = createController();
    await expect(
      c.measure(async () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    const h = pageable();
    const m = await c.measure(() => (h.alloc(10).free(), 1));
    expect(m.allocations).toBe(1);
  });
});
