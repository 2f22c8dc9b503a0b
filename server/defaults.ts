/**
 * The handlers `pinpool serve` names: `default` (the default chain) and, where this host has
 * them, `pinned`, `managed`, `locked` and `pageable`. The pinned, locked and pageable names
 * reach the default chain's own links, so the service holds one pinned pool, not two, and
 * metrics show each handler once.
 */
import { pinpool, type Controller, type Handler } from './pinpool.js';

const { info, managed, pool } = pinpool;

/** Every handler the chain reaches, depth first, each once. */
function links(h: Handler, seen = new Set<Handler>()): Handler[] {
  if (seen.has(h)) return [];
  seen.add(h);
  return [h, ...h.upstreams.flatMap((u) => links(u, seen))];
}

/** The pool in `chain` over a leaf of `kind`, else that leaf itself, else undefined. */
function linkOf(chain: Handler, kind: string): Handler | undefined {
  const all = links(chain);
  return (
    all.find((h) => h.kind === 'pool' && h.upstreams[0]?.kind === kind) ??
    all.find((h) => h.kind === kind)
  );
}

/**
 * Registers the default handlers the host can serve, skipping names already taken. Returns the
 * names registered.
 *
 * @example
 * registerDefaultHandlers(controller);   // ['default', 'locked', 'pageable'] without a GPU
 */
export function registerDefaultHandlers(controller: Controller): string[] {
  const chain = controller.defaultHandler();
  const { cuda, memlockLimitBytes } = info();
  const gpu = cuda.available && cuda.devices.length > 0;
  const candidates: [string, () => Handler | undefined][] = [
    ['default', () => chain],
    ['pinned', () => (gpu ? linkOf(chain, 'pinned') : undefined)],
    ['managed', () => (gpu ? pool(managed(), { name: 'managed-pool' }) : undefined)],
    // A memlock limit of 0 (or unknown) means the locked leaf can page-lock nothing here.
    ['locked', () => (memlockLimitBytes > 0 ? linkOf(chain, 'locked') : undefined)],
    ['pageable', () => linkOf(chain, 'pageable')],
  ];
  const registered: string[] = [];
  for (const [name, make] of candidates) {
    if (controller.has(name)) continue;
    const h = make();
    if (h === undefined) continue;
    controller.register(name, h);
    registered.push(name);
  }
  return registered;
}

/**
 * For `pinpool serve --demo`: named scopes an operator can switch over HTTP. `ingest` is bound to
 * the best memory the host has (pinned, else locked, else pageable), `batch` to `pageable`.
 * Scopes already defined are left alone. Returns the names defined.
 *
 * @example
 * defineDemoScopes(controller);   // then: PUT /v1/scopes/ingest { "handler": "pageable" }
 */
export function defineDemoScopes(controller: Controller): string[] {
  const taken = new Set(controller.scopes().map((s) => s.name));
  const best = ['pinned', 'locked', 'pageable'].find((n) => controller.has(n));
  const wanted: [string, string | undefined][] = [
    ['ingest', best],
    ['batch', controller.has('pageable') ? 'pageable' : undefined],
  ];
  const defined: string[] = [];
  for (const [name, handler] of wanted) {
    if (handler === undefined || taken.has(name) || controller.has(name)) continue;
    controller.scope(name, handler);
    defined.push(name);
  }
  return defined;
}
