/**
 * Allocation traces: record what a program allocates (through the pinpool:alloc and
 * pinpool:free diagnostics channels), save it as JSON, and replay it against any handler chain
 * to size pools on a real workload: how much memory the chain holds at its peak against the
 * bytes the program had in use.
 */
import diagnostics_channel from 'node:diagnostics_channel';

import { ADDRESS, LIVE_SLOT, scratch } from '../boundary/cells.js';
import {
  ErrorCode,
  internalError,
  PinpoolError,
  type PinpoolErrorDetails,
} from '../boundary/errors.js';
import { Handler } from '../memory/handler.js';
import { binding, constants } from '../boundary/native.js';
import type { AllocMessage, FreeMessage } from '../boundary/channels.js';
import {
  checkAlignment,
  checkBytes,
  optionsOf,
  invalid,
  isArray,
  readValue,
} from '../boundary/validate.js';

/** One step of a trace: block `id` is allocated or freed. */
export type TraceEvent =
  { op: 'alloc'; id: number; bytes: number; alignment: number } | { op: 'free'; id: number };

/** What recordTrace() returns: a recording in progress, ended by stop(). */
export interface TraceRecorder {
  /** Stops recording and returns the events so far. */
  stop(): TraceEvent[];
}

/**
 * Starts recording every pinpool allocation and free in this thread.
 *
 * @example
 * const rec = recordTrace();
 * await runWorkload();
 * writeFileSync('trace.json', JSON.stringify(rec.stop()));
 */
export function recordTrace(): TraceRecorder {
  const events: TraceEvent[] = [];
  const live = new Map<bigint, number>(); // address -> id
  let next = 1;
  const onAlloc = (m: unknown) => {
    const a = m as AllocMessage;
    const id = next++;
    live.set(a.address, id);
    events.push({ op: 'alloc', id, bytes: a.bytes, alignment: a.alignment });
  };
  const onFree = (m: unknown) => {
    const f = m as FreeMessage;
    const id = live.get(f.address);
    if (id === undefined) return; // allocated before recording began
    live.delete(f.address);
    events.push({ op: 'free', id });
  };
  diagnostics_channel.subscribe('pinpool:alloc', onAlloc);
  diagnostics_channel.subscribe('pinpool:free', onFree);
  return {
    stop() {
      diagnostics_channel.unsubscribe('pinpool:alloc', onAlloc);
      diagnostics_channel.unsubscribe('pinpool:free', onFree);
      return events;
    },
  };
}

/**
 * What replayTrace() returns: how much memory the chain held against what the trace had in use,
 * and what it cost.
 */
export interface ReplayResult {
  allocations: number;
  /** Allocations the chain refused (out of memory): they are skipped, with their frees. */
  failures: number;
  /** Highest sum of bytes the trace had in use. */
  peakBytesInUse: number;
  /** Highest sum of bytes the chain's leaves held from the system (pools' caches included). */
  peakBytesHeld: number;
  /** peakBytesHeld / peakBytesInUse: 1.0 is perfect. */
  overhead: number;
  /** Calls the chain's pools made to their upstreams. */
  upstreamCalls: number;
  seconds: number;
}

function leavesOf(h: Handler): Handler[] {
  return h.upstreams.length === 0 ? [h] : h.upstreams.flatMap(leavesOf);
}

function poolsOf(h: Handler): Handler[] {
  return [...(h.kind === 'pool' ? [h] : []), ...h.upstreams.flatMap(poolsOf)];
}

/**
 * Reads the trace once, into plain events, and checks every event before anything is
 * allocated, so that a bad trace is refused with the chain untouched and no getter or Proxy
 * trap of the caller's runs during the replay: each event an object with an integer id,
 * allocations with a valid size and alignment and an id not live already (a second block under
 * a live id could never be freed).
 */
