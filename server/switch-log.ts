/**
 * SwitchLog: the scope switches made over HTTP through this service, kept for GET /v1/scopes
 * (each scope's last one) and for the status page (the recent ones, drawn as markers). A switch
 * made in code (controller.switch()) is not here; the page sees it as a change of `switches`.
 */

/** A switch made over HTTP: when, from which handler to which, and by which request. */
export interface ScopeSwitch {
  at: string;
  from: string;
  to: string;
  requestId: string;
}

/** The most recent switches kept; older ones are dropped first. */
const RECENT = 64;

export class SwitchLog {
  readonly #last = new Map<string, ScopeSwitch>();
  readonly #recent: (ScopeSwitch & { scope: string })[] = [];

  /** Records a switch of `scope`. */
  add(scope: string, record: ScopeSwitch): void {
    this.#last.set(scope, record);
    this.#recent.push({ scope, ...record });
    if (this.#recent.length > RECENT) this.#recent.shift();
  }

  /** The last switch of `scope` made over HTTP, or null. */
  last(scope: string): ScopeSwitch | null {
    return this.#last.get(scope) ?? null;
  }

  /** The recent switches, oldest first, at most 64. */
  recent(): readonly (ScopeSwitch & { scope: string })[] {
    return this.#recent;
  }
}
