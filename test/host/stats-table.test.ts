// The statistics table (PINPOOL_STATS in native/core/stats.hpp) is the only list of statistics:
// handler.stats(), the HandlerStats interface and collectMetrics() are checked against it here,
// entry by entry, and nothing may be outside it. Nothing below names a statistic.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  collectMetrics,
  createController,
  defaultHandler,
  fallback,
  type Handler,
  limit,
  locked,
  pageable,
  pool,
  shared,
  sharedRegion,
} from 'pinpool';

import { regionName, removeRegions } from '../support/shared-regions.js';
import { binding } from '../../dist/src/boundary/native.js';

const table = binding.statsLayout();
const snake = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const metricName = (prefix: string, s: { stem: string; type: string }) =>
  `${prefix}${s.stem}${s.type === 'counter' ? '_total' : ''}`;
/** The histogram whose sum a statistic is (`<histogram>Sum`), if any: no metric of its own. */
const histogramOf = (s: { name: string }) =>
  table.find((h) => h.bounds !== undefined && s.name === `${h.name}Sum`);

/** Handlers of every kind the tables name, with failures and fallbacks counted. */
function setup() {
  const c = createController();
  const capped = limit(pageable({ name: 'small' }), { maxBytes: 1000, name: 'capped' });
  c.register(
    'chain',
    fallback(capped, pool(pageable({ name: 'spill' }), { name: 'cache' }), { name: 'chain' }),
  );
  c.register('own-locked', locked({ name: 'own-locked' }));
  const region = shared({
    region: regionName('stats-table'),
    bytes: 1 << 20,
    name: 'region',
  });
  c.register('region', region);
  region.alloc(100);
  c.scope('work', 'chain');
  c.run('work', () => {
    c.get('chain').alloc(800).free();
    c.get('chain').alloc(2000).free();
  });
  const handlers = new Map<string, Handler>();
  const visit = (h: Handler) => {
    handlers.set(h.name, h);
    h.upstreams.forEach(visit);
  };
  c.names().forEach((n) => visit(c.get(n)));
  visit(defaultHandler());
  // Names are unique here, so each is its metrics' `handler` label (no `#id`).
  return { c, handlers: [...handlers.values()] };
}

afterAll(removeRegions);

