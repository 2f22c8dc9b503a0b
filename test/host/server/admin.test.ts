// The admin endpoints: absent without a token; with one, only the exact bearer token passes.
import { afterEach, describe, expect, it } from 'vitest';
import type { InjectOptions } from 'fastify';
import { createServer, type PinpoolServer } from 'pinpool/server';

import { request, testController, testServer } from '../../support/server.js';

const TOKEN = 's3cret-Token_0123456789';

let server: PinpoolServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const auth = (authorization: string | undefined) =>
  authorization === undefined ? {} : { authorization };
const setDefault = (
  authorization?: string,
  payload: object = { handler: 'plain' },
): InjectOptions => ({
  method: 'PUT',
  url: '/v1/default',
  payload,
  headers: auth(authorization),
});
const trim = (name: string, authorization?: string): InjectOptions => ({
  method: 'POST',
  url: `/v1/handlers/${name}/trim`,
  headers: auth(authorization),
});

describe('without a token configured', () => {
  it('has no admin routes at all', async () => {
    const saved = process.env.PINPOOL_ADMIN_TOKEN;
    delete process.env.PINPOOL_ADMIN_TOKEN;
    try {
      server = createServer({ controller: testController() });
      for (const header of [undefined, `Bearer ${TOKEN}`]) {
        expect((await request(server, setDefault(header))).statusCode).toBe(404);
        expect((await request(server, trim('cache', header))).statusCode).toBe(404);
      }
    } finally {
      if (saved !== undefined) process.env.PINPOOL_ADMIN_TOKEN = saved;
    }
  });

  it('says, for each admin route, how to turn admin routes on; other unknown routes are plain 404s', async () => {
    server = testServer();
    const adminRequests: InjectOptions[] = [
      setDefault(),
      setDefault(`Bearer ${TOKEN}`),
      trim('cache'),
      { method: 'GET', url: '/v1/scopes' },
      { method: 'HEAD', url: '/v1/scopes' },
      { method: 'PUT', url: '/v1/scopes/ingest?x=1', payload: { handler: 'plain' } },
    ];
    for (const options of adminRequests) {
      const res = await request(server, options);
      const what = JSON.stringify([options.method, options.url]);
      expect(res.statusCode, what).toBe(404);
      if (options.method === 'HEAD') continue; // no body
      const body = res.json<{ code: string; message: string }>();
      expect(body.code, what).toBe('ERR_ADMIN_ROUTES_OFF');
      expect(body.message).toMatch(/admin routes are off/);
      expect(body.message).toMatch(/PINPOOL_ADMIN_TOKEN/);
      expect(body.message).toMatch(/adminToken/);
    }
    for (const options of [
      { method: 'GET', url: '/v1/default' },
      { method: 'PUT', url: '/v1/default/' },
      { method: 'POST', url: '/v1/handlers/cache/trim/more' },
      { method: 'GET', url: '/nope' },
    ] as InjectOptions[]) {
      const res = await request(server, options);
      expect(res.statusCode).toBe(404);
      expect(res.json<{ code: string }>().code, JSON.stringify(options.url)).toBe('ERR_NOT_FOUND');
    }
  });

  it("treats adminToken '' as off even when PINPOOL_ADMIN_TOKEN is set, and never shows it", async () => {
    process.env.PINPOOL_ADMIN_TOKEN = TOKEN;
    try {
      server = testServer({ adminToken: '' });
      const res = await request(server, setDefault(`Bearer ${TOKEN}`));
      expect(res.statusCode).toBe(404);
      expect(res.json<{ code: string }>().code).toBe('ERR_ADMIN_ROUTES_OFF');
      expect(res.body).not.toContain(TOKEN);
    } finally {
      delete process.env.PINPOOL_ADMIN_TOKEN;
    }
  });
});

describe('with a token', () => {
  it('takes the token from PINPOOL_ADMIN_TOKEN when the option is absent', async () => {
    process.env.PINPOOL_ADMIN_TOKEN = TOKEN;
    try {
      server = createServer({ controller: testController() });
      expect((await request(server, trim('cache', `Bearer ${TOKEN}`))).statusCode).toBe(200);
      expect((await request(server, trim('cache', 'Bearer wrong'))).statusCode).toBe(401);
    } finally {
      delete process.env.PINPOOL_ADMIN_TOKEN;
    }
  });

  it('refuses a missing, malformed, wrong, shorter, longer or same-prefix token with 401 and WWW-Authenticate', async () => {
    server = testServer({ adminToken: TOKEN });
    const refused = [
      undefined,
      '',
      TOKEN,
      `Basic ${TOKEN}`,
      'Bearer',
      'Bearer ',
      'Bearer wrong',
      `Bearer ${TOKEN.slice(0, -1)}`,
      `Bearer ${TOKEN}x`,
      `Bearer ${TOKEN.slice(0, 8)}`,
      `Bearer ${TOKEN.toUpperCase()}`,
      `Bearer ${TOKEN} extra`,
    ];
    for (const header of refused) {
      for (const options of [setDefault(header), trim('cache', header)]) {
        const res = await request(server, options);
        expect(res.statusCode, `authorization ${String(header)}`).toBe(401);
        expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
        expect(res.json()).toEqual({
          error: 'Unauthorized',
          code: 'ERR_UNAUTHORIZED',
          message: expect.any(String),
        });
      }
    }
  });

  it('accepts the right token (the scheme in any case)', async () => {
    const s = testServer({ adminToken: TOKEN });
    server = s;
    const res = await request(s, setDefault(`Bearer ${TOKEN}`));
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ default: 'plain', previous: null });
    expect(s.controller.defaultHandler()).toBe(s.controller.get('plain'));
    const again = await request(s, setDefault(`bearer ${TOKEN}`, { handler: 'cache' }));
    expect(again.json()).toEqual({ default: 'cache', previous: 'plain' });
  });

  it('checks the token before reading the body', async () => {
    server = testServer({ adminToken: TOKEN });
    const res = await request(server, {
      method: 'PUT',
      url: '/v1/default',
      payload: '{not json',
      headers: { authorization: 'Bearer wrong', 'content-type': 'application/json' },
    });
    expect(res.statusCode).toBe(401);
  });
});

