// Errors that say what to do, and objects that show what they are, on the CUDA test double
// (project fake-cuda): every options-taking export refuses a key it does not know, and the
// CUDA error names and words come from the driver.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { inspect } from 'node:util';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import {
  alloc,
  copy,
  createController,
  createStream,
  deviceAlloc,
  ErrorCode,
  fallback,
  locked,
  managed,
  mapFile,
  pageable,
  pinned,
  pool,
  shared,
  register,
  limit,
  collectMetrics,
  syntheticTrace,
  type MetricsOptions,
} from 'pinpool';

import { declaredOptions } from '../../dist/src/boundary/validate.js';
import { expectCode } from '../support/expect-error.js';
import { counters, fakeCudaLibrary, resetCounters } from '../support/fake-cuda.js';
import { testing } from '../support/testing.js';

const root = join(__dirname, '..', '..');

/**
 * Every public function and method of src/api.ts's exports that takes an options object (a
 * parameter named `options`), as `name` or `Class.method`: read from the sources with the type
 * checker, so that a new one is found without anyone listing it.
 */
function optionsTakingExports(): string[] {
  const config = ts.readConfigFile(join(root, 'tsconfig.build.json'), (p) => ts.sys.readFile(p));
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
  const api = join(root, 'src', 'api.ts');
  const program = ts.createProgram([api], { ...parsed.options, noEmit: true });
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(api);
  const module = file === undefined ? undefined : checker.getSymbolAtLocation(file);
  if (module === undefined) throw new Error('src/api.ts: no module symbol');
  const internal = (symbol: ts.Symbol) =>
    symbol.getJsDocTags(checker).some((tag) => tag.name === 'internal');
  const takesOptions = (signatures: readonly ts.Signature[]) =>
    signatures.some((s) => s.getParameters().some((p) => p.name === 'options'));
  const found = new Set<string>();
  for (const exported of checker.getExportsOfModule(module)) {
    const symbol =
      exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    const declaration = symbol.valueDeclaration;
    if (declaration === undefined) continue; // a type
    const type = checker.getTypeOfSymbolAtLocation(symbol, declaration);
    if (symbol.flags & ts.SymbolFlags.Function && takesOptions(type.getCallSignatures()))
      found.add(exported.name);
    if (symbol.flags & ts.SymbolFlags.Class) {
      const instance = checker.getDeclaredTypeOfSymbol(symbol);
      for (const [members, prefix] of [
        [checker.getPropertiesOfType(instance), `${exported.name}.`],
        [checker.getPropertiesOfType(type), `${exported.name}.`],
      ] as const) {
        for (const member of members) {
          if (internal(member) || member.valueDeclaration === undefined) continue;
          const memberType = checker.getTypeOfSymbolAtLocation(member, member.valueDeclaration);
          if (takesOptions(memberType.getCallSignatures())) found.add(prefix + member.name);
        }
      }
    }
  }
  return [...found].sort();
}

const h = pool(pageable(), { name: 'messages-pool' });
const file = join(root, 'package.json');

/**
 * One call per options-taking export, passing `options` where the export takes its options, and
 * valid arguments everywhere else; `fn` is the name its declared option set goes by.
 */
const calls: Record<string, { fn: string; call: (options: object) => unknown }> = {
  pinned: { fn: 'pinned', call: (o) => pinned(o) },
  managed: { fn: 'managed', call: (o) => managed(o) },
  locked: { fn: 'locked', call: (o) => locked(o) },
  pageable: { fn: 'pageable', call: (o) => pageable(o) },
  pool: { fn: 'pool', call: (o) => pool(h, o) },
  fallback: { fn: 'fallback', call: (o) => fallback(h, pageable(), o) },
  limit: { fn: 'limit', call: (o) => limit(h, { maxBytes: 4096, ...o }) },
  mapFile: { fn: 'mapFile', call: (o) => mapFile(file, o) },
  // Refused before any region is made: an unknown key is checked first.
  shared: { fn: 'shared', call: (o) => shared({ region: 'never-made', bytes: 1 << 20, ...o }) },
  'Handler.alloc': { fn: 'alloc', call: (o) => h.alloc(64, o) },
  'Handler.allocArray': { fn: 'alloc', call: (o) => h.allocArray(Float32Array, 16, o) },
  'Handler.trim': { fn: 'trim', call: (o) => h.trim(o) },
  alloc: { fn: 'alloc', call: (o) => alloc(64, o) },
  'Controller.alloc': { fn: 'alloc', call: (o) => createController().alloc(64, o) },
  'Controller.register': {
    fn: 'controller.register',
    call: (o) => createController().register('messages', h, o),
  },
  copy: { fn: 'copy', call: (o) => copy(device, host, o) },
  createStream: { fn: 'createStream', call: (o) => createStream(o) },
  deviceAlloc: { fn: 'deviceAlloc', call: (o) => deviceAlloc(64, o) },
  register: {
    fn: 'register',
    call: (o) => register(new Uint8Array(new SharedArrayBuffer(4096)), o),
  },
  'HostBuffer.prefetch': { fn: 'buf.prefetch', call: (o) => managedBuffer.prefetch(0, o) },
  collectMetrics: { fn: 'collectMetrics', call: (o) => collectMetrics(o as MetricsOptions) },
  syntheticTrace: { fn: 'syntheticTrace', call: (o) => syntheticTrace(o) },
};

