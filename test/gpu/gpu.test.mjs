// The GPU suite: runs on a machine with an NVIDIA GPU with plain `node --test test/gpu/`,
// needing only the built output (dist/ and build/Release/pinpool.node), no node_modules.
// Without a GPU every test is skipped with the reason, and the run exits 0.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import {
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { release, tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

const load = createRequire(import.meta.url);
/** @type {typeof import('pinpool')} */
const pinpool = load('pinpool');
// The addon itself, for its test hooks (a test build: `npm run build`; absent from a prebuilt).
const nativePath = join(dirname(load.resolve('pinpool')), 'boundary', 'native.js');
const { binding } = load(nativePath);
const { copy, createStream, deviceAlloc, info, managed, mapFile, pinned, pool, register } = pinpool;

const cuda = info().cuda;
const skip = cuda.available ? false : `no CUDA GPU here: ${cuda.reason}`;
if (skip) console.log(`# GPU suite skipped: ${skip}`);
else
  console.log(
    `# GPU suite on ${cuda.devices.map((d) => `${d.name} (${(d.totalBytes / 2 ** 30).toFixed(0)} GiB)`).join(', ')}, driver ${cuda.driverVersion}`,
  );

const KiB = 1024;
const MiB = 1024 * KiB;

function fill(bytes, seed) {
  const tile = new Uint8Array(Math.min(bytes.length, 65521));
  for (let i = 0; i < tile.length; i++) tile[i] = (seed * 31 + i * 7) & 0xff;
  for (let at = 0; at < bytes.length; at += tile.length)
    bytes.set(tile.subarray(0, Math.min(tile.length, bytes.length - at)), at);
}

function same(a, b) {
  return (
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  );
}

describe('GPU', { skip }, () => {
  it('allocates each kind of host memory and device memory', () => {
    for (const h of [
      pinned(),
      pinned({ strategy: 'register' }),
      pinned({ mapped: true }),
      managed(),
      pool(pinned()),
    ]) {
      const b = h.alloc(1 * MiB);
      b.bytes.fill(0x5a);
      assert.equal(b.bytes[MiB - 1], 0x5a);
      b.free();
      assert.equal(h.stats().bytesInUse, 0);
    }
    const d = deviceAlloc(64 * MiB);
    d.free();
  });

  for (const size of [4 * KiB, 1 * MiB, 256 * MiB]) {
    it(`H2D then D2H round trip of ${size / KiB} KiB returns the same bytes`, async () => {
      const h = pool(pinned());
      const src = h.alloc(size);
      fill(src.bytes, size);
      const dev = deviceAlloc(size);
      await copy(dev, src);
      const dst = h.alloc(size, { zero: true });
      await copy(dst, dev);
      assert.ok(same(src.bytes, dst.bytes));
      for (const x of [src, dst, dev]) x.free();
      h.trim();
    });
  }

  it('pageable memory round trip, and device to device', async () => {
    const src = Buffer.alloc(8 * MiB);
    fill(src, 3);
    const a = deviceAlloc(8 * MiB);
    const b = deviceAlloc(8 * MiB);
    const stream = createStream();
    await copy(a, src, { stream });
    await copy(b, a, { stream });
    const back = Buffer.alloc(8 * MiB);
    await copy(back, b, { stream });
    assert.ok(back.equals(src));
    a.free();
    b.free();
  });

  it('a pinned block freed during its copy is not reused until the copy has completed (real events)', async () => {
    const h = pool(pinned());
    const size = 256 * MiB; // long enough to still be in flight when free() returns
    const src = h.alloc(size);
    fill(src.bytes, 9);
    const dev = deviceAlloc(size);
    const address = src.address;
    const pending = copy(dev, src);
    src.free();
    const meanwhile = h.alloc(size);
    assert.notEqual(meanwhile.address, address);
    meanwhile.free();
    await pending;
    const after = h.alloc(size);
    assert.equal(after.address, address);
    const check = h.alloc(size, { zero: true });
    fill(after.bytes, 1); // scribbling on the reused block must not reach the device copy
    await copy(check, dev);
    const expected = new Uint8Array(size);
    fill(expected, 9);
    assert.ok(same(check.bytes, expected));
    for (const x of [after, check, dev]) x.free();
    h.trim();
  });

  it('managed memory: prefetch to the device and back, advice', async () => {
    const m = managed().alloc(64 * MiB);
    fill(m.bytes, 5);
    m.advise('preferredLocation', 0);
    m.advise('accessedBy', 0);
    await m.prefetch(0);
    await m.prefetch('host');
    const expected = new Uint8Array(64 * MiB);
    fill(expected, 5);
    assert.ok(same(m.bytes, expected));
    m.free();
  });

  it('registers a Buffer and copies from it', async () => {
    const data = Buffer.alloc(64 * MiB);
    fill(data, 11);
    const reg = register(data);
    const dev = deviceAlloc(data.length);
    await copy(dev, data);
    const back = Buffer.alloc(data.length);
    await copy(back, dev);
    assert.ok(back.equals(data));
    reg.unregister();
    dev.free();
  });

  it('maps a file, registered, and copies it to the device', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pinpool-gpu-'));
    const file = join(dir, 'weights.bin');
    const data = Buffer.alloc(32 * MiB);
    fill(data, 13);
    writeFileSync(file, data);
    const mapped = mapFile(file, { register: true });
    const dev = deviceAlloc(mapped.byteLength);
    await copy(dev, mapped);
    const back = Buffer.alloc(data.length);
    await copy(back, dev);
    assert.ok(back.equals(data));
    mapped.free();
    dev.free();
    rmSync(dir, { recursive: true });
  });

  // The device checks of ../shared/reviews/cuda-driver-2026-12-05.md (issue 26): what only a real
  // driver can say. Each prints one '# device check' line with its figures for the session's
  // notes, and asserts what must hold. 3 and 4 use the addon's test hooks (cuCtxCreate, a kernel
  // that faults), which test/fake-cuda runs on the double the same way.

  it('device check 1: a registered Buffer copies at pinned speed, or says how far off it is', async () => {
    // Issue 26, point 4: copy() hands a registered Buffer to the driver in place (the double
    // counts it as page-locked); this measures it against a pinned block of the same size.
    const size = 1024 * MiB;
    const dev = deviceAlloc(size);
    const h = pinned();
    const block = h.alloc(size);
    fill(block.bytes, 21);
    const plain = Buffer.from(new SharedArrayBuffer(size));
    fill(plain, 21);
    const reg = register(plain);
    const seconds = async (src) => {
      await copy(dev, src); // warm
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < 3; i++) await copy(dev, src);
      return Number(process.hrtime.bigint() - t0) / 3e9;
    };
    const pinnedS = await seconds(block);
    const registeredS = await seconds(plain);
    const gbps = (s) => (size / s / 1e9).toFixed(1);
    console.log(
      `# device check 1: 1 GiB host to device: pinned ${gbps(pinnedS)} GB/s, registered Buffer ${gbps(registeredS)} GB/s (${(pinnedS / registeredS).toFixed(2)}x of pinned)`,
    );
    const back = Buffer.alloc(4096);
    await copy(back, dev, { bytes: 4096 });
    assert.ok(back.equals(plain.subarray(0, 4096)));
    reg.unregister();
    block.free();
    dev.free();
  });

  it('device check 2: mapFile with register: anonymous memory, and a write the device must see', async () => {
    // Issue 26, point 5: registered without CU_MEMHOSTREGISTER_READ_ONLY, the driver pins a
    // private file mapping for writing, which copies every page into anonymous memory. pinpool
    // pins it read-only now: before Linux 6.2 that keeps the page cache's pages (and copy()
    // stages pages written afterwards, which the device would not see); from 6.2 on the kernel
    // unshares every page for the pin anyway. This reports which this machine does, and checks
    // that a byte written after mapping reaches the device either way.
    const rssAnon = () =>
      Number(/RssAnon:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN) *
      1024;
    const dir = mkdtempSync(join(tmpdir(), 'pinpool-gpu-'));
    const file = join(dir, 'weights.bin');
    const size = 1024 * MiB;
    // Written a chunk at a time, so no gigabyte of JavaScript memory comes and goes meanwhile.
    const chunk = Buffer.alloc(16 * MiB, 7);
    const fd = openSync(file, 'w');
    for (let at = 0; at < size; at += chunk.length) writeSync(fd, chunk);
    closeSync(fd);
    const before = rssAnon();
    const mapped = mapFile(file, { register: true });
    const grew = rssAnon() - before;
    console.log(
      `# device check 2: mapFile of 1 GiB with register, kernel ${release()}: RssAnon grew ${(grew / MiB).toFixed(0)} MiB (about 0 where a read-only pin keeps the page cache's pages, 1024 where the kernel unshares them: Linux 6.2 on)`,
    );
    const dev = deviceAlloc(4096);
    await copy(dev, mapped.bytes.subarray(0, 4096));
    mapped.bytes[100] = 9; // this process's own copy of the first page from now on
    await copy(dev, mapped.bytes.subarray(0, 4096));
    const back = Buffer.alloc(4096);
    await copy(back, dev);
    assert.equal(back[100], 9, 'the device read the pinned file page, not the page written since');
    assert.equal(back[101], 7);
    dev.free();
    mapped.free();
    rmSync(dir, { recursive: true });
  });

  it("device check 3: another library's context current on the JavaScript thread", async (t) => {
    // Issue 26, point 2: every driver call pushes the primary context and pops it. The test hooks
    // (a test build: npm run build) create a context as another library would (cuCtxCreate) and
    // ask the driver which context is current, and which made each allocation.
    const hooks = binding.testing;
    if (!hooks)
      return t.skip('the addon was built without its test hooks (npm run build has them)');
    hooks.cudaContext('begin', 0);
    let seen;
    try {
      const buf = pool(pinned()).alloc(MiB);
      fill(buf.bytes, 5);
      const dev = deviceAlloc(MiB);
      await copy(dev, buf);
      await copy(buf, dev, { stream: createStream() });
      seen = {
        current: hooks.cudaContext('current', 0),
        host: hooks.cudaContext('of', 0, Number(buf.address)),
        device: hooks.cudaContext('of', 0, Number(dev.address)),
      };
      buf.free();
      dev.free();
    } finally {
      hooks.cudaContext('end', 0);
    }
    console.log(`# device check 3: with a foreign context current: ${JSON.stringify(seen)}`);
    assert.deepEqual(seen, { current: 'foreign', host: 'primary', device: 'primary' });
    assert.equal(hooks.cudaContext('current', 0), 'none');
  });

  it('device check 4: a kernel fault during a copy rejects the copy, and Node exits', (t) => {
    // Issue 26, point 1: after a context error the driver never runs host functions. In a
    // child process (the fault ends CUDA for the whole process): a 256 MiB copy, and a kernel
    // storing through null on the legacy default stream meanwhile.
    if (!binding.testing)
      return t.skip('the addon was built without its test hooks (npm run build has them)');
    const child = spawnSync(
      process.execPath,
      [
        '-e',
        `const pinpool = require(${JSON.stringify(load.resolve('pinpool'))});
         const { binding } = require(${JSON.stringify(nativePath)});
         const size = 256 * 1024 * 1024;
         const dev = pinpool.deviceAlloc(size);
         const buf = pinpool.pinned().alloc(size);
         const pending = pinpool.copy(dev, buf);
         binding.testing.faultKernel(0);
         pending.then(
           () => console.log(JSON.stringify({ settled: 'resolved' })),
           (e) => console.log(JSON.stringify({ settled: 'rejected', name: e.cudaErrorName })),
         );`,
      ],
      // A process that never exits is what this checks for: two minutes is its bound.
      { encoding: 'utf8', timeout: 120_000 },
    );
    console.log(
      `# device check 4: status ${child.status}, signal ${child.signal}, said ${child.stdout.trim()} ${child.stderr.trim().slice(0, 300)}`,
    );
    assert.equal(
      child.signal,
      null,
      'Node did not exit: a Promise or the thread-safe function hung',
    );
    const said = JSON.parse(child.stdout.trim().split('\n').pop() ?? '{}');
    // The copy may have landed before the fault; if not, it rejects with the driver's error.
    assert.ok(
      said.settled === 'resolved' || (said.settled === 'rejected' && said.name !== undefined),
      `the copy settled: ${JSON.stringify(said)}`,
    );
  });

  it('device check 5: a thread that never allocated frees pinned memory, with no context of its own', async () => {
    // Issue 26, point 12: frees run in the block's context now; this shows the real driver takes them.
    const h = pinned();
    const buf = h.alloc(4 * MiB);
    const worker = new Worker(
      `const { parentPort } = require('node:worker_threads');
       const { adopt } = require(${JSON.stringify(load.resolve('pinpool'))});
       parentPort.once('message', (token) => { adopt(token).free(); parentPort.postMessage('freed'); });`,
      { eval: true },
    );
    worker.postMessage(buf.transfer());
    const [reply] = await once(worker, 'message');
    await worker.terminate();
    const { frees, invalidFrees, bytesInUse } = h.stats();
    console.log(
      `# device check 5: a worker's free of a pinned block: frees ${frees}, refused ${invalidFrees}`,
    );
    assert.equal(reply, 'freed');
    assert.deepEqual(
      { frees, invalidFrees, bytesInUse },
      { frees: 1, invalidFrees: 0, bytesInUse: 0 },
    );
  });
});
