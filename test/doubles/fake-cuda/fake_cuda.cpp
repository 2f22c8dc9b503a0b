// Init, devices, primary contexts, error strings, knobs and counters of the fake CUDA driver.
#include "fake_internal.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

// The primary context of a device. Contexts live in a static array indexed by device ordinal;
// a context whose retain count is 0 counts as destroyed, as a released primary context does.
struct CUctx_st {
  std::atomic<int> refs{0};
};

namespace fake {
namespace {

constexpr int kUnifiedAddressing = 41;  // CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING

const char* const kCallNames[] = {
#define FAKE_X(name) #name,
    FAKE_CUDA_ENTRY_POINTS(FAKE_X)
#undef FAKE_X
        "copies_pinned_host",
    "copies_pageable_host"};
const char* const kGaugeNames[] = {
    "bytes_host_alloc_live",     "bytes_managed_live", "bytes_device_live",
    "registered_ranges_live",    "streams_live",       "events_live",
    "file_bytes_pinned_writable"};
static_assert(sizeof(kCallNames) / sizeof(kCallNames[0]) == kCallCounterCount, "names");
static_assert(sizeof(kGaugeNames) / sizeof(kGaugeNames[0]) == kGaugeCount, "gauge names");

// Only atomics and plain arrays at namespace scope: they are constant-initialized and have
// trivial destructors, so worker threads still running at process exit never touch a
// destroyed object.
std::atomic<unsigned long long> g_calls[kCallCounterCount];
std::atomic<long long> g_gauges[kGaugeCount];
std::atomic<bool> g_initialized{false};
Knobs g_knobs;
// Primary contexts first, then one foreign context per device: what another CUDA library in
// the process would have made (cuCtxCreate), pushed by the push_foreign knob.
CUctx_st g_contexts[2 * kMaxDevices];

// The calling thread's context stack; its top is the current context.
thread_local std::vector<CUctx_st*> t_ctx_stack;

long long env_number(const char* name, long long fallback, long long lo, long long hi) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  long long v = std::strtoll(text, &end, 10);
  // A malformed value keeps the default rather than silently becoming 0.
  if (end == text || *end != '\0' || v < lo || v > hi) return fallback;
  return v;
}

struct ErrorInfo;
const ErrorInfo* find_error(CUresult code);

// A failure code a knob may set: one cuda.h has (0, success, clears the knob).
bool is_error_code(long long value) {
  return value == 0 || (value > 0 && value <= INT_MAX && find_error(static_cast<int>(value)));
}

// For a code from the environment: as given when cuda.h has it, CUDA_ERROR_UNKNOWN otherwise
// (said on stderr, since the test that set it expects something else).
int error_code_or_unknown(int value) {
  if (is_error_code(value)) return value;
  std::fprintf(stderr, "fake cuda: %d is no CUresult of cuda.h; using CUDA_ERROR_UNKNOWN\n", value);
  return CUDA_ERROR_UNKNOWN;
}

// Environment knobs are read once, at the first cuInit or pinpool_fake_cuda_set, so values set
// at run time through pinpool_fake_cuda_set are never overwritten by the environment later.
void load_env_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_knobs.devices = static_cast<int>(env_number("PINPOOL_FAKE_CUDA_DEVICES", 1, 0, kMaxDevices));
    g_knobs.memory_bytes = env_number("PINPOOL_FAKE_CUDA_MEMORY_BYTES", 16LL << 30, 0, LLONG_MAX);
    g_knobs.fail_after = env_number("PINPOOL_FAKE_CUDA_FAIL_AFTER", -1, -1, LLONG_MAX);
    g_knobs.copy_delay_ms = env_number("PINPOOL_FAKE_CUDA_COPY_DELAY_MS", 0, 0, 3600000);
    g_knobs.strict_context = env_number("PINPOOL_FAKE_CUDA_STRICT_CONTEXT", 0, 0, 1) == 1;
    g_knobs.managed_memory =
        static_cast<int>(env_number("PINPOOL_FAKE_CUDA_MANAGED_MEMORY", 1, 0, 1));
    g_knobs.concurrent_managed_access =
        static_cast<int>(env_number("PINPOOL_FAKE_CUDA_CONCURRENT_MANAGED_ACCESS", 1, 0, 1));
    g_knobs.read_only_host_register =
        static_cast<int>(env_number("PINPOOL_FAKE_CUDA_READ_ONLY_HOST_REGISTER", 1, 0, 1));
    g_knobs.init_error = error_code_or_unknown(
        static_cast<int>(env_number("PINPOOL_FAKE_CUDA_INIT_ERROR", 0, INT_MIN, INT_MAX)));
  });
}

