// Traces: syntheticTrace's options.
import { describe, expect, it } from 'vitest';
import { PinpoolError, syntheticTrace } from 'pinpool';

/** The PinpoolError a call throws (fails the test if it returns). */
function errorOf(fn: () => unknown): PinpoolError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PinpoolError);
    return err as PinpoolError;
  }
  throw new Error('expected a PinpoolError, but the call returned');
}

describe('syntheticTrace', () => {
  it('is seeded, keeps sizes in [minBytes, maxBytes], and frees only live ids', () => {
    const options = { events: 2000, seed: 7, minBytes: 100, maxBytes: 5000, live: 16 };
    const trace = syntheticTrace(options);
    expect(syntheticTrace(options)).toEqual(trace);
    expect(trace).toHaveLength(2000);
    const live = new Set<number>();
    for (const e of trace) {
      if (e.op === 'alloc') {
        expect(e.bytes).toBeGreaterThanOrEqual(100);
        expect(e.bytes).toBeLessThanOrEqual(5000);
        expect(live.has(e.id)).toBe(false);
        live.add(e.id);
      } else {
        expect(live.delete(e.id)).toBe(true);
      }
    }
    const equal = syntheticTrace({ events: 10, minBytes: 4096, maxBytes: 4096 });
    expect(equal.every((e) => e.op !== 'alloc' || e.bytes === 4096)).toBe(true);
  });

  it('refuses options that make no trace: minBytes 0 (sizes would be NaN), minBytes > maxBytes, ...', () => {
    const bad: unknown[] = [
      null,
      7,
      { minBytes: 0 },
      { minBytes: 2048, maxBytes: 1024 },
      { minBytes: -1 },
      { maxBytes: 0 },
      { events: 1.5 },
      { seed: 'one' },
      { seed: -1 },
      { live: Infinity },
    ];
    for (const options of bad) {
      expect(errorOf(() => syntheticTrace(options as object)).code, JSON.stringify(options)).toBe('ERR_PINPOOL_INVALID_ARGUMENT');
    }
  });
});
