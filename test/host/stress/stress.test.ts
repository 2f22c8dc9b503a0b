// Multi-threaded stress over the host chains (no CUDA): see stress.ts for the model.
import { describe, expect, it } from 'vitest';
import { fallback, limit, locked, pageable, pool } from 'pinpool';

import {
  expectClean,
  opsFromEnv,
  runStress,
  seedFromEnv,
  stressEnabled,
  summary,
  type StressChain,
} from '../../support/stress/stress.js';

const KiB = 1024;
const MiB = 1024 * KiB;

describe.skipIf(!stressEnabled)('stress: four threads over the host chains', () => {
  it('keeps every pattern intact, across threads, and every statistic returns to zero', async () => {
    const seed = seedFromEnv();
    const reproduce = `seed ${seed}: rerun with PINPOOL_STRESS_SEED=${seed}`;
    try {
      const chains: StressChain[] = [
        // The memlock limit (ulimit -l, often 8 MiB) bounds locked memory: small sizes only,
        // and a refusal is expected and counted.
        {
          label: 'pool(locked)',
          handler: pool(locked(), { name: 'stress-locked-pool' }),
          maxSize: 4 * KiB,
          expected: ['mlock'],
        },
        {
          label: 'fallback(pool(locked), pageable)',
          handler: fallback(
            pool(locked(), { name: 'stress-fallback-locked-pool', slabViews: false }),
            pageable({ name: 'stress-fallback-pageable' }),
            {
              name: 'stress-fallback',
              maxBytes: 1 * MiB,
            },
          ),
          expected: [],
        },
        {
          label: 'limit(pool(pageable))',
          handler: limit(
            pool(pageable({ name: 'stress-limit-pageable' }), {
              name: 'stress-limit-pool',
              maxCachedBytes: 256 * MiB,
            }),
            {
              name: 'stress-limit',
              maxBytes: 64 * MiB,
            },
          ),
          expected: ['limit'],
        },
        // A small cache cap: freed large blocks past it go straight back upstream.
        {
          label: 'pool(pageable, 32 MiB cache)',
          handler: pool(pageable({ name: 'stress-capped-pageable' }), {
            name: 'stress-capped-pool',
            maxCachedBytes: 32 * MiB,
          }),
          expected: [],
        },
      ];
      const r = await runStress({ chains, ops: opsFromEnv(100_000), seed });
      console.log(summary('host', r, chains));
      expectClean(expect, r, chains, reproduce);
      expect(
        r.expectedFailures[2]!.limit ?? 0,
        `the limit never triggered (${reproduce})`,
      ).toBeGreaterThan(0);
      expect(chains[1]!.handler.stats().fallbacks.size ?? 0, reproduce).toBeGreaterThan(0);
    } catch (err) {
      console.error(`stress host failed: ${reproduce}`);
      throw err;
    }
    // No time limit: the run is bounded by its operation count, and a hung worker is caught by
    // runStress's watchdog (no step by any worker for 300 s), which load alone cannot trip.
  }, 0);
});

// Cheap, so it runs in every `npm test`: what replaces a deadline must catch a hang.
describe('stress: the watchdog', () => {
  it("fails a run whose worker stops taking steps, naming the seed and each worker's steps", async () => {
    const chains: StressChain[] = [
      { label: 'pool(pageable)', handler: pool(pageable()), maxSize: 4 * KiB, expected: [] },
    ];
    const run = runStress({ chains, ops: 2_000, seed: 7, stallSeconds: 2, hangAfterOps: 500 });
    await expect(run).rejects.toThrow(
      /^stress workers took no step for 2 s \(seed 7\); steps per worker: (\d+, ){3}\d+$/,
    );
  });
});
