/**
 * GET /v1/handlers: every registered handler and the default, with its chain and statistics,
 * as JSON; GET /v1/handlers/:name, one registered handler (a 404 lists the names there are).
 * Read-only, so they need no token; names and counters are what /metrics shows too.
 */
import type { FastifyPluginAsync } from 'fastify';

import type { Controller, Handler, HandlerStats } from '../pinpool.js';
import { unknownHandler } from '../errors.js';

export interface HandlersRoutesOptions {
  controller: Controller;
}

/** A handler and the handlers it takes memory from, down to the leaves. */
export interface ChainLink {
  name: string;
  kind: string;
  upstreams: ChainLink[];
}

export interface HandlerEntry {
  /** The registered name; null for a default handler that is not registered under any name. */
  name: string | null;
  /** The handler's own name (what metrics label it with). */
  handler: string;
  kind: string;
  /** True for the handler used outside every scope. */
  default: boolean;
  chain: ChainLink;
  stats: HandlerStats;
}

function chainOf(h: Handler): ChainLink {
  return { name: h.name, kind: h.kind, upstreams: h.upstreams.map(chainOf) };
}

function entry(name: string | null, h: Handler, isDefault: boolean): HandlerEntry {
  return {
    name,
    handler: h.name,
    kind: h.kind,
    default: isDefault,
    chain: chainOf(h),
    stats: h.stats(),
  };
}

/**
 * The registered handlers in registration order, then the default when no name reaches it.
 *
 * @example
 * describeHandlers(controller).map((e) => `${e.name}: ${e.stats.bytesInUse} bytes`);
 */
export function describeHandlers(controller: Controller): HandlerEntry[] {
  const byDefault = controller.defaultHandler();
  const entries = controller.names().map((name) => {
    const h = controller.get(name);
    return entry(name, h, h === byDefault);
  });
  if (!entries.some((e) => e.default)) entries.push(entry(null, byDefault, true));
  return entries;
}

const handlersRoutes: FastifyPluginAsync<HandlersRoutesOptions> = async (
  fastify,
  { controller },
) => {
  fastify.get('/v1/handlers', async (_request, reply) =>
    reply.header('cache-control', 'no-store').send(describeHandlers(controller)),
  );

  fastify.get<{ Params: { name: string } }>('/v1/handlers/:name', async (request, reply) => {
    const { name } = request.params;
    if (!controller.has(name)) throw unknownHandler(name, controller.names());
    const h = controller.get(name);
    return reply
      .header('cache-control', 'no-store')
      .send(entry(name, h, h === controller.defaultHandler()));
  });
};

export default handlersRoutes;
