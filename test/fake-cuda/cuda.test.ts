// CUDA code paths through the test double (project fake-cuda).
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  defaultHandler,
  fallback,
  info,
  managed,
  pageable,
  pinned,
  pool,
  type PinpoolError,
} from 'pinpool';

import { counters, fakeCudaLibrary, resetCounters, setKnob } from '../support/fake-cuda.js';

const root = join(__dirname, '..', '..');

afterEach(() => setKnob('fail_after', -1));

describe('with the CUDA test double as the driver', () => {
  it('info() reports the driver and its devices', () => {
    const i = info();
    expect(i.cuda.available).toBe(true);
    expect(i.cuda.reason).toBeUndefined();
    expect(i.cuda.driverVersion).toBeGreaterThan(0);
    expect(i.cuda.devices).toEqual([
      {
        index: 0,
        name: 'pinpool fake GPU 0',
        totalBytes: expect.any(Number),
        pciBusId: '0000:10:00.0',
        numaNode: -1,
        managedMemory: true,
        concurrentManagedAccess: true,
      },
    ]);
  });

  it('pinned() serves from cuMemHostAlloc and frees with cuMemFreeHost', () => {
    resetCounters();
    const b = pinned().alloc(4096);
    expect(b.servedBy).toBe('pinned');
    expect(b.kind).toBe('pinned');
    b.free();
    expect(counters().cuMemHostAlloc).toBe(1);
    expect(counters().cuMemFreeHost).toBe(1);
  });

  it('the default handler serves from the pinned pool', () => {
    const b = defaultHandler().alloc(1 << 20);
    expect(b.servedBy).toBe('pinned');
    b.free();
  });

  it('a pool hit makes no upstream call', () => {
    const h = pool(pinned());
    h.alloc(4096).free();
    h.alloc(1 << 20).free();
    resetCounters();
    for (let i = 0; i < 1000; i++) {
      h.alloc(4096).free();
      h.alloc(1 << 20).free();
    }
    expect(counters().cuMemHostAlloc).toBe(0);
    expect(counters().cuMemFreeHost).toBe(0);
  });

  it('trim() returns pinned memory with cuMemFreeHost', () => {
    const h = pool(pinned());
    h.alloc(1 << 20).free();
    h.alloc(100).free();
    resetCounters();
    h.trim();
    expect(counters().cuMemFreeHost).toBe(2);
    expect(h.stats().reservedBytes).toBe(0);
  });

  it('a pinned out-of-memory moves to the fallback, counted; the error carries the CUDA name', () => {
    setKnob('fail_after', 0);
    const leaf = pinned();
    let err: PinpoolError | undefined;
    try {
      leaf.alloc(4096);
    } catch (e) {
      err = e as PinpoolError;
    }
    expect(err?.code).toBe('ERR_PINPOOL_OUT_OF_MEMORY');
    expect(err?.reason).toBe('out-of-memory');
    expect(err?.cudaError).toBe(2);
    expect(err?.cudaErrorName).toBe('CUDA_ERROR_OUT_OF_MEMORY');
    const h = fallback(pool(pinned()), pageable());
    const b = h.alloc(4096);
    expect(b.servedBy).toBe('pageable');
    expect(h.stats().fallbacks).toEqual({ 'out-of-memory': 1 });
    setKnob('fail_after', -1);
    const c = h.alloc(4096);
    expect(c.servedBy).toBe('pinned'); // out-of-memory is not sticky, unlike unavailable
    b.free();
    c.free();
  });

  it('a device that does not exist is unavailable, with reason no-device', () => {
    let err: PinpoolError | undefined;
    try {
      pinned({ device: 3 }).alloc(64);
    } catch (e) {
      err = e as PinpoolError;
    }
    expect(err?.code).toBe('ERR_PINPOOL_UNAVAILABLE');
    expect(err?.reason).toBe('no-device');
  });

  it('managed() memory is readable and writable from the host', () => {
    const b = managed().alloc(1 << 16);
    b.bytes.fill(0xab);
    expect(b.bytes[65535]).toBe(0xab);
    expect(b.kind).toBe('managed');
    b.free();
  });

  it('retains each primary context once per process and sets it current once per thread', () => {
    pinned().alloc(64).free(); // retained by now, whatever ran before
    resetCounters();
    const h = pinned();
    for (let i = 0; i < 10; i++) h.alloc(64).free();
    expect(counters().cuMemHostAlloc).toBe(10);
    expect(counters().cuDevicePrimaryCtxRetain).toBe(0);
    expect(counters().cuCtxSetCurrent).toBe(0);
  });

  it('a failing cuInit leaves pinpool importable and says why', () => {
    const script = `
      const { info, pinned, defaultHandler } = require(${JSON.stringify(join(root, 'dist/src/index.js'))});
      const i = info();
      let code; try { pinned().alloc(64); } catch (e) { code = e.code; }
      const b = defaultHandler().alloc(64);
      console.log(JSON.stringify({ available: i.cuda.available, reason: i.cuda.reason, code, servedBy: b.servedBy }));
    `;
    const out = execFileSync(process.execPath, ['-e', script], {
      env: {
        ...process.env,
        PINPOOL_CUDA_LIBRARY: fakeCudaLibrary,
        PINPOOL_FAKE_CUDA_INIT_ERROR: '100',
      },
      encoding: 'utf8',
    });
    const r = JSON.parse(out) as {
      available: boolean;
      reason: string;
      code: string;
      servedBy: string;
    };
    expect(r.available).toBe(false);
    expect(r.reason).toMatch(/cuInit failed with CUDA_ERROR_NO_DEVICE \(100\)/);
    expect(r.code).toBe('ERR_PINPOOL_UNAVAILABLE');
    expect(r.servedBy).toBe('locked');
  });

  it('several devices: each is listed and allocates', () => {
    const script = `
      const { info, pinned } = require(${JSON.stringify(join(root, 'dist/src/index.js'))});
      const b = pinned({ device: 1 }).alloc(64);
      console.log(JSON.stringify({ devices: info().cuda.devices.length, servedBy: b.servedBy }));
      b.free();
    `;
    const out = execFileSync(process.execPath, ['-e', script], {
      env: {
        ...process.env,
        PINPOOL_CUDA_LIBRARY: fakeCudaLibrary,
        PINPOOL_FAKE_CUDA_DEVICES: '2',
      },
      encoding: 'utf8',
    });
    expect(JSON.parse(out)).toEqual({ devices: 2, servedBy: 'pinned' });
  });
});
