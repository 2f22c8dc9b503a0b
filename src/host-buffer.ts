/**
 * HostBuffer: one block of host memory from a handler, seen from JavaScript as a Uint8Array
 * over the memory itself (zero copy).
 */
import { ErrorCode, PinpoolError } from './errors.js';
import { track, untrack, type BlockRecord, type Trackable } from './gc-backstop.js';
import { leafOf } from './leaves.js';
import { binding, type NativeHandle, type RegionPin } from './native.js';
import type { ScopeFrame } from './scope-stats.js';
import { freeChannel, type FreeMessage } from './tracing.js';
import { isObject } from './validate.js';

/** The part of a handler a buffer needs; implemented by Handler. */
export interface BufferOwner {
  readonly name: string;
  /** @internal */ readonly handle: NativeHandle;
}

/** A slab of a `slabViews` pool as seen by this thread: one ArrayBuffer, many views. */
export interface SlabView {
  readonly buffer: ArrayBuffer;
  readonly region: number;
  /** Keeps the slab mapped while this thread views it (native RegionPin). */
  readonly pin: RegionPin;
  live: number;
}

const constructing = Symbol('pinpool.HostBuffer');

/** @internal What GPU operations need of a buffer: its memory, as native code reads it. */
export interface HostBlock {
  /** The block's bytes (native code takes its lease from this memory). */
  memory: Uint8Array;
  byteLength: number;
  /** Kind of the leaf that served it: 'pinned', 'managed', 'locked', 'pageable', 'file'. */
  kind: string;
}

/**
 * The token `buf.transfer()` returns and `adopt()` accepts; postMessage can carry it. Its id
 * is 128 random bits, and it names the process it was made in: a guessed, replayed or foreign
 * token adopts nothing.
 */
export interface BufferToken {
  readonly pinpool: 'buffer';
  readonly version: 2;
  readonly id: string;
  readonly process: string;
}

function released(): PinpoolError {
  return new PinpoolError(ErrorCode.RELEASED, 'pinpool: this HostBuffer was released (free() or transfer())');
}

function wrongReceiver(): PinpoolError {
  return new PinpoolError(ErrorCode.INVALID_ARGUMENT, 'pinpool: not a HostBuffer made by pinpool');
}

/**
 * A block of host memory from a pinpool handler.
 *
 * `bytes` is a Uint8Array over the memory itself. Unless the handler was asked to zero it,
 * the block holds whatever it held before (like `Buffer.allocUnsafe`). After `free()`, the
 * ArrayBuffer behind `bytes` is detached, so a stale view reads and writes nothing.
 *
 * @example
 * using buf = pool(locked()).alloc(1 << 20);
 * buf.bytes.fill(7);
 */
export class HostBuffer implements Trackable {
  #owner: BufferOwner;
  #handle: NativeHandle;
  #buffer: ArrayBuffer | undefined; // our own external ArrayBuffer; undefined for a slab view
  #bytes: Uint8Array;
  #address: number;
  #slot: number; // the block's slot in the native live table
  #byteLength: number;
  #alignment: number;
  #servedBy: number;
  #slab: SlabView | undefined;
  #frame: ScopeFrame | undefined; // the measure() scope that counts this buffer
  #released = false;
  #registered = false;

  /** @internal Use `handler.alloc()` or `adopt()`. */
  constructor(
    key: symbol,
    owner: BufferOwner,
    buffer: ArrayBuffer | undefined,
    bytes: Uint8Array,
    slot: number,
    address: number,
    byteLength: number,
    alignment: number,
    servedBy: number,
    slab: SlabView | undefined,
    frame: ScopeFrame | undefined,
  ) {
    if (key !== constructing) throw wrongReceiver();
    this.#owner = owner;
    this.#handle = owner.handle;
    this.#buffer = buffer;
    this.#bytes = bytes;
    this.#slot = slot;
    this.#address = address;
    this.#byteLength = byteLength;
    this.#alignment = alignment;
    this.#servedBy = servedBy;
    this.#slab = slab;
    this.#frame = frame;
    if (frame !== undefined) frame.allocated(byteLength);
    track(this);
  }

