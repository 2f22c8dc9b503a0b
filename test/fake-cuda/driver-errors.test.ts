// The CUDA driver's errors as the real driver returns them (issue 26, points 6 and 11), on the
// test double: a context this process can no longer use, or a device another process holds,
// sends the default chain on to page-locked or pageable memory; a cuInit failure says what to
// do; and the double fakes no code that cuda.h lacks. Each runs in a process of its own where
// it poisons the driver, since a poisoned driver stays poisoned.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { fakeCudaLibrary, setKnob } from '../support/fake-cuda.js';
import { testing } from '../support/testing.js';

const root = join(__dirname, '..', '..');

/**
 * Runs `body` in a fresh Node on the double (`__SET__` in it sets `knobs`), with `environment`
 * added; returns what it printed, as JSON.
 */
function inFreshProcess(
  knobs: Record<string, number>,
  body: string,
  environment: NodeJS.ProcessEnv = {},
): unknown {
  const script = `
    const pinpool = require(${JSON.stringify(join(root, 'dist/src/index.js'))});
    const { binding } = require(${JSON.stringify(join(root, 'dist/src/boundary/native.js'))});
    ${body}`;
  const env = { ...process.env, PINPOOL_CUDA_LIBRARY: fakeCudaLibrary, ...environment };
  const sets = Object.entries(knobs)
    .map(([k, v]) => `binding.testing.fakeCuda('set', ${JSON.stringify(k)}, ${v});`)
    .join('');
  return JSON.parse(
    execFileSync(process.execPath, ['-e', script.replace('__SET__', sets)], {
      env,
      encoding: 'utf8',
      // Only for a child that never ends (what point 1 was): it fails the test, with a reason,
      // under vitest's own 60 s.
      timeout: 50_000,
    }),
  );
}

describe('a CUDA context this process can no longer use', () => {
  // A kernel fault of any library sharing the primary context (700, 714-719), an uncorrectable
  // ECC error (214), a destroyed context (709), no usable context (201), a driver shutting down (4).
  it.each([700, 719, 709, 201, 4, 214])(
    'error %i: the default chain falls back, counted as cuda-context',
    (code) => {
      const out = inFreshProcess(
        { sticky_error: code },
        `
        const { defaultHandler } = pinpool;
        __SET__
        const h = defaultHandler();
        const buf = h.alloc(4096);
        buf.bytes.fill(7);
        const servedBy = buf.servedBy;
        buf.free();
        const pinned = h.upstreams[0].upstreams[0];
        console.log(JSON.stringify({
          servedBy,
          pinnedFailures: pinned.stats().failures,
          fallbacks: h.stats().fallbacks,
        }));`,
      );
      expect(out).toEqual({
        servedBy: expect.stringMatching(/^(locked|pageable)$/),
        pinnedFailures: { 'cuda-context': 1 },
        fallbacks: { unavailable: 1 },
      });
    },
  );

  it('a device another process holds (exclusive-process mode, 46): no-device, and a fallback', () => {
    const out = inFreshProcess(
      { sticky_error: 46 },
      `
      __SET__
      const h = pinpool.defaultHandler();
      const buf = h.alloc(64);
      const servedBy = buf.servedBy;
      buf.free();
      console.log(JSON.stringify({ servedBy, failures: h.upstreams[0].upstreams[0].stats().failures }));`,
    );
    expect(out).toEqual({
      servedBy: expect.stringMatching(/^(locked|pageable)$/),
      failures: { 'no-device': 1 },
    });
  });

  it("a bare pinned leaf says unavailable, with the driver's code and name", () => {
    const out = inFreshProcess(
      { sticky_error: 700 },
      `
      __SET__
      try { pinpool.pinned().alloc(64); console.log('null'); }
      catch (e) { console.log(JSON.stringify({ code: e.code, reason: e.reason, cudaError: e.cudaError, name: e.cudaErrorName })); }`,
    );
    expect(out).toEqual({
      code: 'ERR_PINPOOL_UNAVAILABLE',
      reason: 'cuda-context',
      cudaError: 700,
      name: 'CUDA_ERROR_ILLEGAL_ADDRESS',
    });
  });
});

