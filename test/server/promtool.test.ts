// The real /metrics output passes `promtool check metrics` (Prometheus's own parser and linter).
// Skipped where promtool is not installed, unless PINPOOL_REQUIRE_PROMTOOL=1 (CI) makes that a failure.
import { spawnSync } from 'node:child_process';

import { afterAll, expect, it } from 'vitest';

import { request, testServer } from './helpers.js';

const found = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
const available = found.error === undefined && found.status === 0;
const required = process.env.PINPOOL_REQUIRE_PROMTOOL === '1';

const server = testServer();
afterAll(() => server.close());

it.skipIf(!available && !required)('promtool check metrics accepts /metrics', async () => {
  expect(available, `PINPOOL_REQUIRE_PROMTOOL=1 but promtool did not run: ${found.error?.message ?? found.stderr}`).toBe(true);
  // Exercise every series kind first: fallbacks, failures, pools, several labels.
  const c = server.controller;
  c.get('cache').alloc(1 << 20).free();
  c.get('plain').alloc(10).free();
  c.defaultHandler().alloc(4096).free();
  const res = await request(server, { method: 'GET', url: '/metrics' });
  expect(res.statusCode).toBe(200);
  const check = spawnSync('promtool', ['check', 'metrics'], { input: res.body, encoding: 'utf8' });
  expect(check.error).toBeUndefined();
  expect({ status: check.status, output: check.stdout + check.stderr }).toEqual({ status: 0, output: '' });
});
