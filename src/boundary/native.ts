/**
 * Loads the native addon. If it is missing or fails to load, throws one error that lists every
 * path tried and how to fix it.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';

import { ErrorCode, PinpoolError } from './errors.js';

/**
 * The addon's exports, in the groups the binding files export them (native/binding/
 * module_exports.hpp): one interface per file, and beside each the object of its keys, which the
 * compiler holds to the interface (test/host/binding.test.ts holds both to the addon's own).
 */
export type NativeBinding = HotPath &
  BoundaryCalls &
  AddonCalls &
  ThreadCacheCalls &
  BufferLifetimeCalls &
  HandlerCalls &
  SlabViewCalls &
  FallbackCalls &
  GpuCalls &
  CapsuleCalls &
  ScopeCellCalls & {
    /** A test build's hooks (PINPOOL_TESTING; native/binding/testing.cpp); absent from a production build. */
    readonly testing?: TestingHooks;
  };

/** The calls that move a block's ownership (native/binding/hot_path.cpp): made for every buffer. */
export interface HotPath {
  alloc(
    handle: NativeHandle,
    bytes: number,
    alignment: number,
    view: number,
  ): ArrayBuffer | undefined | null;
  takeError(): Error;
  /** `buffer` null: the block's buffer cannot be taken back; the block waits until it is collected. */
  free(
    handle: NativeHandle,
    buffer: ArrayBuffer | null | undefined,
    slot: number,
    address: number,
    byGc: boolean,
  ): void;
  transfer(
    handle: NativeHandle,
    buffer: ArrayBuffer | null | undefined,
    slot: number,
    address: number,
    scope: NativeScopeCell | undefined,
  ): { key: string; process: string };
  /** The address and leaf id land in scratch(). */
  adopt(
    key: string,
    process: string,
  ): { handler: NativeHandle; buffer: ArrayBuffer; bytes: number; alignment: number } | null;
  /** Hands a shared() leaf's block to another process: the ticket a SharedBufferToken carries. */
  giveShared(
    handle: NativeHandle,
    buffer: ArrayBuffer | null | undefined,
    slot: number,
    address: number,
    checkOnly: boolean,
  ): [unit: number, nonce: string];
  /**
   * Adopts a block a process gave (opening its region here): its ArrayBuffer, or null. The live
   * slot, address and handler id land in scratch(); its alignment is the page size.
   */
  adoptShared(
    region: string,
    secret: string,
    unit: number,
    nonce: string,
    bytes: number,
  ): ArrayBuffer | null;
  /** The handler of this thread's live block at (slot, address), as a new external. */
  blockHandler(slot: number, address: number): NativeHandle;
}
const hotPathKeys = {
  alloc: true,
  takeError: true,
  free: true,
  transfer: true,
  adopt: true,
  giveShared: true,
  adoptShared: true,
  blockHandler: true,
} as const satisfies Record<keyof HotPath, true>;

/** The tables native code owns, and the error class it throws (native/binding/boundary.cpp). */
export interface BoundaryCalls {
  setErrorClass(errorClass: new (code: string, message: string) => Error): void;
  constants(): NativeConstants;
}
const boundaryKeys = { setErrorClass: true, constants: true } as const satisfies Record<
  keyof BoundaryCalls,
  true
>;

/** What the module tells about itself (native/binding/addon.cpp). */
export interface AddonCalls {
  /** The array alloc() and adopt() report into (constants().slots). */
  scratch(): Float64Array;
  info(): NativeInfo;
}
const addonKeys = { scratch: true, info: true } as const satisfies Record<keyof AddonCalls, true>;

