// Memory lifetimes under copies, against the CUDA test double (docs/decisions/0009-leases.md). Every copy is slowed
// to DELAY ms, so "freed while the copy is in flight" is a real window. The rule under test: a
// block reaches its next owner only when no lease on its memory remains, and a copy never
// writes into memory after it could have been freed.
import { pbkdf2 as pbkdf2Callback } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  copy,
  createStream,
  deviceAlloc,
  Handler,
  locked,
  pageable,
  pinned,
  pool,
  register,
  type DeviceBuffer,
  type HostBuffer,
} from 'pinpool';

import { binding } from '../../dist/src/boundary/native.js';
import { counters, setKnob } from '../support/fake-cuda.js';
import { testing } from '../support/testing.js';
import { expectRejection as expectCode } from '../support/expect-error.js';
import { collected } from '../support/collect.js';

const DELAY = 200;
const pbkdf2 = promisify(pbkdf2Callback);
beforeAll(() => setKnob('copy_delay_ms', DELAY));
afterAll(() => setKnob('copy_delay_ms', 0));

const gc = (globalThis as { gc?: () => void }).gc!;

function fill(bytes: Uint8Array, seed: number): void {
  for (let i = 0; i < bytes.length; i++) bytes[i] = (seed + i) & 0xff;
}

function intact(bytes: Uint8Array, seed: number): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== ((seed + i) & 0xff)) return false;
  return true;
}

/** Device memory holding 0xd0 in every byte. */
async function deviceWithData(bytes: number): Promise<DeviceBuffer> {
  const dev = deviceAlloc(bytes);
  await copy(dev, new Uint8Array(bytes).fill(0xd0));
  return dev;
}

/** Allocates `n` blocks of `bytes` and gives each its own pattern: the next owners. */
function nextOwners(h: Handler, n: number, bytes: number): HostBuffer[] {
  const owners = Array.from({ length: n }, () => h.alloc(bytes));
  owners.forEach((b, i) => fill(b.bytes, 40 + i));
  return owners;
}

describe('a copy leases the memory, whatever object reached it', () => {
  const cases: [string, (b: HostBuffer) => Uint8Array | DataView | ArrayBuffer | HostBuffer][] = [
    ['the HostBuffer', (b) => b],
    ['buf.bytes', (b) => b.bytes],
    ['a view made from buf.bytes.buffer', (b) => new Uint8Array(b.bytes.buffer, 0, b.byteLength)],
    ['a DataView', (b) => new DataView(b.bytes.buffer)],
  ];
  for (const size of [4096, 1 << 20]) {
    for (const [name, target] of cases) {
      it(`${size} bytes: a block freed while a copy into ${name} is in flight is not handed out until it lands`, async () => {
        const h = pool(pinned());
        const dev = await deviceWithData(size);
        const b = h.alloc(size);
        const address = b.address;
        const pending = copy(target(b), dev);
        b.free();
        const next = nextOwners(h, 3, size);
        expect(next.map((n) => n.address)).not.toContain(address);
        await pending;
        expect(next.every((n, i) => intact(n.bytes, 40 + i))).toBe(true);
        next.forEach((n) => n.free());
        // The copy is over: the block is handed out again (after the blocks this thread's
        // cache kept).
        const again = nextOwners(h, 4, size);
        expect(again.map((n) => n.address)).toContain(address);
        again.forEach((n) => n.free());
        dev.free();
        expect(h.stats().bytesInUse).toBe(0);
      });
    }
  }

  it('a copy out of buf.bytes (host to device) leases the block too', async () => {
    const h = pool(pinned());
    const dev = deviceAlloc(4096);
    const b = h.alloc(4096);
    fill(b.bytes, 9);
    const address = b.address;
    const pending = copy(dev, b.bytes);
    b.free();
    const next = nextOwners(h, 2, 4096);
    expect(next.map((n) => n.address)).not.toContain(address);
    await pending;
    const back = new Uint8Array(4096);
    await copy(back, dev);
    expect(intact(back, 9)).toBe(true); // the device got the first owner's bytes
    next.forEach((n) => n.free());
    dev.free();
  });
});