const device = deviceAlloc(4096);
const host = h.alloc(4096);
const managedBuffer = managed().alloc(4096);

describe('unknown option keys', () => {
  it('every options-taking export of src/api.ts has a case here, and every case an export', () => {
    expect(Object.keys(calls).sort()).toEqual(optionsTakingExports());
  });

  it('every declared option set has a case, and every case a declared option set', () => {
    const declared = [...declaredOptions().keys()].sort();
    const covered = new Set(Object.values(calls).map((c) => c.fn));
    expect(declared.filter((fn) => !covered.has(fn))).toEqual([]);
    expect([...covered].filter((fn) => !declared.includes(fn))).toEqual([]);
  });

  const declaredCases = Object.entries(calls);
  it.each(declaredCases)(
    '%s refuses a key it does not know, naming it, and calls nothing',
    (_name, { fn, call }) => {
      const before = h.stats();
      const calls = counters();
      const err = expectCode(() => call({ bogusKey: 1 }), ErrorCode.INVALID_ARGUMENT);
      expect(err.message).toContain(`${fn}() has no option 'bogusKey'`);
      // Nothing close: the message lists what the function takes.
      expect(err.message).toContain(
        `its options are ${declaredOptions().get(fn)?.join(', ') ?? ''}`,
      );
      expect(counters()).toEqual(calls);
      expect(h.stats()).toEqual(before);
    },
  );

  it.each(declaredCases)('%s suggests the key a near miss meant', (_name, { fn, call }) => {
    const keys = declaredOptions().get(fn) ?? [];
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      // Its third letter dropped: one edit away.
      const typo = key.length > 3 ? key.slice(0, 2) + key.slice(3) : `${key}x`;
      const err = expectCode(() => call({ [typo]: 1 }), ErrorCode.INVALID_ARGUMENT);
      expect(err.message).toBe(`pinpool: ${fn}() has no option '${typo}'; did you mean '${key}'?`);
    }
  });
});

describe('CUDA errors from the driver', () => {
  it("a failed call's name and words are the driver's (cuGetErrorName, cuGetErrorString)", () => {
    const memory = new Uint8Array(new SharedArrayBuffer(4096));
    using reg = register(memory);
    resetCounters();
    const err = expectCode(() => register(memory), ErrorCode.CUDA);
    expect(err.cudaError).toBe(712);
    expect(err.cudaErrorName).toBe('CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED');
    expect(err.message).toMatch(
      /CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED \(712\): part or all of the requested memory range is already mapped$/,
    );
    expect(counters().cuGetErrorName).toBeGreaterThan(0);
    expect(counters().cuGetErrorString).toBeGreaterThan(0);
    expect(reg.registered).toBe(true);
  });

  it('a cuInit failure is named by the driver, with what to do about it', () => {
    // 34: libcuda.so.1 is the toolkit's stub (a container built on a CUDA image, run without
    // the driver mounted).
    expect(testing().cudaError(34).name).toBe('CUDA_ERROR_STUB_LIBRARY');
    const script = `
      const { info } = require(${JSON.stringify(join(root, 'dist/src/index.js'))});
      console.log(JSON.stringify(info().cuda.reason));`;
    const reason = JSON.parse(
      execFileSync(process.execPath, ['-e', script], {
        env: {
          ...process.env,
          PINPOOL_CUDA_LIBRARY: fakeCudaLibrary,
          PINPOOL_FAKE_CUDA_INIT_ERROR: '34',
        },
        encoding: 'utf8',
      }),
    ) as string;
    expect(reason).toMatch(
      /^cuInit failed with CUDA_ERROR_STUB_LIBRARY \(34\): libcuda\.so\.1 is the toolkit's stub library/,
    );
  });
});

describe('util.inspect', () => {
  it('shows a DeviceBuffer and a Stream with their device, and allocates nothing', () => {
    resetCounters();
    const d = deviceAlloc(1024);
    const stream = createStream();
    const before = counters();
    // On one line whatever the address: util.inspect breaks lines past 80 characters, and a
    // block malloc placed in an mmap'd arena (0x7f...) is longer than one on the heap of a
    // non-PIE node; which one the double gets varies from run to run.
    const shown = inspect(d, { breakLength: Infinity });
    expect(shown).toMatch(
      /^DeviceBuffer \{ byteLength: 1024, device: 0, released: false, address: '0x[0-9a-f]+' \}$/,
    );
    expect(inspect(stream)).toBe('Stream { device: 0 }');
    expect(counters()).toEqual(before);
    d.free();
    expect(inspect(d)).toBe('DeviceBuffer { byteLength: 1024, device: 0, released: true }');
  });

  it('shows a pinned buffer as pinned, and makes no driver call', () => {
    const b = pool(pinned()).alloc(4096);
    const calls = counters();
    expect(inspect(b)).toMatch(
      /^HostBuffer \{\n {2}byteLength: 4096,\n {2}kind: 'pinned',\n {2}servedBy: 'pinned',\n {2}handler: 'pinned-pool',\n {2}alignment: 64,\n {2}released: false,\n {2}address: '0x[0-9a-f]+'\n\}$/,
    );
    expect(counters()).toEqual(calls);
    b.free();
  });
});
