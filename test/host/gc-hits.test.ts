// Allocations after a full garbage collection (issue 22): a collection must not take from the
// allocation path what a warm process has. V8 holds the maps (hidden classes) that optimized
// code checks only weakly, so a collection that found no HostBuffer alive dropped HostBuffer's
// map and deoptimized the whole path: the next tens of thousands of pool hits ran 2-6x slower
// until V8 had compiled it again. Counted without a clock: V8's own optimization status of a
// function that allocates and frees, right before and right after gc() (run with --expose-gc,
// see vitest.config.mts).
import { setImmediate as tick } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { pageable, pool, type Handler, type HostBuffer } from 'pinpool';

import { movesBuffers } from '../../dist/src/memory/thread-cache.js';

declare const gc: () => void;

setFlagsFromString('--allow-natives-syntax');
/** A function that runs one V8 runtime call on `f` (parsed now, with natives syntax on). */
function natives(call: string): (f: () => void) => number {
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- %-calls parse only at run time, never in TypeScript
  return new Function('f', `return %${call}(f);`) as (f: () => void) => number;
}
const status = natives('GetOptimizationStatus');
const prepare = natives('PrepareFunctionForOptimization');
const optimizeOnNextCall = natives('OptimizeFunctionOnNextCall');
// V8's OptimizationStatus bits (src/runtime/runtime.h, the same from Node 20 to 26): optimized,
// by Maglev, by TurboFan.
const OPTIMIZED = (1 << 4) | (1 << 5) | (1 << 6);

/** `hit`, compiled by V8's optimizing compiler now, as a warm process has it. */
function optimized(hit: () => void): () => void {
  // What earlier tests left (their handlers, a slab view's map) dies now, not in the collection
  // under test, and the feedback V8 compiles from names live objects only.
  gc();
  for (let i = 0; i < 100; i++) hit();
  prepare(hit);
  hit();
  optimizeOnNextCall(hit);
  hit();
  expect(status(hit) & OPTIMIZED).not.toBe(0);
  return hit;
}

const cases: { name: string; make: () => Handler }[] = [
  {
    name: 'a pool of slab views (cached on every Node version)',
    make: () => pool(pageable(), { slabViews: true }),
  },
  {
    name: movesBuffers
      ? 'a pool of own ArrayBuffers (cached, transfer())'
      : 'a pool of own ArrayBuffers (Node 20: every call native)',
    make: () => pool(pageable()),
  },
  { name: 'a leaf (every call native)', make: () => pageable() },
];

describe.each(cases)('after a full collection, $name', ({ make }) => {
  it('the code that allocates and frees stays optimized when no buffer is alive', () => {
    const h = make();
    const hit = optimized(() => {
      const b = h.alloc(4096);
      b.bytes[0] = 1;
      b.free();
    });
    gc(); // no HostBuffer is referenced from here: the last one was freed
    expect(status(hit) & OPTIMIZED).not.toBe(0);
    hit();
    expect(status(hit) & OPTIMIZED).not.toBe(0);
  });

  it('stays optimized over collections between batches, with buffers kept until the next one', async () => {
    const h = make();
    // The buffer of the last iteration, freed in the next (a closure's assignments are not
    // narrowed: a holder object).
    const last: { kept: HostBuffer | undefined } = { kept: undefined };
    const hit = optimized(() => {
      const b = h.alloc(4096);
      b.bytes[0] = 1;
      last.kept?.free();
      last.kept = b;
    });
    for (let round = 0; round < 3; round++) {
      last.kept?.free();
      last.kept = undefined;
      // Past the end of the tick: the backstop's list of this tick's buffers is let go.
      await tick();
      gc();
      expect(status(hit) & OPTIMIZED).not.toBe(0);
      for (let i = 0; i < 100; i++) hit();
    }
    last.kept?.free();
    expect(h.stats().bytesInUse).toBe(0);
  });
});