int ctx_device(const CUctx_st* ctx) {
  auto p = reinterpret_cast<uintptr_t>(ctx);
  auto first = reinterpret_cast<uintptr_t>(&g_contexts[0]);
  if (p < first || p >= first + sizeof(g_contexts) || (p - first) % sizeof(CUctx_st) != 0)
    return -1;
  return static_cast<int>((p - first) / sizeof(CUctx_st)) % kMaxDevices;
}

bool foreign_ctx(const CUctx_st* ctx) { return ctx >= &g_contexts[kMaxDevices]; }

// A context handle the caller may make current: one of ours, for an existing device, retained.
bool usable_ctx(const CUctx_st* ctx) {
  int dev = ctx_device(ctx);
  return dev >= 0 && valid_device(dev) && ctx->refs.load() > 0;
}

struct ErrorInfo {
  CUresult code;
  const char* name;
  const char* text;  // the real driver's wording
};
// Only codes cuda.h has, under its names (test/host/cuda-header.test.ts checks both against
// cuda.h where the toolkit's headers are installed): a code the driver lacks cannot be faked, and
// the knobs that make the double fail refuse any code not listed here.
const ErrorInfo kErrors[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {CUDA_ERROR_DEINITIALIZED, "CUDA_ERROR_DEINITIALIZED", "driver shutting down"},
    {CUDA_ERROR_STUB_LIBRARY, "CUDA_ERROR_STUB_LIBRARY", "CUDA driver is a stub library"},
    {CUDA_ERROR_DEVICE_UNAVAILABLE, "CUDA_ERROR_DEVICE_UNAVAILABLE",
     "CUDA-capable device(s) is/are busy or unavailable"},
    {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {CUDA_ERROR_INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {CUDA_ERROR_ECC_UNCORRECTABLE, "CUDA_ERROR_ECC_UNCORRECTABLE",
     "uncorrectable ECC error encountered"},
    {CUDA_ERROR_INVALID_PTX, "CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"},
    {CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {CUDA_ERROR_NOT_READY, "CUDA_ERROR_NOT_READY", "device not ready"},
    {CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS",
     "an illegal memory access was encountered"},
    {CUDA_ERROR_LAUNCH_TIMEOUT, "CUDA_ERROR_LAUNCH_TIMEOUT",
     "the launch timed out and was terminated"},
    {CUDA_ERROR_CONTEXT_IS_DESTROYED, "CUDA_ERROR_CONTEXT_IS_DESTROYED", "context is destroyed"},
    {CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED, "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED",
     "part or all of the requested memory range is already mapped"},
    {CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED, "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED",
     "pointer does not correspond to a registered memory region"},
    {CUDA_ERROR_HARDWARE_STACK_ERROR, "CUDA_ERROR_HARDWARE_STACK_ERROR", "hardware stack error"},
    {CUDA_ERROR_ILLEGAL_INSTRUCTION, "CUDA_ERROR_ILLEGAL_INSTRUCTION",
     "an illegal instruction was encountered"},
    {CUDA_ERROR_MISALIGNED_ADDRESS, "CUDA_ERROR_MISALIGNED_ADDRESS", "misaligned address"},
    {CUDA_ERROR_INVALID_ADDRESS_SPACE, "CUDA_ERROR_INVALID_ADDRESS_SPACE",
     "operation not supported on global/shared address space"},
    {CUDA_ERROR_INVALID_PC, "CUDA_ERROR_INVALID_PC", "invalid program counter"},
    {CUDA_ERROR_LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
    {CUDA_ERROR_NOT_PERMITTED, "CUDA_ERROR_NOT_PERMITTED", "operation not permitted"},
    {CUDA_ERROR_NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
    {CUDA_ERROR_SYSTEM_NOT_READY, "CUDA_ERROR_SYSTEM_NOT_READY", "system not yet initialized"},
    {CUDA_ERROR_SYSTEM_DRIVER_MISMATCH, "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
     "system has unsupported display driver / cuda driver combination"},
    {CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE, "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
     "forward compatibility was attempted on non supported HW"},
    {CUDA_ERROR_UNKNOWN, "CUDA_ERROR_UNKNOWN", "unknown error"},
};

const ErrorInfo* find_error(CUresult code) {
  for (const ErrorInfo& e : kErrors)
    if (e.code == code) return &e;
  return nullptr;
}

}  // namespace

Knobs& knobs() { return g_knobs; }
void count_call(Counter c) { g_calls[c].fetch_add(1, std::memory_order_relaxed); }
void gauge_add(Gauge g, long long delta) {
  g_gauges[g].fetch_add(delta, std::memory_order_relaxed);
}
bool is_initialized() { return g_initialized.load(std::memory_order_acquire); }
bool valid_device(int ordinal) { return ordinal >= 0 && ordinal < g_knobs.devices.load(); }

int current_device() {
  const CUctx_st* ctx = current_context();
  return ctx ? ctx_device(ctx) : -1;
}

const CUctx_st* current_context() {
  if (t_ctx_stack.empty()) return nullptr;
  const CUctx_st* ctx = t_ctx_stack.back();
  return usable_ctx(ctx) ? ctx : nullptr;
}

int context_kind(const CUctx_st* ctx) { return ctx == nullptr ? 0 : foreign_ctx(ctx) ? 2 : 1; }

bool works_without_context(Counter c) {
  switch (c) {
    case k_cuInit:
    case k_cuDriverGetVersion:
    case k_cuDeviceGetCount:
    case k_cuDeviceGet:
    case k_cuDeviceGetName:
    case k_cuDeviceGetPCIBusId:
    case k_cuDeviceGetAttribute:
    case k_cuDeviceTotalMem_v2:
    case k_cuDevicePrimaryCtxRetain:
    case k_cuDevicePrimaryCtxRelease_v2:
    case k_cuCtxSetCurrent:
    case k_cuCtxGetCurrent:
    case k_cuCtxPushCurrent_v2:
    case k_cuCtxPopCurrent_v2:
    case k_cuCtxCreate_v2:
    case k_cuCtxDestroy_v2:
    case k_cuGetErrorName:
    case k_cuGetErrorString:
    case k_cuPointerGetAttribute:
      return true;
    default:
      return false;
  }
}

}  // namespace fake

using namespace fake;

// ---- init and devices ----

FAKE_API CUresult cuInit(unsigned int flags) {
  return entry(k_cuInit, false, [&]() -> CUresult {
    if (t_on_worker) return CUDA_ERROR_NOT_PERMITTED;
    load_env_once();
    if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
    if (int err = g_knobs.init_error.load()) return err;
    if (g_knobs.devices.load() == 0) return CUDA_ERROR_NO_DEVICE;  // as the real driver does
    g_initialized.store(true, std::memory_order_release);
    return CUDA_SUCCESS;
  });
}

FAKE_API CUresult cuDriverGetVersion(int* version) {
  return entry(k_cuDriverGetVersion, false, [&]() -> CUresult {
    if (version == nullptr) return CUDA_ERROR_INVALID_VALUE;
    *version = 12080;  // CUDA 12.8: new enough for the _v2 prefetch and advise entry points
    return CUDA_SUCCESS;
  });
}

FAKE_API CUresult cuDeviceGetCount(int* count) {
  return entry(k_cuDeviceGetCount, true, [&]() -> CUresult {
    if (count == nullptr) return CUDA_ERROR_INVALID_VALUE;
    *count = g_knobs.devices.load();
    return CUDA_SUCCESS;
  });
}

FAKE_API CUresult cuDeviceGet(CUdevice* device, int ordinal) {
  return entry(k_cuDeviceGet, true, [&]() -> CUresult {
    if (device == nullptr) return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(ordinal)) return CUDA_ERROR_INVALID_DEVICE;
    *device = ordinal;
    return CUDA_SUCCESS;
  });
}

FAKE_API CUresult cuDeviceGetName(char* name, int len, CUdevice dev) {
  return entry(k_cuDeviceGetName, true, [&]() -> CUresult {
    if (name == nullptr || len <= 0) return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
    std::string full = "pinpool fake GPU " + std::to_string(dev);
    size_t n = std::min(full.size(), static_cast<size_t>(len) - 1);  // truncate like the driver
    std::memcpy(name, full.data(), n);
    name[n] = '\0';
    return CUDA_SUCCESS;
  });
}

// The attributes pinpool reads, and unified addressing (always on 64-bit Linux); any other is
// CUDA_ERROR_INVALID_VALUE rather than a made-up value.
FAKE_API CUresult cuDeviceGetAttribute(int* value, CUdevice_attribute attribute, CUdevice dev) {
  return entry(k_cuDeviceGetAttribute, true, [&]() -> CUresult {
    if (value == nullptr) return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
    switch (attribute) {
      case CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY:
        *value = g_knobs.managed_memory.load();
        return CUDA_SUCCESS;
      case CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS:
        *value = g_knobs.concurrent_managed_access.load();
        return CUDA_SUCCESS;
      case CU_DEVICE_ATTRIBUTE_READ_ONLY_HOST_REGISTER_SUPPORTED:
        *value = g_knobs.read_only_host_register.load();
        return CUDA_SUCCESS;
      case kUnifiedAddressing:
        *value = 1;
        return CUDA_SUCCESS;
      default:
        return CUDA_ERROR_INVALID_VALUE;
    }
  });
}

// Device n sits on bus 0x10 + n, as a multi-GPU board numbers them.
FAKE_API CUresult cuDeviceGetPCIBusId(char* bus_id, int len, CUdevice dev) {
  return entry(k_cuDeviceGetPCIBusId, true, [&]() -> CUresult {
    if (bus_id == nullptr || len <= 0) return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
    char full[32];  // room for any int, so the compiler sees nothing truncated
    std::snprintf(full, sizeof full, "0000:%02X:00.0", 0x10 + dev);
    size_t n = std::min(std::strlen(full), static_cast<size_t>(len) - 1);
    std::memcpy(bus_id, full, n);
    bus_id[n] = '\0';
    return CUDA_SUCCESS;
  });
}

FAKE_API CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice dev) {
  return entry(k_cuDeviceTotalMem_v2, true, [&]() -> CUresult {
    if (bytes == nullptr) return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
    *bytes = static_cast<size_t>(g_knobs.memory_bytes.load());
    return CUDA_SUCCESS;
  });
}

// ---- primary contexts and the per-thread context stack ----

FAKE_API CUresult cuDevicePrimaryCtxRetain(CUcontext* ctx, CUdevice dev) {
  return entry(k_cuDevicePrimaryCtxRetain, true, [&]() -> CUresult {
    if (ctx == nullptr) return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
    g_contexts[dev].refs.fetch_add(1);
    *ctx = &g_contexts[dev];
    return CUDA_SUCCESS;
  });
}

FAKE_API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) {
  return entry(k_cuDevicePrimaryCtxRelease_v2, true, [&]() -> CUresult {
    if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
    // Decrement only from a positive count, so an unbalanced release is reported, not absorbed.
    int refs = g_contexts[dev].refs.load();
    do {
      if (refs <= 0) return CUDA_ERROR_INVALID_CONTEXT;
    } while (!g_contexts[dev].refs.compare_exchange_weak(refs, refs - 1));
    return CUDA_SUCCESS;
  });
}

