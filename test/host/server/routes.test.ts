// Every public route through fastify.inject: /healthz, /metrics in both formats, /v1/handlers.
import { afterEach, describe, expect, it } from 'vitest';
import type { PinpoolServer } from 'pinpool/server';

import { request, testServer } from '../../support/server.js';

let server: PinpoolServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('GET /healthz', () => {
  it('answers ok as JSON', async () => {
    server = testServer();
    const res = await request(server, { method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toEqual({ status: 'ok' });
  });
});

describe('GET /metrics', () => {
  it('serves the Prometheus text format with live statistics', async () => {
    const s = testServer();
    server = s;
    const kept = s.controller.get('cache').alloc(4096);
    const res = await request(s, { method: 'GET', url: '/metrics' });
    kept.free();
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toContain('# TYPE pinpool_allocations_total counter');
    expect(res.body).toContain('pinpool_bytes_in_use{handler="cache",kind="pool"} 4096');
    expect(res.body).toMatch(/^pinpool_allocations_total\{handler="cache",kind="pool"\} 1$/m);
    expect(res.body).not.toContain('# EOF');
  });

  it('serves OpenMetrics when the Accept header asks for it, counters named *_total once', async () => {
    server = testServer();
    const res = await request(server, {
      method: 'GET',
      url: '/metrics',
      headers: { accept: 'application/openmetrics-text' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe(
      'application/openmetrics-text; version=1.0.0; charset=utf-8',
    );
    expect(res.body.endsWith('# EOF\n')).toBe(true);
    // OpenMetrics names the counter family without _total and its samples with it.
    expect(res.body).toContain('# TYPE pinpool_allocations counter');
    expect(res.body).toMatch(/^pinpool_allocations_total\{handler="cache",kind="pool"\} 0$/m);
    expect(res.body).not.toContain('_total_total');
  });

  it('negotiates like Prometheus: OpenMetrics first when offered, text when it is preferred or refused', async () => {
    server = testServer();
    const type = async (accept: string) =>
      (await request(server!, { method: 'GET', url: '/metrics', headers: { accept } })).headers[
        'content-type'
      ];
    const prometheus =
      'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
    expect(await type(prometheus)).toMatch(/^application\/openmetrics-text/);
    expect(await type('text/plain;q=1, application/openmetrics-text;q=0.5')).toMatch(
      /^text\/plain/,
    );
    expect(await type('application/openmetrics-text;q=0')).toMatch(/^text\/plain/);
    expect(await type('*/*')).toMatch(/^text\/plain/);
  });

  it('refuses POST (404 or 405), answers HEAD', async () => {
    server = testServer();
    const post = await request(server, { method: 'POST', url: '/metrics', payload: {} });
    expect([404, 405]).toContain(post.statusCode);
    const head = await request(server, { method: 'HEAD', url: '/metrics' });
    expect(head.statusCode).toBe(200);
    expect(head.body).toBe('');
  });
});

describe('GET /v1/handlers', () => {
  it('lists registered names in order, then the unregistered default, with chains and statistics', async () => {
    const s = testServer();
    server = s;
    s.controller.get('cache').alloc(100).free();
    const res = await request(s, { method: 'GET', url: '/v1/handlers' });
    expect(res.statusCode).toBe(200);
    const body = res.json<Record<string, unknown>[]>();
    expect(body.map((e) => e.name)).toEqual(['cache', 'plain', null]);
    expect(body[0]).toMatchObject({
      name: 'cache',
      handler: 'cache',
      kind: 'pool',
      default: false,
      chain: {
        name: 'cache',
        kind: 'pool',
        upstreams: [{ name: 'leaf', kind: 'pageable', upstreams: [] }],
      },
      stats: {
        buffersInUse: 0,
        buffersPeak: 1,
        allocations: 1,
        frees: 1,
        bytesInUse: 0,
        allocatedBytes: 100,
      },
    });
    expect(body[1]).toMatchObject({
      name: 'plain',
      handler: 'plain',
      kind: 'pageable',
      default: false,
      chain: { upstreams: [] },
    });
    expect(body[2]).toMatchObject({
      name: null,
      handler: 'default',
      kind: 'fallback',
      default: true,
    });
    expect((body[2]!.chain as { upstreams: unknown[] }).upstreams).toHaveLength(2);
  });

  it('marks the registered name of the default instead of adding an entry', async () => {
    const s = testServer();
    server = s;
    s.controller.setDefault('plain');
    const body = (await request(s, { method: 'GET', url: '/v1/handlers' })).json<
      { name: string; default: boolean }[]
    >();
    expect(body.map((e) => [e.name, e.default])).toEqual([
      ['cache', false],
      ['plain', true],
    ]);
    expect(s.controller.current()).toBe(s.controller.get('plain'));
  });
});

describe('GET /v1/handlers/:name', () => {
  it('describes one registered handler as the list does', async () => {
    const s = testServer();
    server = s;
    const res = await request(s, { method: 'GET', url: '/v1/handlers/cache' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const list = (await request(s, { method: 'GET', url: '/v1/handlers' })).json<unknown[]>();
    expect(res.json()).toEqual(list[0]);
  });

  it('answers an unknown name with 404 and the names there are', async () => {
    server = testServer();
    for (const name of ['nope', 'default', 'Bad%20Name']) {
      const res = await request(server, { method: 'GET', url: `/v1/handlers/${name}` });
      expect(res.statusCode, name).toBe(404);
      expect(res.json()).toEqual({
        error: 'Not Found',
        code: 'ERR_PINPOOL_UNKNOWN_HANDLER',
        message: `no handler is registered as ${JSON.stringify(decodeURIComponent(name))} (known: cache, plain)`,
        known: ['cache', 'plain'],
      });
    }
  });
});

describe('errors', () => {
  it('answers unknown routes with the one error shape', async () => {
    server = testServer();
    const res = await request(server, { method: 'GET', url: '/nope?x=1' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({
      error: 'Not Found',
      code: 'ERR_NOT_FOUND',
      message: 'no route GET /nope',
    });
  });
});
