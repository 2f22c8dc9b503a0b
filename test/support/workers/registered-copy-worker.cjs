// Copies a SharedArrayBuffer the main thread registered to the device and back into plain
// memory, and says whether the bytes came back. Loaded by test/fake-cuda/gpu.test.ts.
const threads = require('node:worker_threads');
if (threads.parentPort === null) throw new Error('registered-copy-worker.cjs runs in a worker');
const { parentPort, workerData } = threads;
const { copy, deviceAlloc } = require('pinpool');

(async () => {
  const data = new Uint8Array(workerData.memory); // this thread's view of the registered memory
  const dev = deviceAlloc(data.length);
  await copy(dev, data);
  const back = new Uint8Array(data.length);
  await copy(back, dev);
  dev.free();
  parentPort.postMessage({ same: Buffer.from(back).equals(Buffer.from(data)) });
})();
