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
import { statusSnapshot, type StatusSnapshot } from '../status/snapshot.js';
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

/** How long a snapshot is served again, in milliseconds: many tabs cost one read. */
const REUSE_MS = 100;

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
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    fastify.get(url, async (request, reply) => {
      pageHeaders(reply)
        .header('cache-control', 'no-cache')
        .header('etag', etag)
        .header('vary', 'accept-encoding')
        .type(type);
      if (request.headers['if-none-match'] === etag) return reply.code(304).send();
      return acceptsGzip(request)
        ? reply.header('content-encoding', 'gzip').send(gzipped)
        : reply.send(body);
    });
  }

  const version = pinpool.info().version;
  let last: StatusSnapshot | undefined;
  let lastAt = -Infinity;
  fastify.get('/v1/status', async (_request, reply) => {
    const now = performance.now();
    if (last === undefined || now - lastAt >= REUSE_MS) {
      last = statusSnapshot(controller, { admin, version, switches });
      lastAt = now;
    }
    return pageHeaders(reply).header('cache-control', 'no-store').send(last);
  });
};

export default statusRoutes;
