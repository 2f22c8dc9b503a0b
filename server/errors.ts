/**
 * One error shape for every failure the service reports: `{ error, code, message }`, with the
 * HTTP reason phrase as `error` (a 404 for an unknown name adds `known`, the names there are). Library errors keep their stable `code`; anything unexpected
 * becomes a bare 500, so no stack or internal message ever reaches a client.
 */
import { STATUS_CODES } from 'node:http';

import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';

import { pinpool } from './pinpool.js';

const { ErrorCode, PinpoolError } = pinpool;

/** An error the service raises on purpose, with the status it should answer. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    /** More fields for the body, after `error`, `code` and `message` (e.g. the known names). */
    readonly fields: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** ' (known: a, b)', as the controller words it (src/scope/controller.ts). */
const knownText = (known: readonly string[]): string => ` (known: ${known.join(', ') || 'none'})`;

/**
 * 404 for a handler name no one registered: names are never guessed or defaulted. The body
 * lists the names that are registered, in `message` and in `known`.
 */
export function unknownHandler(name: string, known: readonly string[]): HttpError {
  return new HttpError(
    404,
    'ERR_PINPOOL_UNKNOWN_HANDLER',
    `no handler is registered as ${JSON.stringify(name)}${knownText(known)}`,
    { known },
  );
}

/** 404 for a scope name no one defined; the body lists the scopes that are defined. */
export function unknownScope(name: string, known: readonly string[]): HttpError {
  return new HttpError(
    404,
    'ERR_PINPOOL_UNKNOWN_SCOPE',
    `no scope is defined as ${JSON.stringify(name)}${knownText(known)}`,
    { known },
  );
}

/**
 * 404 for an admin route on a service without an admin token (decision 0008: the routes are
 * not registered). Says how to turn them on; names the setting, never a value.
 */
export function adminRoutesOff(method: string, path: string): HttpError {
  return new HttpError(
    404,
    'ERR_ADMIN_ROUTES_OFF',
    `${method} ${path} is an admin route, and admin routes are off: this service has no admin token. ` +
      'To turn them on, start it with PINPOOL_ADMIN_TOKEN set in its environment ' +
      "(or createServer's adminToken option), then send Authorization: Bearer <token>",
  );
}

// Out of memory and a missing driver are the host's state, not the client's mistake: 503.
// Partial: an error may carry a code newer than this table; it answers 500.
const pinpoolStatus: Partial<Record<(typeof ErrorCode)[keyof typeof ErrorCode], number>> = {
  [ErrorCode.INVALID_ARGUMENT]: 400,
  [ErrorCode.DOUBLE_FREE]: 409,
  [ErrorCode.RELEASED]: 409,
  [ErrorCode.OUT_OF_MEMORY]: 503,
  [ErrorCode.UNAVAILABLE]: 503,
  [ErrorCode.CUDA]: 500,
  // The service calls something the copy of pinpool that loaded first lacks: the install's fault.
  [ErrorCode.VERSION]: 500,
};

interface Described {
  status: number;
  code: string;
  message: string;
  fields?: Readonly<Record<string, unknown>>;
}

function describe(error: FastifyError | Error): Described {
  if (error instanceof PinpoolError)
    return { status: pinpoolStatus[error.code] ?? 500, code: error.code, message: error.message };
  if (error instanceof HttpError)
    return {
      status: error.statusCode,
      code: error.code,
      message: error.message,
      fields: error.fields,
    };
  // Fastify's own 4xx errors (validation, body too large, bad JSON, poisoned JSON, media type)
  // carry messages written for clients; a 5xx from anywhere is described by its status only.
  const status = (error as FastifyError).statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return {
      status,
      code: (error as Partial<FastifyError>).code ?? 'ERR_HTTP',
      message: error.message,
    };
  }
  return { status: 500, code: 'ERR_INTERNAL', message: 'internal error' };
}

/** The service's one error handler (fastify's setErrorHandler). */
export function sendError(
  error: FastifyError | Error,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  const { status, code, message, fields } = describe(error);
  if (status >= 500) request.log.error({ err: error }, 'request failed');
  return reply
    .status(status)
    .send({ error: STATUS_CODES[status] ?? 'Error', code, message, ...fields });
}

/** The service's not-found handler: the same shape as every other error. */
export function sendNotFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return sendError(
    new HttpError(
      404,
      'ERR_NOT_FOUND',
      `no route ${request.method} ${request.url.split('?')[0] ?? request.url}`,
    ),
    request,
    reply,
  );
}
