// GPU operations against the CUDA test double: copies land when their work completes, never
// before (PINPOOL_FAKE_CUDA_COPY_DELAY_MS, set here at run time through the double's knob).
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { once } from 'node:events';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  adopt,
  copy,
  createStream,
  deviceAlloc,
  managed,
  mapFile,
  pinned,
  pool,
  register,
  type HostBuffer,
  type PinpoolError,
} from 'pinpool';

import { handlerContract } from '../support/contract.js';
import { counters, resetCounters, setKnob } from '../support/fake-cuda.js';
import { testing } from '../support/testing.js';

const DELAY = 150;
beforeAll(() => setKnob('copy_delay_ms', DELAY));
afterAll(() => setKnob('copy_delay_ms', 0));

function pattern(buf: HostBuffer | Uint8Array, seed: number): void {
  const bytes = buf instanceof Uint8Array ? buf : buf.bytes;
  for (let i = 0; i < bytes.length; i += 4093) bytes[i] = (seed + i) & 0xff;
  bytes[bytes.length - 1] = seed & 0xff;
}

describe('copies', () => {
  const h = pool(pinned());

  for (const size of [4096, 1 << 20]) {
    it(`an H2D then D2H round trip of ${size} bytes returns the same bytes`, async () => {
      const src = h.alloc(size);
      pattern(src, 7);
      const dev = deviceAlloc(size);
      await copy(dev, src);
      const dst = h.alloc(size, { zero: true });
      await copy(dst, dev);
      expect(Buffer.compare(Buffer.from(dst.bytes), Buffer.from(src.bytes))).toBe(0);
      for (const b of [src, dst, dev]) b.free();
    });
  }

  it("copies of memory that is not pinpool's settle once each, however soon they finish", async () => {
    // Queued from a libuv thread; a copy may finish (its host function settling it on this
    // thread) before its submission has returned here. That once freed it twice (ASan runs this).
    // No delay: the race is a copy finishing at once (this file's 150 ms would also make it
    // 39 s of waiting).
    setKnob('copy_delay_ms', 0);
    try {
      const dev = deviceAlloc(1 << 16);
      const sources = Array.from({ length: 64 }, (_, i) => Buffer.alloc(1 << 10, i));
      for (let round = 0; round < 4; round++) {
        await Promise.all(sources.map((b, i) => copy(dev, b, { dstOffset: i << 10 })));
        const back = Buffer.alloc(1 << 16);
        await copy(back, dev);
        for (let i = 0; i < 64; i++) expect(back[(i << 10) + 1023]).toBe(i);
      }
      dev.free();
    } finally {
      setKnob('copy_delay_ms', DELAY);
    }
  });

  it('resolves only once the GPU is done, and the event loop keeps answering timers meanwhile', async () => {
    const src = h.alloc(4096);
    src.bytes.fill(1);
    const dev = deviceAlloc(4096);
    const dst = h.alloc(4096, { zero: true });
    await copy(dev, src);
    const events: string[] = [];
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    setTimeout(() => events.push(`timer 5 ms, copy landed: ${String(dst.bytes[0] === 1)}`), 5);
    const pending = copy(dst, dev).then(() => events.push('copy resolved'));
    expect(dst.bytes[0]).toBe(0); // not before its work completes
    await pending;
    clearInterval(timer);
    expect(events).toEqual(['timer 5 ms, copy landed: false', 'copy resolved']);
    expect(ticks).toBeGreaterThan(3); // the loop ran timers all through the 150 ms copy
    expect(dst.bytes[0]).toBe(1);
    for (const b of [src, dst, dev]) b.free();
  });

  it('a block freed while its copy is in flight is not handed out again until the copy completes', async () => {
    const src = h.alloc(1 << 16);
    pattern(src, 3);
    const dev = deviceAlloc(1 << 16);
    const address = src.address;
    const pending = copy(dev, src);
    src.free();
    expect(h.stats().bytesInUse).toBe(0); // returned to the pool at once...
    const meanwhile = h.alloc(1 << 16);
    expect(meanwhile.address).not.toBe(address); // ...but not handed out under the copy
    await pending;
    const after = h.alloc(1 << 16);
    expect(after.address).toBe(address); // reused once the copy is done
    const check = h.alloc(1 << 16, { zero: true });
    await copy(check, dev);
    expect(check.bytes[4093]).toBe((3 + 4093) & 0xff);
    for (const b of [meanwhile, after, check, dev]) b.free();
  });

  it('copies from and to pageable memory (Buffer, typed arrays, ArrayBuffer), with offsets', async () => {
    const dev = deviceAlloc(1 << 16);
    const source = Buffer.alloc(1 << 16);
    pattern(source, 9);
    await copy(dev, source);
    const out = new Uint8Array(1 << 16);
    await copy(out, dev);
    expect(Buffer.compare(Buffer.from(out), source)).toBe(0);
    const ab = new ArrayBuffer(100);
    await copy(ab, dev, { srcOffset: 4093, bytes: 10, dstOffset: 50 });
    expect(new Uint8Array(ab)[50]).toBe(source[4093]);
    expect(new Uint8Array(ab)[49]).toBe(0);
    dev.free();
  });

  it('copies device to device, on a stream of its own', async () => {
    const a = deviceAlloc(4096);
    const b = deviceAlloc(4096);
    const stream = createStream();
    const host = h.alloc(4096);
    host.bytes.fill(42);
    await copy(a, host, { stream });
    await copy(b, a, { stream });
    const back = h.alloc(4096, { zero: true });
    await copy(back, b, { stream });
    expect(back.bytes.every((x) => x === 42)).toBe(true);
    for (const x of [a, b, host, back]) x.free();
  });

  it('a device buffer freed during a copy is freed after it', async () => {
    const dev = deviceAlloc(4096);
    const host = h.alloc(4096);
    const pending = copy(dev, host);
    resetCounters();
    dev.free();
    expect(counters().cuMemFree_v2).toBe(0);
    await pending;
    expect(counters().cuMemFree_v2).toBe(1);
    host.free();
  });

  it('refuses bad copies with ERR_PINPOOL_INVALID_ARGUMENT or ERR_PINPOOL_RELEASED', async () => {
    const dev = deviceAlloc(100);
    const host = h.alloc(100);
    const codeOf = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return (e as { code: string }).code;
      }
      return 'none';
    };
    expect(codeOf(() => copy(host, new Uint8Array(100)))).toBe('ERR_PINPOOL_INVALID_ARGUMENT');
    expect(codeOf(() => copy(dev, host, { bytes: 101 }))).toBe('ERR_PINPOOL_INVALID_ARGUMENT');
    expect(codeOf(() => copy(dev, host, { srcOffset: 50, bytes: 60 }))).toBe(
      'ERR_PINPOOL_INVALID_ARGUMENT',
    );
    expect(codeOf(() => copy(dev, 'nope' as never))).toBe('ERR_PINPOOL_INVALID_ARGUMENT');
    expect(codeOf(() => copy(dev, host, { stream: {} as never }))).toBe(
      'ERR_PINPOOL_INVALID_ARGUMENT',
    );
    // Within one DeviceBuffer, ranges that overlap (CUDA leaves the result undefined; found by the fuzzer).
    expect(codeOf(() => copy(dev, dev))).toBe('ERR_PINPOOL_INVALID_ARGUMENT');
    expect(codeOf(() => copy(dev, dev, { bytes: 50, srcOffset: 0, dstOffset: 49 }))).toBe(
      'ERR_PINPOOL_INVALID_ARGUMENT',
    );
    expect(codeOf(() => copy(dev, dev, { bytes: 50, srcOffset: 49, dstOffset: 0 }))).toBe(
      'ERR_PINPOOL_INVALID_ARGUMENT',
    );
    await copy(dev, dev, { bytes: 50, srcOffset: 50, dstOffset: 0 }); // next to each other: fine
    await copy(dev, dev, { bytes: 0, srcOffset: 10, dstOffset: 10 });
    host.free();
    expect(codeOf(() => copy(dev, host))).toBe('ERR_PINPOOL_RELEASED');
    dev.free();
    expect(codeOf(() => copy(dev, new Uint8Array(1)))).toBe('ERR_PINPOOL_RELEASED');
    expect(codeOf(() => dev.free())).toBe('ERR_PINPOOL_DOUBLE_FREE');
    expect(codeOf(() => deviceAlloc(-1))).toBe('ERR_PINPOOL_INVALID_ARGUMENT');
    expect(codeOf(() => deviceAlloc(1, { device: 7 }))).toBe('ERR_PINPOOL_UNAVAILABLE');
  });

  it('a DataView whose buffer a getter of the options detached is empty, not a TypeError (found by the fuzzer)', async () => {
    const dev = deviceAlloc(64);
    const b = h.alloc(64);
    const view = new DataView(b.bytes.buffer);
    await copy(dev, view, {
      get srcOffset() {
        b.free();
        return 0;
      },
    });
    const c = h.alloc(64);
    const view2 = new DataView(c.bytes.buffer);
    expect(() =>
      copy(dev, view2, {
        get srcOffset() {
          c.free();
          return 8;
        },
      }),
    ).toThrow(
      expect.objectContaining({ name: 'PinpoolError', code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
    );
    dev.free();
  });

  it('copies 0 bytes to and from empty or detached memory (UBSan: memcpy from null; found by the fuzzer)', async () => {
    const dev = deviceAlloc(64);
    const detached = new ArrayBuffer(8);
    const view = new Uint8Array(detached);
    structuredClone(detached, { transfer: [detached] });
    for (const host of [new ArrayBuffer(0), new Uint8Array(0), Buffer.alloc(0), detached, view]) {
      await copy(dev, host, { bytes: 0 });
      await copy(host, dev, { bytes: 0 });
    }
    dev.free();
  });

  it('a buffer transferred with a copy in flight keeps its lease: the adopter frees it, and it waits for the copy', async () => {
    const dev = deviceAlloc(64);
    const host = h.alloc(64);
    const address = host.address;
    const pending = copy(host, dev);
    const adopted = adopt(host.transfer());
    adopted.free();
    const next = h.alloc(64);
    expect(next.address).not.toBe(address);
    await pending;
    next.free();
    dev.free();
  });
});

