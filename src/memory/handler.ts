/**
 * Handler: the JavaScript face of a native allocator handler (include/pinpool.h). Leaves and
 * adaptors are all Handlers; factories live in factories.ts.
 */
import {
  ADDRESS,
  CLASS_BYTES,
  LIVE_SLOT,
  ROUTE,
  SLAB_ADDRESS,
  SLAB_BYTES,
  scratch,
  SERVED_BY,
} from '../boundary/cells.js';
import { ErrorCode, internalError, PinpoolError } from '../boundary/errors.js';
import {
  Block,
  elementSize,
  makeHostBuffer,
  type HostBuffer,
  type SlabView,
  type TypedArrayConstructor,
} from './host-buffer.js';
import {
  binding,
  constants,
  type HandlerKind,
  type LeafKind,
  type NativeHandle,
} from '../boundary/native.js';
import { currentFrame } from './scope-cells.js';
import { readStats, type HandlerStats } from './stats.js';
import { inspectAs, inspectSymbol, type InspectArguments } from '../boundary/inspect.js';
import { handOut, takeBack } from './take-back.js';
import {
  DEFAULT_THREAD_CACHE_BYTES,
  dropWhenCollected,
  movesBuffers,
  ThreadCache,
} from './thread-cache.js';
import {
  allocChannel,
  fallbackChannel,
  type AllocMessage,
  type FallbackMessage,
} from '../boundary/channels.js';
import {
  checkAlignment,
  checkBoolean,
  checkBytes,
  invalid,
  isObject,
  optionsOf,
} from '../boundary/validate.js';

// The kinds are native code's (constants().kinds), declared for the types in boundary/native.ts,
// which checks the two agree at load.
export type { HandlerKind, LeafKind };

/** Alignment of a block when none is asked for, in bytes (a cache line). */
export const DEFAULT_ALIGNMENT = 64;
const { views } = constants;

/** Options of an allocation: `handler.alloc()`, `allocArray()` and the scoped `alloc()`. */
export interface AllocOptions {
  /** A power of two from 1 to 2**30, in bytes. Default 64. */
  alignment?: number;
  /** Fill the block with zeros (NEP 49's calloc). Default false: it holds what it held. */
  zero?: boolean;
}

const readAllocOptions = optionsOf<AllocOptions>('alloc', { alignment: true, zero: true });

/** Options of `handler.trim()`. */
export interface TrimOptions {
  /**
   * Pools: also give back what `reserve()` and `initialBytes` reserved, the chunks that hold no
   * block. Default false: a trim keeps the reservation.
   */
  reservation?: boolean;
}

const readTrimOptions = optionsOf<TrimOptions>('trim', { reservation: true });

/**
 * The token `handler.share()` returns and `attach()` accepts; postMessage can carry it. It
 * names the handler by id and carries its 128-bit secret and the process it was made in, so a
 * guessed or foreign token reaches nothing.
 */
export interface HandlerToken {
  readonly pinpool: 'handler';
  readonly version: 2;
  readonly id: number;
  readonly secret: string;
  readonly process: string;
  /** The pool hands out slab views (its `slabViews` option), in the attaching thread too. */
  readonly slabViews?: boolean;
  /** The pool's `threadCacheBytes`, when not the default, for the attaching thread's cache. */
  readonly threadCacheBytes?: number;
}

/**
 * What `handler.nativeHandle()` returns: an opaque value for another native addon, which
 * unwraps it with `pinpool_unwrap_native_handle()` (include/pinpool.h).
 */
export interface PinpoolNativeHandle {
  readonly __pinpoolNativeHandle: unique symbol;
}

function notAHandler(): PinpoolError {
  return new PinpoolError(ErrorCode.INVALID_ARGUMENT, 'pinpool: not a pinpool Handler');
}

const NO_SLAB = new ArrayBuffer(0);

