/**
 * mapFile(): a file's contents as a HostBuffer, either mapped in place through the file-mapping
 * leaf (native/handlers/file_mapping_handler.hpp) or, with `copy`, read into a block of any
 * handler.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import * as path from 'node:path';

import { ErrorCode, PinpoolError } from './errors.js';
import { Handler } from './handler.js';
import { defaultHandler } from './handlers.js';
import type { HostBuffer } from './host-buffer.js';
import { binding } from './native.js';
import { checkBoolean, checkDevice, checkOptions, invalid } from './validate.js';

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

/**
 * Returns a HostBuffer over a file's contents.
 *
 * By default the file is mapped, zero copy: its pages are the page cache's own, read in ahead,
 * and a write through `bytes` copies just the page it touches (or, with `writable`, reaches the
 * file). The mapping lives until the buffer is freed. If the file is truncated meanwhile,
 * reading a page it lost kills the process with SIGBUS: map only files nothing shrinks, or use
 * `copy`, which reads the file into a block of `handler` (the default chain unless given).
 *
 * @example
 * using weights = mapFile('model.bin', { register: true });
 * await copy(dev, weights);
 * using snapshot = mapFile('shared.bin', { copy: true, handler: pool(pinned()) });
 */
export function mapFile(file: string, options?: MapFileOptions): HostBuffer {
  if (typeof file !== 'string' || file.length === 0) throw invalid('path', 'a file path', file);
  const o = checkOptions<MapFileOptions>(options, 'mapFile options');
  const writable = o.writable === undefined ? false : checkBoolean(o.writable, 'writable');
  const register = o.register === undefined ? false : checkBoolean(o.register, 'register');
  const device = o.device === undefined ? 0 : checkDevice(o.device);
  const copy = o.copy === undefined ? false : checkBoolean(o.copy, 'copy');
  if (o.handler !== undefined && !copy) throw invalid('handler', 'given only with { copy: true }', o.handler);
  if (o.handler !== undefined && !(o.handler instanceof Handler)) throw invalid('handler', 'a pinpool handler', o.handler);
  if (copy && writable) throw invalid('writable', 'false with { copy: true } (a copy never reaches the file)', writable);
  if (copy && register) throw invalid('register', 'false with { copy: true } (copy into a pinned handler instead)', register);
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new Error('not a regular file');
    size = st.size;
  } catch (err) {
    throw new PinpoolError(ErrorCode.INVALID_ARGUMENT, `pinpool: cannot map ${file}: ${(err as Error).message}`);
  }
  if (copy) {
    const fd = openSync(file, 'r');
    try {
      return readInto(fd, size, o.handler ?? defaultHandler());
    } finally {
      closeSync(fd);
    }
  }
  const name = `file:${path.basename(file)}`.slice(0, 128);
  const handler = new Handler(binding.createHandler('file', { name, path: path.resolve(file), writable, register, device }));
  return handler.alloc(size, { alignment: 1 });
}

/**
 * Reads the file open as `fd`, whose size is `size`, into a block of `handler`, as
 * fs.readFileSync would: `size` bytes, fewer if the file ends sooner, and to its end when
 * stat says 0 (files in /proc and /sys have contents but no size).
 */
function readInto(fd: number, size: number, handler: Handler): HostBuffer {
  if (size === 0) {
    const chunks: Buffer[] = [];
    for (;;) {
      const chunk = Buffer.allocUnsafe(64 * 1024);
      const n = readSync(fd, chunk, 0, chunk.length, null);
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
      const n = readSync(fd, bytes, done, size - done, null);
      if (n === 0) break;
      done += n;
    }
  } catch (err) {
    buf.free();
    throw err;
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
