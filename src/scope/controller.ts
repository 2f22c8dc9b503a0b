/**
 * The controller: named handlers, and which one is current in each async context. The only
 * module that touches AsyncLocalStorage. A scope is entered with `run()` and ends when its
 * function (and everything it scheduled) is done; nothing is ever set and restored.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

import { ErrorCode, PinpoolError } from '../boundary/errors.js';
import { Handler, type AllocOptions } from '../memory/handler.js';
import { defaultHandler } from '../memory/factories.js';
import { HostBuffer } from '../memory/host-buffer.js';
import {
  beginMeasure,
  endMeasure,
  installFrameLookup,
  ScopeAccount,
  ScopeFrame,
} from '../memory/scope-cells.js';
import { checkBoolean, invalid, isObject, optionsOf } from '../boundary/validate.js';

const NAME = /^[a-z][a-z0-9_-]{0,62}$/;

// Measure frames are per async context and shared by every controller.
const frames = new AsyncLocalStorage<ScopeFrame>();
installFrameLookup(() => frames.getStore());

/** What `controller.measure()` resolves to: `fn`'s result and what its scope allocated. */
export interface MeasureResult<T> {
  result: T;
  /** Allocations made inside the scope (and scopes nested in it). */
  allocations: number;
  bytesAllocated: number;
  /** Highest bytes in use by the scope's own allocations at any moment. */
  peakBytes: number;
}

/** A named scope as `scopes()` reports it. */
export interface ScopeInfo {
  name: string;
  /** The name of the handler the scope is bound to now. */
  handler: string;
  /** How often `switch()` rebound it. */
  switches: number;
  /** Allocations `alloc()` made while the scope was current, and their bytes. */
  allocations: number;
  allocatedBytes: number;
  /** Of those, the bytes and buffers not freed yet (in this thread or any other). */
  bytesInUse: number;
  buffersInUse: number;
}

/**
 * What run(scopeName) makes current: the scope's handler and its account. run(handler) makes
 * the handler itself current (no object made per run); both answer alloc().
 */
class Entered {
  constructor(
    readonly handler: Handler,
    readonly account: ScopeAccount,
  ) {}

  /** The handler's alloc(), counted in the scope until the buffer is freed. */
  alloc(bytes: number, options: AllocOptions | undefined): HostBuffer {
    const buf = this.handler.alloc(bytes, options);
    HostBuffer.countIn(buf, this.account);
    return buf;
  }
}

interface NamedScope {
  /** The registered name it is bound to. */
  handler: string;
  switches: number;
  readonly account: ScopeAccount;
  /** What run(name) enters, remade when the binding or the handler behind the name changes. */
  entered: Entered | undefined;
}

function notAController(): PinpoolError {
  return new PinpoolError(ErrorCode.INVALID_ARGUMENT, 'pinpool: not a pinpool Controller');
}

const readRegisterOptions = optionsOf<{ replace?: boolean }>('controller.register', {
  replace: true,
});

/** A registry of named handlers with a per-async-context current handler. */
export class Controller {
  readonly #handlers = new Map<string, Handler>();
  // Named scopes: a name that run() and route configs use, bound to a registered handler's name
  // and switched at run time (switch()). One namespace with the handlers' names.
  readonly #scopes = new Map<string, NamedScope>();
  readonly #storage = new AsyncLocalStorage<Handler | Entered>();
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
    if (typeof name !== 'string' || !NAME.test(name))
      throw invalid('handler name', 'a name matching /^[a-z][a-z0-9_-]{0,62}$/', name);
    if (!Handler.is(handler)) throw invalid('handler', 'a pinpool handler', handler);
    const o = readRegisterOptions(options);
    const replace = o.replace === undefined ? false : checkBoolean(o.replace, 'replace');
    if (this.#handlers.has(name) && !replace) {
      throw new PinpoolError(
        ErrorCode.INVALID_ARGUMENT,
        `pinpool: a handler named '${name}' is registered already (pass { replace: true })`,
      );
    }
    if (this.#scopes.has(name))
      throw new PinpoolError(
        ErrorCode.INVALID_ARGUMENT,
        `pinpool: '${name}' names a scope; a handler cannot take that name`,
      );
    this.#handlers.set(name, handler);
  }

  /**
   * Defines a named scope bound to the handler registered as `handlerName`. `run(name, fn)` and a
   * route's `config: { pinpool: name }` then use whatever handler the scope is bound to when they
   * are entered; `switch()` rebinds it. Scope names follow the handler-name rule and share its
   * namespace.
   *
   * @example
   * controller.scope('ingest', 'pinned');
   * await controller.run('ingest', async () => alloc(1 << 20));
   */
  scope(name: string, handlerName: string): void {
    if (!Controller.is(this)) throw notAController();
    if (typeof name !== 'string' || !NAME.test(name))
      throw invalid('scope name', 'a name matching /^[a-z][a-z0-9_-]{0,62}$/', name);
    if (this.#scopes.has(name))
      throw new PinpoolError(
        ErrorCode.INVALID_ARGUMENT,
        `pinpool: a scope named '${name}' is defined already (switch() rebinds it)`,
      );
    if (this.#handlers.has(name))
      throw new PinpoolError(
        ErrorCode.INVALID_ARGUMENT,
        `pinpool: '${name}' names a registered handler; a scope cannot take that name`,
      );
    this.get(handlerName); // a registered handler, or throw
    this.#scopes.set(name, {
      handler: handlerName,
      switches: 0,
      account: new ScopeAccount(),
      entered: undefined,
    });
  }

