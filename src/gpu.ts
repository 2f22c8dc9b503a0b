/**
 * GPU work from JavaScript: device memory, streams, asynchronous copies between host and
 * device, managed-memory prefetch and advice, and page-locking memory that exists already.
 *
 * Every asynchronous operation returns a Promise that settles when the GPU has finished, not
 * when the call was queued; completion comes back through a thread-safe function, so the event
 * loop never blocks or polls. Every copy leases the host memory it reads or writes, found by
 * address whatever object the caller passed (a HostBuffer, its `bytes`, another view of the
 * same memory): a block freed while a copy still uses it goes back to its handler at once but
 * is not handed out again until that copy is done. Memory that is not pinpool's goes through a
 * staging block, so a copy never writes into memory after it could have been freed.
 */
import { ErrorCode, PinpoolError } from './errors.js';
import { types } from 'node:util';
import { markAsUntransferable } from 'node:worker_threads';

import { HostBuffer, type HostBlock } from './host-buffer.js';
import { binding, constants, type HostMemory, type NativeRegistration, type NativeStream } from './native.js';
import { checkBoolean, checkBytes, checkDevice, checkOptions, invalid, isObject } from './validate.js';

const deviceRegistry = new FinalizationRegistry<number>((address) => {
  // Collected without free(): give the memory back, outside the collector's callback.
  setImmediate(() => binding.deviceFree(address)).unref();
});

/**
 * Device memory (cuMemAlloc). Its bytes live on the GPU: reach them with copy().
 *
 * @example
 * using dev = deviceAlloc(1 << 20, { device: 0 });
 * await copy(dev, hostBuf);
 */
export class DeviceBuffer {
  readonly #address: number;
  readonly #byteLength: number;
  readonly #device: number;
  #released = false;
  #inflight = 0;       // operations using the memory now
  #freeWhenIdle = false;

  /** @internal Use deviceAlloc(). */
  constructor(key: symbol, address: number, byteLength: number, device: number) {
    if (key !== constructing) throw invalid('DeviceBuffer', 'made by deviceAlloc()', undefined);
    this.#address = address;
    this.#byteLength = byteLength;
    this.#device = device;
    deviceRegistry.register(this, address, this);
  }