FAKE_API CUresult cuCtxSetCurrent(CUcontext ctx) {
  return entry(k_cuCtxSetCurrent, true, [&]() -> CUresult {
    // As documented for the driver: NULL pops the top of the stack (no-op when empty), any other
    // context replaces the top (or becomes the only entry).
    if (ctx == nullptr) {
      if (!t_ctx_stack.empty()) t_ctx_stack.pop_back();
      return CUDA_SUCCESS;
    }
    if (!usable_ctx(ctx)) return CUDA_ERROR_INVALID_CONTEXT;
    if (t_ctx_stack.empty())
      t_ctx_stack.push_back(ctx);
    else
      t_ctx_stack.back() = ctx;
    return CUDA_SUCCESS;
  });
}

// Another library's context (cuCtxCreate): the device's foreign context, retained and pushed on
// the calling thread, as the driver pushes the context it creates.
FAKE_API CUresult cuCtxCreate_v2(CUcontext* pctx, unsigned int flags, CUdevice dev) {
  return entry(k_cuCtxCreate_v2, true, [&]() -> CUresult {
    if (pctx == nullptr || flags > 0x3f) return CUDA_ERROR_INVALID_VALUE;  // CU_CTX_* flags
    if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
    CUctx_st* ctx = &g_contexts[kMaxDevices + dev];
    ctx->refs.fetch_add(1);
    t_ctx_stack.push_back(ctx);
    *pctx = ctx;
    return CUDA_SUCCESS;
  });
}

