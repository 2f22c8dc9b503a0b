// The real /metrics output passes `promtool check metrics` (Prometheus's own parser and linter), and
// the monitoring/ files (alert rules, their unit tests, the Grafana dashboard) pass promtool and use
// only metric names a real scrape has.
// Skipped where promtool is not installed, unless PINPOOL_REQUIRE_PROMTOOL=1 (CI) makes that a failure.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { fallback, limit, pageable } from 'pinpool';
import { afterAll, describe, expect, it } from 'vitest';

import { request, testServer } from '../../support/server.js';

const found = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
const available = found.error === undefined && found.status === 0;
const required = process.env.PINPOOL_REQUIRE_PROMTOOL === '1';
const notFound = `PINPOOL_REQUIRE_PROMTOOL=1 but promtool did not run: ${found.error?.message ?? found.stderr}`;

const root = join(__dirname, '..', '..', '..');
const RULES = 'monitoring/pinpool-alerts.yml';
const RULE_TESTS = 'monitoring/pinpool-alerts.test.yml';
const DASHBOARD = 'monitoring/pinpool-dashboard.json';

const server = testServer();
afterAll(() => server.close());

/** promtool with the repository root as its working directory. */
function promtool(...args: string[]) {
  const run = spawnSync('promtool', args, { cwd: root, encoding: 'utf8' });
  expect(run.error).toBeUndefined();
  return { status: run.status, output: run.stdout + run.stderr };
}

it.skipIf(!available && !required)('promtool check metrics accepts /metrics', async () => {
  expect(available, notFound).toBe(true);
  // Every series kind: fallbacks, failures, pools, a limit's cap, scopes, several labels.
  const body = await fullScrape();
  expect(body).toContain('pinpool_scope_info{scope="ingest",handler="plain"} 1');
  expect(body).toContain('pinpool_cap_bytes{handler="capped-limit",kind="limit"} 4096');
  const check = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
  expect(check.error).toBeUndefined();
  expect({ status: check.status, output: check.stdout + check.stderr }).toEqual({
    status: 0,
    output: '',
  });
});

// --- monitoring/ ---------------------------------------------------------------------------------

/**
 * The `expr` of every rule in a Prometheus rules file: inline (`expr: a > 1`, quoted or not) or a
 * block scalar (`expr: |` and the lines indented under it). The caller checks that there is one
 * per rule, so a form this does not read fails the test instead of hiding an expression.
 */
function ruleExprs(yaml: string): string[] {
  const lines = yaml.split('\n');
  const indentOf = (line: string) => line.length - line.trimStart().length;
  const exprs: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)(?:-\s+)?expr:\s*(.*?)\s*$/.exec(lines[i]!);
    if (m === null) continue;
    const indent = m[1]!.length;
    const rest = m[2]!;
    if (/^[|>][-+]?$/.test(rest)) {
      const body: string[] = [];
      while (
        i + 1 < lines.length &&
        (lines[i + 1]!.trim() === '' || indentOf(lines[i + 1]!) > indent)
      )
        body.push(lines[++i]!);
      exprs.push(body.join('\n'));
    } else {
      exprs.push(rest.replace(/^(['"])(.*)\1$/, '$2'));
    }
  }
  return exprs;
}

/** The rules of a rules file by kind: `- alert: Name` and `- record: name`. */
function ruleNames(yaml: string, kind: 'alert' | 'record'): string[] {
  return [...yaml.matchAll(new RegExp(`^\\s*-\\s+${kind}:\\s*(\\S+)\\s*$`, 'gm'))].map(
    (m) => m[1]!,
  );
}

/** The parts of a Grafana dashboard (JSON) these tests read; all optional, as JSON gives no promise. */
interface Panel {
  id?: number;
  type?: string;
  title?: string;
  targets?: { expr?: unknown; datasource?: unknown }[];
  panels?: Panel[];
}
interface Dashboard {
  uid?: string;
  schemaVersion?: number;
  panels?: Panel[];
  templating?: { list?: { name?: string; type?: string; query?: string | { query?: unknown } }[] };
}

/** Every query string of a Grafana dashboard: panel targets (rows' nested panels too) and template variables. */
function dashboardExprs(dashboard: Dashboard): string[] {
  const exprs: string[] = [];
  const visit = (panels: Panel[] | undefined) => {
    for (const p of panels ?? []) {
      for (const t of p.targets ?? []) if (typeof t.expr === 'string') exprs.push(t.expr);
      visit(p.panels);
    }
  };
  visit(dashboard.panels);
  for (const v of dashboard.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    if (typeof q === 'string') exprs.push(q);
  }
  return exprs;
}

/**
 * pinpool metric names in PromQL: `pinpool_` tokens not part of a longer name, so recording-rule
 * names (`pinpool:failures:increase5m`, `x:pinpool_y:rate5m`) are not taken for exported ones.
 */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/(?<![\w:])pinpool_[a-z0-9_]*[a-z0-9](?![\w:])/g)].map((m) => m[0]);
}

