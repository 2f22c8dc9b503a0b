/**
 * The implementation's exports: what src/index.ts hands out when this copy of pinpool is the
 * process's (src/capsule.ts). Everything here is also listed in index.ts.
 */
export { PinpoolError, ErrorCode } from './errors.js';
export type { PinpoolErrorDetails } from './errors.js';
export { Handler, DEFAULT_ALIGNMENT } from './handler.js';
export type { AllocOptions, HandlerKind, HandlerToken, LeafKind, PinpoolNativeHandle } from './handler.js';
export { HostBuffer } from './host-buffer.js';
export type { BufferToken, TypedArrayConstructor } from './host-buffer.js';
export { pinned, managed, locked, pageable, pool, fallback, limit, defaultHandler } from './handlers.js';
export type { PinnedOptions, LockedOptions, PoolOptions, FallbackOptions, LimitOptions } from './handlers.js';
export { attach, adopt } from './threads.js';
export { info } from './info.js';
export type { Info, CudaDevice, LockCap, RegistryInfo } from './info.js';
export type { HandlerStats, Gauge } from './stats.js';
export { controller, createController, alloc, Controller } from './controller.js';
export type { MeasureResult, ScopeInfo } from './controller.js';
export type { AllocMessage, FreeMessage, FallbackMessage } from './tracing.js';
export { collectMetrics } from './metrics.js';
export type { MetricsOptions } from './metrics.js';
export { copy, createStream, deviceAlloc, register, DeviceBuffer, Registration, Stream } from './gpu.js';
export type { Advice, CopyOptions, PageableMemory } from './gpu.js';
export { mapFile } from './map-file.js';
export type { MapFileOptions } from './map-file.js';
export { recordTrace, replayTrace, syntheticTrace } from './trace.js';
export type { TraceEvent, TraceRecorder, ReplayResult, SyntheticTraceOptions } from './trace.js';
