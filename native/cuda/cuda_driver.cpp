#include "cuda_driver.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <memory>
#include <mutex>

// The prebuilt binaries load on glibc 2.28 and later (scripts/prebuild.sh builds them with
// PINPOOL_GLIBC_BASELINE): the dl functions are asked for by the version every glibc has, not by
// the one glibc 2.34 gave them when it moved them from libdl into libc.
#if defined(PINPOOL_GLIBC_BASELINE) && defined(__GLIBC__)
#if defined(__x86_64__)
__asm__(".symver dlopen,dlopen@GLIBC_2.2.5");
__asm__(".symver dlsym,dlsym@GLIBC_2.2.5");
__asm__(".symver dlerror,dlerror@GLIBC_2.2.5");
#elif defined(__aarch64__)
__asm__(".symver dlopen,dlopen@GLIBC_2.17");
__asm__(".symver dlsym,dlsym@GLIBC_2.17");
__asm__(".symver dlerror,dlerror@GLIBC_2.17");
#endif
#endif

namespace pinpool::cuda {
namespace {

// Our own signatures for the entry points we use. The _v2 names are the 64-bit versions that
// cuda.h maps the plain names to; dlsym must ask for them explicitly.
struct Api {
  CUresult (*Init)(unsigned);
  CUresult (*DriverGetVersion)(int*);
  CUresult (*DeviceGetCount)(int*);
  CUresult (*DeviceGet)(CUdevice*, int);
  CUresult (*DeviceGetName)(char*, int, CUdevice);
  CUresult (*DeviceGetPCIBusId)(char*, int, CUdevice);  // optional
  CUresult (*DeviceTotalMem)(size_t*, CUdevice);
  CUresult (*DeviceGetAttribute)(int*, CUdevice_attribute, CUdevice);
  CUresult (*DevicePrimaryCtxRetain)(CUcontext*, CUdevice);
  CUresult (*CtxPushCurrent)(CUcontext);
  CUresult (*CtxPopCurrent)(CUcontext*);
  CUresult (*MemHostAlloc)(void**, size_t, unsigned);
  CUresult (*MemFreeHost)(void*);
  CUresult (*MemAllocManaged)(CUdeviceptr*, size_t, unsigned);
  CUresult (*MemFree)(CUdeviceptr);
  CUresult (*GetErrorName)(CUresult, const char**);
  CUresult (*GetErrorString)(CUresult, const char**);
  CUresult (*MemAlloc)(CUdeviceptr*, size_t);
  CUresult (*MemHostRegister)(void*, size_t, unsigned);
  CUresult (*MemHostUnregister)(void*);
  CUresult (*StreamCreate)(CUstream*, unsigned);
  CUresult (*StreamDestroy)(CUstream);
  CUresult (*StreamSynchronize)(CUstream);
  CUresult (*EventCreate)(CUevent*, unsigned);
  CUresult (*EventRecord)(CUevent, CUstream);
  CUresult (*EventQuery)(CUevent);
  CUresult (*EventDestroy)(CUevent);
  CUresult (*StreamWaitEvent)(CUstream, CUevent, unsigned);
  CUresult (*MemcpyHtoDAsync)(CUdeviceptr, const void*, size_t, CUstream);
  CUresult (*MemcpyDtoHAsync)(void*, CUdeviceptr, size_t, CUstream);
  CUresult (*MemcpyDtoDAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
  CUresult (*LaunchHostFunc)(CUstream, CUhostFn, void*);
  // Managed-memory hints: the _v2 forms (driver 12.2+) take a CUmemLocation; older drivers
  // have only the forms that take a device ordinal. Either may be missing.
  CUresult (*MemPrefetchAsyncV2)(CUdeviceptr, size_t, CUmemLocation, unsigned, CUstream);
  CUresult (*MemPrefetchAsyncV1)(CUdeviceptr, size_t, CUdevice, CUstream);
  CUresult (*MemAdviseV2)(CUdeviceptr, size_t, CUmem_advise, CUmemLocation);
  CUresult (*MemAdviseV1)(CUdeviceptr, size_t, CUmem_advise, CUdevice);
  // Test hooks only (what another CUDA library in the process does); optional.
  CUresult (*CtxCreate)(CUcontext*, unsigned, CUdevice);
  CUresult (*CtxDestroy)(CUcontext);
  CUresult (*CtxGetCurrent)(CUcontext*);
  CUresult (*PointerGetAttribute)(void*, int, CUdeviceptr);
  CUresult (*ModuleLoadData)(CUmodule*, const void*);
  CUresult (*ModuleGetFunction)(CUfunction*, CUmodule, const char*);
  CUresult (*LaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                           unsigned, CUstream, void**, void**);
  // test double only
  int (*FakeCounters)(const char**, unsigned long long*, int);
  void (*FakeResetCounters)();
  int (*FakeSet)(const char*, long long);
  long long (*FakeQuery)(const char*, long long);
};

struct Loaded {
  DriverState state;
  Api api{};
  std::vector<CUcontext> contexts;  // primary context per device, retained for the process
  std::vector<CUstream> streams;    // default_stream() per device, made on first use
};

template <typename F>
bool resolve(void* lib, const char* name, F& out) {
  out = reinterpret_cast<F>(dlsym(lib, name));
  return out != nullptr;
}

// The driver's name (or words) for `code` through `entry` (cuGetErrorName, cuGetErrorString),
// or nullptr. Without a driver no CUDA call is made, so there is no code to name (the errors of
// native/binding/boundary.cpp then say `no-cuda`, with no CUDA fields).
const char* lookup(CUresult (*entry)(CUresult, const char**), CUresult code) {
  const char* text = nullptr;
  return entry && entry(code, &text) == CUDA_SUCCESS ? text : nullptr;
}

std::string describe(const Api& api, CUresult code) {
  const char* name = lookup(api.GetErrorName, code);
  return name ? name : "CUDA error " + std::to_string(code);
}

// Opens the driver library (PINPOOL_CUDA_LIBRARY, else libcuda.so.1) and records its path in
// `s`; nullptr, with the reason in `s`, when it cannot be loaded.
void* open_library(DriverState& s) {
  const char* override_path = std::getenv("PINPOOL_CUDA_LIBRARY");
  s.library = override_path && *override_path ? override_path : "libcuda.so.1";
  void* lib = dlopen(s.library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* why = dlerror();
    s.reason = "the CUDA driver library " + s.library + " could not be loaded (" +
               (why ? why : "unknown error") +
               "); install the NVIDIA driver, or set PINPOOL_CUDA_LIBRARY to its path";
  }
  return lib;
}

// Fills `a` from `lib`. Returns the first entry point pinpool cannot do without that the library
// lacks, or nullptr when it has them all; the optional ones (error names, the managed-memory
// hints, the test double's knobs) are left null when missing.
const char* resolve_api(void* lib, Api& a) {
  resolve(lib, "cuGetErrorName", a.GetErrorName);
  resolve(lib, "cuGetErrorString", a.GetErrorString);
  resolve(lib, "cuDeviceGetPCIBusId", a.DeviceGetPCIBusId);
  resolve(lib, "cuCtxCreate_v2", a.CtxCreate);
  resolve(lib, "cuCtxDestroy_v2", a.CtxDestroy);
  resolve(lib, "cuCtxGetCurrent", a.CtxGetCurrent);
  resolve(lib, "cuPointerGetAttribute", a.PointerGetAttribute);
  resolve(lib, "cuModuleLoadData", a.ModuleLoadData);
  resolve(lib, "cuModuleGetFunction", a.ModuleGetFunction);
  resolve(lib, "cuLaunchKernel", a.LaunchKernel);
  resolve(lib, "pinpool_fake_cuda_counters", a.FakeCounters);
  resolve(lib, "pinpool_fake_cuda_reset_counters", a.FakeResetCounters);
  resolve(lib, "pinpool_fake_cuda_set", a.FakeSet);
  resolve(lib, "pinpool_fake_cuda_query", a.FakeQuery);
  const char* missing = nullptr;
  auto need = [&](auto& field, const char* symbol) {
    if (!missing && !resolve(lib, symbol, field)) missing = symbol;
  };
  need(a.Init, "cuInit");
  need(a.DriverGetVersion, "cuDriverGetVersion");
  need(a.DeviceGetCount, "cuDeviceGetCount");
  need(a.DeviceGet, "cuDeviceGet");
  need(a.DeviceGetName, "cuDeviceGetName");
  need(a.DeviceTotalMem, "cuDeviceTotalMem_v2");
  need(a.DeviceGetAttribute, "cuDeviceGetAttribute");
  need(a.DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
  need(a.CtxPushCurrent, "cuCtxPushCurrent_v2");
  need(a.CtxPopCurrent, "cuCtxPopCurrent_v2");
  need(a.MemHostAlloc, "cuMemHostAlloc");
  need(a.MemFreeHost, "cuMemFreeHost");
  need(a.MemAllocManaged, "cuMemAllocManaged");
  need(a.MemFree, "cuMemFree_v2");
  need(a.MemAlloc, "cuMemAlloc_v2");
  need(a.MemHostRegister, "cuMemHostRegister_v2");
  need(a.MemHostUnregister, "cuMemHostUnregister");
  need(a.StreamCreate, "cuStreamCreate");
  need(a.StreamDestroy, "cuStreamDestroy_v2");
  need(a.StreamSynchronize, "cuStreamSynchronize");
  need(a.EventCreate, "cuEventCreate");
  need(a.EventRecord, "cuEventRecord");
  need(a.EventQuery, "cuEventQuery");
  need(a.EventDestroy, "cuEventDestroy_v2");
  need(a.StreamWaitEvent, "cuStreamWaitEvent");
  need(a.MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
  need(a.MemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
  need(a.MemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2");
  need(a.LaunchHostFunc, "cuLaunchHostFunc");
  resolve(lib, "cuMemPrefetchAsync_v2", a.MemPrefetchAsyncV2);
  resolve(lib, "cuMemPrefetchAsync", a.MemPrefetchAsyncV1);
  resolve(lib, "cuMemAdvise_v2", a.MemAdviseV2);
  resolve(lib, "cuMemAdvise", a.MemAdviseV1);
  return missing;
}

// What a cuInit failure usually means on a machine, for the codes a person can act on.
const char* init_hint(CUresult rc) {
  switch (rc) {
    case CUDA_ERROR_NO_DEVICE:
      return ": no CUDA-capable device is visible (CUDA_VISIBLE_DEVICES, or a container started "
             "without the GPU)";
    case CUDA_ERROR_STUB_LIBRARY:
      return ": libcuda.so.1 is the toolkit's stub library, not the driver (the NVIDIA driver is "
             "not installed, or a stubs folder comes first in LD_LIBRARY_PATH)";
    case CUDA_ERROR_SYSTEM_NOT_READY:
      return ": the system is not ready (on NVSwitch machines, HGX and DGX, "
             "nvidia-fabricmanager must be running)";
    case CUDA_ERROR_SYSTEM_DRIVER_MISMATCH:
      return ": the driver library and the kernel module are different versions (a driver "
             "update without a reboot, or a container's libcuda that is not the host's)";
    case CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE:
      return ": the forward-compatibility libraries (cuda-compat) do not support this GPU; take "
             "them off the library path";
    default:
      return "";
  }
}

// Reads the driver's version and calls cuInit; false, with the reason in `s`, when it fails.
bool init_driver(const Api& a, DriverState& s) {
  a.DriverGetVersion(&s.driver_version);
  CUresult rc = a.Init(0);
  if (rc == CUDA_SUCCESS) return true;
  s.reason = "cuInit failed with " + describe(a, rc) + " (" + std::to_string(rc) + ")";
  s.reason += init_hint(rc);
  return false;
}

// Lists the devices (name and memory, where the driver tells them) in `s.devices`; false, with
// the reason in `s`, when the driver reports none or cannot count them.
bool probe_devices(const Api& a, DriverState& s) {
  int count = 0;
  CUresult rc = a.DeviceGetCount(&count);
  if (rc != CUDA_SUCCESS || count <= 0) {
    s.reason = rc != CUDA_SUCCESS ? "cuDeviceGetCount failed with " + describe(a, rc)
                                  : "the CUDA driver reports no device";
    return false;
  }
  for (int i = 0; i < count; i++) {
    Device d;
    d.index = i;
    CUdevice dev = 0;
    char name[256] = {0};
    size_t total = 0;
    if (a.DeviceGet(&dev, i) == CUDA_SUCCESS) {
      if (a.DeviceGetName(name, sizeof(name) - 1, dev) == CUDA_SUCCESS) d.name = name;
      if (a.DeviceTotalMem(&total, dev) == CUDA_SUCCESS) d.total_bytes = total;
      char bus[32] = {0};
      int value = 0;
      d.managed_memory =
          a.DeviceGetAttribute(&value, CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY, dev) == CUDA_SUCCESS &&
          value != 0;
      d.concurrent_managed_access =
          a.DeviceGetAttribute(&value, CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS, dev) ==
              CUDA_SUCCESS &&
          value != 0;
      d.read_only_host_register =
          a.DeviceGetAttribute(&value, CU_DEVICE_ATTRIBUTE_READ_ONLY_HOST_REGISTER_SUPPORTED,
                               dev) == CUDA_SUCCESS &&
          value != 0;
      if (a.DeviceGetPCIBusId && a.DeviceGetPCIBusId(bus, sizeof(bus) - 1, dev) == CUDA_SUCCESS)
        d.pci_bus_id = bus;
    }
    s.devices.push_back(d);
  }
  return true;
}

// Every step records why the driver is unavailable in the state and stops there.
Loaded* load() {
  auto* l = new Loaded();  // lives for the process: the driver is never unloaded
  DriverState& s = l->state;
  void* lib = open_library(s);
  if (!lib) return l;
  if (const char* missing = resolve_api(lib, l->api)) {
    s.reason = s.library + " has no symbol " + missing +
               "; the NVIDIA driver is too old or this is not libcuda";
    return l;
  }
  if (!init_driver(l->api, s) || !probe_devices(l->api, s)) return l;
  l->contexts.assign(s.devices.size(), nullptr);
  l->streams.assign(s.devices.size(), nullptr);
  s.available = true;
  return l;
}

Loaded& loaded() {
  static Loaded* l = load();  // C++11 guarantees one thread-safe initialisation
  return *l;
}

std::mutex context_mutex;  // guards Loaded::contexts while a primary context is retained

}  // namespace

const DriverState& driver() { return loaded().state; }

CUresult check_device(int device) {
  const Loaded& l = loaded();
  if (!l.state.available) return CUDA_ERROR_NOT_INITIALIZED;
  if (device < 0 || device >= static_cast<int>(l.state.devices.size()))
    return CUDA_ERROR_INVALID_DEVICE;
  return CUDA_SUCCESS;
}

CUresult check_managed(int device) {
  CUresult rc = check_device(device);
  if (rc != CUDA_SUCCESS) return rc;
  const Device& d = loaded().state.devices[device];
  return d.managed_memory && d.concurrent_managed_access ? CUDA_SUCCESS : CUDA_ERROR_NOT_SUPPORTED;
}

namespace {

// The device's primary context, retained on first use and kept for the process.
CUresult primary_context(int device, CUcontext* out) {
  CUresult rc = check_device(device);
  if (rc != CUDA_SUCCESS) return rc;
  Loaded& l = loaded();
  std::lock_guard<std::mutex> lock(context_mutex);
  if (!l.contexts[device]) {
    CUdevice dev = 0;
    rc = l.api.DeviceGet(&dev, device);
    if (rc == CUDA_SUCCESS) rc = l.api.DevicePrimaryCtxRetain(&l.contexts[device], dev);
    if (rc != CUDA_SUCCESS) return rc;
  }
  *out = l.contexts[device];
  return CUDA_SUCCESS;
}

// Runs `call` with the device's primary context pushed on this thread, then pops it: the
// thread's own current context, if it had one, is current again after (issue 26, point 2: a
// cached "current" per thread went stale as soon as another library switched, and overwrote
// contexts that belonged to other code). Two driver calls around each call, off the pools' hit
// path: misses, frees to the driver, copies, registrations.
template <typename F>
CUresult in_context(int device, F&& call) {
  CUcontext ctx = nullptr;
  CUresult rc = primary_context(device, &ctx);
  if (rc != CUDA_SUCCESS) return rc;
  const Api& a = loaded().api;
  rc = a.CtxPushCurrent(ctx);
  if (rc != CUDA_SUCCESS) return rc;
  rc = call();
  a.CtxPopCurrent(nullptr);
  return rc;
}

}  // namespace

CUresult host_alloc(int device, size_t bytes, unsigned flags, void** out) {
  return in_context(device,
                    [&]() -> CUresult { return loaded().api.MemHostAlloc(out, bytes, flags); });
}

CUresult host_free(int device, void* ptr) {
  return in_context(device, [&]() -> CUresult { return loaded().api.MemFreeHost(ptr); });
}

CUresult managed_alloc(int device, size_t bytes, void** out) {
  return in_context(device, [&]() -> CUresult {
    CUdeviceptr p = 0;
    CUresult rc = loaded().api.MemAllocManaged(&p, bytes, CU_MEM_ATTACH_GLOBAL);
    if (rc == CUDA_SUCCESS) *out = reinterpret_cast<void*>(static_cast<uintptr_t>(p));
    return rc;
  });
}

CUresult managed_free(int device, void* ptr) {
  return in_context(device, [&]() -> CUresult {
    return loaded().api.MemFree(static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(ptr)));
  });
}

namespace {
CUdeviceptr dptr(const void* p) { return static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(p)); }

// `target` < 0 means the host: as a CUmemLocation (the _v2 entry points) and as a device
// ordinal (the older ones).
CUmemLocation location_of(int target) {
  return target < 0 ? CUmemLocation{CU_MEM_LOCATION_TYPE_HOST, 0}
                    : CUmemLocation{CU_MEM_LOCATION_TYPE_DEVICE, target};
}
CUdevice ordinal_of(int target) { return target < 0 ? CU_DEVICE_CPU : target; }
}  // namespace

CUresult device_alloc(int device, size_t bytes, void** out) {
  return in_context(device, [&]() -> CUresult {
    CUdeviceptr p = 0;
    CUresult rc = loaded().api.MemAlloc(&p, bytes);
    if (rc == CUDA_SUCCESS) *out = reinterpret_cast<void*>(static_cast<uintptr_t>(p));
    return rc;
  });
}

CUresult device_free(int device, void* ptr) { return managed_free(device, ptr); }

CUresult host_register(int device, void* ptr, size_t bytes, unsigned flags) {
  return in_context(device,
                    [&]() -> CUresult { return loaded().api.MemHostRegister(ptr, bytes, flags); });
}

CUresult host_unregister(int device, void* ptr) {
  return in_context(device, [&]() -> CUresult { return loaded().api.MemHostUnregister(ptr); });
}

CUresult stream_create(int device, CUstream* out) {
  return in_context(
      device, [&]() -> CUresult { return loaded().api.StreamCreate(out, CU_STREAM_NON_BLOCKING); });
}

CUresult stream_destroy(int device, CUstream stream) {
  return in_context(device, [&]() -> CUresult { return loaded().api.StreamDestroy(stream); });
}

CUresult stream_synchronize(int device, CUstream stream) {
  return in_context(device, [&]() -> CUresult { return loaded().api.StreamSynchronize(stream); });
}

CUresult default_stream(int device, CUstream* out) {
  return in_context(device, [&]() -> CUresult {
    Loaded& l = loaded();
    std::lock_guard<std::mutex> lock(context_mutex);
    if (!l.streams[device]) {
      CUresult rc = l.api.StreamCreate(&l.streams[device], CU_STREAM_NON_BLOCKING);
      if (rc != CUDA_SUCCESS) return rc;
    }
    *out = l.streams[device];
    return CUDA_SUCCESS;
  });
}

CUresult event_create(int device, CUevent* out) {
  return in_context(
      device, [&]() -> CUresult { return loaded().api.EventCreate(out, CU_EVENT_DISABLE_TIMING); });
}

CUresult event_record(int device, CUevent event, CUstream stream) {
  return in_context(device, [&]() -> CUresult { return loaded().api.EventRecord(event, stream); });
}

CUresult event_query(int device, CUevent event) {
  return in_context(device, [&]() -> CUresult { return loaded().api.EventQuery(event); });
}

CUresult event_destroy(int device, CUevent event) {
  return in_context(device, [&]() -> CUresult { return loaded().api.EventDestroy(event); });
}

CUresult mark(int device, CUstream stream, CUevent* out) {
  return in_context(device, [&]() -> CUresult {
    const Api& a = loaded().api;
    CUresult rc = a.EventCreate(out, CU_EVENT_DISABLE_TIMING);
    if (rc != CUDA_SUCCESS) return rc;
    rc = a.EventRecord(*out, stream);
    if (rc != CUDA_SUCCESS) a.EventDestroy(*out);
    return rc;
  });
}

CUresult wait_for_mark(int device, CUstream stream, CUevent mark) {
  return in_context(device, [&]() -> CUresult {
    const Api& a = loaded().api;
    CUresult rc = a.StreamWaitEvent(stream, mark, 0);
    // Destroying an event a stream still waits on is allowed: the driver frees it once the
    // device has completed it (cuda.h, cuEventDestroy).
    a.EventDestroy(mark);
    return rc;
  });
}

CUresult copy_async(int device, CopyKind kind, void* dst, const void* src, size_t bytes,
                    CUstream stream) {
  return in_context(device, [&]() -> CUresult {
    const Api& a = loaded().api;
    switch (kind) {
      case CopyKind::HostToDevice:
        return a.MemcpyHtoDAsync(dptr(dst), src, bytes, stream);
      case CopyKind::DeviceToHost:
        return a.MemcpyDtoHAsync(dst, dptr(src), bytes, stream);
      case CopyKind::DeviceToDevice:
        return a.MemcpyDtoDAsync(dptr(dst), dptr(src), bytes, stream);
    }
    return CUDA_ERROR_INVALID_VALUE;
  });
}

CUresult prefetch_async(int device, const void* ptr, size_t bytes, int target, CUstream stream) {
  return in_context(device, [&]() -> CUresult {
    const Api& a = loaded().api;
    if (a.MemPrefetchAsyncV2)
      return a.MemPrefetchAsyncV2(dptr(ptr), bytes, location_of(target), 0, stream);
    if (a.MemPrefetchAsyncV1)
      return a.MemPrefetchAsyncV1(dptr(ptr), bytes, ordinal_of(target), stream);
    return CUDA_ERROR_NOT_SUPPORTED;
  });
}

CUresult advise(int device, const void* ptr, size_t bytes, CUmem_advise advice, int target) {
  return in_context(device, [&]() -> CUresult {
    const Api& a = loaded().api;
    if (a.MemAdviseV2) return a.MemAdviseV2(dptr(ptr), bytes, advice, location_of(target));
    if (a.MemAdviseV1) return a.MemAdviseV1(dptr(ptr), bytes, advice, ordinal_of(target));
    return CUDA_ERROR_NOT_SUPPORTED;
  });
}

CUresult launch_host_func(int device, CUstream stream, CUhostFn fn, void* data) {
  return in_context(device,
                    [&]() -> CUresult { return loaded().api.LaunchHostFunc(stream, fn, data); });
}

std::string error_name(CUresult code) { return describe(loaded().api, code); }

std::string error_string(CUresult code) {
  const char* text = lookup(loaded().api.GetErrorString, code);
  return text ? text : "unknown CUDA error";
}

bool fake_counters(std::vector<Counter>& out) {
  const Api& a = loaded().api;
  if (!a.FakeCounters) return false;
  int n = a.FakeCounters(nullptr, nullptr, 0);
  if (n <= 0) return true;
  std::vector<const char*> names(n);
  std::vector<unsigned long long> values(n);
  n = a.FakeCounters(names.data(), values.data(), n);
  for (int i = 0; i < n && i < static_cast<int>(names.size()); i++)
    out.push_back({names[i] ? names[i] : "", values[i]});
  return true;
}

bool fake_reset_counters() {
  const Api& a = loaded().api;
  if (!a.FakeResetCounters) return false;
  a.FakeResetCounters();
  return true;
}

bool fake_set(const char* knob, long long value) {
  const Api& a = loaded().api;
  return a.FakeSet && a.FakeSet(knob, value) == 0;
}

namespace {
// Contexts foreign_context_begin() made on this thread, newest last.
thread_local std::vector<CUcontext> t_foreign_contexts;

// A kernel that stores through a null pointer. PTX, compiled by the driver for whatever device
// it runs on (7.0 and sm_75: CUDA 11 and Turing onwards).
const char kFaultPtx[] = R"(.version 7.0
.target sm_75
.address_size 64

.visible .entry pinpool_fault()
{
  .reg .b32 %r<2>;
  .reg .b64 %rd<2>;
  mov.u64 %rd1, 0;
  mov.u32 %r1, 1;
  st.global.u32 [%rd1], %r1;
  ret;
}
)";
}  // namespace

CUresult foreign_context_begin(int device) {
  CUresult rc = check_device(device);
  if (rc != CUDA_SUCCESS) return rc;
  const Api& a = loaded().api;
  if (!a.CtxCreate) return CUDA_ERROR_NOT_SUPPORTED;
  CUdevice dev = 0;
  rc = a.DeviceGet(&dev, device);
  CUcontext ctx = nullptr;
  if (rc == CUDA_SUCCESS) rc = a.CtxCreate(&ctx, 0, dev);  // made current on this thread
  if (rc == CUDA_SUCCESS) t_foreign_contexts.push_back(ctx);
  return rc;
}

CUresult foreign_context_end() {
  const Api& a = loaded().api;
  if (t_foreign_contexts.empty() || !a.CtxDestroy) return CUDA_ERROR_INVALID_CONTEXT;
  CUcontext ctx = t_foreign_contexts.back();
  t_foreign_contexts.pop_back();
  return a.CtxDestroy(ctx);  // pops it, if current here
}

int context_kind(int device, const void* ptr) {
  CUcontext primary = nullptr;
  if (primary_context(device, &primary) != CUDA_SUCCESS) return -1;
  const Api& a = loaded().api;
  CUcontext ctx = nullptr;
  CUresult rc = CUDA_ERROR_NOT_SUPPORTED;
  if (ptr && a.PointerGetAttribute)
    rc = a.PointerGetAttribute(&ctx, CU_POINTER_ATTRIBUTE_CONTEXT,
                               static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(ptr)));
  else if (!ptr && a.CtxGetCurrent)
    rc = a.CtxGetCurrent(&ctx);
  if (rc != CUDA_SUCCESS) return -1;
  return ctx == nullptr ? 0 : ctx == primary ? 1 : 2;
}

CUresult launch_faulting_kernel(int device) {
  return in_context(device, [&]() -> CUresult {
    const Api& a = loaded().api;
    if (!a.ModuleLoadData || !a.ModuleGetFunction || !a.LaunchKernel)
      return CUDA_ERROR_NOT_SUPPORTED;
    CUmodule module = nullptr;  // never unloaded: the kernel may still be queued
    CUfunction kernel = nullptr;
    CUresult rc = a.ModuleLoadData(&module, kFaultPtx);
    if (rc == CUDA_SUCCESS) rc = a.ModuleGetFunction(&kernel, module, "pinpool_fault");
    if (rc == CUDA_SUCCESS)
      rc = a.LaunchKernel(kernel, 1, 1, 1, 1, 1, 1, 0, CU_STREAM_LEGACY, nullptr, nullptr);
    return rc;
  });
}

bool fake_query(const char* what, long long arg, long long* out) {
  const Api& a = loaded().api;
  if (!a.FakeQuery) return false;
  *out = a.FakeQuery(what, arg);
  return *out >= 0;
}

}  // namespace pinpool::cuda
