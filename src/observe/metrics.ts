/**
 * Prometheus metrics (prom-client, a peer dependency). Values are read at scrape time from one
 * native statistics snapshot per scrape; the allocation path never touches prom-client.
 * Nothing is registered until collectMetrics() is called, and never on prom-client's global
 * registry unless it is passed in.
 */
import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';

import {
  Controller,
  controller as processController,
  type ScopeInfo,
} from '../scope/controller.js';
import { ErrorCode, PinpoolError } from '../boundary/errors.js';
import type { Handler } from '../memory/handler.js';
import { sharedRegion, type SharedRegionStats } from '../memory/shared.js';
import { info } from './info.js';
import { bucketLabel, statsTable, type HandlerStats } from '../memory/stats.js';
import type { NativeStat } from '../boundary/native.js';
import { checkOptions, invalid, isObject, optionsOf } from '../boundary/validate.js';

/**
 * Options of collectMetrics(): the registry, the metric prefix and labels, and whose handlers to
 * report.
 */
export interface MetricsOptions {
  /** Where to register. Default: a new Registry. */
  registry?: Prom.Registry<Prom.RegistryContentType>;
  /**
   * The same as `registry`, as prom-client's own collectors spell it
   * (`collectDefaultMetrics({ register })`). Give one of the two.
   */
  register?: Prom.Registry<Prom.RegistryContentType>;
  /** Metric name prefix. Default 'pinpool_'. */
  prefix?: string;
  /**
   * Labels added to pinpool's series only (e.g. { service: 'api' }), as prom-client's
   * collectDefaultMetrics({ labels }) does: the registry's own default labels and metrics are
   * left as they were. A name pinpool's series use already (handler, kind, scope...) is refused.
   */
  labels?: Record<string, string>;
  /** Whose handlers to report: every registered handler, the default, and their upstreams. */
  controller?: Controller;
}

interface Row {
  handler: Handler;
  /** The `handler` label: the name, with `#id` added when another reported handler has it too. */
  label: string;
  stats: HandlerStats;
}

interface Snapshot {
  handlers: Row[];
  /** The shared regions the reported handlers serve from, each once. */
  regions: { region: string; stats: SharedRegionStats }[];
  /** The controller's named scopes (anonymous run(handler) scopes are no series). */
  scopes: ScopeInfo[];
}

/** Every handler the controller reaches, each once (a chain's links included). */
export function reachableHandlers(c: Controller): Handler[] {
  const seen = new Map<number, Handler>();
  const visit = (h: Handler) => {
    if (seen.has(h.id)) return;
    seen.set(h.id, h);
    h.upstreams.forEach(visit);
  };
  visit(c.defaultHandler());
  for (const name of c.names()) visit(c.get(name));
  return [...seen.values()];
}

type Labels = Record<string, string>;
interface Series {
  labels: Labels;
  value: number;
  /** A histogram's series: `<name>_bucket`, `_sum` or `_count`. */
  metricName?: string;
}
const NO_LABELS: Labels = Object.freeze({});

/**
 * A metric whose series come from the scrape's snapshot, handed to prom-client's registry as it
 * is (prom-client accepts any object with `name` and `get()`): no per-series bookkeeping,
 * which is most of a scrape's cost with prom-client's own Counter and Gauge.
 *
 * For the text format prom-client asks `getForPromString()`, which hands each series' labels as
 * `sharedLabels`: prom-client formats those once per label object and reuses the text (a
 * WeakMap), and our label objects live as long as their handler, so a scrape formats numbers,
 * not label sets. `get()` (JSON, cluster aggregation) hands them as plain labels.
 */
class SnapshotMetric {
  constructor(
    public name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
    readonly aggregator: Prom.Aggregator,
    private readonly series: () => Series[],
    private readonly fresh: boolean,
    private readonly read: (fresh: boolean) => unknown,
  ) {}

