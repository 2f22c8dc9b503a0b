/**
 * Loads the native addon. If it is missing or fails to load, throws one error that lists every
 * path tried and how to fix it.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';

import { ErrorCode, PinpoolError } from './errors.js';

/** The addon's exports, as the binding (native/binding/addon.cpp) defines them. */
export interface NativeBinding {
  setErrorClass(errorClass: new (code: string, message: string) => Error): void;
  createHandler(kind: string, options: object): NativeHandle;
  constants(): NativeConstants;
  alloc(handle: NativeHandle, bytes: number, alignment: number, view: number): ArrayBuffer | undefined | null;
  takeError(): Error;
  /** `buffer` null: the block's buffer cannot be taken back; the block waits until it is collected. */
  free(handle: NativeHandle, buffer: ArrayBuffer | null | undefined, slot: number, address: number, byGc: boolean): void;
  trim(handle: NativeHandle): number;
  /** Fills `out` with a handler's statistics, each at its `NativeStat.slot` (scaled: seconds, not nanoseconds). */
  stats(handle: NativeHandle, out: Float64Array): void;
  /** The statistics table of native/core/stats.hpp (PINPOOL_STATS): one record per statistic. */
  statsLayout(): NativeStat[];
  describe(handleOrId: NativeHandle | number): { id: number; name: string; kind: string } | null;
  secret(handle: NativeHandle): [secret: string, process: string];
  attach(id: number, secret: string, process: string): NativeHandle | null;
  transfer(handle: NativeHandle, buffer: ArrayBuffer | null | undefined, slot: number, address: number, scope: NativeScopeCell | undefined): [key: string, process: string];
  adopt(key: string, process: string): [NativeHandle, ArrayBuffer, number, number] | null;
  /** A named scope's cell: what other threads freed of its buffers (native/core/scope_cell.hpp). */
  scopeCell(): NativeScopeCell;
  scopeFreed(cell: NativeScopeCell): [bytes: number, buffers: number];
  regionView(handle: NativeHandle, region: number, bytes: number): [ArrayBuffer, RegionPin] | null;
  releaseRegion(buffer: ArrayBuffer | null, pin: RegionPin): void;
  scratch(): Float64Array;
  traceHops(enabled: boolean): void;
  takeHops(): [handler: string, from: string, to: string, reason: string][];
  info(): NativeInfo;
  copy(kind: 0 | 1 | 2, device: number, dst: number | HostMemory, src: number | HostMemory, bytes: number, dstOffset: number, srcOffset: number, stream: NativeStream | undefined): Promise<void>;
  prefetch(device: number, memory: HostMemory, target: number, stream: NativeStream | undefined): Promise<void>;
  advise(device: number, memory: HostMemory, advice: number, target: number): void;
  deviceAlloc(device: number, bytes: number): number;
  deviceFree(address: number): void;
  createStream(device: number): NativeStream;
  hostRegister(device: number, memory: HostMemory, flags: number, plainAllowed: boolean): [registration: NativeRegistration, bytes: number, leased: boolean] | null;
  hostUnregister(registration: NativeRegistration): void;
  deferred(handle: NativeHandle): number;
  threadCache(handle: NativeHandle, trimAsked: () => void): [cells: Float64Array, cache: NativeThreadCache] | null;
  trimAfterThreadCache(cache: NativeThreadCache): number;
  dropCache(cache: NativeThreadCache): void;
  notePeak(cache: NativeThreadCache): void;
  leased(address: number, bytes: number): boolean;
  transferProbe(): [probe: ArrayBuffer];
  leaseFlag(): Int32Array;
  isProbe(value: unknown): boolean;
  setBufferMoves(transfer: (() => ArrayBuffer) | undefined, isMainThread: boolean): void;
  track(slot: number, address: number, buffer: ArrayBuffer): void;
  /** The process's registry (native/capsule/registry.hpp); publishes this copy's when first. */
  publish(version: string, entry: string): NativeRegistry;
  /** A pinpool_native_handle for other addons (include/pinpool.h), tagged PINPOOL_NATIVE_HANDLE_TAG. */
  nativeHandle(handle: NativeHandle): object;
  fakeCuda(op: 'counters'): Record<string, number> | null;
  fakeCuda(op: 'reset'): boolean;
  fakeCuda(op: 'set', knob: string, value: number): boolean;
}