/**
 * This thread's wrapper of each native handler, by id: whether a factory, attach() or adopt()
 * made it, one native handler has one wrapper per thread, so that its slab views, its trim()
 * and a mapped file's one block belong to one object.
 */
const wrappers = new Map<number, WeakRef<Handler>>();
const forget = new FinalizationRegistry<number>((id) => {
  if (wrappers.get(id)?.deref() === undefined) wrappers.delete(id);
});

let fallbacksTraced = false; // this thread's native fallback log is on

/**
 * An allocator handler: a native object with a context, shared by every thread that attaches
 * it. `alloc()` returns a HostBuffer; its memory always returns to this handler.
 */
export class Handler {
  /** Name for people and metrics. */
  readonly name: string;
  /** 'pinned', 'managed', 'locked', 'pageable', 'pool', 'fallback' or 'limit'. */
  readonly kind: HandlerKind;
  /** The handlers this one takes memory from (adaptors), kept alive by this one. */
  readonly upstreams: readonly Handler[];
  /** @internal The native id, also used in share tokens. */ readonly id: number;
  // Private, so no other value can be put in its place (the native side checks its type tag).
  readonly #handle: NativeHandle;
  readonly #slabs: Map<number, SlabView> | undefined;
  // This thread's caches in front of the handler, one per route that has one (a pool has one
  // route, itself); see thread-cache.ts. `#byRoute` holds null for a route that caches nothing.
  // The first made is also in `#cache` (a pool's only one), which a hit reads without a loop.
  readonly #caches: ThreadCache[] = [];
  readonly #byRoute: (ThreadCache | null)[] = [];
  #cache: ThreadCache | undefined = undefined;
  readonly #cacheBytes: number | undefined; // the pool's threadCacheBytes, when not the default
  // Pools: reserve() calls under way, and failed ones not yet reported by a reserve().
  readonly #reservations = new Set<Promise<number>>();
  // A file-mapping handler (mapFile) serves its one block once; this wrapper has asked for it.
  #fileMapped: boolean | undefined;

  /** @internal Use the factories: pinned(), pool(), ... */
  constructor(
    handle: NativeHandle,
    upstreams: readonly Handler[] = [],
    slabViews = false,
    threadCacheBytes?: number,
  ) {
    // Only a native handler (its type tag is checked natively); describe() also takes ids. The
    // constructor is reachable from JavaScript, where `handle` may be any value.
    const given: unknown = handle;
    const d = typeof given === 'object' && given !== null ? binding.describe(handle) : null;
    if (d === null)
      throw new PinpoolError(ErrorCode.INVALID_ARGUMENT, 'pinpool: not a native handler');
    // One wrapper per native handler per thread (the factories make new handlers; attach() and
    // adopt() find this thread's wrapper): its slab views, its thread cache and a mapped file's
    // one block belong to one object. A second wrapper would keep a second thread cache, whose
    // blocks stay out of the pool until that wrapper is collected.
    if (wrappers.get(d.id)?.deref() !== undefined) {
      throw new PinpoolError(
        ErrorCode.INVALID_ARGUMENT,
        `pinpool: this thread has a wrapper of handler ${d.id} already (use it, or attach() its token)`,
      );
    }
    this.#handle = handle;
    this.id = d.id;
    this.name = d.name;
    this.kind = d.kind as HandlerKind;
    this.upstreams = Object.freeze([...upstreams]);
    this.#slabs = slabViews ? new Map() : undefined;
    this.#fileMapped = d.kind === 'file' ? false : undefined;
    this.#cacheBytes = threadCacheBytes;
    // A pool's one route (itself) has its cache at once; a chain's are made as their first
    // blocks come.
    if (d.kind === 'pool') this.#cacheFor(0);
    wrappers.set(this.id, new WeakRef(this));
    forget.register(this, this.id);
  }

  /** @internal The native handler, for pinpool's own modules. */
  get handle(): NativeHandle {
    if (!Handler.is(this)) throw notAHandler();
    return this.#handle;
  }

