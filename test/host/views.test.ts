// Typed views of a HostBuffer (buf.view()) and allocation by element count (allocArray()).
import { describe, expect, it } from 'vitest';
import { pageable, pool } from 'pinpool';

import { expectCode } from '../support/expect-error.js';

const types = [
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
];

describe.each([false, true])('typed views (slabViews %s)', (slabViews) => {
  it('a view of every typed array type sees the block, zero copy, and dies with free()', () => {
    const h = pool(pageable(), { slabViews });
    for (const T of types) {
      const buf = h.alloc(64);
      const v = buf.view(T);
      expect(v).toBeInstanceOf(T);
      expect(v.length).toBe(64 / T.BYTES_PER_ELEMENT);
      expect(v.buffer).toBe(buf.bytes.buffer);
      expect(v.byteOffset).toBe(buf.bytes.byteOffset);
      buf.bytes.fill(1);
      expect(v[0]).not.toBe(0);
      const part = buf.view(T, 16, 2);
      expect([part.byteOffset - buf.bytes.byteOffset, part.length]).toEqual([16, 2]);
      buf.free();
      if (!slabViews) expect(v.length).toBe(0);
      expectCode(() => buf.view(T), 'ERR_PINPOOL_RELEASED');
    }
  });

  it('refuses what is not a typed array type, a misaligned offset, a length past the block', () => {
    const h = pool(pageable(), { slabViews });
    const buf = h.alloc(30);
    for (const bad of [
      undefined,
      null,
      4,
      ArrayBuffer,
      DataView,
      Array,
      Buffer,
      class extends Float32Array {},
      () => Float32Array,
    ])
      expectCode(() => buf.view(bad as never), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => buf.view(Float32Array), 'ERR_PINPOOL_INVALID_ARGUMENT'); // 30 is no multiple of 4
    expect(buf.view(Float32Array, 0, 7).length).toBe(7);
    expectCode(() => buf.view(Float32Array, 2, 1), 'ERR_PINPOOL_INVALID_ARGUMENT'); // misaligned
    expectCode(() => buf.view(Float32Array, 0, 8), 'ERR_PINPOOL_INVALID_ARGUMENT'); // past the end
    expectCode(() => buf.view(Uint8Array, -1), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => buf.view(Uint8Array, 31), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => buf.view(Uint8Array, 0.5), 'ERR_PINPOOL_INVALID_ARGUMENT');
    buf.free();
  });

  it('allocArray() allocates by element count, aligned to the element at least', () => {
    const h = pool(pageable(), { slabViews });
    const buf = h.allocArray(Float64Array, 1000);
    expect([buf.byteLength, buf.alignment]).toEqual([8000, 64]);
    expect(buf.view(Float64Array).length).toBe(1000);
    expect(
      h
        .allocArray(Float32Array, 10, { alignment: 4096, zero: true })
        .view(Float32Array)
        .every((x) => x === 0),
    ).toBe(true);
    expectCode(() => h.allocArray(Float32Array, -1), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => h.allocArray(Float32Array, 2 ** 52), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => h.allocArray(Object as never, 1), 'ERR_PINPOOL_INVALID_ARGUMENT');
    const before = h.stats();
    expect(before.buffersInUse).toBe(2);
  });
});
