/**
 * The lines `pinpool serve` prints, in one format whoever writes them: fastify's logger (pino)
 * and the CLI itself. `json` (the default) is pino's shape, one object a line: `level` (pino's
 * numbers: 30 info, 40 warn, 50 error), `time` (milliseconds since the epoch), `pid`,
 * `hostname`, the fields, then `msg`. `pretty` turns each into one line for people:
 * `time LEVEL msg key=value...`. Warnings and errors go to stderr, the rest to stdout. Needs no
 * package: the CLI uses it before it knows whether fastify is installed.
 */
import { hostname } from 'node:os';

export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** pino's level numbers and names. */
const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;
const LEVEL_NAMES = new Map<number, string>(Object.entries(LEVELS).map(([n, v]) => [v, n]));

/** Where lines go: process.stdout and process.stderr, or anything with write(). */
export interface LogOutputs {
  out: { write(text: string): unknown };
  err: { write(text: string): unknown };
}

export interface Log {
  /** Takes pino's JSON lines: fastify's `logger: { stream }` (createServer's logger option). */
  readonly stream: { write(chunk: string): void };
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** An error as pino's serializer writes it, less the stack for errors that carry a code. */
export function errorFields(err: unknown): { err: Record<string, unknown> } {
  if (!(err instanceof Error)) return { err: { message: String(err) } };
  const code = (err as { code?: unknown }).code;
  // A coded error (EADDRINUSE, ERR_PINPOOL_*) says what happened; a stack helps only for a bug.
  return code === undefined
    ? { err: { type: err.name, message: err.message, stack: err.stack } }
    : { err: { type: err.name, message: err.message, code } };
}

/** A field's value for a person: bare when it reads unambiguously, else as JSON. */
function valueText(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null)
    return String(value);
  // JSON.stringify gives undefined for a function or undefined: say so rather than drop it.
  const json = JSON.stringify(value) as string | undefined;
  return json ?? typeof value;
}

/**
 * One pino record as one line for a person.
 *
 * @example
 * prettyLine({ level: 30, time: 0, msg: 'pinpool: open', url: 'http://127.0.0.1:9464' });
 * // '1970-01-01T00:00:00.000Z INFO  pinpool: open url=http://127.0.0.1:9464'
 */
export function prettyLine(record: Record<string, unknown>): string {
  const { level, time, msg, ...fields } = record;
  delete fields.pid; // the same on every line: noise for a person
  delete fields.hostname;
  const when =
    typeof time === 'number' && Number.isFinite(time)
      ? new Date(time).toISOString()
      : valueText(time);
  const name = (LEVEL_NAMES.get(level as number) ?? valueText(level)).toUpperCase();
  // One line each: a message with line breaks keeps them as \n.
  const text = (typeof msg === 'string' ? msg : valueText(msg ?? '')).replace(/\r?\n/g, '\\n');
  const rest = Object.entries(fields).map(([key, value]) => ` ${key}=${valueText(value)}`);
  return `${when} ${name.padEnd(5)} ${text}${rest.join('')}`;
}

/**
 * A log in `format`, writing to stdout and stderr unless told otherwise.
 *
 * @example
 * const log = createLog('pretty');
 * const server = createServer({ logger: { stream: log.stream } });
 * log.info('pinpool: serving', { url: await server.listen() });
 */
export function createLog(
  format: LogFormat,
  outputs: LogOutputs = { out: process.stdout, err: process.stderr },
): Log {
  const base = { pid: process.pid, hostname: hostname() };

  /** Writes one record; `line` is its JSON when it came from pino as text. */
  const emit = (record: Record<string, unknown>, line: string): void => {
    const to = typeof record.level === 'number' && record.level >= LEVELS.warn ? 'err' : 'out';
    outputs[to].write(`${format === 'json' ? line : prettyLine(record)}\n`);
  };

  const write = (level: number, msg: string, fields: Record<string, unknown> = {}): void => {
    const record = { level, time: Date.now(), ...base, ...fields, msg };
    emit(record, JSON.stringify(record));
  };

  return {
    stream: {
      write(chunk: string) {
        for (const line of chunk.split('\n')) {
          if (line === '') continue;
          let record: unknown;
          try {
            record = JSON.parse(line);
          } catch {
            record = undefined;
          }
          // pino writes only objects; anything else is passed on as a message of its own.
          if (typeof record === 'object' && record !== null && !Array.isArray(record))
            emit(record as Record<string, unknown>, line);
          else write(LEVELS.info, line);
        }
      },
    },
    info(msg, fields) {
      write(LEVELS.info, msg, fields);
    },
    warn(msg, fields) {
      write(LEVELS.warn, msg, fields);
    },
    error(msg, fields) {
      write(LEVELS.error, msg, fields);
    },
  };
}
