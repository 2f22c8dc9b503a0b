// One escape scenario of test/host/escapes.test.ts, in a process of its own (a use after free here is
// a SIGSEGV or heap corruption, which must fail the test, not end the test runner).
//
//   node escape.cjs <leaf> <how> [options as JSON]
//
// A worker attaches the main thread's handler, allocates, fills a pattern and lets the block's
// ArrayBuffer leave for the main thread (how), then ends without freeing it (unless how says
// so), or keeps it (how: keep). The main thread then allocates the handler's blocks over and over, filling them, and
// checks that the buffer it received still holds the worker's pattern, that writing through it
// changes none of its own blocks, and prints what the statistics say.
'use strict';
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');
const pinpool = require('pinpool');

/** The worker half's port to the main thread. */
function port() {
  if (parentPort === null)
    throw new Error('escape.cjs: only the worker half posts to the main thread');
  return parentPort;
}

const SIZE = 64 * 1024;

function pattern(bytes, seed) {
  for (let i = 0; i < bytes.length; i++) bytes[i] = (seed + i * 7) & 0xff;
}
function holds(bytes, seed) {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== ((seed + i * 7) & 0xff)) return false;
  return true;
}

if (isMainThread) {
  const [leaf, how, json] = process.argv.slice(2);
  const options = json ? JSON.parse(json) : {};
  const base = {
    pageable: () => pinpool.pageable(),
    locked: () => pinpool.locked(),
    pinned: () => pinpool.pinned(),
  }[leaf]();
  const h =
    options.pool === false
      ? base
      : pinpool.pool(base, {
          threadCacheBytes: options.threadCacheBytes,
          slabViews: options.slabViews,
        });
  const size = options.size ?? SIZE;
  const w = new Worker(__filename, {
    workerData: { token: h.share(), how, size, terminate: options.terminate },
  });
  let received;
  w.on('message', (m) => {
    if (m.buffer !== undefined) received = m.buffer;
    if (m.ready && options.terminate) w.terminate();
  });
  w.on('error', (e) => {
    console.log(JSON.stringify({ error: String(e) }));
    process.exit(4);
  });
  w.on('exit', async () => {
    // Let anything the worker's end queued run first.
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    if (options.trim) h.trim();
    const got = received === undefined ? undefined : new Uint8Array(received);
    const intactBefore = got === undefined ? null : holds(got, 11);
    const mine = [];
    for (let i = 0; i < 64; i++) {
      const b = h.alloc(size);
      pattern(b.bytes, 100 + i);
      mine.push(b);
    }
    if (got !== undefined) got.fill(0xee); // through the received buffer only
    const mineIntact = mine.every((b, i) => holds(b.bytes, 100 + i));
    for (const b of mine) b.free();
    h.trim();
    const s = h.stats();
    console.log(
      JSON.stringify({
        received: got === undefined ? null : got.byteLength,
        intactBefore,
        mineIntact,
        orphanedBytes: s.orphanedBytes,
        orphanedBlocks: s.orphanedBlocks,
        bytesInUse: s.bytesInUse,
        reservedBytes: s.reservedBytes,
      }),
    );
  });
} else {
  const { token, how, size, terminate } = workerData;
  const h = pinpool.attach(token);
  if (how.startsWith('cached')) h.alloc(size).free(); // the next allocation of the size is a cache hit
  const buf = h.alloc(size);
  pattern(buf.bytes, 11);
  let out = /** @type {ArrayBuffer} */ (buf.bytes.buffer);
  if (how.includes('transfer')) out = out.transfer();
  if (how.includes('keep')) {
    // Never leaves this thread. Through Object.assign: a plain assignment would be checked
    // against the global `kept` another script's assignment declares for TypeScript.
    Object.assign(globalThis, { kept: [buf, out] });
  } else {
    try {
      port().postMessage({ buffer: out }, [out]);
    } catch (e) {
      // Refused by postMessage: nothing left the thread.
      port().postMessage({ refused: /** @type {Error} */ (e).name });
    }
  }
  if (how.includes('free')) buf.free();
  if (terminate) {
    port().postMessage({ ready: true });
    setInterval(() => {}, 1000);
  }
}