describe('a worker terminated with a copy in flight', () => {
  it('its block is not handed out until the copy lands', async () => {
    const h = pool(pinned());
    const bytes = 1 << 16;
    const w = new Worker(join(__dirname, '..', 'support', 'workers', 'copy-worker.cjs'), {
      workerData: { token: h.share(), bytes },
    });
    const [msg] = (await once(w, 'message')) as [{ address: string }];
    await w.terminate();
    for (let i = 0; i < 50 && h.stats().bytesInUse !== 0; i++) await sleep(5);
    expect(h.stats().bytesInUse).toBe(0);
    const next = nextOwners(h, 3, bytes);
    expect(next.map((n) => String(n.address))).not.toContain(msg.address);
    await sleep(DELAY + 100);
    expect(next.every((n, i) => intact(n.bytes, 40 + i))).toBe(true);
    next.forEach((n) => n.free());
  });
});

describe('a worker terminated with a copy in flight into its own registered memory', () => {
  it('ends only once the copy has landed: its memory is freed after, never under it', async () => {
    // The copy goes in place (the memory is registered); the thread's end frees the memory.
    // Before the fix the environment went with the device still writing into it: a heap write
    // after free (which the ASan run of this file reports).
    const w = new Worker(join(__dirname, '..', 'support', 'workers', 'inplace-copy-worker.cjs'), {
      workerData: { bytes: 1 << 16 },
    });
    setKnob('hold_copies', 1);
    let ending: Promise<number> | undefined;
    try {
      const before = counters().copies_pinned_host ?? 0;
      await once(w, 'message');
      expect(counters().copies_pinned_host).toBe(before + 1); // in place
      ending = w.terminate();
    } finally {
      setKnob('hold_copies', 0);
    }
    await ending;
  });
});

describe('plain memory under a copy', () => {
  it('a destination detached by structuredClone transfer and collected is never written', async () => {
    const size = 1 << 20;
    const dev = await deviceWithData(size);
    let ab: ArrayBuffer | undefined = new ArrayBuffer(size);
    const pending = copy(ab, dev);
    structuredClone(ab, { transfer: [ab] });
    ab = undefined;
    gc();
    const bystanders = Array.from({ length: 16 }, (_, i) => {
      const a = new Uint8Array(size);
      fill(a, i);
      return a;
    });
    await expectCode(pending, 'ERR_PINPOOL_RELEASED');
    expect(bystanders.every((a, i) => intact(a, i))).toBe(true);
    dev.free();
  });

  it('a resizable destination shrunk while the copy runs receives nothing; one resized back receives it all', async () => {
    const size = 1 << 16;
    const dev = await deviceWithData(size);
    const ab = new (
      ArrayBuffer as unknown as new (
        n: number,
        o: { maxByteLength: number },
      ) => ArrayBuffer & { resize(n: number): void }
    )(size, { maxByteLength: size });
    const shrunk = copy(ab, dev);
    ab.resize(0);
    await expectCode(shrunk, 'ERR_PINPOOL_RELEASED');
    ab.resize(size);
    const regrown = copy(ab, dev);
    ab.resize(16);
    ab.resize(size);
    await regrown;
    expect(new Uint8Array(ab).every((v) => v === 0xd0)).toBe(true);
    dev.free();
  });

  it('a source changed after copy() returned does not change what reaches the device', async () => {
    const size = 4096;
    const dev = deviceAlloc(size);
    const src = new Uint8Array(size).fill(3);
    const pending = copy(dev, src);
    src.fill(4);
    structuredClone(src.buffer, { transfer: [src.buffer] });
    await pending;
    const back = new Uint8Array(size);
    await copy(back, dev);
    expect(back.every((v) => v === 3)).toBe(true);
    dev.free();
  });
});

