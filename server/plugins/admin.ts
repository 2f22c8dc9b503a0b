/**
 * Admin endpoints, registered only when a token is configured: PUT /v1/default changes the
 * handler used outside every scope; POST /v1/handlers/:name/trim gives a pool's cached memory
 * back; GET /v1/scopes lists the named scopes with their handlers and counts, and
 * PUT /v1/scopes/:name rebinds one (logged, with the request id, and remembered as the scope's
 * last switch). All need `Authorization: Bearer <token>`. Encapsulated: the token check covers
 * these routes and nothing else.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

import type { FastifyPluginAsync } from 'fastify';

import type { Controller, ScopeInfo } from '../pinpool.js';
import { HttpError, unknownHandler, unknownScope } from '../errors.js';
import type { ScopeSwitch, SwitchLog } from '../switch-log.js';

export type { ScopeSwitch } from '../switch-log.js';

export interface AdminRoutesOptions {
  controller: Controller;
  /** The bearer token clients must present. */
  token: string;
  /** Where switches are recorded (GET /v1/scopes and the status page read it). */
  switches: SwitchLog;
}

/** The admin routes, method and URL: registered here, and recognized by app.ts when they are off. */
const ROUTES = {
  setDefault: { method: 'PUT', url: '/v1/default' },
  trim: { method: 'POST', url: '/v1/handlers/:name/trim' },
  listScopes: { method: 'GET', url: '/v1/scopes' },
  switchScope: { method: 'PUT', url: '/v1/scopes/:name' },
} as const;

/** Each route's URL as a pattern: a `:param` is one path segment. */
const routePatterns = Object.values(ROUTES).map(({ method, url }) => ({
  method,
  path: new RegExp(`^${url.replace(/:\w+/g, '[^/]+')}$`),
}));

/**
 * True when `method path` (a path without its query) names one of the admin routes. A GET
 * route answers HEAD too, as fastify's do.
 *
 * @example
 * isAdminRoute('PUT', '/v1/scopes/ingest'); // true
 */
export function isAdminRoute(method: string, path: string): boolean {
  const asked = method === 'HEAD' ? 'GET' : method;
  return routePatterns.some((r) => r.method === asked && r.path.test(path));
}

/** The controller's name rule (src/scope/controller.ts), so bad names fail validation, not lookup. */
const NAME_PATTERN = '^[a-z][a-z0-9_-]{0,62}$';

const setDefaultSchema = {
  body: {
    type: 'object',
    required: ['handler'],
    additionalProperties: false,
    properties: { handler: { type: 'string', pattern: NAME_PATTERN } },
  },
} as const;

const trimSchema = {
  params: {
    type: 'object',
    required: ['name'],
    additionalProperties: false,
    properties: { name: { type: 'string', pattern: NAME_PATTERN } },
  },
} as const;

const scopeParams = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: { name: { type: 'string', pattern: NAME_PATTERN } },
} as const;

const switchSchema = { params: scopeParams, body: setDefaultSchema.body } as const;

/** A scope as GET /v1/scopes reports it. */
export interface ScopeEntry extends ScopeInfo {
  /** The last switch made over HTTP through this service, if any. */
  lastSwitch: ScopeSwitch | null;
}

// Digests have one length whatever the token's, so comparing them reveals neither the
// token's length nor, through timing, how much of a guess was right.
const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** The bearer credential of an Authorization header, or undefined. */
function bearer(header: string | undefined): string | undefined {
  return header === undefined ? undefined : /^Bearer +(\S+) *$/i.exec(header)?.[1];
}

const adminRoutes: FastifyPluginAsync<AdminRoutesOptions> = async (
  fastify,
  { controller, token, switches },
) => {
  const expected = digest(token);

  // onRequest runs before the body is read: an unauthenticated client cannot make us parse.
  fastify.addHook('onRequest', async (request, reply) => {
    const given = bearer(request.headers.authorization);
    if (!timingSafeEqual(digest(given ?? ''), expected) || given === undefined) {
      reply.header('www-authenticate', 'Bearer realm="pinpool"');
      throw new HttpError(401, 'ERR_UNAUTHORIZED', 'a valid bearer token is required');
    }
  });

  const scopeNames = () => controller.scopes().map((s) => s.name);

  fastify.route<{ Body: { handler: string } }>({
    ...ROUTES.setDefault,
    schema: setDefaultSchema,
    handler: async (request) => {
      const name = request.body.handler;
      if (!controller.has(name)) throw unknownHandler(name, controller.names());
      const previous = controller.setDefault(name);
      return {
        default: name,
        previous: controller.names().find((n) => controller.get(n) === previous) ?? null,
      };
    },
  });

  fastify.route<{ Params: { name: string } }>({
    ...ROUTES.trim,
    schema: trimSchema,
    handler: async (request) => {
      const { name } = request.params;
      if (!controller.has(name)) throw unknownHandler(name, controller.names());
      return { releasedBytes: controller.get(name).trim() };
    },
  });

  fastify.route({
    ...ROUTES.listScopes,
    handler: async (_request, reply) => {
      const scopes: ScopeEntry[] = controller
        .scopes()
        .map((s) => ({ ...s, lastSwitch: switches.last(s.name) }));
      return reply.header('cache-control', 'no-store').send(scopes);
    },
  });

  fastify.route<{ Params: { name: string }; Body: { handler: string } }>({
    ...ROUTES.switchScope,
    schema: switchSchema,
    handler: async (request) => {
      const { name } = request.params;
      const to = request.body.handler;
      if (!scopeNames().includes(name)) throw unknownScope(name, scopeNames());
      if (!controller.has(to)) throw unknownHandler(to, controller.names());
      const from = controller.switch(name, to);
      const record: ScopeSwitch = { at: new Date().toISOString(), from, to, requestId: request.id };
      switches.add(name, record);
      request.log.info(
        { scope: name, from, to, remoteAddress: request.ip },
        'pinpool: scope switched',
      );
      return { scope: name, handler: to, previous: from, at: record.at };
    },
  });
};

export default adminRoutes;
