/**
 * createServer: the optional HTTP service, a fastify app built from one plugin per concern
 * (host allowlist, metrics, health, handlers, the status page, admin). It binds 127.0.0.1 by default and has no
 * mutating endpoint unless an admin token is configured.
 */
import Fastify, { LogController, type FastifyInstance } from 'fastify';

import { pinpool, type Controller } from './pinpool.js';
import { adminRoutesOff, sendError, sendNotFound } from './errors.js';
import adminRoutes, { isAdminRoute } from './plugins/admin.js';
import handlersRoutes from './plugins/handlers.js';
import healthRoutes from './plugins/health.js';
import hostAllowlist, { hostnameForm } from './plugins/host-allowlist.js';
import metricsRoutes from './plugins/metrics.js';
import statusRoutes from './plugins/status.js';
import { SwitchLog } from './switch-log.js';

const { controller: processController, ErrorCode, PinpoolError } = pinpool;

/** Options of createServer(): whose handlers it serves, where it listens, who may administer. */
export interface ServerOptions {
  /** Whose handlers to report and manage. Default: the process's controller. */
  controller?: Controller;
  /** Address to bind. Default '127.0.0.1'. */
  host?: string;
  /** Port to bind; 0 picks a free one (listen() returns it). Default 9464. */
  port?: number;
  /**
   * Bearer token for the admin endpoints. Default: env PINPOOL_ADMIN_TOKEN. Without one (or
   * with ''), the admin endpoints do not exist: a request for one answers 404 with a body that
   * says how to turn them on.
   */
  adminToken?: string;
  /**
   * More host names the Host header may carry, for a service bound to 0.0.0.0 or reached
   * through a name. The bound address and localhost are always accepted.
   */
  allowedHosts?: readonly string[];
  /**
   * Log admin actions (scope switches, with the request id) as JSON lines: true for stdout, or
   * `{ stream }` for another destination. Default false. Requests themselves are not logged.
   */
  logger?: boolean | { stream: { write(line: string): unknown } };
  /**
   * Serve the status page (`GET /`, its files under `/status/`, and `GET /v1/status`, the
   * snapshot it reads). Default true; false leaves `/` to routes of your own.
   */
  statusPage?: boolean;
}

/** What createServer() returns: the fastify app, and listen() and close() for its lifetime. */
export interface PinpoolServer {
  /** The fastify app, for inject() in tests or more routes before listen(). */
  app: FastifyInstance;
  /** Starts listening; returns the base URL, e.g. 'http://127.0.0.1:9464'. */
  listen(): Promise<string>;
  /** Stops accepting, finishes in-flight requests, then closes. */
  close(): Promise<void>;
}

/** Body size limit for every route, in bytes: the largest admin body is a few dozen bytes. */
const BODY_LIMIT = 16 * 1024;

function invalidOption(
  name: string,
  expected: string,
  actual: unknown,
): InstanceType<typeof PinpoolError> {
  return new PinpoolError(
    ErrorCode.INVALID_ARGUMENT,
    `pinpool: server option ${name} must be ${expected} (got ${JSON.stringify(actual)})`,
  );
}

function adminTokenOf(option: string | undefined): string | undefined {
  const token = option ?? process.env.PINPOOL_ADMIN_TOKEN ?? '';
  if (typeof token !== 'string') throw invalidOption('adminToken', 'a string', token);
  // A token with blanks could never arrive intact in an Authorization header.
  if (/\s/.test(token)) throw invalidOption('adminToken', 'a token without whitespace', '<hidden>');
  return token === '' ? undefined : token;
}

function loggerOf(
  option: ServerOptions['logger'],
): false | { level: 'info'; stream?: { write(line: string): unknown } } {
  if (option === undefined || option === false) return false;
  if (option === true) return { level: 'info' };
  // Checked as unknown: JavaScript callers may pass anything.
  const given: unknown = option;
  const stream =
    typeof given === 'object' && given !== null
      ? (given as { stream?: unknown }).stream
      : undefined;
  if (
    typeof stream !== 'object' ||
    stream === null ||
    typeof (stream as { write?: unknown }).write !== 'function'
  ) {
    throw invalidOption('logger', 'a boolean or { stream } with a write() method', '<object>');
  }
  return { level: 'info', stream: stream as { write(line: string): unknown } };
}

/** The address a person opens: a wildcard bind is reached through loopback. */
function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '::1';
  return host;
}

/**
 * Builds the service. Installs no signal handlers: the caller decides when to close().
 *
 * @example
 * const server = createServer({ controller, port: 0 });
 * console.log(`metrics at ${await server.listen()}/metrics`);
 * process.once('SIGTERM', () => void server.close());
 */
export function createServer(options: ServerOptions = {}): PinpoolServer {
  const controller = options.controller ?? processController;
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 9464;
  if (typeof host !== 'string' || host === '')
    throw invalidOption('host', 'a host name or address', host);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw invalidOption('port', 'an integer from 0 to 65535', port);
  const adminToken = adminTokenOf(options.adminToken);

  const logger = loggerOf(options.logger);
  const statusPage = options.statusPage ?? true;
  if (typeof statusPage !== 'boolean') throw invalidOption('statusPage', 'a boolean', statusPage);

  const app = Fastify({
    bodyLimit: BODY_LIMIT,
    logger,
    logController: new LogController({ disableRequestLogging: true }),
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    // Fastify's default Ajv strips unknown properties and coerces types; a strict API refuses them.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
  });
  app.setErrorHandler(sendError);
  if (adminToken === undefined) {
    // Not registered (decision 0008), but a request for one is told why and how to turn it on.
    app.setNotFoundHandler((request, reply) => {
      const path = request.url.split('?')[0] ?? request.url;
      return isAdminRoute(request.method, path)
        ? sendError(adminRoutesOff(request.method, path), request, reply)
        : sendNotFound(request, reply);
    });
  } else {
    app.setNotFoundHandler(sendNotFound);
  }

  const hostnames = [host, '127.0.0.1', '::1', 'localhost', ...(options.allowedHosts ?? [])].map(
    hostnameForm,
  );
  const listenText = (address: string): string => {
    const name = hostnameForm(new URL(address).hostname);
    if (!hostnames.includes(name))
      return `pinpool: listening at ${address}, which the Host allowlist refuses (--allow-host ${name})`;
    return statusPage ? `pinpool: status page at ${address}/` : `pinpool: listening at ${address}`;
  };
  void app.register(hostAllowlist, { hostnames, port });
  void app.register(metricsRoutes, { controller });
  void app.register(healthRoutes);
  void app.register(handlersRoutes, { controller });
  const switches = new SwitchLog();
  if (statusPage)
    void app.register(statusRoutes, { controller, admin: adminToken !== undefined, switches });
  if (adminToken !== undefined)
    void app.register(adminRoutes, { controller, token: adminToken, switches });

  return {
    app,
    async listen() {
      // fastify logs one line per address it binds: the status page's address where the Host
      // allowlist accepts it (a wildcard bind lists every interface, most of them refused).
      await app.listen({ host, port, listenTextResolver: (address) => listenText(address) });
      const address = app.server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : port;
      return `http://${hostnameForm(urlHost(host))}:${bound}`;
    },
    async close() {
      await app.close();
    },
  };
}
