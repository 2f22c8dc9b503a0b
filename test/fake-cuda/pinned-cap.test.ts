// The pinned leaf and the host's page-lock cap (docs/decisions/0015-page-lock-cap.md), through the CUDA test
// double: a request the host cannot hold is refused before the driver is asked.
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { info, managed, pinned } from 'pinpool';

import { expectCode } from '../support/expect-error.js';
import { counters, resetCounters } from '../support/fake-cuda.js';

describe('pinned() and the host page-lock cap', () => {
  it('reports the host cap as its capBytes (managed memory is not page-locked: no cap)', () => {
    const { hostLockCap } = info();
    expect(['cgroup', 'meminfo']).toContain(hostLockCap.source);
    expect(pinned().stats().capBytes).toBe(hostLockCap.bytes);
    expect(managed().stats().capBytes).toBe(0);
  });

  for (const strategy of ['alloc', 'register'] as const) {
    it(`refuses twice the machine at once, reason mlock, without asking the driver (strategy '${strategy}')`, () => {
      const h = pinned({ strategy });
      const bytes = 2 * os.totalmem();
      resetCounters();
      const err = expectCode(() => h.alloc(bytes), 'ERR_PINPOOL_OUT_OF_MEMORY');
      expect(err.reason).toBe('mlock');
      expect(err).toMatchObject({ bytes, capBytes: info().hostLockCap.bytes });
      expect(err.message).toContain(String(info().hostLockCap.bytes));
      const driverCall = strategy === 'alloc' ? 'cuMemHostAlloc' : 'cuMemHostRegister_v2';
      expect(counters()[driverCall] ?? 0).toBe(0);
      expect(h.stats().bytesInUse).toBe(0);
      expect(h.stats().failures).toEqual({ mlock: 1 });
      // Within the cap it serves as before, and the budget it took comes back at the free.
      h.alloc(1 << 20).free();
      h.alloc(1 << 20).free();
      expect(counters()[driverCall]).toBe(2);
    });
  }
});
