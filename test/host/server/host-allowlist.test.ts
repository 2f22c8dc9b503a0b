// DNS-rebinding defence: only the bound address and localhost names, with or without the
// port, reach any route. Also the server options that are refused outright.
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type PinpoolServer } from 'pinpool/server';

import { testController, testServer } from '../../support/server.js';

let server: PinpoolServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const get = (s: PinpoolServer, host: string | undefined, url = '/healthz') =>
  s.app.inject({ method: 'GET', url, headers: host === undefined ? {} : { host } });

describe('Host allowlist', () => {
  it('accepts the bound address and the localhost names, with or without the port', async () => {
    server = testServer();
    for (const host of [
      '127.0.0.1',
      '127.0.0.1:9464',
      'localhost',
      'localhost:9464',
      'LocalHost:9464',
      '[::1]',
      '[::1]:9464',
    ]) {
      expect((await get(server, host)).statusCode, host).toBe(200);
    }
  });

  it('refuses a foreign Host with 403 on every route, unknown ones included', async () => {
    const s = testServer({ adminToken: 'tok' });
    server = s;
    const foreign = [
      'evil.example',
      'evil.example:9464',
      'localhost.evil.example',
      '127.0.0.1.nip.io:9464',
      '10.0.0.1:9464',
      'localhost:80',
      'localhost:9465',
      '[::2]:9464',
      'localhost:9464:1',
      '',
    ];
    for (const host of foreign) {
      for (const url of ['/healthz', '/metrics', '/v1/handlers', '/nope']) {
        const res = await get(s, host, url);
        expect(res.statusCode, `${host} ${url}`).toBe(403);
        expect(res.json()).toMatchObject({ error: 'Forbidden', code: 'ERR_HOST_NOT_ALLOWED' });
        // It says how to allow a name.
        expect(res.json<{ message: string }>().message).toContain('--allow-host');
      }
      // Refused before the token is even looked at.
      const admin = await s.app.inject({
        method: 'POST',
        url: '/v1/handlers/cache/trim',
        headers: { host, authorization: 'Bearer tok' },
      });
      expect(admin.statusCode, host).toBe(403);
    }
  });

  it("refuses inject()'s default Host (localhost:80): the port must be the service's", async () => {
    server = testServer();
    expect((await server.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(403);
  });

  it('accepts the configured host and allowedHosts', async () => {
    server = createServer({
      controller: testController(),
      host: '0.0.0.0',
      port: 8080,
      adminToken: '',
      allowedHosts: ['Metrics.Internal'],
    });
    for (const host of [
      '0.0.0.0:8080',
      'metrics.internal:8080',
      'metrics.internal',
      'localhost:8080',
    ]) {
      expect((await get(server, host)).statusCode, host).toBe(200);
    }
    expect((await get(server, 'metrics.internal:9464')).statusCode).toBe(403);
  });

  it('accepts the port bound at listen() when port 0 asked for any', async () => {
    const s = createServer({ controller: testController(), port: 0, adminToken: '' });
    server = s;
    const url = await s.listen();
    const port = new URL(url).port;
    expect(url).toBe(`http://127.0.0.1:${port}`);
    expect((await get(s, `127.0.0.1:${port}`)).statusCode).toBe(200);
    const res = await fetch(`${url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });
});

describe('server options', () => {
  it('refuses a bad port, host or admin token', () => {
    const controller = testController();
    for (const port of [-1, 65536, 1.5, NaN, '80' as unknown as number]) {
      expect(() => createServer({ controller, port }), String(port)).toThrow(
        expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
      );
    }
    expect(() => createServer({ controller, host: '' })).toThrow(/host/);
    expect(() => createServer({ controller, adminToken: 'has space' })).toThrow(/whitespace/);
    expect(() => createServer({ controller, adminToken: 'has space' })).not.toThrow(/has space/); // never echoes the token
  });
});
