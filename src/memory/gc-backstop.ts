/**
 * The garbage-collection backstop. `free()` (or `using`) is the way to return memory; a buffer
 * dropped without it still goes back to its handler after garbage collection, counted as
 * `gcReleased` so that leaks show in the statistics.
 *
 * Kept off the fast path: a buffer is registered with the FinalizationRegistry only if it is
 * still alive at the end of the tick that made it, so the common alloc-use-free within one tick
 * costs an array push. Collected blocks are freed from a setImmediate batch, never inside the
 * collector's callback. The registry's target is the block's own ArrayBuffer (or a slab
 * view); if `transfer()` moved the memory into another ArrayBuffer, native code keeps the block
 * out of use until that one is collected too (its finalizer ends the lease).
 */
import { binding, type NativeHandle } from '../boundary/native.js';
import type { ScopeAccount, ScopeFrame } from './scope-cells.js';
import { freeChannel, type FreeMessage } from '../boundary/channels.js';

/** What the backstop needs to free a block; it must not reach the block's views. */
export interface BlockRecord {
  handle: NativeHandle;
  /** Keeps the JS handler (and so the native one) alive while the block is. */
  owner: { readonly name: string };
  /** The measure() scope that counted the block, if any. */
  frame: ScopeFrame | undefined;
  /** The named scope it was allocated in here, which counts it until it is freed (an adopted
   * block's scope is counted by native free()). */
  scope: ScopeAccount | undefined;
  /** The slab view the block was seen through (slabViews pools): one view fewer once freed. */
  slab: { live: number } | undefined;
  /** The block's slot in the native live table. */
  slot: number;
  address: number;
  byteLength: number;
  alignment: number;
}

/** A buffer as the backstop sees it. */
export interface Trackable {
  /** True once freed or transferred: the backstop has nothing to do for it. */
  readonly released: boolean;
  /**
   * Called at the end of the buffer's first tick. Returns the object whose collection proves
   * that no view reaches the block, and the record to free it by; undefined when the buffer
   * was released already. The buffer remembers that it is registered.
   */
  gcRegister(): [target: object, record: BlockRecord] | undefined;
}

const collected: BlockRecord[] = [];
let drainScheduled = false;

function drain(): void {
  drainScheduled = false;
  for (const r of collected.splice(0)) {
    binding.free(r.handle, undefined, r.slot, r.address, true);
    r.frame?.freed(r.byteLength);
    r.scope?.freed(r.byteLength);
    if (r.slab !== undefined) r.slab.live--;
    if (freeChannel.hasSubscribers) {
      const message: FreeMessage = {
        handler: r.owner.name,
        bytes: r.byteLength,
        alignment: r.alignment,
        address: BigInt(r.address),
        byGc: true,
      };
      freeChannel.publish(message);
    }
  }
}

const registry = new FinalizationRegistry<BlockRecord>((record) => {
  collected.push(record);
  if (!drainScheduled) {
    drainScheduled = true;
    setImmediate(drain).unref();
  }
});

let pending: Trackable[] = [];
let flushScheduled = false;
// When `pending` reaches this length, the buffers released meanwhile are dropped from it, so a
// long synchronous loop does not keep every buffer it made (and freed) alive until the end of
// its tick: they would survive young-generation collections and be promoted.
let compactAt = 1024;

function flush(): void {
  flushScheduled = false;
  const batch = pending;
  pending = [];
  compactAt = 1024;
  for (const buffer of batch) {
    const registration = buffer.gcRegister();
    if (registration === undefined) continue;
    const [target, record] = registration;
    registry.register(target, record, buffer);
  }
}

/** Called for every new buffer: registers it at the end of the tick if it is still alive. */
export function track(buffer: Trackable): void {
  if (pending.length >= compactAt) {
    pending = pending.filter((b) => !b.released);
    compactAt = Math.max(1024, 2 * pending.length);
  }
  pending.push(buffer);
  if (!flushScheduled) {
    flushScheduled = true;
    queueMicrotask(flush);
  }
}

/** Called by free() for a registered buffer, so the backstop never frees it again. */
export function untrack(buffer: Trackable): void {
  registry.unregister(buffer);
}

/**
 * Called by free() for a buffer not registered yet: the one made last (alloc, use, free) leaves
 * the list at once, so it can die young.
 */
export function forget(buffer: Trackable): void {
  if (pending[pending.length - 1] === buffer) pending.pop();
}
