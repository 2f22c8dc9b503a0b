// Suite 2: large alloc+free, pool hit, 1 MiB and 64 MiB, against the pool-less upstream (the
// locked leaf: mmap + mlock + munmap every time). Both with `bytes` read, as a program would.
// And the garbage collections 300 hits of a 64 MiB block cause (V8 counts an ArrayBuffer's
// bytes as external memory; a new one per allocation pushes it into mark-compacts).
import { PerformanceObserver } from 'node:perf_hooks';
import { setImmediate as yieldToLoop } from 'node:timers/promises';

import { locked, pool } from 'pinpool';
import { measure, quick, ratio, report } from './lib.mjs';

/** Garbage collections (of any kind) that `hits` alloc+free of `size` from `h` cause. */
async function collectionsDuring(h, size, hits) {
  h.alloc(size).free();
  await yieldToLoop();
  let collections = 0;
  const observer = new PerformanceObserver((list) => (collections += list.getEntries().length));
  observer.observe({ entryTypes: ['gc'] });
  let sink = 0;
  for (let i = 0; i < hits; i++) {
    const b = h.alloc(size);
    sink += b.bytes[i % 100];
    b.free();
    if (i % 10 === 9) await yieldToLoop(); // as a program would: the finalizers it causes run
  }
  await yieldToLoop();
  await new Promise((resolve) => setTimeout(resolve, 50)); // observers report asynchronously
  observer.disconnect();
  return collections + (sink < 0 ? 1 : 0);
}

export async function run() {
  const rows = [];
  const targets = [];
  for (const [label, size] of /** @type {[string, number][]} */ ([
    ['1 MiB', 2 ** 20],
    ['64 MiB', 64 * 2 ** 20],
  ])) {
    const cached = pool(locked(), { name: `pool-${label}` });
    const leaf = locked();
    cached.alloc(size).free();
    let sink = 0;
    const batch = size > 2 ** 20 ? 1 : 20;
    const r = await measure(
      {
        [`pool hit ${label}`]: () => {
          for (let i = 0; i < batch; i++) {
            const b = cached.alloc(size);
            sink += b.bytes.length;
            b.free();
          }
        },
        [`locked leaf ${label}`]: () => {
          for (let i = 0; i < batch; i++) {
            const b = leaf.alloc(size);
            sink += b.bytes.length;
            b.free();
          }
        },
      },
      { batch, time: quick ? 300 : 1500 },
    );
    if (sink < 0) console.log(sink);
    rows.push(...r);
    targets.push({
      label: `pool / leaf, ${label}`,
      value: ratio(r, `pool hit ${label}`, `locked leaf ${label}`),
      min: size > 2 ** 20 ? 500 : 100,
    });
  }
  const gcs = await collectionsDuring(pool(locked(), { name: 'pool-gc' }), 64 * 2 ** 20, 300);
  targets.push({ label: 'garbage collections in 300 hits of 64 MiB', value: gcs, max: 1 });
  return report('large alloc+free, pool hit', rows, targets);
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