  get() {
    if (this.fresh) this.read(true);
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: this.series(),
    });
  }

  getForPromString() {
    if (this.fresh) this.read(true);
    const values = this.series().map((v) => ({
      labels: NO_LABELS,
      sharedLabels: v.labels,
      value: v.value,
      metricName: v.metricName,
    }));
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values,
    });
  }

  reset(): void {
    // Nothing to reset: the values are the handlers' own, read at each scrape.
  }
}

/**
 * Label objects by their values, the same object for the same values scrape after scrape (so
 * prom-client's text for them is reused). Forgotten wholesale when handlers come and go enough
 * to fill it.
 */
class LabelSets {
  /** By the label names (the same array for every series of a metric), then by the values. */
  #sets = new Map<readonly string[], Map<string, Labels>>();
  #count = 0;

  /** @param extra the caller's labels, added to every set after pinpool's own. */
  constructor(private readonly extra: Labels) {}

  of(names: readonly string[], values: readonly string[]): Labels {
    let byValues = this.#sets.get(names);
    if (byValues === undefined) this.#sets.set(names, (byValues = new Map<string, Labels>()));
    const key = values.join('\u0000');
    const known = byValues.get(key);
    if (known !== undefined) return known;
    if (this.#count >= 20_000) {
      for (const m of this.#sets.values()) m.clear();
      this.#count = 0;
    }
    const set: Labels = {};
    names.forEach((name, i) => (set[name] = values[i] ?? ''));
    Object.assign(set, this.extra);
    byValues.set(key, Object.freeze(set));
    this.#count++;
    return set;
  }
}

/** The named scopes' metrics: `scope_<field in snake_case>`, `_total` for a counter. */
const SCOPE_METRICS: readonly (readonly [
  field: 'allocations' | 'allocatedBytes' | 'bytesInUse' | 'buffersInUse' | 'switches',
  type: 'counter' | 'gauge',
  help: string,
])[] = [
  ['allocations', 'counter', 'Allocations alloc() made in the named scope.'],
  [
    'allocatedBytes',
    'counter',
    'Bytes alloc() allocated in the named scope, summed over all allocations.',
  ],
  [
    'bytesInUse',
    'gauge',
    'Bytes allocated in the named scope and not freed yet, whichever handler served them.',
  ],
  ['buffersInUse', 'gauge', 'Buffers allocated in the named scope and not freed yet.'],
  ['switches', 'counter', 'Times the named scope was bound to another handler.'],
];

/**
 * Per shared region (shared()), named `shared_region_<field>`. The region's own counts are the
 * same in every process that has it open, so a node:cluster aggregate (AggregatorRegistry) takes
 * the first worker's, not their sum; the `...Here` counts are each process's own, and sum to
 * what the cluster's processes hold.
 */
const REGION_METRICS: readonly (readonly [
  field: keyof SharedRegionStats,
  type: 'counter' | 'gauge',
  aggregator: Prom.Aggregator,
  help: string,
])[] = [
  ['bytes', 'gauge', 'first', 'Bytes of the shared region: the host budget of its processes.'],
  ['bytesInUse', 'gauge', 'first', 'Bytes of the shared region in blocks, owned or in flight.'],
  ['blocksInUse', 'gauge', 'first', 'Blocks of the shared region owned by a process.'],
  [
    'blocksInFlight',
    'gauge',
    'first',
    'Blocks of the shared region given by one process and not yet adopted by another.',
  ],
  [
    'recoveredBlocks',
    'counter',
    'first',
    'Blocks of the shared region taken back from processes that died.',
  ],
  ['recoveredBytes', 'counter', 'first', 'Bytes of those blocks.'],
  [
    'repairs',
    'counter',
    'first',
    "Times a process found the shared region's lock left by one that died mid-change.",
  ],
  ['processes', 'gauge', 'first', 'Processes that have the shared region open.'],
  [
    'bytesHere',
    'gauge',
    'sum',
    'Bytes of the shared region in blocks this process owns (summed over cluster workers).',
  ],
  ['blocksHere', 'gauge', 'sum', 'Blocks of the shared region this process owns.'],
  [
    'givenHere',
    'gauge',
    'sum',
    'Blocks of the shared region this process gave and nobody adopted yet.',
  ],
];

/** 'bytesInUse' -> 'bytes_in_use': a statistic's name as its metric's. */
function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** The `pinpool_info` series' labels. */
const INFO = ['version', 'cuda', 'napi_version'] as const;

/** Every label name pinpool's own series use: a caller's label may not take one of them. */
function ownLabelNames(): Set<string> {
  return new Set(['handler', 'scope', 'region', ...INFO, ...statsTable().flatMap((s) => s.labels)]);
}

const installed = new WeakSet<Prom.Registry<Prom.RegistryContentType>>();

function promClient(): typeof Prom {
  try {
    return createRequire(__filename)('prom-client') as typeof Prom;
  } catch {
    throw new PinpoolError(
      ErrorCode.UNAVAILABLE,
      "pinpool: collectMetrics() needs prom-client; install it with 'npm install prom-client'",
    );
  }
}

/** Whether `value` has a registry's methods (a throwing getter or trap says no). */
function looksLikeRegistry(value: unknown): boolean {
  if (!isObject(value)) return false;
  try {
    const r = value as Record<string, unknown>;
    return typeof r.registerMetric === 'function' && typeof r.getSingleMetric === 'function';
  } catch {
    return false;
  }
}

/** What collectMetrics() uses of a registry: prom-client's Registry, or one like it. */
function checkRegistry(value: unknown): Prom.Registry<Prom.RegistryContentType> {
  const expected = 'a prom-client Registry';
  if (!isObject(value)) throw invalid('registry', expected, value);
  try {
    const r = value as Record<string, unknown>;
    if (
      typeof r.registerMetric === 'function' &&
      typeof r.getSingleMetric === 'function' &&
      typeof r.setDefaultLabels === 'function'
    ) {
      return value as Prom.Registry<Prom.RegistryContentType>;
    }
  } catch {
    // a getter or Proxy trap that throws: not a registry
  }
  throw invalid('registry', expected, value);
}

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Default labels, copied into a plain object of strings (prom-client keeps what it is given). */
function checkLabels(value: unknown): Record<string, string> {
  const o = checkOptions<Record<string, unknown>>(value, 'labels');
  const labels: Record<string, string> = {};
  for (const [name, label] of Object.entries(o)) {
    if (!LABEL_NAME.test(name) || name.startsWith('__'))
      throw invalid('labels', 'Prometheus label names (not starting with __)', name);
    if (typeof label !== 'string') throw invalid(`labels.${name}`, 'a string', label);
    labels[name] = label;
  }
  return labels;
}

const readMetricsOptions = optionsOf<MetricsOptions>('collectMetrics', {
  registry: true,
  register: true,
  prefix: true,
  labels: true,
  controller: true,
});

/**
 * Registers pinpool's metrics on a prom-client registry and returns the registry. Safe to
 * call twice on one registry: the second call does nothing, whatever its other options (the
 * first call's prefix, labels and controller stay).
 *
 * @example
 * const registry = collectMetrics({ labels: { service: 'loader' } });
 * const text = await registry.metrics();
 */
export function collectMetrics<R extends Prom.Registry<Prom.RegistryContentType> = Prom.Registry>(
  options?: MetricsOptions & { registry?: R },
): R {
  // collectMetrics(register), prom-client's collectDefaultMetrics style of the wrong call: say
  // what to write rather than naming one of the registry's own fields as an unknown option.
  if (looksLikeRegistry(options))
    throw invalid(
      'options',
      'an options object, such as { register } (a registry given alone)',
      options,
    );
  const o = readMetricsOptions(options);
  // Everything is checked before the registry is touched: a refused call registers nothing.
  const prefix = o.prefix ?? 'pinpool_';
  if (typeof prefix !== 'string' || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix))
    throw invalid('prefix', 'a Prometheus metric name prefix', prefix);
  const labels = o.labels === undefined ? {} : checkLabels(o.labels);
  const own = ownLabelNames();
  for (const name of Object.keys(labels))
    if (own.has(name))
      throw invalid(
        'labels',
        `label names pinpool's series do not use (${[...own].join(', ')})`,
        name,
      );
  if (o.registry !== undefined && o.register !== undefined && o.registry !== o.register)
    throw invalid(
      'register',
      'the same registry as `registry` (or only one of the two)',
      o.register,
    );
  const given = o.registry ?? o.register;
  if (o.controller !== undefined && !Controller.is(o.controller))
    throw invalid('controller', 'a pinpool Controller', o.controller);
  const c = o.controller ?? processController;
  const prom = promClient();
  const registry = (given === undefined ? new prom.Registry() : checkRegistry(given)) as R;
  if (installed.has(registry)) return registry;

