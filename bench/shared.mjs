// Suite: the shared leaf (issue 24). Two questions, each against a baseline measured in the same
// run:
// 1. What an allocation from a region shared by the host's processes costs against a hit in a
//    process-local pool (64 KiB, allocated and freed).
// 2. What handing 4 MiB from one process to another costs: a block of the region given and
//    adopted (zero copy; its token sent by process.send) against the same bytes through a pipe
//    and through Node's IPC serialization (process.send with 'advanced' serialization, what
//    postMessage does between threads). Each hand-off is timed from the receiver's go-ahead (an
//    IPC message) until it holds the bytes; they are ready in the sender beforehand in every
//    case. An empty message and its reply is the floor under all three.
import { fork } from 'node:child_process';
import { once } from 'node:events';

import { adopt, locked, pageable, pool, shared, sharedRegion } from 'pinpool';
import { measure, quick, report } from './lib.mjs';

const HANDOFF = 4 << 20;
const KiB64 = 64 << 10;

async function hits() {
  const region = `bench-${process.pid}`;
  const h = shared({ region, bytes: 64 << 20 });
  const local = pool(locked(), { name: 'local' });
  const overShared = pool(shared({ region: `${region}-pooled`, bytes: 64 << 20 }));
  const leaf = pageable();
  for (const x of [local, overShared]) x.alloc(KiB64).free();
  const batch = 1000;
  const rows = await measure(
    {
      'local pool hit: pool(locked()), 64 KiB': () => {
        for (let i = 0; i < batch; i++) local.alloc(KiB64).free();
      },
      'shared region: shared(), 64 KiB': () => {
        for (let i = 0; i < batch; i++) h.alloc(KiB64).free();
      },
      'local pool over a region: pool(shared()), 64 KiB': () => {
        for (let i = 0; i < batch; i++) overShared.alloc(KiB64).free();
      },
      // Any leaf called without a pool in front: two native calls and a new ArrayBuffer.
      'a leaf without a pool: pageable(), 64 KiB': () => {
        for (let i = 0; i < batch; i++) leaf.alloc(KiB64).free();
      },
    },
    { batch },
  );
  const [localRow, sharedRow, , leafRow] = rows;
  return report('shared region: an allocation against a local pool hit', rows, [
    {
      label: 'shared() / local pool hit, time per op',
      value: localRow.opsPerSec / sharedRow.opsPerSec,
      max: 2,
    },
    {
      label: 'shared() / pageable() leaf, time per op',
      value: leafRow.opsPerSec / sharedRow.opsPerSec,
      max: Infinity,
    },
  ]);
}

// The receiving side of a hand-off: this process. The sending side: a child (this file, with
// `send` as its argument).
async function handoffs() {
  const region = `bench-${process.pid}-handoff`;
  const h = shared({ region, bytes: 64 << 20 });
  const { secret } = sharedRegion(h);
  // Two senders: one whose channel carries JSON (the tokens, the pipe's go-ahead, an empty
  // round trip), one whose channel serializes (a Uint8Array crosses by copy, as with
  // postMessage).
  const start = async (serialization) => {
    const child = fork(new URL(import.meta.url), ['send'], {
      serialization,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', 'pipe'],
      env: { ...process.env, BENCH_REGION: region, BENCH_SECRET: secret },
    });
    await once(child, 'message'); // ready
    return child;
  };
  const json = await start('json');
  const advanced = await start('advanced');
  const n = quick ? 20 : 200;
  const rows = [];
  const names = {
    ping: 'an empty message and its reply (the floor of each case)',
    shared: '4 MiB: shared block given and adopted',
    pipe: '4 MiB: through a pipe',
    ipc: "4 MiB: process.send, 'advanced' serialization",
  };
  for (const mode of ['ping', 'shared', 'pipe', 'ipc']) {
    const child = mode === 'ipc' ? advanced : json;
    const pipe = child.stdio[4];
    if (!pipe) throw new Error('bench: no pipe to the sender');
    const times = [];
    let received = 0;
    const sink = Buffer.alloc(HANDOFF);
    /** @type {(value?: unknown) => void} */
    let resolveOne = () => {};
    const onData = (/** @type {Buffer} */ chunk) => {
      chunk.copy(sink, received);
      received += chunk.length;
      if (received === HANDOFF) resolveOne();
    };
    const onMessage = (m) => {
      if (m.token) {
        const b = adopt(m.token);
        if (b.bytes[HANDOFF - 1] !== 7) throw new Error('bench: the shared block lost its bytes');
        b.free();
      } else if (m.data && m.data[HANDOFF - 1] !== 7) {
        throw new Error('bench: the IPC copy lost its bytes');
      }
      if (m.token || m.data || m.pong) resolveOne();
    };
    pipe.on('data', onData);
    child.on('message', onMessage);
    for (let i = 0; i < n + 3; i++) {
      received = 0;
      const done = new Promise((resolve) => (resolveOne = resolve));
      const started = process.hrtime.bigint();
      child.send({ go: mode });
      await done;
      if (i >= 3) times.push(Number(process.hrtime.bigint() - started));
    }
    pipe.off('data', onData);
    child.off('message', onMessage);
    times.sort((a, b) => a - b);
    const total = times.reduce((a, b) => a + b, 0);
    rows.push({
      case: names[mode],
      opsPerSec: (times.length * 1e9) / total,
      medianNs: times[Math.floor(times.length / 2)],
      p99Ns: times[Math.floor(times.length * 0.99)],
      samples: times.length,
    });
  }
  json.kill();
  advanced.kill();
  const [ping, zero, piped, ipc] = rows;
  return report('shared region: a 4 MiB hand-off between processes', rows, [
    { label: 'pipe / shared, median time', value: piped.medianNs / zero.medianNs, min: 20 },
    {
      label: 'IPC serialization / shared, median time',
      value: ipc.medianNs / zero.medianNs,
      min: 20,
    },
    {
      label: 'shared / an empty round trip, median time',
      value: zero.medianNs / ping.medianNs,
      max: Infinity,
    },
  ]);
}

async function sender() {
  const h = shared({
    region: process.env.BENCH_REGION ?? '',
    secret: process.env.BENCH_SECRET ?? '',
  });
  /** @param {object} m */
  const send = (m) => process.send?.(m);
  const data = Buffer.alloc(HANDOFF, 7);
  // fd 4: the pipe to the parent.
  const { createWriteStream } = await import('node:fs');
  const out = createWriteStream('', { fd: 4 }); // the path is ignored when fd is given
  process.on('message', (/** @type {{ go: string }} */ m) => {
    if (m.go === 'shared') {
      // Filled where the producer would write it: in the block itself (not timed apart: a
      // producer writing into a pipe's buffer pays the same).
      const b = h.alloc(HANDOFF);
      b.bytes[HANDOFF - 1] = 7;
      send({ token: b.transfer() });
    } else if (m.go === 'pipe') {
      out.write(data);
    } else if (m.go === 'ipc') {
      send({ data });
    } else if (m.go === 'ping') {
      send({ pong: true });
    }
  });
  send({ ready: true });
}

export async function run() {
  return [await hits(), await handoffs()];
}

if (process.argv[2] === 'send') await sender();
else if (import.meta.url === `file://${process.argv[1]}`) await run();
