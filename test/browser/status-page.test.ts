// The status page (GET /) in a real headless Chromium, against a real listening service: it loads
// clean under its Content-Security-Policy, draws the chains, moves with a workload, shows names as
// text, offers no control without the token, and switches a scope with one. Screenshots of the
// page idle, under the demo workload and after a switch go to build/status-page/, or to the folder
// PINPOOL_SCREENSHOTS names (`npm run docs:screenshots` writes docs/images/).
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createController, pageable, pool, type Controller, type Handler } from 'pinpool';
import { createServer, pinpoolScope, type PinpoolServer } from 'pinpool/server';

import * as builtDemo from '../../dist/server/demo.js';
import { browserRequired, chromiumPath, launchBrowser, noBrowser } from '../support/browser.js';

const { startDemo } = builtDemo as unknown as typeof import('../../server/demo.js');

const TOKEN = 'browser-test-token';
const HOSTILE = '<img src=x onerror=alert(1)>';
const SHOTS = resolve(process.env.PINPOOL_SCREENSHOTS ?? 'build/status-page');

/**
 * How long a wait for the page may take before it fails naming what it waited for: under the
 * test's own timeout (60 s, vitest.config.mts), so a failure says which wait, not just "timed out".
 * The page reads every second at most; this is tens of reads on the busiest machine.
 */
const WAIT_MS = 45_000;
const UNTIL = { timeout: WAIT_MS, interval: 50 };

const run = chromiumPath !== undefined || browserRequired;

let browser: Browser | undefined;
let controller: Controller;
let server: PinpoolServer | undefined;
let url: string;

