/**
 * pinpoolScope: a fastify plugin that runs a route's handler inside a pinpool scope. A route
 * with `config: { pinpool: 'name' }` runs its handler in `controller.run(name, ...)`, so
 * `alloc()` in it and in everything it awaits uses that handler.
 */
import type { FastifyContextConfig, FastifyPluginAsync } from 'fastify';
import { pinpool, type Controller } from './pinpool.js';
import { unencapsulated } from './unencapsulated.js';

const { controller: processController, ErrorCode, PinpoolError } = pinpool;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The pinpool handler or scope name this route's handler runs with (needs pinpoolScope). */
    pinpool?: string;
  }
}

/** Options of the pinpoolScope fastify plugin: whose named handlers a route's `config.pinpool` names. */
export interface PinpoolScopeOptions {
  /** Whose names routes use. Default: the process's controller. */
  controller?: Controller;
}

// Marks routes this plugin wrapped, so one it never saw (registered before the plugin loaded)
// fails loudly instead of silently running with the default handler.
const scoped = Symbol('pinpool.scoped');

const scope: FastifyPluginAsync<PinpoolScopeOptions> = async (fastify, options) => {
  const controller = options.controller ?? processController;

  fastify.addHook('onRoute', (route) => {
    const name = route.config?.pinpool;
    if (name === undefined) return;
    // Throws for an unknown name now, while the route is registered, not on its first request.
    if (typeof name !== 'string') {
      throw new PinpoolError(
        ErrorCode.INVALID_ARGUMENT,
        `pinpool: route ${String(route.method)} ${route.url}: config.pinpool must be a handler name`,
      );
    }
    controller.resolve(name); // a handler's or a scope's name, or throw
    const handler = route.handler;
    // The name is resolved per request, so a switch() of a scope or register(name, h,
    // { replace: true }) takes effect for the requests after it.
    route.handler = function (this: unknown, request, reply) {
      return controller.run(name, () => handler.call(this as never, request, reply));
    };
    route.config = { ...route.config, [scoped]: true } as FastifyContextConfig;
  });

  fastify.addHook('onRequest', async (request) => {
    const config = request.routeOptions.config as { pinpool?: string; [scoped]?: boolean };
    if (config.pinpool !== undefined && config[scoped] !== true) {
      throw new Error(
        `pinpool: route ${request.routeOptions.url ?? ''} was registered before pinpoolScope; await app.register(pinpoolScope) first`,
      );
    }
  });
};

/**
 * A fastify plugin: routes with `config: { pinpool: name }` run their handler inside
 * `controller.run(name, ...)`. Register it (and await it) before such routes; an unknown name
 * fails when the route is registered.
 *
 * @example
 * await app.register(pinpoolScope, { controller });
 * app.post('/upload', { config: { pinpool: 'pinned' } }, async (req) => {
 *   using buf = alloc(1 << 20);           // from the 'pinned' handler
 *   ...
 * });
 */
export const pinpoolScope = unencapsulated(scope, 'pinpool-scope');
