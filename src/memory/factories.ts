/**
 * Factories of handlers: the leaves (pinned, managed, locked, pageable), the adaptors (pool,
 * fallback, limit) and the default chain. Options are validated here, then cross into native
 * code once.
 */
import { Handler } from './handler.js';
import { binding, constants } from '../boundary/native.js';
import { DEFAULT_THREAD_CACHE_BYTES } from './thread-cache.js';
import {
  checkBoolean,
  checkBound,
  checkBytes,
  checkDevice,
  checkName,
  invalid,
  optionsOf,
} from '../boundary/validate.js';

/**
 * How a page-locking leaf (locked(), pinned() with strategy 'register') grows: its mappings are
 * backed by huge pages where the kernel offers them, first-touched by several threads, bound
 * to a NUMA node, and page-locked a chunk at a time (docs/handlers.md, "Growth").
 */
export interface GrowthOptions {
  /**
   * Ask for transparent huge pages (MADV_HUGEPAGE) on mappings of 2 MiB or more: one page fault
   * per 2 MiB instead of per 4 KiB. Where the kernel offers none, the mapping goes on with
   * 4 KiB pages and `stats().hugePageFallbacks` counts it. Default true.
   */
  hugePages?: boolean;
  /**
   * Threads that first-touch a mapping of 16 MiB or more (a small pool of pinpool's own, the
   * calling thread among them). Default 0: the machine's cores, at most 16.
   */
  touchThreads?: number;
  /**
   * NUMA node the pages are placed on (preferred: mbind before the first touch; pages the node
   * cannot hold land elsewhere and count in `stats().offNodeBytes`). -1: the kernel's choice.
   * pinned(): default the device's own node (`info().cuda.devices[i].numaNode`) on a machine
   * with several nodes. locked(): default -1.
   */
  numaNode?: number;
}

/**
 * Options of the pinned() leaf: the device, the cuMemHostAlloc flags and how the memory is pinned.
 */
export interface PinnedOptions extends GrowthOptions {
  /** Device whose context allocates. Default 0. */
  device?: number;
  /** Pinned for every CUDA context, not only the device's. Default true. */
  portable?: boolean;
  /** Also mapped into the device's address space. Default false. */
  mapped?: boolean;
  /** Write-combined: fast for the device to read, very slow for the host to read. Default false. */
  writeCombined?: boolean;
  /**
   * How the memory is pinned: 'alloc' (cuMemHostAlloc, the default) or 'register' (map and
   * fault the pages in, then cuMemHostRegister: faster for large blocks; ignores writeCombined).
   */
  strategy?: 'alloc' | 'register';
  name?: string;
}

/** Options of the locked() leaf: its name, its own cap on page-locked bytes and how it grows. */
export interface LockedOptions extends GrowthOptions {
  name?: string;
  /**
   * The most this leaf holds page-locked at once, in bytes (its live blocks, whole pages);
   * past it, alloc fails at once with ERR_PINPOOL_OUT_OF_MEMORY, reason 'mlock'. It can only
   * lower the default cap (`info().lockedCap`), never raise it. Default: no cap of its own.
   */
  maxBytes?: number;
  /**
   * The most one mlock call locks, in bytes (a multiple of the page size): a large block is
   * locked chunk by chunk, so no single call holds the kernel's locks for long. Default 64 MiB.
   */
  chunkBytes?: number;
}

