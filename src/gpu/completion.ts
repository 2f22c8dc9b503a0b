/**
 * The watch over GPU operations in flight (copies, prefetches). Each settles when the host
 * function queued behind it runs; but the driver never runs those once the context has failed
 * (a kernel fault of any library sharing it), and then no Promise would settle and Node would
 * never exit. While any operation is pending, this asks the native side every 100 ms to settle
 * those whose work ended in an error, or completed without a word (native/binding/gpu.cpp,
 * WatchGpu). Per thread: each JavaScript thread has its own operations and its own watch.
 */
import { binding } from '../boundary/native.js';

/** How often the watch looks while operations are pending, in milliseconds. */
const WATCH_MS = 100;

let pending = 0;
let timer: ReturnType<typeof setInterval> | undefined;

function settled(): void {
  if (--pending > 0) return;
  clearInterval(timer);
  timer = undefined;
}

/**
 * `operation`, watched until it settles. The timer does not keep the process alive: a pending
 * operation does that by itself, and ends when the watch settles it.
 *
 * @example
 * return watched(binding.copy(...));
 */
export function watched<T>(operation: Promise<T>): Promise<T> {
  if (pending++ === 0) timer = setInterval(() => binding.watchGpu(), WATCH_MS).unref();
  return operation.finally(settled);
}
