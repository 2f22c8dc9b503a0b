// CUDA contexts as the real driver has them (issue 26, points 2 and 12), on the test double:
// every driver call pinpool makes runs with its device's primary context pushed and pops it
// again, so a context another library made current on the same thread stays current and none
// of pinpool's memory lands in it; and no call relies on a context left current by an earlier
// one (the double's strict mode refuses calls on a thread with none, as cuda.h allows).
import { once } from 'node:events';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

import { afterEach, describe, expect, it } from 'vitest';
import { copy, createStream, deviceAlloc, pinned, pool } from 'pinpool';

import { contextOf, setKnob } from '../support/fake-cuda.js';
import { testing } from '../support/testing.js';

afterEach(() => setKnob('strict_context', 0));

describe('a context another library made current', () => {
  it('stays current through every pinpool call, and none of pinpool memory lands in it', async () => {
    setKnob('push_foreign', 0); // what another CUDA library on this thread would have done
    try {
      expect(contextOf('current')).toBe('foreign');
      const h = pinned();
      const buf = h.alloc(4096);
      expect(contextOf('current')).toBe('foreign');
      expect(contextOf(buf.address)).toBe('primary');
      const dev = deviceAlloc(4096);
      expect(contextOf(dev.address)).toBe('primary');
      buf.bytes.fill(3);
      await copy(dev, buf); // a stream, an event and a host function of pinpool's context
      await copy(buf, dev, { stream: createStream() });
      expect(contextOf('current')).toBe('foreign');
      buf.free();
      dev.free();
      expect(contextOf('current')).toBe('foreign');
    } finally {
      setKnob('pop_context', 0);
    }
  });

  it('the same through the driver calls of device check 3 (cuCtxCreate, cuPointerGetAttribute)', async () => {
    // test/gpu's device check 3 asks a real driver this through these hooks.
    const t = testing();
    t.cudaContext('begin', 0);
    try {
      expect(t.cudaContext('current', 0)).toBe('foreign');
      const buf = pool(pinned()).alloc(1 << 16);
      const dev = deviceAlloc(1 << 16);
      await copy(dev, buf);
      await copy(buf, dev, { stream: createStream() });
      expect(t.cudaContext('current', 0)).toBe('foreign');
      expect(t.cudaContext('of', 0, Number(buf.address))).toBe('primary');
      expect(t.cudaContext('of', 0, Number(dev.address))).toBe('primary');
      buf.free();
      dev.free();
      expect(t.cudaContext('current', 0)).toBe('foreign');
    } finally {
      t.cudaContext('end', 0);
    }
    expect(t.cudaContext('current', 0)).toBe('none');
  });

  it('a thread with no context has none after pinpool is done with it', async () => {
    expect(contextOf('current')).toBe('none');
    const buf = pool(pinned()).alloc(1 << 16);
    const dev = deviceAlloc(1 << 16);
    await copy(dev, buf);
    buf.free();
    dev.free();
    expect(contextOf('current')).toBe('none');
  });
});

describe('strict contexts: no call relies on a context left current', () => {
  it('frees a pinned block from a thread that never allocated', async () => {
    setKnob('strict_context', 1);
    const h = pinned();
    const buf = h.alloc(4096);
    const worker = new Worker(join(__dirname, '..', 'support', 'workers', 'adopt-free-worker.cjs'));
    try {
      worker.postMessage({ tokens: [buf.transfer()] });
      const [reply] = (await once(worker, 'message')) as [{ codes: string[] }];
      expect(reply.codes).toEqual(['adopted']);
      // The worker's free reached the driver (cuMemFreeHost, under strict contexts) and took.
      expect(h.stats()).toMatchObject({ buffersInUse: 0, frees: 1, invalidFrees: 0 });
    } finally {
      await worker.terminate();
    }
  });
});
