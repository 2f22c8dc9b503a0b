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

/** Which context: none, the driver's primary context (pinpool's), or a foreign one (another library's). */
const CONTEXT_KINDS = ['none', 'primary', 'foreign'] as const;

/**
 * The context current on this thread, or the one a live allocation containing `address` was
 * made in, as the double saw it.
 */
export function contextOf(what: 'current' | bigint | number): (typeof CONTEXT_KINDS)[number] {
  const answer =
    what === 'current'
      ? testing().fakeCuda('query', 'current', 0)
      : testing().fakeCuda('query', 'context_of', Number(what));
  const kind = answer === null ? undefined : CONTEXT_KINDS[answer];
  if (kind === undefined) throw new Error(`the double has no answer for ${String(what)}`);
  return kind;
}