describe('managed memory', () => {
  it('prefetch to the device and back to the host resolves; advise accepts the three hints', async () => {
    const m = managed().alloc(1 << 16);
    m.bytes.fill(5);
    resetCounters();
    await m.prefetch(0);
    await m.prefetch('host');
    expect((counters().cuMemPrefetchAsync_v2 ?? 0) + (counters().cuMemPrefetchAsync ?? 0)).toBe(2);
    m.advise('readMostly', 0);
    m.advise('preferredLocation', 'host');
    m.advise('accessedBy', 0);
    m.advise('unsetReadMostly', 0);
    expect(m.bytes[100]).toBe(5);
    m.free();
  });

  it('refuses prefetch and advise on memory that is not managed, and unknown advice', () => {
    const p = pinned().alloc(64);
    expect(() => p.prefetch(0)).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
    );
    expect(() => p.advise('readMostly', 0)).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
    );
    const m = managed().alloc(64);
    expect(() => m.advise('fastPlease' as never, 0)).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
    );
    expect(() => m.prefetch(-2)).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
    );
    p.free();
    m.free();
  });
});

describe("a copy after other work: { after: 'legacy' | Stream } (issue 26, point 10)", () => {
  const size = 4096;
  const filled = (value: number) => new Uint8Array(size).fill(value);

  it('waits for what another library queued on the legacy default stream, and only then runs', async () => {
    const dev = deviceAlloc(size);
    await copy(dev, filled(1));
    const mine = createStream();
    const ordered = new Uint8Array(size);
    const unordered = new Uint8Array(size);
    let orderedLanded = false;
    let pending: Promise<void> | undefined;
    setKnob('hold_legacy', 1); // the other library's copy stays in flight until released
    try {
      testing().legacyCopy(0, Number(dev.address), filled(2));
      pending = copy(ordered, dev, { after: 'legacy', stream: mine }).then(() => {
        orderedLanded = true;
      });
      // pinpool's streams are non-blocking: a copy without `after` does not wait for stream 0.
      await copy(unordered, dev);
      expect(unordered.every((v) => v === 1)).toBe(true);
      expect(orderedLanded).toBe(false);
    } finally {
      setKnob('hold_legacy', 0);
    }
    await pending;
    expect(ordered.every((v) => v === 2)).toBe(true);
    dev.free();
  });

  it('waits for the work queued so far on another stream of the device', async () => {
    const dev = deviceAlloc(size);
    const [first, second] = [createStream(), createStream()];
    const pinnedPool = pool(pinned());
    const src = pinnedPool.alloc(size);
    src.bytes.fill(3);
    const back = new Uint8Array(size);
    const writing = copy(dev, src, { stream: first });
    await copy(back, dev, { stream: second, after: first });
    expect(back.every((v) => v === 3)).toBe(true);
    await writing;
    src.free();
    dev.free();
  });

  it("refuses anything but 'legacy' or a Stream of the copy's device", () => {
    const dev = deviceAlloc(size);
    for (const after of ['LEGACY', 0, {}, null, dev])
      expect(() => copy(new Uint8Array(size), dev, { after: after as never })).toThrow(
        expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
      );
    dev.free();
  });
});

