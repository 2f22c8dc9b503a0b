// `pinpool serve`'s handlers and demo workload, used directly from dist/ (not public API).
import { setTimeout as sleep } from 'node:timers/promises';

import { describe, expect, it } from 'vitest';
import { collectMetrics, createController, defaultHandler, info } from 'pinpool';

import * as builtDefaults from '../../../dist/server/defaults.js';
import * as builtDemo from '../../../dist/server/demo.js';

// Run the built files (the same module instances as 'pinpool'), typed from the sources that
// TypeScript maps 'pinpool' to.
const { registerDefaultHandlers } =
  builtDefaults as unknown as typeof import('../../../server/defaults.js');
const { startDemo } = builtDemo as unknown as typeof import('../../../server/demo.js');

describe('registerDefaultHandlers', () => {
  it('names the default chain and, without CUDA, its locked and pageable links', () => {
    const c = createController();
    const names = registerDefaultHandlers(c);
    expect(info().cuda.available).toBe(false); // the host project runs without a driver
    expect(names).toEqual(
      info().memlockLimitBytes > 0 ? ['default', 'locked', 'pageable'] : ['default', 'pageable'],
    );
    expect(c.get('default')).toBe(defaultHandler());
    // The names reach the default chain's own links: one locked pool per process, not two.
    const chainLinks = new Set<unknown>();
    const visit = (h: ReturnType<typeof defaultHandler>): void => {
      chainLinks.add(h);
      h.upstreams.forEach(visit);
    };
    visit(defaultHandler());
    for (const name of names) expect(chainLinks.has(c.get(name)), name).toBe(true);
    if (names.includes('locked'))
      expect(c.get('locked')).toMatchObject({ kind: 'pool', name: 'locked-pool' });
    expect(c.get('pageable')).toMatchObject({ kind: 'pageable' });
  });

  it('skips names already taken', () => {
    const c = createController();
    registerDefaultHandlers(c);
    expect(registerDefaultHandlers(c)).toEqual([]);
  });
});

describe('startDemo', () => {
  it('moves the metrics of every handler it runs, then frees everything it kept on stop()', async () => {
    const c = createController();
    registerDefaultHandlers(c);
    const before = Object.fromEntries(c.names().map((n) => [n, c.get(n).stats().allocations]));
    const inUseBefore = c.get('pageable').stats().bytesInUse;
    const demo = startDemo({ controller: c, intervalMs: 5 });
    await sleep(150);
    demo.stop();
    for (const name of c.names())
      expect(c.get(name).stats().allocations, name).toBeGreaterThan(before[name]!);
    // Nothing the demo allocated is left in use once it stopped.
    const text = await collectMetrics({ controller: c }).metrics();
    expect(text).toMatch(/^pinpool_allocations_total\{handler="default",kind="fallback"\} [1-9]/m);
    await sleep(20); // a tick that was running when stop() came finishes and frees
    expect(c.get('default').stats().bytesInUse).toBe(0);
    expect(c.get('pageable').stats().bytesInUse).toBe(inUseBefore);
  });

  it('keeps a bounded number of buffers however long it runs', async () => {
    const c = createController();
    c.register('only', defaultHandler());
    const demo = startDemo({ controller: c, intervalMs: 1 });
    let most = 0;
    for (let i = 0; i < 30; i++) {
      await sleep(5);
      most = Math.max(most, c.get('only').stats().buffersInUse);
    }
    demo.stop();
    expect(most).toBeLessThanOrEqual(24 + 4);
  });
});