/** Thread caches, and the probes of buffer moves and leases (native/binding/thread_cache.cpp). */
export interface ThreadCacheCalls {
  /** A cache of the blocks of one of the handler's routes; `pool` is the id of the route's pool. */
  threadCache(
    handle: NativeHandle,
    route: number,
    trimAsked: () => void,
  ): { cells: Float64Array; cache: NativeThreadCache; pool: number } | null;
  trimAfterThreadCache(cache: NativeThreadCache): number;
  dropCache(cache: NativeThreadCache): void;
  notePeak(cache: NativeThreadCache): void;
  leased(address: number, bytes: number): boolean;
  /** An external ArrayBuffer over a few bytes of native memory (src/memory/take-back.ts). */
  transferProbe(): ArrayBuffer;
  leaseFlag(): Int32Array;
  isProbe(value: unknown): boolean;
}
const threadCacheKeys = {
  threadCache: true,
  trimAfterThreadCache: true,
  dropCache: true,
  notePeak: true,
  leased: true,
  transferProbe: true,
  leaseFlag: true,
  isProbe: true,
} as const satisfies Record<keyof ThreadCacheCalls, true>;

/** How buffers handed out can move, and which one a worker watches (native/binding/buffer_lifetime.cpp). */
export interface BufferLifetimeCalls {
  setBufferMoves(transfer: (() => ArrayBuffer) | undefined, isMainThread: boolean): void;
  track(slot: number, address: number, buffer: ArrayBuffer): void;
}
const bufferLifetimeKeys = { setBufferMoves: true, track: true } as const satisfies Record<
  keyof BufferLifetimeCalls,
  true
>;

/** The calls on a handler as a whole (native/binding/handler_calls.cpp). */
export interface HandlerCalls {
  createHandler(kind: HandlerKind, options: object): NativeHandle;
  trim(handle: NativeHandle): number;
  /** A pool's trim(), then its reservation's chunks that hold no block; throws for other kinds. */
  trimReservation(handle: NativeHandle): number;
  /** Grows a pool by `bytes` (whole chunks) off the JavaScript thread; resolves with the bytes grown. */
  reserve(handle: NativeHandle, bytes: number): Promise<number>;
  /** Fills `out` with a handler's statistics, each at its `NativeStat.slot` (scaled: seconds, not nanoseconds). */
  stats(handle: NativeHandle, out: Float64Array): void;
  /** The statistics table of native/core/stats.hpp (PINPOOL_STATS): one record per statistic. */
  statsLayout(): NativeStat[];
  describe(handleOrId: NativeHandle | number): { id: number; name: string; kind: string } | null;
  secret(handle: NativeHandle): { secret: string; process: string };
  attach(id: number, secret: string, process: string): NativeHandle | null;
  /** A shared() leaf's region (its stats read now), or null for any other handler. */
  region(handle: NativeHandle): {
    region: string;
    secret: string;
    bytes: number;
    pageLocked: 'cuda' | 'mlock' | 'off' | 'none';
    stats: {
      bytes: number;
      bytesInUse: number;
      blocksInUse: number;
      blocksInFlight: number;
      recoveredBlocks: number;
      recoveredBytes: number;
      repairs: number;
      processes: number;
      bytesHere: number;
      blocksHere: number;
      givenHere: number;
    };
  } | null;
}
const handlerCallsKeys = {
  createHandler: true,
  trim: true,
  trimReservation: true,
  reserve: true,
  stats: true,
  statsLayout: true,
  describe: true,
  secret: true,
  attach: true,
  region: true,
} as const satisfies Record<keyof HandlerCalls, true>;

/** Slab views of a `slabViews` pool (native/binding/slab_views.cpp). */
export interface SlabViewCalls {
  viewSlab(
    handle: NativeHandle,
    slab: number,
    bytes: number,
  ): { buffer: ArrayBuffer; lease: SlabLease } | null;
  releaseSlabView(buffer: ArrayBuffer | null, lease: SlabLease): void;
}
const slabViewKeys = { viewSlab: true, releaseSlabView: true } as const satisfies Record<
  keyof SlabViewCalls,
  true
>;