// Destroys a context cuCtxCreate made (a primary context is the driver's: refused), popping it
// when it is current on the calling thread.
FAKE_API CUresult cuCtxDestroy_v2(CUcontext ctx) {
  return entry(k_cuCtxDestroy_v2, true, [&]() -> CUresult {
    if (ctx == nullptr || !foreign_ctx(ctx) || !usable_ctx(ctx)) return CUDA_ERROR_INVALID_CONTEXT;
    if (!t_ctx_stack.empty() && t_ctx_stack.back() == ctx) t_ctx_stack.pop_back();
    ctx->refs.fetch_sub(1);
    return CUDA_SUCCESS;
  });
}

FAKE_API CUresult cuCtxGetCurrent(CUcontext* ctx) {
  return entry(k_cuCtxGetCurrent, true, [&]() -> CUresult {
    if (ctx == nullptr) return CUDA_ERROR_INVALID_VALUE;
    *ctx = t_ctx_stack.empty() ? nullptr : t_ctx_stack.back();
    return CUDA_SUCCESS;
  });
}

FAKE_API CUresult cuCtxPushCurrent_v2(CUcontext ctx) {
  return entry(k_cuCtxPushCurrent_v2, true, [&]() -> CUresult {
    if (ctx == nullptr) return CUDA_ERROR_INVALID_VALUE;
    if (!usable_ctx(ctx)) return CUDA_ERROR_INVALID_CONTEXT;
    t_ctx_stack.push_back(ctx);
    return CUDA_SUCCESS;
  });
}

