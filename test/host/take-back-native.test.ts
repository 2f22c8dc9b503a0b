// What native free() does with the buffer it is given (native/binding/hot_path.cpp
// take_back_view): on Node 20 every free() of a block with its own ArrayBuffer goes there, so the
// outcomes are pinned here, through the binding itself, for each kind of value it can be passed.
import { describe, expect, it } from 'vitest';
import { pageable, pool } from 'pinpool';

import { binding, constants } from '../../dist/src/boundary/native.js';
import { expectCode } from '../support/expect-error.js';

const scratch = binding.scratch();
// The tsconfig has no WebAssembly types; its Memory's buffer is an ArrayBuffer Node-API cannot detach.
const { WebAssembly: wasmApi } = globalThis as unknown as {
  WebAssembly: { Memory: new (size: { initial: number }) => { buffer: ArrayBuffer } };
};
const { slots, views } = constants;

/** A 4 KiB block of `h` with its own ArrayBuffer, straight from the binding. */
function allocBlock(h: ReturnType<typeof pool>) {
  const buffer = binding.alloc(h.handle as never, 4096, 64, views.buffer);
  if (!(buffer instanceof ArrayBuffer)) throw new Error('alloc() returned no ArrayBuffer');
  return { buffer, slot: scratch[slots.liveSlot]!, address: scratch[slots.address]! };
}

describe('native free() takes the block back from the buffer it is given', () => {
  it('a live ArrayBuffer is detached, and the block is reused at once', () => {
    const h = pool(pageable());
    const a = allocBlock(h);
    binding.free(h.handle as never, a.buffer, a.slot, a.address, false);
    expect(a.buffer.byteLength).toBe(0);
    expect(h.stats().bytesInUse).toBe(0);
    const b = allocBlock(h);
    expect(b.address).toBe(a.address);
    binding.free(h.handle as never, b.buffer, b.slot, b.address, false);
  });

  it('an ArrayBuffer that cannot be detached is refused, and the block stays this thread’s', () => {
    const h = pool(pageable());
    const a = allocBlock(h);
    const wasm = new wasmApi.Memory({ initial: 1 }).buffer;
    expectCode(
      () => binding.free(h.handle as never, wasm, a.slot, a.address, false),
      'ERR_PINPOOL_INVALID_ARGUMENT',
    );
    expect(wasm.byteLength).toBe(65536);
    expect(a.buffer.byteLength).toBe(4096);
    expect(h.stats().bytesInUse).toBe(4096);
    binding.free(h.handle as never, a.buffer, a.slot, a.address, false);
    expect(h.stats().bytesInUse).toBe(0);
  });

  it('null (JavaScript could not take it back): freed, but not reused while its buffer lives', () => {
    const h = pool(pageable());
    const a = allocBlock(h);
    binding.free(h.handle as never, null, a.slot, a.address, false);
    expect(h.stats().bytesInUse).toBe(0);
    const b = allocBlock(h);
    expect(b.address).not.toBe(a.address);
    expect(a.buffer.byteLength).toBe(4096); // still reaches the block, which waits for it
    binding.free(h.handle as never, b.buffer, b.slot, b.address, false);
  });

  it('undefined after a collection: the block waits for its buffer’s finalizer', () => {
    const h = pool(pageable());
    const a = allocBlock(h);
    binding.free(h.handle as never, undefined, a.slot, a.address, true);
    expect(h.stats().bytesInUse).toBe(0);
    const b = allocBlock(h);
    expect(b.address).not.toBe(a.address);
    expect(a.buffer.byteLength).toBe(4096);
    binding.free(h.handle as never, b.buffer, b.slot, b.address, false);
  });

  it('a buffer detached already (its memory moved away): the block waits too', () => {
    const h = pool(pageable());
    const a = allocBlock(h);
    // The second free() of the same block is refused; a detached buffer of a live block is what
    // a user's transfer() leaves (Node 22+); here the binding's own detach makes one.
    const b = allocBlock(h);
    binding.free(h.handle as never, b.buffer, b.slot, b.address, false); // detaches b.buffer
    expect(b.buffer.byteLength).toBe(0);
    binding.free(h.handle as never, b.buffer, a.slot, a.address, false);
    expect(h.stats().bytesInUse).toBe(0);
    const c = allocBlock(h);
    expect(c.address).toBe(b.address); // b's block came back at once; a's waits
    expect(c.address).not.toBe(a.address);
    expect(a.buffer.byteLength).toBe(4096);
    binding.free(h.handle as never, c.buffer, c.slot, c.address, false);
  });
});
