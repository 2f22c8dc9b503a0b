/** Test access to the CUDA test double (test/doubles/fake-cuda) through the addon's hooks. */
import { binding } from '../../dist/src/boundary/native.js';

export const fakeCudaLibrary = process.env.PINPOOL_CUDA_LIBRARY ?? '';

/** Call counters of the double, by entry point name ("cuMemHostAlloc" ...). */
export function counters(): Record<string, number> {
  const c = binding.fakeCuda('counters');
  if (c === null) throw new Error('the loaded CUDA library is not the test double');
  return c;
}

export function resetCounters(): void {
  binding.fakeCuda('reset');
}

/** Sets a knob of the double at run time: fail_after, memory_bytes, copy_delay_ms. */
export function setKnob(knob: string, value: number): void {
  if (!binding.fakeCuda('set', knob, value)) throw new Error(`unknown knob ${knob}`);
}
