// The escapes of test/host/escapes.test.ts from the pinned leaf (cuMemHostAlloc, on the CUDA test
// double): a worker's pinned block whose ArrayBuffer it posted is never freed to the driver
// under the thread that received it.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { hasTransfer, scenario, SIZE } from '../support/escapes/scenario.js';

describe('pinned blocks whose ArrayBuffer leaves a worker', () => {
  it("a pinned pool's cache hit, posted: kept out of use after the worker ends", () => {
    const o = scenario('pinned', 'cached-post');
    expect(o).toMatchObject({
      received: SIZE,
      intactBefore: true,
      mineIntact: true,
      orphanedBytes: hasTransfer ? SIZE : 0,
    });
  });

  for (const options of [{ pool: false }, {}, { threadCacheBytes: 0 }]) {
    it.skipIf(!hasTransfer)(
      `moved with transfer() and posted, from ${JSON.stringify(options)}: the driver never frees it`,
      () => {
        for (const how of ['post-transfer', 'post-transfer-free']) {
          const o = scenario('pinned', how, options);
          expect(o).toMatchObject({
            received: SIZE,
            intactBefore: true,
            mineIntact: true,
            orphanedBytes: SIZE,
            orphanedBlocks: 1,
          });
        }
      },
    );
  }

  it('pinned buffers that stayed in the worker come back with its end', () => {
    for (const how of ['keep', 'cached-keep']) {
      const o = scenario('pinned', how);
      expect(o).toMatchObject({ received: null, orphanedBytes: 0, bytesInUse: 0 });
    }
  });
});

describe('a registration alive when its worker ends', () => {
  it('orphans the block under it, counted, instead of a free that waits for ever unseen', () => {
    const r = spawnSync(
      process.execPath,
      [join(__dirname, '..', 'support', 'escapes', 'end-cases.cjs'), 'registered'],
      { encoding: 'utf8' },
    );
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(o).toMatchObject({ orphanedBytes: 1 << 20, orphanedBlocks: 1, bytesInUse: 0 }); // before: 0 orphaned, a wait for ever
  });
});
