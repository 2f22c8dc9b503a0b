import diagnostics_channel from 'node:diagnostics_channel';
import { afterEach, describe, expect, it } from 'vitest';
import {
  fallback,
  limit,
  pageable,
  pinned,
  pool,
  type AllocMessage,
  type FallbackMessage,
  type FreeMessage,
} from 'pinpool';

const subscriptions: [string, (m: unknown) => void][] = [];
function listen<T>(name: string): T[] {
  const seen: T[] = [];
  const fn = (m: unknown) => seen.push(m as T);
  diagnostics_channel.subscribe(name, fn);
  subscriptions.push([name, fn]);
  return seen;
}
afterEach(() => {
  for (const [name, fn] of subscriptions.splice(0)) diagnostics_channel.unsubscribe(name, fn);
});

describe('diagnostics_channel tracing', () => {
  it('publishes pinpool:alloc and pinpool:free with sizes, addresses and the serving leaf', () => {
    const allocs = listen<AllocMessage>('pinpool:alloc');
    const frees = listen<FreeMessage>('pinpool:free');
    const h = pool(pageable({ name: 'leafy' }), { name: 'traced' });
    const b = h.alloc(123, { alignment: 256 });
    const address = b.address;
    b.free();
    expect(allocs).toEqual([
      { handler: 'traced', bytes: 123, alignment: 256, address, servedBy: 'leafy' },
    ]);
    expect(frees).toEqual([
      { handler: 'traced', bytes: 123, alignment: 256, address, byGc: false },
    ]);
  });

  it('publishes pinpool:fallback for each fallback, with from, to and reason', () => {
    const fallbacks = listen<FallbackMessage>('pinpool:fallback');
    const inner = fallback(
      limit(pageable({ name: 'p2' }), { maxBytes: 10, name: 'tiny' }),
      pageable({ name: 'last' }),
      { name: 'inner' },
    );
    const outer = fallback(pool(pinned(), { name: 'gpu' }), inner, { name: 'outer' });
    outer.alloc(100).free();
    expect(fallbacks).toEqual([
      { handler: 'outer', from: 'gpu', to: 'inner', reason: 'unavailable', bytes: 100 },
      { handler: 'inner', from: 'tiny', to: 'last', reason: 'out-of-memory', bytes: 100 },
    ]);
  });

  it('publishes nothing once unsubscribed', () => {
    const h = fallback(pool(pinned()), pageable());
    const fallbacks: unknown[] = [];
    const fn = (m: unknown) => fallbacks.push(m);
    diagnostics_channel.subscribe('pinpool:fallback', fn);
    h.alloc(1).free();
    diagnostics_channel.unsubscribe('pinpool:fallback', fn);
    h.alloc(1).free();
    expect(fallbacks).toHaveLength(1);
  });
});
