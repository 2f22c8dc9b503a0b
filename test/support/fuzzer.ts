/**
 * A seeded, bounded fuzzer over pinpool's public surface (docs/decisions/0010-one-typed-boundary.md), shared by
 * test/host/fuzz.test.ts (no CUDA) and test/fake-cuda/fuzz.test.ts (the CUDA test double). This file
 * holds the PRNG, the hostile values and the checks; test/support/fuzz-calls.ts the calls.
 *
 * Each case calls one public function or method with arguments drawn from a catalogue of
 * hostile values (odd numbers, BigInts, symbols, Proxies with throwing traps, revoked Proxies,
 * getters that free the buffer in use or collect garbage, freed and transferred buffers,
 * forged and replayed tokens (one carrying a scope cell), native handles of another kind,
 * detached, shared and resizable memory ...), mixed with valid values so that calls get past
 * their first check. Every call must either succeed or fail with a PinpoolError, and a call
 * that fails must leave the statistics of every handler the fuzzer knows as they were: exactly,
 * for a bad argument; for a resource error, nothing allocated and nothing more held (see
 * `violation`). At the end every buffer the fuzzer made is freed and every handler's
 * statistics, and every named scope's buffers in use, are back to zero.
 *
 * Callbacks the fuzzer hands to pinpool (controller.run, measure, bind) never throw errors of
 * their own, so that an error that is not a PinpoolError is always pinpool's. A getter with a
 * side effect (it frees a buffer, say) moves the baseline the statistics are compared with, and
 * if pinpool changed any statistic before such a getter ran, a failure of that call is
 * reported: options are to be read before anything is done.
 *
 * The seed comes from PINPOOL_FUZZ_SEED (default 9), the number of cases from
 * PINPOOL_FUZZ_CASES; a failure names the seed and the case.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import {
  adopt,
  Controller,
  controller,
  defaultHandler,
  fallback,
  Handler,
  HostBuffer,
  limit,
  locked,
  managed,
  pageable,
  shared,
  sharedRegion,
  pinned,
  pool,
  type BufferToken,
  type SharedBufferToken,
  type HandlerStats,
  type HandlerToken,
  type TraceRecorder,
} from 'pinpool';

import { binding, constants } from '../../dist/src/boundary/native.js';
import { regionName, removeRegions } from './shared-regions.js';
import { testing } from './testing.js';

/** A value and how to write it in a failure report. */
export interface Gen {
  v: unknown;
  t: string;
}

/** One kind of call; `weight` sets how often it is drawn. */
export interface Op {
  name: string;
  weight: number;
  run(f: Fuzzer): unknown;
}

const gc = (globalThis as { gc?: () => void }).gc!;

const RESOURCE_CODES = new Set([
  'ERR_PINPOOL_OUT_OF_MEMORY',
  'ERR_PINPOOL_UNAVAILABLE',
  'ERR_PINPOOL_CUDA',
]);

/**
 * A PinpoolError: its name and a stable code. Anything else thrown is a failure: the fuzzer's
 * callbacks never throw, so no error is the caller's own. What was thrown may be one of the
 * fuzzer's hostile values let through (a revoked Proxy, say): it is looked at carefully.
 */
function isPinpoolError(err: unknown): err is { name: string; code: string; message: string } {
  try {
    return (
      err instanceof Error &&
      err.name === 'PinpoolError' &&
      typeof (err as { code?: unknown }).code === 'string' &&
      (err as unknown as { code: string }).code.startsWith('ERR_PINPOOL_')
    );
  } catch {
    return false;
  }
}

function describeError(err: unknown): string {
  try {
    if (err instanceof Error) {
      const code = (err as { code?: string }).code;
      return `${err.name}${code ? ` ${code}` : ''}: ${err.message}`;
    }
    return `a thrown ${typeof err}: ${String(err)}`;
  } catch {
    return `a thrown ${typeof err} that cannot be described`;
  }
}

/** The top frames of an error's stack, if it is an Error with one. */
function framesOf(err: unknown): string[] {
  try {
    return err instanceof Error && typeof err.stack === 'string'
      ? err.stack.split('\n').filter((l) => l.startsWith('    at '))
      : [];
  } catch {
    return [];
  }
}

/**
 * What a failed call may not have done to a handler's statistics, or undefined when it kept to
 * that. A bad argument (ERR_PINPOOL_INVALID_ARGUMENT, _RELEASED, _DOUBLE_FREE) changes nothing.
 * A resource error (out of memory, unavailable, CUDA) allocated nothing and holds nothing: no
 * allocation counted, no more bytes or blocks held; it may count itself (`failures`,
 * `fallbacks`, a pool's upstream call) and do a pool's housekeeping before it failed (blocks
 * whose leases ended go to the cache, stale cached blocks upstream), which only gives memory
 * back. A replay that fails part way (`partial`) counts what it allocated and freed, and holds
 * no more than before.
 */
