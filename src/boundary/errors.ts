/**
 * Errors. Every failure pinpool reports is a `PinpoolError` with a stable `code`, so callers
 * can branch on `err.code` and never on message text.
 */

/** The stable codes of PinpoolError's `code`, by name; the type ErrorCode is any one of them. */
export const ErrorCode = {
  INVALID_ARGUMENT: 'ERR_PINPOOL_INVALID_ARGUMENT',
  OUT_OF_MEMORY: 'ERR_PINPOOL_OUT_OF_MEMORY',
  DOUBLE_FREE: 'ERR_PINPOOL_DOUBLE_FREE',
  RELEASED: 'ERR_PINPOOL_RELEASED',
  UNAVAILABLE: 'ERR_PINPOOL_UNAVAILABLE',
  CUDA: 'ERR_PINPOOL_CUDA',
  /** A call this copy of pinpool has but the copy that loaded first in the process lacks. */
  VERSION: 'ERR_PINPOOL_VERSION',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * The optional details a PinpoolError carries besides its code, each also a property of the
 * error: why it failed, the handler, and CUDA's error or a cap's numbers.
 */
export interface PinpoolErrorDetails {
  /** Why, in one word a program can test: 'mlock', 'limit', 'no-cuda', 'out-of-memory' ... */
  reason?: string;
  /** The handler that reported the failure. */
  handler?: string;
  /** For CUDA failures: the CUresult number and its name, e.g. 2 and 'CUDA_ERROR_OUT_OF_MEMORY'. */
  cudaError?: number;
  cudaErrorName?: string;
  /**
   * For a cap's refusal (reason 'mlock', a page-lock cap; reason 'limit', a `limit()`'s
   * maxBytes): the bytes asked for, the cap, and the bytes it held already (locked, or in use
   * through the limit).
   */
  bytes?: number;
  capBytes?: number;
  bytesInUse?: number;
}

/**
 * The one error class of pinpool.
 *
 * @example
 * try { pinned().alloc(4096); } catch (err) {
 *   if (err instanceof PinpoolError && err.code === 'ERR_PINPOOL_UNAVAILABLE') useFallback();
 * }
 */
export class PinpoolError extends Error {
  readonly code: ErrorCode;
  // Declared, not initialised: absent details stay absent instead of own `undefined` properties.
  declare readonly reason?: string;
  declare readonly handler?: string;
  declare readonly cudaError?: number;
  declare readonly cudaErrorName?: string;
  declare readonly bytes?: number;
  declare readonly capBytes?: number;
  declare readonly bytesInUse?: number;

  constructor(code: ErrorCode, message: string, details: PinpoolErrorDetails = {}) {
    super(message);
    this.name = 'PinpoolError';
    this.code = code;
    const self = this as { -readonly [K in keyof PinpoolErrorDetails]: PinpoolErrorDetails[K] };
    if (details.reason !== undefined) self.reason = details.reason;
    if (details.handler !== undefined) self.handler = details.handler;
    if (details.cudaError !== undefined) self.cudaError = details.cudaError;
    if (details.cudaErrorName !== undefined) self.cudaErrorName = details.cudaErrorName;
    if (details.bytes !== undefined) self.bytes = details.bytes;
    if (details.capBytes !== undefined) self.capBytes = details.capBytes;
    if (details.bytesInUse !== undefined) self.bytesInUse = details.bytesInUse;
  }
}

/**
 * @internal The error for something pinpool's own code guarantees that turned out untrue: a bug
 * in pinpool, never the caller's mistake, so it is no PinpoolError and has no code to branch on.
 */
export function internalError(what: string): Error {
  return new Error(`pinpool: internal error: ${what}`);
}
