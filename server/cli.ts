#!/usr/bin/env node
/**
 * The `pinpool` command: `pinpool info` describes this host; `pinpool serve` registers the
 * default handlers and serves metrics over HTTP until SIGINT or SIGTERM.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

// First: says what to install when the service's optional dependencies are missing.
import './requires.js';

import { pinpool } from './pinpool.js';
import { createServer, type PinpoolServer } from './app.js';
import { defineDemoScopes, registerDefaultHandlers } from './defaults.js';
import { startDemo, type Demo } from './demo.js';
import { formatInfo } from './info-text.js';

const { controller, info } = pinpool;

const USAGE = `usage: pinpool info [--json]
       pinpool serve [--host 127.0.0.1] [--port 9464] [--allow-host NAME]... [--demo]
       pinpool --version | --help        (and --help after any command)

  info    what this host gives pinpool: CUDA driver and devices, memlock limit
  serve   serve /metrics, /healthz and /v1/handlers; --port 0 picks a free port;
          --allow-host adds a Host header name to accept (for --host 0.0.0.0);
          --demo defines the scopes ingest and batch and runs a small synthetic
          workload in them and in every handler, so the metrics move.
          Admin endpoints need PINPOOL_ADMIN_TOKEN in the environment.`;

/** Bad command-line input: reported with the usage text and exit status 2. */
class UsageError extends Error {}

const commands = {
  info: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  serve: {
    help: { type: 'boolean', short: 'h' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '9464' },
    'allow-host': { type: 'string', multiple: true, default: [] },
    demo: { type: 'boolean', default: false },
  },
} as const satisfies Record<string, ParseArgsConfig['options']>;

function parsePort(text: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 0 && port <= 65535))
    throw new UsageError(`--port must be a number from 0 to 65535 (got ${JSON.stringify(text)})`);
  return port;
}

/** Closes the server on the first SIGINT or SIGTERM; a second signal exits at once. */
function closeOnSignals(server: PinpoolServer, demo: Demo | undefined): void {
  let closing = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) {
      console.error(`pinpool: ${signal} again, exiting without waiting`);
      process.exit(1);
    }
    closing = true;
    console.log(`pinpool: ${signal}, closing`);
    demo?.stop();
    // A client that never finishes must not hold the process forever.
    const deadline = setTimeout(() => {
      console.error('pinpool: close timed out');
      process.exit(1);
    }, 10_000).unref();
    server.close().then(
      () => {
        clearTimeout(deadline);
      },
      (err: unknown) => {
        console.error(`pinpool: close failed: ${err instanceof Error ? err.message : String(err)}`);
        process.exitCode = 1;
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

async function serve(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: commands.serve, strict: true });
  if (values.help === true) {
    console.log(USAGE);
    return;
  }
  const port = parsePort(values.port);
  const names = registerDefaultHandlers(controller);
  const scopes = values.demo ? defineDemoScopes(controller) : [];
  // Admin actions (scope switches) are logged as JSON lines, with the request id.
  const server = createServer({
    controller,
    host: values.host,
    port,
    allowedHosts: values['allow-host'],
    logger: true,
  });
  const url = await server.listen();
  const demo = values.demo ? startDemo({ controller }) : undefined;
  closeOnSignals(server, demo);
  const admin = server.app.hasRoute({ method: 'PUT', url: '/v1/default' })
    ? 'on'
    : 'off (set PINPOOL_ADMIN_TOKEN)';
  const boundTo = new Map(controller.scopes().map((s) => [s.name, s.handler]));
  const scoped =
    scopes.length === 0
      ? ''
      : `, scopes ${scopes.map((s) => `${s} -> ${boundTo.get(s) ?? '?'}`).join(', ')}`;
  console.log(
    `pinpool: serving ${url} with handlers ${names.join(', ')}${scoped}${demo === undefined ? '' : ' and a demo workload'}; admin endpoints ${admin}`,
  );
  console.log(`pinpool: open ${url}/metrics`);
}

/** Runs one command line (without node and the script). */
async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    if (command === undefined) throw new UsageError('a command is required');
    console.log(USAGE);
    return;
  }
  if (command === '--version' || command === '-v' || command === 'version') {
    console.log(info().version);
    return;
  }
  if (command === 'info') {
    const { values } = parseArgs({ args: rest, options: commands.info, strict: true });
    if (values.help === true) {
      console.log(USAGE);
      return;
    }
    console.log(values.json === true ? JSON.stringify(info(), null, 2) : formatInfo(info()));
    return;
  }
  if (command === 'serve') return serve(rest);
  throw new UsageError(`unknown command ${JSON.stringify(command)}`);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  // parseArgs reports unknown and malformed options with ERR_PARSE_ARGS_* codes.
  const usage =
    err instanceof UsageError ||
    (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true;
  console.error(`pinpool: ${message}`);
  if (usage) console.error(USAGE);
  process.exitCode = usage ? 2 : 1;
});
