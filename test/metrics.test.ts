import { AggregatorRegistry, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { collectMetrics, createController, fallback, limit, pageable, pool } from 'pinpool';

function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  if (line === undefined) throw new Error(`no series ${series} in\n${text}`);
  return Number(line.slice(series.length + 1));
}

function setup() {
  const c = createController();
  const p = pool(pageable({ name: 'leaf' }), { name: 'cache' });
  c.register('cache', p);
  const f = fallback(limit(pageable({ name: 'small' }), { maxBytes: 1000, name: 'capped' }), pageable({ name: 'spill' }), { name: 'chain' });
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
    expect(value(text, 'pinpool_allocated_bytes_total{handler="chain",kind="fallback"}')).toBe(2800);
    expect(value(text, 'pinpool_fallbacks_total{handler="chain",from="capped",to="spill",reason="out-of-memory"}')).toBe(1);
    expect(value(text, 'pinpool_failures_total{handler="capped",kind="limit",reason="limit"}')).toBe(1);
    expect(value(text, 'pinpool_upstream_calls_total{handler="cache",kind="pool",op="alloc"}')).toBe(1);
    expect(value(text, 'pinpool_pool_reserved_bytes{handler="cache",kind="pool"}')).toBeGreaterThanOrEqual(4096);
    expect(text).toMatch(/^pinpool_info\{version="\d+\.\d+\.\d+",cuda="false",napi_version="8"\} 1$/m);
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
    const registry = collectMetrics({ controller: c, prefix: 'app_mem_', labels: { service: 'api' } });
    const text = await registry.metrics();
    expect(text).toMatch(/^app_mem_bytes_in_use\{handler="cache",kind="pool",service="api"\} 0$/m);
    expect(() => collectMetrics({ controller: c, prefix: 'bad prefix' })).toThrow(expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }));
  });

  it('labels two handlers of the same name apart', async () => {
    const c = createController();
    c.register('one', pool(pageable(), { name: 'twin' }));
    c.register('two', pool(pageable(), { name: 'twin' }));
    const text = await collectMetrics({ controller: c }).metrics();
    const twins = text.split('\n').filter((l) => l.startsWith('pinpool_pool_reserved_bytes{handler="twin'));
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