describe('PUT /v1/default', () => {
  const right = `Bearer ${TOKEN}`;

  it('answers 404 for a well-formed name no one registered, and changes nothing', async () => {
    const s = testServer({ adminToken: TOKEN });
    server = s;
    const before = s.controller.defaultHandler();
    const res = await request(s, setDefault(right, { handler: 'nope' }));
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({
      error: 'Not Found',
      code: 'ERR_PINPOOL_UNKNOWN_HANDLER',
      message: 'no handler is registered as "nope" (known: cache, plain)',
      known: ['cache', 'plain'],
    });
    expect(s.controller.defaultHandler()).toBe(before);
  });

  it('validates the body against its schema: 400 for anything else', async () => {
    server = testServer({ adminToken: TOKEN });
    const bad = [
      {},
      { handler: 7 },
      { handler: 'Upper' },
      { handler: '' },
      { handler: 'a'.repeat(64) },
      { handler: 'plain', extra: 1 },
      ['plain'],
      'plain',
      null,
    ];
    for (const payload of bad) {
      const res = await request(server, {
        ...setDefault(right),
        payload: JSON.stringify(payload),
        headers: { authorization: right, 'content-type': 'application/json' },
      });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json<{ code: string }>().code).toBe('FST_ERR_VALIDATION');
    }
  });

  it('rejects malformed JSON (400), a wrong media type (415) and an oversized body (413)', async () => {
    server = testServer({ adminToken: TOKEN });
    const send = (payload: string, type = 'application/json') =>
      request(server!, {
        method: 'PUT',
        url: '/v1/default',
        payload,
        headers: { authorization: right, 'content-type': type },
      });
    const malformed = await send('{"handler": "plain"');
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json()).toMatchObject({ error: 'Bad Request', code: expect.any(String) });
    expect((await send('handler=plain', 'application/x-www-form-urlencoded')).statusCode).toBe(415);
    expect((await send('handler=plain', 'text/plain')).statusCode).toBe(400); // parsed as a string: not the schema's object
    const big = await send(JSON.stringify({ handler: 'plain', pad: 'x'.repeat(17 * 1024) }));
    expect(big.statusCode).toBe(413);
    expect(big.json<{ code: string }>().code).toBe('FST_ERR_CTP_BODY_TOO_LARGE');
    // Just under the limit parses (and then fails validation for the extra property).
    expect(
      (await send(JSON.stringify({ handler: 'plain', pad: 'x'.repeat(15 * 1024) }))).statusCode,
    ).toBe(400);
  });

  it('rejects __proto__ and constructor.prototype payloads with 400', async () => {
    const s = testServer({ adminToken: TOKEN });
    server = s;
    for (const payload of [
      '{"handler":"plain","__proto__":{"polluted":true}}',
      '{"__proto__":{"handler":"plain"}}',
      '{"handler":"plain","constructor":{"prototype":{"polluted":true}}}',
    ]) {
      const res = await request(s, {
        method: 'PUT',
        url: '/v1/default',
        payload,
        headers: { authorization: right, 'content-type': 'application/json' },
      });
      expect(res.statusCode, payload).toBe(400);
      expect(res.body).not.toMatch(/at .*\.js/); // no stack
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(s.controller.defaultHandler()).not.toBe(s.controller.get('plain'));
  });
});

describe('POST /v1/handlers/:name/trim', () => {
  const right = `Bearer ${TOKEN}`;

  it('returns the bytes a pool gave back', async () => {
    const s = testServer({ adminToken: TOKEN });
    server = s;
    s.controller
      .get('cache')
      .alloc(1 << 20)
      .free();
    expect(s.controller.get('cache').stats().cachedBytes).toBeGreaterThan(0);
    const res = await request(s, trim('cache', right));
    expect(res.statusCode).toBe(200);
    const { releasedBytes } = res.json<{ releasedBytes: number }>();
    expect(releasedBytes).toBeGreaterThanOrEqual(1 << 20);
    expect(s.controller.get('cache').stats().cachedBytes).toBe(0);
    expect((await request(s, trim('plain', right))).json()).toEqual({ releasedBytes: 0 });
  });

  it('answers 404 for an unknown name and 400 for a malformed one', async () => {
    server = testServer({ adminToken: TOKEN });
    const unknown = await request(server, trim('nope', right));
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({
      code: 'ERR_PINPOOL_UNKNOWN_HANDLER',
      message: 'no handler is registered as "nope" (known: cache, plain)',
      known: ['cache', 'plain'],
    });
    for (const name of ['Upper', '1abc', 'a'.repeat(64), '%5F_']) {
      expect((await request(server, trim(name, right))).statusCode, name).toBe(400);
    }
  });
});