describe('options are read once, before anything is captured', () => {
  for (const [name, make] of [
    ['pinned', () => pinned()],
    ['pool(pinned)', () => pool(pinned())],
    ['pageable', () => pageable()],
    ['pool(locked)', () => pool(locked())],
  ] as const) {
    it(`a getter that frees the buffer: ERR_PINPOOL_RELEASED, and the next owner intact (${name})`, async () => {
      const h: Handler = make();
      const size = 1 << 16;
      const dev = await deviceWithData(size);
      const b = h.alloc(size);
      const options = {
        get bytes() {
          b.free();
          return size;
        },
      };
      await expectCode(() => copy(b, dev, options), 'ERR_PINPOOL_RELEASED');
      const next = nextOwners(h, 2, size);
      await sleep(DELAY + 50);
      expect(next.every((n, i) => intact(n.bytes, 40 + i))).toBe(true);
      next.forEach((n) => n.free());
      expect(h.stats().bytesInUse).toBe(0);
      dev.free();
    });
  }

  it('a getter or Proxy that throws is a PinpoolError, and nothing was queued', async () => {
    const h = pool(pinned());
    const dev = deviceAlloc(64);
    const b = h.alloc(64);
    const throwing = {
      get stream() {
        throw new Error('boom');
      },
    };
    await expectCode(() => copy(dev, b, throwing as never), 'ERR_PINPOOL_INVALID_ARGUMENT');
    const trap = new Proxy(
      {},
      {
        ownKeys() {
          throw new Error('trap');
        },
      },
    );
    await expectCode(() => copy(dev, b, trap), 'ERR_PINPOOL_INVALID_ARGUMENT');
    const proxiedBuffer = new Proxy(b, {});
    await expectCode(() => copy(dev, proxiedBuffer), 'ERR_PINPOOL_INVALID_ARGUMENT');
    b.free();
    dev.free();
  });
});

describe('unforgeable handles', () => {
  it('a stream is refused where a handler is expected, and a handler where a stream is', async () => {
    const stream = createStream();
    const streamHandle = binding.createStream(0);
    expect(typeof streamHandle).toBe('object');
    const h = pool(pinned());
    const before = h.stats();
    await expectCode(() => new Handler(streamHandle as never), 'ERR_PINPOOL_INVALID_ARGUMENT');
    await expectCode(
      () => binding.alloc(streamHandle as never, 64, 64, 1),
      'ERR_PINPOOL_INVALID_ARGUMENT',
    );
    await expectCode(
      () => binding.stats(streamHandle as never, new Float64Array(64)),
      'ERR_PINPOOL_INVALID_ARGUMENT',
    );
    const dev = deviceAlloc(64);
    const b = h.alloc(64);
    await expectCode(
      () => copy(dev, b, { stream: { handle: h.handle, device: 0 } as never }),
      'ERR_PINPOOL_INVALID_ARGUMENT',
    );
    await copy(dev, b, { stream });
    b.free();
    dev.free();
    expect(h.stats().bytesInUse).toBe(before.bytesInUse);
  });
});

describe('copies with a pageable host side never block the event loop', () => {
  for (const [name, make] of [
    ['pageable()', () => pageable()],
    ['pool(pageable())', () => pool(pageable())],
    ['pool(locked())', () => pool(locked())],
    ['a plain Uint8Array', undefined],
  ] as const) {
    for (const direction of ['device to host', 'host to device'] as const) {
      it(`${direction} with ${name}: timers run while the copy is in flight`, async () => {
        const size = 1 << 16;
        const dev = await deviceWithData(size);
        const b = make ? make().alloc(size) : undefined;
        const host = b ?? new Uint8Array(size);
        let ticks = 0;
        const timer = setInterval(() => ticks++, 5);
        const started = performance.now();
        const pending = direction === 'device to host' ? copy(host, dev) : copy(dev, host);
        const returnedAfter = performance.now() - started;
        await pending;
        clearInterval(timer);
        expect(returnedAfter).toBeLessThan(DELAY / 2); // copy() only queued the work
        expect(ticks).toBeGreaterThan(3);
        if (direction === 'device to host')
          expect((b ? b.bytes : (host as Uint8Array)).every((v) => v === 0xd0)).toBe(true);
        b?.free();
        dev.free();
      });
    }
  }
});

