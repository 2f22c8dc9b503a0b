// One thread of suite 6: alloc+free 4 KiB from the shared pool for `ms`, then report.
const threads = require('node:worker_threads');
if (threads.parentPort === null) throw new Error('threads-worker.cjs runs in a worker thread');
const { parentPort, workerData } = threads;
const { attach } = require('pinpool');

const h = attach(workerData.token);
for (let i = 0; i < 10_000; i++) h.alloc(4096).free(); // warm up
let ops = 0;
let sink = 0;
const start = process.hrtime.bigint();
const end = start + BigInt(workerData.ms) * 1_000_000n;
while (process.hrtime.bigint() < end) {
  for (let i = 0; i < 1000; i++) {
    const b = h.alloc(4096);
    sink += b.bytes.length;
    b.free();
  }
  ops += 1000;
}
parentPort.postMessage({ ops, seconds: Number(process.hrtime.bigint() - start) / 1e9, sink });
