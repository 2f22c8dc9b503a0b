/**
 * The controller: named handlers, and which one is current in each async context. The only
 * module that touches AsyncLocalStorage. A scope is entered with `run()` and ends when its
 * function (and everything it scheduled) is done; nothing is ever set and restored.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

import { ErrorCode, PinpoolError } from './errors.js';
import { Handler, type AllocOptions } from './handler.js';
import { defaultHandler } from './handlers.js';
import type { HostBuffer } from './host-buffer.js';
import { beginMeasure, endMeasure, installFrameLookup, ScopeFrame } from './scope-stats.js';
import { checkBoolean, checkOptions, invalid, isObject } from './validate.js';

const NAME = /^[a-z][a-z0-9_-]{0,62}$/;

// Measure frames are per async context and shared by every controller.
const frames = new AsyncLocalStorage<ScopeFrame>();
installFrameLookup(() => frames.getStore());

export interface MeasureResult<T> {
  result: T;
  /** Allocations made inside the scope (and scopes nested in it). */
  allocations: number;
  bytesAllocated: number;
  /** Highest bytes in use by the scope's own allocations at any moment. */
  peakBytes: number;
}

function notAController(): PinpoolError {
  return new PinpoolError(ErrorCode.INVALID_ARGUMENT, 'pinpool: not a pinpool Controller');
}

/** A registry of named handlers with a per-async-context current handler. */
export class Controller {
  readonly #handlers = new Map<string, Handler>();
  readonly #storage = new AsyncLocalStorage<Handler>();
  #default: Handler | undefined;

  /**
   * Names a handler. Names match /^[a-z][a-z0-9_-]{0,62}$/ and are unique unless
   * `{ replace: true }`.
   *
   * @example
   * controller.register('pinned', pool(pinned()));
   */
  register(name: string, handler: Handler, options?: { replace?: boolean }): void {
    if (!Controller.is(this)) throw notAController();
    if (typeof name !== 'string' || !NAME.test(name)) throw invalid('handler name', 'a name matching /^[a-z][a-z0-9_-]{0,62}$/', name);
    if (!Handler.is(handler)) throw invalid('handler', 'a pinpool handler', handler);
    const o = checkOptions<{ replace?: boolean }>(options, 'register options');
    const replace = o.replace === undefined ? false : checkBoolean(o.replace, 'replace');
    if (this.#handlers.has(name) && !replace) {
      throw new PinpoolError(ErrorCode.INVALID_ARGUMENT, `pinpool: a handler named '${name}' is registered already (pass { replace: true })`);
    }
    this.#handlers.set(name, handler);
  }

  /** The handler registered under `name`; unknown names throw. */
  get(name: string): Handler {
    if (!Controller.is(this)) throw notAController();
    const known = () => this.names().join(', ') || 'none';
    if (typeof name !== 'string') throw invalid('handler name', `a registered name (known: ${known()})`, name);
    const h = this.#handlers.get(name);
    if (h === undefined) {
      throw new PinpoolError(ErrorCode.INVALID_ARGUMENT, `pinpool: no handler is registered as ${JSON.stringify(name)} (known: ${known()})`);
    }
    return h;
  }

  /** Registered names, in registration order. */
  names(): string[] {
    if (!Controller.is(this)) throw notAController();
    return [...this.#handlers.keys()];
  }

  /** True when `name` is registered. */
  has(name: string): boolean {
    if (!Controller.is(this)) throw notAController();
    return this.#handlers.has(name);
  }

  /**
   * Sets the handler used outside every scope; returns the previous one. For program start-up:
   * scopes use run(), never this.
   */
  setDefault(nameOrHandler: string | Handler): Handler {
    if (!Controller.is(this)) throw notAController();
    const next = this.#resolve(nameOrHandler);
    const previous = this.defaultHandler();
    this.#default = next;
    return previous;
  }

  /** The handler used outside every scope (the default chain until setDefault()). */
  defaultHandler(): Handler {
    if (!Controller.is(this)) throw notAController();
    return (this.#default ??= defaultHandler());
  }

  /** The handler of the current async context. */
  current(): Handler {
    if (!Controller.is(this)) throw notAController();
    return this.#storage.getStore() ?? this.defaultHandler();
  }

  /**
   * Runs `fn(...args)` with `nameOrHandler` current in it and in everything it schedules
   * (awaits, timers, promises, listeners added inside). Returns what `fn` returns.
   *
   * @example
   * await controller.run('pinned', async () => { using b = alloc(4096); ... });
   */
  run<A extends unknown[], R>(nameOrHandler: string | Handler, fn: (...args: A) => R, ...args: A): R {
    if (!Controller.is(this)) throw notAController();
    const handler = Handler.is(nameOrHandler) ? nameOrHandler : this.#resolve(nameOrHandler);
    if (typeof fn !== 'function') throw invalid('fn', 'a function', fn);
    // Without arguments, skip the spread: run() is on every request's path.
    return args.length === 0 ? this.#storage.run(handler, fn as () => R) : this.#storage.run(handler, fn, ...args);
  }

  /**
   * Binds `fn` to the current async context, scope and measure included: wherever it is
   * called later, it runs as if called here. Plain EventEmitter listeners run in the context
   * of whoever emits, so a listener that must allocate from its scope's handler is bound:
   * `emitter.on('data', controller.bind(onData))` (or the emitter is an
   * `EventEmitterAsyncResource` made inside the scope).
   */
  bind<F extends (...args: never[]) => unknown>(fn: F): F {
    if (typeof fn !== 'function') throw invalid('fn', 'a function', fn);
    return AsyncLocalStorage.bind(fn);
  }

  /**
   * Runs `fn` and counts what its async scope allocates, even with other scopes running at
   * the same time. Nested measures fold into their parent.
   *
   * @example
   * const { result, peakBytes } = await controller.measure(() => handleRequest(req));
   */
  async measure<R>(fn: () => R | Promise<R>): Promise<MeasureResult<Awaited<R>>> {
    if (typeof fn !== 'function') throw invalid('fn', 'a function', fn);
    const frame = new ScopeFrame(frames.getStore());
    beginMeasure();
    try {
      const result = await frames.run(frame, fn);
      return { result, allocations: frame.allocations, bytesAllocated: frame.bytesAllocated, peakBytes: frame.peakBytes };
    } finally {
      frame.end();
      endMeasure();
    }
  }

  /** Allocates from the current handler: `current().alloc(bytes, options)`. */
  alloc(bytes: number, options?: AllocOptions): HostBuffer {
    if (!Controller.is(this)) throw notAController();
    return this.current().alloc(bytes, options);
  }

  /** @internal True for a Controller (a brand check: no getter or Proxy trap runs). */
  static is(value: unknown): value is Controller {
    return isObject(value) && #handlers in value;
  }

  #resolve(nameOrHandler: string | Handler): Handler {
    if (Handler.is(nameOrHandler)) return nameOrHandler;
    if (typeof nameOrHandler === 'string') return this.get(nameOrHandler);
    throw invalid('handler', 'a registered name or a pinpool handler', nameOrHandler);
  }
}

/** A controller of its own, for tests and libraries that must not touch the process's. */
export function createController(): Controller {
  return new Controller();
}

/** The process's controller (one per thread). */
export const controller: Controller = new Controller();

/**
 * Allocates from the current async context's handler.
 *
 * @example
 * await controller.run('pinned', async () => { using buf = alloc(1 << 20); });
 */
export function alloc(bytes: number, options?: AllocOptions): HostBuffer {
  return controller.current().alloc(bytes, options);
}
