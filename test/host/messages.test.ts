// Errors that say what to do, and objects that show what they are, without a CUDA driver
// (project host). The enumeration of every options-taking export is in
// test/fake-cuda/messages.test.ts, where every one of them can be called.
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  adopt,
  alloc,
  defaultHandler,
  deviceAlloc,
  ErrorCode,
  fallback,
  Handler,
  HostBuffer,
  limit,
  locked,
  pageable,
  pinned,
  pool,
} from 'pinpool';

import { closest, editDistance } from '../../dist/src/boundary/validate.js';
import { expectCode } from '../support/expect-error.js';

describe('unknown option keys', () => {
  it("pool(x, { aligment: 64 }): names the key, and alloc()'s alignment it was meant for", () => {
    const up = pageable();
    const before = up.stats();
    const err = expectCode(() => pool(up, { aligment: 64 } as never), ErrorCode.INVALID_ARGUMENT);
    expect(err.message).toBe(
      "pinpool: pool() has no option 'aligment'; 'alignment' is an option of alloc(), not pool(): its options are name, maxCachedBytes, cacheRatio, slabViews, threadCacheBytes, initialBytes, chunkBytes",
    );
    expect(up.stats()).toEqual(before);
  });

  it("pool(x, { maxCacheBytes }): did you mean 'maxCachedBytes'?", () => {
    const err = expectCode(
      () => pool(pageable(), { maxCacheBytes: 1 << 20 } as never),
      ErrorCode.INVALID_ARGUMENT,
    );
    expect(err.message).toBe(
      "pinpool: pool() has no option 'maxCacheBytes'; did you mean 'maxCachedBytes'?",
    );
  });

  it("alloc(n, { aligment }): did you mean 'alignment'?, and no statistic moves", () => {
    const h = pool(pageable());
    const kept = h.alloc(64);
    const before = h.stats();
    const err = expectCode(
      () => h.alloc(64, { aligment: 4096 } as never),
      ErrorCode.INVALID_ARGUMENT,
    );
    expect(err.message).toBe(
      "pinpool: alloc() has no option 'aligment'; did you mean 'alignment'?",
    );
    expectCode(() => alloc(64, { zeroed: true } as never), ErrorCode.INVALID_ARGUMENT);
    expect(h.stats()).toEqual(before);
    kept.free();
  });

  it('another spelling of a key (case, snake_case) is suggested too', () => {
    expect(
      expectCode(() => locked({ max_bytes: 1 } as never), ErrorCode.INVALID_ARGUMENT).message,
    ).toBe("pinpool: locked() has no option 'max_bytes'; did you mean 'maxBytes'?");
    expect(
      expectCode(
        () => fallback(pageable(), pageable(), { MinBytes: 1 } as never),
        ErrorCode.INVALID_ARGUMENT,
      ).message,
    ).toBe("pinpool: fallback() has no option 'MinBytes'; did you mean 'minBytes'?");
  });

  it('a key near nothing lists every key the function takes', () => {
    const err = expectCode(
      () => limit(pageable(), { maxBytes: 1, ceiling: 2 } as never),
      ErrorCode.INVALID_ARGUMENT,
    );
    expect(err.message).toBe(
      "pinpool: limit() has no option 'ceiling'; its options are name, maxBytes",
    );
  });

  it('a key no message can garble: quoted, and cut short', () => {
    const odd = expectCode(() => pageable({ 'a\nb': 1 } as never), ErrorCode.INVALID_ARGUMENT);
    expect(odd.message).toBe('pinpool: pageable() has no option "a\\nb"; its options are name');
    const long = expectCode(() => pageable({ ['k'.repeat(1000)]: 1 }), ErrorCode.INVALID_ARGUMENT);
    expect(long.message).toContain(`'${'k'.repeat(64)}...'`);
    expect(long.message.length).toBeLessThan(200);
  });

  it("symbol keys and inherited keys are not the caller's options: accepted as before", () => {
    const options = Object.assign(Object.create({ inherited: 1 }) as object, {
      [Symbol('tag')]: 1,
      name: 'tagged',
    });
    expect(pageable(options).name).toBe('tagged');
  });

  it('options objects pinpool builds itself still pass: the default chain', () => {
    expect(defaultHandler().alloc(64).servedBy).toMatch(/^(locked|pageable)$/);
  });

  it('the distance: one per insertion, deletion, substitution or swap of neighbours', () => {
    expect(editDistance('alignment', 'alignment')).toBe(0);
    expect(editDistance('aligment', 'alignment')).toBe(1); // a letter left out
    expect(editDistance('alignmnet', 'alignment')).toBe(1); // two letters swapped
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
    // Near enough is one edit per four letters of the key meant, at least one.
    expect(closest('nme', ['name'])).toBe('name');
    expect(closest('nm', ['name'])).toBeUndefined();
    expect(closest('zero', ['size'])).toBeUndefined();
    expect(closest('mxCachdBytes', ['maxCachedBytes'])).toBe('maxCachedBytes');
  });
});

