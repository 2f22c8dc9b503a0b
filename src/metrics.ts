/**
 * Prometheus metrics (prom-client, a peer dependency). Values are read at scrape time from one
 * native statistics snapshot per scrape; the allocation path never touches prom-client.
 * Nothing is registered until collectMetrics() is called, and never on prom-client's global
 * registry unless it is passed in.
 */
import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';

import { controller as processController, type Controller } from './controller.js';
import type { Handler } from './handler.js';
import { info } from './info.js';
import type { HandlerStats } from './stats.js';
import { checkOptions, invalid } from './validate.js';

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

const installed = new WeakSet<Prom.Registry<Prom.RegistryContentType>>();

function promClient(): typeof Prom {
  try {
    return createRequire(__filename)('prom-client') as typeof Prom;
  } catch {
    throw new Error("pinpool: collectMetrics() needs prom-client; install it with 'npm install prom-client'");
  }
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
  const prom = promClient();
  const registry = (o.registry ?? new prom.Registry()) as R;
  if (installed.has(registry)) return registry;
  const prefix = o.prefix ?? 'pinpool_';
  if (typeof prefix !== 'string' || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) throw invalid('prefix', 'a Prometheus metric name prefix', prefix);
  const c = o.controller ?? processController;
  if (o.labels !== undefined) registry.setDefaultLabels(o.labels);

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
      snapshot = { handlers };
      setImmediate(() => (snapshot = undefined)).unref();
    }
    return snapshot;
  };

  const base = ['handler', 'kind'] as const;
  const rows = (kind?: string) => read().handlers.filter((r) => kind === undefined || r.handler.kind === kind);
  const counter = (name: string, help: string, value: (r: Row) => number, kind?: string) =>
    new prom.Counter({
      name: prefix + name,
      help,
      labelNames: base,
      registers: [registry],
      collect() {
        this.reset();
        for (const r of rows(kind)) this.inc({ handler: r.label, kind: r.handler.kind }, value(r));
      },
    });
  const gauge = (name: string, help: string, value: (r: Row) => number, kind?: string, aggregator: Prom.Aggregator = 'sum') =>
    new prom.Gauge({
      name: prefix + name,
      help,
      labelNames: base,
      aggregator,
      registers: [registry],
      collect() {
        this.reset();
        for (const r of rows(kind)) this.set({ handler: r.label, kind: r.handler.kind }, value(r));
      },
    });

  new prom.Gauge({
    name: `${prefix}bytes_in_use`,
    help: 'Bytes handed out by the handler and not yet returned.',
    labelNames: base,
    registers: [registry],
    collect() {
      this.reset();
      for (const r of read(true).handlers) this.set({ handler: r.label, kind: r.handler.kind }, r.stats.bytes.current);
    },
  });
  gauge('bytes_peak', 'Highest bytes_in_use seen since the handler was made.', (r) => r.stats.bytes.peak, undefined, 'max');
  gauge('buffers_in_use', 'Buffers handed out by the handler and not yet returned.', (r) => r.stats.allocations.current);
  counter('allocations_total', 'Allocations served by the handler.', (r) => r.stats.allocations.total);
  // A handler counts the failures it was asked for: a fallback stops asking a primary that said
  // "unavailable" (no driver, no device), so those show once here and on every hop in fallbacks_total.
  counter('frees_total', 'Buffers returned to the handler.', (r) => r.stats.frees);
  counter('allocated_bytes_total', 'Bytes allocated from the handler, summed over all allocations.', (r) => r.stats.bytes.total);
  gauge('pool_reserved_bytes', 'Bytes a pool holds from its upstream, in use or cached.', (r) => r.stats.reserved.current, 'pool');
  gauge('pool_cached_bytes', 'Bytes a pool holds from its upstream and has free for reuse.', (r) => r.stats.cachedBytes, 'pool');
  counter('gc_released_bytes_total', 'Bytes returned by the garbage-collection backstop instead of free(): leaks.', (r) => r.stats.releasedByGcBytes);
  counter('gc_released_total', 'Buffers returned by the garbage-collection backstop instead of free(): leaks.', (r) => r.stats.releasedByGc);
  counter('upstream_seconds_total', 'Seconds a pool spent in calls to its upstream.', (r) => r.stats.upstreamSeconds, 'pool');

  new prom.Counter({
    name: `${prefix}upstream_calls_total`,
    help: 'Calls a pool made to its upstream, by operation (alloc or free).',
    labelNames: [...base, 'op'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { label, stats } of rows('pool')) {
        this.inc({ handler: label, kind: 'pool', op: 'alloc' }, stats.upstreamAllocs);
        this.inc({ handler: label, kind: 'pool', op: 'free' }, stats.upstreamFrees);
      }
    },
  });
  new prom.Counter({
    name: `${prefix}failures_total`,
    help: 'Allocations the handler could not serve, by reason.',
    labelNames: [...base, 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { handler, label, stats } of rows()) {
        for (const [reason, n] of Object.entries(stats.failures)) this.inc({ handler: label, kind: handler.kind, reason }, n);
      }
    },
  });
  new prom.Counter({
    name: `${prefix}fallbacks_total`,
    help: 'Allocations a fallback handler sent to its secondary, by reason (size, out-of-memory, unavailable).',
    labelNames: ['handler', 'from', 'to', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      const labelOf = new Map(read().handlers.map((r) => [r.handler.id, r.label]));
      for (const { handler, label, stats } of rows('fallback')) {
        const [from, to] = handler.upstreams.map((u) => labelOf.get(u.id) ?? u.name);
        for (const [reason, n] of Object.entries(stats.fallbacks)) {
          this.inc({ handler: label, from: from ?? 'unknown', to: to ?? 'unknown', reason }, n);
        }
      }
    },
  });
  const i = info();
  new prom.Gauge({
    name: `${prefix}cuda_devices`,
    help: 'CUDA devices visible to this process (0 without a driver).',
    aggregator: 'first',
    registers: [registry],
    collect() {
      this.set(i.cuda.devices.length); // found once, when the driver loaded
    },
  });
  new prom.Gauge({
    name: `${prefix}info`,
    help: 'pinpool version and whether CUDA is available; the value is always 1.',
    labelNames: ['version', 'cuda', 'napi_version'],
    aggregator: 'first',
    registers: [registry],
    collect() {
      this.reset();
      this.set({ version: i.version, cuda: String(i.cuda.available), napi_version: String(i.napiVersion) }, 1);
    },
  });
  installed.add(registry);
  return registry;
}
