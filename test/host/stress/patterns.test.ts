// The stress test's pattern checker has teeth: it finds a changed byte anywhere in a small block,
// a changed edge or stride word in a large one, and two large blocks that overlap. Cheap, so it
// runs in every `npm test`, unlike the stress test itself.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

const require = createRequire(__filename);
const { check, fill, FULL_CHECK_BYTES, STRIDE } = require('../../support/stress/patterns.cjs') as {
  check(bytes: Uint8Array, id: number, address: number): string | null;
  fill(bytes: Uint8Array, id: number, address: number): void;
  FULL_CHECK_BYTES: number;
  STRIDE: number;
};

const KiB = 1024;
const MiB = 1024 * KiB;

describe('stress patterns', () => {
  it('checks blocks up to 64 KiB in full: any changed byte is found', () => {
    expect(FULL_CHECK_BYTES).toBeGreaterThanOrEqual(64 * KiB);
    for (const size of [1, 7, 8, 9, 63, 64, 1000, 4096, 64 * KiB]) {
      const bytes = new Uint8Array(size);
      fill(bytes, 42, 0x1000);
      expect(check(bytes, 42, 0x1000)).toBeNull();
      for (const at of new Set([0, Math.floor(size / 2), size - 1])) {
        bytes[at]! ^= 1;
        expect(check(bytes, 42, 0x1000), `size ${size}, byte ${at}`).toMatch(`byte ${at} `);
        bytes[at]! ^= 1;
      }
      if (size >= 8) expect(check(bytes, 43, 0x1000), `size ${size}, another id`).not.toBeNull();
    }
  });

  it('checks the edges and a word per stride of larger blocks', () => {
    for (const size of [FULL_CHECK_BYTES + 1, 4 * MiB + 100, 9 * MiB]) {
      const bytes = new Uint8Array(size);
      const address = 0x7f00_0000_0040; // not page-aligned: stride positions follow the address
      fill(bytes, 7, address);
      expect(check(bytes, 7, address)).toBeNull();
      for (const at of [0, 4095, size - 1]) {
        bytes[at]! ^= 0x80;
        expect(check(bytes, 7, address), `size ${size}, edge byte ${at}`).not.toBeNull();
        bytes[at]! ^= 0x80;
      }
      const stride = size > 4 * MiB ? 64 * KiB : STRIDE;
      const word = Math.ceil((address + size / 2) / stride) * stride - address;
      bytes[word]! ^= 1;
      expect(check(bytes, 7, address), `size ${size}, stride word at ${word}`).toMatch(
        'stride word',
      );
    }
  });

  it('finds a large block written over by another that overlaps it by a stride', () => {
    const memory = new Uint8Array(16 * MiB);
    const base = 0x7f00_0000_0000;
    const first = memory.subarray(0, 6 * MiB);
    // The second block starts inside the first, clear of its edges and of its stride words,
    // so only the second block's own stride words can give the overlap away.
    const offset = 2 * MiB + 100;
    const second = memory.subarray(offset, offset + 6 * MiB);
    fill(first, 1, base);
    expect(check(first, 1, base)).toBeNull();
    fill(second, 2, base + offset);
    expect(check(first, 1, base)).toMatch('stride word');
    expect(check(second, 2, base + offset)).toBeNull(); // written last, intact
  });
});
