// A worker that adopts the buffer tokens it is sent and frees them (or keeps them until told, or
// forwards them: transfer() again and reply with the new tokens), replying once it has. With
// `tolerate`, a token adopt() refuses is reported by its error code instead of thrown.
// `{ exit: true }` ends the thread normally, holding whatever it kept. Loaded by
// test/host/scopes.test.ts.
const threads = require('node:worker_threads');
if (threads.parentPort === null) throw new Error('adopt-free-worker.cjs runs in a worker thread');
const { parentPort } = threads;
const { adopt } = require('pinpool');

const kept = [];
parentPort.on('message', (msg) => {
  if (msg.tokens) {
    const codes = [];
    const forwarded = [];
    for (const token of msg.tokens) {
      let buf;
      try {
        buf = adopt(token);
      } catch (e) {
        if (!msg.tolerate) throw e;
        codes.push(/** @type {import('pinpool').PinpoolError} */ (e).code);
        continue;
      }
      codes.push('adopted');
      if (msg.forward) forwarded.push(buf.transfer());
      else if (msg.keep) kept.push(buf);
      else buf.free();
    }
    parentPort.postMessage({ done: msg.tokens.length, codes, tokens: forwarded });
  }
  if (msg.freeKept) {
    for (const buf of kept.splice(0)) buf.free();
    parentPort.postMessage({ done: 'kept' });
  }
  if (msg.exit) process.exit(0);
});