describe('host registration', () => {
  it('page-locks a Buffer in place; copies from it; unregister once', async () => {
    const data = Buffer.from(new SharedArrayBuffer(1 << 16)); // registers on every Node (fake-cuda/lifetimes.test.ts)
    pattern(data, 11);
    resetCounters();
    const reg = register(data);
    expect(counters().cuMemHostRegister_v2).toBe(1);
    expect(reg.memory).toBe(data);
    const dev = deviceAlloc(1 << 16);
    await copy(dev, data);
    const back = Buffer.alloc(1 << 16);
    await copy(back, dev);
    expect(back.equals(data)).toBe(true);
    reg.unregister();
    expect(counters().cuMemHostUnregister).toBe(1);
    expect(() => reg.unregister()).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_DOUBLE_FREE' }),
    );
    dev.free();
  });

  it('copies registered memory in place, page-locked, not through a staging buffer (issue 26, point 4)', async () => {
    const size = 1 << 16;
    const data = Buffer.from(new SharedArrayBuffer(size));
    pattern(data, 5);
    const reg = register(data);
    const dev = deviceAlloc(size);
    resetCounters();
    await copy(dev, data); // the whole registration
    await copy(dev, data.subarray(4096, 8192), { dstOffset: 4096 }); // a part of it
    // Device to host, into another view of the same SharedArrayBuffer: the device writes there.
    const view = new Uint8Array(data.buffer, 8192, 4096);
    const expected = Buffer.from(view);
    view.fill(0);
    await copy(view, dev, { srcOffset: 8192, bytes: 4096 });
    expect(Buffer.from(view).equals(expected)).toBe(true);
    expect(counters().copies_pinned_host).toBe(3);
    expect(counters().copies_pageable_host).toBe(0);
    // Memory that runs past the registration, or once it has ended, is staged again.
    await copy(dev, Buffer.concat([data, Buffer.alloc(1)]).subarray(0, size));
    reg.unregister();
    await copy(dev, data);
    expect(counters().copies_pinned_host).toBe(3);
    expect(counters().copies_pageable_host).toBe(2);
    dev.free();
  });

  it('a SharedArrayBuffer registered in one thread copies in place in another', async () => {
    const memory = new SharedArrayBuffer(1 << 16);
    pattern(new Uint8Array(memory), 3);
    const reg = register(Buffer.from(memory));
    resetCounters();
    const w = new Worker(
      join(__dirname, '..', 'support', 'workers', 'registered-copy-worker.cjs'),
      {
        workerData: { memory },
      },
    );
    const [answer] = (await once(w, 'message')) as [{ same: boolean }];
    await w.terminate();
    expect(answer.same).toBe(true);
    // To the device from the registration in place; back into the worker's own Uint8Array, staged.
    expect(counters().copies_pinned_host).toBe(1);
    expect(counters().copies_pageable_host).toBe(1);
    reg.unregister();
  });

  it('unregister() while a copy reads the memory: the driver unregisters once the copy is done', async () => {
    const size = 1 << 16;
    const data = Buffer.from(new SharedArrayBuffer(size));
    pattern(data, 9);
    const reg = register(data);
    const dev = deviceAlloc(size);
    resetCounters();
    setKnob('hold_copies', 1);
    let pending: Promise<void>;
    try {
      pending = copy(dev, data);
      reg.unregister();
      expect(reg.registered).toBe(false);
      // The driver still reads it: the range stays page-locked until the copy has landed ...
      expect(counters().cuMemHostUnregister).toBe(0);
      // ... but copies queued from now on no longer go in place (counted below: a staged copy
      // is queued from a pool thread).
      const staged = copy(dev, data);
      expect(() => reg.unregister()).toThrow(
        expect.objectContaining({ code: 'ERR_PINPOOL_DOUBLE_FREE' }),
      );
      setKnob('hold_copies', 0);
      await Promise.all([pending, staged]);
    } finally {
      setKnob('hold_copies', 0);
    }
    expect(counters().cuMemHostUnregister).toBe(1);
    expect(counters().copies_pinned_host).toBe(1);
    expect(counters().copies_pageable_host).toBe(1);
    const back = Buffer.alloc(size);
    await copy(back, dev);
    expect(back.equals(data)).toBe(true);
    dev.free();
  });

  it('registering the same memory twice is ERR_PINPOOL_CUDA with the CUDA name', () => {
    const data = Buffer.from(new SharedArrayBuffer(8192));
    const reg = register(data);
    let err: PinpoolError | undefined;
    try {
      register(data);
    } catch (e) {
      err = e as PinpoolError;
    }
    expect(err?.code).toBe('ERR_PINPOOL_CUDA');
    expect(err?.cudaErrorName).toBe('CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED');
    expect(err?.cudaError).toBe(712);
    reg.unregister();
  });

  it("pinned({ strategy: 'register' }) grows from registered memory", () => {
    resetCounters();
    const h = pool(pinned({ strategy: 'register' }));
    const b = h.alloc(1 << 20);
    b.bytes.fill(1);
    expect(counters().cuMemHostRegister_v2).toBe(1);
    expect(counters().cuMemHostAlloc).toBe(0);
    b.free();
    h.trim();
    expect(counters().cuMemHostUnregister).toBe(1);
  });
});

