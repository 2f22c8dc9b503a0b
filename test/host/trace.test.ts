// Traces: syntheticTrace's options, and replayTrace rejecting bad traces without leaking.
import { describe, expect, it } from 'vitest';
import {
  fallback,
  pageable,
  pinned,
  pool,
  recordTrace,
  replayTrace,
  syntheticTrace,
  type Handler,
  type TraceEvent,
} from 'pinpool';
import { errorOf } from '../support/expect-error.js';

describe('syntheticTrace', () => {
  it('is seeded, keeps sizes in [minBytes, maxBytes], and frees only live ids', () => {
    const options = { events: 2000, seed: 7, minBytes: 100, maxBytes: 5000, live: 16 };
    const trace = syntheticTrace(options);
    expect(syntheticTrace(options)).toEqual(trace);
    expect(trace).toHaveLength(2000);
    const live = new Set<number>();
    for (const e of trace) {
      if (e.op === 'alloc') {
        expect(e.bytes).toBeGreaterThanOrEqual(100);
        expect(e.bytes).toBeLessThanOrEqual(5000);
        expect(live.has(e.id)).toBe(false);
        live.add(e.id);
      } else {
        expect(live.delete(e.id)).toBe(true);
      }
    }
    const equal = syntheticTrace({ events: 10, minBytes: 4096, maxBytes: 4096 });
    expect(equal.every((e) => e.op !== 'alloc' || e.bytes === 4096)).toBe(true);
  });

  it('refuses options that make no trace: minBytes 0 (sizes would be NaN), minBytes > maxBytes, ...', () => {
    const bad: unknown[] = [
      null,
      7,
      { minBytes: 0 },
      { minBytes: 2048, maxBytes: 1024 },
      { minBytes: -1 },
      { maxBytes: 0 },
      { events: 1.5 },
      { seed: 'one' },
      { seed: -1 },
      { live: Infinity },
    ];
    for (const options of bad) {
      expect(errorOf(() => syntheticTrace(options as object)).code, JSON.stringify(options)).toBe(
        'ERR_PINPOOL_INVALID_ARGUMENT',
      );
    }
  });
});

function revoked(): object {
  const { proxy, revoke } = Proxy.revocable([], {});
  revoke();
  return proxy;
}

/** Bytes in use and held by each handler of a chain, for comparing before and after. */
function usage(...handlers: Handler[]) {
  return handlers.map((h) => {
    const s = h.stats();
    return {
      name: h.name,
      bytes: s.bytesInUse,
      allocations: s.buffersInUse,
      reserved: s.reservedBytes,
    };
  });
}

