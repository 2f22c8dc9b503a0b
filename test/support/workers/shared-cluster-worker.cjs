// A node:cluster worker of test/host/shared-processes.test.ts. It opens the shared region named
// in its environment (PINPOOL_TEST_REGION, PINPOOL_TEST_SECRET) and works on it: allocates blocks
// and fills each with a pattern, checks and frees them, and hands some to another worker through
// the primary ({ give: token, seed } messages; a token it is sent arrives as { take, seed }).
// Every block is checked whole before it is freed or given, and when it is adopted.
//
// Roles (PINPOOL_TEST_ROLE):
// - 'ring': PINPOOL_TEST_OPS operations of its own, then { done }; on { finish } it frees what
//   it holds and reports its counts and its handler's statistics ({ report }), then exits.
// - 'survivor': works until { stop } (replies { stopped }), timing every operation; on
//   { finish } it frees what it holds and reports, as a ring worker does, with the slowest.
// - 'victim': works until the primary kills it.
// - 'metrics': see scrape().
// Each waits for { start } after it says { ready }.
const { adopt, shared } = require('pinpool');

if (process.send === undefined)
  throw new Error('shared-cluster-worker.cjs runs as a cluster worker');
/**
 * To the primary; `then` once it is sent.
 * @param {object} message
 * @param {() => void} [then]
 */
function send(message, then) {
  process.send?.(message, undefined, undefined, then);
}
/**
 * What the primary sends.
 * @typedef {{ start?: true, stop?: true, finish?: true, take?: import('pinpool').SharedBufferToken, seed?: number }} Message
 */
/** @param {unknown} e */
const codeOf = (e) => /** @type {{ code?: unknown }} */ (e).code;

const role = process.env.PINPOOL_TEST_ROLE;
const ops = Number(process.env.PINPOOL_TEST_OPS ?? 0);
const h = shared({
  region: process.env.PINPOOL_TEST_REGION ?? '',
  secret: process.env.PINPOOL_TEST_SECRET ?? '',
});

// xorshift32: each worker its own sequence, so a failure replays.
let state = (Number(process.env.PINPOOL_TEST_SEED ?? 1) * 2654435761) >>> 0 || 1;
function random(n) {
  state ^= state << 13;
  state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5;
  state >>>= 0;
  return state % n;
}

const held = []; // { buf, seed }
const counts = { allocs: 0, frees: 0, given: 0, adopted: 0, refused: 0, outOfMemory: 0, bad: 0 };
let slowest = 0;

// A byte per page, and the last byte: another process writing into the block shows.
function fill(buf, seed) {
  const b = buf.bytes;
  for (let i = 0; i < b.length - 1; i += 4096) b[i] = (seed + i / 4096) & 0xff;
  b[b.length - 1] = ~seed & 0xff;
}
function intact(buf, seed) {
  const b = buf.bytes;
  for (let i = 0; i < b.length - 1; i += 4096)
    if (b[i] !== ((seed + i / 4096) & 0xff)) return false;
  return b[b.length - 1] === (~seed & 0xff);
}
function check(entry) {
  if (!intact(entry.buf, entry.seed)) counts.bad++;
}

function timed(f) {
  if (role !== 'survivor') return f();
  const start = process.hrtime.bigint();
  const r = f();
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (ms > slowest) slowest = ms;
  return r;
}

function step() {
  const n = random(10);
  if (held.length === 0 || (n < 5 && held.length < 24)) {
    const bytes = 1 + random(256 << 10);
    try {
      const buf = timed(() => h.alloc(bytes));
      const seed = random(256);
      fill(buf, seed);
      held.push({ buf, seed });
      counts.allocs++;
    } catch (e) {
      if (codeOf(e) !== 'ERR_PINPOOL_OUT_OF_MEMORY') throw e;
      counts.outOfMemory++;
      const entry = held.shift();
      if (entry) {
        check(entry);
        timed(() => entry.buf.free());
        counts.frees++;
      }
    }
    return;
  }
  const entry = held.splice(random(held.length), 1)[0];
  check(entry);
  if (n < 8) {
    timed(() => entry.buf.free());
    counts.frees++;
    return;
  }
  const token = timed(() => entry.buf.transfer());
  counts.given++;
  send({ give: token, seed: entry.seed });
}

/** @param {Message} msg */
function take(msg) {
  let buf;
  try {
    buf = timed(() => adopt(/** @type {import('pinpool').SharedBufferToken} */ (msg.take)));
  } catch (e) {
    // Its giver died before this worker came to it: the region took the block back.
    if (codeOf(e) !== 'ERR_PINPOOL_RELEASED') throw e;
    counts.refused++;
    return;
  }
  counts.adopted++;
  const entry = { buf, seed: msg.seed ?? 0 };
  check(entry);
  held.push(entry);
}

// 'metrics': holds two blocks (128 KiB of the region) and sends its metrics as JSON, as a
// node:cluster worker does for prom-client's AggregatorRegistry; then waits for { finish }.
async function scrape() {
  const { collectMetrics, createController } = require('pinpool');
  const c = createController();
  c.register('host', h);
  held.push({ buf: h.alloc(1000), seed: 1 }, { buf: h.alloc(70_000), seed: 2 });
  for (const entry of held) fill(entry.buf, entry.seed);
  counts.allocs += 2;
  send({ metrics: await collectMetrics({ controller: c }).getMetricsAsJSON() });
}

let done = false;
let own = 0;
function work() {
  // A batch, then back to the event loop so tokens sent here are taken meanwhile.
  for (let i = 0; i < 50 && !done; i++) {
    step();
    if (++own === ops && role === 'ring') {
      done = true;
      send({ done: true });
    }
  }
  if (!done) setImmediate(work);
}

process.on('message', (/** @type {Message} */ msg) => {
  if (msg.start && role === 'metrics') return void scrape();
  if (msg.start) return setImmediate(work);
  if (msg.take) return take(msg);
  if (msg.stop) {
    // Its last give is on its way before this reply: the primary sends finish after relaying it.
    done = true;
    return send({ stopped: true });
  }
  if (msg.finish) {
    done = true;
    for (const entry of held) {
      check(entry);
      entry.buf.free();
      counts.frees++;
    }
    held.length = 0;
    h.trim(); // the blocks this thread's cache keeps go back to the region
    const s = h.stats();
    send(
      {
        report: {
          counts: { ...counts, ops: own },
          slowest,
          stats: {
            bytesInUse: s.bytesInUse,
            buffersInUse: s.buffersInUse,
            allocations: s.allocations,
            frees: s.frees,
            invalidFrees: s.invalidFrees,
          },
        },
      },
      () => process.exit(0),
    );
  }
});
send({ ready: true });