/** Options of the pool() adaptor: how much it caches, and its slab views and thread caches. */
export interface PoolOptions {
  name?: string;
  /** Cap on cached large blocks, in bytes; freed blocks past it go back upstream. Default 1 GiB. */
  maxCachedBytes?: number;
  /**
   * When the pool must grow, cached large blocks beyond this fraction of the bytes in use go
   * back upstream first, oldest first, so sizes no longer asked for do not pile up. Infinity
   * keeps everything (up to maxCachedBytes). Default 0.1.
   */
  cacheRatio?: number;
  /**
   * Fast mode for small hot allocations: blocks up to 256 KiB become views into a few large
   * slab ArrayBuffers made once, instead of one ArrayBuffer per block. The price: free() cannot
   * detach such a view, so a view kept past free() still reaches memory that now belongs to
   * the next allocation. Use it only where no view outlives its buffer. Default false.
   */
  slabViews?: boolean;
  /**
   * Bytes of freed blocks each thread keeps for its own next allocations of the same size, in
   * front of the pool (its thread cache: a hit there makes no call into native code and no new
   * ArrayBuffer). Counted as cached in the pool's statistics; `trim()` gives them back. 0 turns
   * the cache off. Default 64 MiB, or maxCachedBytes when smaller (at most 256 blocks, 64 of
   * one size). Blocks in thread caches count against maxCachedBytes and cacheRatio with the
   * pool's own; a pool over either asks the threads for them (each gives them back at its next
   * call), and trim() does too. A fallback or limit over the pool (defaultHandler() too) keeps
   * its own cache of the pool's blocks in each thread, of the same size.
   */
  threadCacheBytes?: number;
  /**
   * Bytes to reserve at creation, as `reserve(initialBytes)` right after: the pool starts
   * growing in the background at once; `await h.reserve()` waits for it. Default 0.
   */
  initialBytes?: number;
  /**
   * A reservation grows the pool by upstream blocks of this size, in bytes (a multiple of the
   * page size), so that no single upstream call (cuMemHostAlloc, cuMemHostRegister, mlock)
   * covers more; misses carve their slabs and large blocks from them. Blocks larger than a
   * chunk are never carved from a reservation. At least 2 MiB; default 64 MiB.
   */
  chunkBytes?: number;
}

/** Options of the fallback() adaptor: the range of request sizes its primary serves. */
export interface FallbackOptions {
  name?: string;
  /** Requests smaller than this go straight to the secondary. Default 0. */
  minBytes?: number;
  /** Requests larger than this go straight to the secondary. Default Infinity. */
  maxBytes?: number;
}

/** Options of the limit() adaptor: its cap on bytes in use, which is required. */
export interface LimitOptions {
  name?: string;
  /** The cap on bytes in use through this handler. Required. */
  maxBytes: number;
}

/** Options of the managed() leaf: the device whose context allocates, and its name. */
export interface ManagedOptions {
  /** Device whose context allocates. Default 0. */
  device?: number;
  name?: string;
}

/** Options of the pageable() leaf: its name. */
export interface PageableOptions {
  name?: string;
}

const growthKeys = { hugePages: true, touchThreads: true, numaNode: true } as const;
const readPinnedOptions = optionsOf<PinnedOptions>('pinned', {
  device: true,
  portable: true,
  mapped: true,
  writeCombined: true,
  strategy: true,
  name: true,
  ...growthKeys,
});
const readManagedOptions = optionsOf<ManagedOptions>('managed', { device: true, name: true });
const readLockedOptions = optionsOf<LockedOptions>('locked', {
  name: true,
  maxBytes: true,
  chunkBytes: true,
  ...growthKeys,
});
const readPageableOptions = optionsOf<PageableOptions>('pageable', { name: true });
const readPoolOptions = optionsOf<PoolOptions>('pool', {
  name: true,
  maxCachedBytes: true,
  cacheRatio: true,
  slabViews: true,
  threadCacheBytes: true,
  initialBytes: true,
  chunkBytes: true,
});
const readFallbackOptions = optionsOf<FallbackOptions>('fallback', {
  name: true,
  minBytes: true,
  maxBytes: true,
});
const readLimitOptions = optionsOf<LimitOptions>('limit', { name: true, maxBytes: true });

function nameOf(o: { name?: unknown }, fallback: string): string {
  return o.name === undefined ? fallback : checkName(o.name);
}

/** The growth options, checked, as native code reads them; `numaNode` undefined: the default. */
function growthOf(o: GrowthOptions): Record<string, number | boolean> {
  const native: Record<string, number | boolean> = {
    hugePages: o.hugePages === undefined ? true : checkBoolean(o.hugePages, 'hugePages'),
    touchThreads:
      o.touchThreads === undefined ? 0 : checkCount(o.touchThreads, 'touchThreads', 1024),
  };
  if (o.numaNode !== undefined) native.numaNode = checkNode(o.numaNode);
  return native;
}

function checkCount(value: unknown, name: string, most: number): number {
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > most)
    throw invalid(name, `an integer from 0 to ${most}`, value);
  return value as number;
}