describe('a context that fails while work is in flight (point 1)', () => {
  for (const [how, fail] of [
    ['a sticky error (the knob)', "binding.testing.fakeCuda('set', 'sticky_error', 700);"],
    // What test/gpu's device check 4 does on a GPU, through the same hook: another library's
    // kernel storing through null, launched on the legacy default stream.
    [
      "another library's kernel that faults (device check 4, on the double)",
      'binding.testing.faultKernel(0);',
    ],
  ] as const) {
    it(`${how}: settles the Promise with the error, ends the lease, and lets Node exit`, () => {
      // The driver never calls a host function after a context error, and pinpool's completion
      // came only from one: this hung for ever (and kept Node alive).
      const out = inFreshProcess(
        { hold_copies: 1 },
        `
        const { copy, deviceAlloc, pool, pinned } = pinpool;
        (async () => {
          const dev = deviceAlloc(1 << 20);
          const h = pool(pinned());
          const buf = h.alloc(1 << 20);
          __SET__
          const p = copy(dev, buf);
          ${fail}
          binding.testing.fakeCuda('set', 'hold_copies', 0);
          let error = null;
          try { await p; } catch (e) { error = { code: e.code, cudaError: e.cudaError, name: e.cudaErrorName }; }
          buf.free();
          console.log(JSON.stringify({ error, cached: h.stats().cachedBytes, inUse: h.stats().bytesInUse }));
        })();`,
      );
      expect(out).toEqual({
        error: { code: 'ERR_PINPOOL_CUDA', cudaError: 700, name: 'CUDA_ERROR_ILLEGAL_ADDRESS' },
        // The lease ended with the error: the block went back to the pool at free().
        cached: 1 << 20,
        inUse: 0,
      });
    });
  }
});

describe('copies between two devices (point 9)', () => {
  it('are refused, coded, before the driver sees them; each device copies its own', () => {
    const out = inFreshProcess(
      {},
      `
      const { deviceAlloc, copy, pinned, ErrorCode } = pinpool;
      (async () => {
        const a = deviceAlloc(4096, { device: 0 });
        const b = deviceAlloc(4096, { device: 1 });
        const host = pinned().alloc(4096);
        host.bytes.fill(9);
        let refused;
        try { await copy(b, a); } catch (e) { refused = { code: e.code, message: e.message }; }
        await copy(a, host);            // host to device 0
        await copy(b, host);            // host to device 1
        const back = pinned().alloc(4096);
        await copy(back, b);
        console.log(JSON.stringify({ refused, landed: back.bytes[4095] }));
      })().catch((e) => { console.log(JSON.stringify({ failed: String(e) })); });`,
      { PINPOOL_FAKE_CUDA_DEVICES: '2' },
    );
    expect(out).toEqual({
      refused: {
        code: 'ERR_PINPOOL_INVALID_ARGUMENT',
        message: expect.stringContaining('device 0 to device 1'),
      },
      landed: 9,
    });
  });
});

describe('managed memory on a device without concurrent access (point 8)', () => {
  it('is not served, and says why; the default chain is unaffected', () => {
    // Windows and WSL drivers: the host touching managed memory while the GPU works is a
    // segmentation fault there, not an error.
    const out = inFreshProcess(
      {},
      `
      const { info, managed, pool, defaultHandler } = pinpool;
      const device = info().cuda.devices[0];
      let refused = null;
      try { pool(managed()).alloc(4096); } catch (e) { refused = { code: e.code, reason: e.reason, cudaError: e.cudaError }; }
      const buf = defaultHandler().alloc(4096);
      const servedBy = buf.servedBy;
      buf.free();
      console.log(JSON.stringify({ managedMemory: device.managedMemory, concurrent: device.concurrentManagedAccess, refused, servedBy }));`,
      { PINPOOL_FAKE_CUDA_CONCURRENT_MANAGED_ACCESS: '0' },
    );
    expect(out).toEqual({
      managedMemory: true,
      concurrent: false,
      refused: { code: 'ERR_PINPOOL_UNAVAILABLE', reason: 'unavailable', cudaError: 801 },
      servedBy: 'pinned',
    });
  });
});

describe("the double's error codes", () => {
  it('are those of cuda.h only: a knob refuses a code the driver lacks', () => {
    // 35 is the runtime API's cudaErrorInsufficientDriver; no CUresult has it.
    expect(() => setKnob('init_error', 35)).toThrow('unknown knob init_error');
    expect(() => setKnob('sticky_error', 35)).toThrow('unknown knob sticky_error');
    expect(testing().cudaError(35).name).toBe('CUDA error 35'); // named by no one
    expect(testing().cudaError(34).name).toBe('CUDA_ERROR_STUB_LIBRARY');
  });
});
