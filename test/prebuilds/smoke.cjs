// The host test subset for a prebuilt binary on another architecture (arm64 under qemu-user:
// scripts/test-prebuilds.sh). node:test and node:assert only, run in one process: vitest's own
// native parts are x64 builds, and qemu-user cannot start the child processes it forks.
//   node test/prebuilds/smoke.cjs    (PINPOOL_NATIVE_PATH may name the binary to test)
'use strict';
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { Worker } = require('node:worker_threads');
const { once } = require('node:events');
const p = require('pinpool');

const fill = (bytes, seed) => bytes.forEach((_, i) => (bytes[i] = (seed + i) & 0xff));
const intact = (bytes, seed) => bytes.every((x, i) => x === ((seed + i) & 0xff));

test('every leaf and adaptor allocates, keeps its pattern, and counts back to zero', () => {
  const chains = [p.pageable(), p.locked(), p.pool(p.pageable()), p.pool(p.pageable(), { slabViews: true }),
    p.fallback(p.pinned(), p.pool(p.pageable())), p.limit(p.pool(p.pageable()), { maxBytes: 1 << 24 }), p.defaultHandler()];
  for (const h of chains) {
    const bufs = [1, 100, 4096, 70_000, 1 << 20].map((n, i) => {
      const b = h.alloc(n, { alignment: i % 2 ? 4096 : 64 });
      fill(b.bytes, i);
      return b;
    });
    bufs.forEach((b, i) => assert.ok(intact(b.bytes, i), h.name));
    bufs.forEach((b) => b.free());
    const s = h.stats();
    assert.equal(s.bytesInUse, 0, h.name);
    assert.equal(s.buffersInUse, 0, h.name);
  }
});

test('a freed buffer reaches nothing; a pool hit comes from the thread cache', () => {
  const h = p.pool(p.pageable());
  const a = h.alloc(4096);
  const stale = a.bytes;
  const address = a.address;
  a.free();
  assert.equal(stale.length, 0);
  const b = h.alloc(4096);
  assert.equal(b.address, address);
  assert.throws(() => a.free(), { code: 'ERR_PINPOOL_DOUBLE_FREE' });
  b.free();
  assert.deepEqual([h.stats().frees, h.stats().allocations], [2, 2]);
  assert.ok(h.trim() > 0);
});

test('bad input is a PinpoolError with a stable code', () => {
  const h = p.pool(p.pageable());
  assert.throws(() => h.alloc(-1), { code: 'ERR_PINPOOL_INVALID_ARGUMENT' });
  assert.throws(() => h.alloc(64, { alignment: 3 }), { code: 'ERR_PINPOOL_INVALID_ARGUMENT' });
  assert.throws(() => p.limit(p.pageable(), { maxBytes: 10 }).alloc(100), { code: 'ERR_PINPOOL_OUT_OF_MEMORY' });
  assert.throws(() => p.pinned().alloc(10), { code: 'ERR_PINPOOL_UNAVAILABLE' });
});

test('a worker attaches a shared pool and adopts a buffer, zero copy', async () => {
  const h = p.pool(p.pageable());
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const p = require(${JSON.stringify(require.resolve('pinpool'))});
     const h = p.attach(workerData);
     parentPort.on('message', (token) => {
       const b = p.adopt(token);
       const sum = b.bytes.reduce((s, x) => s + x, 0);
       b.free();
       const c = h.alloc(1000); c.free();
       parentPort.postMessage(sum);
     });`,
    { eval: true, workerData: h.share() },
  );
  const b = h.alloc(256);
  b.bytes.fill(2);
  worker.postMessage(b.transfer());
  const [sum] = await once(worker, 'message');
  assert.equal(sum, 512);
  await worker.terminate();
  assert.deepEqual([h.stats().buffersInUse, h.stats().frees], [0, 2]);
});

test('controller scopes and metrics', async () => {
  const c = p.createController();
  const h = p.pool(p.pageable(), { name: 'scoped' });
  c.register('scoped', h);
  const m = await c.measure(() => c.run('scoped', () => c.alloc(1000).free()));
  assert.equal(m.allocations, 1);
  assert.equal(h.stats().allocations, 1);
});

test('a published binary has no test hooks (built without PINPOOL_TESTING)', () => {
  const { binding } = require('../../dist/src/boundary/native.js');
  assert.equal('testing' in binding, false);
  assert.equal('fakeCuda' in binding, false);
  assert.equal('deferred' in binding, false);
});

test('info() describes the host', () => {
  const i = p.info();
  assert.equal(typeof i.version, 'string');
  assert.equal(i.cuda.available, false);
});

test('the binary joins the global scope and publishes the registry (the capsule)', () => {
  const { registry } = p.info();
  assert.equal(registry.promoteError, undefined);
  assert.equal(registry.thisCopy.publisher, true);
  assert.equal(registry.publisher.addon, registry.thisCopy.addon);
  assert.equal(typeof p.pool(p.pageable()).nativeHandle(), 'object');
});