/** A node number; whether the machine has it is checked natively (its kernel knows). */
function checkNode(value: unknown): number {
  if (!Number.isInteger(value) || (value as number) < -1 || (value as number) > 1023)
    throw invalid('numaNode', '-1 or a NUMA node number (0 to 1023)', value);
  return value as number;
}

/** A chunk size: a multiple of the page size, from `least` (one page by default) to 1 TiB. */
function checkChunk(value: unknown, least = constants.pageSize): number {
  const page = constants.pageSize;
  if (
    !Number.isInteger(value) ||
    (value as number) < least ||
    (value as number) > 2 ** 40 ||
    (value as number) % page !== 0
  )
    throw invalid(
      'chunkBytes',
      `a multiple of the page size (${page}) from ${least} up to 2**40`,
      value,
    );
  return value as number;
}

function checkRatio(value: unknown): number {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0)
    throw invalid('cacheRatio', 'a number from 0 (or Infinity)', value);
  return value;
}

function checkHandler(value: unknown, name: string): Handler {
  if (!Handler.is(value)) throw invalid(name, 'a pinpool handler', value);
  if (Handler.mapsFile(value))
    throw invalid(
      name,
      "a handler that can serve more than one block (not a mapped file's)",
      value.name,
    );
  return value;
}

/**
 * CUDA pinned (page-locked) host memory, cuMemHostAlloc. Strict: without a CUDA driver, alloc
 * fails with ERR_PINPOOL_UNAVAILABLE. Wrap it in pool() for speed.
 *
 * @example
 * const h = pool(pinned({ device: 0 }));
 */
export function pinned(options?: PinnedOptions): Handler {
  const o = readPinnedOptions(options);
  const strategy: unknown = o.strategy; // as given: from JavaScript, any value
  const native = {
    name: nameOf(o, 'pinned'),
    device: o.device === undefined ? 0 : checkDevice(o.device),
    portable: o.portable === undefined ? true : checkBoolean(o.portable, 'portable'),
    mapped: o.mapped === undefined ? false : checkBoolean(o.mapped, 'mapped'),
    writeCombined:
      o.writeCombined === undefined ? false : checkBoolean(o.writeCombined, 'writeCombined'),
    strategy: strategy === undefined ? 'alloc' : strategy,
    ...growthOf(o),
  };
  if (native.strategy !== 'alloc' && native.strategy !== 'register')
    throw invalid('strategy', "'alloc' or 'register'", o.strategy);
  return new Handler(binding.createHandler('pinned', native));
}

/** CUDA managed (unified) memory, cuMemAllocManaged: one address for host and device. */
export function managed(options?: ManagedOptions): Handler {
  const o = readManagedOptions(options);
  const device = o.device === undefined ? 0 : checkDevice(o.device);
  return new Handler(binding.createHandler('managed', { name: nameOf(o, 'managed'), device }));
}

/**
 * Page-locked host memory without CUDA (mmap + mlock). Capped so that it never locks more than
 * the host can hold (`info().lockedCap`: RLIMIT_MEMLOCK where the kernel applies it, else half
 * of what the cgroup and the machine allow, shared with pinned()), and by `maxBytes`; past
 * the cap, alloc fails at once, before any memory is touched, with ERR_PINPOOL_OUT_OF_MEMORY
 * and reason 'mlock'.
 *
 * @example
 * const h = pool(locked({ maxBytes: 2 ** 30 }));
 */
export function locked(options?: LockedOptions): Handler {
  const o = readLockedOptions(options);
  const native = {
    name: nameOf(o, 'locked'),
    maxBytes: o.maxBytes === undefined ? Infinity : checkBound(o.maxBytes, 'maxBytes'),
    ...(o.chunkBytes === undefined ? {} : { chunkBytes: checkChunk(o.chunkBytes) }),
    ...growthOf(o),
    numaNode: o.numaNode === undefined ? -1 : checkNode(o.numaNode),
  };
  return new Handler(binding.createHandler('locked', native));
}

/** Ordinary pageable host memory, aligned as asked. Always available. */
export function pageable(options?: PageableOptions): Handler {
  const o = readPageableOptions(options);
  return new Handler(binding.createHandler('pageable', { name: nameOf(o, 'pageable') }));
}

