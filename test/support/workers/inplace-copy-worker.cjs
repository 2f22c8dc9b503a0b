// Registers memory of its own (a SharedArrayBuffer nobody else holds, freed when this thread
// ends), starts a device-to-host copy into it in place, tells the main thread, then waits to be
// terminated with the copy still in flight. Loaded by test/fake-cuda/lifetimes.test.ts.
const threads = require('node:worker_threads');
if (threads.parentPort === null) throw new Error('inplace-copy-worker.cjs runs in a worker');
const { parentPort, workerData } = threads;
const { copy, deviceAlloc, register } = require('pinpool');

const memory = new Uint8Array(new SharedArrayBuffer(workerData.bytes));
const registration = register(memory);
const dev = deviceAlloc(workerData.bytes);
globalThis.kept = [registration, dev];
copy(memory, dev).catch(() => {});
parentPort.postMessage('copying');
parentPort.on('message', () => {}); // a listening port keeps the thread alive until terminate()