/** Fallbacks for the pinpool:fallback channel, from this thread's log (native/binding/fallbacks.cpp). */
export interface FallbackCalls {
  traceFallbacks(enabled: boolean): void;
  takeFallbacks(): { handler: string; from: string; to: string; reason: string }[];
}
const fallbackKeys = { traceFallbacks: true, takeFallbacks: true } as const satisfies Record<
  keyof FallbackCalls,
  true
>;

/** GPU copies, managed memory, device buffers, streams, registrations (native/binding/gpu.cpp). */
export interface GpuCalls {
  /** `direction`: one of constants().copyDirections. */
  copy(
    direction: number,
    device: number,
    dst: number | HostMemory,
    src: number | HostMemory,
    bytes: number,
    dstOffset: number,
    srcOffset: number,
    stream: NativeStream | undefined,
    after: NativeStream | 'legacy' | undefined,
  ): Promise<void>;
  prefetch(
    device: number,
    memory: HostMemory,
    target: number,
    stream: NativeStream | undefined,
  ): Promise<void>;
  advise(device: number, memory: HostMemory, advice: number, target: number): void;
  /**
   * Settles the GPU operations whose work failed without their host function running (a
   * context that can no longer be used), or that are complete without it; returns how many.
   * src/gpu/completion.ts calls it while operations are pending.
   */
  watchGpu(): number;
  deviceAlloc(device: number, bytes: number): number;
  deviceFree(device: number, address: number): void;
  createStream(device: number): NativeStream;
  hostRegister(
    device: number,
    memory: HostMemory,
    flags: number,
    plainAllowed: boolean,
  ): { registration: NativeRegistration; bytes: number; leased: boolean } | null;
  hostUnregister(registration: NativeRegistration): void;
}
const gpuKeys = {
  copy: true,
  prefetch: true,
  advise: true,
  watchGpu: true,
  deviceAlloc: true,
  deviceFree: true,
  createStream: true,
  hostRegister: true,
  hostUnregister: true,
} as const satisfies Record<keyof GpuCalls, true>;

/** The process-wide registry and native handles for other addons (native/binding/capsule.cpp). */
export interface CapsuleCalls {
  /** The process's registry (native/capsule/registry.hpp); publishes this copy's when first. */
  publish(version: string, entry: string): NativeRegistry;
  /** A pinpool_native_handle for other addons (include/pinpool.h), tagged PINPOOL_NATIVE_HANDLE_TAG. */
  nativeHandle(handle: NativeHandle): object;
}
const capsuleKeys = { publish: true, nativeHandle: true } as const satisfies Record<
  keyof CapsuleCalls,
  true
>;

/** Named scopes' native cells (native/binding/scope_cells.cpp, native/core/scope_cell.hpp). */
export interface ScopeCellCalls {
  /** A named scope's cell: what other threads freed of its buffers. */
  scopeCell(): NativeScopeCell;
  scopeFreed(cell: NativeScopeCell): { bytes: number; buffers: number };
}
const scopeCellKeys = { scopeCell: true, scopeFreed: true } as const satisfies Record<
  keyof ScopeCellCalls,
  true
>;

/**
 * A test build's hooks, `binding.testing` (native/binding/testing.cpp): compiled only with the
 * CMake option PINPOOL_TESTING, which `npm run build` turns on and the published binaries leave off.
 */
