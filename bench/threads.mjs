// Suite 6: worker threads allocating and freeing 4 KiB from one shared pool: aggregate
// throughput of two threads against one.
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';

import { locked, pool } from 'pinpool';
import { quick, report } from './lib.mjs';

const worker = new URL('./threads-worker.cjs', import.meta.url);

async function throughput(token, threads, ms) {
  const workers = Array.from(
    { length: threads },
    () => new Worker(worker, { workerData: { token, ms } }),
  );
  const results = await Promise.all(workers.map(async (w) => (await once(w, 'message'))[0]));
  await Promise.all(workers.map((w) => w.terminate()));
  return results.reduce((sum, r) => sum + r.ops / r.seconds, 0);
}

export async function run() {
  const h = pool(locked(), { name: 'shared' });
  const token = h.share();
  const ms = quick ? 300 : 2000;
  const one = [];
  const two = [];
  for (let round = 0; round < (quick ? 1 : 3); round++) {
    one.push(await throughput(token, 1, ms));
    two.push(await throughput(token, 2, ms));
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rows = [
    {
      case: '1 thread',
      opsPerSec: median(one),
      medianNs: 1e9 / median(one),
      p99Ns: NaN,
      samples: one.length,
    },
    {
      case: '2 threads, aggregate',
      opsPerSec: median(two),
      medianNs: 2e9 / median(two),
      p99Ns: NaN,
      samples: two.length,
    },
  ];
  return report('two threads, one shared pool', rows, [
    { label: '2 threads / 1 thread', value: median(two) / median(one), min: 1.8 },
  ]);
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
