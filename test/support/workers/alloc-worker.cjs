// A worker that attaches a shared handler and allocates from it, checking a pattern in every
// block. Loaded by test/host/threads.test.ts.
const threads = require('node:worker_threads');
if (threads.parentPort === null) throw new Error('alloc-worker.cjs runs in a worker thread');
const { parentPort, workerData } = threads;
const { attach, adopt } = require('pinpool');

const { token, iterations, seed } = workerData;
const h = attach(token);
let errors = 0;
/** @type {[import('pinpool').HostBuffer, number][]} */
const live = [];
for (let i = 0; i < iterations; i++) {
  const size = 1 + ((i * 7919 + seed) % 20000);
  const b = h.alloc(size);
  const mark = (i + seed) & 0xff;
  b.bytes.fill(mark);
  live.push([b, mark]);
  const oldest = live.length > 16 ? live.shift() : undefined;
  if (oldest !== undefined) {
    const [old, m] = oldest;
    if (!old.bytes.every((x) => x === m)) errors++;
    old.free();
  }
}
for (const [b, m] of live) {
  if (!b.bytes.every((x) => x === m)) errors++;
  b.free();
}
parentPort.on('message', (msg) => {
  if (msg.adopt) {
    const buf = adopt(msg.adopt);
    const reply = {
      adopted: Buffer.from(buf.bytes).toString('hex'),
      servedBy: buf.servedBy,
      handler: buf.handler.name,
    };
    buf.free(); // before replying: the test reads the statistics as soon as the reply arrives
    parentPort.postMessage(reply);
  }
  if (msg.allocAndSend) {
    const buf = h.alloc(8);
    buf.bytes.set([1, 2, 3, 4, 5, 6, 7, 8]);
    parentPort.postMessage({ token: buf.transfer() });
  }
  if (msg.exit) process.exit(0);
});
parentPort.postMessage({ done: true, errors, stats: h.stats() });
