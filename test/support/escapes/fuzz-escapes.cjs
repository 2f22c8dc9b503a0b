// The escape fuzzer's cases (test/host/fuzz-escapes.test.ts), run in a process of their own: a use
// after free here is a SIGSEGV or corrupted memory, which must fail the test, not end the runner.
//
//   node fuzz-escapes.cjs <seed> <cases>
//
// Each case draws a pool (leaf, threadCacheBytes, slabViews), 1 to 3 workers that attach it, and
// for each worker a run of operations: allocate (sizes chosen to hit the thread cache), free,
// hand a buffer over with transfer(), and post an ArrayBuffer in each state it can be in (a live
// block's, a block freed into the thread cache, a block freed natively, one moved with
// transfer() and then freed: quarantined, a slab's view). A worker ends at a random point, by
// process.exit() or by being terminated from the main thread, or at the end of its run. The main
// thread meanwhile allocates and frees, trims the pool (a trim other threads' caches must
// honour), adopts what was transferred, and writes through every non-slab ArrayBuffer it received.
// Every block's pattern is checked at its free, in every thread: a write through an escaped
// buffer into a block handed out again breaks one. At the end every buffer is freed, the pool
// trimmed, and its statistics checked: nothing in use, and nothing reserved unless orphaned.
'use strict';
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');
const pinpool = require('pinpool');

/** The worker half's port to the main thread. */
function port() {
  if (parentPort === null)
    throw new Error('fuzz-escapes.cjs: only the worker half posts to the main thread');
  return parentPort;
}

function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}
const SIZES = [64, 4096, 4096, 65536, 1 << 20];

function fill(bytes, mark) {
  bytes.fill(mark & 0xff);
  if (bytes.length > 0) bytes[bytes.length - 1] = (mark * 7) & 0xff;
}
function holds(bytes, mark) {
  if (bytes.length === 0) return true;
  const last = (mark * 7) & 0xff;
  for (let i = 0; i < bytes.length - 1; i++) if (bytes[i] !== (mark & 0xff)) return false;
  return bytes[bytes.length - 1] === last;
}