handlerContract("pinned({ strategy: 'register' }) (test double)", () =>
  pinned({ strategy: 'register' }),
);

describe('mapFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pinpool-'));
  const file = join(dir, 'weights.bin');
  const content = Buffer.alloc(300_000);
  pattern(content, 21);
  writeFileSync(file, content);

  it('maps a file, registers it, and copies from it to the device', async () => {
    resetCounters();
    const buf = mapFile(file, { register: true });
    expect(buf.byteLength).toBe(content.length);
    expect(Buffer.from(buf.bytes).equals(content)).toBe(true);
    expect(buf.kind).toBe('file');
    expect(counters().cuMemHostRegister_v2).toBe(1);
    const dev = deviceAlloc(buf.byteLength);
    await copy(dev, buf);
    const back = Buffer.alloc(buf.byteLength);
    await copy(back, dev);
    expect(back.equals(content)).toBe(true);
    buf.free();
    expect(counters().cuMemHostUnregister).toBe(1);
    dev.free();
  });

  describe('registered read-only, so that no page is copied or written back (issue 26, point 5)', () => {
    const ro = join(dir, 'ro.bin');
    const roContent = Buffer.alloc(5 * 4096 + 123);
    pattern(roContent, 31);

    it('pins no page of a private mapping for writing; a shared one is, so that copies land in place', () => {
      writeFileSync(ro, roContent);
      let buf = mapFile(ro, { register: true });
      // Pinned for writing, every page of a private mapping would be copied into anonymous memory.
      expect(counters().file_bytes_pinned_writable).toBe(0);
      buf.free();
      buf = mapFile(ro, { register: true, writable: true });
      expect(counters().file_bytes_pinned_writable).toBe(6 * 4096);
      buf.free();
      expect(counters().file_bytes_pinned_writable).toBe(0);
    });

    it('copies to the device in place, until the process writes a page: then staged, and the write is seen', async () => {
      writeFileSync(ro, roContent);
      const buf = mapFile(ro, { register: true });
      const dev = deviceAlloc(buf.byteLength);
      const back = Buffer.alloc(buf.byteLength);
      resetCounters();
      await copy(dev, buf);
      expect(counters().copies_pinned_host).toBe(1);
      await copy(back, dev);
      expect(back.equals(roContent)).toBe(true);
      // A write gives this process its own copy of that page; the device, which pinned the
      // file's page, would read the old byte from it (the double reads the file there too).
      buf.bytes[4096 + 7] = (roContent[4096 + 7]! + 1) & 0xff;
      resetCounters();
      await copy(dev, buf);
      expect(counters().copies_pageable_host).toBe(1);
      await copy(back, dev);
      expect(back.equals(Buffer.from(buf.bytes))).toBe(true);
      // Pages the process has not written still copy in place.
      resetCounters();
      await copy(dev, buf.bytes.subarray(2 * 4096, 3 * 4096));
      expect(counters().copies_pinned_host).toBe(1);
      expect(readFileSync(ro).equals(roContent)).toBe(true); // a private mapping: never the file
      buf.free();
      dev.free();
    });

    it('copies from the device into a private one through staging (the device may not write it), into a shared one in place', async () => {
      for (const writable of [false, true]) {
        writeFileSync(ro, roContent);
        const buf = mapFile(ro, { register: true, writable });
        const dev = deviceAlloc(buf.byteLength);
        const fresh = Buffer.alloc(buf.byteLength, writable ? 0x5a : 0xa5);
        await copy(dev, fresh);
        resetCounters();
        await copy(buf, dev);
        expect(counters()[writable ? 'copies_pinned_host' : 'copies_pageable_host']).toBe(1);
        expect(Buffer.from(buf.bytes).equals(fresh)).toBe(true);
        buf.free();
        dev.free();
        // Written through a shared mapping, the bytes reach the file.
        expect(readFileSync(ro).equals(writable ? fresh : roContent)).toBe(true);
      }
    });

    it('on a kernel whose read-only pins take private copies (Linux 6.2 on), copies stay in place and see writes', async () => {
      setKnob('unshare_read_only_pins', 1);
      try {
        writeFileSync(ro, roContent);
        const buf = mapFile(ro, { register: true });
        const dev = deviceAlloc(buf.byteLength);
        buf.bytes[4096 + 7] = (roContent[4096 + 7]! + 1) & 0xff;
        resetCounters();
        await copy(dev, buf);
        expect(counters().copies_pinned_host).toBe(1);
        const back = Buffer.alloc(buf.byteLength);
        await copy(back, dev);
        expect(back.equals(Buffer.from(buf.bytes))).toBe(true);
        buf.free();
        dev.free();
      } finally {
        setKnob('unshare_read_only_pins', 0);
      }
    });

    it('a device without read-only registration (attribute 113) pins for writing, as before', async () => {
      setKnob('read_only_host_register', 0);
      try {
        writeFileSync(ro, roContent);
        const buf = mapFile(ro, { register: true });
        expect(counters().file_bytes_pinned_writable).toBe(
          buf.byteLength + (4096 - (buf.byteLength % 4096)),
        );
        const dev = deviceAlloc(buf.byteLength);
        buf.bytes[0] = 1;
        resetCounters();
        await copy(dev, buf);
        await copy(buf, dev);
        expect(counters().copies_pinned_host).toBe(2);
        buf.free();
        dev.free();
        expect(counters().file_bytes_pinned_writable).toBe(0);
      } finally {
        setKnob('read_only_host_register', 1);
      }
    });
  });

  it('writes reach the file only when writable', () => {
    const ro = mapFile(file);
    ro.bytes[0] = (content[0]! + 1) & 0xff;
    ro.free();
    expect(readFileSync(file)[0]).toBe(content[0]);
    const rw = mapFile(file, { writable: true });
    rw.bytes[0] = 0xee;
    rw.free();
    expect(readFileSync(file)[0]).toBe(0xee);
  });

  it('a missing file is ERR_PINPOOL_INVALID_ARGUMENT', () => {
    expect(() => mapFile(join(dir, 'nope'))).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
    );
    expect(() => mapFile(dir)).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
    );
  });
});