export interface TestingHooks {
  /** The CUDA test double's counters and knobs (test/support/fake-cuda.ts). */
  fakeCuda(op: 'counters'): Record<string, number> | null;
  fakeCuda(op: 'reset'): boolean;
  fakeCuda(op: 'set', knob: string, value: number): boolean;
  fakeCuda(op: 'query', what: 'current' | 'context_of', arg: number): number | null;
  /** A handler's frees still waiting for their leases (0 for any other value). */
  deferred(handle: NativeHandle): number;
  /** What pinpool calls a CUresult: the loaded driver's name and words for it, else its own. */
  cudaError(code: number): { name: string; text: string };
  /**
   * A double of the kernel calls growth makes (native/support/kernel.hpp): 'double' installs it
   * with its knobs and clears its record, 'real' puts the kernel back, 'calls' reads the record.
   */
  kernel(op: 'double', knobs: KernelKnobs): boolean;
  kernel(op: 'real'): boolean;
  kernel(op: 'calls'): KernelCalls;
  /**
   * Maps `bytes`, first-touches them with `threads` threads (0: all cores) and huge pages if
   * asked, and unmaps them, locking nothing; false when huge pages were asked and not offered.
   */
  faultIn(bytes: number, threads: number, hugePages: boolean): boolean;
  /**
   * Copies `bytes` to device memory at `address` on the legacy default stream (stream 0), as
   * another CUDA library would.
   */
  legacyCopy(device: number, address: number, bytes: Uint8Array): void;
  /**
   * Another library's context (cuCtxCreate) made current on this thread until 'end'; whose
   * context is current on this thread, or made the memory at `address`.
   */
  cudaContext(op: 'begin' | 'end', device: number): boolean;
  cudaContext(op: 'current', device: number): 'none' | 'primary' | 'foreign';
  cudaContext(op: 'of', device: number, address: number): 'none' | 'primary' | 'foreign';
  /** Launches a kernel that faults (a store through null) on the legacy default stream. */
  faultKernel(device: number): void;
  /** The module's keys, by the binding file that exports them. */
  readonly groups: Readonly<Record<string, readonly string[]>>;
}
/** What the kernel double says (TestingHooks.kernel). */
export interface KernelKnobs {
  /** Transparent huge pages offered. Default true. */
  hugePages?: boolean;
  /** NUMA nodes the machine has. Default 1. */
  nodes?: number;
  /** The node sysfs gives for any PCI device. Default -1 (unknown). */
  pciNode?: number;
  /** The node every page is found on; -1 (default): the node last bound. */
  placeOn?: number;
  /** The nth mlock call (from 1) fails with ENOMEM; 0 (default): none. */
  lockFailsAt?: number;
  /** MADV_POPULATE_WRITE refused with EINVAL, as before Linux 5.14: pages are touched instead. */
  populateRefused?: boolean;
  /** MADV_POPULATE_WRITE refused with ENOMEM: the kernel has not the memory. */
  populateNoMemory?: boolean;
}
/** The kernel double's record of calls (TestingHooks.kernel). */
export interface KernelCalls {
  advise: number;
  prefer: number;
  preferNode: number;
  nodesOf: number;
  threadPrefer: number;
  threadPreferNode: number;
  threadRestores: number;
  pciLookups: number;
  lastBusId: string;
  populates: number;
  locks: number;
  largestLock: number;
  unlocks: number;
}
/** The keys of `binding.testing`. */
export const testingKeys = {
  fakeCuda: true,
  deferred: true,
  cudaError: true,
  kernel: true,
  faultIn: true,
  legacyCopy: true,
  cudaContext: true,
  faultKernel: true,
  groups: true,
} as const satisfies Record<keyof TestingHooks, true>;

/**
 * The keys of each group, by the binding file that exports it (the addon's own list, in a test
 * build: `binding.testing.groups`).
 */
export const bindingGroups = {
  'hot_path.cpp': hotPathKeys,
  'boundary.cpp': boundaryKeys,
  'addon.cpp': addonKeys,
  'thread_cache.cpp': threadCacheKeys,
  'buffer_lifetime.cpp': bufferLifetimeKeys,
  'handler_calls.cpp': handlerCallsKeys,
  'slab_views.cpp': slabViewKeys,
  'fallbacks.cpp': fallbackKeys,
  'gpu.cpp': gpuKeys,
  'capsule.cpp': capsuleKeys,
  'scope_cells.cpp': scopeCellKeys,
} as const;

