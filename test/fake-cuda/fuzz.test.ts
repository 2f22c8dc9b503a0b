// The fuzzer with the CUDA test double as the driver (docs/decisions/0010-one-typed-boundary.md): every host call of
// test/host/fuzz.test.ts, plus copies, device memory, streams, registrations, prefetch, advice and
// registered file mappings with hostile arguments, copies left in flight while their memory is
// freed, and driver allocations failing at random. A failure names the seed; rerun it with
// PINPOOL_FUZZ_SEED=<seed> npx vitest run test/fake-cuda/fuzz.test.ts.
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  copy,
  createStream,
  deviceAlloc,
  DeviceBuffer,
  HostBuffer,
  managed,
  mapFile,
  pinned,
  pool,
  register,
  Registration,
  sharedRegion,
  Stream,
} from 'pinpool';

import { binding } from '../../dist/src/boundary/native.js';
import { counters, setKnob } from '../support/fake-cuda.js';
import { hostOps } from '../support/fuzz-calls.js';
import { Fuzzer, fuzzCases, fuzzSeed, isA, summary, type Gen, type Op } from '../support/fuzzer.js';

const CASES = fuzzCases(5000);

beforeAll(() => setKnob('copy_delay_ms', 1));
afterAll(() => {
  setKnob('copy_delay_ms', 0);
  setKnob('fail_after', -1);
});

/** What the GPU calls make, kept to be used (and misused) later and released at the end. */
class GpuState {
  readonly devices: DeviceBuffer[] = [];
  readonly streams: Stream[] = [];
  readonly registrations: Registration[] = [];
  readonly managed = pool(managed());
  readonly pinned = pool(pinned());

  device(f: Fuzzer): Gen {
    if (this.devices.length === 0) return f.hostile();
    const d = f.pick(this.devices);
    return { v: d, t: `d${this.devices.indexOf(d)}${d.released ? '(freed)' : ''}` };
  }

  stream(f: Fuzzer): Gen {
    if (this.streams.length === 0 || f.chance(0.2))
      return { v: binding.createStream(0), t: 'a native stream handle' };
    const s = f.pick(this.streams);
    return { v: s, t: `s${this.streams.indexOf(s)}` };
  }

  registration(f: Fuzzer): Gen {
    if (this.registrations.length === 0) return f.hostile();
    const r = f.pick(this.registrations);
    return { v: r, t: `r${this.registrations.indexOf(r)}${r.registered ? '' : '(unregistered)'}` };
  }

  /** One side of a copy: device memory, a HostBuffer, a view of one, plain memory, or anything. */
  side(f: Fuzzer): Gen {
    const n = f.int(8);
    if (n < 3) return this.device(f);
    if (n < 5) return f.buffer();
    if (n === 5) {
      const live = f.liveBuffers();
      if (live.length === 0) return f.memory();
      const b = f.pick(live);
      return f.viewOf(b);
    }
    if (n === 6) return f.memory();
    return f.hostile();
  }

  keep(value: unknown): boolean {
    if (DeviceBuffer.is(value)) {
      if (!this.devices.includes(value)) this.devices.push(value);
      return true;
    }
    if (isA(value, Stream)) {
      if (this.streams.length < 8) this.streams.push(value as Stream);
      return true;
    }
    if (isA(value, Registration)) {
      this.registrations.push(value as Registration);
      return true;
    }
    return false;
  }

  /** Gives everything back: registrations ended, device memory freed. */
  release(): void {
    for (const r of this.registrations) if (r.registered) r.unregister();
    for (const d of this.devices) if (!d.released) d.free();
  }
}

const gpu = new GpuState();

function offsets(f: Fuzzer): Gen {
  // Offsets that overlap (same buffer on both sides), run past the end, or are not sizes at all.
  return f.options({
    bytes: () => f.pick([0, 1, 16, 64, 100, 4096].map((v) => ({ v, t: String(v) }))),
    srcOffset: () => f.pick([0, 1, 8, 32, 4095].map((v) => ({ v, t: String(v) }))),
    dstOffset: () => f.pick([0, 1, 8, 32, 4096].map((v) => ({ v, t: String(v) }))),
    stream: () => gpu.stream(f),
  });
}

