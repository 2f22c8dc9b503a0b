// Multi-threaded stress over CUDA chains, with the test double (test/doubles/fake-cuda) as the driver:
// see stress.ts for the model.
import { describe, expect, it } from 'vitest';
import { fallback, limit, managed, pageable, pinned, pool } from 'pinpool';

import { counters } from '../../support/fake-cuda.js';
import {
  expectClean,
  opsFromEnv,
  runStress,
  seedFromEnv,
  stressEnabled,
  summary,
  type StressChain,
} from '../../support/stress/stress.js';

const MiB = 1024 * 1024;

describe.skipIf(!stressEnabled)('stress: four threads over CUDA chains (test double)', () => {
  it('keeps every pattern intact, across threads, and every statistic returns to zero', async () => {
    const seed = seedFromEnv();
    const reproduce = `seed ${seed}: rerun with PINPOOL_STRESS_SEED=${seed}`;
    try {
      const chains: StressChain[] = [
        {
          label: 'pool(pinned)',
          handler: pool(pinned({ name: 'stress-pinned' }), {
            name: 'stress-pinned-pool',
            maxCachedBytes: 256 * MiB,
          }),
          expected: [],
        },
        {
          label: 'pool(managed)',
          handler: pool(managed({ name: 'stress-managed' }), {
            name: 'stress-managed-pool',
            maxCachedBytes: 256 * MiB,
          }),
          expected: [],
        },
        // The limit makes the pinned side run out now and then, so the fallback serves blocks
        // in the primary's range from the secondary too, and must free each to the right one.
        {
          label: 'fallback(limit(pool(pinned)), pageable)',
          handler: fallback(
            limit(
              pool(pinned({ name: 'stress-fallback-pinned' }), {
                name: 'stress-fallback-pinned-pool',
                maxCachedBytes: 256 * MiB,
              }),
              {
                name: 'stress-fallback-limit',
                maxBytes: 48 * MiB,
              },
            ),
            pageable({ name: 'stress-fallback-pageable' }),
            { name: 'stress-fallback' },
          ),
          expected: [],
        },
      ];
      const r = await runStress({ chains, ops: opsFromEnv(100_000), seed });
      console.log(summary('fake-cuda', r, chains));
      expectClean(expect, r, chains, reproduce);
      expect(
        chains[2]!.handler.stats().fallbacks['out-of-memory'] ?? 0,
        `the fallback never moved on (${reproduce})`,
      ).toBeGreaterThan(0);
      // The driver got every byte back.
      const c = counters();
      expect({ host: c.bytes_host_alloc_live, managed: c.bytes_managed_live }, reproduce).toEqual({
        host: 0,
        managed: 0,
      });
    } catch (err) {
      console.error(`stress fake-cuda failed: ${reproduce}`);
      throw err;
    }
    // No time limit: the run is bounded by its operation count, and a hung worker is caught by
    // runStress's watchdog (no step by any worker for 300 s), which load alone cannot trip.
  }, 0);
});