/** Metric names (and family names) in a text-format scrape. */
function scrapedNames(body: string): Set<string> {
  const names = new Set<string>();
  for (const line of body.split('\n')) {
    const family = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) /.exec(line);
    if (family !== null) names.add(family[1]!);
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (sample !== null) names.add(sample[1]!);
  }
  return names;
}

/** Names in `used` a scrape lacks; a histogram or summary's _bucket/_sum/_count is its family's. */
function missingFrom(scraped: Set<string>, used: Iterable<string>): string[] {
  const missing = new Set<string>();
  for (const name of used) {
    if (scraped.has(name) || scraped.has(name.replace(/_(bucket|sum|count)$/, ''))) continue;
    missing.add(name);
  }
  return [...missing].sort();
}

/** A scrape of the test server with every series pinpool exports made to appear. */
async function fullScrape(): Promise<string> {
  const c = server.controller;
  if (!c.names().includes('capped')) {
    // A fallback over a capped primary: failures (reason limit) and fallbacks whatever the host
    // offers (the default chain makes them only where CUDA is missing).
    c.register(
      'capped',
      fallback(
        limit(pageable({ name: 'capped-leaf' }), { maxBytes: 4096, name: 'capped-limit' }),
        pageable({ name: 'capped-spill' }),
        { name: 'capped' },
      ),
    );
    c.get('capped').alloc(8192).free();
    c.get('cache')
      .alloc(1 << 20)
      .free();
    c.defaultHandler().alloc(4096).free();
    // A named scope that allocated, holds a buffer and was switched once.
    c.scope('ingest', 'cache');
    c.run('ingest', () => c.alloc(4096).free());
    c.switch('ingest', 'plain');
  }
  const res = await request(server, { method: 'GET', url: '/metrics' });
  expect(res.statusCode).toBe(200);
  return res.body;
}