describe('copies the driver makes wait hold no libuv pool thread (issue 26, point 7)', () => {
  it('eight copies into pageable memory held by the driver: a file read and a hash still run', async () => {
    const size = 1 << 16;
    const dev = await deviceWithData(size);
    // The driver returns from a device-to-pageable copy only once it has landed; held here, each
    // would keep a thread for as long as the test says. Node's pool has four (UV_THREADPOOL_SIZE).
    setKnob('hold_copies', 1);
    const landed: boolean[] = [];
    let copies: Promise<void>[] = [];
    try {
      copies = Array.from({ length: 8 }, (_, i) =>
        copy(new Uint8Array(size), dev).then(() => {
          landed[i] = true;
        }),
      );
      // fs and crypto run on the pool: with every pool thread inside the driver, neither ends.
      expect(await readFile(__filename, 'utf8')).toContain('point 7');
      expect(
        (await pbkdf2(Buffer.from('pinpool'), Buffer.from('salt'), 1, 16, 'sha256')).length,
      ).toBe(16);
      expect(landed.filter(Boolean)).toEqual([]);
    } finally {
      setKnob('hold_copies', 0);
    }
    await Promise.all(copies);
    expect(landed.filter(Boolean).length).toBe(8);
    dev.free();
  });
});

describe('a registration leases the memory it page-locks', () => {
  it('a pool block freed while registered is not handed out (nor kept by the thread cache) until unregistered', () => {
    const h = pool(pageable());
    const b = h.alloc(1 << 16);
    const address = b.address;
    const reg = register(b.bytes);
    b.free();
    const next = nextOwners(h, 3, 1 << 16);
    expect(next.map((n) => n.address)).not.toContain(address);
    next.forEach((n) => n.free());
    reg.unregister();
    const again = nextOwners(h, 5, 1 << 16);
    expect(again.map((n) => n.address)).toContain(address);
    again.forEach((n) => n.free());
  });
});

describe('a pool dropped with a copy in flight gives its memory back when the copy lands', () => {
  const MiB = 1 << 20;
  for (const [name, make] of [
    ['pool(pinned())', () => pinned()],
    ['pool(locked())', () => locked()],
  ] as const) {
    it(`${name}: nothing is freed while the copy runs, and the leaf ends at 0 bytes with no further call`, async () => {
      const leaf: Handler = make();
      const dev = await deviceWithData(MiB);
      let p: Handler | undefined = pool(leaf);
      const poolId = p.id;
      let b: HostBuffer | undefined = p.alloc(MiB);
      // The copy stays in flight until the checks below are done, however long the collection
      // takes (on a busy machine the copy used to land first).
      setKnob('hold_copies', 1);
      let pending: Promise<void>;
      try {
        pending = copy(b, dev);
        b.free();
        b = p = undefined; // a freed HostBuffer still names its handler
        await collected();
        // The pool's wrapper is gone; the deferred free keeps the pool (and its 1 MiB) alive.
        expect(binding.describe(poolId)).not.toBe(null);
        expect(leaf.stats().bytesInUse).toBe(MiB);
      } finally {
        setKnob('hold_copies', 0);
      }
      await pending;
      // The copy's completion finished the deferred free: the pool went, and its memory back.
      expect(binding.describe(poolId)).toBe(null);
      expect(leaf.stats().bytesInUse).toBe(0);
      expect(leaf.stats().reservedBytes).toBe(0);
      dev.free();
    });
  }

  it('a pool still referenced finishes the deferred free when the copy lands, not at its next alloc()', async () => {
    const p = pool(pinned());
    const dev = await deviceWithData(MiB);
    const b = p.alloc(MiB);
    const pending = copy(b, dev);
    b.free();
    expect(testing().deferred(p.handle as never)).toBe(1);
    await pending;
    expect(testing().deferred(p.handle as never)).toBe(0);
    dev.free();
  });

  it('a pool dropped while its block is registered gives its memory back at unregister()', async () => {
    const leaf = locked(); // pinned memory is page-locked already: the driver refuses to register it
    let p: Handler | undefined = pool(leaf);
    const poolId = p.id;
    let b: HostBuffer | undefined = p.alloc(MiB);
    const reg = register(b.bytes);
    b.free();
    b = p = undefined;
    await collected();
    expect(leaf.stats().bytesInUse).toBe(MiB);
    reg.unregister();
    expect(binding.describe(poolId)).toBe(null);
    expect(leaf.stats().bytesInUse).toBe(0);
  });
});

