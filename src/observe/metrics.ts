/**
 * Prometheus metrics (prom-client, a peer dependency). Values are read at scrape time from one
 * native statistics snapshot per scrape; the allocation path never touches prom-client.
 * Nothing is registered until collectMetrics() is called, and never on prom-client's global
 * registry unless it is passed in.
 */
import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';

import { Controller, controller as processController, type ScopeInfo } from '../scope/controller.js';
import { ErrorCode, PinpoolError } from '../boundary/errors.js';
import type { Handler } from '../memory/handler.js';
import { info } from './info.js';
import type { HandlerStats } from '../memory/stats.js';
import { checkOptions, invalid, isObject } from '../boundary/validate.js';

export interface MetricsOptions {
  /** Where to register. Default: a new Registry. */
  registry?: Prom.Registry<Prom.RegistryContentType>;
  /** Metric name prefix. Default 'pinpool_'. */
  prefix?: string;
  /** Labels added to every series (e.g. { service: 'api' }). */
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
type Series = { labels: Labels; value: number };
const NO_LABELS: Labels = Object.freeze({}) as Labels;

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
    readonly type: 'counter' | 'gauge',
    readonly aggregator: Prom.Aggregator,
    private readonly series: () => Series[],
    private readonly fresh: boolean,
    private readonly read: (fresh: boolean) => unknown,
  ) {}

  async get() {
    if (this.fresh) this.read(true);
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.series() };
  }

  async getForPromString() {
    if (this.fresh) this.read(true);
    const values = this.series().map((v) => ({ labels: NO_LABELS, sharedLabels: v.labels, value: v.value }));
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {}
}

/**
 * Label objects by their values, the same object for the same values scrape after scrape (so
 * prom-client's text for them is reused). Forgotten wholesale when handlers come and go enough
 * to fill it.
 */
class LabelSets {
  #sets = new Map<string, Labels>();

  of(names: readonly string[], values: readonly string[]): Labels {
    const key = values.join('\u0000');
    let set = this.#sets.get(key);
    if (set === undefined) {
      if (this.#sets.size >= 20_000) this.#sets.clear();
      set = {};
      names.forEach((name, i) => (set![name] = values[i]!));
      this.#sets.set(key, Object.freeze(set));
    }
    return set;
  }
}

const installed = new WeakSet<Prom.Registry<Prom.RegistryContentType>>();

function promClient(): typeof Prom {
  try {
    return createRequire(__filename)('prom-client') as typeof Prom;
  } catch {
    throw new PinpoolError(ErrorCode.UNAVAILABLE, "pinpool: collectMetrics() needs prom-client; install it with 'npm install prom-client'");
  }
}

/** What collectMetrics() uses of a registry: prom-client's Registry, or one like it. */
function checkRegistry(value: unknown): Prom.Registry<Prom.RegistryContentType> {
  const expected = 'a prom-client Registry';
  if (!isObject(value)) throw invalid('registry', expected, value);
  try {
    const r = value as Record<string, unknown>;
    if (typeof r.registerMetric === 'function' && typeof r.getSingleMetric === 'function' && typeof r.setDefaultLabels === 'function') {
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
    if (!LABEL_NAME.test(name) || name.startsWith('__')) throw invalid('labels', 'Prometheus label names (not starting with __)', name);
    if (typeof label !== 'string') throw invalid(`labels.${name}`, 'a string', label);
    labels[name] = label;
  }
  return labels;
}

/**
 * Registers pinpool's metrics on a prom-client registry and returns the registry. Safe to
 * call twice on one registry (the second call does nothing).
 *
 * @example
 * const registry = collectMetrics({ labels: { service: 'loader' } });
 * const text = await registry.metrics();
 */
export function collectMetrics<R extends Prom.Registry<Prom.RegistryContentType> = Prom.Registry>(options?: MetricsOptions & { registry?: R }): R {
  const o = checkOptions<MetricsOptions>(options, 'metrics options');
  // Everything is checked before the registry is touched: a refused call registers nothing.
  const prefix = o.prefix ?? 'pinpool_';
  if (typeof prefix !== 'string' || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) throw invalid('prefix', 'a Prometheus metric name prefix', prefix);
  const labels = o.labels === undefined ? undefined : checkLabels(o.labels);
  if (o.controller !== undefined && !Controller.is(o.controller)) throw invalid('controller', 'a pinpool Controller', o.controller);
  const c = o.controller ?? processController;
  const prom = promClient();
  const registry = (o.registry === undefined ? new prom.Registry() : checkRegistry(o.registry)) as R;
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
      snapshot = { handlers, scopes: c.scopes() };
      setImmediate(() => (snapshot = undefined)).unref();
    }
    return snapshot;
  };

