/**
 * The thread cache: this thread's blocks of one pool, freed and waiting for this thread's next
 * allocation of their size from the same handler (mimalloc's thread-local free lists; PyTorch's
 * per-thread host caches). A hit here never calls into native code.
 *
 * A cache sits in front of every handler a user allocates from, not only a pool: in front of a
 * chain (a fallback, a limit) there is one per route, the way down to one pool in it (native
 * core/handler.hpp `Route`), made when the first block of that route is allocated. Its record
 * is folded into the statistics of every handler on the route; a block it holds still counts
 * against every limit on the way, so a cache can never take a thread past a cap (a limit that
 * refuses while caches hold some of its budget asks them for their blocks).
 *
 * A block keeps its ArrayBuffer while it waits. `free()` takes the buffer back from the user
 * with `ArrayBuffer.prototype.transfer()` (Node 22 and later), which detaches the user's
 * buffer, so views kept past free() reach nothing, and hands the cache a new ArrayBuffer over
 * the same memory, zero copy; the next `alloc()` of that size hands that one out. No
 * ArrayBuffer is made on a hit, and V8 does not count the block's bytes again. A slab view
 * (`slabViews`) needs no buffer of its own and is cached on every Node version.
 *
 * The cache is bounded (`threadCacheBytes` per thread and pool, 256 blocks at most), and gives
 * its blocks back to the pool when the pool is trimmed (from any thread: this thread gives them
 * back at its next call), when its Handler wrapper is collected, and when its thread ends.
 * A block under a lease (a copy in flight, a registration) is never cached: it goes back
 * through native free(), which waits for the lease.
 *
 * Statistics stay exact wherever they are read: the cache publishes what it holds and did in
 * a record native code reads (native/core/thread_caches.hpp), and the pool folds it in.
 */
import type { Block } from './host-buffer.js';
import { cell, cells, type Cells } from '../boundary/cells.js';
import {
  binding,
  constants,
  type NativeHandle,
  type NativeThreadCache,
} from '../boundary/native.js';
import { takingBack, tookBack, transferBuffer, watchesBuffers } from './take-back.js';

export { movesBuffers } from './take-back.js';

const layout = constants.threadCacheCells;
const POSITIONS = layout.positions;
const CAPACITY = layout.capacity;
// The counts come before the slot list.
const BLOCKS = cell(layout.blocks, POSITIONS);
const BYTES = cell(layout.bytes, POSITIONS);
const CLASS_BYTES = cell(layout.classBytes, POSITIONS);
const HITS = cell(layout.hits, POSITIONS);
const HIT_BYTES = cell(layout.hitBytes, POSITIONS);
const FREES = cell(layout.frees, POSITIONS);
const TRIMS = cell(layout.trims, POSITIONS);
const POOL_TRIMS = cell(layout.poolTrims, POSITIONS);
/** Blocks of one size (and alignment) a cache keeps at most. */
const PER_SIZE = 64;
/** Default bytes one thread cache keeps at most, per pool. */
export const DEFAULT_THREAD_CACHE_BYTES = 64 * 1024 * 1024;

const leaseFlag = binding.leaseFlag();

/** A thread's cache in front of one pool; owned by the pool's Handler wrapper in this thread. */
export class ThreadCache {
  readonly #cells: Cells;
  readonly #native: NativeThreadCache;
  readonly #limit: number;
  /** Waiting blocks by size, for the default alignment; others by `size:alignment`. */
  readonly #bySize = new Map<number, Block[]>();
  readonly #byKey = new Map<string, Block[]>();
  // The list of the size asked last (default alignment): most loops ask one size again and
  // again, and a comparison costs less than a map lookup on every alloc and free.
  #lastSize = -1;
  #lastList: Block[] = [];
  readonly #positions: number[] = [];
  #trims = 0;
  #poolTrims = 0;
  /** The cache's bytes at their lowest since this thread last called the pool natively. */
  #lowWater = 0;
  /** Its blocks at their lowest since then. */
  #lowBlocks = 0;

  readonly #trimmed: () => void;