/**
 * Caches blocks from `upstream`: a repeated size is served without an upstream call.
 * `trim()` gives cached memory back.
 *
 * @example
 * const h = pool(pinned(), { name: 'pinned-pool', maxCachedBytes: 1 << 30 });
 */
export function pool(upstream: Handler, options?: PoolOptions): Handler {
  checkHandler(upstream, 'upstream');
  const o = readPoolOptions(options);
  const slabViews = o.slabViews === undefined ? false : checkBoolean(o.slabViews, 'slabViews');
  const native = {
    name: nameOf(o, `${upstream.name}-pool`),
    upstream: upstream.handle,
    maxCachedBytes:
      o.maxCachedBytes === undefined ? 2 ** 30 : checkBound(o.maxCachedBytes, 'maxCachedBytes'),
    cacheRatio: o.cacheRatio === undefined ? 0.1 : checkRatio(o.cacheRatio),
    ...(o.chunkBytes === undefined ? {} : { chunkBytes: checkChunk(o.chunkBytes, 2 * 2 ** 20) }),
  };
  const initialBytes =
    o.initialBytes === undefined ? 0 : checkBytes(o.initialBytes, 'initialBytes');
  // A thread cache's blocks count against maxCachedBytes with the pool's own, so by default no
  // thread keeps more than the cap.
  const threadCacheBytes =
    o.threadCacheBytes !== undefined
      ? checkBound(o.threadCacheBytes, 'threadCacheBytes')
      : native.maxCachedBytes < DEFAULT_THREAD_CACHE_BYTES
        ? native.maxCachedBytes
        : undefined;
  const h = new Handler(
    binding.createHandler('pool', native),
    [upstream],
    slabViews,
    threadCacheBytes,
  );
  // Its failure is reported by `h.reserve()` (with no argument), which waits for it.
  if (initialBytes > 0) void h.reserve(initialBytes).catch(() => undefined);
  return h;
}

/**
 * Sends requests in [minBytes, maxBytes] to `primary`, others to `secondary`; when the primary
 * is out of memory or unavailable, the secondary serves. Other errors propagate. Every move is
 * counted in `stats().fallbacks` by reason.
 */
export function fallback(primary: Handler, secondary: Handler, options?: FallbackOptions): Handler {
  checkHandler(primary, 'primary');
  checkHandler(secondary, 'secondary');
  const o = readFallbackOptions(options);
  const minBytes = o.minBytes === undefined ? 0 : checkBytes(o.minBytes, 'minBytes');
  const maxBytes = o.maxBytes === undefined ? Infinity : checkBound(o.maxBytes, 'maxBytes');
  if (minBytes > maxBytes) throw invalid('minBytes', `at most maxBytes (${maxBytes})`, minBytes);
  const native = {
    name: nameOf(o, `${primary.name}-or-${secondary.name}`),
    primary: primary.handle,
    secondary: secondary.handle,
    minBytes,
    maxBytes,
  };
  return new Handler(binding.createHandler('fallback', native), [primary, secondary]);
}

/** Caps the bytes in use through `upstream`; past it, ERR_PINPOOL_OUT_OF_MEMORY with reason 'limit'. */
export function limit(upstream: Handler, options: LimitOptions): Handler {
  checkHandler(upstream, 'upstream');
  const o = readLimitOptions(options);
  const maxBytes = checkBound(o.maxBytes, 'maxBytes');
  const native = { name: nameOf(o, `${upstream.name}-limit`), upstream: upstream.handle, maxBytes };
  return new Handler(binding.createHandler('limit', native), [upstream]);
}

let defaultChain: Handler | undefined;

/**
 * The chain that works on every host: pool(pinned) -> pool(locked) -> pageable. Each fallback is
 * counted with its reason. The same handler is returned on every call in a thread; a hit in its
 * thread cache (one per pool of the chain) makes no call into native code.
 */
export function defaultHandler(): Handler {
  defaultChain ??= fallback(
    pool(pinned(), { name: 'pinned-pool' }),
    fallback(pool(locked(), { name: 'locked-pool' }), pageable(), { name: 'locked-or-pageable' }),
    { name: 'default' },
  );
  return defaultChain;
}
