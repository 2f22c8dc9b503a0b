// One thread of the stress test (test/support/stress/stress.ts starts four). mimalloc's test-stress
// model: a table of slots; each operation frees (or hands to another thread) what a random slot
// holds and allocates a new block into it, from a random chain, with a random size. Every block
// carries a pattern derived from its id (patterns.cjs), checked when it is freed.
//
// A quarter of the blocks, chosen at allocation, are freed by another thread: buf.transfer()
// here, the token over a MessagePort, adopt(token) there; the receiver puts the block into one
// of its own slots and checks and frees it later like its own.
'use strict';

const threads = require('node:worker_threads');
if (threads.parentPort === null) throw new Error('stress-worker.cjs runs in a worker thread');
const { parentPort, workerData } = threads;
const { adopt, attach } = require('pinpool');
const { check, fill, FULL_CHECK_BYTES } = require('./patterns.cjs');

const KiB = 1024;
const MiB = 1024 * KiB;
const BATCH = 256; // operations between two turns of the event loop (to receive blocks)
const CROSS_THREAD_SHARE = 0.25;

const { index, workers, seed, ops, slots, ports, steps, hangAfterOps } = workerData;
const chains = workerData.chains.map((c) => ({ ...c, handler: attach(c.token) }));

/** mulberry32: a small seeded generator, uniform in [0, 1). */
function mulberry32(a) {
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = mulberry32(seed);
// Choices made on receipt of another thread's block come from their own generator, so the
// arrival times of blocks do not change this thread's sequence of chains and sizes.
const peerRandom = mulberry32(seed ^ 0x2545f491);

/** Log-uniform integer in [lo, hi]: as many sizes per doubling everywhere in the range. */
function logUniform(lo, hi) {
  const a = Math.log(lo);
  const n = Math.floor(Math.exp(a + random() * (Math.log(hi + 1) - a)));
  return Math.min(hi, Math.max(lo, n));
}

/**
 * Sizes from 1 B to 4 MiB and, for 1% of the blocks, up to 64 MiB; log-uniform within each
 * band, most of them small as in real programs (and in mimalloc's test-stress): 89% up to
 * 64 KiB, 9.8% from 64 KiB to 4 MiB, 1% from 4 to 64 MiB, 0.2% zero. A chain with a maxSize
 * takes sizes log-uniform in [1, maxSize] instead.
 */
function sizeFor(chain) {
  const r = random();
  if (r < 0.002) return 0;
  if (chain.maxSize !== undefined) return logUniform(1, chain.maxSize);
  if (r < 0.012) return logUniform(4 * MiB + 1, 64 * MiB);
  if (r < 0.11) return logUniform(64 * KiB + 1, 4 * MiB);
  return logUniform(1, 64 * KiB);
}

const live = new Array(slots).fill(null);
let nextSerial = 0;
let finished = false;
const doneFrom = new Set();
const result = {
  index,
  ops: 0,
  seconds: 0,
  allocs: chains.map(() => 0),
  bytes: chains.map(() => 0),
  expectedFailures: chains.map(() => ({})),
  transferred: 0,
  adopted: 0,
  freedHere: 0,
  errors: /** @type {string[]} */ ([]),
};

function report(message) {
  if (result.errors.length < 20) result.errors.push(`worker ${index}: ${message}`);
}

function describe(e) {
  return `${e.chain.label} block ${e.id}, ${e.size} bytes, alignment ${e.alignment}`;
}

function checkEntry(e, where) {
  const problem = check(e.buf.bytes, e.id, e.address);
  if (problem !== null) report(`${where}: ${describe(e)}: ${problem}`);
}

/** Frees a block here, or hands it to another thread if it was chosen for that. */
function retire(e) {
  checkEntry(e, e.adopted ? 'at free of an adopted block' : 'at free');
  if (e.cross) {
    const token = e.buf.transfer();
    let peer = Math.floor(peerRandom() * (workers - 1));
    if (peer >= index) peer++;
    ports[peer].postMessage({
      token,
      id: e.id,
      chain: e.chainIndex,
      size: e.size,
      alignment: e.alignment,
      address: e.address,
    });
    result.transferred++;
  } else {
    e.buf.free();
    result.freedHere++;
  }
}

/** Puts a block into a slot, retiring what the slot held. */
function place(e, rng) {
  const slot = Math.floor(rng() * slots);
  if (live[slot] !== null) retire(live[slot]);
  live[slot] = e;
}

function allocateOne() {
  const chainIndex = Math.floor(random() * chains.length);
  const chain = chains[chainIndex];
  const size = sizeFor(chain);
  const r = random();
  // 10% ask for an alignment from 1 B to 64 KiB (above 4 KiB a pool passes the request
  // upstream); 3% of the blocks up to the full-check size ask for zeroed memory.
  const alignment = r < 0.1 ? 2 ** Math.floor(random() * 17) : 64;
  const zero = r > 0.97 && size <= FULL_CHECK_BYTES;
  let buf;
  try {
    buf =
      alignment === 64 && !zero
        ? chain.handler.alloc(size)
        : chain.handler.alloc(size, { alignment, zero });
  } catch (thrown) {
    const err = /** @type {Partial<import('pinpool').PinpoolError> | null | undefined} */ (thrown);
    const reason = err?.reason;
    if (
      err &&
      err.code === 'ERR_PINPOOL_OUT_OF_MEMORY' &&
      reason !== undefined &&
      chain.expected.includes(reason)
    ) {
      const counts = result.expectedFailures[chainIndex];
      counts[reason] = (counts[reason] ?? 0) + 1;
    } else {
      report(
        `${chain.label}: alloc(${size}, alignment ${alignment}) threw ${err && err.code} ${err && err.reason}: ${err && err.message}`,
      );
    }
    return;
  }
  result.allocs[chainIndex]++;
  result.bytes[chainIndex] += size;
  const address = Number(buf.address);
  const e = {
    buf,
    id: nextSerial++ * workers + index,
    chain,
    chainIndex,
    size,
    alignment,
    address,
    cross: random() < CROSS_THREAD_SHARE,
    adopted: false,
  };
  if (buf.byteLength !== size || buf.bytes.length !== size)
    report(`${describe(e)}: byteLength ${buf.byteLength}, bytes.length ${buf.bytes.length}`);
  if (address % alignment !== 0) report(`${describe(e)}: address ${address} is not aligned`);
  if (zero) {
    const b = Buffer.from(buf.bytes.buffer, buf.bytes.byteOffset, size);
    if (size > 0 && (b[0] !== 0 || b.compare(b, 1, size, 0, size - 1) !== 0))
      report(`${describe(e)}: { zero: true } block is not all zeros`);
  }
  fill(buf.bytes, e.id, address);
  place(e, random);
}

function receive(msg) {
  Atomics.add(steps, index, 1);
  if (msg.done !== undefined) {
    doneFrom.add(msg.done);
    maybeReport();
    return;
  }
  const chain = chains[msg.chain];
  const buf = adopt(msg.token);
  result.adopted++;
  const e = {
    buf,
    id: msg.id,
    chain,
    chainIndex: msg.chain,
    size: msg.size,
    alignment: msg.alignment,
    address: msg.address,
    cross: false,
    adopted: true,
  };
  if (Number(buf.address) !== msg.address)
    report(`${describe(e)}: adopted at address ${buf.address}, sent from ${msg.address}`);
  if (buf.byteLength !== msg.size)
    report(`${describe(e)}: adopted with byteLength ${buf.byteLength}`);
  if (buf.handler.name !== chain.handler.name)
    report(`${describe(e)}: adopted with handler ${buf.handler.name}`);
  if (finished) retire(e);
  else place(e, peerRandom);
}

function maybeReport() {
  if (!finished || doneFrom.size !== workers - 1) return;
  for (const p of ports) p?.close();
  parentPort.postMessage(result);
}

for (const p of ports) p?.on('message', receive);

async function main() {
  const start = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) {
    if (i === hangAfterOps) await new Promise(() => {}); // stands for a deadlock: no more steps
    allocateOne();
    Atomics.add(steps, index, 1);
    if (i % BATCH === BATCH - 1) await new Promise((resolve) => setImmediate(resolve));
  }
  for (let s = 0; s < slots; s++) {
    if (live[s] !== null) retire(live[s]);
    live[s] = null;
    Atomics.add(steps, index, 1);
  }
  result.ops = ops;
  result.seconds = Number(process.hrtime.bigint() - start) / 1e9;
  finished = true;
  for (const p of ports) p?.postMessage({ done: index });
  maybeReport();
}

main().catch((err) => {
  report(`crashed: ${err && err.stack}`);
  finished = true;
  for (const p of ports) p?.postMessage({ done: index });
  maybeReport();
});