  /**
   * Allocates `bytes` bytes (0 gives an empty buffer).
   *
   * @example
   * const buf = handler.alloc(4096, { alignment: 4096, zero: true });
   */
  alloc(bytes: number, options?: AllocOptions): HostBuffer {
    if (!Handler.is(this)) throw notAHandler();
    if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0) checkBytes(bytes);
    let alignment = DEFAULT_ALIGNMENT;
    let zero = false;
    if (options !== undefined) {
      const o = readAllocOptions(options);
      if (o.alignment !== undefined) alignment = checkAlignment(o.alignment);
      if (o.zero !== undefined) zero = checkBoolean(o.zero, 'zero');
    }
    if (this.#fileMapped !== undefined) {
      // Natively a second allocation is refused too, but counted as a failure: bad input must
      // change no statistics.
      if (this.#fileMapped)
        throw new PinpoolError(
          ErrorCode.INVALID_ARGUMENT,
          `pinpool: ${this.name} maps its file once; call mapFile() again for another buffer`,
        );
      this.#fileMapped = true;
    }
    const cache = this.#cache;
    if (cache !== undefined) {
      const block = cache.take(bytes, alignment) ?? this.#takeFromOthers(bytes, alignment);
      if (block !== undefined) {
        const buffer = block.spare;
        block.spare = undefined;
        return this.#handOut(block, buffer, zero);
      }
    }
    if (fallbackChannel.hasSubscribers !== fallbacksTraced)
      binding.traceFallbacks((fallbacksTraced = !fallbacksTraced));
    // A slabViews pool views the block through its slab when the pool carved it from one (only
    // the pool knows: large and passed-through blocks are not); otherwise it gets a buffer.
    const view = this.#slabs === undefined ? views.buffer : views.slabOrBuffer;
    let ab = binding.alloc(this.#handle, bytes, alignment, view);
    if (ab === null) {
      const error = binding.takeError();
      // A limit refused while this thread's caches hold some of its budget: they give it back
      // (the limit asked every thread's), and the request is tried once more.
      const limited = error instanceof PinpoolError && error.reason === 'limit';
      if (!limited || !this.#givesBackCached()) {
        if (fallbacksTraced) this.#publishFallbacks(bytes);
        throw error;
      }
      ab = binding.alloc(this.#handle, bytes, alignment, view);
    }
    if (fallbacksTraced) this.#publishFallbacks(bytes);
    if (ab === null) throw binding.takeError();
    const address = scratch[ADDRESS];
    const servedBy = scratch[SERVED_BY];
    const classBytes = scratch[CLASS_BYTES];
    const slot = scratch[LIVE_SLOT];
    const route = scratch[ROUTE];
    let slab: SlabView | undefined;
    if (ab === undefined) slab = this.#slabOf(scratch[SLAB_ADDRESS], scratch[SLAB_BYTES]);
    let keeper: ThreadCache | undefined;
    // A block a pool of the chain classes may wait in a cache when freed: a slab view always, a
    // block with its own ArrayBuffer where transfer() can take that buffer back.
    if (classBytes > 0 && route >= 0 && (slab !== undefined || movesBuffers)) {
      keeper = this.#byRoute[route] ?? this.#cacheFor(route);
      keeper?.allocatedNatively();
    } else if (route >= 0) {
      this.#byRoute[route]?.allocatedNatively();
    }
    const block = new Block({
      owner: this,
      slot,
      address,
      byteLength: bytes,
      alignment,
      servedBy,
      slab,
      classBytes,
      cache: keeper,
    });
    return this.#handOut(block, ab === undefined ? undefined : handOut(ab, slot, address), zero);
  }

  /**
   * This thread's cache of the blocks of route `route`, made on first use; undefined when the
   * route caches nothing (then never asked again).
   */
  #cacheFor(route: number): ThreadCache | undefined {
    const known = this.#byRoute[route];
    if (known !== undefined) return known ?? undefined;
    // A trim asked in another thread reaches this thread's caches at their next call; each
    // then gives its blocks back, and the slabs this thread no longer views are let go.
    const trimmed = () => {
      this.#releaseIdleSlabs();
    };
    const cache = ThreadCache.create(
      this.#handle,
      route,
      (pool) => this.#cacheLimit(pool),
      trimmed,
    );
    this.#byRoute[route] = cache ?? null;
    if (cache !== undefined) {
      this.#caches.push(cache);
      this.#cache ??= cache;
      dropWhenCollected.register(this, cache.native);
    }
    return cache;
  }

  /** A hit in a cache other than the first (a chain with several routes), if any. */
  #takeFromOthers(bytes: number, alignment: number): Block | undefined {
    const caches = this.#caches;
    for (let i = 1; i < caches.length; i++) {
      const block = caches[i]?.take(bytes, alignment);
      if (block !== undefined) return block;
    }
    return undefined;
  }

