// Starts a device-to-host copy into a block of a shared pool, tells the main thread, then waits
// to be terminated with the copy still in flight. Loaded by test/fake-cuda/lifetimes.test.ts.
const threads = require('node:worker_threads');
if (threads.parentPort === null) throw new Error('copy-worker.cjs runs in a worker thread');
const { parentPort, workerData } = threads;
const { attach, copy, deviceAlloc } = require('pinpool');

const h = attach(workerData.token);
const buf = h.alloc(workerData.bytes);
const dev = deviceAlloc(workerData.bytes);
globalThis.kept = [buf, dev];
copy(buf, dev).catch(() => {});
parentPort.postMessage({ address: String(buf.address) });
parentPort.on('message', () => {}); // a listening port keeps the thread alive until terminate()