  /**
   * A cache in front of the handler behind `handle`, for the blocks of its route `route`, or
   * undefined when it caches nothing. `limitBytes` is what it keeps at most, given the id of the
   * route's pool. `trimmed` runs after the cache gave its blocks back for a trim asked in
   * another thread.
   */
  static create(
    handle: NativeHandle,
    route: number,
    limitBytes: (pool: number) => number,
    trimmed: () => void,
  ): ThreadCache | undefined {
    // A trim in another thread queues this on ours, so a thread that never calls the pool again
    // still gives its blocks back. Weakly: the notice must not keep the cache, or the Handler
    // wrapper that owns it, alive.
    let self: WeakRef<ThreadCache> | undefined = undefined;
    const made = binding.threadCache(handle, route, () => self?.deref()?.trimAskedElsewhere());
    if (made === null) return undefined;
    const limit = limitBytes(made.pool);
    if (!(limit > 0)) {
      binding.dropCache(made.cache); // holds nothing yet
      return undefined;
    }
    const cache = new ThreadCache(made.cells, made.cache, limit, trimmed);
    self = new WeakRef(cache);
    return cache;
  }

  private constructor(
    record: Float64Array,
    native: NativeThreadCache,
    limitBytes: number,
    trimmed: () => void,
  ) {
    this.#cells = cells(record, POSITIONS + CAPACITY);
    this.#native = native;
    this.#limit = limitBytes;
    this.#trimmed = trimmed;
    for (let p = CAPACITY - 1; p >= 0; p--) this.#positions.push(p);
  }

  /** The native half, for dropping it when the owner is collected. */
  get native(): NativeThreadCache {
    return this.#native;
  }

  /** True while the cache holds a block. */
  get holding(): boolean {
    return this.#cells[BLOCKS] > 0;
  }

