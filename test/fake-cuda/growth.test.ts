/**
 * Growth of the pinned leaf through the CUDA test double and the kernel double: the device's
 * NUMA node found from its PCI bus id, pages bound there before the first touch (register) or
 * the thread's policy set around cuMemHostAlloc (alloc), and a reservation that registers
 * memory a chunk at a time.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { info, pinned, pool } from 'pinpool';

import { counters, resetCounters } from '../support/fake-cuda.js';
import { testing } from '../support/testing.js';

const MiB = 1024 * 1024;

afterEach(() => {
  testing().kernel('real');
});

describe('pinned(): NUMA', () => {
  it("binds a register leaf's pages to the device's node, found from its PCI bus id", () => {
    testing().kernel('double', { nodes: 2, pciNode: 1 });
    const h = pinned({ strategy: 'register' });
    h.alloc(4 * MiB).free();
    h.alloc(4 * MiB).free();
    expect(testing().kernel('calls')).toMatchObject({
      pciLookups: 1, // looked up once, then kept
      lastBusId: '0000:10:00.0',
      prefer: 2,
      preferNode: 1,
    });
    expect(h.stats().offNodeBytes).toBe(0);
    expect(info().cuda.devices[0]).toMatchObject({ pciBusId: '0000:10:00.0', numaNode: 1 });
  });

  it("sets the thread's memory policy around cuMemHostAlloc, and restores it", () => {
    testing().kernel('double', { nodes: 2, pciNode: 1 });
    const h = pinned();
    h.alloc(1 * MiB).free();
    expect(testing().kernel('calls')).toMatchObject({
      threadPrefer: 1,
      threadPreferNode: 1,
      threadRestores: 1,
    });
  });

  it('reports pages the node could not hold', () => {
    testing().kernel('double', { nodes: 2, pciNode: 1, placeOn: 0 });
    const h = pinned({ strategy: 'register' });
    h.alloc(4 * MiB).free();
    expect(h.stats().offNodeBytes).toBe(4 * MiB);
  });

  it('binds nothing on a machine with one node, nor with numaNode: -1', () => {
    testing().kernel('double', { nodes: 1, pciNode: 0 });
    pinned({ strategy: 'register' })
      .alloc(4 * MiB)
      .free();
    pinned()
      .alloc(4 * MiB)
      .free();
    testing().kernel('double', { nodes: 2, pciNode: 1 });
    pinned({ strategy: 'register', numaNode: -1 })
      .alloc(4 * MiB)
      .free();
    expect(testing().kernel('calls')).toMatchObject({ pciLookups: 0, prefer: 0, threadPrefer: 0 });
  });

  it('an explicit numaNode wins over the device', () => {
    testing().kernel('double', { nodes: 4, pciNode: 1 });
    pinned({ strategy: 'register', numaNode: 3 })
      .alloc(4 * MiB)
      .free();
    expect(testing().kernel('calls')).toMatchObject({ pciLookups: 0, preferNode: 3 });
  });
});

describe('pinned({ strategy: "register" }) under a reservation', () => {
  it('registers one chunk per call, and the pool serves misses from them', async () => {
    resetCounters();
    const h = pool(pinned({ strategy: 'register' }), { chunkBytes: 4 * MiB });
    expect(await h.reserve(12 * MiB)).toBe(12 * MiB);
    expect(counters().cuMemHostRegister_v2).toBe(3);
    const b = h.alloc(3 * MiB);
    expect(b.servedBy).toBe('pinned');
    expect(counters().cuMemHostRegister_v2).toBe(3);
    b.free();
    expect(h.trim({ reservation: true })).toBe(12 * MiB);
    expect(counters().cuMemHostUnregister).toBe(3);
  });
});