  /** The memory, as bytes. Throws ERR_PINPOOL_RELEASED after free(). */
  get bytes(): Uint8Array {
    if (!HostBuffer.#owns(this)) throw wrongReceiver();
    if (this.#released) throw released();
    return this.#bytes;
  }

  /** Size in bytes, as asked for. */
  get byteLength(): number {
    if (!HostBuffer.#owns(this)) throw wrongReceiver();
    return this.#byteLength;
  }

  /** The alignment the block was allocated with, in bytes. */
  get alignment(): number {
    if (!HostBuffer.#owns(this)) throw wrongReceiver();
    return this.#alignment;
  }

  /** The host address of the block (for handing to native code). */
  get address(): bigint {
    if (!HostBuffer.#owns(this)) throw wrongReceiver();
    if (this.#released) throw released();
    return BigInt(this.#address);
  }

  /** The handler that allocated the block; memory goes back through it only. */
  get handler(): BufferOwner {
    if (!HostBuffer.#owns(this)) throw wrongReceiver();
    return this.#owner;
  }

  /** Name of the leaf handler whose memory this is ('pinned', 'locked', 'pageable' ...). */
  get servedBy(): string {
    if (!HostBuffer.#owns(this)) throw wrongReceiver();
    return leafOf(this.#servedBy).name;
  }

  /** Kind of that leaf: 'pinned', 'managed', 'locked' or 'pageable'. */
  get kind(): string {
    if (!HostBuffer.#owns(this)) throw wrongReceiver();
    return leafOf(this.#servedBy).kind;
  }

  /** True once the buffer was freed or transferred. */
  get released(): boolean {
    if (!HostBuffer.#owns(this)) throw wrongReceiver();
    return this.#released;
  }

  /**
   * Returns the block to its handler and detaches `bytes`. A second call throws
   * ERR_PINPOOL_DOUBLE_FREE.
   */
  free(): void {
    if (!HostBuffer.#owns(this)) throw wrongReceiver();
    if (this.#released) {
      throw new PinpoolError(ErrorCode.DOUBLE_FREE, 'pinpool: this HostBuffer was already freed');
    }
    this.#release();
    // Native code detaches the buffer, and the block waits for every lease on its memory (a
    // copy in flight, an ArrayBuffer that escaped) before it is handed out again.
    binding.free(this.#handle, this.#buffer, this.#slot, this.#address, false);
    if (freeChannel.hasSubscribers) {
      const message: FreeMessage = { handler: this.#owner.name, bytes: this.#byteLength, alignment: this.#alignment, address: this.#address, byGc: false };
      freeChannel.publish(message);
    }
  }

  /** `using buf = handler.alloc(n)` frees at the end of the scope; a released buffer is left alone. */
  [Symbol.dispose](): void {
    if (!HostBuffer.#owns(this)) throw wrongReceiver();
    if (!this.#released) this.free();
  }

  /**
   * Moves ownership to another thread, zero copy: returns a token for postMessage and releases
   * this buffer here (its views are detached). `adopt(token)` in the receiving thread returns a
   * HostBuffer over the same memory. Adopt each token once; an unadopted token keeps its memory.
   */
  transfer(): BufferToken {
    if (!HostBuffer.#owns(this)) throw wrongReceiver();
    if (this.#released) throw released();
    const [id, process] = binding.transfer(this.#handle, this.#buffer, this.#slot, this.#address);
    this.#release();
    return Object.freeze({ pinpool: 'buffer', version: 2, id, process });
  }

  /**
   * Managed memory only: migrates the block to `device` (or 'host') ahead of use. Resolves
   * when the migration is done.
   */
  prefetch(device: number | 'host', options?: { stream?: import('./gpu.js').Stream }): Promise<void> {
    return (require('./gpu.js') as typeof import('./gpu.js')).prefetch(this, device, options);
  }

  /**
   * Managed memory only: cuMemAdvise. `advice` is 'readMostly', 'preferredLocation' or
   * 'accessedBy' (or their 'unset...' forms); `device` a device index or 'host'.
   */
  advise(advice: import('./gpu.js').Advice, device: number | 'host'): void {
    (require('./gpu.js') as typeof import('./gpu.js')).advise(this, advice, device);
  }

  /**
   * @internal The memory of `value` if it is a live HostBuffer, undefined if it is not a
   * HostBuffer at all. A brand check: no getter or Proxy trap of `value` runs.
   */
  static blockOf(value: unknown): HostBlock | undefined {
    if (!HostBuffer.#owns(value)) return undefined;
    if (value.#released) throw released();
    return { memory: value.#bytes, byteLength: value.#byteLength, kind: leafOf(value.#servedBy).kind };
  }

  /** A brand check that a primitive `this` cannot make throw, and no getter or trap runs. */
  static #owns(value: unknown): value is HostBuffer {
    return isObject(value) && #released in value;
  }

  #release(): void {
    this.#released = true;
    if (this.#registered) untrack(this);
    if (this.#slab !== undefined) this.#slab.live--;
    if (this.#frame !== undefined) this.#frame.freed(this.#byteLength);
  }

  /** @internal */
  gcRegister(): [object, BlockRecord] | undefined {
    if (this.#released) return undefined;
    this.#registered = true;
    // A slab view shares its ArrayBuffer, so the view object itself is what must die.
    const target = this.#buffer ?? this.#bytes;
    return [
      target,
      {
        handle: this.#handle,
        owner: this.#owner,
        frame: this.#frame,
        slab: this.#slab,
        slot: this.#slot,
        address: this.#address,
        byteLength: this.#byteLength,
        alignment: this.#alignment,
      },
    ];
  }

  get [Symbol.toStringTag](): string {
    return 'HostBuffer';
  }
}

/** @internal Wraps a block just allocated (or adopted) into a HostBuffer. */
export function makeHostBuffer(
  owner: BufferOwner,
  buffer: ArrayBuffer | undefined,
  slot: number,
  address: number,
  byteLength: number,
  alignment: number,
  servedBy: number,
  slab: SlabView | undefined,
  frame: ScopeFrame | undefined,
): HostBuffer {
  let bytes: Uint8Array;
  if (slab !== undefined) {
    bytes = new Uint8Array(slab.buffer, address - slab.region, byteLength);
    slab.live++;
  } else {
    // A pool block must never move to another thread by postMessage: the pool would lose it.
    // Node never transfers an external ArrayBuffer (Node 22+ throws DataCloneError, Node 20
    // copies the bytes), so no marking is needed; markAsUntransferable would even break free()
    // on Node 24, whose detach key makes napi_detach_arraybuffer abort the process.
    bytes = new Uint8Array(buffer as ArrayBuffer);
  }
  return new HostBuffer(constructing, owner, buffer, bytes, slot, address, byteLength, alignment, servedBy, slab, frame);
}