beforeAll(async () => {
  if (!run) return;
  if (chromiumPath === undefined) throw new Error(noBrowser);
  controller = createController();
  controller.register('fast', pool(pageable({ name: 'fast-leaf' }), { name: 'fast' }));
  controller.register('plain', pageable({ name: 'plain' }));
  controller.register('hostile', pool(pageable({ name: HOSTILE }), { name: HOSTILE }));
  controller.scope('ingest', 'fast');
  controller.scope('batch', 'plain');
  const s = createServer({ controller, port: 0, adminToken: TOKEN });
  server = s;
  // A route of the scope `ingest`: which handler its requests allocate from.
  await s.app.register(pinpoolScope, { controller });
  s.app.post('/work', { config: { pinpool: 'ingest' } }, async () => {
    const buf = controller.alloc(4096);
    const handler = buf.handler.name;
    buf.free();
    return { handler };
  });
  url = await s.listen();
  browser = await launchBrowser();
  mkdirSync(SHOTS, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

/** A new browser window: its own storage, the size and colours the screenshots are made at. */
function newContext(): Promise<BrowserContext> {
  if (browser === undefined) throw new Error('no browser: beforeAll did not start one');
  return browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
}

interface Opened {
  page: Page;
  /** Console errors, page errors, failed requests, error answers and dialogs, as text. */
  problems: string[];
  /** Every URL the page requested. */
  requested: string[];
}

/** Opens the page in a new tab of `context` (a new window by default), recording every problem. */
async function open(context?: BrowserContext, path = '/'): Promise<Opened> {
  const page = await (context ?? (await newContext())).newPage();
  page.setDefaultTimeout(WAIT_MS);
  const problems: string[] = [];
  const requested: string[] = [];
  page.on('request', (r) => requested.push(r.url()));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) =>
    problems.push(`failed: ${r.url()} ${r.failure()?.errorText ?? ''}`),
  );
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`${r.status()}: ${r.url()}`);
  });
  page.on('dialog', (d) => {
    problems.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  await page.goto(url + path);
  await page.locator('#live', { hasText: /^live/ }).waitFor();
  return { page, problems, requested };
}

/** The names of a chain's links, depth first, as the page lists them. */
function chainNames(h: Handler): string[] {
  return [h.name, ...h.upstreams.flatMap(chainNames)];
}

/** The handler a request of the scope `ingest` allocated from. */
async function ingestHandler(): Promise<string> {
  const res = await fetch(`${url}/work`, { method: 'POST' });
  return ((await res.json()) as { handler: string }).handler;
}

describe.skipIf(!run)('the status page in Chromium', () => {
  it('loads with no console error and no failed request, and draws the default chain', async () => {
    const { page, problems } = await open();
    const cards = page.locator('#chains .chain');
    await expect.poll(() => cards.count(), UNTIL).toBe(4); // fast, plain, hostile, and the default
    const byDefault = page.locator('#chains .chain', {
      has: page.locator('.tag', { hasText: 'used outside scopes' }),
    });
    expect(await byDefault.getAttribute('data-name')).toBe('(default)'); // not registered here
    expect(await byDefault.locator('.link .name').allTextContents()).toEqual(
      chainNames(controller.defaultHandler()),
    );
    // Each link has its bar; a fallback names its primary and its fallback.
    expect(await byDefault.locator('.link .bar').count()).toBe(
      chainNames(controller.defaultHandler()).length,
    );
    expect(await page.locator('#version').textContent()).toMatch(/^\d+\.\d+\.\d+/);
    await page.screenshot({ path: join(SHOTS, 'status-idle.png'), fullPage: true });
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it('shows a handler named like markup as text', async () => {
    const { page, problems } = await open();
    const name = page.locator('#chains .link .name', { hasText: HOSTILE });
    await expect.poll(() => name.count(), UNTIL).toBe(2); // the pool and its leaf
    expect(await name.first().textContent()).toBe(HOSTILE);
    expect(await page.locator('img').count()).toBe(0);
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it('moves the bytes-in-use chart under the demo workload', async () => {
    const { page, problems } = await open();
    await page.locator('#interval').selectOption('500'); // the page's fastest refresh
    const demo = startDemo({ controller, names: ['ingest', 'batch', 'fast'], intervalMs: 50 });
    try {
      // A line with ten points at different heights: bytes in use moved between reads.
      const moved = async () => {
        for (const line of await page.locator('#chart-bytes polyline').all()) {
          const ys = ((await line.getAttribute('points')) ?? '')
            .split(' ')
            .map((p) => p.split(',')[1]);
          if (ys.length >= 10 && new Set(ys).size >= 2) return true;
        }
        return false;
      };
      await expect.poll(moved, UNTIL).toBe(true);
      const allocationsPerSecond = () => page.locator('#chart-allocs').getAttribute('data-max');
      await expect.poll(async () => Number(await allocationsPerSecond()), UNTIL).toBeGreaterThan(0);
      await page.screenshot({ path: join(SHOTS, 'status-demo.png'), fullPage: true });
    } finally {
      demo.stop();
    }
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it('offers no control without the token, and the API refuses a request without it', async () => {
    const { page } = await open();
    await page.locator('#token-form').waitFor();
    expect(await page.locator('#scopes tbody tr').count()).toBe(2);
    expect(
      await page.locator('#scopes tbody select, #scopes tbody button, #chains button').count(),
    ).toBe(0);
    const statuses = await page.evaluate(async () => {
      const put = (headers: Record<string, string>) =>
        fetch('/v1/scopes/ingest', {
          method: 'PUT',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify({ handler: 'plain' }),
        }).then((r) => r.status);
      return [await put({}), await put({ authorization: 'Bearer not-the-token' })];
    });
    expect(statuses).toEqual([401, 401]);
    expect(controller.scopes().find((s) => s.name === 'ingest')?.handler).toBe('fast');

    // A wrong token unlocks nothing.
    await page.locator('#token').fill('not-the-token');
    await page.locator('#token-form button').click();
    await page.locator('#admin-message', { hasText: 'refused the token' }).waitFor();
    expect(await page.locator('#scopes tbody select').count()).toBe(0);
    await page.context().close();
  });

  it('says the controls are off on a service without a token', async () => {
    const off = createServer({ controller, port: 0 });
    const offUrl = await off.listen();
    try {
      const page = await (await newContext()).newPage();
      page.setDefaultTimeout(WAIT_MS);
      await page.goto(offUrl);
      await page.locator('#admin-off').waitFor();
      expect(await page.locator('#token-form').isHidden()).toBe(true);
      const status = await page.evaluate(() =>
        fetch('/v1/default', { method: 'PUT' }).then((r) => r.status),
      );
      expect(status).toBe(404);
      await page.context().close();
    } finally {
      await off.close();
    }
  });

  it('with the token, switches a scope once confirmed: the row, a marker, the next requests', async () => {
    expect(await ingestHandler()).toBe('fast');
    const context = await newContext();
    const { page, problems, requested } = await open(context);
    // Under the demo workload, so the charts show the scope's bytes move from one handler to
    // the other: some reads before the switch, some after.
    await page.locator('#interval').selectOption('500');
    const demo = startDemo({ controller, names: ['ingest', 'batch'], intervalMs: 50 });
    try {
      await switchUnderLoad(page, problems);
      // The token never appeared in an address the page asked for.
      expect(requested.length).toBeGreaterThan(10);
      for (const address of requested) expect(address).not.toContain(TOKEN);
      // Another tab of the same browser has no token (sessionStorage is per tab)...
      const other = await open(context);
      await other.page.locator('#token-form').waitFor();
      expect(await other.page.locator('#scopes tbody select').count()).toBe(0);
      // ...and draws the switch it did not see, at its time, from the service's list.
      await other.page
        .locator('#chart-bytes .marker-label', { hasText: 'ingest: fast → plain' })
        .waitFor();
      await other.page.close();
    } finally {
      demo.stop();
    }
    await context.close();
  });
  // After the switch test: a page opened from here on draws the switches made before it.
  it('marks every switch: two between two reads, one made in code, and one it did not see', async () => {
    const { page, problems } = await open();
    await page.locator('#interval').selectOption('0'); // paused: nothing is read meanwhile
    const put = (scope: string, handler: string) =>
      fetch(`${url}/v1/scopes/${scope}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ handler }),
      }).then((r) => r.status);
    const before = controller.scopes().find((s) => s.name === 'ingest')?.handler ?? '';
    const other = before === 'fast' ? 'plain' : 'fast';
    expect([await put('ingest', other), await put('ingest', before)]).toEqual([200, 200]);
    controller.switch('batch', 'fast'); // in code: no time, no request, only the count
    await page.locator('#interval').selectOption('500');
    for (const text of [
      `ingest: ${before} → ${other}`,
      `ingest: ${other} → ${before}`,
      'batch: → fast',
    ])
      await page.locator('#chart-bytes .marker-label', { hasText: text }).first().waitFor();
    controller.switch('batch', 'plain');
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it('says so when the service stops answering, and marks a restart', async () => {
    const { page } = await open();
    await page.locator('#interval').selectOption('500');
    // Reads that never get an answer: the page gives up on each after 3 s and says so.
    await page.route('**/v1/status', () => undefined);
    await page.locator('#live.down', { hasText: 'no answer from the service' }).waitFor();
    // Answers again, from a process that started later: a marker, and no rates across it.
    await page.unrouteAll({ behavior: 'ignoreErrors' });
    await page.route('**/v1/status', async (route) => {
      const res = await route.fetch();
      const json = (await res.json()) as { startedAt: number };
      await route.fulfill({ response: res, json: { ...json, startedAt: json.startedAt + 1 } });
    });
    await page
      .locator('#chart-bytes .marker-label', { hasText: 'service restarted' })
      .first()
      .waitFor();
    await page.locator('#live:not(.down)', { hasText: /^live/ }).waitFor();
    await page.context().close();
  });
});

/** The most points a line of the bytes-in-use chart has: how many reads the page has drawn. */
async function pointsDrawn(page: Page): Promise<number> {
  let most = 0;
  for (const line of await page.locator('#chart-bytes polyline').all())
    most = Math.max(most, ((await line.getAttribute('points')) ?? '').split(' ').length);
  return most;
}

async function switchUnderLoad(page: Page, problems: string[]): Promise<void> {
  await page.locator('#token').fill(TOKEN);
  await page.locator('#token-form button').click();
  const row = page.locator('#scopes tbody tr[data-scope="ingest"]');
  await row.locator('select').waitFor();
  expect(page.url()).not.toContain(TOKEN);
  expect(await page.evaluate(`sessionStorage.getItem('pinpool.adminToken')`)).toBe(TOKEN);

  await expect.poll(() => pointsDrawn(page), UNTIL).toBeGreaterThanOrEqual(8);
  await row.locator('select').selectOption('plain');
  await row.locator('button.switch').click();
  await expect
    .poll(() => row.locator('.confirm').textContent(), UNTIL)
    .toContain('switch ingest from fast to plain?');
  expect(controller.scopes().find((s) => s.name === 'ingest')?.handler).toBe('fast'); // not yet
  await row.locator('button.confirm-switch').click();

  await row.locator('td:nth-child(2)', { hasText: /^plain$/ }).waitFor();
  await row.locator('td', { hasText: 'fast → plain' }).waitFor();
  const marker = page.locator('#chart-bytes .marker-label', { hasText: 'ingest: fast → plain' });
  await marker.waitFor();
  expect(await page.locator('#chart-allocs line.marker').count()).toBe(1);
  await page.locator('#admin-message', { hasText: 'switched ingest from fast to plain' }).waitFor();
  expect(await ingestHandler()).toBe('plain');
  const atSwitch = await pointsDrawn(page);
  await expect.poll(() => pointsDrawn(page), UNTIL).toBeGreaterThanOrEqual(atSwitch + 8);
  await page.screenshot({ path: join(SHOTS, 'status-switched.png'), fullPage: true });

  // Trim, from the handler's card.
  await page.locator('#chains .chain[data-name="fast"] button').click();
  await page.locator('#admin-message', { hasText: /^trimmed fast: / }).waitFor();

  // The token stays in this tab through a reload.
  await page.reload();
  await row.locator('select').waitFor();

  expect(problems).toEqual([]);
}