FAKE_API CUresult cuCtxPopCurrent_v2(CUcontext* ctx) {
  return entry(k_cuCtxPopCurrent_v2, true, [&]() -> CUresult {
    if (t_ctx_stack.empty()) return CUDA_ERROR_INVALID_CONTEXT;
    if (ctx != nullptr) *ctx = t_ctx_stack.back();  // the driver accepts a NULL out-pointer here
    t_ctx_stack.pop_back();
    return CUDA_SUCCESS;
  });
}

// ---- errors (usable before cuInit and from host functions, like the real ones) ----

FAKE_API CUresult cuGetErrorName(CUresult error, const char** str) {
  return entry(k_cuGetErrorName, false, [&]() -> CUresult {
    if (str == nullptr) return CUDA_ERROR_INVALID_VALUE;
    const ErrorInfo* e = find_error(error);
    *str = e ? e->name : nullptr;
    return e ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
  });
}

FAKE_API CUresult cuGetErrorString(CUresult error, const char** str) {
  return entry(k_cuGetErrorString, false, [&]() -> CUresult {
    if (str == nullptr) return CUDA_ERROR_INVALID_VALUE;
    const ErrorInfo* e = find_error(error);
    *str = e ? e->text : nullptr;
    return e ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
  });
}

// ---- test controls (not part of the CUDA API) ----