describe('the limit error', () => {
  it('says the cap, the bytes in use and the size asked, in words and as numbers', () => {
    const h = limit(pageable(), { maxBytes: 1000 });
    const held = h.alloc(900);
    const err = expectCode(() => h.alloc(200), ErrorCode.OUT_OF_MEMORY);
    expect(err.message).toBe(
      "pinpool: pageable-limit could not allocate 200 bytes (limit): its cap is 1000 bytes, with 900 bytes in use; free buffers, or raise the limit's maxBytes",
    );
    expect(err).toMatchObject({
      reason: 'limit',
      handler: 'pageable-limit',
      bytes: 200,
      capBytes: 1000,
      bytesInUse: 900,
    });
    held.free();
    expect(h.alloc(1000).byteLength).toBe(1000);
  });

  it('a limit down the chain is named, with what it was asked for', () => {
    const capped = limit(pageable(), { maxBytes: 1000, name: 'budget' });
    const h = pool(capped, { name: 'front' });
    const err = expectCode(() => h.alloc(200), ErrorCode.OUT_OF_MEMORY);
    // The pool asked its upstream for a slab of 200-byte blocks, not for 200 bytes.
    expect(err.message).toMatch(
      /^pinpool: front could not allocate 200 bytes \(limit\): the limit 'budget', asked for \d+ bytes, has a cap of 1000 bytes, with 0 bytes in use; /,
    );
    expect(err).toMatchObject({ handler: 'front', bytes: 200, capBytes: 1000, bytesInUse: 0 });
  });

  it("a page-lock cap's refusal carries the bytes locked already as bytesInUse too", () => {
    const h = locked({ maxBytes: 16384 }); // below any host's cap: this one refuses
    const held = h.alloc(4096);
    const err = expectCode(() => h.alloc(16384), ErrorCode.OUT_OF_MEMORY);
    expect(err).toMatchObject({ reason: 'mlock', bytes: 16384, capBytes: 16384, bytesInUse: 4096 });
    expect(err.message).toContain('with 4096 bytes locked already');
    held.free();
  });

  it('another refusal is not described as the limit: the next error has no cap of a limit', () => {
    const h = limit(pageable(), { maxBytes: 100 });
    expectCode(() => h.alloc(200), ErrorCode.OUT_OF_MEMORY);
    const err = expectCode(() => pageable().alloc(2 ** 50), ErrorCode.OUT_OF_MEMORY);
    expect(err.capBytes).toBeUndefined();
    expect(err.bytesInUse).toBeUndefined();
    expect(err.message).not.toContain('cap');
  });
});

describe('CUDA errors without a driver', () => {
  // No CUDA call was made, so there is no CUDA result to show ('CUDA error 3' before): the
  // reason says what is missing. Names from the driver's table: test/fake-cuda/messages.test.ts.
  it('a pinned allocation says no-cuda, with no CUDA error number or name', () => {
    const err = expectCode(() => pinned().alloc(64), ErrorCode.UNAVAILABLE);
    expect(err.reason).toBe('no-cuda');
    expect(err.cudaError).toBeUndefined();
    expect(err.cudaErrorName).toBeUndefined();
    expect(err.message).toMatch(/libcuda|driver/i);
  });

  it('so does a device allocation', () => {
    const err = expectCode(() => deviceAlloc(64), ErrorCode.UNAVAILABLE);
    expect(err.reason).toBe('no-cuda');
    expect(err.cudaError).toBeUndefined();
    expect(err.cudaErrorName).toBeUndefined();
  });
});

