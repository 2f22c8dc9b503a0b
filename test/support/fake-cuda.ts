/** Test access to the CUDA test double (test/doubles/fake-cuda) through the addon's test hooks. */
import { testing } from './testing.js';

export const fakeCudaLibrary = process.env.PINPOOL_CUDA_LIBRARY ?? '';

/** Call counters of the double, by entry point name ("cuMemHostAlloc" ...). */
export function counters(): Record<string, number> {
  const c = testing().fakeCuda('counters');
  if (c === null) throw new Error('the loaded CUDA library is not the test double');
  return c;
}

export function resetCounters(): void {
  testing().fakeCuda('reset');
}

/**
 * Sets a knob of the double at run time: fail_after, memory_bytes, copy_delay_ms, hold_copies,
 * sticky_error... Throws for a knob the double lacks or a value it refuses (an error code cuda.h
 * lacks, for one).
 */
export function setKnob(knob: string, value: number): void {
  if (!testing().fakeCuda('set', knob, value))
    throw new Error(`unknown knob ${knob} (or refused value ${value})`);
}
