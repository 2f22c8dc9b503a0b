/**
 * Loads the native addon. If it is missing or fails to load, throws one error that lists every
 * path tried and how to fix it.
 */
import * as path from 'node:path';

/** The addon's exports, as the binding (native/binding/addon.cpp) defines them. */
export interface NativeBinding {
  createHandler(kind: string, options: object): NativeHandle;
  alloc(handle: NativeHandle, bytes: number, alignment: number, makeBuffer: boolean): ArrayBuffer | undefined | null;
  free(handle: NativeHandle, buffer: ArrayBuffer | undefined, address: number, bytes: number, alignment: number, byGc: boolean): void;
  trim(handle: NativeHandle): number;
  stats(handle: NativeHandle, out: Float64Array): void;
  statsLayout(): string[];
  describe(handleOrId: NativeHandle | number): { id: number; name: string; kind: string } | null;
  attach(id: number): NativeHandle | null;
  transfer(handle: NativeHandle, buffer: ArrayBuffer | undefined, address: number, bytes: number, alignment: number, servedBy: number): number;
  adopt(id: number): [NativeHandle, ArrayBuffer, number, number] | null;
  regionView(handle: NativeHandle, region: number, bytes: number): [ArrayBuffer, RegionPin] | null;
  releaseRegion(buffer: ArrayBuffer, pin: RegionPin): void;
  scratch(): Float64Array;
  trackLive(handle: NativeHandle, address: number, bytes: number, alignment: number): void;
  untrackLive(address: number): void;
  traceHops(enabled: boolean): void;
  takeHops(): [handler: string, from: string, to: string, reason: string][];
  info(): NativeInfo;
  cudaErrorName(code: number): string;
  copy(kind: 0 | 1 | 2, device: number, dst: number, src: number, bytes: number, stream: NativeStream | undefined, pageable: ArrayBufferView | ArrayBuffer | undefined): [Promise<number>, NativeFence] | number;
  prefetch(device: number, address: number, bytes: number, target: number, stream: NativeStream | undefined): [Promise<number>, NativeFence] | number;
  advise(device: number, address: number, bytes: number, advice: number, target: number): number;
  deviceAlloc(device: number, bytes: number): number;
  deviceFree(address: number): number;
  createStream(device: number): NativeStream | number;
  hostRegister(device: number, buffer: ArrayBufferView | ArrayBuffer, flags: number): [rc: number, address: number, bytes: number];
  hostUnregister(address: number): number;
  freeAfter(handle: NativeHandle, buffer: ArrayBuffer | undefined, address: number, bytes: number, alignment: number, fences: NativeFence[]): void;
  reclaim(handle: NativeHandle): number;
  deferred(handle: NativeHandle): number;
  fakeCuda(op: 'counters'): Record<string, number> | null;
  fakeCuda(op: 'reset'): boolean;
  fakeCuda(op: 'set', knob: string, value: number): boolean;
}

/** An opaque reference to a native handler (a Node-API external). */
export type NativeHandle = { readonly __nativeHandle: unique symbol };
/** An opaque reference to a slab view's pin on its slab. */
export type RegionPin = { readonly __regionPin: unique symbol };
/** An opaque reference to a CUDA stream. */
export type NativeStream = { readonly __nativeStream: unique symbol };
/** An opaque reference to the completion fence of one GPU operation. */
export type NativeFence = { readonly __nativeFence: unique symbol };

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
}

/** Slots of the scratch array (native/binding/addon.cpp, enum Slot). */
export const Slot = {
  address: 0,
  servedBy: 1,
  code: 2,
  cudaError: 3,
  reason: 4,
  region: 5,
  regionBytes: 6,
} as const;

function load(): NativeBinding {
  // dist/src/native.js and src/native.ts both sit two levels below the package root.
  const root = path.resolve(__dirname, '..', '..');
  const candidates = [
    process.env.PINPOOL_NATIVE_PATH,
    path.join(root, 'build', 'Release', 'pinpool.node'),
    path.join(root, 'build', 'Debug', 'pinpool.node'),
  ].filter((p): p is string => typeof p === 'string' && p.length > 0);
  const failures: string[] = [];
  for (const candidate of candidates) {
    try {
      return require(candidate) as NativeBinding;
    } catch (err) {
      failures.push(`  ${candidate}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(
    'pinpool: the native addon could not be loaded. Tried:\n' +
      failures.join('\n') +
      '\nTo fix: run `npm rebuild pinpool` (or `npx cmake-js compile` in a checkout); it needs ' +
      'cmake and a C++17 compiler, but no CUDA toolkit. PINPOOL_NATIVE_PATH may name the .node file.',
  );
}

export const binding: NativeBinding = load();