if (isMainThread) {
  const seed = Number(process.argv[2]);
  const cases = Number(process.argv[3]);
  const report = {
    seed,
    cases,
    errors: /** @type {string[]} */ ([]),
    posted: {},
    ends: {},
    orphanedBlocks: 0,
    trims: 0,
  };
  const count = (o, k) => (o[k] = (o[k] ?? 0) + 1);
  (async () => {
    for (let c = 0; c < cases; c++) {
      const r = rng(seed * 1000 + c);
      const pick = (a) => a[Math.floor(r() * a.length)];
      const leaf = pick(['pageable', 'locked']);
      const options = { threadCacheBytes: pick([0, 256 * 1024, undefined]), slabViews: r() < 0.3 };
      const h = pinpool.pool(leaf === 'locked' ? pinpool.locked() : pinpool.pageable(), options);
      const where = `seed ${seed} case ${c} (${leaf}, ${JSON.stringify(options)})`;
      const received = [];
      const mine = [];
      let mark = 1;
      const step = () => {
        const x = r();
        if (x < 0.35) {
          const b = h.alloc(pick(SIZES));
          fill(b.bytes, ++mark);
          mine.push([b, mark]);
        } else if (x < 0.6 && mine.length > 0) {
          const [b, m] = mine.splice(Math.floor(r() * mine.length), 1)[0];
          if (!holds(b.bytes, m))
            report.errors.push(`${where}: a main-thread block lost its pattern`);
          b.free();
        } else if (x < 0.7) {
          h.trim();
          report.trims++;
        } else {
          for (const { buffer, slab } of received) {
            if (buffer.byteLength === 0) continue;
            const view = new Uint8Array(buffer);
            if (slab)
              view[0] === view[0]; // read only: a slab view reaches its neighbours by design
            else view.fill(0xee);
          }
        }
      };
      const workers = 1 + Math.floor(r() * 3);
      const running = [];
      for (let w = 0; w < workers; w++) {
        const end = pick(['natural', 'natural', 'exit', 'terminate']);
        count(report.ends, end);
        const worker = new Worker(__filename, {
          workerData: {
            token: h.share(),
            seed: seed * 1000 + c * 10 + w,
            ops: 50 + Math.floor(r() * 150),
            end,
          },
        });
        const killAt = Math.floor(r() * 20);
        let messages = 0;
        running.push(
          new Promise((resolve) => {
            worker.on('message', (m) => {
              if (m.buffer !== undefined) {
                received.push(m);
                count(report.posted, m.state);
              } else if (m.posted !== undefined) {
                count(report.posted, m.posted);
              } else if (m.token !== undefined) {
                const b = pinpool.adopt(m.token);
                if (!holds(b.bytes, m.mark))
                  report.errors.push(`${where}: an adopted block lost its pattern`);
                b.free();
              } else if (m.errors !== undefined) {
                report.errors.push(...m.errors.map((e) => `${where}: worker: ${e}`));
              }
              if (++messages === killAt && end === 'terminate') worker.terminate();
              step();
            });
            worker.on('error', (e) => {
              report.errors.push(`${where}: worker error ${e}`);
            });
            worker.on('exit', resolve);
          }),
        );
      }
      const ticking = setInterval(step, 1);
      await Promise.all(running);
      clearInterval(ticking);
      for (let i = 0; i < 3; i++) await new Promise((res) => setImmediate(res));
      step(); // writes through what arrived, after every worker ended
      for (const [b, m] of mine) {
        if (!holds(b.bytes, m))
          report.errors.push(`${where}: a main-thread block lost its pattern`);
        b.free();
      }
      h.trim();
      const s = h.stats();
      report.orphanedBlocks += s.orphanedBlocks;
      if (s.bytesInUse !== 0)
        report.errors.push(`${where}: ${s.bytesInUse} bytes still in use at the end`);
      if (s.orphanedBlocks === 0 && s.reservedBytes !== 0)
        report.errors.push(`${where}: ${s.reservedBytes} bytes reserved with nothing orphaned`);
      if (s.orphanedBlocks > 0 && s.reservedBytes === 0)
        report.errors.push(`${where}: orphaned blocks, yet the pool gave all its memory back`);
      for (const { buffer, slab } of received)
        if (!slab && buffer.byteLength > 0) new Uint8Array(buffer).fill(0x11);
    }
    console.log(JSON.stringify(report));
  })().catch((e) => {
    console.log(JSON.stringify({ seed, crash: String(e && e.stack) }));
    process.exit(3);
  });
} else {
  const { token, seed, ops, end } = workerData;
  const r = rng(seed);
  const pick = (a) => a[Math.floor(r() * a.length)];
  const h = pinpool.attach(token);
  /** @type {[import('pinpool').HostBuffer, number][]} */
  const live = [];
  const errors = [];
  let mark = seed & 0xffff;
  const exitAt = end === 'exit' ? Math.floor(r() * ops) : -1;
  const takeLive = () => live.splice(Math.floor(r() * live.length), 1)[0];
  const check = ([b, m]) => {
    // A block whose slab's view this thread posted is out of reach here (its view moved).
    if (!holds(b.bytes, m)) errors.push('a block lost its pattern');
  };
  // Under AddressSanitizer (test:asan), Node 20 copies a posted slab view (it cannot move it),
  // reading the slab's cached neighbours, which the sanitized pool poisons: a report about
  // memory that is mapped and the pool's (slab views reach their neighbours by design), not a
  // use after free. Slab views are not posted there.
  const sanitized =
    /libasan/.test(process.env.LD_PRELOAD ?? '') &&
    typeof ArrayBuffer.prototype.transfer !== 'function';
  const post = (state, buffer, slab) => {
    if (slab && sanitized) return;
    try {
      port().postMessage({ buffer, state, slab }, [buffer]);
    } catch {
      port().postMessage({ posted: `${state} (refused)` });
    }
  };
  for (let i = 0; i < ops; i++) {
    if (i === exitAt) process.exit(0);
    const x = r();
    if (x < 0.4 || live.length === 0) {
      const b = h.alloc(pick(SIZES));
      fill(b.bytes, ++mark);
      live.push([b, mark]);
    } else if (x < 0.65) {
      const e = takeLive();
      check(e);
      e[0].free();
    } else if (x < 0.75 && end === 'natural') {
      // Only where the thread ends on its own: a terminated thread's last messages may never
      // arrive, and a token never adopted keeps its memory (as documented), which the end-of-case
      // check would count as a leak.
      const [b, m] = takeLive();
      port().postMessage({ token: b.transfer(), mark: m });
    } else {
      const [b, m] = takeLive();
      if (b.bytes.byteLength !== b.byteLength) {
        // Its slab's view left with an earlier post: nothing of it to post from here.
        b.free();
        continue;
      }
      const state = pick(['live', 'cached', 'freed', 'quarantined']);
      const slab = b.bytes.byteOffset !== 0 || b.bytes.buffer.byteLength !== b.byteLength;
      if (state === 'live') {
        post(slab ? 'slab' : 'live', b.bytes.buffer, slab);
        // The buffer stays this thread's to free, or to leave to the thread's end.
        if (r() < 0.5) b.free();
      } else if (state === 'cached' || state === 'freed') {
        check([b, m]);
        const old = b.bytes.buffer;
        b.free();
        post(state, old, slab);
      } else {
        const moved = /** @type {ArrayBuffer} */ (b.bytes.buffer).transfer?.();
        if (moved === undefined) {
          b.free();
          continue;
        }
        post(slab ? 'slab (moved)' : 'quarantined', moved, slab);
        if (r() < 0.7) b.free();
      }
    }
  }
  // Slab views posted from here detach every view of their slab in this thread: skip those.
  for (const e of live) if (e[0].bytes.byteLength === e[0].byteLength) check(e);
  if (r() < 0.5) for (const [b] of live) b.free();
  port().postMessage({ errors });
}
