/**
 * HostBuffer: one block of host memory from a handler, seen from JavaScript as a Uint8Array
 * over the memory itself (zero copy).
 */
import { ErrorCode, internalError, PinpoolError } from '../boundary/errors.js';
import { forget, track, untrack, type BlockRecord } from './gc-backstop.js';
import { leafOf } from './leaves.js';
import { binding, type SlabLease } from '../boundary/native.js';
import type { Handler, LeafKind } from './handler.js';
import type { ScopeAccount, ScopeFrame } from './scope-cells.js';
import type { ThreadCache } from './thread-cache.js';
import { takeBack, tookBack } from './take-back.js';
import { freeChannel, type FreeMessage } from '../boundary/channels.js';
import { invalid, isObject } from '../boundary/validate.js';
import { sharedToken, type SharedBufferToken } from './shared-tokens.js';
import {
  hexAddress,
  inspectAs,
  inspectSymbol,
  type InspectArguments,
} from '../boundary/inspect.js';

/** A slab of a `slabViews` pool as seen by this thread: one ArrayBuffer, many views. */
export interface SlabView {
  /** The slab's ArrayBuffer; an empty one once the slab is released (trim()). */
  buffer: ArrayBuffer;
  /** Where the slab starts. */
  readonly address: number;
  /** Keeps the slab mapped while this thread views it (native SlabLease). */
  readonly lease: SlabLease;
  live: number;
}

const constructing = Symbol('pinpool.HostBuffer');

/** @internal What GPU operations need of a buffer: its memory, as native code reads it. */
export interface HostBlock {
  /** The block's bytes (native code takes its lease from this memory). */
  memory: Uint8Array;
  byteLength: number;
  /** Kind of the leaf that served it: 'pinned', 'managed', 'locked', 'pageable', 'file', 'shared'. */
  kind: string;
}

/**
 * The token `buf.transfer()` returns and `adopt()` accepts; postMessage can carry it. Its id
 * is 128 random bits, and it names the process it was made in: a guessed, replayed or foreign
 * token adopts nothing. It names nothing else: the buffer's named scope, which counts it until
 * it is freed in whichever thread, travels with the block in native code, so no holder of a
 * token can move, forge or lose a scope's counts. A token with a `scope` field is refused.
 */
export interface BufferToken {
  readonly pinpool: 'buffer';
  readonly version: 2;
  readonly id: string;
  readonly process: string;
}

const EMPTY = new Uint8Array(0);

/** The typed array types a HostBuffer can be viewed as (`buf.view()`, `handler.allocArray()`). */
export type TypedArrayConstructor =
  | Int8ArrayConstructor
  | Uint8ArrayConstructor
  | Uint8ClampedArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | BigInt64ArrayConstructor
  | BigUint64ArrayConstructor;

/** The built-in typed array constructors as they were when pinpool loaded, and their sizes. */
const elementBytes = new Map<unknown, number>(
  [
    Int8Array,
    Uint8Array,
    Uint8ClampedArray,
    Int16Array,
    Uint16Array,
    Int32Array,
    Uint32Array,
    Float32Array,
    Float64Array,
    BigInt64Array,
    BigUint64Array,
    (globalThis as { Float16Array?: { BYTES_PER_ELEMENT: number } }).Float16Array,
  ]
    .filter((t) => t !== undefined)
    .map((t) => [t, t.BYTES_PER_ELEMENT]),
);

/** @internal The size of an element of `type`, a built-in typed array constructor; throws otherwise. */
export function elementSize(type: unknown, name = 'type'): number {
  const size = elementBytes.get(type);
  if (size === undefined)
    throw new PinpoolError(
      ErrorCode.INVALID_ARGUMENT,
      `pinpool: ${name} must be a typed array constructor such as Float32Array`,
    );
  return size;
}

