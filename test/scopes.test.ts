// Named scopes (the named-scopes issue, first slice): a scope name bound to a registered
// handler, switched at run time; run() and route configs resolve it when they are entered.
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { createController, pageable, pool } from 'pinpool';
import { pinpoolScope } from 'pinpool/server';

import { expectCode } from './expect-error.js';

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
    expect(c.scopes()).toEqual([{ name: 'ingest', handler: 'b', switches: 1 }]);
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
    expect([a.stats().allocations.total, b.stats().allocations.total]).toEqual([1, 0]);
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
    expect(c.scopes()).toEqual([{ name: 'ingest', handler: 'a', switches: 0 }]); // nothing changed
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
    expect(() => app.get('/bad', { config: { pinpool: 'nope' } }, async () => 0)).toThrow(expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }));
    await app.ready();
    const served = async () => (await app.inject({ url: '/' })).json().handler;
    expect(await served()).toBe('a');
    c.switch('ingest', 'b');
    expect(await served()).toBe('b');
    await app.close();
  });
});
