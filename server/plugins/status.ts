/**
 * The status page: GET / (the page), GET /status/* (its script, style sheet and icon, shipped in
 * the package under server/status/page/, read once when the plugin loads) and GET /v1/status
 * (the snapshot the page polls, JSON). Read-only, so none needs a token: the page offers its
 * controls only once a token is entered, and they call the admin endpoints, which check it.
 *
 * The page loads nothing from elsewhere and runs no inline script: every response carries a
 * Content-Security-Policy that allows this origin's script, style, images and requests only.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';

import { pinpool, type Controller } from '../pinpool.js';
import { statusSnapshot } from '../status/snapshot.js';
import type { SwitchLog } from '../switch-log.js';

export interface StatusRoutesOptions {
  controller: Controller;
  /** True when the admin endpoints are on: the page then asks for the token. */
  admin: boolean;
  switches: SwitchLog;
}

/**
 * Where the page's files are: server/status/page/ in the package, beside dist/ (this module is
 * dist/server/plugins/status.js).
 */
export const PAGE_DIRECTORY = join(__dirname, '..', '..', '..', 'server', 'status', 'page');

/** The page's files: URL, file name under PAGE_DIRECTORY, media type. */
export const PAGE_FILES = [
  { url: '/', file: 'index.html', type: 'text/html; charset=utf-8' },
  { url: '/status/app.js', file: 'app.js', type: 'text/javascript; charset=utf-8' },
  { url: '/status/style.css', file: 'style.css', type: 'text/css; charset=utf-8' },
  { url: '/status/icon.svg', file: 'icon.svg', type: 'image/svg+xml' },
] as const;

/** This origin's script, style, images and requests, nothing else; no framing, no forms. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The headers every response of the page carries. */
function pageHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', CONTENT_SECURITY_POLICY)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('cross-origin-opener-policy', 'same-origin')
    .header('cross-origin-resource-policy', 'same-origin');
}

const acceptsGzip = (request: FastifyRequest): boolean =>
  /\bgzip\b/.test(request.headers['accept-encoding'] ?? '');

const statusRoutes: FastifyPluginAsync<StatusRoutesOptions> = async (
  fastify,
  { controller, admin, switches },
) => {
  for (const { url, file, type } of PAGE_FILES) {
    const body = readFileSync(join(PAGE_DIRECTORY, file));
    const gzipped = gzipSync(body, { level: 9 });
    const tag = createHash('sha256').update(body).digest('base64url').slice(0, 22);
    // One tag per representation: the gzipped body is another one (RFC 9110, 8.8.3).
    const [etag, gzipEtag] = [`"${tag}"`, `"${tag}-gz"`];
    fastify.get(url, async (request, reply) => {
      const gzip = acceptsGzip(request);
      const current = gzip ? gzipEtag : etag;
      pageHeaders(reply)
        .header('cache-control', 'no-cache')
        .header('etag', current)
        .header('vary', 'accept-encoding')
        .type(type);
      if (request.headers['if-none-match'] === current) return reply.code(304).send();
      return gzip ? reply.header('content-encoding', 'gzip').send(gzipped) : reply.send(body);
    });
  }

  const version = pinpool.info().version;
  // Read fresh for every request (a few native calls): a read made just after a switch or a
  // trim shows it.
  fastify.get('/v1/status', async (_request, reply) =>
    pageHeaders(reply)
      .header('cache-control', 'no-store')
      .send(statusSnapshot(controller, { admin, version, switches })),
  );
};

export default statusRoutes;