/**
 * The HostBuffer each handler freed last through native code, released, kept as long as the
 * handler, so that a full collection never finds HostBuffer's shape dead. V8 holds the maps
 * (hidden classes) that optimized code checks only weakly: a collection that finds no
 * HostBuffer alive drops HostBuffer's map (and Block's, when no block waits in a cache) and
 * deoptimizes every function of the allocation path ("embedded weak objects cleared" under
 * --trace-deopt); the next tens of thousands of pool hits then ran 2-9x slower until V8 had
 * compiled them again (2-3.8x the instructions; Node 20 to 26, issue 22). A block waiting in
 * a thread cache keeps the first of its HostBuffers the cache took back (`Block.retired`: one
 * comparison on a hit's free, no store); HostBuffer's fields hold objects only, so its map is
 * never replaced by a more general one and any one of them will do. A free that goes to native
 * code keeps the latest one here (a WeakMap store beside a native call), which holds the
 * Block's current map too. Each keeps one small released object, and nothing longer than its
 * owner lives.
 */
const retiredBy = new WeakMap<Handler, HostBuffer>();

function released(): PinpoolError {
  return new PinpoolError(
    ErrorCode.RELEASED,
    'pinpool: this HostBuffer was released (free() or transfer())',
  );
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
export class HostBuffer {
  #block: Block;
  #buffer: ArrayBuffer | undefined; // the block's ArrayBuffer as handed out; undefined for a slab view
  #bytes: Uint8Array;
  #frame: ScopeFrame | undefined; // the measure() scope that counts this buffer
  #scope: ScopeAccount | undefined; // the named scope it was allocated in here, counted until its free
  // (an adopted buffer's scope is counted in native code)
  #released = false;
  #registered = false;

  /** @internal Use `handler.alloc()` or `adopt()`. */
  constructor(
    key: symbol,
    block: Block,
    buffer: ArrayBuffer | undefined,
    bytes: Uint8Array,
    frame: ScopeFrame | undefined,
  ) {
    if (key !== constructing) throw wrongReceiver();
    this.#block = block;
    this.#buffer = buffer;
    this.#bytes = bytes;
    this.#frame = frame;
    if (frame !== undefined) frame.allocated(block.byteLength);
    track(this);
  }

  /** The memory, as bytes. Throws ERR_PINPOOL_RELEASED after free(). */
  get bytes(): Uint8Array {
    if (!HostBuffer.#owns(this)) throw wrongReceiver();
    if (this.#released) throw released();
    return this.#bytes;
  }

  /**
   * A typed array over the block (or part of it), zero copy: `buf.view(Float32Array)`. Like
   * `bytes`, it reaches nothing once the buffer is freed. `byteOffset` (from the block's start)
   * must be a multiple of the element size; without `length` the view runs to the block's end,
   * which must then be a whole number of elements.
   *
   * @example
   * const input = new ort.Tensor('float32', buf.view(Float32Array), [1, 3, 224, 224]);
   */
  view<C extends TypedArrayConstructor>(type: C, byteOffset = 0, length?: number): InstanceType<C> {
    if (!HostBuffer.#owns(this)) throw wrongReceiver();
    const size = elementSize(type);
    if (this.#released) throw released();
    const bytes = this.#block.byteLength;
    if (
      typeof byteOffset !== 'number' ||
      !Number.isSafeInteger(byteOffset) ||
      byteOffset < 0 ||
      byteOffset > bytes ||
      byteOffset % size !== 0
    ) {
      throw invalid('byteOffset', `a multiple of ${size} from 0 to ${bytes}`, byteOffset);
    }
    let count: number;
    if (length === undefined) {
      if ((bytes - byteOffset) % size !== 0) {
        throw new PinpoolError(
          ErrorCode.INVALID_ARGUMENT,
          `pinpool: the ${bytes - byteOffset} bytes from byteOffset ${byteOffset} are no whole number of ${size}-byte elements; pass a length`,
        );
      }
      count = (bytes - byteOffset) / size;
    } else {
      if (
        typeof length !== 'number' ||
        !Number.isSafeInteger(length) ||
        length < 0 ||
        byteOffset + length * size > bytes
      ) {
        throw invalid(
          'length',
          `a count of ${size}-byte elements that fits the ${bytes - byteOffset} bytes from byteOffset`,
          length,
        );
      }
      count = length;
    }
    const slab = this.#block.slab;
    let buffer: ArrayBuffer;
    let start = 0;
    if (slab !== undefined) {
      buffer = slab.buffer;
      start = this.#block.address - slab.address;
    } else {
      // A block outside a slab has its own ArrayBuffer until it is released (checked above).
      const own = this.#buffer;
      if (own === undefined) throw internalError('a live HostBuffer without its ArrayBuffer');
      buffer = own;
    }
    return new (type as unknown as new (b: ArrayBuffer, o: number, n: number) => InstanceType<C>)(
      buffer,
      start + byteOffset,
      count,
    );
  }

  /** Size in bytes, as asked for. */
  get byteLength(): number {
    if (!HostBuffer.#owns(this)) throw wrongReceiver();
    return this.#block.byteLength;
  }

  /** The alignment the block was allocated with, in bytes. */
  get alignment(): number {
    if (!HostBuffer.#owns(this)) throw wrongReceiver();
    return this.#block.alignment;
  }

  /** The host address of the block (for handing to native code). */
  get address(): bigint {
    if (!HostBuffer.#owns(this)) throw wrongReceiver();
    if (this.#released) throw released();
    return BigInt(this.#block.address);
  }

  /** The handler that allocated the block; memory goes back through it only. */
  get handler(): Handler {
    if (!HostBuffer.#owns(this)) throw wrongReceiver();
    return this.#block.owner;
  }

  /** Name of the leaf handler whose memory this is ('pinned', 'locked', 'pageable' ...). */
  get servedBy(): string {
    if (!HostBuffer.#owns(this)) throw wrongReceiver();
    return leafOf(this.#block.servedBy).name;
  }

  /** Kind of that leaf: 'pinned', 'managed', 'locked', 'pageable' or 'file'. */
  get kind(): LeafKind {
    if (!HostBuffer.#owns(this)) throw wrongReceiver();
    return leafOf(this.#block.servedBy).kind as LeafKind;
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
    const own = this.#buffer;
    this.#release();
    const block = this.#block;
    if (this.#scope !== undefined) this.#scope.freed(block.byteLength);
    // The thread cache keeps the block for this thread's next allocation of its size, taking
    // its buffer back (detached here, so a stale view reaches nothing). Otherwise native code
    // detaches the buffer, and the block waits for every lease on its memory (a copy in flight,
    // an ArrayBuffer that escaped) before it is handed out again.
    if (block.cache?.keep(block, own) === true) {
      // Once per block: a store on every free would cost each hit a write barrier.
      block.retired ??= this;
    } else {
      retiredBy.set(block.owner, this);
      const buffer = own === undefined ? undefined : takeBack(own, block.slot);
      try {
        binding.free(block.owner.handle, buffer, block.slot, block.address, false);
      } finally {
        tookBack();
      }
    }
    if (freeChannel.hasSubscribers) {
      const message: FreeMessage = {
        handler: block.owner.name,
        bytes: block.byteLength,
        alignment: block.alignment,
        address: BigInt(block.address),
        byGc: false,
      };
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
   * A block of a shared() handler moves to another process instead (a SharedBufferToken, for
   * process.send() or any channel): refused while a copy, a registration or an ArrayBuffer
   * moved out of this buffer still reaches it here.
   */
  transfer(): BufferToken | SharedBufferToken {
    if (!HostBuffer.#owns(this)) throw wrongReceiver();
    if (this.#released) throw released();
    const block = this.#block;
    if (block.owner.kind === 'shared') return this.#leaveProcess();
    const buffer = this.#buffer === undefined ? undefined : takeBack(this.#buffer, block.slot);
    // Still in use, elsewhere: the scope's cell goes with the block (native code), and counts it
    // when whichever thread holds it frees it or ends.
    let id: string, process: string;
    try {
      ({ key: id, process } = binding.transfer(
        block.owner.handle,
        buffer,
        block.slot,
        block.address,
        this.#scope?.cell,
      ));
    } finally {
      tookBack();
    }
    this.#release();
    const token: BufferToken = { pinpool: 'buffer', version: 2, id, process };
    return Object.freeze(token);
  }

  /** transfer() of a shared() handler's block: it leaves the process, as a free would here. */
  #leaveProcess(): SharedBufferToken {
    const block = this.#block;
    // Refused first, if it is to be (a copy in flight, a registration): once taken back, the
    // buffer the user holds is detached whatever comes next.
    binding.giveShared(block.owner.handle, undefined, block.slot, block.address, true);
    const buffer = this.#buffer === undefined ? undefined : takeBack(this.#buffer, block.slot);
    let ticket: [unit: number, nonce: string];
    try {
      ticket = binding.giveShared(block.owner.handle, buffer, block.slot, block.address, false);
    } finally {
      tookBack();
    }
    this.#release();
    if (this.#scope !== undefined) this.#scope.freed(block.byteLength);
    return sharedToken(block.owner.handle, ticket, block.byteLength);
  }

  /**
   * @internal The memory of `value` if it is a live HostBuffer, undefined if it is not a
   * HostBuffer at all. A brand check: no getter or Proxy trap of `value` runs.
   */
  static blockOf(value: unknown): HostBlock | undefined {
    if (!HostBuffer.#owns(value)) return undefined;
    if (value.#released) throw released();
    return {
      memory: value.#bytes,
      byteLength: value.#block.byteLength,
      kind: leafOf(value.#block.servedBy).kind,
    };
  }

  /**
   * @internal Counts `buf`, just allocated in this thread's named scope `account`, in that
   * scope until it is freed.
   */
  static countIn(buf: HostBuffer, account: ScopeAccount): void {
    account.allocated(buf.#block.byteLength);
    buf.#scope = account;
  }

  /** A brand check that a primitive `this` cannot make throw, and no getter or trap runs. */
  static #owns(value: unknown): value is HostBuffer {
    return isObject(value) && #released in value;
  }

  #release(): void {
    this.#released = true;
    // A released buffer holds on to no memory: a view the user kept is all that can keep an
    // ArrayBuffer that could not be taken back (and so its block's quarantine) alive.
    this.#buffer = undefined;
    this.#bytes = EMPTY;
    if (this.#registered) untrack(this);
    else forget(this);
    if (this.#block.slab !== undefined) this.#block.slab.live--;
    if (this.#frame !== undefined) this.#frame.freed(this.#block.byteLength);
  }

  /** @internal */
  gcRegister(): [object, BlockRecord] | undefined {
    if (!HostBuffer.#owns(this)) throw wrongReceiver();
    if (this.#released) return undefined;
    this.#registered = true;
    // A slab view shares its ArrayBuffer, so the view object itself is what must die.
    const target = this.#buffer ?? this.#bytes;
    const b = this.#block;
    return [
      target,
      {
        handle: b.owner.handle,
        owner: b.owner,
        frame: this.#frame,
        scope: this.#scope,
        slab: b.slab,
        slot: b.slot,
        address: b.address,
        byteLength: b.byteLength,
        alignment: b.alignment,
      },
    ];
  }

  /**
   * What console.log() shows: `HostBuffer { byteLength: 4096, kind: 'pinned', servedBy:
   * 'pinned', handler: 'pinned-pool', alignment: 64, released: false, address: '0x7f...' }`
   * (no address once released; `slabView: true` for a slab view). Reads JavaScript fields only.
   */
  [inspectSymbol](...args: InspectArguments): string {
    return inspectAs('HostBuffer', () => HostBuffer.#fields(this), args);
  }

  static #fields(buf: unknown): object {
    if (!HostBuffer.#owns(buf)) return {}; // HostBuffer.prototype, or another receiver
    const block = buf.#block;
    const leaf = leafOf(block.servedBy);
    return {
      byteLength: block.byteLength,
      kind: leaf.kind,
      servedBy: leaf.name,
      handler: block.owner.name,
      alignment: block.alignment,
      released: buf.#released,
      ...(buf.#released ? {} : { address: hexAddress(block.address) }),
      ...(block.slab === undefined ? {} : { slabView: true }),
    };
  }

  // eslint-disable-next-line @typescript-eslint/class-literal-property-style -- a getter on the prototype, as built-in classes have; a field would be one more own property on every buffer
  get [Symbol.toStringTag](): string {
    return 'HostBuffer';
  }
}

/** @internal What a Block is made from: fixed for the block's life. */
export interface BlockFields {
  readonly owner: Handler;
  /** Its slot in the native live table. */
  readonly slot: number;
  readonly address: number;
  readonly byteLength: number;
  readonly alignment: number;
  /** Id of the leaf whose memory it is. */
  readonly servedBy: number;
  /** The slab it is viewed through (slabViews pools). */
  readonly slab: SlabView | undefined;
  /** What the pool holds for it (its size class); 0 when no thread cache may keep it. */
  readonly classBytes: number;
  /** The thread cache that may keep it when it is freed. */
  readonly cache: ThreadCache | undefined;
}

/**
 * @internal A block this thread owns, as JavaScript knows it: made when native code hands the
 * block over (a native alloc() or adopt(), never a thread cache hit), and kept with the block
 * while it waits in a thread cache, so a pool hit makes no record. Everything but the cache's
 * fields is fixed for the block's life.
 */
export class Block implements BlockFields {
  readonly owner: Handler;
  readonly slot: number;
  readonly address: number;
  readonly byteLength: number;
  readonly alignment: number;
  readonly servedBy: number;
  readonly slab: SlabView | undefined;
  readonly classBytes: number;
  readonly cache: ThreadCache | undefined;
  /** Where it waits in its cache's slot list (set by the cache). */
  position = -1;
  /** Its ArrayBuffer while it waits in a thread cache. */
  spare: ArrayBuffer | undefined = undefined;
  /** The first of its HostBuffers a thread cache took back, kept as long as the block: see retiredBy. */
  retired: HostBuffer | undefined = undefined;

  constructor(fields: BlockFields) {
    this.owner = fields.owner;
    this.slot = fields.slot;
    this.address = fields.address;
    this.byteLength = fields.byteLength;
    this.alignment = fields.alignment;
    this.servedBy = fields.servedBy;
    this.slab = fields.slab;
    this.classBytes = fields.classBytes;
    this.cache = fields.cache;
  }
}

/** @internal Wraps a block just allocated, adopted or taken from a thread cache into a HostBuffer. */
export function makeHostBuffer(
  block: Block,
  buffer: ArrayBuffer | undefined,
  frame: ScopeFrame | undefined,
): HostBuffer {
  let bytes: Uint8Array;
  const slab = block.slab;
  if (slab !== undefined) {
    bytes = new Uint8Array(slab.buffer, block.address - slab.address, block.byteLength);
    slab.live++;
  } else {
    // Node refuses to post a block's first ArrayBuffer (an external one) to another thread, but
    // not one a thread cache made with transfer(). Either way the memory cannot be lost: a buffer
    // free() cannot take back keeps its block out of use until no ArrayBuffer reaches the memory
    // (take-back.ts, the view lease of hot_path.cpp).
    if (buffer === undefined)
      throw internalError('a block outside a slab came without its ArrayBuffer');
    bytes = new Uint8Array(buffer);
  }
  return new HostBuffer(constructing, block, buffer, bytes, frame);
}
