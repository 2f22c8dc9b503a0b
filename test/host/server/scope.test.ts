// pinpoolScope in a user's own fastify app: routes with config.pinpool run in that handler.
import { setTimeout as sleep } from 'node:timers/promises';

import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { alloc, controller as processController, pageable } from 'pinpool';
import { pinpoolScope } from 'pinpool/server';

import { testController } from '../../support/server.js';

describe('pinpoolScope', () => {
  it("runs a route's handler with its handler current, across awaits", async () => {
    const c = testController();
    const app = Fastify();
    await app.register(pinpoolScope, { controller: c });
    app.get('/scoped', { config: { pinpool: 'cache' } }, async () => {
      const before = c.current().name;
      await sleep(5);
      const afterTimer = c.current().name;
      await Promise.resolve();
      const buf = c.alloc(128);
      const servedBy = buf.handler.name;
      buf.free();
      return { before, afterTimer, servedBy };
    });
    app.get('/plain', async () => ({ current: c.current().name }));
    const scoped = await app.inject({ method: 'GET', url: '/scoped' });
    expect(scoped.json()).toEqual({ before: 'cache', afterTimer: 'cache', servedBy: 'cache' });
    expect((await app.inject({ method: 'GET', url: '/plain' })).json()).toEqual({
      current: 'default',
    });
    // HEAD routes made from the GET run scoped too.
    expect((await app.inject({ method: 'HEAD', url: '/scoped' })).statusCode).toBe(200);
    await app.close();
  });

  it('keeps concurrent requests in their own scopes', async () => {
    const c = testController();
    const app = Fastify();
    await app.register(pinpoolScope, { controller: c });
    const route = async () => {
      await sleep(Math.random() * 10);
      return { current: c.current().name };
    };
    app.get('/a', { config: { pinpool: 'cache' } }, route);
    app.get('/b', { config: { pinpool: 'plain' } }, route);
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) => app.inject({ method: 'GET', url: i % 2 ? '/b' : '/a' })),
    );
    replies.forEach((r, i) => expect(r.json()).toEqual({ current: i % 2 ? 'plain' : 'cache' }));
    await app.close();
  });

  it('uses the process controller by default, and alloc() follows it', async () => {
    const name = `scope-test-${process.pid}`;
    processController.register(name, pageable({ name }));
    const app = Fastify();
    await app.register(pinpoolScope);
    app.post('/upload', { config: { pinpool: name } }, async () => {
      await sleep(1);
      using buf = alloc(64);
      return { handler: buf.handler.name };
    });
    expect((await app.inject({ method: 'POST', url: '/upload' })).json()).toEqual({
      handler: name,
    });
    await app.close();
  });

  it('fails at registration for an unknown name, not at the first request', async () => {
    const c = testController();
    const app = Fastify();
    await app.register(pinpoolScope, { controller: c });
    expect(() => app.get('/x', { config: { pinpool: 'nope' } }, async () => 'never')).toThrow(
      /no handler is registered as "nope"/,
    );
    await app.close();

    // Inside a plugin the error surfaces from ready().
    const other = Fastify();
    await other.register(pinpoolScope, { controller: c });
    void other.register(async (child) => {
      child.get('/y', { config: { pinpool: 'missing' } }, async () => 'never');
    });
    await expect(other.ready()).rejects.toThrow(/no handler is registered as "missing"/);
  });

  it('fails loudly for a route registered before the plugin loaded, never running it unscoped', async () => {
    const c = testController();
    const app = Fastify();
    void app.register(pinpoolScope, { controller: c }); // not awaited: the route below comes first
    let ran = false;
    app.get('/early', { config: { pinpool: 'cache' } }, async () => {
      ran = true;
      return 'unscoped';
    });
    const res = await app.inject({ method: 'GET', url: '/early' });
    expect(res.statusCode).toBe(500);
    expect(ran).toBe(false);
    await app.close();
  });
});