function violation(
  code: string,
  before: HandlerStats,
  after: HandlerStats,
  partial: boolean,
): string | undefined {
  if (!RESOURCE_CODES.has(code)) {
    const a = JSON.stringify(before);
    const b = JSON.stringify(after);
    return a === b ? undefined : `${a} -> ${b}`;
  }
  const problems: string[] = [];
  if (after.bytesInUse > before.bytesInUse)
    problems.push(`bytes held ${before.bytesInUse} -> ${after.bytesInUse}`);
  if (after.buffersInUse > before.buffersInUse)
    problems.push(`blocks held ${before.buffersInUse} -> ${after.buffersInUse}`);
  if (!partial) {
    if (after.allocations !== before.allocations)
      problems.push(`allocations ${before.allocations} -> ${after.allocations}`);
    if (after.allocatedBytes !== before.allocatedBytes)
      problems.push(`bytes allocated ${before.allocatedBytes} -> ${after.allocatedBytes}`);
  }
  if (after.gcReleased !== before.gcReleased)
    problems.push(`gcReleased ${before.gcReleased} -> ${after.gcReleased}`);
  return problems.length === 0 ? undefined : problems.join(', ');
}

const TYPED_ARRAYS = [
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
] as const;

/** `instanceof` that a Proxy's getPrototypeOf trap (or a revoked Proxy) cannot make throw. */
export function isA(value: unknown, Class: abstract new (...args: never[]) => unknown): boolean {
  try {
    return value instanceof Class;
  } catch {
    return false;
  }
}

function isObjectLike(value: unknown): value is object {
  return (typeof value === 'object' && value !== null) || typeof value === 'function';
}

type Resizable = ArrayBuffer & { resize(n: number): void };
type Growable = SharedArrayBuffer & { grow(n: number): void };

export class Fuzzer {
  readonly seed: number;
  #state: number;
  /** Failures found, each with the case and the call. */
  readonly failures: string[] = [];
  readonly #kinds = new Set<string>();
  /** Calls made. */
  cases = 0;
  /** Calls that failed with a PinpoolError, by code. */
  readonly rejections = new Map<string, number>();
  /** Milliseconds spent in each kind of call. */
  readonly timings = new Map<string, number>();
  /** Calls of each kind that succeeded and that failed. */
  readonly outcomes = new Map<string, { ok: number; failed: number }>();
  #op = '';
  readonly verbose = process.env.PINPOOL_FUZZ_VERBOSE === '1';
  #case = 0;

  /** Every handler whose statistics are compared, by native id. */
  readonly handlers = new Map<number, Handler>();
  /** Handlers used as arguments and `this` (a subset of the above, bounded). */
  readonly usable: Handler[] = [];
  /**
   * Pools whose buffers are dropped without free(), for the garbage-collection backstop (one
   * of them with slab views). The backstop returns them between ticks, so their statistics
   * are not compared across an await.
   */
  readonly leaky: Handler[];
  /** Every buffer the fuzzer was handed: live, freed and transferred. */
  readonly buffers: HostBuffer[] = [];
  /** Buffer tokens from transfer(), adopted or not. */
  readonly tokens: (BufferToken | SharedBufferToken)[] = [];
  readonly shareTokens: HandlerToken[] = [];
  readonly controllers: Controller[] = [controller];
  readonly recorders: TraceRecorder[] = [];
  readonly registries: { metrics(): Promise<string> }[] = [];
  readonly traces: unknown[][] = [];
  /** Promises left to settle on their own; each is checked when it settles. */
  readonly parked: Promise<void>[] = [];
  /** Values of other kinds that the CUDA file adds: device buffers, streams, registrations. */
  readonly extraValues: (() => Gen)[] = [];
  /** Side effects the CUDA file adds (free a device buffer ...). */
  readonly extraEffects: { t: string; run(): void }[] = [];
  /** Results the CUDA file keeps (device buffers, streams, registrations). */
  readonly keepers: ((value: unknown) => boolean)[] = [];
  readonly dir: string;
  /** A native object of another kind than a handler: a slab's lease, and the view it leases. */
  readonly #lease: { buffer: ArrayBuffer; lease: unknown };

  // The call in progress: statistics before it (moved by side effects) and whether pinpool had
  // changed them before a side effect ran.
  #inCall = false;
  #baseline: HandlerStats[] = [];
  #baselineIds: number[] = [];
  #dirty = false;
  /** The buffer the current call works on: what a side-effecting getter frees. */
  focus: HostBuffer | undefined;

