/**
 * Managed memory: prefetch and advice. They are HostBuffer methods (`buf.prefetch()`,
 * `buf.advise()`), attached here so that memory/ never imports gpu/.
 */
import { binding, constants } from '../boundary/native.js';
import { checkDevice, invalid, optionsOf } from '../boundary/validate.js';
import { HostBuffer, type HostBlock } from '../memory/host-buffer.js';

import { watched } from './completion.js';
import { Stream } from './device.js';

const ADVICE = constants.advice;

/** Advice for managed memory (cuMemAdvise). */
export type Advice = keyof typeof ADVICE;

function target(where: unknown): number {
  return where === 'host' ? -1 : checkDevice(where);
}

function managedBlock(buf: unknown, what: string): HostBlock {
  const block = HostBuffer.blockOf(buf);
  if (block === undefined) throw invalid('this', 'a HostBuffer', buf);
  if (block.kind !== 'managed')
    throw invalid(what, 'called on managed memory', `a ${block.kind} buffer`);
  return block;
}

const readPrefetchOptions = optionsOf<{ stream?: Stream }>('buf.prefetch', { stream: true });

function prefetch(
  buf: HostBuffer,
  where: number | 'host',
  options?: { stream?: Stream },
): Promise<void> {
  const o = readPrefetchOptions(options);
  const stream = o.stream === undefined ? undefined : Stream.handleOf(o.stream);
  const to = target(where);
  const block = managedBlock(buf, 'prefetch()');
  const device = o.stream !== undefined ? o.stream.device : to < 0 ? 0 : to;
  return watched(binding.prefetch(device, block.memory, to, stream));
}

function advise(buf: HostBuffer, advice: Advice, where: number | 'host'): void {
  const code =
    typeof advice === 'string' && Object.hasOwn(ADVICE, advice) ? ADVICE[advice] : undefined;
  if (code === undefined)
    throw invalid('advice', `one of ${Object.keys(ADVICE).join(', ')}`, advice);
  const to = target(where);
  const block = managedBlock(buf, 'advise()');
  binding.advise(to < 0 ? 0 : to, block.memory, code, to);
}

declare module '../memory/host-buffer.js' {
  interface HostBuffer {
    /**
     * Managed memory only: migrates the block to `device` (or 'host') ahead of use. Resolves
     * when the migration is done.
     */
    prefetch(device: number | 'host', options?: { stream?: Stream }): Promise<void>;
    /**
     * Managed memory only: cuMemAdvise. `advice` is 'readMostly', 'preferredLocation' or
     * 'accessedBy' (or their 'unset...' forms); `device` a device index or 'host'.
     */
    advise(advice: Advice, device: number | 'host'): void;
  }
}

// Methods, as a class declares them: writable, configurable, not enumerable.
Object.defineProperties(HostBuffer.prototype, {
  prefetch: {
    value: function prefetch_(
      this: HostBuffer,
      device: number | 'host',
      options?: { stream?: Stream },
    ): Promise<void> {
      return prefetch(this, device, options);
    },
    writable: true,
    configurable: true,
  },
  advise: {
    value: function advise_(this: HostBuffer, advice: Advice, device: number | 'host'): void {
      advise(this, advice, device);
    },
    writable: true,
    configurable: true,
  },
});
