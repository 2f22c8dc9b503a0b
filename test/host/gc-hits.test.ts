// Allocations after a full garbage collection (issue 22): a collection must not take from the
// allocation path what a warm process has. V8 holds the maps (hidden classes) that optimized
// code checks only weakly, so a collection that found no HostBuffer alive dropped HostBuffer's
// map and deoptimized the whole path: the next tens of thousands of pool hits ran 2-6x slower
// until V8 had compiled it again. Counted without a clock: V8's own optimization status of a
// function that allocates and frees, right before and after each gc(). Each case runs in a new
// process, so that nothing another case left (its handlers, the feedback V8 gathered from
// them) dies in the collections under test.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { movesBuffers } from '../../dist/src/memory/thread-cache.js';

const dist = JSON.stringify(join(__dirname, '..', '..', 'dist', 'src', 'index.js'));

// V8's OptimizationStatus bits (src/runtime/runtime.h, the same from Node 20 to 26): optimized,
// by Maglev, by TurboFan.
const OPTIMIZED = (1 << 4) | (1 << 5) | (1 << 6);

/**
 * V8's optimization status of `hit`, a function that allocates 4 KiB from the handler `make`
 * returns and frees it (at once, or in the next call: `keepUntilNext`), once V8's optimizing
 * compiler compiled it, then after each of three collections that find no buffer alive, with
 * 100 calls between them.
 */
function statuses(make: string, keepUntilNext: boolean): { compiled: number; collected: number[] } {
  const script = `
    const { pageable, pool } = require(${dist});
    const h = ${make};
    let kept;
    const hit = ${
      keepUntilNext
        ? '() => { const b = h.alloc(4096); b.bytes[0] = 1; kept?.free(); kept = b; }'
        : '() => { const b = h.alloc(4096); b.bytes[0] = 1; b.free(); }'
    };
    for (let i = 0; i < 100; i++) hit();
    %PrepareFunctionForOptimization(hit);
    hit();
    %OptimizeFunctionOnNextCall(hit);
    hit();
    const out = { compiled: %GetOptimizationStatus(hit), collected: [] };
    (async () => {
      for (let round = 0; round < 3; round++) {
        kept?.free();
        kept = undefined;
        // Past the end of the tick: the backstop lets go of this tick's buffers.
        await new Promise((resolve) => setImmediate(resolve));
        gc();
        out.collected.push(%GetOptimizationStatus(hit));
        for (let i = 0; i < 100; i++) hit();
      }
      kept?.free();
      if (h.stats().bytesInUse !== 0) throw new Error('a buffer was not freed');
      console.log(JSON.stringify(out));
    })();`;
  const run = spawnSync(process.execPath, ['--expose-gc', '--allow-natives-syntax', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, PINPOOL_CUDA_LIBRARY: '' },
  });
  expect(run.stderr).toBe('');
  return JSON.parse(run.stdout) as { compiled: number; collected: number[] };
}

const cases = [
  {
    name: 'a pool of slab views (cached on every Node version)',
    make: 'pool(pageable(), { slabViews: true })',
  },
  {
    name: movesBuffers
      ? 'a pool of own ArrayBuffers (cached: transfer())'
      : 'a pool of own ArrayBuffers (Node 20: every call native)',
    make: 'pool(pageable())',
  },
  { name: 'a leaf (every call native)', make: 'pageable()' },
];

describe.each(cases)('after full collections, $name', ({ make }) => {
  it.each([
    { pattern: 'freed at once', keepUntilNext: false },
    { pattern: 'kept until the next call', keepUntilNext: true },
  ])('the code that allocates and frees stays optimized ($pattern)', ({ keepUntilNext }) => {
    const { compiled, collected } = statuses(make, keepUntilNext);
    expect(compiled & OPTIMIZED).not.toBe(0);
    expect(collected.map((s) => s & OPTIMIZED)).not.toContain(0);
  });
});