/** Host memory as native code reads it (through Node-API, never through getters). */
export type HostMemory = ArrayBufferView | ArrayBuffer;

/** An opaque reference to a native handler (a Node-API external). */
export type NativeHandle = { readonly __nativeHandle: unique symbol };
/** An opaque reference to a slab view's pin on its slab. */
export type RegionPin = { readonly __regionPin: unique symbol };
/** An opaque reference to a CUDA stream. */
export type NativeStream = { readonly __nativeStream: unique symbol };
/** An opaque reference to the native half of a thread cache (native/binding/thread_cache.hpp). */
export type NativeThreadCache = { readonly __nativeThreadCache: unique symbol };
/** An opaque reference to a named scope's native cell (src/memory/scope-cells.ts ScopeAccount). */
export type NativeScopeCell = { readonly __nativeScopeCell: unique symbol };
/** An opaque reference to a host registration (it leases pinpool memory while registered). */
export type NativeRegistration = { readonly __nativeRegistration: unique symbol };

/** The registry as the addon reads it; members an older publisher lacks are undefined. */
/** One statistic of a handler, as native/core/stats.hpp declares it (PINPOOL_STATS). */
export interface NativeStat {
  /** Its field in handler.stats() (camelCase). */
  name: string;
  /** Its metric's name without prefix or `_total`: `name` in snake_case. */
  stem: string;
  type: 'counter' | 'gauge';
  /** How series of several workers are merged (prom-client's aggregators). */
  aggregator: 'sum' | 'max' | 'first';
  /** The handler kinds whose metrics report it; null: every kind. */
  kinds: string[] | null;
  /** Its metric's labels after `handler`: 'kind', or ones ending with 'reason' for a per-reason statistic. */
  labels: string[];
  /** Its first slot in the array stats() fills, and how many it takes (1, or one per reason). */
  slot: number;
  width: number;
  /** A per-reason statistic: the reason of each of its slots. */
  reasons?: string[];
  /** Its metric's help text. */
  help: string;
}

export interface NativeRegistry {
  abiVersion: number;
  structSize: number;
  version: string | undefined;
  entry: string | undefined;
  addon: string | undefined;
  /** This copy's addon published it. */
  self: boolean;
  /** This copy's addon file. */
  ownAddon: string;
  promoteError?: string;
}

export interface NativeInfo {
  napiVersion: number;
  abiVersion: number;
  cuda: {
    available: boolean;
    reason?: string;
    library: string;
    driverVersion?: number;
    devices: { index: number; name: string; totalBytes: number }[];
  };
  reasons: string[];
  /** Caps on page-locked memory (native/core/lock_cap.hpp); src/observe/info.ts LockCap. */
  hostLockCap: { bytes: number; source: 'rlimit' | 'cgroup' | 'meminfo' | 'none' };
  lockedCap: { bytes: number; source: 'rlimit' | 'cgroup' | 'meminfo' | 'none' };
}

