/**
 * A small synthetic workload for `pinpool serve --demo`: every tick, one scope per registered
 * handler and per named scope allocates a few buffers of assorted sizes, frees most at once and keeps a few for a
 * couple of ticks, so every metric moves. What it keeps is capped, so it never grows.
 */
import type { Controller, HostBuffer } from './pinpool.js';

export interface DemoOptions {
  controller: Controller;
  /** Handlers or named scopes to exercise. Default: every registered name and every named scope. */
  names?: readonly string[];
  /** Milliseconds between ticks. Default 250. */
  intervalMs?: number;
}

export interface Demo {
  /** Stops the loop and frees what it holds. */
  stop(): void;
}

/** Sizes from a cache line to 1 MiB: small ones hit pool classes, large ones the fine subdivisions. */
const SIZES = [64, 200, 1000, 4096, 10_000, 65_536, 300_000, 1 << 20];
/** Most buffers a demo holds at once. */
const MAX_KEPT = 24;
/** Ticks a kept buffer lives. */
const KEEP_TICKS = 3;

/**
 * Starts the demo loop; its timer does not keep the process alive.
 *
 * @example
 * const demo = startDemo({ controller });
 * process.once('SIGTERM', () => demo.stop());
 */
export function startDemo(options: DemoOptions): Demo {
  const { controller } = options;
  const kept: { buffer: HostBuffer; until: number }[] = [];
  let tick = 0;
  let busy = false;
  let stopped = false;

  const release = (all: boolean) => {
    for (let i = kept.length - 1; i >= 0; i--) {
      const k = kept[i];
      if (k !== undefined && (all || k.until <= tick)) {
        k.buffer.free();
        kept.splice(i, 1);
      }
    }
  };

  const scope = async (round: number) => {
    for (let i = 0; i < 4; i++) {
      const bytes = SIZES[(round * 3 + i * 5) % SIZES.length];
      if (bytes === undefined) continue; // never: the index is taken modulo the length
      let buffer: HostBuffer;
      try {
        buffer = controller.alloc(bytes);
      } catch {
        continue; // A handler that cannot serve (memlock limit, no device) shows as a failure metric.
      }
      buffer.bytes.fill(round & 0xff);
      if (!stopped && kept.length < MAX_KEPT && (round + i) % 5 === 0)
        kept.push({ buffer, until: tick + KEEP_TICKS });
      else buffer.free();
      await Promise.resolve(); // Yield inside the scope: later allocations still use its handler.
    }
  };

  const run = async () => {
    busy = true;
    try {
      tick++;
      release(false);
      const names = options.names ?? [
        ...controller.names(),
        ...controller.scopes().map((s) => s.name),
      ];
      await Promise.all(names.map((name, n) => controller.run(name, scope, tick + n)));
    } finally {
      busy = false;
    }
  };

  const timer = setInterval(() => {
    if (!busy) void run().catch(() => undefined);
  }, options.intervalMs ?? 250);
  timer.unref();

  return {
    stop() {
      stopped = true;
      clearInterval(timer);
      release(true);
    },
  };
}
