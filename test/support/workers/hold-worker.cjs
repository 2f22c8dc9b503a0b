// Allocates buffers, keeps them past the end of the tick, then exits or waits to be
// terminated, without freeing anything. Loaded by test/host/lifecycle.test.ts.
const threads = require('node:worker_threads');
if (threads.parentPort === null) throw new Error('hold-worker.cjs runs in a worker thread');
const { parentPort, workerData } = threads;
const { attach, pool, pageable } = require('pinpool');

const h = attach(workerData.token);
// Held from the global object: the point is buffers that are alive when the thread ends.
const kept = (globalThis.kept = Array.from({ length: workerData.count }, (_, i) =>
  h.alloc(1000 + i),
));
const own = workerData.makeOwn ? pool(pageable({ name: 'worker-own' })) : undefined;
if (own) kept.push(own.alloc(10));

setImmediate(() => {
  // Past the tick that made them: the buffers are registered as long-lived now.
  parentPort.postMessage({ ready: true, kept: kept.length, own: own?.share() });
  if (workerData.exit) setTimeout(() => process.exit(0), 10);
  else parentPort.on('message', () => {}); // a listening port keeps the thread alive until terminate()
});
