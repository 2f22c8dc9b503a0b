/**
 * pinpool's entry module. Every copy of pinpool in a process exports the same objects: those
 * of the copy that loaded first (src/capsule.ts). Each name is listed here, so that ESM named
 * imports find it (Node reads `exports.name =` in this file) and so that a name the first copy
 * lacks gets a stand-in that says so. test/capsule.test.ts checks this list against api.ts.
 */
import type * as Api from './api.js';
import { implementation } from './capsule.js';

const api: typeof Api = implementation();

export const {
  PinpoolError,
  ErrorCode,
  Handler,
  DEFAULT_ALIGNMENT,
  HostBuffer,
  pinned,
  managed,
  locked,
  pageable,
  pool,
  fallback,
  limit,
  defaultHandler,
  attach,
  adopt,
  info,
  controller,
  createController,
  alloc,
  Controller,
  collectMetrics,
  copy,
  createStream,
  deviceAlloc,
  register,
  DeviceBuffer,
  Registration,
  Stream,
  mapFile,
  recordTrace,
  replayTrace,
  syntheticTrace,
} = api;

// The classes and ErrorCode are types too.
export type PinpoolError = Api.PinpoolError;
export type ErrorCode = Api.ErrorCode;
export type Handler = Api.Handler;
export type HostBuffer = Api.HostBuffer;
export type Controller = Api.Controller;
export type DeviceBuffer = Api.DeviceBuffer;
export type Registration = Api.Registration;
export type Stream = Api.Stream;

export type {
  PinpoolErrorDetails,
  AllocOptions,
  HandlerKind,
  HandlerToken,
  LeafKind,
  PinpoolNativeHandle,
  BufferToken,
  TypedArrayConstructor,
  PinnedOptions,
  LockedOptions,
  PoolOptions,
  FallbackOptions,
  LimitOptions,
  Info,
  CudaDevice,
  LockCap,
  RegistryInfo,
  HandlerStats,
  Gauge,
  MeasureResult,
  ScopeInfo,
  AllocMessage,
  FreeMessage,
  FallbackMessage,
  MetricsOptions,
  Advice,
  CopyOptions,
  PageableMemory,
  MapFileOptions,
  TraceEvent,
  TraceRecorder,
  ReplayResult,
  SyntheticTraceOptions,
} from './api.js';