  /** A shared region of the fuzzer's own: its blocks cross threads by shared tokens. */
  readonly region = regionName('fuzz');
  readonly #shared = shared({ region: this.region, bytes: 8 << 20 });
  readonly regionSecret = sharedRegion(this.#shared).secret;

  /** A region name of this process (removed at the end), for a shared() call to create. */
  newRegion(): string {
    return regionName('fuzz');
  }

  constructor(seed: number) {
    this.seed = seed >>> 0;
    this.#state = this.seed || 1;
    this.dir = mkdtempSync(join(tmpdir(), 'pinpool-fuzz-'));
    writeFileSync(join(this.dir, 'data.bin'), Buffer.alloc(10_000, 7));
    writeFileSync(join(this.dir, 'empty.bin'), '');
    mkdirSync(join(this.dir, 'sub'));
    this.leaky = [
      pool(pageable({ name: 'leaky-leaf' }), { name: 'leaky' }),
      pool(pageable({ name: 'leaky-slabs-leaf' }), { name: 'leaky-slabs', slabViews: true }),
    ];
    const slabs = pool(locked(), { slabViews: true });
    slabs.alloc(64).free();
    const scratch = binding.scratch();
    const view = binding.viewSlab(
      slabs.handle as never,
      scratch[constants.slots.slab]!,
      scratch[constants.slots.slabBytes]!,
    );
    if (view === null) throw new Error('fuzz: no slab to lease');
    this.#lease = view;
    for (const h of [
      ...this.leaky,
      pageable(),
      locked(),
      pool(pageable()),
      slabs,
      pool(pageable(), { maxCachedBytes: 4096, cacheRatio: 0 }),
      limit(pool(pageable()), { maxBytes: 1 << 16 }),
      fallback(pool(pinned()), pageable()),
      fallback(limit(pageable(), { maxBytes: 1 << 12 }), pool(pageable()), {
        minBytes: 64,
        maxBytes: 1 << 20,
      }),
      pinned(),
      managed(),
      pool(pinned({ strategy: 'register' })),
      defaultHandler(),
      this.#shared,
    ]) {
      this.addHandler(h);
    }
  }

  // --- the PRNG (mulberry32) -------------------------------------------------------------

  random(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(n: number): number {
    return Math.floor(this.random() * n);
  }

  chance(p: number): boolean {
    return this.random() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** A valid value with probability `p`, else a hostile one. */
  arg(valid: () => Gen, p = 0.6): Gen {
    return this.chance(p) ? valid() : this.hostile();
  }

  // --- what the fuzzer holds -------------------------------------------------------------

  addHandler(h: Handler): void {
    try {
      h.stats(); // a real handler (an object made from Handler.prototype is not)
    } catch {
      return;
    }
    if (!this.handlers.has(h.id)) this.handlers.set(h.id, h);
    if (this.usable.length < 24 && !this.usable.includes(h)) this.usable.push(h);
  }

  /** Keeps what a successful call returned, so that it can be used and freed later. */
  keep(value: unknown): void {
    if (isA(value, HostBuffer)) {
      const b = value as HostBuffer;
      if (this.buffers.includes(b)) return;
      this.buffers.push(b);
      const owner = b.handler;
      if (isA(owner, Handler)) this.addHandler(owner);
      return;
    }
    if (isA(value, Handler)) {
      this.addHandler(value as Handler);
      return;
    }
    if (isA(value, Controller)) {
      if (this.controllers.length < 8) this.controllers.push(value as Controller);
      return;
    }
    for (const keeper of this.keepers) if (keeper(value)) return;
  }

  liveBuffers(): HostBuffer[] {
    return this.buffers.filter((b) => !b.released);
  }

  handler(): Gen {
    const h = this.pick(this.usable);
    return { v: h, t: `h${h.id}(${h.name})` };
  }

  buffer(): Gen {
    const live = this.liveBuffers();
    if (live.length > 0 && this.chance(0.7)) {
      const b = this.pick(live);
      return { v: b, t: this.nameOf(b) };
    }
    if (this.buffers.length > 0) {
      const b = this.pick(this.buffers);
      return { v: b, t: this.nameOf(b) };
    }
    return this.hostile();
  }

  /**
   * Another object that reaches a live buffer's memory: its `bytes`, its ArrayBuffer, a
   * DataView. Never more than the block: in a slabViews pool `bytes.buffer` is the whole slab,
   * other blocks and free ones included, which the README says to keep away from.
   */
  viewOf(b: HostBuffer): Gen {
    const bytes = b.bytes;
    const ownBuffer = bytes.byteOffset === 0 && bytes.buffer.byteLength === b.byteLength;
    const which = this.int(3);
    if (which === 0 || (which === 1 && !ownBuffer))
      return { v: bytes, t: `${this.nameOf(b)}.bytes` };
    if (which === 1) return { v: bytes.buffer, t: `${this.nameOf(b)}.bytes.buffer` };
    return {
      v: new DataView(bytes.buffer, bytes.byteOffset, b.byteLength),
      t: `DataView(${this.nameOf(b)}.bytes.buffer)`,
    };
  }

  nameOf(b: HostBuffer): string {
    const i = this.buffers.indexOf(b);
    return `b${i}${b.released ? '(released)' : ''}`;
  }

  // --- statistics ------------------------------------------------------------------------

  #snapshot(): [number[], HandlerStats[]] {
    const ids = [...this.handlers.keys()];
    return [ids, ids.map((id) => this.handlers.get(id)!.stats())];
  }

  /** A side effect of a hostile value (a getter, a trap) in the middle of a call. */
  effect(what: string, fn: () => void): void {
    if (this.#inCall) {
      const [, now] = this.#snapshot();
      if (JSON.stringify(now.slice(0, this.#baseline.length)) !== JSON.stringify(this.#baseline))
        this.#dirty = true;
    }
    try {
      fn();
    } catch (err) {
      if (!isPinpoolError(err)) this.fail(`side effect ${what}`, `threw ${describeError(err)}`);
    }
    if (this.#inCall) [this.#baselineIds, this.#baseline] = this.#snapshot();
  }

  /** Records a failure; one of each kind (the same error from the same place) is enough. */
  fail(label: string, why: string, kind = why.replace(/\d+/g, 'N').slice(0, 80)): void {
    if (this.#kinds.has(kind) || this.failures.length >= 50) return;
    this.#kinds.add(kind);
    this.failures.push(`case ${this.#case}: ${label}: ${why}`);
  }

  #begin(): void {
    [this.#baselineIds, this.#baseline] = this.#snapshot();
    this.#dirty = false;
    this.#inCall = true;
  }

  #count(ok: boolean): void {
    const o = this.outcomes.get(this.#op) ?? { ok: 0, failed: 0 };
    if (ok) o.ok++;
    else o.failed++;
    this.outcomes.set(this.#op, o);
  }

  /** Checks a failure: a PinpoolError, and the statistics as they were. */
  #rejected(
    label: string,
    err: unknown,
    compare: boolean,
    exclude: Handler[] = [],
    partial = false,
  ): void {
    this.#inCall = false;
    this.#count(false);
    if (!isPinpoolError(err)) {
      // One report per place that threw: the top frame of the stack.
      const frames = framesOf(err);
      const where = frames[0]?.replace(/^ +at (\S+ )?/, '') ?? describeError(err);
      this.fail(
        label,
        `threw ${describeError(err)}${frames.length > 0 ? `\n${frames.slice(0, 3).join('\n')}` : ''}`,
        where,
      );
      return;
    }
    this.rejections.set(err.code, (this.rejections.get(err.code) ?? 0) + 1);
    if (!compare) return;
    if (this.#dirty)
      this.fail(label, `${err.code}, but statistics changed before a getter of its arguments ran`);
    this.#baselineIds.forEach((id, i) => {
      const h = this.handlers.get(id)!;
      if (exclude.includes(h)) return;
      const wrong = violation(err.code, this.#baseline[i]!, h.stats(), partial);
      if (wrong !== undefined)
        this.fail(
          label,
          `${err.code} (${err.message}) changed the statistics of ${h.name}: ${wrong}`,
          `${err.code} ${h.kind} ${err.message.slice(0, 30)}`,
        );
    });
  }

  /**
   * Makes one call and checks it. A Promise is awaited (its rejection checked like a throw)
   * or, sometimes, left to settle on its own while the fuzzer goes on.
   */
  async call(
    label: string,
    thunk: () => unknown,
    how: { partial?: boolean } = {},
  ): Promise<unknown> {
    this.cases++;
    const partial = how.partial === true;
    if (this.verbose) process.stderr.write(`${this.#case}: ${label}\n`);
    this.#begin();
    let value: unknown;
    try {
      value = thunk();
    } catch (err) {
      this.#rejected(label, err, true, [], partial);
      return undefined;
    }
    this.#inCall = false;
    if (isA(value, Promise)) {
      if (this.chance(0.3)) {
        const op = this.#op;
        const settled = (value as Promise<unknown>).then(
          (v) => {
            const o = this.outcomes.get(op) ?? { ok: 0, failed: 0 };
            o.ok++;
            this.outcomes.set(op, o);
            this.keep(v);
          },
          (err: unknown) => this.#rejected(`${label} (settled later)`, err, false),
        );
        this.parked.push(settled);
        return undefined;
      }
      try {
        value = await value;
      } catch (err) {
        // Awaiting lets the garbage-collection backstop return dropped buffers of `leaky`.
        this.#rejected(label, err, true, this.leaky, partial);
        return undefined;
      }
    }
    this.#count(true);
    this.keep(value);
    return value;
  }

  // --- hostile values ---------------------------------------------------------------------

  /** Numbers no size, offset or index accepts, and a few that it does. */
  number(): Gen {
    // No valid size between 1 MiB and 1 PiB: zero-filling 2 GiB would only be slow. 1 PiB is
    // refused by every allocator, but as a count of trace events it is a request to fill the
    // heap (see `counting`).
    const huge = this.counting ? [] : [2 ** 50];
    const v = this.pick([
      -0,
      0,
      1,
      -1,
      0.5,
      1.5,
      63,
      64,
      4096,
      NaN,
      Infinity,
      -Infinity,
      2 ** 53,
      2 ** 53 + 2,
      2 ** 64,
      -(2 ** 31),
      2 ** 31 + 0.5,
      Number.MAX_VALUE,
      Number.MIN_VALUE,
      Number.EPSILON,
      1023,
      1024,
      ...huge,
    ]);
    return { v, t: Object.is(v, -0) ? '-0' : String(v) };
  }

  /**
   * True while arguments for syntheticTrace are drawn: its `events` is how many objects to
   * build, so a huge valid count exhausts the JavaScript heap, a fatal error by V8's design
   * rather than pinpool's. Such counts are left out by construction.
   */
  counting = false;

  #primitive(): Gen {
    switch (this.int(6)) {
      case 0:
      case 1:
        return this.number();
      case 2: {
        const v = this.pick([0n, 1n, -1n, 64n, 2n ** 64n]);
        return { v, t: `${v}n` };
      }
      case 3: {
        const v = this.pick([
          '',
          '64',
          'host',
          'pinned',
          'a',
          'alloc',
          '__proto__',
          'constructor',
          'x'.repeat(300),
          '\u0000',
          'readMostly',
          'register',
          '0'.repeat(32),
          'ffffffffffffffff',
          'A B',
        ]);
        return { v, t: JSON.stringify(v.length > 40 ? `${v.slice(0, 10)}...(${v.length})` : v) };
      }
      case 4: {
        const v = this.pick([Symbol('fuzz'), Symbol.iterator, Symbol.dispose as symbol]);
        return { v, t: String(v) };
      }
      default: {
        const v = this.pick([null, undefined, true, false]);
        return { v, t: String(v) };
      }
    }
  }

  /** Objects that do something when pinpool looks at them. */
  #trap(): Gen {
    // What a trap throws is hostile too: reading its message may throw again.
    const thrown = this.int(4);
    // The values thrown are deliberately not Errors: pinpool must survive those too.
    const boom = (where: string) => () => {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- a hostile throw, on purpose
      if (thrown === 1) throw Symbol(where);
      if (thrown === 2) {
        const r = Proxy.revocable({}, {});
        r.revoke();
        // eslint-disable-next-line @typescript-eslint/only-throw-error -- a hostile throw, on purpose
        throw r.proxy;
      }
      if (thrown === 3)
        // eslint-disable-next-line @typescript-eslint/only-throw-error -- a hostile throw, on purpose
        throw {
          get message(): string {
            throw new Error('message');
          },
          toString(): string {
            throw new Error('toString');
          },
        };
      throw new Error(`fuzz: ${where}`);
    };
    switch (this.int(9)) {
      case 0:
        return { v: new Proxy({}, { get: boom('get trap') }), t: 'Proxy{get throws}' };
      case 1:
        return { v: new Proxy({}, { ownKeys: boom('ownKeys trap') }), t: 'Proxy{ownKeys throws}' };
      case 2:
        return {
          v: new Proxy({}, { getPrototypeOf: boom('getPrototypeOf trap') }),
          t: 'Proxy{getPrototypeOf throws}',
        };
      case 3:
        return {
          v: new Proxy(
            {},
            {
              has: boom('has trap'),
              getOwnPropertyDescriptor: boom('getOwnPropertyDescriptor trap'),
            },
          ),
          t: 'Proxy{has, getOwnPropertyDescriptor throw}',
        };
      case 4: {
        const r = Proxy.revocable(this.chance(0.5) ? {} : [], {});
        r.revoke();
        return { v: r.proxy, t: 'a revoked Proxy' };
      }
      case 5: {
        const r = Proxy.revocable(function () {}, {});
        r.revoke();
        return { v: r.proxy, t: 'a revoked Proxy of a function' };
      }
      case 6:
        return {
          v: {
            [Symbol.toPrimitive]: boom('toPrimitive'),
            toString: boom('toString'),
            valueOf: boom('valueOf'),
            toJSON: boom('toJSON'),
          },
          t: '{toPrimitive, toString, valueOf, toJSON throw}',
        };
      case 7: {
        // Every option name pinpool reads, as a getter that throws.
        const o = {};
        for (const key of OPTION_KEYS)
          Object.defineProperty(o, key, { get: boom(`getter ${key}`), enumerable: true });
        return { v: o, t: '{every option a throwing getter}' };
      }
      default: {
        const target = this.buffer(); // a buffer, or anything while there is none yet
        if (!isObjectLike(target.v)) return { v: new Proxy({}, {}), t: 'Proxy({})' };
        return { v: new Proxy(target.v, {}), t: `Proxy(${target.t})` };
      }
    }
  }

  /** A side effect a getter may have: free the buffer in use, collect garbage ... */
  sideEffect(): { t: string; run(): void } {
    const n = this.int(5 + this.extraEffects.length);
    if (n >= 5) return this.extraEffects[n - 5]!;
    if (n === 0) return { t: 'gc()', run: () => gc() };
    if (n === 1 && this.usable.length > 0) {
      const h = this.pick(this.usable);
      return { t: `h${h.id}.trim()`, run: () => h.trim() };
    }
    const victim =
      this.focus && !this.focus.released
        ? this.focus
        : this.pick([...this.liveBuffers(), undefined]);
    if (victim === undefined) return { t: 'gc()', run: () => gc() };
    if (n === 2) {
      return {
        t: `${this.nameOf(victim)}.transfer()`,
        run: () => {
          if (!victim.released) this.tokens.push(victim.transfer());
        },
      };
    }
    return {
      t: `${this.nameOf(victim)}.free()`,
      run: () => {
        if (!victim.released) victim.free();
      },
    };
  }

  /** An object whose getter (for `key`, or every option name) has a side effect. */
  #sideEffecting(): Gen {
    const e = this.sideEffect();
    const value = this.chance(0.5) ? this.#primitive() : { v: undefined, t: 'undefined' };
    const o = {};
    const keys = this.chance(0.5) ? OPTION_KEYS : [this.pick(OPTION_KEYS)];
    for (const key of keys) {
      Object.defineProperty(o, key, {
        get: () => {
          this.effect(e.t, () => e.run());
          return value.v;
        },
        enumerable: true,
      });
    }
    return { v: o, t: `{get ${keys.length > 1 ? '*' : keys[0]}() { ${e.t}; return ${value.t} }}` };
  }

  #plain(): Gen {
    switch (this.int(9)) {
      case 0:
        return { v: {}, t: '{}' };
      case 1:
        return { v: Object.create(null), t: 'Object.create(null)' };
      case 2:
        return {
          v: Object.freeze({ alignment: 64, bytes: 1, name: 'frozen' }),
          t: 'Object.freeze({alignment: 64, bytes: 1, name})',
        };
      case 3:
        return { v: [], t: '[]' };
      case 4:
        return { v: Object.freeze([64, 'x']), t: 'Object.freeze([64, "x"])' };
      case 5:
        // eslint-disable-next-line no-sparse-arrays
        return { v: [, 1, , 2], t: '[, 1, , 2]' };
      case 6:
        return { v: { valueOf: () => 64, toString: () => '64' }, t: '{valueOf: 64}' };
      case 7:
        return { v: Object.create(Handler.prototype), t: 'Object.create(Handler.prototype)' };
      default:
        return { v: Object.create(HostBuffer.prototype), t: 'Object.create(HostBuffer.prototype)' };
    }
  }

  #function(): Gen {
    switch (this.int(4)) {
      case 0:
        return { v: () => {}, t: '() => {}' };
      case 1:
        return { v: async () => {}, t: 'async () => {}' };
      case 2:
        // eslint-disable-next-line @typescript-eslint/no-extraneous-class -- an empty class is the value under test
        return { v: class {}, t: 'class {}' };
      default:
        return { v: Handler, t: 'Handler' };
    }
  }

  /** Host memory of every shape: typed arrays of each kind over plain, shared, resizable ... */
  memory(): Gen {
    const n = this.int(9);
    if (n === 0) {
      const ab = new ArrayBuffer(64);
      const views = [new Uint8Array(ab), new DataView(ab, 8)];
      structuredClone(ab, { transfer: [ab] });
      const which = this.int(3);
      if (which === 0) return { v: ab, t: 'a detached ArrayBuffer' };
      return which === 1
        ? { v: views[0], t: 'a Uint8Array over a detached ArrayBuffer' }
        : { v: views[1], t: 'a DataView over a detached ArrayBuffer' };
    }
    if (n === 1) return { v: Buffer.alloc(64, 1), t: 'Buffer.alloc(64)' };
    if (n === 2) {
      if (this.chance(0.5))
        return { v: new DataView(new ArrayBuffer(64), 8), t: 'DataView(ArrayBuffer(64), 8)' };
      const r = new (ArrayBuffer as unknown as new (n: number, o: object) => Resizable)(128, {
        maxByteLength: 256,
      });
      const view = new DataView(r, 64, 32);
      r.resize(this.pick([0, 80, 200]));
      return { v: view, t: `DataView(resizable ArrayBuffer(128 -> ${r.byteLength}), 64, 32)` };
    }
    if (n === 3) return { v: new ArrayBuffer(0), t: 'ArrayBuffer(0)' };
    if (n === 4) return { v: new SharedArrayBuffer(64), t: 'SharedArrayBuffer(64)' };
    // The view is made first, then its buffer resized: a view may end up out of bounds.
    const Kind = this.pick(TYPED_ARRAYS);
    const tracking = this.chance(0.5);
    const viewOf = (b: ArrayBufferLike) =>
      tracking ? new Kind(b as ArrayBuffer, 8) : new Kind(b as ArrayBuffer, 8, 1);
    const where = this.int(4);
    let view: ArrayBufferView;
    let t: string;
    if (where === 0) {
      view = viewOf(new ArrayBuffer(128));
      t = 'ArrayBuffer(128)';
    } else if (where === 1) {
      view = viewOf(new SharedArrayBuffer(128));
      t = 'SharedArrayBuffer(128)';
    } else if (where === 2) {
      const r = new (ArrayBuffer as unknown as new (n: number, o: object) => Resizable)(128, {
        maxByteLength: 256,
      });
      view = viewOf(r);
      if (this.chance(0.5)) r.resize(this.pick([0, 8, 200]));
      t = `resizable ArrayBuffer(128 -> ${r.byteLength})`;
    } else {
      const g = new (SharedArrayBuffer as unknown as new (n: number, o: object) => Growable)(128, {
        maxByteLength: 256,
      });
      view = viewOf(g);
      if (this.chance(0.5)) g.grow(200);
      t = `growable SharedArrayBuffer(128 -> ${g.byteLength})`;
    }
    return { v: view, t: `${Kind.name}(${t}, 8${tracking ? '' : ', 1'})` };
  }

  /** Pinpool's own objects, used where they do not belong. */
  #pinpoolObject(): Gen {
    switch (this.int(8)) {
      case 0:
      case 1:
        return this.buffer();
      case 2:
        return this.handler();
      case 3: {
        const h = this.pick(this.usable);
        // A native handle for other addons (handler.nativeHandle()) passes for nothing inside.
        if (this.chance(0.3)) return { v: h.nativeHandle(), t: `h${h.id}.nativeHandle()` };
        return { v: h.handle, t: `h${h.id}.handle` };
      }
      case 4:
        return this.token();
      case 5: {
        const c = this.pick(this.controllers);
        return { v: c, t: c === controller ? 'controller' : 'a Controller' };
      }
      case 6: {
        const b = this.liveBuffers();
        if (b.length === 0) return this.memory();
        return this.viewOf(this.pick(b));
      }
      default:
        if (this.chance(0.5)) return { v: this.#lease.lease, t: "a slab's native lease" };
        return { v: binding.scratch(), t: 'the binding scratch array' };
    }
  }

  /** A token: real, replayed, forged, altered, of the other kind. */
  token(): Gen {
    const n = this.int(10);
    const processKey =
      this.tokens.find((t) => t.pinpool === 'buffer')?.process ??
      this.shareTokens[0]?.process ??
      '0123456789abcdef';
    if (n <= 1 && this.tokens.length > 0) {
      const t = this.pick(this.tokens);
      return { v: t, t: `token of transfer #${this.tokens.indexOf(t)}` };
    }
    if (n === 2 && this.shareTokens.length > 0) {
      const t = this.pick(this.shareTokens);
      return { v: t, t: `share token of handler ${t.id}` };
    }
    if (n === 3)
      return {
        v: { pinpool: 'buffer', version: 2, id: '0'.repeat(31) + '1', process: processKey },
        t: 'a forged buffer token (guessed id)',
      };
    if (n === 4)
      return {
        v: { pinpool: 'buffer', version: 2, id: 'x'.repeat(32), process: processKey },
        t: 'a forged buffer token (not hex)',
      };
    if (n === 5 && this.tokens.length > 0) {
      const t = this.pick(this.tokens);
      return { v: { ...t, process: 'ffffffffffffffff' }, t: 'a buffer token from another process' };
    }
    if (n === 6) {
      const h = this.pick(this.usable);
      return {
        v: {
          pinpool: 'handler',
          version: 2,
          id: h.id,
          secret: '0'.repeat(32),
          process: processKey,
        },
        t: `a forged share token of h${h.id}`,
      };
    }
    if (n === 7 && this.shareTokens.length > 0) {
      const t = this.pick(this.shareTokens);
      return { v: { ...t, slabViews: true }, t: 'a share token claiming slabViews' };
    }
    if (n === 8 && this.tokens.length > 0) {
      // The scope cell old tokens carried: refused, and no scope's count moves (finish()).
      const t = this.pick(this.tokens);
      const scope = this.chance(0.5)
        ? new SharedArrayBuffer(16)
        : new BigInt64Array(new SharedArrayBuffer(16)).fill(1n << 40n).buffer;
      return { v: { ...t, scope }, t: 'a buffer token carrying a forged scope cell' };
    }
    return {
      v: { pinpool: 'buffer', version: 1, id: 1 },
      t: '{pinpool: "buffer", version: 1, id: 1}',
    };
  }

  /** Any hostile value. */
  hostile(): Gen {
    const n = this.int(16 + (this.extraValues.length > 0 ? 3 : 0));
    if (n < 3) return this.#primitive();
    if (n < 5) return this.#plain();
    if (n < 8) return this.#trap();
    if (n < 10) return this.#sideEffecting();
    if (n < 13) return this.#pinpoolObject();
    if (n < 15) return this.memory();
    if (n < 16) return this.#function();
    return this.pick(this.extraValues)();
  }

  /**
   * An options object: some of `fields` (each valid or hostile), some as getters with side
   * effects; or undefined; or a hostile value.
   */
  options(fields: Record<string, () => Gen>): Gen {
    const n = this.int(10);
    if (n === 0) return { v: undefined, t: 'undefined' };
    if (n === 1) return this.hostile();
    const o: Record<string, unknown> = {};
    const parts: string[] = [];
    for (const [key, valid] of Object.entries(fields)) {
      if (!this.chance(0.5)) continue;
      const value = this.arg(valid, 0.75);
      if (this.chance(0.15)) {
        const e = this.sideEffect();
        Object.defineProperty(o, key, {
          get: () => {
            this.effect(e.t, () => e.run());
            return value.v;
          },
          enumerable: true,
        });
        parts.push(`get ${key}() { ${e.t}; return ${value.t} }`);
      } else {
        o[key] = value.v;
        parts.push(`${key}: ${value.t}`);
      }
    }
    if (this.chance(0.05)) Object.freeze(o);
    return { v: o, t: `{${parts.join(', ')}}` };
  }

  // --- valid values -----------------------------------------------------------------------

  size(): Gen {
    const v = this.pick([0, 1, 7, 64, 100, 1000, 4096, 5000, 65536, 1 << 20]);
    return { v, t: String(v) };
  }

  small(): Gen {
    const v = this.pick([0, 1, 2, 16, 100]);
    return { v, t: String(v) };
  }

  alignment(): Gen {
    const v = this.pick([1, 2, 64, 4096, 65536]);
    return { v, t: String(v) };
  }

  bool(): Gen {
    const v = this.chance(0.5);
    return { v, t: String(v) };
  }

  device(): Gen {
    const v = this.pick([0, 0, 0, 1, 1023]);
    return { v, t: String(v) };
  }

  name(): Gen {
    const v = this.pick(['a', 'fuzz', 'pinned', 'x-1', 'y_2']);
    return { v, t: JSON.stringify(v) };
  }

  path(): Gen {
    const v = this.pick([
      join(this.dir, 'data.bin'),
      join(this.dir, 'empty.bin'),
      join(this.dir, 'sub'),
      join(this.dir, 'missing.bin'),
      '/dev/null',
      '/proc/self/stat',
    ]);
    return { v, t: JSON.stringify(v) };
  }

  traceValue(): Gen {
    if (this.traces.length > 0 && this.chance(0.5))
      return { v: this.pick(this.traces), t: 'a synthetic trace' };
    const n = this.int(5);
    if (n === 0) return { v: [], t: '[]' };
    if (n === 1)
      return {
        v: [
          { op: 'alloc', id: 1, bytes: 64, alignment: 64 },
          { op: 'free', id: 1 },
        ],
        t: '[alloc 1, free 1]',
      };
    if (n === 2) {
      const e = this.hostile();
      return { v: [{ op: 'alloc', id: 1, bytes: 64, alignment: 64 }, e.v], t: `[alloc 1, ${e.t}]` };
    }
    if (n === 3) {
      // An event whose getters change between the check and the replay.
      let reads = 0;
      const e = {
        op: 'alloc',
        id: 1,
        alignment: 64,
        get bytes() {
          return reads++ === 0 ? 64 : -1;
        },
      };
      return { v: [e], t: '[alloc whose bytes getter says 64, then -1]' };
    }
    const e = this.#trap();
    return { v: [e.v], t: `[${e.t}]` };
  }

  // --- the run ----------------------------------------------------------------------------

  /** Runs `cases` calls drawn from `ops`, with garbage collections and ticks at random. */
  async run(ops: readonly Op[], cases: number): Promise<void> {
    const total = ops.reduce((sum, op) => sum + op.weight, 0);
    for (this.#case = 0; this.#case < cases; this.#case++) {
      this.focus = undefined;
      if (this.chance(0.01)) gc();
      if (this.chance(0.02)) await tick();
      // Keep the live set small: free the oldest buffers.
      const live = this.liveBuffers();
      if (live.length > 48) for (const b of live.slice(0, 16)) b.free();
      let r = this.random() * total;
      const op = ops.find((o) => (r -= o.weight) < 0) ?? ops[ops.length - 1]!;
      const started = performance.now();
      this.#op = op.name;
      await op.run(this);
      this.timings.set(op.name, (this.timings.get(op.name) ?? 0) + performance.now() - started);
    }
  }

  /** Frees everything the fuzzer holds and checks that every statistic is back to zero. */
  async finish(cleanups: (() => Promise<void> | void)[] = []): Promise<void> {
    this.#case = -1;
    for (const r of this.recorders.splice(0)) r.stop();
    await Promise.all(this.parked.splice(0));
    for (const t of this.tokens) {
      try {
        adopt(t).free();
      } catch (err) {
        if (!isPinpoolError(err) || err.code !== 'ERR_PINPOOL_RELEASED')
          this.fail('adopt at the end', describeError(err));
      }
    }
    for (const b of this.liveBuffers()) b.free();
    for (const c of cleanups) await c();
    // Until the backstop has returned every dropped buffer (no WeakRef is looked at: deref()
    // would keep its buffer alive through the collection that follows).
    const scopesInUse = () =>
      this.controllers
        .flatMap((c) => c.scopes())
        .filter((s) => s.bytesInUse !== 0 || s.buffersInUse !== 0);
    for (
      let i = 0;
      i < 100 && (this.leaky.some((h) => h.stats().bytesInUse > 0) || scopesInUse().length > 0);
      i++
    ) {
      gc();
      await tick();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    binding.releaseSlabView(this.#lease.buffer, this.#lease.lease as never);
    rmSync(this.dir, { recursive: true, force: true });
    removeRegions();
    for (const h of this.handlers.values()) h.trim();
    for (const h of this.handlers.values()) {
      const s = h.stats();
      const left = {
        bytes: s.bytesInUse,
        allocations: s.buffersInUse,
        reserved: s.reservedBytes,
        cachedBytes: s.cachedBytes,
        deferred: testing().deferred(h.handle as never),
      };
      if (Object.values(left).some((v) => v !== 0))
        this.fail('at the end', `${h.name} (h${h.id}) still holds ${JSON.stringify(left)}`);
    }
    // Every buffer is freed: no scope counts any in use, whatever tokens were forged.
    for (const s of scopesInUse())
      this.fail(
        'at the end',
        `scope ${s.name} still counts ${s.bytesInUse} bytes in ${s.buffersInUse} buffers in use`,
      );
  }
}

/** Every option and token field name pinpool reads. */
export const OPTION_KEYS = [
  'alignment',
  'zero',
  'name',
  'device',
  'portable',
  'mapped',
  'writeCombined',
  'strategy',
  'maxCachedBytes',
  'cacheRatio',
  'slabViews',
  'minBytes',
  'maxBytes',
  'bytes',
  'srcOffset',
  'dstOffset',
  'stream',
  'replace',
  'registry',
  'prefix',
  'labels',
  'controller',
  'events',
  'seed',
  'live',
  'writable',
  'register',
  'copy',
  'handler',
  'pinpool',
  'version',
  'id',
  'secret',
  'process',
  'scope',
  'op',
] as const;

/** One line on what a run did: calls, time, rejections by code, and outcomes by kind of call. */
export function summary(f: Fuzzer, project: string, seconds: number): string {
  const outcomes = [...f.outcomes]
    .map(([name, o]) => `${name} ${o.ok}/${o.ok + o.failed}`)
    .join('; ');
  return `fuzz (${project}): seed ${f.seed}, ${f.cases} calls in ${seconds.toFixed(1)} s; rejections ${JSON.stringify(Object.fromEntries(f.rejections))}; succeeded by kind: ${outcomes}`;
}

/** PINPOOL_FUZZ_SEED, or the default. */
export function fuzzSeed(): number {
  const s = process.env.PINPOOL_FUZZ_SEED;
  return s === undefined || s === '' ? 9 : Number(s) >>> 0;
}

/** PINPOOL_FUZZ_CASES, or `fallback`. */
export function fuzzCases(fallback: number): number {
  const n = Number(process.env.PINPOOL_FUZZ_CASES);
  return Number.isSafeInteger(n) && n > 0 ? n : fallback;
}