describe('monitoring/', () => {
  const rules = readFileSync(join(root, RULES), 'utf8');
  const dashboardText = readFileSync(join(root, DASHBOARD), 'utf8');

  it.skipIf(!available && !required)('promtool check rules accepts the alert rules', () => {
    expect(available, notFound).toBe(true);
    const check = promtool('check', 'rules', RULES);
    expect(check.output).toContain('SUCCESS');
    expect(check).toMatchObject({ status: 0 });
  });

  it.skipIf(!available && !required)('promtool test rules passes the rules unit tests', () => {
    expect(available, notFound).toBe(true);
    const check = promtool('test', 'rules', RULE_TESTS);
    expect(check.output).toContain('SUCCESS');
    expect(check).toMatchObject({ status: 0 });
    // Every alert is tested.
    const tests = readFileSync(join(root, RULE_TESTS), 'utf8');
    const tested = new Set([...tests.matchAll(/^\s*alertname:\s*(\S+)\s*$/gm)].map((m) => m[1]));
    expect(ruleNames(rules, 'alert').filter((a) => !tested.has(a))).toEqual([]);
  });

  it.skipIf(!available && !required)('promtool parses every dashboard query', () => {
    expect(available, notFound).toBe(true);
    const dashboard = JSON.parse(dashboardText) as Dashboard;
    // Grafana's own variables as Grafana fills them in, and label_values(selector, label) (a
    // Grafana function, not PromQL) as the selector it queries.
    const exprs = dashboardExprs(dashboard).map((e) =>
      e
        .replace(/\$__(rate_interval|interval|range)\b/g, '5m')
        .replace(/^\s*label_values\(\s*(.+?)\s*,\s*[a-zA-Z_]\w*\s*\)\s*$/s, '$1'),
    );
    const dir = mkdtempSync(join(tmpdir(), 'pinpool-dashboard-'));
    try {
      const file = join(dir, 'dashboard-rules.yml');
      const body = exprs
        .map((e, i) => `      - record: dashboard:expr_${i}\n        expr: ${JSON.stringify(e)}\n`)
        .join('');
      writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${body}`);
      const check = promtool('check', 'rules', file);
      expect(check.output).toContain(`SUCCESS: ${exprs.length} rules found`);
      expect(check).toMatchObject({ status: 0 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the dashboard is a Grafana dashboard over a chosen Prometheus data source', () => {
    const dashboard = JSON.parse(dashboardText) as Dashboard;
    expect(dashboard).toMatchObject({ uid: 'pinpool', schemaVersion: expect.any(Number) });
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const variables = dashboard.templating?.list ?? [];
    expect(variables.find((v) => v.name === 'datasource')).toMatchObject({
      type: 'datasource',
      query: 'prometheus',
    });
    expect(variables.map((v) => v.name)).toEqual(expect.arrayContaining(['job', 'instance']));
    const panels = (dashboard.panels ?? []).filter((p) => p.type !== 'row');
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    for (const p of panels) {
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets ?? [])
        expect(t.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
    }
  });

  it('the rules and the dashboard use only metric names /metrics has', async () => {
    const exprs = ruleExprs(rules);
    // One expression per rule, or ruleExprs() missed a form.
    expect(exprs.length).toBe(ruleNames(rules, 'alert').length + ruleNames(rules, 'record').length);
    // Recorded series the alerts use are recorded here.
    const recorded = new Set(ruleNames(rules, 'record'));
    const usedRecorded = exprs.flatMap((e) =>
      [...e.matchAll(/(?<![\w:])[a-z_]*:[a-z0-9_:]*[a-z0-9](?![\w:])/g)].map((m) => m[0]),
    );
    expect(usedRecorded.filter((r) => !recorded.has(r))).toEqual([]);

    const dashboard = dashboardExprs(JSON.parse(dashboardText) as Dashboard);
    expect(dashboard.length).toBeGreaterThan(0);
    const used = new Set([...exprs, ...dashboard].flatMap(metricNames));
    // The series both files are about: a name dropped from either shows here.
    expect([...used]).toEqual(
      expect.arrayContaining([
        'pinpool_fallbacks_total',
        'pinpool_failures_total',
        'pinpool_reserved_bytes',
        'pinpool_cached_bytes',
        'pinpool_cap_bytes',
        'pinpool_upstream_allocs_total',
        'pinpool_upstream_frees_total',
        'pinpool_gc_released_total',
        'pinpool_invalid_frees_total',
        'pinpool_orphaned_bytes',
        'pinpool_scope_info',
        'pinpool_scope_bytes_in_use',
        'pinpool_scope_buffers_in_use',
        'pinpool_scope_allocations_total',
        'pinpool_scope_allocated_bytes_total',
        'pinpool_scope_switches_total',
      ]),
    );
    expect(missingFrom(scrapedNames(await fullScrape()), used)).toEqual([]);
  });
});