  /**
   * What a cache of the blocks of the pool `pool` keeps at most: the pool's `threadCacheBytes`
   * as this thread knows it (its own, or its wrapper's here), else the default.
   */
  #cacheLimit(pool: number): number {
    if (pool === this.id) return this.#cacheBytes ?? DEFAULT_THREAD_CACHE_BYTES;
    const owner = wrappers.get(pool)?.deref();
    return (owner === undefined ? undefined : owner.#cacheBytes) ?? DEFAULT_THREAD_CACHE_BYTES;
  }

  /** Gives every block this thread's caches hold back; false when they held none. */
  #givesBackCached(): boolean {
    let held = false;
    for (const cache of this.#caches) {
      if (cache.holding) {
        held = true;
        cache.giveBack();
      }
    }
    return held;
  }

  #handOut(block: Block, buffer: ArrayBuffer | undefined, zero: boolean): HostBuffer {
    const buf = makeHostBuffer(block, buffer, currentFrame());
    if (zero) buf.bytes.fill(0);
    if (allocChannel.hasSubscribers) {
      allocChannel.publish({
        handler: this.name,
        bytes: block.byteLength,
        alignment: block.alignment,
        address: BigInt(block.address),
        servedBy: buf.servedBy,
      } satisfies AllocMessage);
    }
    return buf;
  }

  /**
   * Allocates `count` elements of a typed array type: `h.allocArray(Float32Array, n)` is
   * `h.alloc(n * 4)`, with the count checked. View it with `buf.view(Float32Array)`.
   */
  allocArray(type: TypedArrayConstructor, count: number, options?: AllocOptions): HostBuffer {
    if (!Handler.is(this)) throw notAHandler();
    const size = elementSize(type);
    checkBytes(count, 'count');
    const bytes = count * size;
    if (!Number.isSafeInteger(bytes) || bytes > 2 ** 50)
      throw invalid('count', `at most 2^50 bytes of ${size}-byte elements`, count);
    return this.alloc(bytes, options);
  }

  /** Statistics of this handler, read now (see HandlerStats). */
  stats(): HandlerStats {
    if (!Handler.is(this)) throw notAHandler();
    return readStats(this.#handle);
  }

  /**
   * Gives cached memory back to the upstream (pools; adaptors pass it down). Returns the bytes
   * released. A pool keeps what it reserved ahead (`reserve()`, `initialBytes`) unless asked
   * with `{ reservation: true }`: then the reservation's chunks that hold no block go back too.
   */
  trim(options?: TrimOptions): number {
    if (!Handler.is(this)) throw notAHandler();
    const o = readTrimOptions(options);
    const reservation =
      o.reservation === undefined ? false : checkBoolean(o.reservation, 'reservation');
    if (reservation && this.kind !== 'pool')
      throw invalid('reservation', `true only for a pool (${this.name} is a ${this.kind})`, true);
    // This thread's cached blocks first (other threads give theirs back at their next call).
    for (const cache of this.#caches) cache.giveBack();
    this.#releaseIdleSlabs();
    return reservation ? binding.trimReservation(this.#handle) : binding.trim(this.#handle);
  }

  /**
   * Pools: grows the pool by `bytes` (rounded up to its `chunkBytes`) ahead of traffic, without
   * blocking the event loop: the memory is mapped, first-touched and page-locked on other
   * threads, chunk by chunk, and the pool serves its misses from it as each chunk lands. A
   * miss that finds no room while a reservation is under way waits for its next chunk rather
   * than growing the pool a second time. Resolves with the bytes grown; rejects with the
   * allocation's PinpoolError (out of memory, a limit, the page-lock cap), the pool left as it
   * was. With no argument (or 0), waits for every reservation of this pool this thread started
   * (`initialBytes` included) and resolves with the pool's `reservationBytes`.
   *
   * @example
   * const h = pool(locked(), { initialBytes: 2 ** 30 }); // starts growing at once
   * await h.reserve(); // ... and is warm from here on
   */
  // async: every refusal below is a rejection, and the native call still starts at once (the
  // body runs synchronously up to its first await), so a miss right after it waits for it.
  async reserve(bytes?: number): Promise<number> {
    if (!Handler.is(this)) throw notAHandler();
    if (this.kind !== 'pool')
      throw new PinpoolError(
        ErrorCode.INVALID_ARGUMENT,
        `pinpool: reserve() is for pools (${this.name} is a ${this.kind})`,
      );
    const n = bytes === undefined ? 0 : checkBytes(bytes, 'bytes');
    if (n === 0) {
      // Every one under way settles first; then the first failure among them is reported (once).
      const waiting = [...this.#reservations];
      const settled = await Promise.allSettled(waiting);
      for (const p of waiting) this.#reservations.delete(p);
      const failed = settled.find((r) => r.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
      return readStats(this.#handle).reservationBytes;
    }
    const grown = binding.reserve(this.#handle, n);
    // Kept until it succeeds, or until a reserve() with no argument has reported its failure.
    this.#reservations.add(grown);
    grown.then(
      () => this.#reservations.delete(grown),
      () => undefined,
    );
    return grown;
  }

  /** A slab can go back only once no thread views it: drops this thread's views of idle slabs. */
  #releaseIdleSlabs(): void {
    if (this.#slabs === undefined) return;
    for (const [address, slab] of this.#slabs) {
      if (slab.live === 0) {
        // A slab buffer the user moved away or marked untransferable cannot be taken back: the
        // slab then stays pinned until that buffer is collected.
        const buffer = takeBack(slab.buffer);
        if (buffer !== null) binding.releaseSlabView(buffer, slab.lease);
        slab.buffer = NO_SLAB; // released buffers still name their slab: let its buffer go
        this.#slabs.delete(address);
      }
    }
  }

  /**
   * A token for another worker thread: `attach(token)` there reaches this same native handler
   * (same pool, same statistics). Keep this handler alive until the token is attached.
   */
  share(): HandlerToken {
    if (!Handler.is(this)) throw notAHandler();
    const { secret, process } = binding.secret(this.#handle);
    const token: HandlerToken = {
      pinpool: 'handler',
      version: 2,
      id: this.id,
      secret,
      process,
      ...(this.#slabs === undefined ? {} : { slabViews: true }),
      ...(this.#cacheBytes === undefined ? {} : { threadCacheBytes: this.#cacheBytes }),
    };
    return Object.freeze(token);
  }

  /**
   * This handler for another native addon: pass the value to it, and it reaches the native
   * handler (`pinpool_unwrap_native_handle()` in include/pinpool.h) with pinpool's C API: it may
   * allocate and free from any of its threads, read statistics and trim. The value holds a
   * reference to the handler until it is collected; an addon that keeps the handler longer
   * retains it. Statistics and metrics count what the addon does.
   *
   * @example
   * myDecoder.decodeInto(pool(pinned()).nativeHandle(), input);
   */
  nativeHandle(): PinpoolNativeHandle {
    if (!Handler.is(this)) throw notAHandler();
    return binding.nativeHandle(this.#handle) as PinpoolNativeHandle;
  }

  /**
   * What console.log() shows: `Handler { name: 'pinned-pool', kind: 'pool', bytesInUse: 4096,
   * buffersInUse: 1, cachedBytes: 0, upstreams: [ Handler { name: 'pinned', ... } ] }`: the
   * bytes and buffers in use, a pool's cached bytes, a cap (limits, page-locking leaves) and
   * the chain below. One read of the statistics per handler shown; nothing is allocated.
   */
  [inspectSymbol](...args: InspectArguments): string {
    return inspectAs('Handler', () => Handler.#fields(this), args);
  }

  static #fields(h: unknown): object {
    if (!Handler.is(h)) return {}; // Handler.prototype, or another receiver
    const s = readStats(h.#handle);
    return {
      name: h.name,
      kind: h.kind,
      bytesInUse: s.bytesInUse,
      buffersInUse: s.buffersInUse,
      ...(h.kind === 'pool' ? { cachedBytes: s.cachedBytes } : {}),
      ...(s.capBytes > 0 ? { capBytes: s.capBytes } : {}),
      ...(h.upstreams.length > 0 ? { upstreams: h.upstreams } : {}),
    };
  }

  /**
   * @internal True for a Handler made by pinpool. A brand check: no getter or Proxy trap runs,
   * and an object made from Handler.prototype is not one.
   */
  static is(value: unknown): value is Handler {
    return isObject(value) && #handle in value;
  }

  /**
   * @internal True for the handler of a mapped file (mapFile), which serves its one block, once:
   * it can be no adaptor's upstream and replay no trace.
   */
  static mapsFile(h: Handler): boolean {
    return h.#fileMapped !== undefined;
  }

  #publishFallbacks(bytes: number): void {
    for (const { handler, from, to, reason } of binding.takeFallbacks()) {
      fallbackChannel.publish({ handler, from, to, reason, bytes } satisfies FallbackMessage);
    }
  }

  #slabOf(address: number, slabBytes: number): SlabView {
    // Only a slabViews pool asks alloc() for slab views.
    const slabs = this.#slabs;
    if (slabs === undefined)
      throw internalError(`${this.name} has no slab views, but alloc() viewed a slab`);
    let slab = slabs.get(address);
    // A view the user moved away (transfer(), or postMessage with a transfer list) reaches
    // nothing here any more: view the slab anew. The old view's lease lasts as long as the moved
    // buffer does (or, if that left an ended thread, for good).
    if (slab?.buffer.byteLength === 0) {
      slabs.delete(address);
      slab = undefined;
    }
    if (slab === undefined) {
      const view = binding.viewSlab(this.#handle, address, slabBytes);
      if (view === null) throw new PinpoolError(ErrorCode.OUT_OF_MEMORY, 'pinpool: slab vanished');
      slab = { buffer: view.buffer, address, lease: view.lease, live: 0 };
      slabs.set(address, slab);
    }
    return slab;
  }
}

/** @internal This thread's wrapper of native handler `id`, if it has one still alive. */
export function existingWrapper(id: number): Handler | undefined {
  return wrappers.get(id)?.deref();
}

/**
 * This thread's wrapper of the native handler behind `handle` (whose id is `id`), made with
 * `slabViews` if this thread has none yet. For attach() and adopt(); not exported from the
 * package, so no code can reach a handler by guessing its id.
 */
export function wrapperOf(
  handle: NativeHandle,
  id: number,
  slabViews = false,
  threadCacheBytes?: number,
): Handler {
  return wrappers.get(id)?.deref() ?? new Handler(handle, [], slabViews, threadCacheBytes);
}
