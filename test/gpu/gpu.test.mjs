// The GPU suite: runs on a machine with an NVIDIA GPU with plain `node --test test/gpu/`,
// needing only the built output (dist/ and build/Release/pinpool.node), no node_modules.
// Without a GPU every test is skipped with the reason, and the run exits 0.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createRequire } from 'node:module';

const load = createRequire(import.meta.url);
/** @type {typeof import('pinpool')} */
const pinpool = load('pinpool');
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
});
