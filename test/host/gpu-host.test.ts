// The GPU API on a host without CUDA: clear errors, and what needs no GPU still works.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { copy, createStream, deviceAlloc, mapFile, register, type PinpoolError } from 'pinpool';

describe('GPU API without CUDA', () => {
  it('deviceAlloc, createStream and register are ERR_PINPOOL_UNAVAILABLE with the reason', () => {
    for (const fn of [
      () => deviceAlloc(64),
      () => createStream(),
      () => register(Buffer.alloc(64)),
    ]) {
      let err: PinpoolError | undefined;
      try {
        fn();
      } catch (e) {
        err = e as PinpoolError;
      }
      expect(err?.code).toBe('ERR_PINPOOL_UNAVAILABLE');
      expect(err?.message).toMatch(/libcuda/);
    }
  });

  it('copy between two host buffers is refused', () => {
    expect(() => copy(new Uint8Array(4), new Uint8Array(4))).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_INVALID_ARGUMENT' }),
    );
  });

  it('mapFile without registration works, and an empty file maps to an empty buffer', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pinpool-'));
    writeFileSync(join(dir, 'a.bin'), 'hello');
    writeFileSync(join(dir, 'empty.bin'), '');
    const a = mapFile(join(dir, 'a.bin'));
    expect(Buffer.from(a.bytes).toString()).toBe('hello');
    a.free();
    const e = mapFile(join(dir, 'empty.bin'));
    expect(e.byteLength).toBe(0);
    e.free();
    expect(() => mapFile(join(dir, 'a.bin'), { register: true })).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_UNAVAILABLE' }),
    );
  });
});
