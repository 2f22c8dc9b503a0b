/**
 * The multi-threaded stress test (mimalloc's test-stress model), shared by stress.test.ts
 * (host chains) and test/fake-cuda/stress/stress.test.ts (CUDA chains through the test double).
 *
 * Four worker threads (stress-worker.cjs) share the chains below through handler.share() /
 * attach(). Each makes `ops` allocations, 1 B to 4 MiB with 1% up to 64 MiB, fills every block
 * with a pattern derived from its id and checks it at free (patterns.cjs says how much of a
 * large block is checked); a quarter of the blocks go to another thread (transfer()/adopt())
 * which checks and frees them. Afterwards every statistic of every handler in every chain must
 * be back to zero, and the pools must give everything back on trim().
 *
 * The seed is fixed (PINPOOL_STRESS_SEED overrides it) and printed on failure. Each thread's
 * sequence of chains and sizes follows from the seed; how the threads interleave does not.
 */
import { join } from 'node:path';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type { Handler, HandlerStats } from 'pinpool';

export const DEFAULT_SEED = 0x5eed_2024;

/**
 * The stress test takes tens of seconds, so `npm test` skips it; `npm run test:stress` (and CI)
 * sets PINPOOL_STRESS=1. PINPOOL_STRESS_SEED picks another seed, PINPOOL_STRESS_OPS another
 * number of allocations per thread (fewer for a quick look; CI keeps the default).
 */
export const stressEnabled = process.env.PINPOOL_STRESS === '1';
const WORKER = join(__dirname, 'stress-worker.cjs');

/** One chain under test. */
export interface StressChain {
  /** For messages: 'limit(pool(pageable))' ... */
  label: string;
  handler: Handler;
  /** Sizes for this chain are log-uniform in [1, maxSize] instead of the general mix. */
  maxSize?: number;
  /** Reasons of ERR_PINPOOL_OUT_OF_MEMORY that this chain may report: counted, not failures. */
  expected: string[];
}

export interface StressOptions {
  chains: StressChain[];
  workers?: number;
  /** Allocations per worker (each also frees or hands off what its slot held). */
  ops?: number;
  /** Live blocks per worker. */
  slots?: number;
  seed?: number;
  /**
   * Give up (and say so, with the seed and each worker's step count) when no worker has taken
   * a step for this long: a hung thread, such as a deadlock in a pool. It bounds no run's
   * length: a loaded machine makes every step slower but still takes steps. Default 300.
   */
  stallSeconds?: number;
  /** The watchdog's own test: worker 0 stops taking steps after this many operations. */
  hangAfterOps?: number;
}

interface WorkerResult {
  index: number;
  ops: number;
  seconds: number;
  allocs: number[];
  bytes: number[];
  expectedFailures: Record<string, number>[];
  transferred: number;
  adopted: number;
  freedHere: number;
  errors: string[];
}

/** What every worker reports, summed over the workers. */
export interface StressResult extends Omit<WorkerResult, 'index' | 'freedHere'> {
  seed: number;
  workers: number;
}

export function seedFromEnv(): number {
  const text = process.env.PINPOOL_STRESS_SEED;
  if (text === undefined || text === '') return DEFAULT_SEED;
  const seed = Number(text);
  if (!Number.isSafeInteger(seed))
    throw new Error(`PINPOOL_STRESS_SEED must be an integer, got ${text}`);
  return seed >>> 0;
}

export function opsFromEnv(fallback: number): number {
  const text = process.env.PINPOOL_STRESS_OPS;
  return text === undefined || text === '' ? fallback : Number(text);
}

function run(worker: Worker): Promise<WorkerResult> {
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) =>
      reject(new Error(`stress worker exited (code ${code}) before reporting`)),
    );
  });
}

