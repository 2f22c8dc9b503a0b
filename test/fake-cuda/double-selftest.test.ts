// The test double's own checks (test/doubles/fake-cuda/selftest.cpp): that it behaves as the
// driver's documentation says (contexts, copies, stream order, the rules of issue 26), with no
// pinpool in between. Built by `npm run build:fake-cuda` (npm test's pretest).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { expect, it } from 'vitest';

import { fakeCudaLibrary } from '../support/fake-cuda.js';

it('fakecuda-selftest passes', () => {
  const selftest = join(__dirname, '..', '..', 'build', 'fake-cuda', 'fakecuda-selftest');
  const run = spawnSync(selftest, [fakeCudaLibrary], { encoding: 'utf8' });
  expect(run.error).toBeUndefined();
  expect(run.stderr).toBe('');
  expect(run.stdout).toContain('fakecuda-selftest: all checks passed');
  expect(run.status).toBe(0);
});
