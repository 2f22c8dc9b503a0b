/**
 * One error shape for every failure the service reports: `{ error, code, message }`, with the
 * HTTP reason phrase as `error`. Library errors keep their stable `code`; anything unexpected
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
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** 404 for a handler name no one registered: names are never guessed or defaulted. */
export function unknownHandler(name: string): HttpError {
  return new HttpError(
    404,
    'ERR_PINPOOL_UNKNOWN_HANDLER',
    `no handler is registered as ${JSON.stringify(name)}`,
  );
}

export function unknownScope(name: string): HttpError {
  return new HttpError(
    404,
    'ERR_PINPOOL_UNKNOWN_SCOPE',
    `no scope is defined as ${JSON.stringify(name)}`,
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
}

function describe(error: FastifyError | Error): Described {
  if (error instanceof PinpoolError)
    return { status: pinpoolStatus[error.code] ?? 500, code: error.code, message: error.message };
  if (error instanceof HttpError)
    return { status: error.statusCode, code: error.code, message: error.message };
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
  const { status, code, message } = describe(error);
  if (status >= 500) request.log.error({ err: error }, 'request failed');
  return reply.status(status).send({ error: STATUS_CODES[status] ?? 'Error', code, message });
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