/** Runs the workers over the chains; resolves when every block made was freed. */
export async function runStress(options: StressOptions): Promise<StressResult> {
  const workers = options.workers ?? 4;
  const ops = options.ops ?? 100_000;
  const slots = options.slots ?? 64;
  const seed = options.seed ?? DEFAULT_SEED;
  const chains = options.chains.map((c) => ({
    label: c.label,
    token: c.handler.share(),
    maxSize: c.maxSize,
    expected: c.expected,
  }));

  // A full mesh of ports: ports[i][j] is worker i's end of the channel to worker j.
  const ports: (MessagePort | null)[][] = Array.from({ length: workers }, () =>
    new Array<MessagePort | null>(workers).fill(null),
  );
  for (let i = 0; i < workers; i++) {
    for (let j = i + 1; j < workers; j++) {
      const { port1, port2 } = new MessageChannel();
      ports[i]![j] = port1;
      ports[j]![i] = port2;
    }
  }
  // Each worker counts its steps (an allocation, a block received, a block freed at the end)
  // in its own cell, which the watchdog below reads without stopping it.
  const steps = new Int32Array(new SharedArrayBuffer(4 * workers));
  const start = process.hrtime.bigint();
  const threads = ports.map((own, index) => {
    const workerSeed = (seed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0;
    const hangAfterOps = index === 0 ? options.hangAfterOps : undefined;
    const workerData = {
      index,
      workers,
      seed: workerSeed,
      ops,
      slots,
      chains,
      ports: own,
      steps,
      hangAfterOps,
    };
    return new Worker(WORKER, {
      workerData,
      transferList: own.filter((p): p is MessagePort => p !== null),
    });
  });
  // A hung thread (a deadlock in a pool) must still end in a failure that names the seed. The
  // run is bounded by its work, not by a deadline: it fails only when no worker took a step for
  // stallSeconds, which no amount of load does to threads that are working.
  const stallSeconds = options.stallSeconds ?? 300;
  let watchdog: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_, reject) => {
    let last = -1;
    let since = performance.now();
    watchdog = setInterval(
      () => {
        const each = Array.from({ length: workers }, (_, i) => Atomics.load(steps, i));
        const total = each.reduce((a, b) => a + b, 0);
        if (total !== last) {
          last = total;
          since = performance.now();
        } else if (performance.now() - since >= stallSeconds * 1000) {
          reject(
            new Error(
              `stress workers took no step for ${stallSeconds} s (seed ${seed}); steps per worker: ${each.join(', ')}`,
            ),
          );
        }
      },
      Math.min(10_000, (stallSeconds * 1000) / 4),
    );
  });
  let results: WorkerResult[];
  try {
    results = await Promise.race([Promise.all(threads.map(run)), stalled]);
  } finally {
    clearInterval(watchdog);
    await Promise.all(threads.map((t) => t.terminate()));
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const sum = (pick: (r: WorkerResult) => number) => results.reduce((a, r) => a + pick(r), 0);
  return {
    seed,
    workers,
    ops: sum((r) => r.ops),
    seconds,
    allocs: chains.map((_, c) => sum((r) => r.allocs[c]!)),
    bytes: chains.map((_, c) => sum((r) => r.bytes[c]!)),
    expectedFailures: chains.map((_, c) => {
      const total: Record<string, number> = {};
      for (const r of results)
        for (const [k, v] of Object.entries(r.expectedFailures[c]!)) total[k] = (total[k] ?? 0) + v;
      return total;
    }),
    transferred: sum((r) => r.transferred),
    adopted: sum((r) => r.adopted),
    errors: results.flatMap((r) => r.errors),
  };
}

/** Every handler of a chain, top first, each once. */
export function handlersOf(top: Handler): Handler[] {
  const seen = new Map<number, Handler>();
  const walk = (h: Handler) => {
    if (seen.has(h.id)) return;
    seen.set(h.id, h);
    h.upstreams.forEach(walk);
  };
  walk(top);
  return [...seen.values()];
}

/** One line for CI logs. */
export function summary(name: string, r: StressResult, chains: StressChain[]): string {
  const perChain = chains
    .map((c, i) => {
      const failures = Object.entries(r.expectedFailures[i]!)
        .map(([k, v]) => `, ${k} failures ${v}`)
        .join('');
      const fallbacks = Object.entries(c.handler.stats().fallbacks)
        .map(([k, v]) => `, ${k} fallbacks ${v}`)
        .join('');
      return `${c.label} ${String(r.allocs[i])} allocs${failures}${fallbacks}`;
    })
    .join('; ');
  const gib = r.bytes.reduce((a, b) => a + b, 0) / 2 ** 30;
  return (
    `stress ${name}: ${r.workers} workers x ${r.ops / r.workers} ops in ${r.seconds.toFixed(1)} s, ` +
    `seed ${r.seed} (0x${r.seed.toString(16)}), ${gib.toFixed(1)} GiB allocated, ` +
    `${r.transferred} freed by another thread (${((100 * r.transferred) / r.allocs.reduce((a, b) => a + b, 0)).toFixed(1)}%); ${perChain}`
  );
}

/**
 * The statistics that must read zero once every block is back, before trim(). A pool keeps
 * what it took from its upstream, so a pool's upstream is checked through the pool instead:
 * everything the pool reserved is cached, and is exactly what the upstream has handed out.
 */
