/**
 * The calls test/host/fuzz.test.ts makes (and test/fake-cuda/fuzz.test.ts, which adds the GPU's): one
 * Op per kind of call, each drawing its arguments from the Fuzzer (test/support/fuzzer.ts) and making
 * the call through `f.call()`, which checks it.
 */
import { setImmediate as tick } from 'node:timers/promises';
import {
  adopt,
  alloc,
  attach,
  collectMetrics,
  Controller,
  controller,
  copy,
  createController,
  createStream,
  defaultHandler,
  deviceAlloc,
  fallback,
  Handler,
  HostBuffer,
  info,
  limit,
  locked,
  managed,
  mapFile,
  pageable,
  pinned,
  pool,
  recordTrace,
  register,
  replayTrace,
  shared,
  sharedRegion,
  syntheticTrace,
  type BufferToken,
  type HandlerToken,
  type TraceRecorder,
} from 'pinpool';
import { Gauge, Registry } from 'prom-client';

import type { Fuzzer, Gen, Op } from './fuzzer.js';

const HANDLER_METHODS = ['alloc', 'stats', 'trim', 'share', 'nativeHandle'] as const;
const BUFFER_GETTERS = [
  'bytes',
  'byteLength',
  'alignment',
  'address',
  'handler',
  'servedBy',
  'kind',
  'released',
] as const;
const CONTROLLER_METHODS = [
  'register',
  'get',
  'names',
  'has',
  'setDefault',
  'defaultHandler',
  'current',
  'run',
  'bind',
  'measure',
  'alloc',
  'scope',
  'switch',
  'scopes',
  'resolve',
] as const;

function getter(proto: object, name: string): (this: unknown) => unknown {
  return Object.getOwnPropertyDescriptor(proto, name)!.get!;
}

/** `this` for a method: often a real object of the class, else anything. */
function receiver(f: Fuzzer, real: () => Gen): Gen {
  return f.chance(0.5) ? real() : f.hostile();
}

/**
 * A callback for run/measure/bind, valid or not. Whatever is callable never throws an error of
 * its own (a class, a revoked Proxy of a function would), so every error is pinpool's.
 */
function callbackArg(f: Fuzzer): Gen {
  if (f.chance(0.8)) return callback(f);
  for (;;) {
    const g = f.hostile();
    if (typeof g.v !== 'function') return g;
  }
}

function callback(f: Fuzzer): Gen {
  const n = f.int(4);
  if (n === 0) return { v: () => 42, t: '() => 42' };
  if (n === 1) {
    return {
      v: () => {
        // Allocates from the current handler: a PinpoolError from it is pinpool's own.
        const b = alloc(64);
        f.keep(b);
        return b.byteLength;
      },
      t: '() => alloc(64)',
    };
  }
  if (n === 2)
    return { v: async () => (await tick(), 1), t: 'async () => { await tick; return 1 }' };
  return {
    v: (...args: unknown[]) => args.length,
    t: '(...args) => args.length',
  };
}

function allocOptions(f: Fuzzer): Gen {
  return f.options({ alignment: () => f.alignment(), zero: () => f.bool() });
}

/** A built-in typed array constructor (or, through f.arg, something else). */
function typedArrayType(f: Fuzzer): Gen {
  const types = [
    Uint8Array,
    Int16Array,
    Float32Array,
    Float64Array,
    BigInt64Array,
    Uint8ClampedArray,
  ];
  const t = f.pick(types);
  return { v: t, t: t.name };
}