  // One snapshot per scrape. A scrape calls every metric's collect() in registration order, all
  // in one tick: the first metric takes a fresh snapshot and the rest reuse it; a metric read
  // on its own later finds the snapshot expired (it lives until the next macrotask).
  let snapshot: Snapshot | undefined;
  const read = (fresh = false): Snapshot => {
    if (snapshot === undefined || fresh) {
      const taken = new Set<string>();
      const handlers = reachableHandlers(c).map((handler) => {
        const label = taken.has(handler.name) ? `${handler.name}#${handler.id}` : handler.name;
        taken.add(label);
        return { handler, label, stats: handler.stats() };
      });
      const regions = new Map<string, SharedRegionStats>();
      for (const { handler } of handlers) {
        if (handler.kind !== 'shared') continue;
        const r = sharedRegion(handler);
        regions.set(r.region, r.stats);
      }
      snapshot = {
        handlers,
        regions: [...regions].map(([region, stats]) => ({ region, stats })),
        scopes: c.scopes(),
      };
      setImmediate(() => (snapshot = undefined)).unref();
    }
    return snapshot;
  };

  const sets = new LabelSets(labels);
  const metrics: SnapshotMetric[] = [];
  // The first metric of a scrape takes the fresh snapshot the others reuse.
  const define = (
    stem: string,
    help: string,
    type: 'counter' | 'gauge' | 'histogram',
    series: () => Series[],
    aggregator: Prom.Aggregator = 'sum',
  ) => {
    const name = prefix + stem + (type === 'counter' ? '_total' : '');
    metrics.push(
      new SnapshotMetric(name, help, type, aggregator, series, metrics.length === 0, read),
    );
  };
  // Per handler: one metric per statistic of the native table (native/core/stats.hpp), named
  // after it. Its labels are `handler` and the table's (kind; reason; from and to, a fallback's
  // upstreams). A handler counts the failures it was asked for: a fallback stops asking a primary
  // that said "unavailable" (no driver, no device), so those show once in failures_total and
  // once in fallbacks_total.
  const table = statsTable();
  for (const stat of table) {
    if (stat.bounds !== undefined) {
      defineHistogram(stat, table);
      continue;
    }
    // A histogram's sum is a series of its histogram, not a metric of its own.
    if (table.some((h) => h.bounds !== undefined && stat.name === `${h.name}Sum`)) continue;
    const names = ['handler', ...stat.labels];
    const kinds = stat.kinds === null ? undefined : new Set(stat.kinds);
    const upstreams = stat.labels.includes('from');
    // The usual labels, handler and kind, without a lookup per label.
    const plain = names.length === 2 && names[1] === 'kind';
    define(
      stat.stem,
      stat.help,
      stat.type,
      () => {
        const { handlers } = read();
        const labelOf = upstreams
          ? new Map(handlers.map((r) => [r.handler.id, r.label]))
          : undefined;
        const labelValue = (r: Row, label: string, reason: string): string => {
          if (label === 'handler') return r.label;
          if (label === 'kind') return r.handler.kind;
          if (label === 'reason') return reason;
          const upstream = r.handler.upstreams[label === 'from' ? 0 : 1];
          return upstream === undefined ? 'unknown' : (labelOf?.get(upstream.id) ?? upstream.name);
        };
        const series: Series[] = [];
        for (const r of handlers) {
          if (kinds !== undefined && !kinds.has(r.handler.kind)) continue;
          const value =
            (r.stats as unknown as Record<string, number | Record<string, number> | undefined>)[
              stat.name
            ] ?? 0;
          if (typeof value === 'number') {
            series.push({
              labels: plain
                ? sets.of(names, [r.label, r.handler.kind])
                : sets.of(
                    names,
                    names.map((l) => labelValue(r, l, '')),
                  ),
              value,
            });
            continue;
          }
          for (const [reason, n] of Object.entries(value))
            series.push({
              labels: sets.of(
                names,
                names.map((l) => labelValue(r, l, reason)),
              ),
              value: n,
            });
        }
        return series;
      },
      stat.aggregator,
    );
  }
  // A histogram of the table: `<stem>_bucket` per bound (cumulative, as stats() gives it), then
  // `<stem>_sum` (the `<name>Sum` statistic) and `<stem>_count`.
  function defineHistogram(stat: NativeStat, rows: readonly NativeStat[]) {
    const kinds = stat.kinds === null ? undefined : new Set(stat.kinds);
    const sumOf = rows.find((r) => r.name === `${stat.name}Sum`)?.name;
    const name = prefix + stat.stem;
    const BUCKET = ['handler', 'kind', 'le'] as const;
    const PLAIN = ['handler', 'kind'] as const;
    define(
      stat.stem,
      stat.help,
      'histogram',
      () => {
        const series: Series[] = [];
        for (const r of read().handlers) {
          if (kinds !== undefined && !kinds.has(r.handler.kind)) continue;
          const stats = r.stats as unknown as Record<string, unknown>;
          const buckets = stats[stat.name] as { le: number; count: number }[];
          let count = 0;
          for (const { le, count: n } of buckets) {
            series.push({
              metricName: `${name}_bucket`,
              labels: sets.of(BUCKET, [r.label, r.handler.kind, bucketLabel(le)]),
              value: n,
            });
            count = n;
          }
          const plain = sets.of(PLAIN, [r.label, r.handler.kind]);
          const sum = sumOf === undefined ? 0 : (stats[sumOf] as number);
          series.push({ metricName: `${name}_sum`, labels: plain, value: sum });
          series.push({ metricName: `${name}_count`, labels: plain, value: count });
        }
        return series;
      },
      stat.aggregator,
    );
  }
  // Per named scope: the scopes are defined in code, so they bound the series' cardinality. Each
  // named after its ScopeInfo field, as the handlers' metrics are.
  const S = ['scope'] as const;
  const SH = ['scope', 'handler'] as const;
  define(
    'scope_info',
    'A named scope and the handler it is bound to now (switched at run time); the value is always 1.',
    'gauge',
    () => read().scopes.map((s) => ({ labels: sets.of(SH, [s.name, s.handler]), value: 1 })),
  );
  for (const [field, type, help] of SCOPE_METRICS) {
    define(`scope_${snakeCase(field)}`, help, type, () =>
      read().scopes.map((s) => ({ labels: sets.of(S, [s.name]), value: s[field] })),
    );
  }
  const R = ['region'] as const;
  for (const [field, type, aggregator, help] of REGION_METRICS) {
    define(
      `shared_region_${snakeCase(field)}`,
      help,
      type,
      () => read().regions.map((r) => ({ labels: sets.of(R, [r.region]), value: r.stats[field] })),
      aggregator,
    );
  }
  const i = info();
  define(
    'cuda_devices',
    'CUDA devices visible to this process (0 without a driver).',
    'gauge',
    () => [{ labels: sets.of([], []), value: i.cuda.devices.length }],
    'first',
  );
  define(
    'info',
    'pinpool version and whether CUDA is available; the value is always 1.',
    'gauge',
    () => [
      {
        labels: sets.of(INFO, [i.version, String(i.cuda.available), String(i.napiVersion)]),
        value: 1,
      },
    ],
    'first',
  );
  for (const m of metrics) {
    if (registry.getSingleMetric(m.name) !== undefined)
      throw invalid('registry', `a registry without a metric named ${m.name}`, registry);
  }
  for (const m of metrics) registry.registerMetric(m as unknown as Prom.Metric);
  installed.add(registry);
  return registry;
}
