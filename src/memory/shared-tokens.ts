/**
 * Tokens of blocks that leave the process: a shared() handler's block, given by `transfer()`
 * (native code marks it in flight in the region), adopted by `adopt()` in any process that may
 * open the region. Kept apart from shared.ts so that HostBuffer can make them without the
 * Handler class.
 */
import { binding, type NativeHandle } from '../boundary/native.js';
import { invalid } from '../boundary/validate.js';

/** A region's name, as native code accepts it (shared_region.cpp valid_name). */
export const REGION = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/;
/** A region's secret. */
export const SECRET = /^[0-9a-f]{32}$/;
const NONCE = /^[0-9a-f]{16}$/;

/**
 * The token `transfer()` returns for a block of a shared() handler: `adopt()` takes it in any
 * process of this user on this host, zero copy, once. It carries the region's secret: send it
 * only to processes you would let open the region.
 */
export interface SharedBufferToken {
  readonly pinpool: 'shared-buffer';
  readonly version: 1;
  readonly region: string;
  readonly secret: string;
  /** The block's first unit in the region. */
  readonly unit: number;
  /** 64 random bits, as 16 hexadecimal digits: the block adopts only with these. */
  readonly nonce: string;
  readonly bytes: number;
}

const keys = new WeakMap<NativeHandle, { region: string; secret: string }>();

/** @internal The token for a block of a shared() handler that native code just gave. */
export function sharedToken(
  handle: NativeHandle,
  [unit, nonce]: [unit: number, nonce: string],
  bytes: number,
): SharedBufferToken {
  let key = keys.get(handle);
  if (key === undefined) {
    const r = binding.region(handle);
    if (r === null) throw invalid('handler', 'a shared() handler', handle);
    key = { region: r.region, secret: r.secret };
    keys.set(handle, key);
  }
  const token: SharedBufferToken = {
    pinpool: 'shared-buffer',
    version: 1,
    region: key.region,
    secret: key.secret,
    unit,
    nonce,
    bytes,
  };
  return Object.freeze(token);
}

/** @internal A shared token's fields, read once and checked; anything else is refused. */
export function readSharedToken(token: object): SharedBufferToken {
  const expected = 'a token from buf.transfer()';
  let t: Partial<Record<keyof SharedBufferToken, unknown>>;
  try {
    t = { ...token };
  } catch {
    throw invalid('token', expected, token);
  }
  if (
    t.version !== 1 ||
    typeof t.region !== 'string' ||
    !REGION.test(t.region) ||
    typeof t.secret !== 'string' ||
    !SECRET.test(t.secret) ||
    !Number.isSafeInteger(t.unit) ||
    (t.unit as number) < 0 ||
    typeof t.nonce !== 'string' ||
    !NONCE.test(t.nonce) ||
    !Number.isSafeInteger(t.bytes) ||
    (t.bytes as number) < 0
  )
    throw invalid('token', expected, token);
  return t as SharedBufferToken;
}
