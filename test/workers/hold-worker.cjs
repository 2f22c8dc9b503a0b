// Allocates buffers, keeps them past the end of the tick, then exits or waits to be
// terminated, without freeing anything. Loaded by test/lifecycle.test.ts.
const { parentPort, workerData } = require('node:worker_threads');
const { attach, pool, pageable } = require('../../dist/src/index.js');

const h = attach(workerData.token);
const kept = Array.from({ length: workerData.count }, (_, i) => h.alloc(1000 + i));
setImmediate(() => {
  // Past the tick: the buffers are registered as long-lived now.
  if (workerData.makeOwn) {
    const own = pool(pageable({ name: 'worker-own' }));
    kept.push(own.alloc(10));
    parentPort.postMessage({ ready: true, kept: kept.length, own: own.share() });
  } else {
    parentPort.postMessage({ ready: true, kept: kept.length });
  }
  if (workerData.exit) setTimeout(() => process.exit(0), 10);
});