  /**
   * Binds scope `name` to the handler registered as `handlerName` and returns the name it was
   * bound to. Scopes entered from now on use the new handler; work already running in the scope
   * keeps the handler it was entered with, and every buffer goes back to the handler that
   * allocated it.
   */
  switch(name: string, handlerName: string): string {
    if (!Controller.is(this)) throw notAController();
    const scope = this.#scopeOf(name);
    this.get(handlerName);
    const previous = scope.handler;
    scope.handler = handlerName;
    scope.entered = undefined;
    scope.switches++;
    return previous;
  }

  /**
   * The named scopes, in definition order: each one's handler, how often it was switched, and
   * what `alloc()` allocated in it (`handler.alloc()` called directly counts for its handler
   * only). A buffer counts in the scope it was allocated in until it is freed, whichever
   * handler the scope is bound to by then.
   */
  scopes(): ScopeInfo[] {
    if (!Controller.is(this)) throw notAController();
    return [...this.#scopes].map(([name, s]) => ({
      name,
      handler: s.handler,
      switches: s.switches,
      allocations: s.account.allocations,
      allocatedBytes: s.account.allocatedBytes,
      bytesInUse: s.account.bytesInUse,
      buffersInUse: s.account.buffersInUse,
    }));
  }

  /**
   * The handler `name` reaches now: a scope's current handler, or the handler registered as
   * `name`. Unknown names throw.
   */
  resolve(name: string): Handler {
    if (!Controller.is(this)) throw notAController();
    const scope = typeof name === 'string' ? this.#scopes.get(name) : undefined;
    return this.get(scope === undefined ? name : scope.handler);
  }

  /** The handler registered under `name`; unknown names throw. */
  get(name: string): Handler {
    if (!Controller.is(this)) throw notAController();
    const known = () => this.names().join(', ') || 'none';
    if (typeof name !== 'string')
      throw invalid('handler name', `a registered name (known: ${known()})`, name);
    const h = this.#handlers.get(name);
    if (h === undefined) {
      throw new PinpoolError(
        ErrorCode.INVALID_ARGUMENT,
        `pinpool: no handler is registered as ${JSON.stringify(name)} (known: ${known()})`,
      );
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
    const entered = this.#storage.getStore();
    if (entered === undefined) return this.defaultHandler();
    return entered instanceof Entered ? entered.handler : entered;
  }

  /**
   * Runs `fn(...args)` with `nameOrHandler` (a handler, a registered handler's name, or a scope's
   * name: its handler now) current in it and in everything it schedules
   * (awaits, timers, promises, listeners added inside). Returns what `fn` returns.
   *
   * @example
   * await controller.run('pinned', async () => { using b = alloc(4096); ... });
   */
  run<A extends unknown[], R>(
    nameOrHandler: string | Handler,
    fn: (...args: A) => R,
    ...args: A
  ): R {
    if (!Controller.is(this)) throw notAController();
    const entered = this.#enter(nameOrHandler);
    if (typeof fn !== 'function') throw invalid('fn', 'a function', fn);
    // Without arguments, skip the spread: run() is on every request's path.
    return args.length === 0
      ? this.#storage.run(entered, fn)
      : this.#storage.run(entered, fn, ...args);
  }

  /**
   * Binds `fn` to the current async context, scope and measure included: wherever it is
   * called later, it runs as if called here. Plain EventEmitter listeners run in the context
   * of whoever emits, so a listener that must allocate from its scope's handler is bound:
   * `emitter.on('data', controller.bind(onData))` (or the emitter is an
   * `EventEmitterAsyncResource` made inside the scope).
   */
  bind<F extends (...args: never[]) => unknown>(fn: F): F {
    if (!Controller.is(this)) throw notAController();
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
    if (!Controller.is(this)) throw notAController();
    if (typeof fn !== 'function') throw invalid('fn', 'a function', fn);
    const frame = new ScopeFrame(frames.getStore());
    beginMeasure();
    try {
      const result = await frames.run(frame, fn);
      return {
        result,
        allocations: frame.allocations,
        bytesAllocated: frame.bytesAllocated,
        peakBytes: frame.peakBytes,
      };
    } finally {
      frame.end();
      endMeasure();
    }
  }

  /**
   * Allocates from the current handler, as `current().alloc(bytes, options)`, and counts the
   * buffer in the named scope it is made in, if any.
   */
  alloc(bytes: number, options?: AllocOptions): HostBuffer {
    if (!Controller.is(this)) throw notAController();
    return (this.#storage.getStore() ?? this.defaultHandler()).alloc(bytes, options);
  }

  /** @internal True for a Controller (a brand check: no getter or Proxy trap runs). */
  static is(value: unknown): value is Controller {
    return isObject(value) && #handlers in value;
  }

  /** What run(nameOrHandler) makes current; throws for anything but a handler or a known name. */
  #enter(nameOrHandler: string | Handler): Handler | Entered {
    if (Handler.is(nameOrHandler)) return nameOrHandler;
    const scope = typeof nameOrHandler === 'string' ? this.#scopes.get(nameOrHandler) : undefined;
    if (scope === undefined) return this.#resolve(nameOrHandler);
    // Looked up at every entry: register(name, h, { replace: true }) moves the scope along.
    const handler = this.get(scope.handler);
    if (scope.entered?.handler !== handler) scope.entered = new Entered(handler, scope.account);
    return scope.entered;
  }

  #scopeOf(name: string): NamedScope {
    const scope = typeof name === 'string' ? this.#scopes.get(name) : undefined;
    if (scope === undefined) {
      const known = [...this.#scopes.keys()].join(', ') || 'none';
      throw invalid('scope name', `a defined scope (known: ${known})`, name);
    }
    return scope;
  }

  #resolve(nameOrHandler: string | Handler): Handler {
    if (Handler.is(nameOrHandler)) return nameOrHandler;
    if (typeof nameOrHandler === 'string') return this.resolve(nameOrHandler);
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
  return controller.alloc(bytes, options);
}