/** Kinds of leaf handlers, which hand out their own memory (constants().kinds: 'leaf'). */
export type LeafKind = 'pinned' | 'managed' | 'locked' | 'pageable' | 'file' | 'shared';
/** Kinds of handlers: the leaves and the adaptors (constants().kinds: 'adaptor'). */
export type HandlerKind = LeafKind | 'pool' | 'fallback' | 'limit';
/** The kinds as these types declare them; checked against native code's table at load. */
const declaredKinds = {
  pinned: 'leaf',
  managed: 'leaf',
  locked: 'leaf',
  pageable: 'leaf',
  file: 'leaf',
  shared: 'leaf',
  pool: 'adaptor',
  fallback: 'adaptor',
  limit: 'adaptor',
} as const satisfies { [K in HandlerKind]: K extends LeafKind ? 'leaf' : 'adaptor' };

/** Host memory as native code reads it (through Node-API, never through getters). */
export type HostMemory = ArrayBufferView | ArrayBuffer;

/** An opaque reference to a native handler (a Node-API external). */
export interface NativeHandle {
  readonly __nativeHandle: unique symbol;
}
/** An opaque reference to a slab view's lease on its slab. */
export interface SlabLease {
  readonly __slabLease: unique symbol;
}
/** An opaque reference to a CUDA stream. */
export interface NativeStream {
  readonly __nativeStream: unique symbol;
}
/** An opaque reference to the native half of a thread cache (native/binding/thread_cache.hpp). */
export interface NativeThreadCache {
  readonly __nativeThreadCache: unique symbol;
}
/** An opaque reference to a named scope's native cell (src/memory/scope-cells.ts ScopeAccount). */
export interface NativeScopeCell {
  readonly __nativeScopeCell: unique symbol;
}
/** An opaque reference to a host registration (it leases pinpool memory while registered). */
export interface NativeRegistration {
  readonly __nativeRegistration: unique symbol;
}

/** The registry as the addon reads it; members an older publisher lacks are undefined. */
/** One statistic of a handler, as native/core/stats.hpp declares it (PINPOOL_STATS). */
export interface NativeStat {
  /** Its field in handler.stats() (camelCase). */
  name: string;
  /** Its metric's name without prefix or `_total`: `name` in snake_case. */
  stem: string;
  type: 'counter' | 'gauge' | 'histogram';
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
  /** A histogram: the upper bound of each of its buckets (slots), in seconds, Infinity last. */
  bounds?: number[];
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
    devices: {
      index: number;
      name: string;
      totalBytes: number;
      pciBusId?: string;
      numaNode: number;
      managedMemory: boolean;
      concurrentManagedAccess: boolean;
    }[];
  };
  reasons: string[];
  /** Caps on page-locked memory (native/core/lock_cap.hpp); src/observe/info.ts LockCap. */
  hostLockCap: { bytes: number; source: 'rlimit' | 'cgroup' | 'meminfo' | 'none' };
  lockedCap: { bytes: number; source: 'rlimit' | 'cgroup' | 'meminfo' | 'none' };
}

