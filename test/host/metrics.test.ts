import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  collectMetrics,
  Controller,
  createController,
  fallback,
  limit,
  pageable,
  pool,
} from 'pinpool';

function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  if (line === undefined) throw new Error(`no series ${series} in\n${text}`);
  return Number(line.slice(series.length + 1));
}

function setup() {
  const c = createController();
  const p = pool(pageable({ name: 'leaf' }), { name: 'cache' });
  c.register('cache', p);
  const f = fallback(
    limit(pageable({ name: 'small' }), { maxBytes: 1000, name: 'capped' }),
    pageable({ name: 'spill' }),
    { name: 'chain' },
  );
  c.register('chain', f);
  return { c, p, f };
}

describe('collectMetrics', () => {
  it('reports live statistics of every reachable handler at scrape time', async () => {
    const { c, p, f } = setup();
    const registry = collectMetrics({ controller: c });
    const a = p.alloc(4096);
    f.alloc(800).free();
    f.alloc(2000).free();
    let text = await registry.metrics();
    expect(value(text, 'pinpool_bytes_in_use{handler="cache",kind="pool"}')).toBe(4096);
    expect(value(text, 'pinpool_allocations_total{handler="cache",kind="pool"}')).toBe(1);
    expect(value(text, 'pinpool_allocated_bytes_total{handler="chain",kind="fallback"}')).toBe(
      2800,
    );
    expect(
      value(
        text,
        'pinpool_fallbacks_total{handler="chain",from="capped",to="spill",reason="out-of-memory"}',
      ),
    ).toBe(1);
    expect(
      value(text, 'pinpool_failures_total{handler="capped",kind="limit",reason="limit"}'),
    ).toBe(1);
    // Limits and the default chain's page-locking leaves report their caps; nothing else does.
    const caps = text.split('\n').filter((l) => l.startsWith('pinpool_cap_bytes'));
    expect(caps).toContain('pinpool_cap_bytes{handler="capped",kind="limit"} 1000');
    for (const l of caps) expect(l).toMatch(/kind="(limit|pinned|locked)"/);
    expect(value(text, 'pinpool_upstream_allocs_total{handler="cache",kind="pool"}')).toBe(1);
    expect(
      value(text, 'pinpool_reserved_bytes{handler="cache",kind="pool"}'),
    ).toBeGreaterThanOrEqual(4096);
    expect(text).toMatch(
      /^pinpool_info\{version="\d+\.\d+\.\d+",cuda="false",napi_version="8"\} 1$/m,
    );
    expect(value(text, 'pinpool_cuda_devices')).toBe(0);
    a.free();
    text = await registry.metrics();
    expect(value(text, 'pinpool_bytes_in_use{handler="cache",kind="pool"}')).toBe(0);
    expect(value(text, 'pinpool_frees_total{handler="cache",kind="pool"}')).toBe(1);
    expect(value(text, 'pinpool_bytes_peak{handler="cache",kind="pool"}')).toBe(4096);
  });

  it('gives every metric help text, base units and _total on counters', async () => {
    const { c } = setup();
    const registry = collectMetrics({ controller: c });
    const json = await registry.getMetricsAsJSON();
    for (const m of json) {
      expect(m.help.length).toBeGreaterThan(10);
      if (String(m.type) === 'counter') expect(m.name).toMatch(/_total$/);
      else expect(m.name).not.toMatch(/_total$/);
      expect(m.name).not.toMatch(/_(kilo|mega|giga)?bytes_.*bytes|_ms$|_milliseconds/);
    }
  });

  it('registers nothing on the global registry, and twice on one registry is safe', async () => {
    const { register } = await import('prom-client');
    const before = register.getMetricsAsArray().length;
    const { c } = setup();
    const registry = new Registry();
    expect(collectMetrics({ registry, controller: c })).toBe(registry);
    expect(collectMetrics({ registry, controller: c })).toBe(registry);
    expect(register.getMetricsAsArray().length).toBe(before);
    expect(await registry.metrics()).toContain('pinpool_bytes_in_use');
  });

  it('takes one native snapshot per scrape', async () => {
    const { c, p } = setup();
    const registry = collectMetrics({ controller: c });
    let calls = 0;
    const original = p.stats.bind(p);
    p.stats = () => (calls++, original());
    await registry.metrics();
    expect(calls).toBe(1);
    await registry.metrics();
    expect(calls).toBe(2);
  });

  it('adds default labels and a prefix; refuses a bad prefix', async () => {
    const { c } = setup();
    const registry = collectMetrics({
      controller: c,
      prefix: 'app_mem_',
      labels: { service: 'api' },
    });
    const text = await registry.metrics();
    // The caller's labels follow pinpool's own in every pinpool series, info's included.
    expect(text).toMatch(/^app_mem_bytes_in_use\{handler="cache",kind="pool",service="api"\} 0$/m);
    expect(text).toMatch(
      /^app_mem_info\{version="[^"]+",cuda="\w+",napi_version="\d+",service="api"\} 1$/m,
    );
    expect(text).toMatch(/^app_mem_cuda_devices\{service="api"\} \d+$/m);
    expect(() => collectMetrics({ controller: c, prefix: 'bad prefix' })).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
    );
  });

  it("leaves a registry's own metrics and default labels as they were (labels are pinpool's only)", async () => {
    const { c } = setup();
    const register = new Registry();
    register.setDefaultLabels({ service: 'mine', zone: 'a' });
    const requests = new Counter({
      name: 'app_requests_total',
      help: 'requests',
      labelNames: ['route'],
      registers: [register],
    });
    requests.inc({ route: '/x' }, 3);
    const before = await register.metrics();
    const defaultsBefore = {
      ...(register as unknown as { _defaultLabels: object })._defaultLabels,
    };
    // prom-client's spelling, `register`, is the same as `registry`.
    expect(collectMetrics({ register, controller: c, labels: { service: 'loader' } })).toBe(
      register,
    );
    const after = await register.metrics();
    expect((register as unknown as { _defaultLabels: object })._defaultLabels).toEqual(
      defaultsBefore,
    );
    // The application's own series are exactly as they were, line for line.
    const own = (text: string) => text.split('\n').filter((l) => l.includes('app_requests'));
    expect(own(after)).toEqual(own(before));
    expect(own(after)).toContain('app_requests_total{route="/x",service="mine",zone="a"} 3');
    // pinpool's series carry the caller's labels after their own, and the registry's other
    // defaults first, as prom-client adds them to every metric.
    expect(after).toMatch(
      /^pinpool_bytes_in_use\{zone="a",handler="cache",kind="pool",service="loader"\} 0$/m,
    );
  });

  it('refuses `register` and `registry` naming two registries, and labels pinpool uses itself', () => {
    const { c } = setup();
    const invalid = expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' });
    const a = new Registry();
    const b = new Registry();
    expect(() => collectMetrics({ registry: a, register: b, controller: c })).toThrow(invalid);
    for (const name of ['handler', 'kind', 'scope', 'reason', 'from', 'to', 'version'])
      expect(() => collectMetrics({ registry: a, controller: c, labels: { [name]: 'x' } })).toThrow(
        invalid,
      );
    expect(a.getMetricsAsArray()).toEqual([]);
    expect(b.getMetricsAsArray()).toEqual([]);
    // A registry given alone, not as { register }, says what to write.
    expect(() => collectMetrics(a as never)).toThrow(
      expect.objectContaining({
        code: 'ERR_PINPOOL_INVALID_ARGUMENT',
        message: expect.stringContaining('{ register }') as unknown,
      }),
    );
    expect(a.getMetricsAsArray()).toEqual([]);
    // The same registry under both names is one registry.
    expect(collectMetrics({ registry: a, register: a, controller: c })).toBe(a);
  });

  it('refuses a bad registry, labels or controller with a PinpoolError, registering nothing (found by the fuzzer)', async () => {
    const { c } = setup();
    const invalid = expect.objectContaining({
      name: 'PinpoolError',
      code: 'ERR_PINPOOL_INVALID_ARGUMENT',
    });
    const trap = new Proxy(
      {},
      {
        get() {
          throw new Error('trap');
        },
      },
    );
    for (const registry of [{}, 1, true, 'registry', trap, new Uint8Array(8)]) {
      expect(() => collectMetrics({ registry: registry as never, controller: c })).toThrow(invalid);
    }
    const registry = new Registry();
    const keysTrap = new Proxy(
      {},
      {
        ownKeys() {
          throw new Error('trap');
        },
      },
    );
    for (const labels of [
      5,
      [],
      keysTrap,
      { service: 5 },
      { 'bad name': 'x' },
      { __reserved: 'x' },
    ]) {
      expect(() => collectMetrics({ registry, controller: c, labels })).toThrow(invalid);
    }
    for (const controller of [{}, Object.create(Controller.prototype), new Proxy(c, {}), 1]) {
      expect(() => collectMetrics({ registry, controller: controller as never })).toThrow(invalid);
    }
    // A registry that has a metric of one of pinpool's names already is refused before any is added.
    new Gauge({ name: 'pinpool_frees_total', help: 'taken', registers: [registry] });
    expect(() => collectMetrics({ registry, controller: c, labels: { service: 'api' } })).toThrow(
      invalid,
    );
    expect(registry.getMetricsAsArray().map((m) => m.name)).toEqual(['pinpool_frees_total']);
    expect(await registry.metrics()).not.toContain('service="api"');
  });

  it('without prom-client installed: ERR_PINPOOL_UNAVAILABLE, saying how to install it', () => {
    // The library copied where no node_modules can be found.
    const root = mkdtempSync(join(tmpdir(), 'pinpool-no-prom-'));
    cpSync(join(__dirname, '..', '..', 'dist', 'src'), join(root, 'dist', 'src'), {
      recursive: true,
    });
    const out = execFileSync(
      process.execPath,
      [
        '-e',
        `
      const p = require(${JSON.stringify(join(root, 'dist', 'src', 'index.js'))});
      try { p.collectMetrics(); } catch (err) { console.log(JSON.stringify({ name: err.name, code: err.code, message: err.message })); }`,
      ],
      {
        env: {
          ...process.env,
          PINPOOL_NATIVE_PATH: join(__dirname, '..', '..', 'build', 'Release', 'pinpool.node'),
        },
        encoding: 'utf8',
      },
    );
    rmSync(root, { recursive: true, force: true });
    expect(JSON.parse(out)).toEqual({
      name: 'PinpoolError',
      code: 'ERR_PINPOOL_UNAVAILABLE',
      message: expect.stringMatching(/npm install prom-client/),
    });
  });

  it('labels two handlers of the same name apart', async () => {
    const c = createController();
    c.register('one', pool(pageable(), { name: 'twin' }));
    c.register('two', pool(pageable(), { name: 'twin' }));
    const text = await collectMetrics({ controller: c }).metrics();
    const twins = text
      .split('\n')
      .filter((l) => l.startsWith('pinpool_reserved_bytes{handler="twin'));
    expect(twins).toHaveLength(2);
    expect(new Set(twins.map((l) => l.split(',')[0])).size).toBe(2);
  });

  it('aggregates across node:cluster workers with AggregatorRegistry', async () => {
    const scrape = async () => {
      const { c, p } = setup();
      p.alloc(1000);
      return collectMetrics({ controller: c }).getMetricsAsJSON();
    };
    const merged = AggregatorRegistry.aggregate([await scrape(), await scrape()]);
    const text = await merged.metrics();
    expect(value(text, 'pinpool_bytes_in_use{handler="cache",kind="pool"}')).toBe(2000);
    expect(value(text, 'pinpool_cuda_devices')).toBe(0);
    expect(text).toMatch(/^pinpool_info\{.*\} 1$/m);
  });
});
