// Internal interface shared by the files of the fake CUDA driver (libpinpool-fakecuda.so).
//
// The fake implements, on host memory, the subset of the CUDA driver API that pinpool resolves
// with dlopen + dlsym, so that CI machines without a GPU still run every CUDA code path. The
// split is by concern: fake_cuda.cpp (init, devices, contexts, errors, knobs, counters),
// fake_memory.cpp (allocations, host registration, pointer queries), fake_streams.cpp (streams,
// host functions), fake_events.cpp (events) and fake_copies.cpp (copies, prefetch, advice).
#ifndef PINPOOL_FAKE_CUDA_INTERNAL_H
#define PINPOOL_FAKE_CUDA_INTERNAL_H

#include "../../../native/cuda/cuda_types.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <system_error>

// Every exported function carries this; the library is built with -fvisibility=hidden and a
// linker version script, so nothing else leaks into the dynamic symbol table.
#define FAKE_API extern "C" __attribute__((visibility("default")))

// Every counted entry point, in the order pinpool_fake_cuda_counters reports them (one line per
// group of entry points; clang-format would stack them in a staircase).
// clang-format off
#define FAKE_CUDA_ENTRY_POINTS(X)                                                            \
  X(cuInit) X(cuDriverGetVersion) X(cuDeviceGetCount) X(cuDeviceGet) X(cuDeviceGetName) X(cuDeviceGetPCIBusId)      \
  X(cuDeviceGetAttribute)                                                                    \
  X(cuDeviceTotalMem_v2) X(cuDevicePrimaryCtxRetain) X(cuDevicePrimaryCtxRelease_v2)         \
  X(cuCtxSetCurrent) X(cuCtxGetCurrent) X(cuCtxPushCurrent_v2) X(cuCtxPopCurrent_v2)          \
  X(cuCtxCreate_v2) X(cuCtxDestroy_v2)                                                       \
  X(cuGetErrorName) X(cuGetErrorString)                                                      \
  X(cuMemHostAlloc) X(cuMemFreeHost) X(cuMemAllocManaged) X(cuMemAlloc_v2) X(cuMemFree_v2)    \
  X(cuMemHostRegister_v2) X(cuMemHostUnregister) X(cuMemHostGetDevicePointer_v2)              \
  X(cuPointerGetAttribute)                                                                   \
  X(cuStreamCreate) X(cuStreamDestroy_v2) X(cuStreamSynchronize) X(cuStreamQuery)            \
  X(cuStreamWaitEvent)                                                                       \
  X(cuMemcpyHtoDAsync_v2) X(cuMemcpyDtoHAsync_v2) X(cuMemcpyDtoDAsync_v2) X(cuMemcpyHtoD_v2)  \
  X(cuMemcpyDtoH_v2)                                                                         \
  X(cuEventCreate) X(cuEventRecord) X(cuEventQuery) X(cuEventSynchronize)                    \
  X(cuEventDestroy_v2) X(cuEventElapsedTime)                                                 \
  X(cuLaunchHostFunc) X(cuMemPrefetchAsync) X(cuMemPrefetchAsync_v2) X(cuMemAdvise)          \
  X(cuMemAdvise_v2) X(cuModuleLoadData) X(cuModuleGetFunction) X(cuLaunchKernel)
// clang-format on

