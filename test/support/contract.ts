/**
 * The contract every handler passes, leaf or adaptor (docs/decisions/0019-src-mirrors-native.md: tests mirror the source):
 * patterns written into every block and verified at free, an alignment sweep, sizes from 0 to
 * 64 MiB, live blocks that never overlap, statistics back to zero, and 1 PiB failing cleanly.
 */
import { describe, expect, it } from 'vitest';
import type { Handler, HostBuffer } from 'pinpool';

const KiB = 1024;
const MiB = 1024 * KiB;
const PiB = 2 ** 50;

/** Fills a block with a pattern derived from `seed`, fast enough for 64 MiB. */
export function fillPattern(bytes: Uint8Array, seed: number): void {
  const tile = new Uint8Array(Math.min(bytes.length, 4093)); // prime: tiles never align to pages
  for (let i = 0; i < tile.length; i++) tile[i] = (seed * 131 + i * 7) & 0xff;
  for (let at = 0; at < bytes.length; at += tile.length) {
    bytes.set(tile.subarray(0, Math.min(tile.length, bytes.length - at)), at);
  }
}

/** The first index where a block differs from its pattern, or -1. */
export function checkPattern(bytes: Uint8Array, seed: number): number {
  const expected = new Uint8Array(bytes.length);
  fillPattern(expected, seed);
  if (Buffer.compare(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), expected) === 0)
    return -1;
  return bytes.findIndex((b, i) => b !== expected[i]);
}

function memoryState(h: Handler) {
  const s = h.stats();
  return {
    bytes: s.bytesInUse,
    allocations: s.buffersInUse,
    reserved: s.reservedBytes,
    cached: s.cachedBytes,
  };
}

export interface ContractOptions {
  /** Largest size to try (default 64 MiB). */
  largest?: number;
  /** Largest alignment to sweep (default 2 MiB). */
  largestAlignment?: number;
}

export function handlerContract(
  label: string,
  make: () => Handler,
  options: ContractOptions = {},
): void {
  const largest = options.largest ?? 64 * MiB;
  const largestAlignment = options.largestAlignment ?? 2 * MiB;

  describe(`handler contract: ${label}`, () => {
    it('serves sizes 0, 1, 4 KiB, 1 MiB and 64 MiB with their pattern intact at free', () => {
      const h = make();
      const sizes = [0, 1, 4 * KiB, 1 * MiB, largest];
      const bufs = sizes.map((n) => h.alloc(n));
      bufs.forEach((b, i) => {
        expect(b.byteLength).toBe(sizes[i]);
        expect(b.bytes.length).toBe(sizes[i]);
        fillPattern(b.bytes, i + 1);
      });
      bufs.forEach((b, i) => {
        expect(checkPattern(b.bytes, i + 1)).toBe(-1);
        b.free();
      });
      expect(memoryState(h).bytes).toBe(0);
    });

    it('aligns every block as asked, 1 byte to 2 MiB', () => {
      const h = make();
      const bufs: HostBuffer[] = [];
      for (let alignment = 1; alignment <= largestAlignment; alignment *= 2) {
        for (const size of [1, 100, 4096, 70_000]) {
          const b = h.alloc(size, { alignment });
          expect(b.address % BigInt(alignment)).toBe(0n);
          expect(b.alignment).toBe(alignment);
          bufs.push(b);
        }
      }
      bufs.forEach((b, i) => fillPattern(b.bytes, i));
      bufs.forEach((b, i) => {
        expect(checkPattern(b.bytes, i)).toBe(-1);
        b.free();
      });
    });

    it('never hands out overlapping live blocks, and reuses freed ones cleanly', () => {
      const h = make();
      let seed = 12345;
      const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      const live = new Map<HostBuffer, number>();
      for (let step = 0; step < 600; step++) {
        if (live.size > 0 && random() < 0.4) {
          const [b, s] = live.entries().next().value!;
          expect(checkPattern(b.bytes, s)).toBe(-1);
          b.free();
          live.delete(b);
        } else {
          const size = Math.floor(2 ** (random() * 17)); // 1 B to 128 KiB
          const b = h.alloc(size);
          fillPattern(b.bytes, step);
          live.set(b, step);
        }
      }
      const spans = [...live.keys()]
        .map((b) => [b.address, b.address + BigInt(b.byteLength)] as const)
        .sort((a, b) => (a[0] < b[0] ? -1 : 1));
      for (let i = 1; i < spans.length; i++) expect(spans[i]![0] >= spans[i - 1]![1]).toBe(true);
      for (const [b, s] of live) {
        expect(checkPattern(b.bytes, s)).toBe(-1);
        b.free();
      }
      const st = h.stats();
      expect(st.bytesInUse).toBe(0);
      expect(st.buffersInUse).toBe(0);
      expect(st.allocations).toBe(st.frees);
    });

    it('fails 1 PiB with ERR_PINPOOL_OUT_OF_MEMORY and no change to memory statistics', () => {
      const h = make();
      const warm = h.alloc(4096);
      warm.free();
      const before = memoryState(h);
      expect(() => h.alloc(PiB)).toThrow(
        expect.objectContaining({ code: 'ERR_PINPOOL_OUT_OF_MEMORY' }),
      );
      expect(memoryState(h)).toEqual(before);
    });
  });
}
