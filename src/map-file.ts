/**
 * mapFile(): a file's contents as a HostBuffer, through the file-mapping leaf
 * (native/handlers/file_mapping_handler.hpp).
 */
import { statSync } from 'node:fs';
import * as path from 'node:path';

import { ErrorCode, PinpoolError } from './errors.js';
import { Handler } from './handler.js';
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
}

/**
 * Maps a file and returns a HostBuffer over its contents. The mapping lives until the buffer
 * is freed. Without `writable`, writes change only this process's copy.
 *
 * @example
 * using weights = mapFile('model.bin', { register: true });
 * await copy(dev, weights);
 */
export function mapFile(file: string, options?: MapFileOptions): HostBuffer {
  if (typeof file !== 'string' || file.length === 0) throw invalid('path', 'a file path', file);
  const o = checkOptions<MapFileOptions>(options, 'mapFile options');
  const writable = o.writable === undefined ? false : checkBoolean(o.writable, 'writable');
  const register = o.register === undefined ? false : checkBoolean(o.register, 'register');
  const device = o.device === undefined ? 0 : checkDevice(o.device);
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new Error('not a regular file');
    size = st.size;
  } catch (err) {
    throw new PinpoolError(ErrorCode.INVALID_ARGUMENT, `pinpool: cannot map ${file}: ${(err as Error).message}`);
  }
  const name = `file:${path.basename(file)}`.slice(0, 128);
  const handler = new Handler(binding.createHandler('file', { name, path: path.resolve(file), writable, register, device }));
  return handler.alloc(size, { alignment: 1 });
}