describe('the statistics table', () => {
  it('is well formed: unique camelCase names, stems their snake_case, slots that tile the snapshot', () => {
    expect(table.length).toBeGreaterThan(10);
    expect(new Set(table.map((s) => s.name)).size).toBe(table.length);
    let next = 0;
    for (const s of table) {
      expect(s.name, s.name).toMatch(/^[a-z][a-zA-Z]*$/);
      expect(s.stem, s.name).toBe(snake(s.name));
      expect(['counter', 'gauge', 'histogram'], s.name).toContain(s.type);
      expect(['sum', 'max', 'first'], s.name).toContain(s.aggregator);
      expect(s.help.length, s.name).toBeGreaterThan(10);
      expect(s.slot, s.name).toBe(next);
      next += s.width;
      const byReason = s.labels.at(-1) === 'reason';
      const histogram = s.type === 'histogram';
      expect(s.reasons?.length ?? s.bounds?.length ?? 1, s.name).toBe(s.width);
      expect(s.reasons !== undefined, s.name).toBe(byReason);
      // A histogram: bucket bounds that rise to Infinity, an `le` label, and a sum statistic.
      expect(s.bounds !== undefined, s.name).toBe(histogram);
      expect(s.labels.at(-1) === 'le', s.name).toBe(histogram);
      if (histogram) {
        expect(s.bounds!.at(-1), s.name).toBe(Infinity);
        expect(
          [...s.bounds!].sort((a, b) => a - b),
          s.name,
        ).toEqual(s.bounds);
        expect(table.find((t) => t.name === `${s.name}Sum`)?.type, s.name).toBe('counter');
      }
      expect(
        s.labels.length === 0 ||
          s.labels.every((l) => ['kind', 'reason', 'from', 'to', 'le'].includes(l)),
        s.name,
      ).toBe(true);
    }
  });

  it('HandlerStats declares exactly its names, in its order, each documented', () => {
    const source = readFileSync(join(__dirname, '..', '..', 'src', 'memory', 'stats.ts'), 'utf8');
    const body = /export interface HandlerStats \{\n([\s\S]*?)\n\}/.exec(source)![1]!.split('\n');
    const fields = body.flatMap((line, i) => {
      const m = /^ {2}(\w+): /.exec(line);
      if (m === null) return [];
      expect(body[i - 1], `${String(m[1])} has no doc comment`).toMatch(/\*\/$/);
      return [m[1]];
    });
    expect(fields).toEqual(table.map((s) => s.name));
  });

  it('handler.stats() has every field of the table, and nothing else', () => {
    for (const h of setup().handlers) {
      const stats = h.stats() as unknown as Record<string, unknown>;
      expect(Object.keys(stats), h.name).toEqual(table.map((s) => s.name));
      for (const s of table) {
        const value = stats[s.name];
        if (s.bounds !== undefined) {
          // Cumulative counts, one per bound, as Prometheus writes them.
          const buckets = value as { le: number; count: number }[];
          expect(
            buckets.map((b) => b.le),
            `${h.name}.${s.name}`,
          ).toEqual(s.bounds);
          const list = buckets.map((b) => b.count);
          expect(
            [...list].sort((a, b) => a - b),
            `${h.name}.${s.name}`,
          ).toEqual(list);
        } else if (s.reasons === undefined) {
          expect(typeof value, `${h.name}.${s.name}`).toBe('number');
        } else {
          for (const [reason, n] of Object.entries(value as Record<string, number>)) {
            expect(s.reasons, `${h.name}.${s.name}`).toContain(reason);
            expect(n).toBeGreaterThan(0);
          }
        }
      }
    }
  });

  it.each(['pinpool_', 'app_mem_'])(
    'each entry is a metric %s<stem>[_total] with its help, type, aggregator, labels and values; nothing else is',
    async (prefix) => {
      const { c, handlers } = setup();
      const registry = collectMetrics({
        controller: c,
        ...(prefix === 'pinpool_' ? {} : { prefix }),
      });
      const json = await registry.getMetricsAsJSON();
      const byName = new Map(json.map((m) => [m.name, m]));
      const stats = new Map(
        handlers.map((h) => [
          h.name,
          h.stats() as unknown as Record<string, number | Record<string, number>>,
        ]),
      );
      const kindOf = new Map(handlers.map((h) => [h.name, h.kind]));
      let reasonSeries = 0;
      let histogramSeries = 0;
      for (const s of table) {
        if (histogramOf(s) !== undefined) continue; // a series of its histogram (below)
        const metric = byName.get(metricName(prefix, s));
        expect(metric, metricName(prefix, s)).toBeDefined();
        expect({
          help: metric!.help,
          type: String(metric!.type),
          aggregator: metric!.aggregator,
        }).toEqual({ help: s.help, type: s.type, aggregator: s.aggregator });
        const reporting = handlers
          .filter((h) => s.kinds === null || s.kinds.includes(h.kind))
          .map((h) => h.name);
        if (s.bounds !== undefined) {
          // <stem>_bucket per bound, then _sum (the `<name>Sum` statistic) and _count.
          const name = metricName(prefix, s);
          const sum = table.find((t) => t.name === `${s.name}Sum`)!.name;
          const expected = reporting.flatMap((h) => {
            const buckets = stats.get(h)![s.name] as unknown as { le: number; count: number }[];
            const base = { handler: h, kind: kindOf.get(h)! };
            return [
              ...buckets.map(({ le, count }) => ({
                metricName: `${name}_bucket`,
                labels: { ...base, le: le === Infinity ? '+Inf' : String(le) },
                value: count,
              })),
              { metricName: `${name}_sum`, labels: base, value: stats.get(h)![sum] },
              { metricName: `${name}_count`, labels: base, value: buckets.at(-1)!.count },
            ];
          });
          const byText = (a: object, b: object) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1);
          const got = metric!.values.map((v) => ({
            metricName: (v as { metricName?: string }).metricName,
            labels: v.labels,
            value: v.value,
          }));
          expect(got.sort(byText), name).toEqual(expected.sort(byText));
          histogramSeries += expected.length;
          continue;
        }
        for (const v of metric!.values) {
          const labels = v.labels as Record<string, string>;
          expect(Object.keys(labels), metric!.name).toEqual(['handler', ...s.labels]);
          expect(reporting, metric!.name).toContain(labels.handler);
          if (labels.kind !== undefined) expect(labels.kind).toBe(kindOf.get(labels.handler!));
          const value = stats.get(labels.handler!)![s.name]!;
          if (s.reasons === undefined) {
            expect(v.value, `${metric!.name} ${String(labels.handler)}`).toBe(value);
          } else {
            expect(
              v.value,
              `${metric!.name} ${String(labels.handler)} ${String(labels.reason)}`,
            ).toBe((value as Record<string, number>)[labels.reason!]);
            reasonSeries++;
          }
        }
        // A plain statistic: one series per reporting handler. A per-reason one: one per non-zero reason.
        const expected =
          s.reasons === undefined
            ? reporting.length
            : reporting.reduce(
                (n, h) => n + Object.keys(stats.get(h)![s.name] as object).length,
                0,
              );
        expect(metric!.values, metric!.name).toHaveLength(expected);
      }
      expect(reasonSeries).toBeGreaterThan(0); // the setup made failures and fallbacks
      expect(histogramSeries).toBeGreaterThan(0); // the setup has pools
      // Beyond the table: the named scopes' metrics, named after controller.scopes()'s fields, and
      // the two process-wide ones.
      const scope = c.scopes()[0]! as unknown as Record<string, unknown>;
      const scopeMetrics = Object.keys(scope)
        .filter((k) => k !== 'name' && k !== 'handler')
        .map((k) => {
          const gauge = `${prefix}scope_${snake(k)}`;
          const metric = byName.get(gauge) ?? byName.get(`${gauge}_total`);
          expect(metric, gauge).toBeDefined();
          expect(String(metric!.type), metric!.name).toBe(
            metric!.name.endsWith('_total') ? 'counter' : 'gauge',
          );
          expect(
            metric!.values.map((v) => v.value),
            metric!.name,
          ).toEqual([scope[k]]);
          return metric!.name;
        });
      // And the shared region's, named after sharedRegion().stats' fields, one series each.
      const { region, stats: regionStats } = sharedRegion(
        handlers.find((h) => h.kind === 'shared')!,
      );
      const regionMetrics = Object.entries(regionStats).map(([k, value]) => {
        const gauge = `${prefix}shared_region_${snake(k)}`;
        const metric = byName.get(gauge) ?? byName.get(`${gauge}_total`);
        expect(metric, gauge).toBeDefined();
        expect(String(metric!.type), metric!.name).toBe(
          metric!.name.endsWith('_total') ? 'counter' : 'gauge',
        );
        // The region's own counts are the same in every process: a cluster shows them once.
        expect(metric!.aggregator, metric!.name).toBe(k.endsWith('Here') ? 'sum' : 'first');
        expect(metric!.values, metric!.name).toEqual([{ labels: { region }, value }]);
        return metric!.name;
      });
      const outside = [...byName.keys()].filter(
        (n) => !table.some((s) => histogramOf(s) === undefined && metricName(prefix, s) === n),
      );
      expect(outside.sort()).toEqual(
        [
          ...scopeMetrics,
          ...regionMetrics,
          `${prefix}scope_info`,
          `${prefix}cuda_devices`,
          `${prefix}info`,
        ].sort(),
      );
    },
  );
});