  /** A waiting block of `bytes` and `alignment`, now handed out; undefined on a miss. */
  take(bytes: number, alignment: number): Block | undefined {
    const c = this.#cells;
    if (c[TRIMS] !== this.#trims) this.#trimAsked();
    const list =
      alignment !== 64
        ? this.#byKey.get(`${bytes}:${alignment}`)
        : bytes === this.#lastSize
          ? this.#lastList
          : this.#sizeList(bytes);
    if (list === undefined) return undefined;
    const block = list.pop();
    if (block === undefined) return undefined;
    if (block.slab?.buffer.byteLength === 0) {
      // Its slab's view was moved away by the user: this thread cannot view the block through it.
      // Back to the pool (a miss); the pool's next block of the slab gets a new view.
      this.#release(block);
      return undefined;
    }
    c[BLOCKS]--;
    c[BYTES] -= block.byteLength;
    c[CLASS_BYTES] -= block.classBytes;
    c[HITS]++;
    c[HIT_BYTES] += block.byteLength;
    c[POSITIONS + block.position] = -1;
    this.#positions.push(block.position);
    if (c[BYTES] < this.#lowWater || c[BLOCKS] < this.#lowBlocks) {
      // This thread now uses more of the pool (bytes, or buffers) than at any point since its
      // last native call: the pool's peaks may have risen.
      this.#lowWater = c[BYTES];
      this.#lowBlocks = c[BLOCKS];
      binding.notePeak(this.#native);
    }
    return block;
  }

  /** This thread just allocated from the pool natively (the pool counted that allocation). */
  allocatedNatively(): void {
    this.#lowWater = this.#cells[BYTES];
    this.#lowBlocks = this.#cells[BLOCKS];
  }

  /**
   * Keeps a freed block. `buffer` is its ArrayBuffer as the user had it (undefined for a slab
   * view); it is detached here, the cache keeping a new one over the same memory. False, with
   * nothing changed, when the block must go back through native free() instead: the cache is
   * full, a lease covers the block, or its buffer escaped (the user moved it with transfer()).
   */
  keep(block: Block, buffer: ArrayBuffer | undefined): boolean {
    const c = this.#cells;
    if (c[TRIMS] !== this.#trims) {
      // The block goes to the pool with the rest (its slab view may be released meanwhile).
      this.#trimAsked();
      return false;
    }
    const positions = this.#positions;
    // The slot the block takes in the published list, if it is kept.
    const position = positions[positions.length - 1];
    if (position === undefined || c[BYTES] + block.byteLength > this.#limit) return false;
    if (leaseFlag[0] !== 0 && binding.leased(block.address, block.byteLength)) return false;
    let list: Block[] | undefined;
    if (block.alignment === 64) {
      const bytes = block.byteLength;
      if (bytes === this.#lastSize) list = this.#lastList;
      else {
        list = this.#sizeList(bytes);
        if (list === undefined) {
          this.#bySize.set(bytes, (list = []));
          this.#lastSize = bytes;
          this.#lastList = list;
        }
      }
    } else {
      const key = `${block.byteLength}:${block.alignment}`;
      list = this.#byKey.get(key);
      if (list === undefined) this.#byKey.set(key, (list = []));
    }
    if (list.length >= PER_SIZE) return false;
    if (buffer !== undefined) {
      // None where buffers do not move (Node 20): the Handler then gives the cache slab views only.
      if (transferBuffer === undefined) return false;
      // Throws when the buffer is detached already: moved by the user, so the memory may be
      // reachable through another ArrayBuffer; native free() quarantines the block.
      try {
        block.spare = transferBuffer(buffer);
      } catch {
        return false;
      }
      if (watchesBuffers) {
        takingBack(block.slot);
        binding.track(block.slot, block.address, block.spare);
        tookBack();
      }
    }
    positions.pop();
    block.position = position;
    c[POSITIONS + position] = block.slot;
    c[BLOCKS]++;
    c[BYTES] += block.byteLength;
    c[CLASS_BYTES] += block.classBytes;
    c[FREES]++;
    list.push(block);
    return true;
  }

  /** The list of blocks of `bytes` (default alignment), now the last one asked for, if any. */
  #sizeList(bytes: number): Block[] | undefined {
    const list = this.#bySize.get(bytes);
    if (list !== undefined) {
      this.#lastSize = bytes;
      this.#lastList = list;
    }
    return list;
  }

  #trimAsked(): void {
    this.giveBack();
    this.#trimmed();
  }

  /**
   * A trim in another thread asked for this cache's blocks while this thread made no call (the
   * native notice): give them back now, and finish that trim, which ran without them.
   */
  trimAskedElsewhere(): void {
    const c = this.#cells;
    if (c[TRIMS] === this.#trims) return; // seen at a call already
    // Read before giving back, which takes the request as seen. Only a trim asks the pool to
    // trim again: a limit that wanted its budget back leaves the pool's cache alone.
    const trim = c[POOL_TRIMS] !== this.#poolTrims;
    this.#trimAsked();
    if (trim) binding.trimAfterThreadCache(this.#native);
  }

  /**
   * Gives every waiting block back to the pool (trim()), through native free() like any other
   * block, which detaches the cache's buffer; the free into the cache was counted already, so the
   * cache's own count of it is taken back.
   */
  giveBack(): void {
    const c = this.#cells;
    this.#poolTrims = c[POOL_TRIMS];
    this.#trims = c[TRIMS];
    for (const lists of [this.#bySize.values(), this.#byKey.values()]) {
      for (const list of lists) {
        for (const block of list) this.#release(block);
        list.length = 0;
      }
    }
    this.#lowWater = c[BYTES];
    this.#lowBlocks = c[BLOCKS];
  }

  /** Gives one waiting block (already out of its list) back to the pool through native free(). */
  #release(block: Block): void {
    const c = this.#cells;
    const spare = block.spare;
    block.spare = undefined;
    binding.free(block.owner.handle, spare, block.slot, block.address, false);
    c[POSITIONS + block.position] = -1;
    c[BLOCKS]--;
    c[BYTES] -= block.byteLength;
    c[CLASS_BYTES] -= block.classBytes;
    c[FREES]--;
    this.#positions.push(block.position);
  }
}

/** Drops the native half of a cache whose Handler wrapper was collected: its blocks go back. */
export const dropWhenCollected = new FinalizationRegistry<NativeThreadCache>((native) => {
  binding.dropCache(native);
});
