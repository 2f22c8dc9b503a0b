/**
 * Asynchronous copies between host and device, or device to device. Every copy leases the
 * host memory it reads or writes, found by address whatever object the caller passed (a
 * HostBuffer, its `bytes`, another view of the same memory): a block freed while a copy still
 * uses it goes back to its handler at once but is not handed out again until that copy is
 * done. Memory that is not pinpool's goes through a staging block, so a copy never writes into
 * memory after it could have been freed.
 */
import { types } from 'node:util';

import { binding, constants, type HostMemory, type NativeStream } from '../boundary/native.js';
import { checkBytes, invalid, optionsOf, requiredGetter } from '../boundary/validate.js';
import { HostBuffer } from '../memory/host-buffer.js';

import { watched } from './completion.js';
import { DeviceBuffer, Stream } from './device.js';

const { hostToDevice, deviceToHost, deviceToDevice } = constants.copyDirections;

/** Options of copy(): the stream to queue on, what to wait for, and which bytes to copy. */
export interface CopyOptions {
  /** Stream to queue on. Default: the device's own non-blocking stream. */
  stream?: Stream;
  /**
   * Work the copy waits for, on the device, without blocking the host: `'legacy'`, everything
   * queued so far on the device's legacy default stream (stream 0, where another CUDA library
   * that uses the runtime's default stream puts its kernels and copies), or a Stream of the
   * same device, everything queued on it so far. pinpool's streams are non-blocking: without
   * this a copy does not wait for other libraries' work. Default: nothing.
   */
  after?: 'legacy' | Stream;
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
  if (types.isArrayBufferView(value) || types.isArrayBuffer(value))
    return { where: 'host', memory: value };
  throw invalid(
    name,
    'a DeviceBuffer, a HostBuffer, a typed array, a Buffer or an ArrayBuffer',
    value,
  );
}

const readCopyOptions = optionsOf<CopyOptions>('copy', {
  stream: true,
  after: true,
  bytes: true,
  srcOffset: true,
  dstOffset: true,
});

/** The options of copy(), read once into plain values before anything else happens. */
function copyOptions(options: unknown): {
  stream: NativeStream | undefined;
  streamDevice: number;
  after: NativeStream | 'legacy' | undefined;
  afterDevice: number;
  bytes: number | undefined;
  srcOffset: number;
  dstOffset: number;
} {
  const o = readCopyOptions(options);
  let stream: NativeStream | undefined;
  let streamDevice = -1;
  if (o.stream !== undefined) {
    stream = Stream.handleOf(o.stream);
    streamDevice = o.stream.device;
  }
  let after: NativeStream | 'legacy' | undefined;
  let afterDevice = -1;
  if (o.after === 'legacy') after = 'legacy';
  else if (o.after !== undefined) {
    after = Stream.handleOf(o.after, "after ('legacy' or a Stream)");
    afterDevice = o.after.device;
  }
  return {
    stream,
    streamDevice,
    after,
    afterDevice,
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
export function copy(
  dst: DeviceBuffer | HostBuffer | PageableMemory,
  src: DeviceBuffer | HostBuffer | PageableMemory,
  options?: CopyOptions,
): Promise<void> {
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
      throw invalid(
        'copy(dst, src)',
        'a copy with a DeviceBuffer on at least one side (for host to host use bytes.set)',
        'two host buffers',
      );
    }
    // Two devices' memory is a peer copy (cuMemcpyPeerAsync, and peer access between them), not a
    // device-to-device copy on one device's stream: refused rather than left to the driver.
    if (s.where === 'device' && d.where === 'device' && s.device !== d.device)
      throw invalid(
        'copy(dst, src)',
        `two DeviceBuffers of one device (copy between devices through a pinned host buffer)`,
        `device ${s.device} to device ${d.device}`,
      );
    const direction =
      s.where === 'device' ? (d.where === 'device' ? deviceToDevice : deviceToHost) : hostToDevice;
    const device = d.where === 'device' ? d.device : (s as { device: number }).device;
    if (o.stream !== undefined && o.streamDevice !== device)
      throw invalid(
        'stream',
        `a stream of device ${device}`,
        `a stream of device ${o.streamDevice}`,
      );
    if (o.after !== undefined && o.after !== 'legacy' && o.afterDevice !== device)
      throw invalid('after', `a stream of device ${device}`, `a stream of device ${o.afterDevice}`);
    // A device side's range is checked here; native code checks the host side's against the
    // memory itself.
    const srcLength = s.where === 'device' ? s.byteLength : undefined;
    const bytes =
      o.bytes ??
      (srcLength !== undefined
        ? Math.max(0, srcLength - o.srcOffset)
        : hostLength(s as { memory: HostMemory }) - o.srcOffset);
    if (bytes < 0) throw invalid('srcOffset', 'within the source', o.srcOffset);
    if (s.where === 'device' && o.srcOffset + bytes > s.byteLength)
      throw invalid(
        'srcOffset + bytes',
        `at most the source's ${s.byteLength} bytes`,
        o.srcOffset + bytes,
      );
    if (d.where === 'device' && o.dstOffset + bytes > d.byteLength)
      throw invalid(
        'dstOffset + bytes',
        `at most the destination's ${d.byteLength} bytes`,
        o.dstOffset + bytes,
      );
    // CUDA's copies may not overlap (the result is undefined): only one buffer with itself can.
    if (
      s.where === 'device' &&
      d.where === 'device' &&
      s.address === d.address &&
      bytes > 0 &&
      o.srcOffset < o.dstOffset + bytes &&
      o.dstOffset < o.srcOffset + bytes
    ) {
      throw invalid(
        'dstOffset',
        `a range that does not overlap the source's [${o.srcOffset}, ${o.srcOffset + bytes}) in the same DeviceBuffer`,
        o.dstOffset,
      );
    }
    const at = (x: Side) => (x.where === 'device' ? x.address : x.memory);
    return watched(
      binding.copy(
        direction,
        device,
        at(d),
        at(s),
        bytes,
        o.dstOffset,
        o.srcOffset,
        o.stream,
        o.after,
      ),
    ).finally(() => {
      // The streams stay reachable until the copy is over: collected, a stream is destroyed,
      // and a copy queued from one of pinpool's copy threads may not have used it yet.
      keepAlive(o.stream, o.after);
      release();
    });
  } catch (err) {
    release();
    throw err;
  }
}

/** Holds its arguments until it is called (a closure that calls it keeps them reachable). */
function keepAlive(...values: unknown[]): number {
  return values.length;
}

const typedArrayLength = requiredGetter(
  Object.getPrototypeOf(Uint8Array.prototype) as object,
  'byteLength',
);
const dataViewLength = requiredGetter(DataView.prototype, 'byteLength');
const arrayBufferLength = requiredGetter(ArrayBuffer.prototype, 'byteLength');

/**
 * The byte length of host memory, read with the built-in getters (a subclass's never run). 0
 * for memory that is gone: typed arrays and ArrayBuffers say so themselves, but a DataView
 * whose buffer was detached or shrunk under it throws a TypeError instead.
 */
export function hostLength(side: { memory: HostMemory }): number {
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
