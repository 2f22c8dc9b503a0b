// Deliberate misuse, one case at a time: each gives a PinpoolError with its code, none crashes
// the process, none changes the statistics.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import {
  adopt,
  attach,
  controller,
  createController,
  defaultHandler,
  DeviceBuffer,
  ErrorCode,
  fallback,
  Handler,
  HostBuffer,
  info,
  limit,
  locked,
  mapFile,
  pageable,
  PinpoolError,
  pinned,
  pool,
  register,
  replayTrace,
} from 'pinpool';

import { binding } from '../../dist/src/boundary/native.js';
import { expectCode } from '../support/expect-error.js';

const h = pool(locked());

function show(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return '[]';
  if (typeof value === 'object' && value !== null) return '{}';
  return String(value);
}

function memory() {
  const s = h.stats();
  return [s.bytesInUse, s.buffersInUse, s.reservedBytes, s.cachedBytes, s.allocations];
}

describe('bad sizes', () => {
  const bad: unknown[] = [
    -1,
    1.5,
    NaN,
    Infinity,
    -Infinity,
    2 ** 53,
    Number.MAX_SAFE_INTEGER + 2,
    '1024',
    null,
    undefined,
    10n,
    {},
    [],
    true,
  ];
  for (const bytes of bad) {
    it(`alloc(${show(bytes)}) is ERR_PINPOOL_INVALID_ARGUMENT`, () => {
      const before = memory();
      const err = expectCode(() => h.alloc(bytes as number), 'ERR_PINPOOL_INVALID_ARGUMENT');
      expect(err.message).toMatch(/bytes must be a non-negative safe integer/);
      expect(memory()).toEqual(before);
    });
  }

  it('1 PiB and Number.MAX_SAFE_INTEGER are out of memory, with no change in statistics', () => {
    const before = memory();
    expectCode(() => h.alloc(2 ** 50), 'ERR_PINPOOL_OUT_OF_MEMORY');
    expectCode(() => h.alloc(Number.MAX_SAFE_INTEGER), 'ERR_PINPOOL_OUT_OF_MEMORY');
    expect(memory()).toEqual(before);
  });
});

