// Allocates `count` blocks in one synchronous run and never frees them, then ends the thread
// before the tick is over: by process.exit, or by spinning until the main thread terminates it.
// Loaded by test/host/lifetimes.test.ts.
const threads = require('node:worker_threads');
if (threads.parentPort === null) throw new Error('sync-run-worker.cjs runs in a worker thread');
const { parentPort, workerData } = threads;
const { attach } = require('pinpool');

const h = attach(workerData.token);
const kept = [];
for (let i = 0; i < workerData.count; i++) kept.push(h.alloc(4096));
parentPort.postMessage({ allocated: kept.length });
if (workerData.exit) process.exit(0);
for (;;) {
  // spin: this run never ends, so no end-of-tick work ever sees these blocks
}