/** The tables native code owns and hands over (native/binding/boundary.cpp Constants). */
export interface NativeConstants {
  codes: Record<
    'INVALID_ARGUMENT' | 'OUT_OF_MEMORY' | 'DOUBLE_FREE' | 'RELEASED' | 'UNAVAILABLE' | 'CUDA',
    string
  >;
  /** Where alloc() and adopt() report into the scratch array. */
  slots: {
    address: number;
    servedBy: number;
    slab: number;
    slabBytes: number;
    liveSlot: number;
    classBytes: number;
    takingBack: number;
    route: number;
  };
  /** A thread cache's shared record (native/core/thread_caches.hpp): where each count sits,
   * where its slot list begins, and how many blocks it holds at most. */
  threadCacheCells: {
    blocks: number;
    bytes: number;
    classBytes: number;
    hits: number;
    hitBytes: number;
    frees: number;
    trims: number;
    poolTrims: number;
    positions: number;
    capacity: number;
  };
  /** Largest block a slabViews pool serves from a slab, in bytes. */
  slabMaxBlock: number;
  /** Largest alignment a pool serves from its cache, in bytes. */
  poolBlockAlignment: number;
  /** The system's page size, in bytes. */
  pageSize: number;
  /** cuMemAdvise values by name. */
  advice: Record<
    | 'readMostly'
    | 'unsetReadMostly'
    | 'preferredLocation'
    | 'unsetPreferredLocation'
    | 'accessedBy'
    | 'unsetAccessedBy',
    number
  >;
  /** What alloc() gives JavaScript to reach a block: nothing (a replay measures the allocator
   * alone), an ArrayBuffer, or nothing when the block lies in a slab of the pool called (the
   * slab is viewed) and an ArrayBuffer otherwise. */
  views: { none: number; buffer: number; slabOrBuffer: number };
  /** cuMemHostRegister flags. */
  registerFlags: { portable: number; mapped: number };
  /** What copy() copies between, by name (native cuda::CopyKind). */
  copyDirections: { hostToDevice: number; deviceToHost: number; deviceToDevice: number };
  /** Every kind createHandler() makes (native/binding/handler_factory.cpp owns the list): a leaf or an adaptor. */
  kinds: Record<HandlerKind, 'leaf' | 'adaptor'>;
}

/** The C library this Node runs on: 'glibc', 'musl', or undefined when it cannot tell. */
function libc(): string | undefined {
  if (process.platform !== 'linux') return undefined;
  const header = (
    (process.report as NodeJS.ProcessReport | undefined)?.getReport() as
      { header?: { glibcVersionRuntime?: string } } | undefined
  )?.header;
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
  if (libc() !== 'musl')
    list.push(path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'pinpool.node'));
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
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- an addon is found by its path at run time
      return require(candidate) as NativeBinding;
    } catch (err) {
      failures.push(`  ${candidate}: ${(err as Error).message.split('\n')[0] ?? ''}`);
    }
  }
  const c = libc();
  const platform = `${process.platform}-${process.arch}${c === undefined ? '' : ` (${c})`}`;
  throw new Error(
    `pinpool: the native addon could not be loaded on ${platform}. Tried:\n` +
      failures.join('\n') +
      '\nPrebuilt binaries ship for linux-x64 and linux-arm64 with glibc 2.28 or later. Elsewhere, build' +
      " from source (cmake and a C++17 compiler; no CUDA toolkit needed): in pinpool's package folder" +
      " (node_modules/pinpool; with yarn Plug'n'Play, .yarn/unplugged/pinpool-*/node_modules/pinpool)" +
      ' run `npx cmake-js compile`, or point PINPOOL_NATIVE_PATH at a' +
      ' pinpool.node you built.',
  );
}

export const binding: NativeBinding = load();
// One typed boundary: native code throws PinpoolError itself, with a stable code.
binding.setErrorClass(PinpoolError as unknown as new (code: string, message: string) => Error);

/** The tables native code owns (codes, slots, limits, advice, flags, copy directions, kinds), read once. */
export const constants: NativeConstants = Object.freeze(binding.constants());
// The codes are declared in errors.ts for the types; the two must be the same table.
for (const [name, code] of Object.entries(constants.codes)) {
  if (ErrorCode[name as keyof typeof ErrorCode] !== code) {
    throw new Error(
      `pinpool: the native addon and dist/ disagree on error code ${name} (${code}); rebuild both`,
    );
  }
}
// The kinds are declared here for the types (HandlerKind, LeafKind); native code owns the list.
const nativeKinds = Object.entries(constants.kinds);
if (
  nativeKinds.length !== Object.keys(declaredKinds).length ||
  nativeKinds.some(([kind, role]) => declaredKinds[kind as HandlerKind] !== role)
) {
  throw new Error(
    `pinpool: the native addon and dist/ disagree on the handler kinds (${nativeKinds.map(([k, r]) => `${k}: ${r}`).join(', ')}); rebuild both`,
  );
}