  get byteLength(): number {
    if (!DeviceBuffer.is(this)) throw invalid('this', 'a DeviceBuffer', this);
    return this.#byteLength;
  }
  get device(): number {
    if (!DeviceBuffer.is(this)) throw invalid('this', 'a DeviceBuffer', this);
    return this.#device;
  }
  /** The device address, for native code and kernels. */
  get address(): bigint {
    if (!DeviceBuffer.is(this)) throw invalid('this', 'a DeviceBuffer', this);
    if (this.#released) throw released('DeviceBuffer');
    return BigInt(this.#address);
  }
  get released(): boolean {
    if (!DeviceBuffer.is(this)) throw invalid('this', 'a DeviceBuffer', this);
    return this.#released;
  }

  /** Frees the device memory (after any operation in flight on it has finished). */
  free(): void {
    if (!DeviceBuffer.is(this)) throw invalid('this', 'a DeviceBuffer', this);
    if (this.#released) throw new PinpoolError(ErrorCode.DOUBLE_FREE, 'pinpool: this DeviceBuffer was already freed');
    this.#released = true;
    deviceRegistry.unregister(this);
    if (this.#inflight > 0) this.#freeWhenIdle = true;
    else binding.deviceFree(this.#address);
  }

  [Symbol.dispose](): void {
    if (!DeviceBuffer.is(this)) throw invalid('this', 'a DeviceBuffer', this);
    if (!this.#released) this.free();
  }

  /** @internal True for a DeviceBuffer (a brand check: no getter or Proxy trap runs). */
  static is(value: unknown): value is DeviceBuffer {
    return isObject(value) && #released in value;
  }

  /** @internal */
  static use(d: DeviceBuffer): { address: number; byteLength: number; device: number; end(): void } {
    if (!DeviceBuffer.is(d)) throw invalid('buffer', 'a DeviceBuffer', d);
    if (d.#released) throw released('DeviceBuffer');
    d.#inflight++;
    return {
      address: d.#address,
      byteLength: d.#byteLength,
      device: d.#device,
      end: () => {
        if (--d.#inflight === 0 && d.#freeWhenIdle) binding.deviceFree(d.#address);
      },
    };
  }
}

const constructing = Symbol('pinpool.gpu');

function released(what: string): PinpoolError {
  return new PinpoolError(ErrorCode.RELEASED, `pinpool: this ${what} was released`);
}

/** Allocates `bytes` of device memory on `device` (default 0). */
export function deviceAlloc(bytes: number, options?: { device?: number }): DeviceBuffer {
  checkBytes(bytes);
  const o = checkOptions<{ device?: number }>(options, 'deviceAlloc options');
  const device = o.device === undefined ? 0 : checkDevice(o.device);
  return new DeviceBuffer(constructing, binding.deviceAlloc(device, bytes), bytes, device);
}

/** A non-blocking CUDA stream: work on it runs in order, and alongside other streams. */
export class Stream {
  readonly #handle: NativeStream;
  readonly device: number;

  /** @internal Use createStream(). */
  constructor(key: symbol, handle: NativeStream, device: number) {
    if (key !== constructing) throw invalid('Stream', 'made by createStream()', undefined);
    this.#handle = handle;
    this.device = device;
  }

  /** @internal The native stream of `value`, checked (no getter or Proxy trap runs). */
  static handleOf(value: unknown): NativeStream {
    if (!isObject(value) || !(#handle in value)) throw invalid('stream', 'a Stream from createStream()', value);
    return value.#handle;
  }
}

/** Creates a non-blocking stream on `device` (default 0). It is destroyed when collected. */
export function createStream(options?: { device?: number }): Stream {
  const o = checkOptions<{ device?: number }>(options, 'createStream options');
  const device = o.device === undefined ? 0 : checkDevice(o.device);
  return new Stream(constructing, binding.createStream(device), device);
}

export interface CopyOptions {
  /** Stream to queue on. Default: the device's own non-blocking stream. */
  stream?: Stream;
  /** Bytes to copy. Default: the source from srcOffset to its end. */
  bytes?: number;
  srcOffset?: number;
  dstOffset?: number;
}

/** What copy() accepts on the host side besides a HostBuffer: ordinary (pageable) memory. */
export type PageableMemory = ArrayBufferView | ArrayBuffer;

type Side =
  | { where: 'device'; byteLength: number; address: number; device: number; end(): void }
  | { where: 'host'; memory: HostMemory };

/** One side of a copy, found without running any code of the caller's (getters, traps). */
function side(value: unknown, name: string): Side {
  if (DeviceBuffer.is(value)) return { where: 'device', ...DeviceBuffer.use(value) };
  const block = HostBuffer.blockOf(value);
  if (block !== undefined) return { where: 'host', memory: block.memory };
  if (types.isArrayBufferView(value) || types.isArrayBuffer(value)) return { where: 'host', memory: value };
  throw invalid(name, 'a DeviceBuffer, a HostBuffer, a typed array, a Buffer or an ArrayBuffer', value);
}

/** The options of copy(), read once into plain values before anything else happens. */
function copyOptions(options: unknown): { stream: NativeStream | undefined; streamDevice: number; bytes: number | undefined; srcOffset: number; dstOffset: number } {
  const o = checkOptions<CopyOptions>(options, 'copy options');
  let stream: NativeStream | undefined;
  let streamDevice = -1;
  if (o.stream !== undefined) {
    stream = Stream.handleOf(o.stream);
    streamDevice = (o.stream as Stream).device;
  }
  return {
    stream,
    streamDevice,
    bytes: o.bytes === undefined ? undefined : checkBytes(o.bytes, 'bytes'),
    srcOffset: o.srcOffset === undefined ? 0 : checkBytes(o.srcOffset, 'srcOffset'),
    dstOffset: o.dstOffset === undefined ? 0 : checkBytes(o.dstOffset, 'dstOffset'),
  };
}

/**
 * Copies between host and device memory, or device to device, asynchronously. Resolves when
 * the copy has completed on the GPU; rejects with ERR_PINPOOL_CUDA (cudaError, cudaErrorName).
 * A pageable source or destination works too (it is what pinned memory beats); it goes
 * through a staging block, so detaching or transferring it while the copy runs is harmless
 * (a destination gone by the end rejects with ERR_PINPOOL_RELEASED and receives nothing).
 *
 * @example
 * await copy(dev, pinnedBuf);           // host to device
 * await copy(hostBuf, dev, { bytes: 4096 });  // device to host
 */
export function copy(dst: DeviceBuffer | HostBuffer | PageableMemory, src: DeviceBuffer | HostBuffer | PageableMemory, options?: CopyOptions): Promise<void> {
  const o = copyOptions(options);
  const s = side(src, 'src');
  let d: Side;
  try {
    d = side(dst, 'dst');
  } catch (err) {
    if (s.where === 'device') s.end();
    throw err;
  }
  const release = () => {
    if (s.where === 'device') s.end();
    if (d.where === 'device') d.end();
  };
  try {
    if (s.where !== 'device' && d.where !== 'device') {
      throw invalid('copy(dst, src)', 'a copy with a DeviceBuffer on at least one side (for host to host use bytes.set)', 'two host buffers');
    }
    const kind = s.where === 'device' ? (d.where === 'device' ? 2 : 1) : 0;
    const device = d.where === 'device' ? d.device : (s as { device: number }).device;
    if (o.stream !== undefined && o.streamDevice !== device) throw invalid('stream', `a stream of device ${device}`, `a stream of device ${o.streamDevice}`);
    // A device side's range is checked here; native code checks the host side's against the
    // memory itself.
    const srcLength = s.where === 'device' ? s.byteLength : undefined;
    const bytes = o.bytes ?? (srcLength !== undefined ? Math.max(0, srcLength - o.srcOffset) : hostLength(s as { memory: HostMemory }) - o.srcOffset);
    if (bytes < 0) throw invalid('srcOffset', 'within the source', o.srcOffset);
    if (s.where === 'device' && o.srcOffset + bytes > s.byteLength) throw invalid('srcOffset + bytes', `at most the source's ${s.byteLength} bytes`, o.srcOffset + bytes);
    if (d.where === 'device' && o.dstOffset + bytes > d.byteLength) throw invalid('dstOffset + bytes', `at most the destination's ${d.byteLength} bytes`, o.dstOffset + bytes);
    // CUDA's copies may not overlap (the result is undefined): only one buffer with itself can.
    if (s.where === 'device' && d.where === 'device' && s.address === d.address && bytes > 0 && o.srcOffset < o.dstOffset + bytes && o.dstOffset < o.srcOffset + bytes) {
      throw invalid('dstOffset', `a range that does not overlap the source's [${o.srcOffset}, ${o.srcOffset + bytes}) in the same DeviceBuffer`, o.dstOffset);
    }
    const at = (x: Side) => (x.where === 'device' ? x.address : x.memory);
    return binding.copy(kind, device, at(d), at(s), bytes, o.dstOffset, o.srcOffset, o.stream).finally(release);
  } catch (err) {
    release();
    throw err;
  }
}

const typedArrayLength = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype) as object, 'byteLength')!.get!;
const dataViewLength = Object.getOwnPropertyDescriptor(DataView.prototype, 'byteLength')!.get!;
const arrayBufferLength = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'byteLength')!.get!;

/**
 * The byte length of host memory, read with the built-in getters (a subclass's never run). 0
 * for memory that is gone: typed arrays and ArrayBuffers say so themselves, but a DataView
 * whose buffer was detached or shrunk under it throws a TypeError instead.
 */
function hostLength(side: { memory: HostMemory }): number {
  const m = side.memory;
  if (types.isTypedArray(m)) return typedArrayLength.call(m) as number;
  if (types.isDataView(m)) {
    try {
      return dataViewLength.call(m) as number;
    } catch {
      return 0;
    }
  }
  return arrayBufferLength.call(m) as number;
}

const ADVICE = constants.advice;

/** Advice for managed memory (cuMemAdvise). */
export type Advice = keyof typeof ADVICE;

function target(where: unknown): number {
  return where === 'host' ? -1 : checkDevice(where);
}

function managedBlock(buf: unknown, what: string): HostBlock {
  const block = HostBuffer.blockOf(buf);
  if (block === undefined) throw invalid('this', 'a HostBuffer', buf);
  if (block.kind !== 'managed') throw invalid(what, 'called on managed memory', `a ${block.kind} buffer`);
  return block;
}

/** @internal HostBuffer.prototype.prefetch */
export function prefetch(buf: HostBuffer, where: number | 'host', options?: { stream?: Stream }): Promise<void> {
  const o = checkOptions<{ stream?: Stream }>(options, 'prefetch options');
  const stream = o.stream === undefined ? undefined : Stream.handleOf(o.stream);
  const to = target(where);
  const block = managedBlock(buf, 'prefetch()');
  const device = o.stream !== undefined ? (o.stream as Stream).device : to < 0 ? 0 : to;
  return binding.prefetch(device, block.memory, to, stream);
}

/** @internal HostBuffer.prototype.advise */
export function advise(buf: HostBuffer, advice: Advice, where: number | 'host'): void {
  const code = typeof advice === 'string' && Object.hasOwn(ADVICE, advice) ? ADVICE[advice] : undefined;
  if (code === undefined) throw invalid('advice', `one of ${Object.keys(ADVICE).join(', ')}`, advice);
  const to = target(where);
  const block = managedBlock(buf, 'advise()');
  binding.advise(to < 0 ? 0 : to, block.memory, code, to);
}

const registrations = new FinalizationRegistry<{ registration: NativeRegistration; memory: PageableMemory }>((r) => {
  // The held value keeps the memory alive until it is unregistered.
  setImmediate(() => {
    try {
      binding.hostUnregister(r.registration);
    } catch {
      // Collected: nobody is left to tell; the memory (held until now) goes with it.
    }
    void r.memory;
  }).unref();
});

/** Memory page-locked in place by register(); `unregister()` ends it. */
export class Registration {
  readonly #registration: NativeRegistration;
  readonly #memory: PageableMemory;
  readonly byteLength: number;
  #registered = true;

  /** @internal Use register(). */
  constructor(key: symbol, registration: NativeRegistration, byteLength: number, memory: PageableMemory) {
    if (key !== constructing) throw invalid('Registration', 'made by register()', undefined);
    this.#registration = registration;
    this.byteLength = byteLength;
    this.#memory = memory;
    registrations.register(this, { registration, memory }, this);
  }

  /** The registered memory, as given to register(). */
  get memory(): PageableMemory {
    if (!Registration.#owns(this)) throw invalid('this', 'a Registration', this);
    return this.#memory;
  }
  get registered(): boolean {
    if (!Registration.#owns(this)) throw invalid('this', 'a Registration', this);
    return this.#registered;
  }

  /** Ends the registration (cuMemHostUnregister). A second call is ERR_PINPOOL_DOUBLE_FREE. */
  unregister(): void {
    if (!Registration.#owns(this)) throw invalid('this', 'a Registration', this);
    if (!this.#registered) throw new PinpoolError(ErrorCode.DOUBLE_FREE, 'pinpool: already unregistered');
    this.#registered = false;
    registrations.unregister(this);
    binding.hostUnregister(this.#registration);
  }

  [Symbol.dispose](): void {
    if (!Registration.#owns(this)) throw invalid('this', 'a Registration', this);
    if (this.#registered) this.unregister();
  }

  /** A brand check that a primitive `this` cannot make throw, and no getter or trap runs. */
  static #owns(value: unknown): value is Registration {
    return isObject(value) && #registered in value;
  }
}

const typedArrayBuffer = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype) as object, 'buffer')!.get!;
const dataViewBuffer = Object.getOwnPropertyDescriptor(DataView.prototype, 'buffer')!.get!;
const resizable = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'resizable')?.get;

/** The ArrayBuffer or SharedArrayBuffer under `memory`, read with the built-in getters. */
function bufferOf(memory: PageableMemory): ArrayBufferLike {
  if (types.isTypedArray(memory)) return typedArrayBuffer.call(memory) as ArrayBufferLike;
  if (types.isDataView(memory)) return dataViewBuffer.call(memory) as ArrayBufferLike;
  return memory as ArrayBufferLike;
}

let marksHold: boolean | undefined;
/**
 * Whether markAsUntransferable() keeps an ArrayBuffer from being detached, by transfer() and by
 * a transfer list alike: Node 24 and later (both throw), and Node 20 (no transfer(); a transfer
 * list copies a marked buffer), not Node 22, whose transfer() ignores the mark. Asked of the
 * runtime once, not of its version.
 */
function marksKeepBuffers(): boolean {
  if (marksHold !== undefined) return marksHold;
  const probe = new ArrayBuffer(1);
  markAsUntransferable(probe);
  const detaches = (f: () => unknown) => {
    try {
      f();
    } catch {
      // refused: the buffer stays
    }
    return arrayBufferLength.call(probe) === 0;
  };
  const transfer = (ArrayBuffer.prototype as { transfer?: (this: ArrayBuffer) => ArrayBuffer }).transfer;
  marksHold = !(transfer !== undefined && detaches(() => transfer.call(probe))) && !detaches(() => structuredClone(probe, { transfer: [probe] }));
  return marksHold;
}

/**
 * Page-locks memory that exists already (a Buffer read from a file, say) with
 * cuMemHostRegister, so copies from it run at pinned speed. Keep the Registration: it keeps
 * the memory alive, and `unregister()` ends the lock. Registering a pinpool buffer's memory
 * leases it: the block is not reused until the registration ends.
 *
 * Other memory must be memory pinpool can keep alive until unregister(): the driver keeps
 * using it, so a buffer detached meanwhile (transfer(), a transfer list), and then freed, would
 * leave the driver with memory that is someone else's. So it must be a SharedArrayBuffer's (or
 * a view of one), which nothing can detach, or a fixed-length ArrayBuffer's where Node lets
 * pinpool keep it from being detached (Node 20, and 24 and later; not 22): register() marks it
 * untransferable (markAsUntransferable), for good, since Node cannot unmark it. Anything else
 * (a resizable ArrayBuffer, an ArrayBuffer on Node 22) is ERR_PINPOOL_INVALID_ARGUMENT, and
 * nothing is registered.
 *
 * @example
 * const weights = readFileSync('model.bin');
 * using reg = register(weights);
 * await copy(dev, weights);
 */
export function register(memory: PageableMemory, options?: { device?: number; portable?: boolean; mapped?: boolean }): Registration {
  const o = checkOptions<{ device?: number; portable?: boolean; mapped?: boolean }>(options, 'register options');
  const device = o.device === undefined ? 0 : checkDevice(o.device);
  const portable = o.portable === undefined ? true : checkBoolean(o.portable, 'portable');
  const mapped = o.mapped === undefined ? false : checkBoolean(o.mapped, 'mapped');
  if (!types.isArrayBufferView(memory) && !types.isArrayBuffer(memory)) throw invalid('memory', 'a typed array, a Buffer or an ArrayBuffer', memory);
  if (hostLength({ memory }) === 0) throw invalid('memory', 'at least one byte long', 0);
  const flags = (portable ? constants.registerFlags.portable : 0) | (mapped ? constants.registerFlags.mapped : 0);
  const buffer = bufferOf(memory);
  const shared = types.isSharedArrayBuffer(buffer);
  const growing = !shared && resizable !== undefined && resizable.call(buffer) === true;
  const registered = binding.hostRegister(device, memory, flags, shared || (!growing && marksKeepBuffers()));
  if (registered === null) {
    const why = growing ? 'a resizable ArrayBuffer (resize() can take its pages away)' : `an ArrayBuffer, which Node ${process.versions.node} cannot keep from being detached (its transfer() ignores markAsUntransferable)`;
    throw invalid('memory', 'memory pinpool can keep alive while registered: pinpool memory, a SharedArrayBuffer or a view of one, or (on Node 20, 24 and later) a fixed-length ArrayBuffer', why);
  }
  const [registration, byteLength, leased] = registered;
  // Not pinpool's and detachable: from now on nothing can detach it, so it lives while the
  // Registration (which holds it) does. pinpool's own buffers are leased instead: they must
  // stay transferable for free() to take them back.
  if (!leased && !shared) markAsUntransferable(buffer);
  return new Registration(constructing, registration, byteLength, memory);
}