describe('bad alignments and options', () => {
  for (const alignment of [0, 3, 6, -8, 2 ** 31, 2 ** 40, 1.5, NaN, '64', null]) {
    it(`alignment ${show(alignment)} is ERR_PINPOOL_INVALID_ARGUMENT`, () => {
      expectCode(
        () => h.alloc(64, { alignment: alignment as number }),
        'ERR_PINPOOL_INVALID_ARGUMENT',
      );
    });
  }
  it('a revoked Proxy or a symbol as a value, options or a token is refused (found by the fuzzer)', () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    const before = memory();
    expectCode(() => h.alloc(proxy as never), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => h.alloc(64, proxy), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => pinned(proxy), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => attach(proxy as never), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => adopt(proxy as never), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expect(
      expectCode(() => h.alloc(Symbol('size') as never), 'ERR_PINPOOL_INVALID_ARGUMENT').message,
    ).toMatch(/got Symbol\(size\)$/);
    expect(memory()).toEqual(before);
  });
  it('a non-object options argument is refused', () => {
    expectCode(() => h.alloc(64, 64 as never), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => h.alloc(64, { zero: 1 as never }), 'ERR_PINPOOL_INVALID_ARGUMENT');
  });
  it('factories validate their options', () => {
    expectCode(() => pinned({ device: -1 }), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => pinned({ device: 1.5 }), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => pinned({ portable: 'yes' as never }), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => pool({} as never), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => pool(pageable(), { maxCachedBytes: -1 }), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => pool(pageable(), { name: '' }), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => fallback(pageable(), null as never), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(
      () => fallback(pageable(), pageable(), { minBytes: 10, maxBytes: 5 }),
      'ERR_PINPOOL_INVALID_ARGUMENT',
    );
    expectCode(() => limit(pageable(), {} as never), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => limit(pageable(), { maxBytes: NaN }), 'ERR_PINPOOL_INVALID_ARGUMENT');
  });
});

describe('buffer misuse', () => {
  it('double free is ERR_PINPOOL_DOUBLE_FREE and frees once', () => {
    const b = h.alloc(100);
    b.free();
    const before = memory();
    expectCode(() => b.free(), 'ERR_PINPOOL_DOUBLE_FREE');
    expect(memory()).toEqual(before);
  });

  it('use after free is ERR_PINPOOL_RELEASED, and old views are detached', () => {
    const b = h.alloc(100);
    const view = b.bytes;
    b.free();
    expect(view.length).toBe(0);
    expect(view.buffer.byteLength).toBe(0);
    view[0] = 1; // writes nowhere
    expect(view[0]).toBeUndefined();
    expectCode(() => b.bytes, 'ERR_PINPOOL_RELEASED');
    expectCode(() => b.address, 'ERR_PINPOOL_RELEASED');
    expectCode(() => b.transfer(), 'ERR_PINPOOL_RELEASED');
    expect(b.released).toBe(true);
    expect(b.byteLength).toBe(100);
  });

  it('using frees at scope end and tolerates an explicit free inside', () => {
    const before = h.stats().bytesInUse;
    {
      using b = h.alloc(100);
      b.bytes.fill(1);
      expect(h.stats().bytesInUse).toBe(before + 100);
    }
    {
      using b = h.alloc(100);
      b.free();
    }
    expect(h.stats().bytesInUse).toBe(before);
  });

  it('a method on a wrong receiver is ERR_PINPOOL_INVALID_ARGUMENT', () => {
    const fake = Object.create(HostBuffer.prototype) as HostBuffer;
    expectCode(() => fake.free(), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => fake.bytes, 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => HostBuffer.prototype.free.call({}), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(
      () => new (HostBuffer as unknown as new () => HostBuffer)(),
      'ERR_PINPOOL_INVALID_ARGUMENT',
    );
  });

  it('freeing a Buffer pinpool did not make is refused', () => {
    const foreign = Buffer.alloc(16);
    expectCode(() => HostBuffer.prototype.free.call(foreign), 'ERR_PINPOOL_INVALID_ARGUMENT');
  });

  it('a pool buffer posted with postMessage: its block stays out of the pool while the posted buffer lives', async () => {
    const b = h.alloc(4096);
    const address = b.address;
    b.bytes.fill(9);
    const { port1, port2 } = new MessageChannel();
    try {
      const got = new Promise<Uint8Array>((resolve) => port2.once('message', resolve));
      port1.postMessage(b.bytes, [b.bytes.buffer as ArrayBuffer]);
      const received = await got;
      expect(received[4095]).toBe(9);
      // Node 22+ moves the buffer (docs/decisions/0014-no-arraybuffer-outlives-its-block.md: pinpool hands out buffers Node lets move); Node 20
      // copies the bytes. Either way no block is handed out under the posted buffer.
      const moves =
        typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer === 'function';
      expect(b.bytes.length).toBe(moves ? 0 : 4096);
      b.free();
      const next = Array.from({ length: 4 }, () => h.alloc(4096));
      if (moves) expect(next.map((n) => n.address)).not.toContain(address);
      next.forEach((n) => n.bytes.fill(0));
      received.fill(1); // reaches only the block kept out of the pool
      expect(next.every((n) => n.bytes.every((x) => x !== 1))).toBe(true);
      next.forEach((n) => n.free());
    } finally {
      port1.close();
      port2.close();
    }
  });

  it('bad tokens are refused; a buffer token adopts once', () => {
    expectCode(() => attach({} as never), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(
      () => attach({ pinpool: 'handler', version: 1, id: -3 } as never),
      'ERR_PINPOOL_INVALID_ARGUMENT',
    );
    expectCode(() => attach({ ...h.share(), id: 987654321 }), 'ERR_PINPOOL_RELEASED');
    expectCode(
      () => adopt({ pinpool: 'handler', version: 1, id: 1 } as never),
      'ERR_PINPOOL_INVALID_ARGUMENT',
    );
    const token = h.alloc(64).transfer();
    const b = adopt(token);
    expectCode(() => adopt(token), 'ERR_PINPOOL_RELEASED');
    b.free();
  });
});

// Every member is found by enumeration, not listed by hand: a hand-kept list missed
// HostBuffer.prototype.gcRegister, whose wrong `this` was a TypeError.
describe('a wrong `this` for every member of every export', () => {
  const api = createRequire(__filename)('../../dist/src/index.js') as Record<string, unknown>;
  type Fn = (...args: unknown[]) => unknown;

  /** A class, as opposed to a plain function: `class` source, or a prototype with members. */
  function isClass(value: Fn): boolean {
    if (/^class\b/.test(Function.prototype.toString.call(value))) return true;
    const proto: unknown = value.prototype;
    return (
      typeof proto === 'object' &&
      proto !== null &&
      Reflect.ownKeys(proto).some((key) => key !== 'constructor')
    );
  }

  /** Every function an own property of `object` holds, string and symbol keys: methods, getters, setters. */
  function membersOf(object: object, skip: readonly PropertyKey[]): [name: string, fn: Fn][] {
    const found: [string, Fn][] = [];
    for (const key of Reflect.ownKeys(object)) {
      if (skip.includes(key)) continue;
      const d = Object.getOwnPropertyDescriptor(object, key)!;
      if (typeof d.get === 'function') found.push([`get ${String(key)}`, d.get]);
      if (typeof d.set === 'function') found.push([`set ${String(key)}`, d.set]);
      if (typeof d.value === 'function') found.push([String(key), d.value as Fn]);
    }
    return found;
  }

  /** Real objects of every class that can be made without CUDA, and what the API hands out. */
  function samples(handler: Handler): object[] {
    const buf = handler.alloc(64);
    const adopted = adopt(handler.alloc(64).transfer());
    const made: object[] = [
      handler,
      pageable(),
      defaultHandler(),
      buf,
      buf.handler,
      adopted,
      attach(handler.share()),
      createController(),
      controller,
      new PinpoolError(ErrorCode.INVALID_ARGUMENT, 'a sample'),
      info(),
    ];
    for (const value of Object.values(api))
      if (typeof value === 'object' && value !== null) made.push(value);
    return made;
  }

  /** A prototype the language or Node made (Object.prototype, Error.prototype ...). */
  function builtIn(proto: object): boolean {
    const ctor: unknown = Object.getOwnPropertyDescriptor(proto, 'constructor')?.value;
    return (
      typeof ctor === 'function' &&
      /\{\s*\[native code\]\s*\}$/.test(Function.prototype.toString.call(ctor))
    );
  }

  /** What a call did, as a string to compare: what it threw, or the kind of what it returned. */
  async function outcome(fn: Fn, self: unknown, args: unknown[], keep: unknown[]): Promise<string> {
    // Any value may come back: one without a prototype has no constructor.
    type Loose =
      { constructor?: { name?: unknown }; code?: unknown; message?: unknown } | null | undefined;
    const said = (value: unknown) =>
      typeof value === 'object' && value !== null
        ? `object ${String((value as Loose)?.constructor?.name)}`
        : typeof value;
    const error = (err: unknown) =>
      `${String((err as Loose)?.constructor?.name)} ${String((err as Loose)?.code)} ${String((err as Loose)?.message)}`;
    let result: unknown;
    try {
      result = Reflect.apply(fn, self, args);
    } catch (err) {
      return `throws ${error(err)}`;
    }
    keep.push(result);
    if (!(result instanceof Promise)) return `returns ${said(result)}`;
    try {
      const value: unknown = await result;
      keep.push(value);
      return `resolves ${said(value)}`;
    } catch (err) {
      return `rejects ${error(err)}`;
    }
  }

  /** Frees what the calls made: buffers, and a trace recorder's subscription. */
  function release(values: unknown[]): void {
    for (const value of values) {
      if (HostBuffer.blockOf(value) !== undefined) (value as HostBuffer).free();
      else if (typeof (value as { stop?: unknown } | null | undefined)?.stop === 'function')
        (value as { stop(): void }).stop();
    }
  }

  // Members whose answer does not depend on `this`: each must answer any `this` as it answers a
  // real instance. Anything not listed must refuse a wrong `this`.
  // util.inspect() must never throw (console.log of anything): `[inspect]` answers a wrong
  // `this` with `Name {}`, a string, as it answers a real instance with one.
  const inspectKey = 'Symbol(nodejs.util.inspect.custom)';
  const receiverFree = new Map<object, string[]>([
    [HostBuffer.prototype, ['get Symbol(Symbol.toStringTag)', inspectKey]],
    [Handler.prototype, [inspectKey]],
    [DeviceBuffer.prototype, [inspectKey]],
  ]);

  it('every method, getter and setter of every class reachable from the API is ERR_PINPOOL_INVALID_ARGUMENT (and runs no callback)', async () => {
    const handler = pool(pageable());
    const made = samples(handler);
    const before = handler.stats();
    // The prototypes: each exported class's, and any other the API's objects are made from.
    const prototypes = new Map<object, object | undefined>();
    for (const value of Object.values(api)) {
      if (typeof value === 'function' && isClass(value as Fn))
        prototypes.set((value as Fn).prototype as object, undefined);
    }
    for (const sample of made) {
      for (
        let proto = Object.getPrototypeOf(sample) as object | null;
        proto !== null && !builtIn(proto);
        proto = Object.getPrototypeOf(proto) as object | null
      ) {
        if (prototypes.get(proto) === undefined) prototypes.set(proto, sample);
      }
    }
    expect([...prototypes.keys()].map((p) => p.constructor.name).sort()).toEqual(
      expect.arrayContaining([
        'Controller',
        'DeviceBuffer',
        'Handler',
        'HostBuffer',
        'PinpoolError',
        'Registration',
        'Stream',
      ]),
    );

    const checked: string[] = [];
    const failures: string[] = [];
    for (const [proto, real] of prototypes) {
      const foreign = made.filter((m) => !Object.prototype.isPrototypeOf.call(proto, m));
      const receivers: unknown[] = [
        undefined,
        null,
        1,
        1n,
        'x',
        Symbol('this'),
        true,
        {},
        () => {},
        new Proxy({}, {}),
        Object.create(proto),
        ...foreign,
      ];
      if (real !== undefined) receivers.push(new Proxy(real, {}));
      for (const [name, fn] of membersOf(proto, ['constructor'])) {
        const label = `${proto.constructor.name}.prototype ${name}`;
        checked.push(label);
        const free = receiverFree.get(proto)?.includes(name) ?? false;
        const expected = free
          ? await outcome(
              fn,
              real ?? made.find((m) => Object.prototype.isPrototypeOf.call(proto, m)),
              ['a'],
              [],
            )
          : undefined;
        for (const self of receivers) {
          for (const make of [(spy: Fn) => ['a', spy], (spy: Fn) => [spy, spy], () => [64, {}]]) {
            let calls = 0;
            const args = make(() => ++calls);
            const kept: unknown[] = [];
            const got = await outcome(fn, self, args, kept);
            release(kept);
            const ok = free
              ? got === expected
              : /^(throws|rejects) PinpoolError ERR_PINPOOL_INVALID_ARGUMENT /.test(got);
            if (!ok || calls !== 0)
              failures.push(
                `${label} with this = ${show(self)}: ${got}${calls === 0 ? '' : ', and ran the callback'}`,
              );
          }
        }
      }
    }
    expect(failures).toEqual([]);
    expect(checked).toContain('HostBuffer.prototype gcRegister');
    expect(handler.stats()).toEqual(before);
    release(made);
  });

  it('statics and exported functions, which take no `this`, answer any `this` as they answer the right one', async () => {
    const handler = pool(pageable());
    const made = samples(handler);
    const functions: [label: string, fn: Fn, right: unknown][] = [];
    for (const [name, value] of Object.entries(api)) {
      if (typeof value !== 'function') continue;
      if (!isClass(value as Fn)) {
        functions.push([name, value as Fn, undefined]);
        continue;
      }
      // A class constructor called without `new` is the language's TypeError, whatever `this` is.
      for (const [member, fn] of membersOf(value, ['length', 'name', 'prototype']))
        functions.push([`${name}.${member}`, fn, value]);
    }
    expect(functions.map(([label]) => label)).toEqual(
      expect.arrayContaining(['HostBuffer.blockOf', 'Handler.is', 'mapFile', 'pinned']),
    );

    const receivers: unknown[] = [null, 1, 'x', {}, new Proxy({}, {}), api, ...made];
    const failures: string[] = [];
    for (const [label, fn, right] of functions) {
      for (const args of [['a', () => 0], []]) {
        const kept: unknown[] = [];
        const expected = await outcome(fn, right, args, kept);
        for (const self of receivers) {
          const got = await outcome(fn, self, args, kept);
          if (got !== expected)
            failures.push(
              `${label}(${args.map(show).join(', ')}) with this = ${show(self)}: ${got}, but ${expected} with the right one`,
            );
        }
        release(kept);
      }
    }
    expect(failures).toEqual([]);
    release(made);
  });
});

describe('memory that is gone', () => {
  it('register() of a DataView whose buffer was detached or shrunk is refused, not a TypeError (found by the fuzzer)', () => {
    const detached = new ArrayBuffer(64);
    const onDetached = new DataView(detached);
    structuredClone(detached, { transfer: [detached] });
    const resizable = new (
      ArrayBuffer as unknown as new (
        n: number,
        o: object,
      ) => ArrayBuffer & { resize(n: number): void }
    )(64, { maxByteLength: 64 });
    const outOfBounds = new DataView(resizable, 32, 16);
    resizable.resize(8);
    for (const memory of [onDetached, outOfBounds]) {
      const err = expectCode(() => register(memory), 'ERR_PINPOOL_INVALID_ARGUMENT');
      expect(err.message).toMatch(/at least one byte long/);
    }
  });
});

describe('the binding', () => {
  it('re-checks argument types: a value of another type is a PinpoolError, never a TypeError (found by the fuzzer)', () => {
    // setErrorClass and traceFallbacks take any value by design (a class, a truthy value); a test
    // build's hooks are called too (testing.groups is no function).
    const calls = (object: object, prefix: string) =>
      Object.entries(object)
        .filter(
          ([n, fn]) => typeof fn === 'function' && n !== 'setErrorClass' && n !== 'traceFallbacks',
        )
        .map(([n, fn]) => [prefix + n, fn as (...args: unknown[]) => unknown] as const);
    const functions = [...calls(binding, ''), ...calls(binding.testing ?? {}, 'testing.')];
    expect(functions.length).toBeGreaterThan(40);
    const values: unknown[] = ['x', {}, Symbol('s'), 1n, null, undefined, [], () => {}];
    const before = memory();
    for (const [name, fn] of functions) {
      for (const value of values) {
        for (const argc of [0, 1, 8]) {
          let result: unknown;
          try {
            result = fn(...Array.from({ length: argc }, () => value));
          } catch (err) {
            expect(
              (err as Error).name,
              `binding.${name}(${argc} x ${String(value)}): ${String(err)}`,
            ).toBe('PinpoolError');
          }
          if (result instanceof Promise) result.catch(() => {});
        }
      }
    }
    expect(memory()).toEqual(before);
  });
});

describe('handlers, names and limits', () => {
  it('a handler dropped with live buffers stays alive until they are freed', () => {
    let dropped: Handler | undefined = pool(pageable());
    const stats = dropped.stats.bind(dropped);
    const live = Array.from({ length: 3 }, () => dropped!.alloc(100));
    dropped = undefined;
    (globalThis as { gc?: () => void }).gc?.();
    live.forEach((b) => b.bytes.fill(1));
    live.forEach((b) => b.free());
    expect(stats().bytesInUse).toBe(0);
  });

  it('bad controller names are ERR_PINPOOL_INVALID_ARGUMENT and change nothing', () => {
    const c = createController();
    for (const name of [
      '',
      'A',
      '-x',
      'x'.repeat(64),
      'a b',
      '__proto__',
      'constructor ',
      1,
      null,
    ]) {
      expectCode(() => c.register(name as string, h), 'ERR_PINPOOL_INVALID_ARGUMENT');
    }
    expectCode(() => c.get('missing'), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => c.run('missing', () => 0), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expectCode(() => c.setDefault('missing'), 'ERR_PINPOOL_INVALID_ARGUMENT');
    expect(c.names()).toEqual([]);
  });

  it('where a handler is expected, only a real one passes: no Proxy trap runs (found by the fuzzer)', () => {
    const fakes: unknown[] = [
      Object.create(Handler.prototype),
      new Proxy(
        {},
        {
          getPrototypeOf: () => {
            throw new Error('trap');
          },
        },
      ),
      new Proxy(h, {}),
    ];
    const c = createController();
    const before = memory();
    for (const fake of fakes) {
      expectCode(() => pool(fake as Handler), 'ERR_PINPOOL_INVALID_ARGUMENT');
      expectCode(() => fallback(fake as Handler, h), 'ERR_PINPOOL_INVALID_ARGUMENT');
      expectCode(() => limit(fake as Handler, { maxBytes: 1 }), 'ERR_PINPOOL_INVALID_ARGUMENT');
      expectCode(() => c.register('fake', fake as Handler), 'ERR_PINPOOL_INVALID_ARGUMENT');
      expectCode(() => c.run(fake as Handler, () => 0), 'ERR_PINPOOL_INVALID_ARGUMENT');
      expectCode(() => c.setDefault(fake as Handler), 'ERR_PINPOOL_INVALID_ARGUMENT');
      expectCode(
        () => mapFile(__filename, { copy: true, handler: fake as Handler }),
        'ERR_PINPOOL_INVALID_ARGUMENT',
      );
      expectCode(() => replayTrace([], fake as Handler), 'ERR_PINPOOL_INVALID_ARGUMENT');
    }
    expect(c.names()).toEqual([]);
    expect(memory()).toEqual(before);
  });

  it('out of memory from a limit: ERR_PINPOOL_OUT_OF_MEMORY, reason limit, nothing held', () => {
    const capped = limit(pool(pageable()), { maxBytes: 1000 });
    const keep = capped.alloc(600);
    const err = expectCode(() => capped.alloc(600), 'ERR_PINPOOL_OUT_OF_MEMORY');
    expect(err.reason).toBe('limit');
    expect(capped.stats().bytesInUse).toBe(600);
    keep.free();
  });
});

describe('the CUDA driver failing (test double, in a child process)', () => {
  const root = join(__dirname, '..', '..');
  const fake = join(root, 'build', 'fake-cuda', 'libpinpool-fakecuda.so');
  const run = (env: Record<string, string>, body: string) =>
    JSON.parse(
      execFileSync(
        process.execPath,
        ['-e', `const p = require(${JSON.stringify(join(root, 'dist/src/index.js'))}); ${body}`],
        {
          env: { ...process.env, PINPOOL_CUDA_LIBRARY: fake, ...env },
          encoding: 'utf8',
        },
      ),
    ) as Record<string, unknown>;

  it('out of memory from the driver: ERR_PINPOOL_OUT_OF_MEMORY with the CUDA name; statistics unchanged', () => {
    const r = run(
      { PINPOOL_FAKE_CUDA_FAIL_AFTER: '0' },
      `
      const h = p.pool(p.pinned()); let e;
      try { h.alloc(4096); } catch (err) { e = err; }
      const s = h.stats();
      console.log(JSON.stringify({ code: e.code, name: e.cudaErrorName, bytes: s.bytesInUse, reserved: s.reservedBytes }));`,
    );
    expect(r).toEqual({
      code: 'ERR_PINPOOL_OUT_OF_MEMORY',
      name: 'CUDA_ERROR_OUT_OF_MEMORY',
      bytes: 0,
      reserved: 0,
    });
  });

  it('cuInit failing: ERR_PINPOOL_UNAVAILABLE with the reason; importing and the default chain still work', () => {
    const r = run(
      { PINPOOL_FAKE_CUDA_INIT_ERROR: '999' },
      `
      let e; try { p.pinned().alloc(64); } catch (err) { e = err; }
      const b = p.defaultHandler().alloc(64);
      console.log(JSON.stringify({ code: e.code, reason: p.info().cuda.reason, servedBy: b.servedBy }));`,
    );
    expect(r.code).toBe('ERR_PINPOOL_UNAVAILABLE');
    expect(r.reason).toMatch(/cuInit failed with CUDA_ERROR_UNKNOWN \(999\)/);
    expect(['locked', 'pageable']).toContain(r.servedBy);
  });
});

describe('CUDA absent', () => {
  it('pinned() and managed() allocations are ERR_PINPOOL_UNAVAILABLE with a reason', () => {
    const err = expectCode(() => pinned().alloc(4096), 'ERR_PINPOOL_UNAVAILABLE');
    expect(err.reason).toBe('no-cuda');
    expect(err.message).toMatch(/libcuda/);
  });
});
