#!/usr/bin/env node
/**
 * The `pinpool` command: `pinpool info` describes this host; `pinpool serve` registers the
 * default handlers and serves metrics over HTTP until SIGINT or SIGTERM. Only `serve` needs the
 * service packages (fastify, prom-client): it loads them, through server/serve.ts, after
 * checking they are installed, so every other command works with pinpool alone.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

import { formatInfo } from './info-text.js';
import { createLog, LOG_FORMATS, type LogFormat } from './log.js';
import { pinpool } from './pinpool.js';
import { missingServicePackages, servicePackagesMessage } from './service-packages.js';

const { info } = pinpool;

const USAGE = `usage: pinpool <command> [options]

commands:
  info    what this host gives pinpool: CUDA driver and devices, memlock limit
  serve   serve a status page, /metrics, /healthz and /v1/handlers over HTTP
          (needs fastify and prom-client)

  pinpool <command> --help    the command's options
  pinpool --version           the version of pinpool`;

const INFO_USAGE = `usage: pinpool info [--json]

What this host gives pinpool: the CUDA driver and its devices, the memlock limit (ulimit -l)
the locked handler works within, and which copy of pinpool runs this process's registry.

  --json       print info() as JSON
  -h, --help   this text`;

const SERVE_USAGE = `usage: pinpool serve [--host 127.0.0.1] [--port 9464] [--allow-host NAME]... [--demo]
                     [--log-format json|pretty]

Serves a live status page (/, its address printed first), /metrics (Prometheus), /healthz and
/v1/handlers over HTTP until SIGINT or SIGTERM, with the handlers default, pinned, managed,
locked and pageable (those this host can serve).
Needs the service packages; in your project: npm install fastify prom-client

  --host ADDRESS        address to bind (default 127.0.0.1)
  --port N              port to bind; 0 picks a free one (default 9464)
  --allow-host NAME     a Host header name to accept too (for --host 0.0.0.0); repeatable
  --demo                define the scopes ingest and batch and run a small synthetic workload
                        in them and in every handler, so the metrics move
  --log-format FORMAT   json (default): one JSON object a line, as fastify logs;
                        pretty: one readable line each, for people
  -h, --help            this text

Admin endpoints (PUT /v1/default, POST /v1/handlers/NAME/trim, GET and PUT /v1/scopes) exist
only when PINPOOL_ADMIN_TOKEN is set in the environment; clients send
Authorization: Bearer <token>.`;

/** Bad command-line input: reported with the usage text and exit status 2. */
class UsageError extends Error {
  constructor(
    message: string,
    readonly usage = USAGE,
  ) {
    super(message);
  }
}

/** A command that cannot run here: one line, exit status 1, no usage and no stack. */
class CommandError extends Error {}

const commands = {
  info: {
    usage: INFO_USAGE,
    options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  },
  serve: {
    usage: SERVE_USAGE,
    options: {
      help: { type: 'boolean', short: 'h' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '9464' },
      'allow-host': { type: 'string', multiple: true, default: [] },
      demo: { type: 'boolean', default: false },
      'log-format': { type: 'string', default: 'json' },
    },
  },
} as const satisfies Record<string, { usage: string; options: ParseArgsConfig['options'] }>;

type Command = keyof typeof commands;

const isCommand = (name: string): name is Command => Object.hasOwn(commands, name);

/** parseArgs for one command; its errors become usage errors that show that command's usage. */
function parse<C extends Command>(command: C, args: string[]) {
  const { options, usage } = commands[command];
  try {
    return parseArgs<{ args: string[]; options: (typeof commands)[C]['options']; strict: true }>({
      args,
      options,
      strict: true,
    }).values;
  } catch (err) {
    // parseArgs reports unknown and malformed options with ERR_PARSE_ARGS_* codes.
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true)
      throw new UsageError((err as Error).message, usage);
    throw err;
  }
}

function parsePort(text: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 0 && port <= 65535))
    throw new UsageError(
      `--port must be a number from 0 to 65535 (got ${JSON.stringify(text)})`,
      SERVE_USAGE,
    );
  return port;
}

function parseLogFormat(text: string): LogFormat {
  const format = LOG_FORMATS.find((f) => f === text);
  if (format === undefined)
    throw new UsageError(
      `--log-format must be ${LOG_FORMATS.join(' or ')} (got ${JSON.stringify(text)})`,
      SERVE_USAGE,
    );
  return format;
}

function infoCommand(args: string[]): void {
  const values = parse('info', args);
  if (values.help === true) {
    console.log(INFO_USAGE);
    return;
  }
  console.log(values.json === true ? JSON.stringify(info(), null, 2) : formatInfo(info()));
}

async function serveCommand(args: string[]): Promise<void> {
  const values = parse('serve', args);
  if (values.help === true) {
    console.log(SERVE_USAGE);
    return;
  }
  const options = {
    host: values.host,
    port: parsePort(values.port),
    allowedHosts: values['allow-host'],
    demo: values.demo,
  };
  const log = createLog(parseLogFormat(values['log-format']));
  const missing = missingServicePackages();
  if (missing.length > 0) throw new CommandError(servicePackagesMessage('pinpool serve', missing));
  const { serve } = await import('./serve.js');
  await serve(options, log);
}

/** Runs one command line (without node and the script). */
async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined) throw new UsageError('a command is required');
  if (command === '--help' || command === '-h') {
    console.log(USAGE);
    return;
  }
  if (command === 'help') {
    // `pinpool help serve` is `pinpool serve --help`.
    const [topic] = rest;
    if (topic !== undefined && !isCommand(topic))
      throw new UsageError(`unknown command ${JSON.stringify(topic)}`);
    console.log(topic === undefined ? USAGE : commands[topic].usage);
    return;
  }
  if (command === '--version' || command === '-v' || command === 'version') {
    console.log(info().version);
    return;
  }
  if (command === 'info') {
    infoCommand(rest);
    return;
  }
  if (command === 'serve') return serveCommand(rest);
  throw new UsageError(`unknown command ${JSON.stringify(command)}`);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(`pinpool: ${err instanceof Error ? err.message : String(err)}`);
  if (err instanceof UsageError) console.error(err.usage);
  process.exitCode = err instanceof UsageError ? 2 : 1;
});
