/**
 * Taking a block's ArrayBuffer back from the user, as free() and transfer() must: afterwards no
 * view the user kept reaches the memory.
 *
 * On Node 22 and later this is `ArrayBuffer.prototype.transfer()`: it detaches the user's
 * buffer and returns a new one over the same memory, zero copy, which pinpool keeps (a thread
 * cache hands it out again) or detaches itself. Node-API's own detach is not used on a buffer
 * the user could reach: on Node 24 and later a buffer marked with `markAsUntransferable()` has
 * a detach key, and `napi_detach_arraybuffer` on it aborts the process. transfer() throws
 * instead, and the block then waits until that buffer is collected. Node 20 has no transfer();
 * there native code detaches the buffer (Node 20 has no detach keys either).
 */
import { isMainThread } from 'node:worker_threads';

import { binding, constants } from '../boundary/native.js';

const probe = binding.transferProbe();

/**
 * `ArrayBuffer.prototype.transfer` as it was when pinpool loaded, called without looking it up
 * again, so that code patching the prototype later cannot hand pinpool a foreign buffer.
 * Undefined on Node 20, or where it copies rather than moves an external buffer's memory.
 */
const transfer = (ArrayBuffer.prototype as { transfer?: () => ArrayBuffer }).transfer;
export const transferBuffer: ((buffer: ArrayBuffer) => ArrayBuffer) | undefined = (() => {
  if (typeof transfer !== 'function') return undefined;
  const call = Function.prototype.call.bind(transfer) as (buffer: ArrayBuffer) => ArrayBuffer;
  try {
    // It must move the memory, not copy it: pinpool hands the new buffer out as the block's.
    const moved = call(probe);
    return binding.isProbe(moved) && probe.byteLength === 0 ? call : undefined;
  } catch {
    return undefined;
  }
})();

/** True when a freed block's own ArrayBuffer can be moved, and so kept (Node 22 and later). */
export const movesBuffers = transferBuffer !== undefined;

/**
 * True in a worker where buffers move: an ArrayBuffer pinpool hands out may be posted to another
 * thread and outlive this one, so native code watches each one it hands out (a weak reference),
 * to tell at this thread's end a buffer still here from one that left
 * (native/binding/buffer_lifetime.hpp). A thread cache hands out buffers without native code,
 * so it names each to native code as it keeps it (`binding.track`).
 */
export const watchesBuffers = movesBuffers && !isMainThread;

binding.setBufferMoves(movesBuffers ? transfer : undefined, isMainThread);

/**
 * The ArrayBuffer to hand the user for `buffer`, the external one native code just made over
 * the block in `slot` (at `address`). Where buffers move, a buffer moved out of it: never the
 * external one, which Node's end-of-thread clean-up detaches (and, on Node 24 and later, aborts
 * on when the user marked it untransferable). In a worker, native code watches it (track()).
 */
export function handOut(buffer: ArrayBuffer, slot: number, address: number): ArrayBuffer {
  if (transferBuffer === undefined) return buffer;
  const moved = transferBuffer(buffer);
  if (watchesBuffers) binding.track(slot, address, moved);
  return moved;
}

/**
 * What native free() or transfer() should be given for `buffer`, a block's ArrayBuffer as the
 * user had it: a buffer native code may detach (a new one over the same memory; on Node 20 the
 * buffer itself), or null when the buffer cannot be taken back (moved away by the user's own
 * transfer(), or marked untransferable), so the block must wait until no ArrayBuffer reaches it.
 */
export function takeBack(buffer: ArrayBuffer, slot = -1): ArrayBuffer | null {
  if (transferBuffer === undefined) return buffer;
  let moved: ArrayBuffer;
  try {
    moved = transferBuffer(buffer);
  } catch {
    return null;
  }
  if (watchesBuffers) scratch[TAKING_BACK] = slot;
  return moved;
}

const scratch = binding.scratch();
const TAKING_BACK = constants.slots.takingBack;
scratch[TAKING_BACK] = -1;

/**
 * The native call that follows a take-back (of the block in `slot`: takeBack(), or a thread
 * cache's transfer()) is done. Until then native code knows that the buffer the worker watches
 * was detached by pinpool, not moved away by the user: a thread that ends in between gives the
 * block back instead of orphaning it (native/binding/hot_path.cpp Instance::end).
 */
export function tookBack(): void {
  if (watchesBuffers) scratch[TAKING_BACK] = -1;
}

/** See tookBack(): marks `slot` as taken back by pinpool (a thread cache's keep()). */
export function takingBack(slot: number): void {
  if (watchesBuffers) scratch[TAKING_BACK] = slot;
}
