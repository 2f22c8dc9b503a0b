/**
 * Device memory and streams. Every asynchronous operation on them returns a Promise that
 * settles when the GPU has finished, not when the call was queued; completion comes back
 * through a thread-safe function, so the event loop never blocks or polls.
 */
import { ErrorCode, PinpoolError } from '../boundary/errors.js';
import { binding, type NativeStream } from '../boundary/native.js';
import { checkBytes, checkDevice, invalid, isObject, optionsOf } from '../boundary/validate.js';
import {
  hexAddress,
  inspectAs,
  inspectSymbol,
  type InspectArguments,
} from '../boundary/inspect.js';

const deviceRegistry = new FinalizationRegistry<{ device: number; address: number }>((held) => {
  // Collected without free(): give the memory back, outside the collector's callback.
  setImmediate(() => {
    binding.deviceFree(held.device, held.address);
  }).unref();
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
  #inflight = 0; // operations using the memory now
  #freeWhenIdle = false;

  /** @internal Use deviceAlloc(). */
  constructor(key: symbol, address: number, byteLength: number, device: number) {
    if (key !== constructing) throw invalid('DeviceBuffer', 'made by deviceAlloc()', undefined);
    this.#address = address;
    this.#byteLength = byteLength;
    this.#device = device;
    deviceRegistry.register(this, { device, address }, this);
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
    if (this.#released)
      throw new PinpoolError(ErrorCode.DOUBLE_FREE, 'pinpool: this DeviceBuffer was already freed');
    this.#released = true;
    deviceRegistry.unregister(this);
    if (this.#inflight > 0) this.#freeWhenIdle = true;
    else binding.deviceFree(this.#device, this.#address);
  }

  [Symbol.dispose](): void {
    if (!DeviceBuffer.is(this)) throw invalid('this', 'a DeviceBuffer', this);
    if (!this.#released) this.free();
  }

  /** What console.log() shows: its size, device, whether it was freed and (if not) its address. */
  [inspectSymbol](...args: InspectArguments): string {
    return inspectAs('DeviceBuffer', () => DeviceBuffer.#fields(this), args);
  }

  static #fields(d: unknown): object {
    if (!DeviceBuffer.is(d)) return {};
    return {
      byteLength: d.#byteLength,
      device: d.#device,
      released: d.#released,
      ...(d.#released ? {} : { address: hexAddress(d.#address) }),
    };
  }

  /** @internal True for a DeviceBuffer (a brand check: no getter or Proxy trap runs). */
  static is(value: unknown): value is DeviceBuffer {
    return isObject(value) && #released in value;
  }

  /** @internal */
  static use(d: DeviceBuffer): {
    address: number;
    byteLength: number;
    device: number;
    end(): void;
  } {
    if (!DeviceBuffer.is(d)) throw invalid('buffer', 'a DeviceBuffer', d);
    if (d.#released) throw released('DeviceBuffer');
    d.#inflight++;
    return {
      address: d.#address,
      byteLength: d.#byteLength,
      device: d.#device,
      end: () => {
        if (--d.#inflight === 0 && d.#freeWhenIdle) binding.deviceFree(d.#device, d.#address);
      },
    };
  }
}

const constructing = Symbol('pinpool.gpu');

function released(what: string): PinpoolError {
  return new PinpoolError(ErrorCode.RELEASED, `pinpool: this ${what} was released`);
}

/** Where deviceAlloc() and createStream() work. */
export interface DeviceOptions {
  /** The device's index. Default 0. */
  device?: number;
}

const readDeviceAllocOptions = optionsOf<DeviceOptions>('deviceAlloc', { device: true });
const readStreamOptions = optionsOf<DeviceOptions>('createStream', { device: true });

/** Allocates `bytes` of device memory on `device` (default 0). */
export function deviceAlloc(bytes: number, options?: DeviceOptions): DeviceBuffer {
  checkBytes(bytes);
  const o = readDeviceAllocOptions(options);
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
  static handleOf(value: unknown, name = 'stream'): NativeStream {
    if (!isObject(value) || !(#handle in value))
      throw invalid(name, 'a Stream from createStream()', value);
    return value.#handle;
  }
}

/** Creates a non-blocking stream on `device` (default 0). It is destroyed when collected. */
export function createStream(options?: DeviceOptions): Stream {
  const o = readStreamOptions(options);
  const device = o.device === undefined ? 0 : checkDevice(o.device);
  return new Stream(constructing, binding.createStream(device), device);
}
