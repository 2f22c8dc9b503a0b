/**
 * Worker threads: reach a handler from another thread (attach), and move a buffer's ownership
 * to another thread (adopt). Tokens are small frozen objects that postMessage carries.
 */
import { ErrorCode, PinpoolError } from './errors.js';
import { Handler, type HandlerToken } from './handler.js';
import { makeHostBuffer, type BufferToken, type HostBuffer } from './host-buffer.js';
import { binding, Slot, type NativeHandle } from './native.js';
import { invalid } from './validate.js';

const scratch = binding.scratch();

function tokenId(token: unknown, kind: 'handler' | 'buffer'): number {
  const t = token as { pinpool?: unknown; version?: unknown; id?: unknown } | null;
  if (
    t === null ||
    typeof t !== 'object' ||
    t.pinpool !== kind ||
    t.version !== 1 ||
    typeof t.id !== 'number' ||
    !Number.isSafeInteger(t.id) ||
    t.id <= 0
  ) {
    throw invalid('token', `a token from ${kind === 'handler' ? 'handler.share()' : 'buf.transfer()'}`, token);
  }
  return t.id;
}

/** This thread's wrappers by native id, so one native handler has one wrapper per thread. */
const wrappers = new Map<number, WeakRef<Handler>>();

function wrapperOf(handle: NativeHandle, id: number, slabViews = false): Handler {
  const existing = wrappers.get(id)?.deref();
  if (existing !== undefined) return existing;
  const h = new Handler(handle, [], slabViews);
  wrappers.set(id, new WeakRef(h));
  return h;
}

/**
 * Wraps, in this thread, the native handler behind a token from `handler.share()`.
 *
 * @example
 * // main: worker.postMessage(h.share());  worker: const h = attach(msg);
 */
export function attach(token: HandlerToken): Handler {
  const id = tokenId(token, 'handler');
  const handle = binding.attach(id);
  if (handle === null) {
    throw new PinpoolError(ErrorCode.RELEASED, `pinpool: handler ${id} is gone (its last reference was dropped)`);
  }
  return wrapperOf(handle, id, (token as { slabViews?: unknown }).slabViews === true);
}

/** Takes ownership of a buffer sent with `buf.transfer()`: same memory, zero copy, once. */
export function adopt(token: BufferToken): HostBuffer {
  const id = tokenId(token, 'buffer');
  const parcel = binding.adopt(id);
  if (parcel === null) {
    throw new PinpoolError(ErrorCode.RELEASED, `pinpool: buffer token ${id} was already adopted`);
  }
  const [handle, buffer, byteLength, alignment] = parcel;
  const address = scratch[Slot.address]!;
  const servedBy = scratch[Slot.servedBy]!;
  const owner = wrapperOf(handle, binding.describe(handle)!.id);
  return makeHostBuffer(owner, buffer, address, byteLength, alignment, servedBy, undefined, undefined);
}
