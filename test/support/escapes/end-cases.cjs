// Thread ends that must lose nothing, or count what they must keep (test/host/escapes.test.ts):
//
//   node end-cases.cjs terminate-mid-free <rounds>   workers that only allocate and free, each
//        terminated at a random moment (in the middle of free() too): prints what was orphaned
//        (a measurement, not a test: a collection during a terminated thread's teardown clears
//        the weak references pinpool watches buffers by, and such a block is orphaned)
//   node end-cases.cjs slab-views                    a worker posts three views of one slab and
//        ends: the slab is orphaned once
//   node end-cases.cjs registered                    a worker registers a locked pool block with the
//        driver and ends while registered: the block is orphaned, counted (CUDA double)
'use strict';
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');
const pinpool = require('pinpool');

/** The worker half's port to the main thread. */
function port() {
  if (parentPort === null)
    throw new Error('end-cases.cjs: only the worker half posts to the main thread');
  return parentPort;
}

const worker = {
  'terminate-mid-free'(h) {
    port().postMessage('running');
    for (let i = 0; ; i++) {
      // Kept reachable: a buffer the garbage collector took before the thread's end cannot be
      // told from one that left (it is orphaned, by design); this case is about free() itself.
      const b = (globalThis.current = h.alloc(4096 * (1 + (i % 4))));
      b.bytes[0] = 1;
      b.free();
    }
  },
  'slab-views'(h) {
    for (let i = 0; i < 3; i++) {
      const b = h.alloc(4096);
      const view = b.bytes.buffer;
      port().postMessage(view, [view]); // every view of that slab here goes with it
      b.free();
    }
  },
  registered(h) {
    const b = h.alloc(1 << 20);
    globalThis.kept = [b, pinpool.register(b.bytes)];
  },
};

async function main() {
  const [what, rounds] = process.argv.slice(2);
  const options =
    what === 'slab-views'
      ? { slabViews: true }
      : what === 'registered'
        ? {}
        : { threadCacheBytes: 0 };
  const leaf = what === 'registered' ? pinpool.locked() : pinpool.pageable();
  const h = pinpool.pool(leaf, options);
  const received = [];
  for (let r = 0; r < Number(rounds ?? 1); r++) {
    const w = new Worker(__filename, { workerData: { token: h.share(), what } });
    const exited = new Promise((resolve) => w.on('exit', resolve));
    w.on('message', (m) => {
      if (m === 'running') setTimeout(() => w.terminate(), Math.floor(Math.random() * 20));
      else received.push(m);
    });
    await exited;
  }
  for (let i = 0; i < 3; i++) await new Promise((res) => setImmediate(res));
  h.trim();
  const s = h.stats();
  console.log(
    JSON.stringify({
      orphanedBytes: s.orphanedBytes,
      orphanedBlocks: s.orphanedBlocks,
      reservedBytes: s.reservedBytes,
      bytesInUse: s.bytesInUse,
      received: received.length,
    }),
  );
}

if (isMainThread) main();
else worker[workerData.what](pinpool.attach(workerData.token));
