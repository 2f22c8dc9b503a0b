/**
 * Worker threads: reach a handler from another thread (attach), and move a buffer's ownership
 * to another thread (adopt). Tokens are small frozen objects that postMessage carries.
 */
import { ADDRESS, LIVE_SLOT, scratch, SERVED_BY } from '../boundary/cells.js';
import { ErrorCode, internalError, PinpoolError } from '../boundary/errors.js';
import { existingWrapper, wrapperOf, type Handler, type HandlerToken } from '../memory/handler.js';
import { Block, HostBuffer, makeHostBuffer, type BufferToken } from '../memory/host-buffer.js';
import { binding, constants, type NativeHandle } from '../boundary/native.js';
import { handOut } from '../memory/take-back.js';
import { invalid, isArray, isObject, readValue } from '../boundary/validate.js';
import { readSharedToken, type SharedBufferToken } from '../memory/shared-tokens.js';

const HEX = /^[0-9a-f]+$/;

/** What native code says of the handler it just attached or adopted a block of. */
function describe(handle: NativeHandle): { id: number; name: string; kind: string } {
  const d = binding.describe(handle);
  if (d === null)
    throw internalError('attach() or adopt() gave a handle that is no native handler');
  return d;
}

/** Reads a token's fields once; anything but a token of this version is INVALID_ARGUMENT. */
function readToken(
  token: unknown,
  kind: 'handler' | 'buffer',
): {
  id: number | string;
  secret: string;
  process: string;
  slabViews: boolean;
  threadCacheBytes: number | undefined;
} {
  const expected = `a token from ${kind === 'handler' ? 'handler.share()' : 'buf.transfer()'}`;
  if (token === null || typeof token !== 'object' || isArray(token))
    throw invalid('token', expected, token);
  let t: {
    pinpool?: unknown;
    version?: unknown;
    id?: unknown;
    secret?: unknown;
    process?: unknown;
    slabViews?: unknown;
    threadCacheBytes?: unknown;
    scope?: unknown;
  };
  try {
    t = { ...token };
  } catch {
    throw invalid('token', expected, token);
  }
  const hex = (v: unknown, digits: number) =>
    typeof v === 'string' && v.length === digits && HEX.test(v);
  const idOk =
    kind === 'handler'
      ? typeof t.id === 'number' && Number.isSafeInteger(t.id) && t.id > 0
      : hex(t.id, 32);
  const cacheOk =
    t.threadCacheBytes === undefined ||
    t.threadCacheBytes === Infinity ||
    (typeof t.threadCacheBytes === 'number' &&
      Number.isSafeInteger(t.threadCacheBytes) &&
      t.threadCacheBytes >= 0);
  // No token names a scope (the scope travels with the block, in native code): one that does was
  // forged, or trusted by an older pinpool, and is refused before anything is taken.
  const scopeOk = t.scope === undefined;
  if (
    t.pinpool !== kind ||
    t.version !== 2 ||
    !idOk ||
    !hex(t.process, 16) ||
    (kind === 'handler' && !hex(t.secret, 32)) ||
    !cacheOk ||
    !scopeOk
  ) {
    throw invalid('token', expected, token);
  }
  return {
    id: t.id as number | string,
    secret: (t.secret as string | undefined) ?? '',
    process: t.process as string,
    slabViews: t.slabViews === true,
    threadCacheBytes: t.threadCacheBytes as number | undefined,
  };
}

/**
 * Wraps, in this thread, the native handler behind a token from `handler.share()`.
 *
 * @example
 * // main: worker.postMessage(h.share());  worker: const h = attach(msg);
 */
export function attach(token: HandlerToken): Handler {
  const t = readToken(token, 'handler');
  const handle = binding.attach(t.id as number, t.secret, t.process);
  if (handle === null) {
    throw new PinpoolError(
      ErrorCode.RELEASED,
      `pinpool: handler ${t.id} is gone (its last reference was dropped)`,
    );
  }
  const d = describe(handle);
  if (t.slabViews && d.kind !== 'pool') throw invalid('token', 'slabViews only for a pool', token);
  return wrapperOf(handle, t.id as number, t.slabViews, t.threadCacheBytes);
}

/**
 * Takes ownership of a buffer sent with `buf.transfer()`: same memory, zero copy, once. A
 * shared() handler's token is adopted in any process of the same user on the host (the region
 * is opened here if it is not yet); it adopts nothing once its giver has died.
 */
export function adopt(token: BufferToken | SharedBufferToken): HostBuffer {
  // Read once: a getter may not answer one way here and another below.
  const fields: unknown =
    isObject(token) && !isArray(token) ? readValue(() => ({ ...token }), 'token') : token;
  if (isObject(fields) && (fields as { pinpool?: unknown }).pinpool === 'shared-buffer')
    return adoptShared(readSharedToken(fields));
  const t = readToken(fields, 'buffer');
  const parcel = binding.adopt(t.id as string, t.process);
  if (parcel === null) throw notAdopted();
  const { handler: handle, buffer, bytes: byteLength, alignment } = parcel;
  const owner = wrapperOf(handle, describe(handle).id);
  return adopted(owner, buffer, byteLength, alignment);
}

function notAdopted(): PinpoolError {
  return new PinpoolError(
    ErrorCode.RELEASED,
    'pinpool: this buffer token was already adopted (or never issued, or its giver died)',
  );
}

/** A block another process gave: its handler is the region's here, whose id native code reports. */
function adoptShared(t: SharedBufferToken): HostBuffer {
  const buffer = binding.adoptShared(t.region, t.secret, t.unit, t.nonce, t.bytes);
  if (buffer === null) throw notAdopted();
  const id = scratch[SERVED_BY];
  const owner =
    existingWrapper(id) ??
    wrapperOf(binding.blockHandler(scratch[LIVE_SLOT], scratch[ADDRESS]), id);
  return adopted(owner, buffer, t.bytes, constants.pageSize);
}

/** The HostBuffer over a block adopt() took, as native code reported it in scratch. */
function adopted(owner: Handler, buffer: ArrayBuffer, byteLength: number, alignment: number) {
  const address = scratch[ADDRESS];
  const servedBy = scratch[SERVED_BY];
  // An adopted block goes back through native free(): it came with the leases of the thread it
  // left, which a thread cache could not wait for.
  const block = new Block({
    owner,
    slot: scratch[LIVE_SLOT],
    address,
    byteLength,
    alignment,
    servedBy,
    slab: undefined,
    classBytes: 0,
    cache: undefined,
  });
  // Allocated in a named scope (of any thread): native code counts its free there, from the
  // live table, whatever ends it (free, collection, this thread's end).
  return makeHostBuffer(block, handOut(buffer, block.slot, address), undefined);
}
