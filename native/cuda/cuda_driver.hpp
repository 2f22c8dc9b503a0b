// The CUDA primitive layer: the only place in pinpool that names a cu* function.
//
// The driver library is loaded at run time (dlopen "libcuda.so.1", or the path in
// PINPOOL_CUDA_LIBRARY), so pinpool builds without a CUDA toolkit and the same binary runs on
// hosts with and without a GPU. Contract of every function here: it returns a CUresult
// (0 = success) and never throws or aborts. When the driver is missing, calls return
// CUDA_ERROR_NOT_INITIALIZED and `driver().reason` says why in words a person can act on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda_types.h"

namespace pinpool::cuda {

struct Device {
  int index = 0;             // device ordinal
  std::string name;          // as the driver names it
  uint64_t total_bytes = 0;  // device memory, in bytes
  std::string pci_bus_id;    // "0000:3B:00.0" (cuDeviceGetPCIBusId), empty when unknown
  // cuDeviceGetAttribute: managed memory can be allocated (83), and the host may touch it while
  // the device works (89: true on Linux x86-64 and Grace machines; not on Windows or WSL).
  bool managed_memory = false;
  bool concurrent_managed_access = false;
  // 113: memory can be registered read-only (CU_MEMHOSTREGISTER_READ_ONLY).
  bool read_only_host_register = false;
};

struct DriverState {
  bool available = false;  // the driver loaded, initialised and has at least one device
  std::string reason;      // why not, when !available
  std::string library;     // the path that was (or would have been) loaded
  int driver_version = 0;  // e.g. 12080 for CUDA 12.8
  std::vector<Device> devices;
};

// Loads and initialises the driver on first use (thread-safe, once per process).
const DriverState& driver();

// CUDA_SUCCESS if `device` can be used, else CUDA_ERROR_NOT_INITIALIZED (no driver) or
// CUDA_ERROR_INVALID_DEVICE.
CUresult check_device(int device);
// check_device(), then CUDA_ERROR_NOT_SUPPORTED when the device cannot serve managed memory
// safely: no managed memory, or no concurrent access (a host touch while the GPU works would be
// a segmentation fault, not an error).
CUresult check_managed(int device);

// Every call below that takes a `device` runs with that device's primary context (retained once
// per process) pushed on the calling thread, and pops it before returning: whatever context the
// thread had current (another addon's, another CUDA library's on the JavaScript thread) is
// current again afterwards, and no call relies on a context left current by an earlier one.
// `device` is the device whose context made the memory, stream or event the call names.

// Page-locked host memory (cuMemHostAlloc / cuMemFreeHost). `flags` are CU_MEMHOSTALLOC_*.
CUresult host_alloc(int device, size_t bytes, unsigned flags, void** out);
CUresult host_free(int device, void* ptr);

// Managed memory (cuMemAllocManaged with CU_MEM_ATTACH_GLOBAL / cuMemFree).
CUresult managed_alloc(int device, size_t bytes, void** out);
CUresult managed_free(int device, void* ptr);

// Device memory (cuMemAlloc / cuMemFree).
CUresult device_alloc(int device, size_t bytes, void** out);
CUresult device_free(int device, void* ptr);

// Registers existing host memory as page-locked (cuMemHostRegister / cuMemHostUnregister).
// `flags` are CU_MEMHOSTREGISTER_*.
CUresult host_register(int device, void* ptr, size_t bytes, unsigned flags);
CUresult host_unregister(int device, void* ptr);

// Streams and events. Streams are created non-blocking (they never wait on the legacy NULL
// stream); events without timing.
CUresult stream_create(int device, CUstream* out);
CUresult stream_destroy(int device, CUstream stream);
CUresult stream_synchronize(int device, CUstream stream);
// The device's own stream for work given no stream: non-blocking, made once, never destroyed.
CUresult default_stream(int device, CUstream* out);
CUresult event_create(int device, CUevent* out);
CUresult event_record(int device, CUevent event, CUstream stream);
CUresult event_query(int device, CUevent event);  // CUDA_SUCCESS, CUDA_ERROR_NOT_READY or an error
CUresult event_destroy(int device, CUevent event);
// Ordering between streams without blocking the host: mark() records a new event behind
// everything queued on `stream` so far (`stream` may be CU_STREAM_LEGACY: the device's legacy
// default stream, where other CUDA libraries' work goes); wait_for_mark() makes work queued on
// `stream` from then on wait for it, and destroys the event.
CUresult mark(int device, CUstream stream, CUevent* out);
CUresult wait_for_mark(int device, CUstream stream, CUevent mark);

// Asynchronous work on a stream. Pointers are host addresses or device addresses as
// cuMemAlloc returns them.
enum class CopyKind { HostToDevice, DeviceToHost, DeviceToDevice };
CUresult copy_async(int device, CopyKind kind, void* dst, const void* src, size_t bytes,
                    CUstream stream);
// `device` < 0 prefetches to the host.
CUresult prefetch_async(int device, const void* ptr, size_t bytes, int target, CUstream stream);
CUresult advise(int device, const void* ptr, size_t bytes, CUmem_advise advice, int target);
// Runs `fn(data)` on a driver thread once all earlier work on the stream is done. `fn` must
// not call CUDA.
CUresult launch_host_func(int device, CUstream stream, CUhostFn fn, void* data);

// "CUDA_ERROR_OUT_OF_MEMORY": the loaded driver's name for `code` (cuGetErrorName), else
// "CUDA error <code>".
std::string error_name(CUresult code);
// "out of memory": the driver's words for `code` (cuGetErrorString), else "unknown CUDA error".
std::string error_string(CUresult code);

// What another CUDA library in the process does, for the test hooks (native/binding/testing.cpp)
// and the device checks of test/gpu/: driver calls pinpool itself never makes.
// Creates a context of `device` (cuCtxCreate), current on this thread until
// foreign_context_end() destroys the newest one this thread made.
CUresult foreign_context_begin(int device);
CUresult foreign_context_end();
// Whose context is current on this thread (ptr null), or made the memory at `ptr`: 0 none, 1
// the device's primary context (pinpool's), 2 another; -1 when the driver cannot say.
int context_kind(int device, const void* ptr);
// Launches on the device's legacy default stream a kernel that stores through a null pointer:
// the context then fails for everyone in the process (CUDA_ERROR_ILLEGAL_ADDRESS, sticky).
CUresult launch_faulting_kernel(int device);

// The test double's extras (test/doubles/fake-cuda), found with dlsym; absent from a real driver.
struct Counter {
  std::string name;
  uint64_t value;
};
bool fake_counters(std::vector<Counter>& out);  // false: the loaded library is not the double
bool fake_reset_counters();
bool fake_set(const char* knob, long long value);
// What the double says of `what` ("current", "context_of" an address): false when it has no
// answer or is not loaded.
bool fake_query(const char* what, long long arg, long long* out);

}  // namespace pinpool::cuda
