// Suite: small alloc+free, pool hit, 4 KiB, freed in the same tick, against the JavaScript
// ways to get 4 KiB, the pool-less locked leaf, and the floor: what a pure JavaScript pool of
// slab views costs (a free-list pop and push, a Uint8Array over a slab, a small object).
import { locked, pool } from 'pinpool';
import { measure, ratio, report } from './lib.mjs';

const SIZE = 4096;
const BATCH = 1000;

export async function run() {
  const detach = pool(locked(), { name: 'detach-pool' });
  const slab = pool(locked(), { name: 'slab-pool', slabViews: true });
  const leaf = locked();
  const floorSlab = new ArrayBuffer(64 * SIZE);
  const floorFree = Array.from({ length: 64 }, (_, i) => i * SIZE);
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
      'floor: JS free list + slab view + object': () => {
        for (let i = 0; i < BATCH; i++) {
          const offset = /** @type {number} */ (floorFree.pop()); // 64 offsets, one out at a time
          const b = { bytes: new Uint8Array(floorSlab, offset, SIZE), offset, released: false };
          sink += b.bytes.length;
          b.released = true;
          floorFree.push(b.offset);
        }
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
    {
      label: 'detach-on-free / new ArrayBuffer',
      value: ratio(rows, 'pool hit (detach-on-free)', 'new ArrayBuffer(4096)'),
      min: 3,
    },
    {
      label: 'slabViews / Buffer.allocUnsafeSlow',
      value: ratio(rows, 'pool hit (slabViews)', 'Buffer.allocUnsafeSlow(4096)'),
      min: 10,
    },
    {
      label: 'slabViews time / floor time',
      value: ratio(rows, 'floor: JS free list + slab view + object', 'pool hit (slabViews)'),
      max: 4,
    },
    {
      label: 'detach-on-free / locked leaf',
      value: ratio(rows, 'pool hit (detach-on-free)', 'locked leaf, no pool (mmap+mlock)'),
      min: 20,
    },
    {
      label: 'slabViews / locked leaf',
      value: ratio(rows, 'pool hit (slabViews)', 'locked leaf, no pool (mmap+mlock)'),
      min: 20,
    },
  ]);
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
