// `pinpool serve` with a CUDA driver (the test double): pinned and managed are registered too,
// the demo runs them, and `pinpool info` lists the device.
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';
import { createController, defaultHandler } from 'pinpool';

import * as builtDefaults from '../../../dist/server/defaults.js';
import * as builtDemo from '../../../dist/server/demo.js';

const { registerDefaultHandlers } =
  builtDefaults as unknown as typeof import('../../../server/defaults.js');
const { startDemo } = builtDemo as unknown as typeof import('../../../server/demo.js');

describe('with a CUDA driver', () => {
  it('registers pinned (the default chain’s pinned pool) and a managed pool', () => {
    const c = createController();
    const names = registerDefaultHandlers(c);
    expect(names.slice(0, 3)).toEqual(['default', 'pinned', 'managed']);
    expect(names).toContain('pageable');
    expect(c.get('pinned')).toBe(defaultHandler().upstreams[0]);
    expect(c.get('pinned')).toMatchObject({ kind: 'pool', name: 'pinned-pool' });
    expect(c.get('managed')).toMatchObject({ kind: 'pool', name: 'managed-pool' });
    expect(c.get('managed').upstreams[0]).toMatchObject({ kind: 'managed' });
  });

  it('the demo allocates pinned and managed memory', async () => {
    const c = createController();
    registerDefaultHandlers(c);
    const demo = startDemo({ controller: c, intervalMs: 5 });
    await sleep(100);
    demo.stop();
    await sleep(20);
    for (const name of ['pinned', 'managed']) {
      const s = c.get(name).stats();
      expect(s.allocations, name).toBeGreaterThan(0);
      expect(s.bytesInUse, name).toBe(0);
    }
  });

  it('pinpool info lists the device', () => {
    const root = join(__dirname, '..', '..', '..');
    const out = execFileSync(process.execPath, [join(root, 'dist', 'server', 'cli.js'), 'info'], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(out).toMatch(/^CUDA: available, driver \d+\.\d+, 1 device\(s\)$/m);
    expect(out).toMatch(/^ {2}device 0: pinpool fake GPU 0, [\d.]+ (MiB|GiB|TiB)$/m);
  });
});