function readTrace(trace: unknown): TraceEvent[] {
  if (!isArray(trace)) throw invalid('trace', 'an array of trace events', trace);
  const source = trace as readonly unknown[];
  const length = readValue(() => source.length, 'trace');
  const events: TraceEvent[] = [];
  const live = new Set<number>();
  for (let i = 0; i < length; i++) {
    const at = `trace[${i}]`;
    const e = readValue(() => source[i], at);
    if (e === null || typeof e !== 'object') throw invalid(at, 'a trace event', e);
    const { op, id } = readValue(
      () => ({ op: (e as { op?: unknown }).op, id: (e as { id?: unknown }).id }),
      at,
    );
    if (typeof id !== 'number' || !Number.isSafeInteger(id))
      throw invalid(`${at}.id`, 'an integer', id);
    if (op === 'alloc') {
      const { bytes, alignment } = readValue(
        () => ({
          bytes: (e as { bytes?: unknown }).bytes,
          alignment: (e as { alignment?: unknown }).alignment,
        }),
        at,
      );
      checkBytes(bytes, `${at}.bytes`);
      if (!isAlignment(alignment))
        throw invalid(`${at}.alignment`, 'a power of two from 1 to 2**30', alignment);
      if (live.has(id))
        throw invalid(`${at}.id`, 'an id not live already (it was allocated and not freed)', id);
      live.add(id);
      events.push({ op, id, bytes: bytes as number, alignment: alignment as number });
    } else if (op === 'free') {
      live.delete(id);
      events.push({ op, id });
    } else {
      throw invalid(`${at}.op`, "'alloc' or 'free'", op);
    }
  }
  return events;
}

function isAlignment(value: unknown): boolean {
  try {
    checkAlignment(value);
    return true;
  } catch {
    return false;
  }
}

/**
 * A failed allocation's error as native code makes it: a PinpoolError, or where that class could
 * not be used an Error with the same fields.
 */
type AllocError = Error & Pick<PinpoolError, 'code' | 'reason' | 'cudaError' | 'cudaErrorName'>;

/** The chain's refusal of trace[index], other than for memory: its error, naming the event. */
function refusal(error: AllocError, handler: Handler, index: number, bytes: number): PinpoolError {
  const details: PinpoolErrorDetails = { handler: handler.name };
  if (error.reason !== undefined) details.reason = error.reason;
  if (error.cudaError !== undefined) details.cudaError = error.cudaError;
  if (error.cudaErrorName !== undefined) details.cudaErrorName = error.cudaErrorName;
  return new PinpoolError(
    error.code,
    `pinpool: ${handler.name} refused trace[${index}], ${bytes} bytes (${error.message})`,
    details,
  );
}

/**
 * Replays a trace against `handler` (use a fresh chain: peaks are read from its statistics)
 * and frees whatever the trace left live at its end. Allocations the chain is out of memory
 * for are counted and skipped; frees of ids not live are skipped. A bad event is refused
 * before anything is allocated; any other failure frees every block the replay holds.
 *
 * @example
 * const r = replayTrace(JSON.parse(readFileSync('trace.json', 'utf8')), pool(pinned()));
 * console.log(`held ${r.overhead.toFixed(2)}x what was in use`);
 */
export function replayTrace(trace: readonly TraceEvent[], handler: Handler): ReplayResult {
  if (!Handler.is(handler)) throw invalid('handler', 'a pinpool handler', handler);
  const events = readTrace(trace);
  // Blocks are taken straight from the native chain, with no ArrayBuffer over them: a replay
  // measures the allocator, and V8 would otherwise collect garbage for every large buffer.
  const leaves = leavesOf(handler);
  if (leaves.some((l) => Handler.mapsFile(l)))
    throw invalid(
      'handler',
      "a chain that can serve more than one block (not a mapped file's)",
      handler.name,
    );
  const pools = poolsOf(handler);
  const held = () => leaves.reduce((sum, l) => sum + l.stats().bytesInUse, 0);
  const upstreamBefore = pools.reduce((sum, p) => sum + p.stats().upstreamAllocs, 0);
  const baseline = held();
  const live = new Map<number, [slot: number, address: number, bytes: number]>();
  let inUse = 0;
  let peakBytesInUse = 0;
  let peakBytesHeld = 0;
  let allocations = 0;
  let failures = 0;
  let seconds: number;
  const start = process.hrtime.bigint();
  try {
    let i = -1;
    for (const e of events) {
      i++;
      if (e.op === 'alloc') {
        if (binding.alloc(handler.handle, e.bytes, e.alignment, constants.views.none) === null) {
          const error = binding.takeError() as AllocError;
          if (error.code !== ErrorCode.OUT_OF_MEMORY) throw refusal(error, handler, i, e.bytes);
          failures++;
          continue;
        }
        allocations++;
        live.set(e.id, [scratch[LIVE_SLOT], scratch[ADDRESS], e.bytes]);
        inUse += e.bytes;
        if (inUse > peakBytesInUse) peakBytesInUse = inUse;
        // The chain holds the most right after it grew; reading every leaf on every step would
        // cost more than the allocation itself, so read after allocations only.
        const h = held() - baseline;
        if (h > peakBytesHeld) peakBytesHeld = h;
      } else {
        const b = live.get(e.id);
        if (b === undefined) continue;
        live.delete(e.id);
        inUse -= b[2];
        binding.free(handler.handle, undefined, b[0], b[1], false);
      }
    }
    seconds = Number(process.hrtime.bigint() - start) / 1e9;
  } finally {
    // At the end of the trace, and on the way out of a failure: nothing stays allocated.
    for (const [slot, address] of live.values())
      binding.free(handler.handle, undefined, slot, address, false);
  }
  const upstreamCalls =
    pools.reduce((sum, p) => sum + p.stats().upstreamAllocs, 0) - upstreamBefore;
  return {
    allocations,
    failures,
    peakBytesInUse,
    peakBytesHeld,
    overhead: peakBytesInUse > 0 ? peakBytesHeld / peakBytesInUse : 1,
    upstreamCalls,
    seconds,
  };
}