/** The tables native code owns and hands over (native/binding/boundary.cpp Constants). */
export interface NativeConstants {
  codes: Record<'INVALID_ARGUMENT' | 'OUT_OF_MEMORY' | 'DOUBLE_FREE' | 'RELEASED' | 'UNAVAILABLE' | 'CUDA', string>;
  /** Where alloc() and adopt() report into the scratch array. */
  slots: { address: number; servedBy: number; region: number; regionBytes: number; liveSlot: number; classBytes: number; takingBack: number };
  /** A thread cache's shared record (native/core/thread_caches.hpp): where each count sits,
   * where its slot list begins, and how many blocks it holds at most. */
  threadCacheCells: { blocks: number; bytes: number; classBytes: number; hits: number; hitBytes: number; frees: number; trims: number; positions: number; capacity: number };
  /** Largest block a slabViews pool serves from a slab, in bytes. */
  slabMaxBlock: number;
  /** Largest alignment a pool serves from its cache, in bytes. */
  poolBlockAlignment: number;
  /** cuMemAdvise values by name. */
  advice: Record<'readMostly' | 'unsetReadMostly' | 'preferredLocation' | 'unsetPreferredLocation' | 'accessedBy' | 'unsetAccessedBy', number>;
  /** What alloc() gives JavaScript to reach a block: nothing (a replay measures the allocator
   * alone), an ArrayBuffer, or nothing when the block lies in a slab of the pool called (the
   * slab is viewed) and an ArrayBuffer otherwise. */
  views: { none: number; buffer: number; slabOrBuffer: number };
  /** cuMemHostRegister flags. */
  registerFlags: { portable: number; mapped: number };
}

/** The C library this Node runs on: 'glibc', 'musl', or undefined when it cannot tell. */
function libc(): string | undefined {
  if (process.platform !== 'linux') return undefined;
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  if (header === undefined) return undefined;
  return header.glibcVersionRuntime ? 'glibc' : 'musl';
}

/**
 * Where the addon may be, in order: PINPOOL_NATIVE_PATH; a build from source in this package
 * (build/Release: a checkout, or a platform without a prebuilt binary); the prebuilt binary
 * for this platform that ships in the package (prebuilds/, scripts/prebuild.sh).
 */
function candidates(root: string): string[] {
  const list = [
    process.env.PINPOOL_NATIVE_PATH,
    path.join(root, 'build', 'Release', 'pinpool.node'),
    path.join(root, 'build', 'Debug', 'pinpool.node'),
  ];
  // The prebuilt binaries are for glibc (2.28 and later); musl needs a build from source.
  if (libc() !== 'musl') list.push(path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'pinpool.node'));
  return list.filter((p): p is string => typeof p === 'string' && p.length > 0);
}

function load(): NativeBinding {
  // dist/src/boundary/native.js and src/boundary/native.ts both sit three levels below the
  // package root.
  const root = path.resolve(__dirname, '..', '..', '..');
  const failures: string[] = [];
  for (const candidate of candidates(root)) {
    if (candidate !== process.env.PINPOOL_NATIVE_PATH && !existsSync(candidate)) {
      failures.push(`  ${candidate}: not there`);
      continue;
    }
    try {
      return require(candidate) as NativeBinding;
    } catch (err) {
      failures.push(`  ${candidate}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  const platform = `${process.platform}-${process.arch}${libc() ? ` (${libc()})` : ''}`;
  throw new Error(
    `pinpool: the native addon could not be loaded on ${platform}. Tried:\n` +
      failures.join('\n') +
      '\nPrebuilt binaries ship for linux-x64 and linux-arm64 with glibc 2.28 or later. Elsewhere, build' +
      ' from source (cmake and a C++17 compiler; no CUDA toolkit needed): `cd node_modules/pinpool &&' +
      ' npx cmake-js compile` (the same with npm, pnpm or yarn), or point PINPOOL_NATIVE_PATH at a' +
      ' pinpool.node you built.',
  );
}

export const binding: NativeBinding = load();
// One typed boundary: native code throws PinpoolError itself, with a stable code.
binding.setErrorClass(PinpoolError as unknown as new (code: string, message: string) => Error);

/** The tables native code owns (codes, slots, limits, advice, flags), read once. */
export const constants: NativeConstants = Object.freeze(binding.constants());
// The codes are declared in errors.ts for the types; the two must be the same table.
for (const [name, code] of Object.entries(constants.codes)) {
  if (ErrorCode[name as keyof typeof ErrorCode] !== code) {
    throw new Error(`pinpool: the native addon and dist/ disagree on error code ${name} (${code}); rebuild both`);
  }
}