FAKE_API int pinpool_fake_cuda_set(const char* knob, long long value) {
  if (knob == nullptr) return -1;
  load_env_once();
  if (std::strcmp(knob, "fail_after") == 0) {
    if (value < -1) return -1;
    g_knobs.alloc_successes = 0;  // count the N allowed allocations from now on
    g_knobs.fail_after = value;
  } else if (std::strcmp(knob, "memory_bytes") == 0) {
    if (value < 0) return -1;
    g_knobs.memory_bytes = value;
  } else if (std::strcmp(knob, "copy_delay_ms") == 0) {
    if (value < 0 || value > 3600000) return -1;
    g_knobs.copy_delay_ms = value;
  } else if (std::strcmp(knob, "hold_copies") == 0) {
    if (value != 0 && value != 1) return -1;
    hold_copies(value == 1);
  } else if (std::strcmp(knob, "hold_legacy") == 0) {
    if (value != 0 && value != 1) return -1;
    hold_legacy(value == 1);
  } else if (std::strcmp(knob, "fail_unregister") == 0) {
    if (value < 0) return -1;
    g_knobs.fail_unregister = value;
  } else if (std::strcmp(knob, "init_error") == 0) {
    if (!is_error_code(value)) return -1;
    g_knobs.init_error = static_cast<int>(value);  // seen by the next cuInit
  } else if (std::strcmp(knob, "read_only_host_register") == 0) {
    if (value != 0 && value != 1) return -1;
    g_knobs.read_only_host_register = static_cast<int>(value);
  } else if (std::strcmp(knob, "unshare_read_only_pins") == 0) {
    if (value != 0 && value != 1) return -1;
    g_knobs.unshare_read_only_pins = static_cast<int>(value);
  } else if (std::strcmp(knob, "strict_context") == 0) {
    if (value != 0 && value != 1) return -1;
    g_knobs.strict_context = value == 1;
  } else if (std::strcmp(knob, "push_foreign") == 0) {
    // Another library's context made current on the calling thread, behind the caller's back.
    if (!valid_device(static_cast<int>(value))) return -1;
    CUctx_st* ctx = &g_contexts[kMaxDevices + value];
    if (ctx->refs.load() == 0) ctx->refs = 1;
    t_ctx_stack.push_back(ctx);
  } else if (std::strcmp(knob, "pop_context") == 0) {
    if (t_ctx_stack.empty()) return -1;
    t_ctx_stack.pop_back();
  } else if (std::strcmp(knob, "sticky_error") == 0) {
    if (!is_error_code(value)) return -1;
    g_knobs.sticky_error = static_cast<int>(value);  // every later call but error strings
  } else if (std::strcmp(knob, "devices") == 0) {
    if (value < 0 || value > kMaxDevices) return -1;
    g_knobs.devices = static_cast<int>(value);  // ordinals >= value become invalid at once
  } else {
    return -1;
  }
  return 0;
}

// What a test asks the double: "current" (the calling thread's current context: 0 none, 1 a
// primary context, 2 a foreign one) and "context_of" (the context a live allocation containing
// address `arg` was made in, the same way); -1 for an unknown question or address.
FAKE_API long long pinpool_fake_cuda_query(const char* what, long long arg) {
  if (what == nullptr) return -1;
  if (std::strcmp(what, "current") == 0) return context_kind(current_context());
  if (std::strcmp(what, "context_of") == 0) {
    auto block =
        find_block(static_cast<uintptr_t>(arg), 1, kHostAlloc | kRegistered | kManaged | kDevice);
    return block ? context_kind(static_cast<const CUctx_st*>(block->ctx)) : -1;
  }
  return -1;
}

FAKE_API int pinpool_fake_cuda_counters(const char** names, unsigned long long* values,
                                        int capacity) {
  const int total = kCallCounterCount + kGaugeCount;
  for (int i = 0; i < total && i < capacity; ++i) {
    bool call = i < kCallCounterCount;
    if (names != nullptr) names[i] = call ? kCallNames[i] : kGaugeNames[i - kCallCounterCount];
    if (values != nullptr)
      values[i] = call ? g_calls[i].load()
                       : static_cast<unsigned long long>(g_gauges[i - kCallCounterCount].load());
  }
  return total;
}

FAKE_API void pinpool_fake_cuda_reset_counters(void) {
  for (auto& c : g_calls) c.store(0);
}