  const sets = new LabelSets();
  const HK = ['handler', 'kind'] as const;
  const HKO = ['handler', 'kind', 'op'] as const;
  const HKR = ['handler', 'kind', 'reason'] as const;
  const HFTR = ['handler', 'from', 'to', 'reason'] as const;
  const metrics: SnapshotMetric[] = [];
  const define = (name: string, help: string, type: 'counter' | 'gauge', series: () => Series[], aggregator: Prom.Aggregator = 'sum', fresh = false) => {
    metrics.push(new SnapshotMetric(prefix + name, help, type, aggregator, () => series(), fresh, read));
  };
  const perHandler = (name: string, help: string, type: 'counter' | 'gauge', value: (r: Row) => number, kind?: string, aggregator?: Prom.Aggregator, fresh = false) =>
    define(
      name,
      help,
      type,
      () => read().handlers.filter((r) => kind === undefined || r.handler.kind === kind).map((r) => ({ labels: sets.of(HK, [r.label, r.handler.kind]), value: value(r) })),
      aggregator,
      fresh,
    );

  perHandler('bytes_in_use', 'Bytes handed out by the handler and not yet returned.', 'gauge', (r) => r.stats.bytes.current, undefined, 'sum', true);
  perHandler('bytes_peak', 'Highest bytes_in_use seen since the handler was made.', 'gauge', (r) => r.stats.bytes.peak, undefined, 'max');
  perHandler('buffers_in_use', 'Buffers handed out by the handler and not yet returned.', 'gauge', (r) => r.stats.allocations.current);
  perHandler('allocations_total', 'Allocations served by the handler.', 'counter', (r) => r.stats.allocations.total);
  // A handler counts the failures it was asked for: a fallback stops asking a primary that said
  // "unavailable" (no driver, no device), so those show once here and once in fallbacks_total.
  perHandler('frees_total', 'Buffers returned to the handler.', 'counter', (r) => r.stats.frees);
  perHandler('allocated_bytes_total', 'Bytes allocated from the handler, summed over all allocations.', 'counter', (r) => r.stats.bytes.total);
  perHandler('pool_reserved_bytes', 'Bytes a pool holds from its upstream, in use or cached.', 'gauge', (r) => r.stats.reserved.current, 'pool');
  perHandler('limit_max_bytes', 'The cap on bytes in use through a limit handler (its maxBytes): compare with its bytes_in_use.', 'gauge', (r) => r.stats.capBytes, 'limit', 'first');
  perHandler('pool_cached_bytes', 'Bytes a pool holds from its upstream and has free for reuse.', 'gauge', (r) => r.stats.cachedBytes, 'pool');
  perHandler('gc_released_bytes_total', 'Bytes returned by the garbage-collection backstop instead of free(): leaks.', 'counter', (r) => r.stats.releasedByGcBytes);
  perHandler('gc_released_total', 'Buffers returned by the garbage-collection backstop instead of free(): leaks.', 'counter', (r) => r.stats.releasedByGc);
  perHandler('invalid_frees_total', 'Frees the handler refused (a block it did not hand out, a second free, a wrong size or alignment): misuse of the C ABI.', 'counter', (r) => r.stats.invalidFrees);
  perHandler('orphaned_bytes', 'Bytes kept out of use for good: an ArrayBuffer over them left a thread that then ended (hand buffers over with transfer() and adopt() instead).', 'gauge', (r) => r.stats.orphanedBytes, undefined, 'sum');
  perHandler('orphaned_blocks', 'Blocks (a slab counts once) kept out of use for good, as orphaned_bytes counts them.', 'gauge', (r) => r.stats.orphanedBlocks, undefined, 'sum');
  perHandler('upstream_seconds_total', 'Seconds a pool spent in calls to its upstream.', 'counter', (r) => r.stats.upstreamSeconds, 'pool');
  define('upstream_calls_total', 'Calls a pool made to its upstream, by operation (alloc or free).', 'counter', () =>
    read()
      .handlers.filter((r) => r.handler.kind === 'pool')
      .flatMap(({ label, stats }) => [
        { labels: sets.of(HKO, [label, 'pool', 'alloc']), value: stats.upstreamAllocs },
        { labels: sets.of(HKO, [label, 'pool', 'free']), value: stats.upstreamFrees },
      ]),
  );
  define('failures_total', 'Allocations the handler could not serve, by reason.', 'counter', () =>
    read().handlers.flatMap(({ handler, label, stats }) =>
      Object.entries(stats.failures).map(([reason, value]) => ({ labels: sets.of(HKR, [label, handler.kind, reason]), value })),
    ),
  );
  define('fallbacks_total', 'Allocations a fallback handler sent to its secondary, by reason (size, out-of-memory, unavailable).', 'counter', () => {
    const labelOf = new Map(read().handlers.map((r) => [r.handler.id, r.label]));
    return read()
      .handlers.filter((r) => r.handler.kind === 'fallback')
      .flatMap(({ handler, label, stats }) => {
        const [from, to] = handler.upstreams.map((u) => labelOf.get(u.id) ?? u.name);
        return Object.entries(stats.fallbacks).map(([reason, value]) => ({ labels: sets.of(HFTR, [label, from ?? 'unknown', to ?? 'unknown', reason]), value }));
      });
  });
  // Per named scope: the scopes are defined in code, so they bound the series' cardinality.
  const S = ['scope'] as const;
  const SH = ['scope', 'handler'] as const;
  const perScope = (name: string, help: string, type: 'counter' | 'gauge', value: (s: ScopeInfo) => number) =>
    define(name, help, type, () => read().scopes.map((s) => ({ labels: sets.of(S, [s.name]), value: value(s) })));
  define('scope_info', 'A named scope and the handler it is bound to now (switched at run time); the value is always 1.', 'gauge', () =>
    read().scopes.map((s) => ({ labels: sets.of(SH, [s.name, s.handler]), value: 1 })),
  );
  perScope('scope_allocations_total', 'Allocations alloc() made in the named scope.', 'counter', (s) => s.allocations);
  perScope('scope_allocated_bytes_total', 'Bytes alloc() allocated in the named scope, summed over all allocations.', 'counter', (s) => s.allocatedBytes);
  perScope('scope_bytes_in_use', 'Bytes allocated in the named scope and not freed yet, whichever handler served them.', 'gauge', (s) => s.bytesInUse);
  perScope('scope_buffers_in_use', 'Buffers allocated in the named scope and not freed yet.', 'gauge', (s) => s.buffersInUse);
  perScope('scope_switches_total', 'Times the named scope was bound to another handler.', 'counter', (s) => s.switches);
  const i = info();
  define('cuda_devices', 'CUDA devices visible to this process (0 without a driver).', 'gauge', () => [{ labels: {}, value: i.cuda.devices.length }], 'first');
  define('info', 'pinpool version and whether CUDA is available; the value is always 1.', 'gauge', () => [{ labels: { version: i.version, cuda: String(i.cuda.available), napi_version: String(i.napiVersion) }, value: 1 }], 'first');
  for (const m of metrics) {
    if (registry.getSingleMetric(m.name) !== undefined) throw invalid('registry', `a registry without a metric named ${m.name}`, registry);
  }
  if (labels !== undefined) registry.setDefaultLabels(labels);
  for (const m of metrics) registry.registerMetric(m as unknown as Prom.Metric);
  installed.add(registry);
  return registry;
}
