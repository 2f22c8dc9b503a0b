// The status page's routes through fastify.inject: its files and their headers, the snapshot it
// polls, its weight. The page itself runs in a browser in test/browser/status-page.test.ts.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { afterEach, describe, expect, it } from 'vitest';
import { fallback, limit, pageable, pool } from 'pinpool';
import type { PinpoolServer } from 'pinpool/server';

import * as builtStatus from '../../../dist/server/plugins/status.js';
import type * as Snapshot from '../../../server/status/snapshot.js';
import { request, testServer } from '../../support/server.js';

const { PAGE_DIRECTORY, PAGE_FILES, CONTENT_SECURITY_POLICY } =
  builtStatus as unknown as typeof import('../../../server/plugins/status.js');
type StatusSnapshot = Snapshot.StatusSnapshot;

const TOKEN = 'status-test-token';

let server: PinpoolServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** The page's files as the package ships them: everything in the folder but its tsconfig. */
const shipped = readdirSync(PAGE_DIRECTORY)
  .filter((f) => f !== 'tsconfig.json')
  .sort();

describe('the status page files', () => {
  it('serves every file of server/status/page/, and nothing the folder lacks', () => {
    expect(PAGE_FILES.map((f) => f.file).sort()).toEqual(shipped);
  });

  it.each(PAGE_FILES)(
    'GET $url: the file, its type, CSP and no-sniff',
    async ({ url, file, type }) => {
      server = testServer();
      const res = await request(server, { method: 'GET', url });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe(type);
      expect(res.rawPayload.equals(readFileSync(join(PAGE_DIRECTORY, file)))).toBe(true);
      expect(res.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['referrer-policy']).toBe('no-referrer');
      // Revalidated by ETag: a new version of the package is never served stale.
      const again = await request(server, {
        method: 'GET',
        url,
        headers: { 'if-none-match': String(res.headers.etag) },
      });
      expect(again.statusCode).toBe(304);
      expect(again.body).toBe('');
    },
  );

  it('sends the files gzipped to a client that accepts it', async () => {
    server = testServer();
    const res = await request(server, {
      method: 'GET',
      url: '/status/app.js',
      headers: { 'accept-encoding': 'gzip, deflate, br' },
    });
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(res.headers.vary).toBe('accept-encoding');
    expect(res.rawPayload.length).toBeLessThan(readFileSync(join(PAGE_DIRECTORY, 'app.js')).length);
    // Another representation, another tag: a cache never answers a plain request with gzip.
    const plain = await request(server, { method: 'GET', url: '/status/app.js' });
    expect(res.headers.etag).not.toBe(plain.headers.etag);
    const again = await request(server, {
      method: 'GET',
      url: '/status/app.js',
      headers: { 'accept-encoding': 'gzip', 'if-none-match': String(plain.headers.etag) },
    });
    expect(again.statusCode).toBe(200);
  });

  it('has no inline script, style or handler, and loads only this origin', () => {
    const html = readFileSync(join(PAGE_DIRECTORY, 'index.html'), 'utf8');
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.length).toBeGreaterThan(0);
    for (const [, attributes, body] of scripts) {
      expect(attributes).toMatch(/\bsrc="\/status\//);
      expect(body?.trim()).toBe('');
    }
    expect(html).not.toMatch(/<style\b|\sstyle=|\son[a-z]+=/i);
    // Every address the page names is one of the files served here.
    const named = [...html.matchAll(/\b(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(named.length).toBeGreaterThan(0);
    for (const url of named) expect(PAGE_FILES.map((f) => f.url)).toContain(url);
    expect(CONTENT_SECURITY_POLICY).toContain("default-src 'none'");
    expect(CONTENT_SECURITY_POLICY).toContain("script-src 'self'");
    expect(CONTENT_SECURITY_POLICY).not.toContain('unsafe');
  });

  it('weighs under 100 KB compressed, HTML, script and style together', () => {
    const bytes = shipped
      .map((f) => gzipSync(readFileSync(join(PAGE_DIRECTORY, f)), { level: 9 }).length)
      .reduce((a, b) => a + b, 0);
    expect(bytes).toBeLessThan(100 * 1024);
  });

  it('answers only to its own host names, like every route', async () => {
    server = testServer();
    const res = await request(server, {
      method: 'GET',
      url: '/',
      headers: { host: 'attacker.example:9464' },
    });
    expect(res.statusCode).toBe(403);
    expect(res.json<{ code: string }>().code).toBe('ERR_HOST_NOT_ALLOWED');
  });
});

/** The lines a listening server logs until its first request, as createServer's logger writes them. */
async function listenLines(options: Parameters<typeof testServer>[0]): Promise<string[]> {
  const lines: string[] = [];
  const s = testServer({
    port: 0,
    ...options,
    logger: {
      stream: { write: (line: string) => lines.push((JSON.parse(line) as { msg: string }).msg) },
    },
  });
  server = s;
  await s.listen();
  return lines;
}

describe('the first lines a listening service logs', () => {
  it('name the status page', async () => {
    const [first] = await listenLines({});
    expect(first).toMatch(/^pinpool: status page at http:\/\/127\.0\.0\.1:\d+\/$/);
  });

  it('say only "listening" without the page', async () => {
    const [first] = await listenLines({ statusPage: false });
    expect(first).toMatch(/^pinpool: listening at http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('on every interface, point at those the Host allowlist accepts and say so of the others', async () => {
    const lines = await listenLines({ host: '0.0.0.0' });
    expect(lines).toContainEqual(
      expect.stringMatching(/^pinpool: status page at http:\/\/127\.0\.0\.1:/),
    );
    for (const line of lines.filter((l) => !l.includes('127.0.0.1') && !l.includes('[::1]')))
      expect(line).toMatch(
        /^pinpool: listening at .*, which the Host allowlist refuses \(--allow-host /,
      );
  });
});

describe('createServer({ statusPage })', () => {
  it('false leaves / and /v1/status to routes of your own', async () => {
    const s = testServer({ statusPage: false });
    server = s;
    s.app.get('/', async () => 'mine');
    expect((await request(s, { method: 'GET', url: '/' })).body).toBe('mine');
    for (const url of ['/v1/status', ...PAGE_FILES.map((f) => f.url).filter((u) => u !== '/')])
      expect((await request(s, { method: 'GET', url })).statusCode).toBe(404);
  });

  it('refuses what is not a boolean, coded', () => {
    expect(() => testServer({ statusPage: 'no' as unknown as boolean })).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
    );
  });
});

describe('GET /v1/status', () => {
  it('reports each handler once with its upstreams, the registered names, the scopes', async () => {
    const s = testServer({ adminToken: TOKEN });
    server = s;
    const c = s.controller;
    const leaf = pageable({ name: '<img src=x onerror=alert(1)>' });
    c.register('capped', limit(pool(leaf, { name: 'inner' }), { maxBytes: 1 << 20, name: 'cap' }));
    c.register('either', fallback(c.get('capped'), c.get('plain'), { name: 'either' }));
    c.scope('ingest', 'capped');
    const kept = c.run('ingest', () => c.alloc(4096));

    const res = await request(s, { method: 'GET', url: '/v1/status' });
    kept.free();
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const snap = res.json<StatusSnapshot>();
    expect(snap.admin).toBe(true);
    expect(JSON.stringify(snap)).not.toContain(TOKEN);
    expect(snap.registered.map((r) => r.name)).toEqual(c.names());
    // Ids number the snapshot's handlers: each one's place in the list.
    snap.handlers.forEach((h, i) => expect(h.id).toBe(i));
    const nameOf = (id: number) => snap.handlers[id]?.name;
    for (const h of snap.handlers) for (const up of h.upstreams) expect(nameOf(up)).toBeDefined();
    expect(nameOf(snap.default)).toBe(c.defaultHandler().name);
    expect(snap.registered.map((r) => nameOf(r.handler))).toEqual(
      c.names().map((n) => c.get(n).name),
    );
    expect(new Set(snap.handlers.map((h) => h.name)).size).toBe(snap.handlers.length);
    const byName = new Map(snap.handlers.map((h) => [h.name, h]));
    expect(byName.get('cap')?.stats.capBytes).toBe(1 << 20);
    expect(byName.get('cap')?.stats.bytesInUse).toBe(4096);
    expect(byName.get('<img src=x onerror=alert(1)>')?.kind).toBe('pageable');
    expect(byName.get('either')?.upstreams.map(nameOf)).toEqual(['cap', 'plain']);
    expect(snap.scopes).toEqual([
      expect.objectContaining({ name: 'ingest', handler: 'capped', bytesInUse: 4096 }),
    ]);
    expect(snap.scopes[0]?.lastSwitch).toBeNull();
  });

  it('changes no statistics', async () => {
    const s = testServer();
    server = s;
    const before = s.controller.names().map((n) => s.controller.get(n).stats());
    await request(s, { method: 'GET', url: '/v1/status' });
    expect(s.controller.names().map((n) => s.controller.get(n).stats())).toEqual(before);
  });

  it('is read fresh for each request, so a switch shows at once', async () => {
    const s = testServer({ adminToken: TOKEN });
    server = s;
    s.controller.scope('ingest', 'cache');
    const read = async () =>
      (await request(s, { method: 'GET', url: '/v1/status' })).json<StatusSnapshot>().scopes[0]
        ?.handler;
    expect(await read()).toBe('cache');
    s.controller.switch('ingest', 'plain');
    expect(await read()).toBe('plain');
  });

  it('says when the process started, the same in every read', async () => {
    server = testServer();
    const read = async () =>
      (await request(server!, { method: 'GET', url: '/v1/status' })).json<StatusSnapshot>();
    const [a, b] = [await read(), await read()];
    expect(a.startedAt).toBe(b.startedAt);
    expect(a.startedAt).toBeLessThanOrEqual(a.at);
    expect(a.startedAt).toBeGreaterThan(a.at - process.uptime() * 1000 - 1000);
  });

  it('says admin is off without a token, and records the switches made over HTTP', async () => {
    const off = testServer();
    server = off;
    expect(
      (await request(off, { method: 'GET', url: '/v1/status' })).json<StatusSnapshot>().admin,
    ).toBe(false);
    await off.close();

    const s = testServer({ adminToken: TOKEN });
    server = s;
    s.controller.scope('ingest', 'cache');
    const put = await request(s, {
      method: 'PUT',
      url: '/v1/scopes/ingest',
      headers: { authorization: `Bearer ${TOKEN}` },
      payload: { handler: 'plain' },
    });
    expect(put.statusCode).toBe(200);
    // Read at once after the switch (the page does): it shows.
    const snap = (await request(s, { method: 'GET', url: '/v1/status' })).json<StatusSnapshot>();
    expect(snap.scopes[0]).toMatchObject({ name: 'ingest', handler: 'plain', switches: 1 });
    expect(snap.scopes[0]?.lastSwitch).toEqual({
      at: expect.any(String),
      from: 'cache',
      to: 'plain',
    });
    expect(snap.switches).toEqual([
      expect.objectContaining({ scope: 'ingest', from: 'cache', to: 'plain' }),
    ]);
  });
});
