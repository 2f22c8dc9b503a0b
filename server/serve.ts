/**
 * `pinpool serve`: registers the default handlers and serves metrics over HTTP until SIGINT or
 * SIGTERM. Loaded by server/cli.ts only once the service packages are known to be installed,
 * so the other commands never load fastify. Everything it prints goes through one log
 * (server/log.ts), fastify's lines included.
 */
import { createServer, type PinpoolServer } from './app.js';
import { defineDemoScopes, registerDefaultHandlers } from './defaults.js';
import { startDemo, type Demo } from './demo.js';
import { errorFields, type Log } from './log.js';
import { pinpool } from './pinpool.js';

const { controller } = pinpool;

export interface ServeOptions {
  host: string;
  port: number;
  allowedHosts: readonly string[];
  demo: boolean;
}

/** How long close() may wait for clients before the process exits anyway, in milliseconds. */
const CLOSE_DEADLINE_MS = 10_000;

/** Closes the server on the first SIGINT or SIGTERM; a second signal exits at once. */
function closeOnSignals(server: PinpoolServer, demo: Demo | undefined, log: Log): void {
  let closing = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) {
      log.warn(`pinpool: ${signal} again, exiting without waiting`, { signal });
      process.exit(1);
    }
    closing = true;
    log.info(`pinpool: ${signal}, closing`, { signal });
    demo?.stop();
    // A client that never finishes must not hold the process forever.
    const deadline = setTimeout(() => {
      log.error('pinpool: close timed out', { deadlineMs: CLOSE_DEADLINE_MS });
      process.exit(1);
    }, CLOSE_DEADLINE_MS).unref();
    server.close().then(
      () => {
        clearTimeout(deadline);
      },
      (err: unknown) => {
        const message = err instanceof Error ? err.message : String(err);
        log.error(`pinpool: close failed: ${message}`, errorFields(err));
        process.exitCode = 1;
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

async function start(options: ServeOptions, log: Log): Promise<void> {
  const names = registerDefaultHandlers(controller);
  const scopes = options.demo ? defineDemoScopes(controller) : [];
  // Admin actions (scope switches) are logged with the request id, in the same lines.
  const server = createServer({
    controller,
    host: options.host,
    port: options.port,
    allowedHosts: options.allowedHosts,
    logger: { stream: log.stream },
  });
  // fastify logs "pinpool: status page at <address>/" first, one line per address it binds.
  const url = await server.listen();
  const demo = options.demo ? startDemo({ controller }) : undefined;
  closeOnSignals(server, demo, log);
  const admin = server.app.hasRoute({ method: 'PUT', url: '/v1/default' });
  const boundTo = Object.fromEntries(controller.scopes().map((s) => [s.name, s.handler]));
  const scoped =
    scopes.length === 0
      ? ''
      : `, scopes ${scopes.map((s) => `${s} -> ${boundTo[s] ?? '?'}`).join(', ')}`;
  log.info(
    `pinpool: serving ${url} with handlers ${names.join(', ')}${scoped}${demo === undefined ? '' : ' and a demo workload'}; admin endpoints ${admin ? 'on' : 'off (set PINPOOL_ADMIN_TOKEN)'}`,
    { url, handlers: names, scopes: boundTo, demo: demo !== undefined, admin },
  );
  log.info(`pinpool: open ${url}/metrics`, { metrics: `${url}/metrics` });
}

/**
 * Runs `pinpool serve`. A failure to start (a port in use, a bad PINPOOL_ADMIN_TOKEN) is logged
 * as an error line and sets the exit status to 1.
 *
 * @example
 * await serve({ host: '127.0.0.1', port: 9464, allowedHosts: [], demo: false }, createLog('json'));
 */
export async function serve(options: ServeOptions, log: Log): Promise<void> {
  try {
    await start(options, log);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    // pinpool's own errors already begin with 'pinpool: '.
    log.error(message.startsWith('pinpool: ') ? message : `pinpool: ${message}`, errorFields(err));
    process.exitCode = 1;
  }
}