export function leftovers(chains: StressChain[]): string[] {
  const problems: string[] = [];
  const say = (h: Handler, what: string, s: HandlerStats) =>
    problems.push(`${h.name} (${h.kind}): ${what}: ${JSON.stringify(s)}`);
  for (const c of chains) {
    const all = handlersOf(c.handler);
    const underPool = new Set(
      all.filter((h) => h.kind === 'pool').flatMap((h) => handlersOf(h).slice(1)),
    );
    for (const h of all) {
      const s = h.stats();
      if (s.gcReleased !== 0) say(h, `gcReleased ${s.gcReleased}`, s);
      if (underPool.has(h)) continue;
      if (s.bytesInUse !== 0) say(h, `bytes.current ${s.bytesInUse}`, s);
      if (s.buffersInUse !== 0) say(h, `allocations.current ${s.buffersInUse}`, s);
      if (s.allocations !== s.frees)
        say(h, `allocations.total ${s.allocations} != frees ${s.frees}`, s);
      if (h.kind === 'pool') {
        if (s.cachedBytes !== s.reservedBytes)
          say(h, `cachedBytes ${s.cachedBytes} != reserved.current ${s.reservedBytes}`, s);
        const up = h.upstreams[0]!.stats();
        if (up.bytesInUse !== s.reservedBytes)
          say(
            h,
            `reserved.current ${s.reservedBytes} != upstream bytes.current ${up.bytesInUse}`,
            s,
          );
      }
    }
  }
  return problems;
}

/** After trim(): pools hold nothing, and so their upstreams hold nothing either. */
export function leftoversAfterTrim(chains: StressChain[]): string[] {
  const problems: string[] = [];
  for (const c of chains) {
    c.handler.trim();
    for (const h of handlersOf(c.handler)) {
      const s = h.stats();
      if (
        s.reservedBytes !== 0 ||
        s.cachedBytes !== 0 ||
        s.bytesInUse !== 0 ||
        s.buffersInUse !== 0
      ) {
        problems.push(
          `${h.name} (${h.kind}) after trim(): reserved.current ${s.reservedBytes}, cachedBytes ${s.cachedBytes}, ` +
            `bytes.current ${s.bytesInUse}, allocations.current ${s.buffersInUse}`,
        );
      }
      if (s.allocations !== s.frees)
        problems.push(
          `${h.name} (${h.kind}) after trim(): allocations.total ${s.allocations} != frees ${s.frees}`,
        );
      if (h.kind === 'pool') {
        // upstreamAllocs counts calls, failed ones included; the upstream serves only this pool.
        const up = h.upstreams[0]!.stats();
        const upFailures = Object.values(up.failures).reduce((a, b) => a + b, 0);
        if (s.upstreamAllocs !== up.allocations + upFailures || s.upstreamFrees !== up.frees) {
          problems.push(
            `${h.name} (pool) after trim(): upstreamAllocs ${s.upstreamAllocs}, upstreamFrees ${s.upstreamFrees}; ` +
              `its upstream made ${up.allocations}, failed ${upFailures}, freed ${up.frees}`,
          );
        }
      }
    }
  }
  return problems;
}

/** Counts each chain's top handler must agree with what the workers saw. */
export function mismatches(r: StressResult, chains: StressChain[]): string[] {
  const problems: string[] = [];
  chains.forEach((c, i) => {
    const s = c.handler.stats();
    if (s.allocations !== r.allocs[i])
      problems.push(
        `${c.label}: allocations.total ${s.allocations}, the workers made ${String(r.allocs[i])}`,
      );
    for (const [reason, n] of Object.entries(r.expectedFailures[i]!)) {
      if ((s.failures[reason] ?? 0) !== n)
        problems.push(
          `${c.label}: failures.${reason} ${s.failures[reason] ?? 0}, the workers saw ${n}`,
        );
    }
  });
  if (r.transferred !== r.adopted)
    problems.push(`${r.transferred} blocks transferred, ${r.adopted} adopted`);
  return problems;
}

/**
 * The checks every stress run ends with: no worker saw a bad block, the counts agree, every
 * statistic is back to zero (and to nothing after trim), and about a quarter of the blocks
 * were freed by another thread. `expect` is vitest's, passed in to keep this file framework-free.
 */
export function expectClean(
  expect: (
    value: unknown,
    message?: string,
  ) => {
    toEqual(v: unknown): void;
    toBeGreaterThan(v: number): void;
    toBeLessThan(v: number): void;
  },
  r: StressResult,
  chains: StressChain[],
  reproduce: string,
): void {
  expect(r.errors, reproduce).toEqual([]);
  expect(mismatches(r, chains), reproduce).toEqual([]);
  expect(leftovers(chains), reproduce).toEqual([]);
  expect(leftoversAfterTrim(chains), reproduce).toEqual([]);
  const share = r.transferred / r.allocs.reduce((a, b) => a + b, 0);
  expect(share, reproduce).toBeGreaterThan(0.2);
  expect(share, reproduce).toBeLessThan(0.3);
}