describe('util.inspect', () => {
  it('shows a HostBuffer: size, kind, servedBy, handler, alignment, released, address', () => {
    const h = pool(pageable(), { name: 'shown' });
    const b = h.alloc(4096, { alignment: 4096 });
    const address = `0x${b.address.toString(16)}`;
    const before = h.stats();
    expect(inspect(b)).toBe(
      `HostBuffer {\n  byteLength: 4096,\n  kind: 'pageable',\n  servedBy: 'pageable',\n  handler: 'shown',\n  alignment: 4096,\n  released: false,\n  address: '${address}'\n}`,
    );
    expect(h.stats()).toEqual(before); // looking allocates nothing and counts nothing
    b.free();
    expect(inspect(b)).toBe(
      "HostBuffer {\n  byteLength: 4096,\n  kind: 'pageable',\n  servedBy: 'pageable',\n  handler: 'shown',\n  alignment: 4096,\n  released: true\n}",
    );
  });

  it('shows a slab view as one', () => {
    const b = pool(pageable(), { slabViews: true }).alloc(100);
    expect(inspect(b)).toContain('slabView: true');
    b.free();
    expect(inspect(b)).toContain('released: true');
  });

  it('keeps depth and colors, and shows [HostBuffer] past the depth', () => {
    const b = pageable().alloc(8);
    expect(inspect({ a: { b: { buf: b } } })).toBe('{ a: { b: { buf: [HostBuffer] } } }');
    expect(inspect(b, { colors: true })).toContain('\u001b[33m8\u001b[39m');
    expect(inspect(b, { depth: -1 })).toBe('[HostBuffer]');
    b.free();
  });

  it('never throws: a detached buffer, a foreign receiver, the prototype', () => {
    const b = pageable().alloc(8);
    const token = b.transfer(); // its memory now belongs to whoever adopts the token
    expect(inspect(b)).toContain('released: true');
    adopt(token).free();
    const custom = (HostBuffer.prototype as unknown as Record<symbol, (...a: unknown[]) => string>)[
      Symbol.for('nodejs.util.inspect.custom')
    ];
    expect(custom?.call({}, 2, { stylize: (s: string) => s }, inspect)).toBe('HostBuffer {}');
    expect(custom?.call(undefined, 2, {}, inspect)).toBe('HostBuffer {}');
    expect(() => inspect(HostBuffer.prototype)).not.toThrow();
    expect(() => inspect(Handler.prototype)).not.toThrow();
  });

  it('shows a Handler: name, kind, its bytes and buffers, its cache or cap, its chain', () => {
    const capped = limit(pageable(), { maxBytes: 1 << 20, name: 'budget' });
    const h = pool(capped, { name: 'front' });
    const b = h.alloc(1000);
    const before = h.stats();
    const slab = capped.stats().bytesInUse; // the pool took a slab from the limit
    expect(slab).toBeGreaterThan(1000);
    expect(inspect(h, { depth: 4, breakLength: Infinity })).toBe(
      `Handler { name: 'front', kind: 'pool', bytesInUse: 1000, buffersInUse: 1, cachedBytes: ${before.cachedBytes}, upstreams: [ Handler { name: 'budget', kind: 'limit', bytesInUse: ${slab}, buffersInUse: 1, capBytes: 1048576, upstreams: [ Handler { name: 'pageable', kind: 'pageable', bytesInUse: ${slab}, buffersInUse: 1 } ] } ] }`,
    );
    expect(h.stats()).toEqual(before); // looking allocates nothing and counts nothing
    b.free();
    expect(inspect(h, { depth: 0 })).toBe(
      `Handler {\n  name: 'front',\n  kind: 'pool',\n  bytesInUse: 0,\n  buffersInUse: 0,\n  cachedBytes: ${h.stats().cachedBytes},\n  upstreams: [Array]\n}`,
    );
  });
});
