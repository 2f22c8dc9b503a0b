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
import { binding, type NativeScopeCell } from '../boundary/native.js';

/**
 * The counts of one named scope in one thread: what `alloc()` allocated while the scope was
 * current, and how much of it is still in use. A buffer remembers its scope's account and
 * counts its free against it in this thread (plain numbers, the allocation path's only cost).
 * A buffer moved with `transfer()` takes the scope's native cell along instead, inside native
 * code and never in its token: whichever thread frees it, lets the collector return it, or ends
 * holding it, counts it in the cell, which this thread subtracts when it reads.
 */
export class ScopeAccount {
  allocations = 0;
  allocatedBytes = 0;
  #bytes = 0;
  #buffers = 0;
  #cell: NativeScopeCell | undefined;

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
  get cell(): NativeScopeCell {
    this.#cell ??= binding.scopeCell();
    return this.#cell;
  }

  get bytesInUse(): number {
    return this.#cell === undefined
      ? this.#bytes
      : this.#bytes - binding.scopeFreed(this.#cell).bytes;
  }

  get buffersInUse(): number {
    return this.#cell === undefined
      ? this.#buffers
      : this.#buffers - binding.scopeFreed(this.#cell).buffers;
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
    let f = this.mergedInto;
    if (f === undefined) return this;
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
