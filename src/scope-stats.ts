/**
 * Per-scope allocation accounting for `controller.measure()`. A frame counts what its scope
 * allocates; a nested frame folds into its parent when it ends, the way RMM's statistics stack
 * does: peak = max(parent peak, parent current + child peak).
 *
 * The allocation path asks for the current frame only while some measure is running anywhere
 * (`measuring > 0`), so unmeasured programs pay one integer comparison.
 */

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
