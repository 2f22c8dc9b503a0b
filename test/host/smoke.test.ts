import { describe, expect, it } from 'vitest';
import { defaultHandler, pinned } from 'pinpool';

describe('smoke', () => {
  it('allocates from the default chain on a host without CUDA', () => {
    const buf = defaultHandler().alloc(1 << 20);
    expect(['locked', 'pageable']).toContain(buf.servedBy);
    buf.bytes.fill(7);
    expect(buf.bytes[12345]).toBe(7);
    buf.free();
    expect(() => pinned().alloc(4096)).toThrow(
      expect.objectContaining({ code: 'ERR_PINPOOL_UNAVAILABLE' }),
    );
    expect(typeof __dirname).toBe('string');
  });
});
