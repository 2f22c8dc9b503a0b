/**
 * What the status page draws, read in one pass: every handler the controller reaches (each
 * once, with its upstreams by id and its statistics), the registered names, the default, and
 * the named scopes with their last switch. The same reads /metrics makes (Handler.stats() and
 * Controller.scopes()), nothing on the allocation path.
 */
import type { Controller, Handler, HandlerStats, ScopeInfo } from '../pinpool.js';
import type { ScopeSwitch, SwitchLog } from '../switch-log.js';

/** A handler as the page draws it: a link of one or more chains. */
export interface StatusHandler {
  /**
   * Its place in `handlers`, what `upstreams`, `registered` and `default` refer to. It numbers
   * this snapshot only: another snapshot may number the same handler otherwise.
   */
  id: number;
  /** The handler's own name (what metrics label it with). */
  name: string;
  kind: string;
  /** The handlers it takes memory from, by id, in order (a fallback: primary, secondary). */
  upstreams: number[];
  /** Its statistics, without the growth histogram. */
  stats: Omit<HandlerStats, 'growthSeconds'>;
}

/** A switch made over HTTP, as the read-only view shows it: when, and from which handler to which. */
export type StatusSwitch = Omit<ScopeSwitch, 'requestId'>;

/** A named scope, with the last switch made over HTTP through this service. */
export interface StatusScope extends ScopeInfo {
  lastSwitch: StatusSwitch | null;
}

/** GET /v1/status: one snapshot of the controller. */
export interface StatusSnapshot {
  /** When it was read, in milliseconds since the epoch. */
  at: number;
  /** When the process started, in milliseconds since the epoch: a new value is a new process. */
  startedAt: number;
  /** pinpool's version. */
  version: string;
  /** True when the admin endpoints are on (a token is configured); the token is never sent. */
  admin: boolean;
  /** The handler used outside every scope, by id. */
  default: number;
  /** The registered names, in registration order, and the handler each names, by id. */
  registered: { name: string; handler: number }[];
  /** Every handler reached from the default and the registered names, each once, heads first. */
  handlers: StatusHandler[];
  scopes: StatusScope[];
  /** The switches made over HTTP, oldest first (at most 64). */
  switches: (StatusSwitch & { scope: string })[];
}

/** A switch without its request id (the admin view's, GET /v1/scopes, keeps it). */
function shown(record: ScopeSwitch | null): StatusSwitch | null {
  return record === null ? null : { at: record.at, from: record.from, to: record.to };
}

/** Reads a snapshot. `admin` says whether the admin endpoints are on. */
export function statusSnapshot(
  controller: Controller,
  { admin, version, switches }: { admin: boolean; version: string; switches: SwitchLog },
): StatusSnapshot {
  const byDefault = controller.defaultHandler();
  const registered = controller.names().map((name) => ({ name, handler: controller.get(name) }));
  // Every handler reached, each once, numbered by its place in this snapshot (not its native id).
  const index = new Map<Handler, number>();
  const reached: Handler[] = [];
  const visit = (h: Handler): void => {
    if (index.has(h)) return;
    index.set(h, reached.push(h) - 1);
    h.upstreams.forEach(visit);
  };
  for (const r of registered) visit(r.handler);
  visit(byDefault);
  const at = (h: Handler): number => index.get(h) ?? -1; // every handler here was visited
  const handlers = reached.map((h, id): StatusHandler => {
    // eslint-disable-next-line @typescript-eslint/no-unused-vars -- the histogram is left out
    const { growthSeconds, ...stats } = h.stats();
    return { id, name: h.name, kind: h.kind, upstreams: h.upstreams.map(at), stats };
  });
  return {
    at: Date.now(),
    startedAt: Math.round(performance.timeOrigin),
    version,
    admin,
    default: at(byDefault),
    registered: registered.map((r) => ({ name: r.name, handler: at(r.handler) })),
    handlers,
    scopes: controller.scopes().map((s) => ({ ...s, lastSwitch: shown(switches.last(s.name)) })),
    switches: switches.recent().map(({ scope, at, from, to }) => ({ scope, at, from, to })),
  };
}