namespace fake {

enum Counter : int {
#define FAKE_X(name) k_##name,
  FAKE_CUDA_ENTRY_POINTS(FAKE_X)
#undef FAKE_X
  // Not entry points: what the copies (cuMemcpy*HtoD*, *DtoH*) were handed on the host side,
  // page-locked memory the device can reach by DMA or pageable memory the driver stages.
  kCopiesPinnedHost,
  kCopiesPageableHost,
  kCallCounterCount
};

// Gauges follow the call counters in pinpool_fake_cuda_counters; reset leaves them alone.
enum Gauge : int {
  kBytesHostAllocLive,
  kBytesManagedLive,
  kBytesDeviceLive,
  kRegisteredRangesLive,
  kStreamsLive,  // user streams; the default stream is not counted
  kEventsLive,
  // Bytes of file mappings registered without CU_MEMHOSTREGISTER_READ_ONLY: the driver pins them
  // for writing, which copies every page of a private mapping into anonymous memory
  // (copy-on-write broken) and writes every page of a shared one back at unregister.
  kFileBytesPinnedWritable,
  kGaugeCount
};

// Devices the fake can model. Bounded so contexts live in a static array (no allocation, no
// destructor at exit) and so an accessed-by advice mask fits in 64 bits (bit 0 = CPU).
constexpr int kMaxDevices = 32;

// Knobs (see README.md). Atomics: tests flip them at run time while other threads allocate.
struct Knobs {
  std::atomic<int> devices{1};
  std::atomic<long long> memory_bytes{16LL << 30};
  std::atomic<long long> fail_after{-1};  // -1: never
  std::atomic<long long> copy_delay_ms{0};
  std::atomic<int> init_error{0};
  // A sticky error (a kernel fault of any library in the process, an ECC error): once set, every
  // call but the error strings, the version and cuInit returns it, as the real driver does for a
  // context that can no longer be used. 0: none.
  std::atomic<int> sticky_error{0};
  // Strict contexts: every call but cuInit, the version, device queries, context calls, pointer
  // queries and error strings fails with CUDA_ERROR_INVALID_CONTEXT on a thread with no current
  // context (cuda.h lists that error for all of them, and says no more).
  std::atomic<bool> strict_context{false};
  // Device attributes 83 (managed memory) and 89 (concurrent managed access), every device.
  // Without 89, prefetch to a device is CUDA_ERROR_INVALID_DEVICE and copies touching managed
  // memory return only once done (the driver makes them host-synchronous).
  std::atomic<int> managed_memory{1};
  std::atomic<int> concurrent_managed_access{1};
  // The next this many cuMemHostUnregister calls fail with CUDA_ERROR_UNKNOWN, unregistering
  // nothing (what the driver may answer, as pinpool must expect).
  std::atomic<long long> fail_unregister{0};
  // Device attribute 113 (READ_ONLY_HOST_REGISTER_SUPPORTED), every device. Without it,
  // cuMemHostRegister with CU_MEMHOSTREGISTER_READ_ONLY is CUDA_ERROR_NOT_SUPPORTED (cuda.h).
  std::atomic<int> read_only_host_register{1};
  // 1: a read-only registration of a private file mapping gives each page a private copy first,
  // as Linux 6.2 and later do for read-only long-term pins in copy-on-write mappings (so that
  // the pin sees what the process writes). 0 (default): the pin keeps the file's pages, as
  // older kernels do.
  std::atomic<int> unshare_read_only_pins{0};
  // Successful allocations counted against fail_after; setting fail_after restarts the count
  // so "fail after N more" means what a test that sets it mid-run expects.
  std::atomic<long long> alloc_successes{0};
};
Knobs& knobs();

void count_call(Counter c);
void gauge_add(Gauge g, long long delta);
bool is_initialized();
bool valid_device(int ordinal);
// The device of the calling thread's current context, or -1 when there is none (or the primary
// context it names has been released).
int current_device();
// The calling thread's current context (usable), or null; whether it is a primary (1) or a
// foreign (2) context, 0 for null.
const CUctx_st* current_context();
int context_kind(const CUctx_st* ctx);
// The entry points that work with no current context, even under strict_context.
bool works_without_context(Counter c);

// True on stream worker threads. Real CUDA forbids CUDA calls from host functions (and may
// return CUDA_ERROR_NOT_PERMITTED); the fake always does, which also rules out a worker
// blocking on its own queue (synchronize, destroy, pageable copies).
extern thread_local bool t_on_worker;

// Runs the body of an entry point: counts the call, applies the common gates, and turns C++
// exceptions (allocation or thread-creation failure) into error codes, because an exception
// escaping an extern "C" function would terminate the host process.
template <class F>
CUresult entry(Counter c, bool gated, F&& body) noexcept {
  count_call(c);
  if (gated && t_on_worker) return CUDA_ERROR_NOT_PERMITTED;
  if (gated && !is_initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (int sticky = gated ? knobs().sticky_error.load() : 0) return sticky;
  if (gated && knobs().strict_context.load() && !works_without_context(c) && !current_context())
    return CUDA_ERROR_INVALID_CONTEXT;
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return CUDA_ERROR_OUT_OF_MEMORY;
  } catch (const std::system_error&) {
    return CUDA_ERROR_OUT_OF_MEMORY;  // std::thread could not start a worker
  } catch (...) { return CUDA_ERROR_UNKNOWN; }
}

// ---- memory (fake_memory.cpp) ----

enum Kind : unsigned {
  kHostAlloc = 1u << 0,   // cuMemHostAlloc
  kRegistered = 1u << 1,  // cuMemHostRegister (caller's memory)
  kManaged = 1u << 2,     // cuMemAllocManaged
  kDevice = 1u << 3,      // cuMemAlloc
};
constexpr unsigned kDeviceSide = kManaged | kDevice;
constexpr unsigned kPinnedHost = kHostAlloc | kRegistered | kManaged;

constexpr int kLocationNone = -2;  // never prefetched / no preferred location
constexpr int kLocationCpu = -1;   // CU_DEVICE_CPU

struct Block {
  uintptr_t base = 0;
  size_t size = 0;
  Kind kind = kHostAlloc;
  int device = 0;
  const void* ctx = nullptr;  // the context current when it was made (a CUctx_st)
  void* owned = nullptr;      // memory to free, null for registered ranges
  // Registered ranges: CU_MEMHOSTREGISTER_READ_ONLY (the device only reads it); the bytes
  // counted in kFileBytesPinnedWritable; and for a read-only private file mapping, the file and
  // offset its pages were pinned from: a page the process has written since (copy-on-write gave
  // it an anonymous copy) is read by the device as the file's, as the real pinned page is.
  bool read_only = false;
  size_t file_bytes_writable = 0;
  int file_fd = -1;
  long long file_offset = 0;
  int pending = 0;  // queued operations touching the block; guarded by the registry lock
  std::atomic<int> last_prefetch{kLocationNone};
  std::atomic<int> preferred_location{kLocationNone};
  std::atomic<bool> read_mostly{false};
  std::atomic<unsigned long long> accessed_by{0};  // bit 0 CPU, bit d+1 device d
};

// Holds a block busy while a queued operation may still touch it: cuMemFree*, and
// cuMemHostUnregister wait until every pin is gone (CUDA's frees synchronize implicitly too), so
// a worker never writes into freed memory. Must not be destroyed while holding the registry lock.
struct Pin {
  explicit Pin(std::shared_ptr<Block> b);  // call with the registry lock held
  ~Pin();
  Pin(const Pin&) = delete;
  Pin& operator=(const Pin&) = delete;
  std::shared_ptr<Block> block;
};
using PinRef = std::shared_ptr<Pin>;

// Copies n bytes from host memory `from` (which `source`, when not null, is the registered block
// of) to `to`, as the device's DMA reads it: the pinned pages of a read-only private file
// mapping, not the process's copies of pages it wrote since it registered them.
void dma_read(void* to, const void* from, size_t n, const Block* source);

// The live block of one of the given kinds that wholly contains [p, p + n), pinned; null if none.
PinRef pin_range(uintptr_t p, size_t n, unsigned kinds);
// The live block of one of the given kinds that wholly contains [p, p + n), unpinned; null if none.
std::shared_ptr<Block> find_block(uintptr_t p, size_t n, unsigned kinds);

// ---- streams (fake_streams.cpp) ----

using Op = std::function<void()>;
using StreamRef = std::shared_ptr<CUstream_st>;

// The stream behind a handle (0 and CU_STREAM_LEGACY are the default stream); null if unknown.
StreamRef resolve_stream(CUstream h);
// The device a stream belongs to (that of the context it was created in); -1 for the default
// stream, which the fake does not tie to one.
int stream_device(const CUstream_st* s);
// The context a stream was created in (null for the default stream), and CUDA_SUCCESS or
// CUDA_ERROR_INVALID_CONTEXT for work queued on it from the calling thread: another context
// current there is refused (no context at all is the driver's lenient case, unless strict).
const CUctx_st* stream_context(const CUstream_st* s);
CUresult check_stream_context(const CUstream_st* s);
// Appends op to the stream's FIFO; seq identifies it for wait_for. Fails with
// CUDA_ERROR_INVALID_HANDLE when the stream is being destroyed.
CUresult enqueue(const StreamRef& s, Op op, uint64_t* seq);
// Blocks (on a condition variable) until operation seq of the stream has run.
void wait_for(CUstream_st* s, uint64_t seq);
// Whether operation seq of the stream has run.
bool reached(CUstream_st* s, uint64_t seq);
// Blocks until everything queued on the stream so far has run.
void drain(CUstream_st* s);

// True once a sticky error is set: the context is gone, and work queued on its streams (copies
// not yet landed, host functions) never runs, as the real driver never calls a host function
// after a context error (cuda.h, cuLaunchHostFunc).
inline bool context_lost() { return knobs().sticky_error.load() != 0; }

// Sleeps PINPOOL_FAKE_CUDA_COPY_DELAY_MS, then waits while copies are held (the hold_copies
// knob); called by workers before a copy or prefetch lands.
void copy_delay();
// Holds (true) or lets go (false) every copy and prefetch not yet landed: a test keeps one in
// flight for as long as it needs, whatever the machine's load.
void hold_copies(bool hold);
// The same for the default (legacy) stream's copies and prefetches only: the work another
// library queued on stream 0, kept in flight while a test checks what waits for it.
void hold_legacy(bool hold);

}  // namespace fake

#endif  // PINPOOL_FAKE_CUDA_INTERNAL_H