/**
 * Options of syntheticTrace(): how many events, the seed, the range of sizes and how many blocks
 * live at once.
 */
export interface SyntheticTraceOptions {
  /** Number of events. Default 100000. */
  events?: number;
  /** PRNG seed, a non-negative integer. Default 1. */
  seed?: number;
  /** Sizes are log-uniform in [minBytes, maxBytes], 1 <= minBytes <= maxBytes. Defaults 1 KiB and 64 MiB. */
  minBytes?: number;
  maxBytes?: number;
  /** Blocks live at once, on average. Default 64. */
  live?: number;
}

const readSyntheticTraceOptions = optionsOf<SyntheticTraceOptions>('syntheticTrace', {
  events: true,
  seed: true,
  minBytes: true,
  maxBytes: true,
  live: true,
});

/** A seeded synthetic trace: mixed allocations and frees of log-uniform sizes. */
export function syntheticTrace(options?: SyntheticTraceOptions): TraceEvent[] {
  const o = readSyntheticTraceOptions(options);
  const events = checkBytes(o.events ?? 100_000, 'events');
  const minBytes = checkBytes(o.minBytes ?? 1024, 'minBytes');
  const maxBytes = checkBytes(o.maxBytes ?? 64 * 2 ** 20, 'maxBytes');
  // Sizes are drawn between the logarithms of the bounds: 0 has none.
  if (minBytes === 0) throw invalid('minBytes', 'at least 1', minBytes);
  if (minBytes > maxBytes) throw invalid('minBytes', `at most maxBytes (${maxBytes})`, minBytes);
  const target = checkBytes(o.live ?? 64, 'live');
  let state = checkBytes(o.seed ?? 1, 'seed') >>> 0 || 1;
  const random = () => {
    // xorshift32: small, fast, and the same sequence on every platform
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
  const out: TraceEvent[] = [];
  const live: number[] = [];
  let next = 1;
  while (out.length < events) {
    const allocate = live.length < target / 2 || (live.length < target * 1.5 && random() < 0.5);
    if (allocate || live.length === 0) {
      const drawn = Math.round(
        Math.exp(Math.log(minBytes) + random() * (Math.log(maxBytes) - Math.log(minBytes))),
      );
      const bytes = Math.min(maxBytes, Math.max(minBytes, drawn)); // exp(log(x)) may miss x by a rounding
      out.push({ op: 'alloc', id: next, bytes, alignment: 64 });
      live.push(next++);
    } else {
      // A live id at random, taken out by moving the last one into its place.
      const i = Math.floor(random() * live.length);
      const id = live[i];
      const last = live.pop();
      if (id === undefined || last === undefined)
        throw internalError('syntheticTrace() freed with no block live');
      if (i < live.length) live[i] = last;
      out.push({ op: 'free', id });
    }
  }
  return out;
}
