// A worker that adopts the buffer tokens it is sent and frees them (or keeps them until told),
// replying once it has. Loaded by test/scopes.test.ts.
const { parentPort } = require('node:worker_threads');
const { adopt } = require('../../dist/src/index.js');

const kept = [];
parentPort.on('message', (msg) => {
  if (msg.tokens) {
    for (const token of msg.tokens) {
      const buf = adopt(token);
      if (msg.keep) kept.push(buf);
      else buf.free();
    }
    parentPort.postMessage({ done: msg.tokens.length });
  }
  if (msg.freeKept) {
    for (const buf of kept.splice(0)) buf.free();
    parentPort.postMessage({ done: 'kept' });
  }
});