const gpuOps: Op[] = [
  {
    name: 'deviceAlloc',
    weight: 3,
    run: (f) => {
      const live = gpu.devices.filter((d) => !d.released);
      if (live.length > 16) live[0]!.free();
      const bytes = f.arg(
        () => f.pick([0, 1, 64, 4096, 65536].map((v) => ({ v, t: String(v) }))),
        0.8,
      );
      const o = f.options({ device: () => f.device() });
      return f.call(`deviceAlloc(${bytes.t}, ${o.t})`, () =>
        deviceAlloc(bytes.v as number, o.v as never),
      );
    },
  },
  {
    name: 'createStream',
    weight: 1,
    run: (f) => {
      const o = f.options({ device: () => f.device() });
      return f.call(`createStream(${o.t})`, () => createStream(o.v as never));
    },
  },
  {
    name: 'copy, well formed',
    weight: 10,
    run: (f) => {
      // Device memory and live host memory, offsets inside both (or overlapping, device to
      // device within one buffer), sometimes on a stream: copies that run, and stay in flight
      // while the fuzzer frees what they use.
      const devices = gpu.devices.filter((d) => !d.released);
      const hosts = f.liveBuffers().filter((b) => b.byteLength > 0);
      if (devices.length === 0) return;
      const d = f.pick(devices);
      const dName = `d${gpu.devices.indexOf(d)}`;
      let host: Gen;
      let hostLength: number;
      const n = f.int(4);
      if (n === 0 || hosts.length === 0) {
        const mem = new Uint8Array(f.pick([64, 4096, 65536]));
        host = { v: mem, t: `Uint8Array(${mem.length})` };
        hostLength = mem.length;
      } else {
        const b = f.pick(hosts);
        f.focus = b;
        host = n === 1 ? { v: b, t: f.nameOf(b) } : f.viewOf(b);
        hostLength = b.byteLength;
      }
      const toDevice = f.chance(0.5);
      const deviceToDevice = f.chance(0.2);
      const other = deviceToDevice ? (f.chance(0.5) ? d : f.pick(devices)) : undefined;
      const srcLength = deviceToDevice ? other!.byteLength : toDevice ? hostLength : d.byteLength;
      const dstLength = deviceToDevice ? d.byteLength : toDevice ? d.byteLength : hostLength;
      const bytes = f.int(Math.min(srcLength, dstLength) + 1);
      const srcOffset = f.int(srcLength - bytes + 1);
      const dstOffset = f.int(dstLength - bytes + 1);
      const options: Record<string, unknown> = { bytes, srcOffset, dstOffset };
      let t = `{bytes: ${bytes}, srcOffset: ${srcOffset}, dstOffset: ${dstOffset}`;
      if (gpu.streams.length > 0 && f.chance(0.3)) {
        const s = f.pick(gpu.streams);
        options.stream = s;
        t += `, stream: s${gpu.streams.indexOf(s)}`;
      }
      t += '}';
      if (deviceToDevice)
        return f.call(`copy(${dName}, d${gpu.devices.indexOf(other!)}, ${t})`, () =>
          copy(d, other!, options),
        );
      if (toDevice)
        return f.call(`copy(${dName}, ${host.t}, ${t})`, () => copy(d, host.v as never, options));
      return f.call(`copy(${host.t}, ${dName}, ${t})`, () => copy(host.v as never, d, options));
    },
  },
  {
    name: 'copy',
    weight: 8,
    run: (f) => {
      const dst = gpu.side(f);
      const src = f.chance(0.15) ? dst : gpu.side(f); // the same buffer on both sides, now and then
      if (f.buffers.includes(dst.v as HostBuffer)) f.focus = dst.v as HostBuffer;
      const o = offsets(f);
      return f.call(`copy(${dst.t}, ${src.t}, ${o.t})`, () =>
        copy(dst.v as never, src.v as never, o.v as never),
      );
    },
  },
  {
    name: 'register',
    weight: 3,
    run: (f) => {
      const live = f.liveBuffers().filter((b) => b.byteLength > 0);
      const memory: Gen =
        f.chance(0.4) && live.length > 0
          ? (() => {
              const b = f.pick(live);
              return { v: b.bytes, t: `${f.nameOf(b)}.bytes` };
            })()
          : f.chance(0.3)
            ? { v: Buffer.alloc(4096), t: 'Buffer.alloc(4096)' }
            : f.chance(0.7)
              ? gpu.side(f)
              : f.hostile();
      const o = f.options({
        device: () => f.device(),
        portable: () => f.bool(),
        mapped: () => f.bool(),
      });
      return f.call(`register(${memory.t}, ${o.t})`, () =>
        register(memory.v as never, o.v as never),
      );
    },
  },
  {
    name: 'Registration members, any this',
    weight: 2,
    run: (f) => {
      const self = f.chance(0.6) ? gpu.registration(f) : f.hostile();
      const member = f.pick(['unregister', 'dispose', 'memory', 'registered'] as const);
      if (member === 'unregister')
        return f.call(`unregister.call(${self.t})`, () =>
          Registration.prototype.unregister.call(self.v as Registration),
        );
      if (member === 'dispose')
        return f.call(`[Symbol.dispose].call(${self.t})`, () =>
          Registration.prototype[Symbol.dispose].call(self.v as Registration),
        );
      const get = Object.getOwnPropertyDescriptor(Registration.prototype, member)!.get!;
      return f.call(`get ${member}.call(${self.t})`, () => get.call(self.v));
    },
  },
  {
    name: 'DeviceBuffer members, any this',
    weight: 2,
    run: (f) => {
      const self = f.chance(0.6) ? gpu.device(f) : f.hostile();
      const member = f.pick([
        'free',
        'dispose',
        'byteLength',
        'device',
        'address',
        'released',
      ] as const);
      if (member === 'free')
        return f.call(`free.call(${self.t})`, () =>
          DeviceBuffer.prototype.free.call(self.v as DeviceBuffer),
        );
      if (member === 'dispose')
        return f.call(`[Symbol.dispose].call(${self.t})`, () =>
          DeviceBuffer.prototype[Symbol.dispose].call(self.v as DeviceBuffer),
        );
      const get = Object.getOwnPropertyDescriptor(DeviceBuffer.prototype, member)!.get!;
      return f.call(`get ${member}.call(${self.t})`, () => get.call(self.v));
    },
  },
  {
    name: 'managed memory: prefetch and advise',
    weight: 4,
    run: (f) => {
      const mine = f.liveBuffers().filter((b) => b.kind === 'managed');
      const self: Gen =
        mine.length > 0 && f.chance(0.7) ? { v: f.pick(mine), t: 'a managed buffer' } : f.buffer();
      if (f.buffers.includes(self.v as HostBuffer)) f.focus = self.v as HostBuffer;
      const where = f.arg(() => (f.chance(0.5) ? { v: 'host', t: '"host"' } : f.device()));
      if (f.chance(0.5)) {
        const o = f.options({ stream: () => gpu.stream(f) });
        return f.call(`prefetch.call(${self.t}, ${where.t}, ${o.t})`, () =>
          HostBuffer.prototype.prefetch.call(self.v as HostBuffer, where.v as number, o.v as never),
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
    name: 'pinned and managed allocations',
    weight: 4,
    run: (f) => {
      const h = f.chance(0.5) ? gpu.managed : gpu.pinned;
      const bytes = f.pick([64, 4096, 100_000]);
      return f.call(`h${h.id}(${h.name}).alloc(${bytes})`, () => h.alloc(bytes));
    },
  },
  {
    name: 'mapFile registered',
    weight: 1,
    run: (f) => {
      const path = f.path();
      const o = f.options({ register: () => ({ v: true, t: 'true' }), device: () => f.device() });
      return f.call(`mapFile(${path.t}, ${o.t})`, () => mapFile(path.v as string, o.v as never));
    },
  },
  {
    name: 'Stream.handleOf',
    weight: 1,
    run: (f) => {
      const s = f.chance(0.5) ? gpu.stream(f) : f.hostile();
      return f.call(`Stream.handleOf(${s.t})`, () => void Stream.handleOf(s.v));
    },
  },
  {
    name: 'driver allocations fail for a while',
    weight: 1,
    run: (f) => {
      // Out of memory in the driver after a few more allocations, or never again.
      setKnob('fail_after', f.chance(0.5) ? f.int(4) : -1);
    },
  },
];

it(`${CASES} cases of hostile calls with a CUDA driver: each succeeds or fails with a PinpoolError, and a failure changes no statistics`, async () => {
  const f = new Fuzzer(fuzzSeed());
  f.addHandler(gpu.managed);
  f.addHandler(gpu.pinned);
  f.keepers.push((v) => gpu.keep(v));
  f.extraValues.push(
    () => gpu.device(f),
    () => gpu.stream(f),
    () => gpu.registration(f),
  );
  f.extraEffects.push(
    {
      t: 'free a device buffer',
      run: () => {
        const d = gpu.devices.find((x) => !x.released);
        d?.free();
      },
    },
    {
      t: 'unregister a registration',
      run: () => {
        const r = gpu.registrations.find((x) => x.registered);
        r?.unregister();
      },
    },
  );
  const started = performance.now();
  await f.run([...hostOps, ...gpuOps], CASES);
  setKnob('fail_after', -1);
  await f.finish([() => gpu.release()]);
  console.log(summary(f, 'fake-cuda', (performance.now() - started) / 1000));
  expect(f.failures, `seed ${f.seed}: rerun with PINPOOL_FUZZ_SEED=${f.seed}`).toEqual([]);
  // And the driver holds nothing of ours: every pinned, managed, device block and registration
  // went back to it, but for the registration of each shared region the fuzzer still has open
  // (one for the region's life).
  const c = counters();
  const openRegions = [...f.handlers.values()].filter(
    (h) => h.kind === 'shared' && sharedRegion(h).pageLocked === 'cuda',
  ).length;
  expect(openRegions).toBeGreaterThan(0); // its own, at least
  expect(
    {
      host: c.bytes_host_alloc_live,
      managed: c.bytes_managed_live,
      device: c.bytes_device_live,
      registered: c.registered_ranges_live,
    },
    `seed ${f.seed}`,
  ).toEqual({
    host: 0,
    managed: 0,
    device: 0,
    registered: openRegions,
  });
});
