/**
 * mapFile(): a file's contents as a HostBuffer, either mapped in place through the file-mapping
 * leaf (native/handlers/file_mapping_handler.hpp) or, with `copy`, read into a block of any
 * handler.
 */
import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import * as path from 'node:path';

import { ErrorCode, PinpoolError, type PinpoolErrorDetails } from '../boundary/errors.js';
import { Handler } from './handler.js';
import { defaultHandler } from './factories.js';
import type { HostBuffer } from './host-buffer.js';
import { binding } from '../boundary/native.js';
import { checkBoolean, checkDevice, invalid, optionsOf } from '../boundary/validate.js';

/**
 * Options of mapFile(): a private or shared mapping, CUDA registration, or a copy into a handler's
 * block.
 */
export interface MapFileOptions {
  /** Writes through `bytes` reach the file (a shared mapping). Default false: writes stay private. */
  writable?: boolean;
  /** Page-lock the mapping with CUDA so copies from it run at pinned speed. Default false. */
  register?: boolean;
  /** Device whose context registers it. Default 0. */
  device?: number;
  /**
   * Read the file into a block of `handler` instead of mapping it: the bytes are then the
   * buffer's own, so nothing done to the file afterwards can reach them. Default false.
   */
  copy?: boolean;
  /** With `copy`: the handler the block comes from. Default defaultHandler(). */
  handler?: Handler;
}

const readMapFileOptions = optionsOf<MapFileOptions>('mapFile', {
  writable: true,
  register: true,
  device: true,
  copy: true,
  handler: true,
});

/**
 * Returns a HostBuffer over a file's contents.
 *
 * By default the file is mapped, zero copy: its pages are the page cache's own, read in ahead,
 * and a write through `bytes` copies just the page it touches (or, with `writable`, reaches the
 * file). The mapping lives until the buffer is freed. If the file is truncated meanwhile,
 * reading a page it lost kills the process with SIGBUS: map only files nothing shrinks, or use
 * `copy`, which reads the file into a block of `handler` (the default chain unless given).
 * Files whose size stat does not know (/proc and /sys) cannot be mapped; `copy` reads them.
 * A path that cannot be opened is ERR_PINPOOL_INVALID_ARGUMENT, naming it and the OS reason.
 *
 * @example
 * using weights = mapFile('model.bin', { register: true });
 * await copy(dev, weights);
 * using snapshot = mapFile('shared.bin', { copy: true, handler: pool(pinned()) });
 */
export function mapFile(file: string, options?: MapFileOptions): HostBuffer {
  if (typeof file !== 'string' || file.length === 0) throw invalid('path', 'a file path', file);
  const o = readMapFileOptions(options);
  const writable = o.writable === undefined ? false : checkBoolean(o.writable, 'writable');
  const register = o.register === undefined ? false : checkBoolean(o.register, 'register');
  const device = o.device === undefined ? 0 : checkDevice(o.device);
  const copy = o.copy === undefined ? false : checkBoolean(o.copy, 'copy');
  if (o.handler !== undefined && !copy)
    throw invalid('handler', 'given only with { copy: true }', o.handler);
  if (o.handler !== undefined && !Handler.is(o.handler))
    throw invalid('handler', 'a pinpool handler', o.handler);
  if (copy && writable)
    throw invalid(
      'writable',
      'false with { copy: true } (a copy never reaches the file)',
      writable,
    );
  if (copy && register)
    throw invalid(
      'register',
      'false with { copy: true } (copy into a pinned handler instead)',
      register,
    );
  const [fd, size] = open(file, writable);
  try {
    if (copy) return readInto(file, fd, size, o.handler ?? defaultHandler());
    if (size === 0 && !isEmpty(fd)) {
      throw cannotMap(
        file,
        'stat says size 0 but it is not empty (a /proc or /sys file?), so a mapping would show none of it; read it with { copy: true }',
      );
    }
    const name = `file:${path.basename(file)}`.slice(0, 128);
    const handler = new Handler(
      binding.createHandler('file', { name, fd, writable, register, device }),
    );
    try {
      return handler.alloc(size, { alignment: 1 });
    } catch (err) {
      throw mappingFailure(file, fd, size, err);
    }
  } finally {
    closeSync(fd);
  }
}

function cannotMap(file: string, why: string): PinpoolError {
  return new PinpoolError(ErrorCode.INVALID_ARGUMENT, `pinpool: cannot map ${file}: ${why}`);
}

