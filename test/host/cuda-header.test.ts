// pinpool builds without the CUDA toolkit, so it writes out the driver constants it uses
// (native/cuda/cuda_types.h), and the test double (test/doubles/fake-cuda) names the errors it
// can return. Both are checked here against cuda.h itself, wherever the toolkit's headers are
// installed (CUDA_HOME, CUDA_PATH, else /usr/local/cuda): every constant pinpool names has
// cuda.h's value, and every error the double can return is one cuda.h has, under its name, so a
// code the driver lacks cannot be faked. Without the headers the check is skipped, and says so.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

const root = join(__dirname, '..', '..');

const header = [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda']
  .filter((dir): dir is string => dir !== undefined && dir !== '')
  .map((dir) => join(dir, 'include', 'cuda.h'))
  .find((path) => existsSync(path));

/** A constant's value as C writes it: 8, 0x08, -1, or ((CUdevice)-1). */
function valueOf(text: string): number | undefined {
  const m = /^\(*(?:\([A-Za-z_ ]+\))?(-?(?:0x[0-9a-fA-F]+|\d+))\)*$/.exec(text.trim());
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/** Every `NAME = value` enum entry and `#define NAME value` of a C header, by name. */
function constants(source: string): Map<string, number> {
  const out = new Map<string, number>();
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  for (const m of code.matchAll(/^\s*(CU[A-Z0-9_]+)\s*=\s*([^,}\n]+)/gm)) {
    const value = valueOf(m[2] ?? '');
    if (m[1] !== undefined && value !== undefined) out.set(m[1], value);
  }
  for (const m of code.matchAll(/^\s*#define\s+(CU[A-Z0-9_]+)\s+(.+)$/gm)) {
    const value = valueOf(m[2] ?? '');
    if (m[1] !== undefined && value !== undefined) out.set(m[1], value);
  }
  return out;
}

const ours = constants(readFileSync(join(root, 'native/cuda/cuda_types.h'), 'utf8'));
/** The double's error table: `{CODE, "NAME", "text"}` entries of fake_cuda.cpp. */
const doubleErrors = [
  ...readFileSync(join(root, 'test/doubles/fake-cuda/fake_cuda.cpp'), 'utf8').matchAll(
    /\{(CUDA_[A-Z_]+),\s*"([A-Z_]+)",/g,
  ),
].map((m) => ({ symbol: m[1] ?? '', name: m[2] ?? '' }));

describe('the driver constants', () => {
  it('are read from both sides (the parsers find what they should)', () => {
    expect(ours.get('CUDA_ERROR_OUT_OF_MEMORY')).toBe(2);
    expect(ours.get('CU_DEVICE_CPU')).toBe(-1);
    expect(ours.get('CU_MEMHOSTREGISTER_READ_ONLY')).toBe(8);
    expect(ours.size).toBeGreaterThan(40);
    expect(doubleErrors.length).toBeGreaterThan(20);
    expect(doubleErrors).toContainEqual({
      symbol: 'CUDA_ERROR_ILLEGAL_ADDRESS',
      name: 'CUDA_ERROR_ILLEGAL_ADDRESS',
    });
  });

  it('the double names each error as its symbol, and pinpool defines each symbol', () => {
    for (const { symbol, name } of doubleErrors) {
      expect(name).toBe(symbol);
      expect(ours.has(symbol), `${symbol} is not in native/cuda/cuda_types.h`).toBe(true);
    }
  });

  it.skipIf(header === undefined)(
    `match cuda.h (${header ?? 'skipped: no cuda.h under CUDA_HOME, CUDA_PATH or /usr/local/cuda'})`,
    () => {
      const theirs = constants(readFileSync(header ?? '', 'utf8'));
      expect(theirs.get('CUDA_ERROR_ILLEGAL_ADDRESS')).toBe(700); // the parser reads cuda.h
      const wrong = [...ours]
        .filter(([name, value]) => theirs.get(name) !== value)
        .map(([name, value]) => `${name} = ${value}, cuda.h: ${String(theirs.get(name))}`);
      expect(wrong).toEqual([]);
    },
  );
});
