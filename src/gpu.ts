/**
 * GPU work from JavaScript: device memory, streams, asynchronous copies between host and
 * device, managed-memory prefetch and advice, and page-locking memory that exists already.
 *
 * Every asynchronous operation returns a Promise that settles when the GPU has finished, not
 * when the call was queued; completion comes back through a thread-safe function, so the event
 * loop never blocks or polls. A host buffer freed while a copy still uses it goes back to its
 * handler at once but is not handed out again until that copy is done.
 */
import { ErrorCode, PinpoolError } from './errors.js';
import { HostBuffer, hostBlock, type HostBlock } from './host-buffer.js';
import { binding, type NativeFence, type NativeStream } from './native.js';
import { checkBoolean, checkBytes, checkDevice, checkOptions, invalid } from './validate.js';

let cudaReason: string | undefined;

/** @internal A PinpoolError for a CUresult. */
export function cudaError(rc: number, what: string): PinpoolError {
  const cudaErrorName = binding.cudaErrorName(rc);
  const details = { cudaError: rc, cudaErrorName };
  if (rc === 2) return new PinpoolError(ErrorCode.OUT_OF_MEMORY, `pinpool: ${what}: out of memory (${cudaErrorName})`, { ...details, reason: 'out-of-memory' });
  if (rc === 3) {
    cudaReason ??= binding.info().cuda.reason ?? 'CUDA is not available';
    return new PinpoolError(ErrorCode.UNAVAILABLE, `pinpool: ${what}: ${cudaReason}`, { ...details, reason: 'no-cuda' });
  }
  if (rc === 101) return new PinpoolError(ErrorCode.UNAVAILABLE, `pinpool: ${what}: no such CUDA device`, { ...details, reason: 'no-device' });
  return new PinpoolError(ErrorCode.CUDA, `pinpool: ${what} failed with ${cudaErrorName} (${rc})`, { ...details, reason: 'cuda' });
}

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
    return this.#byteLength;
  }
  get device(): number {
    return this.#device;
  }
  /** The device address, for native code and kernels. */
  get address(): bigint {
    if (this.#released) throw released('DeviceBuffer');
    return BigInt(this.#address);
  }
  get released(): boolean {
    return this.#released;
  }

  /** Frees the device memory (after any operation in flight on it has finished). */
  free(): void {
    if (!(#released in this)) throw invalid('this', 'a DeviceBuffer', this);
    if (this.#released) throw new PinpoolError(ErrorCode.DOUBLE_FREE, 'pinpool: this DeviceBuffer was already freed');
    this.#released = true;
    deviceRegistry.unregister(this);
    if (this.#inflight > 0) this.#freeWhenIdle = true;
    else binding.deviceFree(this.#address);
  }

  [Symbol.dispose](): void {
    if (!this.#released) this.free();
  }

  /** @internal */
  static use(d: DeviceBuffer): { address: number; byteLength: number; device: number; end(): void } {
    if (!(#released in d)) throw invalid('buffer', 'a DeviceBuffer', d);
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
  const result = binding.deviceAlloc(device, bytes);
  if (result <= 0) throw cudaError(-result, `deviceAlloc(${bytes})`);
  return new DeviceBuffer(constructing, result, bytes, device);
}

/** A non-blocking CUDA stream: work on it runs in order, and alongside other streams. */
export class Stream {
  /** @internal */ readonly handle: NativeStream;
  readonly device: number;

  /** @internal Use createStream(). */
  constructor(key: symbol, handle: NativeStream, device: number) {
    if (key !== constructing) throw invalid('Stream', 'made by createStream()', undefined);
    this.handle = handle;
    this.device = device;
  }
}

/** Creates a non-blocking stream on `device` (default 0). It is destroyed when collected. */
export function createStream(options?: { device?: number }): Stream {
  const o = checkOptions<{ device?: number }>(options, 'createStream options');
  const device = o.device === undefined ? 0 : checkDevice(o.device);
  const handle = binding.createStream(device);
  if (typeof handle === 'number') throw cudaError(handle, 'createStream');
  return new Stream(constructing, handle, device);
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
  | { where: 'host'; byteLength: number; address: number; block: HostBlock }
  | { where: 'pageable'; byteLength: number; memory: PageableMemory };

function side(value: unknown, name: string): Side {
  if (value instanceof DeviceBuffer) return { where: 'device', ...DeviceBuffer.use(value) };
  if (value instanceof HostBuffer) {
    const block = value[hostBlock]();
    return { where: 'host', byteLength: block.byteLength, address: block.address, block };
  }
  if (ArrayBuffer.isView(value)) return { where: 'pageable', byteLength: value.byteLength, memory: value };
  if (value instanceof ArrayBuffer) return { where: 'pageable', byteLength: value.byteLength, memory: value };
  throw invalid(name, 'a DeviceBuffer, a HostBuffer, a typed array, a Buffer or an ArrayBuffer', value);
}

function range(o: Partial<CopyOptions>, src: Side, dst: Side): { bytes: number; srcOffset: number; dstOffset: number } {
  const srcOffset = o.srcOffset === undefined ? 0 : checkBytes(o.srcOffset, 'srcOffset');
  const dstOffset = o.dstOffset === undefined ? 0 : checkBytes(o.dstOffset, 'dstOffset');
  const bytes = o.bytes === undefined ? Math.max(0, src.byteLength - srcOffset) : checkBytes(o.bytes, 'bytes');
  if (srcOffset + bytes > src.byteLength) throw invalid('srcOffset + bytes', `at most the source's ${src.byteLength} bytes`, srcOffset + bytes);
  if (dstOffset + bytes > dst.byteLength) throw invalid('dstOffset + bytes', `at most the destination's ${dst.byteLength} bytes`, dstOffset + bytes);
  return { bytes, srcOffset, dstOffset };
}

/**
 * Copies between host and device memory, or device to device, asynchronously. Resolves when
 * the copy has completed on the GPU; rejects with ERR_PINPOOL_CUDA (cudaError, cudaErrorName).
 * A pageable source or destination works too (it is what pinned memory beats).
 *
 * @example
 * await copy(dev, pinnedBuf);           // host to device
 * await copy(hostBuf, dev, { bytes: 4096 });  // device to host
 */
export function copy(dst: DeviceBuffer | HostBuffer | PageableMemory, src: DeviceBuffer | HostBuffer | PageableMemory, options?: CopyOptions): Promise<void> {
  const o = checkOptions<CopyOptions>(options, 'copy options');
  if (o.stream !== undefined && !(o.stream instanceof Stream)) throw invalid('stream', 'a Stream from createStream()', o.stream);
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
    const { bytes, srcOffset, dstOffset } = range(o, s, d);
    const kind = s.where === 'device' ? (d.where === 'device' ? 2 : 1) : 0;
    const device = d.where === 'device' ? d.device : (s as { device: number }).device;
    if (o.stream !== undefined && o.stream.device !== device) throw invalid('stream', `a stream of device ${device}`, `a stream of device ${o.stream.device}`);
    // Host side in pageable memory: native code adds the offset to the memory's own address.
    const address = (x: Side, offset: number) => (x.where === 'pageable' ? offset : x.address + offset);
    const pageable = s.where === 'pageable' ? s.memory : d.where === 'pageable' ? d.memory : undefined;
    return track(binding.copy(kind, device, address(d, dstOffset), address(s, srcOffset), bytes, o.stream?.handle, pageable), [s, d], release, 'copy');
  } catch (err) {
    release();
    throw err;
  }
}

/** Follows one native operation to its end: fences on host blocks, the Promise, the errors. */
function track(started: [Promise<number>, NativeFence] | number, sides: Side[], release: () => void, what: string): Promise<void> {
  if (typeof started === 'number') throw cudaError(started, what);
  const [promise, fence] = started;
  const hosts = sides.flatMap((x) => (x.where === 'host' ? [x.block] : []));
  for (const h of hosts) h.begin(fence);
  const done = () => {
    for (const h of hosts) h.end(fence);
    release();
  };
  return promise.then(
    () => done(),
    (rc: number) => {
      done();
      throw cudaError(rc, what);
    },
  );
}

const ADVICE = {
  readMostly: 1,
  unsetReadMostly: 2,
  preferredLocation: 3,
  unsetPreferredLocation: 4,
  accessedBy: 5,
  unsetAccessedBy: 6,
} as const;

/** Advice for managed memory (cuMemAdvise). */
export type Advice = keyof typeof ADVICE;

function target(where: unknown): number {
  return where === 'host' ? -1 : checkDevice(where);
}

function managedBlock(buf: unknown, what: string): HostBlock {
  if (!(buf instanceof HostBuffer)) throw invalid('this', 'a HostBuffer', buf);
  const block = buf[hostBlock]();
  if (block.kind !== 'managed') throw invalid(what, 'called on managed memory', `a ${block.kind} buffer`);
  return block;
}

/** @internal HostBuffer.prototype.prefetch */
export function prefetch(buf: HostBuffer, where: number | 'host', options?: { stream?: Stream }): Promise<void> {
  const block = managedBlock(buf, 'prefetch()');
  const to = target(where);
  const o = checkOptions<{ stream?: Stream }>(options, 'prefetch options');
  if (o.stream !== undefined && !(o.stream instanceof Stream)) throw invalid('stream', 'a Stream from createStream()', o.stream);
  const device = o.stream?.device ?? (to < 0 ? 0 : to);
  const started = binding.prefetch(device, block.address, block.byteLength, to, o.stream?.handle);
  return track(started, [{ where: 'host', byteLength: block.byteLength, address: block.address, block }], () => {}, 'prefetch');
}

/** @internal HostBuffer.prototype.advise */
export function advise(buf: HostBuffer, advice: Advice, where: number | 'host'): void {
  const block = managedBlock(buf, 'advise()');
  const code = typeof advice === 'string' && Object.hasOwn(ADVICE, advice) ? ADVICE[advice] : undefined;
  if (code === undefined) throw invalid('advice', `one of ${Object.keys(ADVICE).join(', ')}`, advice);
  const to = target(where);
  const rc = binding.advise(to < 0 ? 0 : to, block.address, block.byteLength, code, to);
  if (rc !== 0) throw cudaError(rc, `advise(${advice})`);
}

const registrations = new FinalizationRegistry<{ address: number; memory: PageableMemory }>((r) => {
  // The held value keeps the memory alive until it is unregistered.
  setImmediate(() => (binding.hostUnregister(r.address), r.memory)).unref();
});

/** Memory page-locked in place by register(); `unregister()` ends it. */
export class Registration {
  readonly #address: number;
  readonly #memory: PageableMemory;
  readonly byteLength: number;
  #registered = true;

  /** @internal Use register(). */
  constructor(key: symbol, address: number, byteLength: number, memory: PageableMemory) {
    if (key !== constructing) throw invalid('Registration', 'made by register()', undefined);
    this.#address = address;
    this.byteLength = byteLength;
    this.#memory = memory;
    registrations.register(this, { address, memory }, this);
  }

  /** The registered memory, as given to register(). */
  get memory(): PageableMemory {
    return this.#memory;
  }
  get registered(): boolean {
    return this.#registered;
  }

  /** Ends the registration (cuMemHostUnregister). A second call is ERR_PINPOOL_DOUBLE_FREE. */
  unregister(): void {
    if (!(#registered in this)) throw invalid('this', 'a Registration', this);
    if (!this.#registered) throw new PinpoolError(ErrorCode.DOUBLE_FREE, 'pinpool: already unregistered');
    this.#registered = false;
    registrations.unregister(this);
    const rc = binding.hostUnregister(this.#address);
    if (rc !== 0) throw cudaError(rc, 'unregister');
  }

  [Symbol.dispose](): void {
    if (this.#registered) this.unregister();
  }
}

/**
 * Page-locks memory that exists already (a Buffer read from a file, say) with
 * cuMemHostRegister, so copies from it run at pinned speed. Keep the Registration: it keeps
 * the memory alive, and `unregister()` ends the lock.
 *
 * @example
 * const weights = readFileSync('model.bin');
 * using reg = register(weights);
 * await copy(dev, weights);
 */
export function register(memory: PageableMemory, options?: { device?: number; portable?: boolean; mapped?: boolean }): Registration {
  if (!ArrayBuffer.isView(memory) && !(memory instanceof ArrayBuffer)) throw invalid('memory', 'a typed array, a Buffer or an ArrayBuffer', memory);
  if (memory.byteLength === 0) throw invalid('memory', 'at least one byte long', 0);
  const o = checkOptions<{ device?: number; portable?: boolean; mapped?: boolean }>(options, 'register options');
  const device = o.device === undefined ? 0 : checkDevice(o.device);
  const portable = o.portable === undefined ? true : checkBoolean(o.portable, 'portable');
  const mapped = o.mapped === undefined ? false : checkBoolean(o.mapped, 'mapped');
  const [rc, address, byteLength] = binding.hostRegister(device, memory, (portable ? 1 : 0) | (mapped ? 2 : 0));
  if (rc !== 0) throw cudaError(rc, 'register');
  return new Registration(constructing, address, byteLength, memory);
}
