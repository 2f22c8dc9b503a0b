// What a test of the hit paths counts: the binding's alloc() and free() calls, and a replayable
// sequence of choices.
import { binding } from '../../dist/src/boundary/native.js';

/** Counts the binding's alloc() and free() calls while `fn` runs. */
export function nativeCalls(fn: () => void): { alloc: number; free: number } {
  const calls = { alloc: 0, free: 0 };
  const b = binding as unknown as Record<'alloc' | 'free', (...args: unknown[]) => unknown>;
  const [nativeAlloc, nativeFree] = [b.alloc, b.free];
  b.alloc = (...args) => (calls.alloc++, nativeAlloc(...args));
  b.free = (...args) => (calls.free++, nativeFree(...args));
  try {
    fn();
  } finally {
    b.alloc = nativeAlloc;
    b.free = nativeFree;
  }
  return calls;
}

/** A pseudo-random sequence (xorshift), so a failure replays. */
export function random(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}