/** The OS's reason from a Node.js fs error: 'no such file or directory (ENOENT)'. */
function osReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException | null | undefined;
  if (typeof e?.code !== 'string' || typeof e.message !== 'string') return String(err);
  // Node's text is `${code}: ${what}, ${syscall} '${path}'`; the path is named already.
  let what = e.message.startsWith(`${e.code}: `) ? e.message.slice(e.code.length + 2) : e.message;
  const end = e.syscall === undefined ? -1 : what.lastIndexOf(`, ${e.syscall}`);
  if (end >= 0) what = what.slice(0, end);
  return `${what} (${e.code})`;
}

function fileType(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'something else';
}

/**
 * Opens a regular file (read-write if `writable`) and returns it with its size. Anything else
 * is refused before it is opened, since opening a FIFO blocks and opening a device may act.
 */
function open(file: string, writable: boolean): [fd: number, size: number] {
  let st: Stats;
  try {
    st = statSync(file);
  } catch (err) {
    throw cannotMap(file, osReason(err));
  }
  if (!st.isFile()) throw cannotMap(file, `it is ${fileType(st)}, not a regular file`);
  let fd: number;
  try {
    // O_NONBLOCK: should the path have become a FIFO since stat, opening it must not block.
    fd = openSync(file, (writable ? constants.O_RDWR : constants.O_RDONLY) | constants.O_NONBLOCK);
  } catch (err) {
    throw cannotMap(file, osReason(err));
  }
  try {
    st = fstatSync(fd);
  } catch (err) {
    closeSync(fd);
    throw cannotMap(file, osReason(err));
  }
  if (!st.isFile()) {
    closeSync(fd);
    throw cannotMap(file, `it is ${fileType(st)}, not a regular file`);
  }
  return [fd, st.size];
}

/** Whether a file of size 0 really is empty: /proc and /sys files say 0 and hold text. */
function isEmpty(fd: number): boolean {
  try {
    return readSync(fd, Buffer.alloc(1), 0, 1, 0) === 0;
  } catch {
    return false;
  }
}

/** A failure of the file-mapping leaf, said with the path. */
function mappingFailure(file: string, fd: number, size: number, err: unknown): unknown {
  if (!(err instanceof PinpoolError)) return err;
  if (err.code === ErrorCode.INVALID_ARGUMENT) {
    let now = size;
    try {
      now = fstatSync(fd).size;
    } catch {
      // Not even fstat(): the size from before stands, and the message says the system refused.
    }
    return cannotMap(
      file,
      now !== size
        ? `it changed size while being mapped (${size} bytes, then ${now})`
        : 'the system refused to map it (its file system may not support mmap, as /sys does not); read it with { copy: true }',
    );
  }
  const details: PinpoolErrorDetails = {};
  if (err.reason !== undefined) details.reason = err.reason;
  if (err.handler !== undefined) details.handler = err.handler;
  if (err.cudaError !== undefined) details.cudaError = err.cudaError;
  if (err.cudaErrorName !== undefined) details.cudaErrorName = err.cudaErrorName;
  return new PinpoolError(
    err.code,
    `pinpool: cannot map ${file}: ${err.message.replace(/^pinpool: /, '')}`,
    details,
  );
}

/** The most one readSync is asked for: Node refuses a length over 2^31-1 (and Linux reads at most 2^31-4096 a call). */
const READ_CHUNK_BYTES = 2 ** 30;

/**
 * Reads the file open as `fd`, whose size is `size`, into a block of `handler`, as
 * fs.readFileSync would: `size` bytes, fewer if the file ends sooner, and to its end when
 * stat says 0 (files in /proc and /sys have contents but no size).
 */
function readInto(file: string, fd: number, size: number, handler: Handler): HostBuffer {
  if (size === 0) {
    const chunks: Buffer[] = [];
    for (;;) {
      const chunk = Buffer.allocUnsafe(64 * 1024);
      let n: number;
      try {
        n = readSync(fd, chunk, 0, chunk.length, null);
      } catch (err) {
        throw cannotMap(file, osReason(err));
      }
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
    }
    const buf = handler.alloc(chunks.reduce((sum, c) => sum + c.length, 0));
    let offset = 0;
    for (const c of chunks) {
      buf.bytes.set(c, offset);
      offset += c.length;
    }
    return buf;
  }
  const buf = handler.alloc(size);
  let done = 0;
  try {
    const bytes = buf.bytes;
    while (done < size) {
      const n = readSync(fd, bytes, done, Math.min(size - done, READ_CHUNK_BYTES), null);
      if (n === 0) break;
      done += n;
    }
  } catch (err) {
    buf.free();
    throw cannotMap(file, osReason(err));
  }
  if (done === size) return buf;
  // The file ended sooner (it shrank, or stat overstates it as /sys does): keep what it held.
  try {
    const exact = handler.alloc(done);
    exact.bytes.set(buf.bytes.subarray(0, done));
    return exact;
  } finally {
    buf.free();
  }
}
