// Suite 2: large alloc+free, pool hit, 1 MiB and 64 MiB, against the pool-less upstream (the
// locked leaf: mmap + mlock + munmap every time). Both with `bytes` read, as a program would.
import { locked, pool } from '../dist/src/index.js';
import { measure, quick, ratio, report } from './lib.mjs';

export async function run() {
  const rows = [];
  const targets = [];
  for (const [label, size] of [['1 MiB', 2 ** 20], ['64 MiB', 64 * 2 ** 20]]) {
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
    targets.push({ label: `pool / leaf, ${label}`, value: ratio(r, `pool hit ${label}`, `locked leaf ${label}`), min: 100 });
  }
  return report('large alloc+free, pool hit', rows, targets);
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
