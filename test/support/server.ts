/** Shared set-up for the service tests: a controller of their own and inject() with a good Host. */
import type { InjectOptions } from 'fastify';
import { createController, pageable, pool, type Controller } from 'pinpool';
import { createServer, type PinpoolServer, type ServerOptions } from 'pinpool/server';

/** The Host header a client of the default configuration sends. */
export const HOST = 'localhost:9464';

/** A controller with a pool ('cache') and a bare leaf ('plain'), nothing else. */
export function testController(): Controller {
  const c = createController();
  c.register('cache', pool(pageable({ name: 'leaf' }), { name: 'cache' }));
  c.register('plain', pageable({ name: 'plain' }));
  return c;
}

/** A server over a fresh test controller; admin is off unless the options turn it on. */
export function testServer(
  options: ServerOptions = {},
): PinpoolServer & { controller: Controller } {
  const controller = options.controller ?? testController();
  return { ...createServer({ adminToken: '', ...options, controller }), controller };
}

/** inject() with the Host header set to one the allowlist accepts, unless the options set one. */
export function request(server: PinpoolServer, options: InjectOptions) {
  return server.app.inject({ ...options, headers: { host: HOST, ...options.headers } });
}