describe('replayTrace', () => {
  it('replays a trace and frees what it left live', () => {
    const leaf = pageable();
    const chain = pool(leaf);
    const trace = syntheticTrace({ events: 500, minBytes: 64, maxBytes: 1 << 20 });
    const r = replayTrace(trace, chain);
    expect(r.allocations).toBe(trace.filter((e) => e.op === 'alloc').length);
    expect(r.failures).toBe(0);
    expect(r.peakBytesHeld).toBeGreaterThanOrEqual(r.peakBytesInUse);
    expect(chain.stats().bytesInUse).toBe(0);
  });

  it('replays what recordTrace recorded', () => {
    const h = pool(pageable());
    const recorder = recordTrace();
    const a = h.alloc(1000);
    const b = h.alloc(3000);
    a.free();
    b.free();
    const trace = recorder.stop();
    expect(trace).toEqual([
      { op: 'alloc', id: 1, bytes: 1000, alignment: 64 },
      { op: 'alloc', id: 2, bytes: 3000, alignment: 64 },
      { op: 'free', id: 1 },
      { op: 'free', id: 2 },
    ]);
    expect(replayTrace(trace, pool(pageable())).peakBytesInUse).toBe(4000);
  });

  const good: TraceEvent[] = [
    { op: 'alloc', id: 1, bytes: 4096, alignment: 64 },
    { op: 'alloc', id: 2, bytes: 8192, alignment: 64 },
    { op: 'free', id: 1 },
  ];
  const badTraces: [string, unknown][] = [
    ['not an array', { op: 'alloc' }],
    ['a null event', [...good, null]],
    ['an unknown op', [...good, { op: 'realloc', id: 3, bytes: 1, alignment: 64 }]],
    ['a negative size', [...good, { op: 'alloc', id: 3, bytes: -1, alignment: 64 }]],
    ['a bad alignment', [...good, { op: 'alloc', id: 3, bytes: 64, alignment: 3 }]],
    ['an id that is not an integer', [...good, { op: 'alloc', id: 'x', bytes: 64, alignment: 64 }]],
    ['a free without an id', [...good, { op: 'free' }]],
    ['a duplicate id', [...good, { op: 'alloc', id: 2, bytes: 64, alignment: 64 }]],
    ['a revoked Proxy (found by the fuzzer)', revoked()],
    [
      'an event whose getter throws (found by the fuzzer)',
      [
        ...good,
        {
          op: 'alloc',
          get id(): number {
            throw new Error('getter');
          },
        },
      ],
    ],
    [
      'an array whose get trap throws (found by the fuzzer)',
      new Proxy([...good], {
        get(t, k) {
          if (k === '1') throw new Error('trap');
          return Reflect.get(t, k) as unknown;
        },
      }),
    ],
  ];
  for (const [what, trace] of badTraces) {
    it(`rejects ${what} as ERR_PINPOOL_INVALID_ARGUMENT, and leaves the chain as it was`, () => {
      const leaf = pageable();
      const chain = pool(leaf);
      const before = usage(chain, leaf);
      const err = errorOf(() => replayTrace(trace as TraceEvent[], chain));
      expect(err.code).toBe('ERR_PINPOOL_INVALID_ARGUMENT');
      expect(usage(chain, leaf)).toEqual(before);
      expect(leaf.stats().allocatedBytes).toBe(0); // nothing was allocated at all
    });
  }

  it('reads each event once, before anything is allocated (found by the fuzzer)', () => {
    let reads = 0;
    // A size that is valid when checked and -1 when the replay would read it again.
    const sly = {
      op: 'alloc',
      id: 1,
      alignment: 64,
      get bytes() {
        return reads++ === 0 ? 64 : -1;
      },
    };
    const chain = pool(pageable());
    const r = replayTrace([sly, { op: 'free', id: 1 }] as TraceEvent[], chain);
    expect(reads).toBe(1);
    expect(r.peakBytesInUse).toBe(64);
    expect(chain.stats().allocatedBytes).toBe(64);
  });

  it('a handler that is not one is ERR_PINPOOL_INVALID_ARGUMENT', () => {
    expect(errorOf(() => replayTrace(good, {} as unknown as Handler)).code).toBe(
      'ERR_PINPOOL_INVALID_ARGUMENT',
    );
  });

  it('an allocation the chain refuses other than for memory: its error, and every block freed', () => {
    // Small blocks come from pageable memory, large ones from pinned(), unavailable without CUDA.
    const small = pageable();
    const chain = fallback(small, pinned(), { maxBytes: 1 << 20 });
    const trace: TraceEvent[] = [
      { op: 'alloc', id: 1, bytes: 4096, alignment: 64 },
      { op: 'alloc', id: 2, bytes: 8192, alignment: 64 },
      { op: 'alloc', id: 3, bytes: 2 << 20, alignment: 64 },
    ];
    const err = errorOf(() => replayTrace(trace, chain));
    expect(err.code).toBe('ERR_PINPOOL_UNAVAILABLE');
    expect(small.stats().allocatedBytes).toBe(4096 + 8192);
    expect(usage(chain, small).map((u) => u.bytes)).toEqual([0, 0]);
  });
});