describe("registered memory that is not pinpool's is never freed while registered", () => {
  // markAsUntransferable() keeps an ArrayBuffer from being detached on Node 24 and later (both
  // ways throw) and on Node 20 (no transfer(); a transfer list copies it), not on Node 22.
  const canTransfer =
    typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer === 'function';
  const keepsPlainBuffers = !canTransfer || Number(process.versions.node.split('.')[0]) >= 24;
  const size = 1 << 16;
  const detachers: [string, (ab: ArrayBuffer) => unknown][] = [
    [
      'ArrayBuffer.prototype.transfer()',
      (ab) => (ab as ArrayBuffer & { transfer(): ArrayBuffer }).transfer(),
    ],
    ['structuredClone with a transfer list', (ab) => structuredClone(ab, { transfer: [ab] })],
    [
      'postMessage with a transfer list',
      (ab) => {
        const { port1 } = new MessageChannel();
        try {
          port1.postMessage(ab, [ab]);
        } finally {
          port1.close();
        }
      },
    ],
  ];
  for (const [name, detach] of detachers) {
    it(`${name} of a registered ArrayBuffer: refused, or register() refused; no registration outlives its memory`, async () => {
      if (name.startsWith('ArrayBuffer') && !canTransfer) return;
      const live = () => counters().registered_ranges_live!;
      const before = live();
      let ab: ArrayBuffer | undefined = new ArrayBuffer(size);
      if (!keepsPlainBuffers) {
        await expectCode(() => register(new Uint8Array(ab!)), 'ERR_PINPOOL_INVALID_ARGUMENT');
        expect(live()).toBe(before); // nothing was registered
        return;
      }
      const reg = register(new Uint8Array(ab));
      try {
        detach(ab); // throws (Node 24), or copies the buffer instead (Node 20)
      } catch {
        // refused
      }
      expect(ab.byteLength).toBe(size);
      ab = undefined;
      await collected();
      // Memory a registration covers is never someone else's: fresh buffers register.
      for (let i = 0; i < 8; i++) register(new ArrayBuffer(size)).unregister();
      expect(reg.memory.byteLength).toBe(size);
      reg.unregister();
      expect(live()).toBe(before);
    });
  }

  it('memory of a SharedArrayBuffer (which nothing can detach) registers on every Node', async () => {
    const before = counters().registered_ranges_live!;
    const data = Buffer.from(new SharedArrayBuffer(size));
    const reg = register(data);
    expect(counters().registered_ranges_live).toBe(before + 1);
    reg.unregister();
    expect(counters().registered_ranges_live).toBe(before);
  });

  it('a resizable ArrayBuffer is refused: resize() can take its pages away', async () => {
    const ab = new (
      ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer
    )(size, { maxByteLength: 2 * size });
    await expectCode(() => register(ab), 'ERR_PINPOOL_INVALID_ARGUMENT');
  });

  it('pinpool memory is leased, not marked: its buffer can still be freed and taken back', () => {
    const h = pool(locked());
    const b = h.alloc(size);
    const reg = register(b.bytes);
    b.free();
    reg.unregister();
    expect(h.stats().bytesInUse).toBe(0);
  });
});
