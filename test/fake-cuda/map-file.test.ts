// mapFile() where CUDA is present (the test double): copy mode lands in pinned memory, and a
// registration that fails says which file.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mapFile, PinpoolError } from 'pinpool';
import { counters, resetCounters } from '../support/fake-cuda.js';

const dir = mkdtempSync(join(tmpdir(), 'pinpool-map-file-cuda-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = join(dir, 'weights.bin');
const content = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 13 + 5) & 0xff));
writeFileSync(file, content);

describe('mapFile with CUDA', () => {
  it('{ copy: true } reads into a pinned block of the default chain', () => {
    using buf = mapFile(file, { copy: true });
    expect(buf.kind).toBe('pinned');
    expect(Buffer.from(buf.bytes).equals(content)).toBe(true);
  });

  it('a registration that fails names the file, and leaves nothing registered', () => {
    resetCounters();
    let err: unknown;
    try {
      mapFile(file, { register: true, device: 7 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PinpoolError);
    expect((err as PinpoolError).code).toBe('ERR_PINPOOL_UNAVAILABLE');
    expect((err as PinpoolError).reason).toBe('no-device');
    expect((err as PinpoolError).message).toContain(`cannot map ${file}`);
    expect(counters().cuMemHostUnregister ?? 0).toBe(counters().cuMemHostRegister_v2 ?? 0);
  });
});
