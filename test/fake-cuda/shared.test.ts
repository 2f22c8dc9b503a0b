// The shared leaf where a CUDA driver is present (the test double): the region is registered
// with the driver (portable) in each process that opens it, its blocks copy in place, a block
// the device still reads cannot leave the process, and the registration ends with the region.
import { afterAll, describe, expect, it } from 'vitest';
import { adopt, copy, deviceAlloc, shared, sharedRegion } from 'pinpool';

import { expectCode } from '../support/expect-error.js';
import { counters, resetCounters, setKnob } from '../support/fake-cuda.js';
import { regionName, removeRegions } from '../support/shared-regions.js';

afterAll(removeRegions);

const MiB = 1 << 20;

describe('shared() with a CUDA driver', () => {
  it('registers the region with the driver, and its blocks copy in place', async () => {
    const before = counters().registered_ranges_live;
    const h = shared({ region: regionName(), bytes: 4 * MiB });
    expect(sharedRegion(h).pageLocked).toBe('cuda');
    expect(counters().registered_ranges_live).toBe(before! + 1);
    const b = h.alloc(1 << 16);
    b.bytes.fill(3);
    const dev = deviceAlloc(1 << 16);
    resetCounters();
    await copy(dev, b);
    b.bytes.fill(0);
    await copy(b, dev);
    expect(b.bytes.every((x) => x === 3)).toBe(true);
    expect(counters().copies_pinned_host).toBe(2);
    expect(counters().copies_pageable_host).toBe(0);
    // Adopted here again (the same region, the same registration): still in place.
    const again = adopt(b.transfer());
    await copy(dev, again);
    expect(counters().copies_pinned_host).toBe(3);
    again.free();
    dev.free();
  });

  it('a block the device still reads cannot leave the process until the copy is over', async () => {
    const h = shared({ region: regionName(), bytes: MiB });
    const b = h.alloc(4096);
    const dev = deviceAlloc(4096);
    setKnob('copy_delay_ms', 100);
    try {
      const copying = copy(dev, b);
      b.bytes[0] = 5; // the buffer the user holds still reaches the block
      expectCode(() => b.transfer(), 'ERR_PINPOOL_INVALID_ARGUMENT');
      expect(b.released).toBe(false);
      expect(b.bytes[0]).toBe(5);
      expect(sharedRegion(h).stats).toMatchObject({ blocksInFlight: 0, blocksHere: 1 });
      await copying;
    } finally {
      setKnob('copy_delay_ms', 0);
    }
    adopt(b.transfer()).free();
    dev.free();
  });

  it('a region the driver will not register serves nothing, and says why', () => {
    setKnob('sticky_error', 700); // the context is lost: every call fails
    let h;
    try {
      h = shared({ region: regionName(), bytes: MiB });
    } finally {
      setKnob('sticky_error', 0);
    }
    expect(sharedRegion(h).pageLocked).toBe('none');
    const err = expectCode(() => h.alloc(10), 'ERR_PINPOOL_UNAVAILABLE');
    expect(err.reason).toBe('cuda-context');
    expect(h.stats().failures).toEqual({ 'cuda-context': 1 });
  });
});
