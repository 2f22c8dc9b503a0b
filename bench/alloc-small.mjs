// Suite: small alloc+free, pool hit, 4 KiB, freed in the same tick, against the JavaScript
// ways to get 4 KiB and the pool-less locked leaf.
import { locked, pool } from '../dist/src/index.js';
import { measure, ratio, report } from './lib.mjs';

const SIZE = 4096;
const BATCH = 1000;

export async function run() {
  const detach = pool(locked(), { name: 'detach-pool' });
  const slab = pool(locked(), { name: 'slab-pool', slabViews: true });
  const leaf = locked();
  let sink = 0;
  const rows = await measure(
    {
      'pool hit (detach-on-free)': () => {
        for (let i = 0; i < BATCH; i++) {
          const b = detach.alloc(SIZE);
          sink += b.bytes.length;
          b.free();
        }
      },
      'pool hit (slabViews)': () => {
        for (let i = 0; i < BATCH; i++) {
          const b = slab.alloc(SIZE);
          sink += b.bytes.length;
          b.free();
        }
      },
      'Buffer.allocUnsafeSlow(4096)': () => {
        for (let i = 0; i < BATCH; i++) sink += Buffer.allocUnsafeSlow(SIZE).length;
      },
      'new ArrayBuffer(4096)': () => {
        for (let i = 0; i < BATCH; i++) sink += new Uint8Array(new ArrayBuffer(SIZE)).length;
      },
      'locked leaf, no pool (mmap+mlock)': () => {
        for (let i = 0; i < BATCH; i++) {
          const b = leaf.alloc(SIZE);
          sink += b.bytes.length;
          b.free();
        }
      },
    },
    { batch: BATCH },
  );
  if (sink === 42) console.log('');
  return report('small alloc+free, 4 KiB, pool hit', rows, [
    { label: 'slabViews / Buffer.allocUnsafeSlow', value: ratio(rows, 'pool hit (slabViews)', 'Buffer.allocUnsafeSlow(4096)'), min: 5 },
    { label: 'detach-on-free / new ArrayBuffer', value: ratio(rows, 'pool hit (detach-on-free)', 'new ArrayBuffer(4096)'), min: 1 },
    { label: 'detach-on-free / locked leaf', value: ratio(rows, 'pool hit (detach-on-free)', 'locked leaf, no pool (mmap+mlock)'), min: 20 },
    { label: 'slabViews / locked leaf', value: ratio(rows, 'pool hit (slabViews)', 'locked leaf, no pool (mmap+mlock)'), min: 20 },
  ]);
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
