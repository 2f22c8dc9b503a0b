/**
 * pinpool's exports: the one list. src/index.ts, the entry module, hands these out when this
 * copy of pinpool is the process's (src/process/capsule.ts), and the first copy's otherwise;
 * package.json's "types" points here.
 */
export { PinpoolError, ErrorCode } from './boundary/errors.js';
export type { PinpoolErrorDetails } from './boundary/errors.js';
export { Handler, DEFAULT_ALIGNMENT } from './memory/handler.js';
export type {
  AllocOptions,
  HandlerKind,
  HandlerToken,
  LeafKind,
  PinpoolNativeHandle,
  TrimOptions,
} from './memory/handler.js';
export { HostBuffer } from './memory/host-buffer.js';
export type { BufferToken, TypedArrayConstructor } from './memory/host-buffer.js';
export {
  pinned,
  managed,
  locked,
  pageable,
  pool,
  fallback,
  limit,
  defaultHandler,
} from './memory/factories.js';
export type {
  PinnedOptions,
  ManagedOptions,
  LockedOptions,
  PageableOptions,
  PoolOptions,
  FallbackOptions,
  LimitOptions,
  GrowthOptions,
} from './memory/factories.js';
export { attach, adopt } from './threads/tokens.js';
export { shared, sharedRegion } from './memory/shared.js';
export type { SharedOptions, SharedRegionInfo, SharedRegionStats } from './memory/shared.js';
export type { SharedBufferToken } from './memory/shared-tokens.js';
export { info } from './observe/info.js';
export type { Info, CudaDevice, LockCap, RegistryInfo } from './observe/info.js';
export type { HandlerStats } from './memory/stats.js';
export { controller, createController, alloc, Controller } from './scope/controller.js';
export type { MeasureResult, ScopeInfo } from './scope/controller.js';
export type { AllocMessage, FreeMessage, FallbackMessage } from './boundary/channels.js';
export { collectMetrics } from './observe/metrics.js';
export type { MetricsOptions } from './observe/metrics.js';
export { createStream, deviceAlloc, DeviceBuffer, Stream } from './gpu/device.js';
export type { DeviceOptions } from './gpu/device.js';
export { copy } from './gpu/copy.js';
export type { CopyOptions, PageableMemory } from './gpu/copy.js';
// HostBuffer's prefetch() and advise() are attached when gpu/managed.ts loads.
import './gpu/managed.js';
export type { Advice } from './gpu/managed.js';
export { register, Registration } from './gpu/register.js';
export type { RegisterOptions } from './gpu/register.js';
export { mapFile } from './memory/map-file.js';
export type { MapFileOptions } from './memory/map-file.js';
export { recordTrace, replayTrace, syntheticTrace } from './observe/trace.js';
export type {
  TraceEvent,
  TraceRecorder,
  ReplayResult,
  SyntheticTraceOptions,
} from './observe/trace.js';