/** The calls every project makes, CUDA or not. */
export const hostOps: Op[] = [
  {
    name: 'handler.alloc',
    weight: 12,
    run: (f) => {
      const h = f.handler();
      const bytes = f.arg(() => f.size(), 0.7);
      const options = allocOptions(f);
      return f.call(`${h.t}.alloc(${bytes.t}, ${options.t})`, () =>
        (h.v as Handler).alloc(bytes.v as number, options.v as never),
      );
    },
  },
  {
    name: 'handler.allocArray',
    weight: 3,
    run: (f) => {
      const h = f.handler();
      const type = f.arg(() => typedArrayType(f), 0.8);
      const count = f.arg(() => f.size(), 0.7);
      const options = allocOptions(f);
      return f.call(`${h.t}.allocArray(${type.t}, ${count.t}, ${options.t})`, () =>
        (h.v as Handler).allocArray(type.v as never, count.v as number, options.v as never),
      );
    },
  },
  {
    name: 'Handler.prototype methods, any this',
    weight: 4,
    run: (f) => {
      const method = f.pick([...HANDLER_METHODS, 'handle'] as const);
      const self = receiver(f, () => f.handler());
      const a = f.arg(() => f.size());
      const b = allocOptions(f);
      if (method === 'handle')
        return f.call(`get handle.call(${self.t})`, () =>
          getter(Handler.prototype, 'handle').call(self.v),
        );
      const fn = Handler.prototype[method] as (...args: unknown[]) => unknown;
      return f.call(`Handler.prototype.${method}.call(${self.t}, ${a.t}, ${b.t})`, () =>
        fn.call(self.v, a.v, b.v),
      );
    },
  },
  {
    name: 'handler.stats/trim/share/nativeHandle',
    weight: 3,
    run: async (f) => {
      const h = f.handler();
      const method = f.pick(['stats', 'trim', 'share', 'nativeHandle'] as const);
      const token = await f.call(`${h.t}.${method}()`, () => (h.v as Handler)[method]());
      if (method === 'share' && token !== undefined && f.shareTokens.length < 16)
        f.shareTokens.push(token as HandlerToken);
    },
  },
  {
    name: 'HostBuffer getters, any this',
    weight: 6,
    run: (f) => {
      const name = f.pick(BUFFER_GETTERS);
      const self = receiver(f, () => f.buffer());
      return f.call(`get ${name}.call(${self.t})`, () =>
        getter(HostBuffer.prototype, name).call(self.v),
      );
    },
  },
  {
    name: 'HostBuffer methods, any this',
    weight: 8,
    run: async (f) => {
      const self = receiver(f, () => f.buffer());
      if (f.buffers.includes(self.v as HostBuffer)) f.focus = self.v as HostBuffer;
      const method = f.pick([
        'free',
        'free',
        'dispose',
        'transfer',
        'prefetch',
        'advise',
        'view',
      ] as const);
      if (method === 'view') {
        const type = f.arg(() => typedArrayType(f), 0.8);
        const offset = f.arg(() => f.small(), 0.7);
        const length = f.chance(0.5)
          ? { v: undefined, t: 'undefined' }
          : f.arg(() => f.small(), 0.7);
        return f.call(`view.call(${self.t}, ${type.t}, ${offset.t}, ${length.t})`, () =>
          HostBuffer.prototype.view.call(
            self.v as HostBuffer,
            type.v as never,
            offset.v as number,
            length.v as number,
          ),
        );
      }
      if (method === 'free')
        return f.call(`free.call(${self.t})`, () =>
          HostBuffer.prototype.free.call(self.v as HostBuffer),
        );
      if (method === 'dispose')
        return f.call(`[Symbol.dispose].call(${self.t})`, () =>
          HostBuffer.prototype[Symbol.dispose].call(self.v as HostBuffer),
        );
      if (method === 'transfer') {
        const token = await f.call(`transfer.call(${self.t})`, () =>
          HostBuffer.prototype.transfer.call(self.v as HostBuffer),
        );
        if (token !== undefined) f.tokens.push(token as BufferToken);
        return;
      }
      const where = f.arg(() => (f.chance(0.5) ? { v: 'host', t: '"host"' } : f.device()));
      if (method === 'prefetch') {
        const options = f.options({ stream: () => f.hostile() });
        return f.call(`prefetch.call(${self.t}, ${where.t}, ${options.t})`, () =>
          HostBuffer.prototype.prefetch.call(
            self.v as HostBuffer,
            where.v as number,
            options.v as never,
          ),
        );
      }
      const advice = f.arg(() => {
        const v = f.pick([
          'readMostly',
          'unsetReadMostly',
          'preferredLocation',
          'unsetPreferredLocation',
          'accessedBy',
          'unsetAccessedBy',
          'toString',
          '__proto__',
        ]);
        return { v, t: JSON.stringify(v) };
      });
      return f.call(`advise.call(${self.t}, ${advice.t}, ${where.t})`, () =>
        HostBuffer.prototype.advise.call(
          self.v as HostBuffer,
          advice.v as never,
          where.v as number,
        ),
      );
    },
  },
  {
    name: 'constructors and brand checks',
    weight: 2,
    run: (f) => {
      const a = f.hostile();
      const n = f.int(4);
      if (n === 0) return f.call(`new Handler(${a.t})`, () => new Handler(a.v as never));
      if (n === 1)
        return f.call(
          `new HostBuffer(${a.t})`,
          () => new (HostBuffer as unknown as new (x: unknown) => unknown)(a.v),
        );
      if (n === 2) return f.call(`HostBuffer.blockOf(${a.t})`, () => void HostBuffer.blockOf(a.v));
      return f.call('new Controller()', () => new Controller());
    },
  },
  {
    name: 'leaf factories',
    weight: 3,
    run: (f) => {
      const which = f.pick(['pinned', 'managed', 'locked', 'pageable'] as const);
      const options =
        which === 'pinned'
          ? f.options({
              device: () => f.device(),
              portable: () => f.bool(),
              mapped: () => f.bool(),
              writeCombined: () => f.bool(),
              strategy: () =>
                f.pick([
                  { v: 'alloc', t: '"alloc"' },
                  { v: 'register', t: '"register"' },
                ]),
              name: () => f.name(),
            })
          : f.options({ device: () => f.device(), name: () => f.name() });
      const factory = { pinned, managed, locked, pageable }[which] as (o: unknown) => Handler;
      return f.call(`${which}(${options.t})`, () => factory(options.v));
    },
  },
  {
    name: 'shared regions',
    weight: 2,
    run: (f) => {
      if (f.chance(0.3)) {
        const h = f.arg(() => f.handler(), 0.8);
        return f.call(`sharedRegion(${h.t})`, () => sharedRegion(h.v as Handler));
      }
      // The fuzzer's own region (opened again: the same handler), a new one, or a bad name; the
      // real secret or a forged one; sizes that fit, that do not, and not sizes at all.
      const o = f.options({
        region: () =>
          f.pick([
            { v: f.region, t: 'its region' },
            { v: f.newRegion(), t: 'a new region' },
            { v: '../x', t: '"../x"' },
          ]),
        bytes: () => f.pick([1, 4096, 1 << 16, 1 << 20, 2 ** 44].map((v) => ({ v, t: String(v) }))),
        secret: () =>
          f.pick([
            { v: f.regionSecret, t: 'its secret' },
            { v: '0'.repeat(32), t: 'a forged secret' },
          ]),
        pageLock: () => f.bool(),
        name: () => f.name(),
      });
      return f.call(`shared(${o.t})`, () => shared(o.v as never));
    },
  },
  {
    name: 'adaptor factories',
    weight: 3,
    run: (f) => {
      const which = f.pick(['pool', 'fallback', 'limit', 'defaultHandler'] as const);
      const a = f.arg(() => f.handler(), 0.8);
      const b = f.arg(() => f.handler(), 0.8);
      if (which === 'defaultHandler') return f.call('defaultHandler()', () => defaultHandler());
      if (which === 'pool') {
        const o = f.options({
          name: () => f.name(),
          maxCachedBytes: () => f.size(),
          cacheRatio: () =>
            f.pick([
              { v: 0, t: '0' },
              { v: 0.5, t: '0.5' },
              { v: Infinity, t: 'Infinity' },
            ]),
          slabViews: () => f.bool(),
        });
        return f.call(`pool(${a.t}, ${o.t})`, () => pool(a.v as Handler, o.v as never));
      }
      if (which === 'fallback') {
        const o = f.options({
          name: () => f.name(),
          minBytes: () => f.size(),
          maxBytes: () => f.size(),
        });
        return f.call(`fallback(${a.t}, ${b.t}, ${o.t})`, () =>
          fallback(a.v as Handler, b.v as Handler, o.v as never),
        );
      }
      const o = f.options({ name: () => f.name(), maxBytes: () => f.size() });
      return f.call(`limit(${a.t}, ${o.t})`, () => limit(a.v as Handler, o.v as never));
    },
  },
  {
    name: 'attach and adopt',
    weight: 4,
    run: (f) => {
      const t = f.arg(() => f.token(), 0.7);
      if (f.chance(0.5)) return f.call(`attach(${t.t})`, () => attach(t.v as never));
      return f.call(`adopt(${t.t})`, () => adopt(t.v as never));
    },
  },
  {
    name: 'controller methods',
    weight: 6,
    run: (f) => {
      const method = f.pick(CONTROLLER_METHODS);
      const real = f.pick(f.controllers);
      const self = f.chance(0.8)
        ? { v: real, t: real === controller ? 'controller' : 'c' }
        : f.hostile();
      const nameOrHandler = f.arg(() => (f.chance(0.5) ? f.name() : f.handler()));
      const fn = Controller.prototype[method] as (...args: unknown[]) => unknown;
      let args: Gen[];
      switch (method) {
        case 'register':
          args = [
            f.arg(() => f.name()),
            f.arg(() => f.handler()),
            f.options({ replace: () => f.bool() }),
          ];
          break;
        case 'get':
        case 'has':
        case 'setDefault':
        case 'resolve':
          args = [nameOrHandler];
          break;
        case 'scope':
        case 'switch':
          args = [f.arg(() => f.name()), f.arg(() => f.name())];
          break;
        case 'run':
          args = [nameOrHandler, callbackArg(f), f.hostile()];
          break;
        case 'bind':
        case 'measure':
          args = [callbackArg(f)];
          break;
        case 'alloc':
          args = [f.arg(() => f.size(), 0.7), allocOptions(f)];
          break;
        default:
          args = [];
      }
      return f.call(`${self.t}.${method}(${args.map((a) => a.t).join(', ')})`, () => {
        const result = fn.call(self.v, ...args.map((a) => a.v));
        // A bound callback runs later in the case: calling it is part of the contract.
        if (method === 'bind' && typeof result === 'function') return (result as () => unknown)();
        return result;
      });
    },
  },
  {
    name: 'createController and alloc()',
    weight: 2,
    run: (f) => {
      if (f.chance(0.3)) return f.call('createController()', () => createController());
      const bytes = f.arg(() => f.size(), 0.7);
      const options = allocOptions(f);
      return f.call(`alloc(${bytes.t}, ${options.t})`, () =>
        alloc(bytes.v as number, options.v as never),
      );
    },
  },
  {
    name: 'collectMetrics',
    weight: 2,
    run: async (f) => {
      if (f.registries.length > 0 && f.chance(0.4)) {
        const r = f.pick(f.registries);
        return f.call('registry.metrics()', () => r.metrics());
      }
      const o = f.options({
        registry: () => {
          // A fresh registry, one pinpool is on already, one with a metric of pinpool's name.
          const n = f.int(3);
          if (n === 0 && f.registries.length > 0)
            return { v: f.pick(f.registries), t: 'a registry pinpool is on' };
          const r = new Registry();
          if (n === 1) new Gauge({ name: 'pinpool_frees_total', help: 'taken', registers: [r] });
          return { v: r, t: n === 1 ? 'a Registry with pinpool_frees_total' : 'new Registry()' };
        },
        prefix: () =>
          f.pick([
            { v: 'pinpool_', t: '"pinpool_"' },
            { v: 'fuzz_', t: '"fuzz_"' },
            { v: '1x', t: '"1x"' },
          ]),
        labels: () => ({ v: { service: 'fuzz' }, t: '{service: "fuzz"}' }),
        controller: () => {
          const c = f.pick(f.controllers);
          return { v: c, t: 'a Controller' };
        },
      });
      const registry = await f.call(`collectMetrics(${o.t})`, () => collectMetrics(o.v as never));
      if (registry !== undefined && f.registries.length < 8)
        f.registries.push(registry as { metrics(): Promise<string> });
    },
  },
  {
    name: 'traces',
    weight: 3,
    run: async (f) => {
      const n = f.int(4);
      if (n === 0) {
        if (f.recorders.length > 2 || f.chance(0.3)) {
          const r = f.recorders.shift();
          if (r === undefined) return;
          const trace = await f.call('recorder.stop()', () => r.stop());
          if (Array.isArray(trace) && trace.length <= 200 && f.traces.length < 8)
            f.traces.push(trace);
          return;
        }
        const r = await f.call('recordTrace()', () => recordTrace());
        if (r !== undefined) f.recorders.push(r as TraceRecorder);
        return;
      }
      if (n === 1) {
        f.counting = true;
        const o = f.options({
          events: () => f.small(),
          seed: () => f.small(),
          minBytes: () => f.small(),
          maxBytes: () => f.size(),
          live: () => f.small(),
        });
        f.counting = false;
        const trace = await f.call(`syntheticTrace(${o.t})`, () => syntheticTrace(o.v as never));
        // Replays stay small: a default trace is 100000 events of up to 64 MiB.
        const small =
          Array.isArray(trace) &&
          trace.length <= 200 &&
          trace.every((e: { bytes?: number }) => (e.bytes ?? 0) <= 1 << 20);
        if (small && f.traces.length < 8) f.traces.push(trace as unknown[]);
        return;
      }
      const trace = f.arg(() => f.traceValue(), 0.8);
      const h = f.arg(() => f.handler(), 0.8);
      // A chain that fails part way through (other than for memory) frees every block first,
      // but its allocations and frees so far are counted: it must hold no more than before.
      return f.call(
        `replayTrace(${trace.t}, ${h.t})`,
        () => replayTrace(trace.v as never, h.v as Handler),
        { partial: true },
      );
    },
  },
  {
    name: 'mapFile',
    weight: 3,
    run: (f) => {
      const path = f.arg(() => f.path(), 0.8);
      const o = f.options({
        writable: () => f.bool(),
        register: () => f.bool(),
        device: () => f.device(),
        copy: () => f.bool(),
        handler: () => f.handler(),
      });
      return f.call(`mapFile(${path.t}, ${o.t})`, () => mapFile(path.v as string, o.v as never));
    },
  },
  {
    name: 'GPU calls',
    weight: 4,
    run: (f) => {
      const n = f.int(4);
      if (n === 0) {
        const bytes = f.arg(() => f.size());
        const o = f.options({ device: () => f.device() });
        return f.call(`deviceAlloc(${bytes.t}, ${o.t})`, () =>
          deviceAlloc(bytes.v as number, o.v as never),
        );
      }
      if (n === 1) {
        const o = f.options({ device: () => f.device() });
        return f.call(`createStream(${o.t})`, () => createStream(o.v as never));
      }
      if (n === 2) {
        const memory = f.arg(() => (f.chance(0.5) ? f.memory() : f.buffer()));
        const o = f.options({
          device: () => f.device(),
          portable: () => f.bool(),
          mapped: () => f.bool(),
        });
        return f.call(`register(${memory.t}, ${o.t})`, () =>
          register(memory.v as never, o.v as never),
        );
      }
      const dst = f.hostile();
      const src = f.hostile();
      const o = f.options({
        bytes: () => f.small(),
        srcOffset: () => f.small(),
        dstOffset: () => f.small(),
        stream: () => f.hostile(),
      });
      return f.call(`copy(${dst.t}, ${src.t}, ${o.t})`, () =>
        copy(dst.v as never, src.v as never, o.v as never),
      );
    },
  },
  {
    name: 'info',
    weight: 1,
    run: (f) => f.call('info()', () => info()),
  },
  {
    name: 'drop a buffer for the garbage collector',
    weight: 1,
    run: (f) => {
      f.pick(f.leaky).alloc(f.pick([64, 4096, 100_000]));
    },
  },
  {
    name: 'free a live buffer',
    weight: 3,
    run: (f) => {
      const live = f.liveBuffers();
      if (live.length === 0) return;
      const b = f.pick(live);
      return f.call(`${f.nameOf(b)}.free()`, () => b.free());
    },
  },
];
