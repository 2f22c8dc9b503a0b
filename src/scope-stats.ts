/**
 * Per-scope allocation accounting: a named scope's running counts (ScopeAccount, what the
 * metrics report per scope), and `controller.measure()`'s frames.
 *
 * A measure frame counts what its scope allocates; a nested frame folds into its parent when it
 * ends, the way RMM's statistics stack does: peak = max(parent peak, parent current + child peak).
 *
 * The allocation path asks for the current frame only while some measure is running anywhere
 * (`measuring > 0`), so unmeasured programs pay one integer comparison.
 */

/** What a buffer counts its free against: its scope's account, here or in another thread. */
export interface ScopeCounter {
  freed(bytes: number): void;
  /** The memory other threads free this scope's buffers into (see ScopeAccount.away). */
  readonly away: SharedArrayBuffer;
}

// The byteLength getter of SharedArrayBuffer as pinpool loaded: it throws for anything else, so
// it is a brand check no getter or Proxy trap of the value can fool.
const sharedByteLength = Object.getOwnPropertyDescriptor(SharedArrayBuffer.prototype, 'byteLength')!.get!;
const AWAY_BYTES = 16; // [bytes, buffers], as two 64-bit integers

/**
 * True for a SharedArrayBuffer of a ScopeAccount's cell size. Any such buffer passes (a brand
 * cannot survive postMessage's clone): a forged one only takes the forger's own counts.
 */
export function isAwayCell(value: unknown): value is SharedArrayBuffer {
  try {
    return (sharedByteLength.call(value) as number) === AWAY_BYTES;
  } catch {
    return false;
  }
}

/**
 * The counts of one named scope in one thread: what `alloc()` allocated while the scope was
 * current, and how much of it is still in use. A buffer remembers its scope's account and
 * counts its free against it, wherever it is freed: in this thread directly (plain numbers, the
 * allocation path's only cost), in another thread (a buffer moved with `transfer()`) through
 * the shared cell `away`, which this thread subtracts when it reads.
 */
export class ScopeAccount implements ScopeCounter {
  allocations = 0;
  allocatedBytes = 0;
  #bytes = 0;
  #buffers = 0;
  #away: BigInt64Array | undefined;

  allocated(bytes: number): void {
    this.allocations++;
    this.allocatedBytes += bytes;
    this.#bytes += bytes;
    this.#buffers++;
  }

  freed(bytes: number): void {
    this.#bytes -= bytes;
    this.#buffers--;
  }

  /** Made on the first transfer() of one of the scope's buffers. */
  get away(): SharedArrayBuffer {
    this.#away ??= new BigInt64Array(new SharedArrayBuffer(AWAY_BYTES));
    return this.#away.buffer as SharedArrayBuffer;
  }

  get bytesInUse(): number {
    return this.#away === undefined ? this.#bytes : this.#bytes - Number(Atomics.load(this.#away, 0));
  }

  get buffersInUse(): number {
    return this.#away === undefined ? this.#buffers : this.#buffers - Number(Atomics.load(this.#away, 1));
  }
}

/** A scope's account as another thread reaches it: frees go to the shared cell. */
export class AwayAccount implements ScopeCounter {
  readonly #cell: BigInt64Array;

  constructor(readonly away: SharedArrayBuffer) {
    this.#cell = new BigInt64Array(away, 0, 2);
  }

  freed(bytes: number): void {
    Atomics.add(this.#cell, 0, BigInt(bytes));
    Atomics.add(this.#cell, 1, 1n);
  }
}

export class ScopeFrame {
  allocations = 0;
  bytesAllocated = 0;
  currentBytes = 0;
  peakBytes = 0;
  /** Set when this frame has ended: later frees of its buffers count against the parent. */
  mergedInto: ScopeFrame | undefined;

  constructor(readonly parent: ScopeFrame | undefined) {}

  /** The frame that counts now: this one, or the one it folded into. */
  live(): ScopeFrame {
    let f: ScopeFrame = this;
    while (f.mergedInto !== undefined) f = f.mergedInto;
    return f;
  }

  allocated(bytes: number): void {
    this.allocations++;
    this.bytesAllocated += bytes;
    this.currentBytes += bytes;
    if (this.currentBytes > this.peakBytes) this.peakBytes = this.currentBytes;
  }

  freed(bytes: number): void {
    this.live().currentBytes -= bytes;
  }

  /** Folds this ended frame into its parent. */
  end(): void {
    const p = this.parent?.live();
    if (p === undefined) return;
    p.peakBytes = Math.max(p.peakBytes, p.currentBytes + this.peakBytes);
    p.currentBytes += this.currentBytes;
    p.allocations += this.allocations;
    p.bytesAllocated += this.bytesAllocated;
    this.mergedInto = p;
  }
}

/** Number of measures running anywhere in this thread. */
export let measuring = 0;
let lookup: () => ScopeFrame | undefined = () => undefined;

/** @internal Installed by the controller, the only module that sees AsyncLocalStorage. */
export function installFrameLookup(fn: () => ScopeFrame | undefined): void {
  lookup = fn;
}

export function beginMeasure(): void {
  measuring++;
}

export function endMeasure(): void {
  measuring--;
}

/** The frame of the current async scope, if a measure is running. */
export function currentFrame(): ScopeFrame | undefined {
  return measuring > 0 ? lookup() : undefined;
}
