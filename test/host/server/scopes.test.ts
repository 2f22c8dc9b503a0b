// Named scopes over HTTP: GET /v1/scopes and PUT /v1/scopes/:name behind the admin token, and
// a switch made while requests run: those entered before it finish on the old handler, later
// ones use the new one, and no request mixes the two.
import { afterEach, describe, expect, it } from 'vitest';
import { pageable, pool, type Controller } from 'pinpool';
import { pinpoolScope, type PinpoolServer, type ScopeEntry } from 'pinpool/server';

import { request, testController, testServer } from '../../support/server.js';

const TOKEN = 'scope-admin-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };

let server: PinpoolServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

function scopedController(): Controller {
  const c = testController();
  c.register('other', pool(pageable({ name: 'other-leaf' }), { name: 'other' }));
  c.scope('ingest', 'cache');
  c.scope('batch', 'plain');
  return c;
}

describe('/v1/scopes', () => {
  it('does not exist without a token, and refuses a request without the right one', async () => {
    server = testServer({ controller: scopedController() });
    expect((await request(server, { method: 'GET', url: '/v1/scopes' })).statusCode).toBe(404);
    await server.close();

    const c = scopedController();
    server = testServer({ controller: c, adminToken: TOKEN });
    for (const headers of [
      {},
      { authorization: 'Bearer wrong' },
      { authorization: `Basic ${TOKEN}` },
    ]) {
      const get = await request(server, { method: 'GET', url: '/v1/scopes', headers });
      const put = await request(server, {
        method: 'PUT',
        url: '/v1/scopes/ingest',
        headers,
        payload: { handler: 'other' },
      });
      expect([get.statusCode, put.statusCode, put.json<{ code: string }>().code]).toEqual([
        401,
        401,
        'ERR_UNAUTHORIZED',
      ]);
    }
    expect(c.scopes().map((s) => [s.handler, s.switches])).toEqual([
      ['cache', 0],
      ['plain', 0],
    ]);
  });

  it('lists each scope with its handler and counts; a switch answers with the previous handler and is logged', async () => {
    const c = scopedController();
    const lines: string[] = [];
    server = testServer({
      controller: c,
      adminToken: TOKEN,
      logger: { stream: { write: (line: string) => lines.push(line) } },
    });
    c.run('ingest', () => c.alloc(100)); // kept: in use
    const put = await request(server, {
      method: 'PUT',
      url: '/v1/scopes/ingest',
      headers: auth,
      payload: { handler: 'other' },
    });
    expect(put.statusCode).toBe(200);
    expect(put.json()).toMatchObject({ scope: 'ingest', handler: 'other', previous: 'cache' });
    const res = await request(server, { method: 'GET', url: '/v1/scopes', headers: auth });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const scopes = res.json<ScopeEntry[]>();
    expect(scopes).toEqual([
      {
        name: 'ingest',
        handler: 'other',
        switches: 1,
        allocations: 1,
        allocatedBytes: 100,
        bytesInUse: 100,
        buffersInUse: 1,
        lastSwitch: {
          at: put.json<{ at: string }>().at,
          from: 'cache',
          to: 'other',
          requestId: expect.any(String),
        },
      },
      {
        name: 'batch',
        handler: 'plain',
        switches: 0,
        allocations: 0,
        allocatedBytes: 0,
        bytesInUse: 0,
        buffersInUse: 0,
        lastSwitch: null,
      },
    ]);
    const logged = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === 'pinpool: scope switched');
    expect(logged).toEqual([
      expect.objectContaining({
        scope: 'ingest',
        from: 'cache',
        to: 'other',
        reqId: scopes[0]!.lastSwitch!.requestId,
      }),
    ]);
  });

  it('refuses unknown scopes and handlers, bad names and extra fields, and changes nothing', async () => {
    const c = scopedController();
    server = testServer({ controller: c, adminToken: TOKEN });
    const put = (url: string, payload: unknown) =>
      request(server!, { method: 'PUT', url, headers: auth, payload: payload as object });
    const answers = await Promise.all([
      put('/v1/scopes/nope', { handler: 'other' }),
      put('/v1/scopes/ingest', { handler: 'nope' }),
      put('/v1/scopes/cache', { handler: 'other' }), // a handler's name, not a scope's
      put('/v1/scopes/Bad%20Name', { handler: 'other' }),
      put('/v1/scopes/ingest', { handler: 'other', extra: 1 }),
      put('/v1/scopes/ingest', { handler: 3 }),
      put('/v1/scopes/ingest', {}),
    ]);
    expect(answers.map((a) => [a.statusCode, a.json<{ code: string }>().code])).toEqual([
      [404, 'ERR_PINPOOL_UNKNOWN_SCOPE'],
      [404, 'ERR_PINPOOL_UNKNOWN_HANDLER'],
      [404, 'ERR_PINPOOL_UNKNOWN_SCOPE'],
      [400, 'FST_ERR_VALIDATION'],
      [400, 'FST_ERR_VALIDATION'],
      [400, 'FST_ERR_VALIDATION'],
      [400, 'FST_ERR_VALIDATION'],
    ]);
    expect(c.scopes().map((s) => [s.name, s.handler, s.switches])).toEqual([
      ['ingest', 'cache', 0],
      ['batch', 'plain', 0],
    ]);
  });

  it('names what there is in a 404: the defined scopes, or the registered handlers', async () => {
    server = testServer({ controller: scopedController(), adminToken: TOKEN });
    const put = (url: string, handler: string) =>
      request(server!, { method: 'PUT', url, headers: auth, payload: { handler } });
    expect((await put('/v1/scopes/nope', 'other')).json()).toEqual({
      error: 'Not Found',
      code: 'ERR_PINPOOL_UNKNOWN_SCOPE',
      message: 'no scope is defined as "nope" (known: ingest, batch)',
      known: ['ingest', 'batch'],
    });
    // The README's first curl: a handler `pinpool serve --demo` does not define.
    expect((await put('/v1/scopes/ingest', 'plain2')).json()).toEqual({
      error: 'Not Found',
      code: 'ERR_PINPOOL_UNKNOWN_HANDLER',
      message: 'no handler is registered as "plain2" (known: cache, plain, other)',
      known: ['cache', 'plain', 'other'],
    });
  });

  it('a switch under concurrent requests: entered before it, the old handler; after it, the new one; never both', async () => {
    const c = scopedController();
    const s = testServer({ controller: c, adminToken: TOKEN, port: 0 });
    server = s;
    await s.app.register(pinpoolScope, { controller: c });
    let entered = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    // Each request allocates, waits (so that the switch lands while it runs), allocates again.
    s.app.get('/work', { config: { pinpool: 'ingest' } }, async () => {
      entered++;
      const first = c.alloc(256);
      await gate;
      await new Promise((resolve) => setImmediate(resolve));
      const second = c.alloc(512);
      const handlers = [first.handler.name, second.handler.name];
      first.free();
      second.free();
      return { handlers };
    });
    const url = await s.listen();
    const work = () =>
      fetch(`${url}/work`).then((r) => r.json() as Promise<{ handlers: string[] }>);

    const before = Array.from({ length: 16 }, work);
    while (entered < 16) await new Promise((resolve) => setTimeout(resolve, 2));
    // Requests racing the switch: each must still see one handler.
    const racing = Array.from({ length: 16 }, work);
    const switched = await fetch(`${url}/v1/scopes/ingest`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ handler: 'other' }),
    });
    expect(switched.status).toBe(200);
    const after = Array.from({ length: 16 }, work);
    while (entered < 48) await new Promise((resolve) => setTimeout(resolve, 2));
    release();

    for (const r of await Promise.all(before)) expect(r.handlers).toEqual(['cache', 'cache']);
    for (const r of await Promise.all(after)) expect(r.handlers).toEqual(['other', 'other']);
    for (const r of await Promise.all(racing))
      expect([
        ['cache', 'cache'],
        ['other', 'other'],
      ]).toContainEqual(r.handlers);
    expect(c.scopes()[0]).toMatchObject({
      handler: 'other',
      switches: 1,
      allocations: 96,
      allocatedBytes: 48 * 768,
      bytesInUse: 0,
      buffersInUse: 0,
    });
  });
});
