// Self-test of the fake CUDA driver. It loads the library the way pinpool does (dlopen by the
// path in argv[1], then dlsym) and checks the behaviour pinpool's own tests rely on: init and
// knobs, allocation bookkeeping, fault injection, honest asynchronous copies, stream ordering
// and the counters. Exit status 0 means every check passed.
#include "../../../native/cuda/cuda_types.h"

#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

std::atomic<int> g_failures{0};

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      ++g_failures;                                                                 \
    }                                                                               \
  } while (0)

#define CHECK_CU(expr, want)                                                                    \
  do {                                                                                          \
    CUresult got_ = (expr);                                                                     \
    if (got_ != (want)) {                                                                       \
      std::fprintf(stderr, "%s:%d: %s returned %d, want %d\n", __FILE__, __LINE__, #expr, got_, \
                   static_cast<int>(want));                                                     \
      ++g_failures;                                                                             \
    }                                                                                           \
  } while (0)

#define OK(expr) CHECK_CU(expr, CUDA_SUCCESS)

// Name, return type and parameters of every symbol the test resolves.
#define SYMBOLS(X)                                                                             \
  X(cuInit, CUresult, (unsigned))                                                              \
  X(cuDriverGetVersion, CUresult, (int*))                                                      \
  X(cuDeviceGetCount, CUresult, (int*))                                                        \
  X(cuDeviceGet, CUresult, (CUdevice*, int))                                                   \
  X(cuDeviceGetName, CUresult, (char*, int, CUdevice))                                         \
  X(cuDeviceTotalMem_v2, CUresult, (size_t*, CUdevice))                                        \
  X(cuDevicePrimaryCtxRetain, CUresult, (CUcontext*, CUdevice))                                \
  X(cuDevicePrimaryCtxRelease_v2, CUresult, (CUdevice))                                        \
  X(cuCtxSetCurrent, CUresult, (CUcontext))                                                    \
  X(cuCtxGetCurrent, CUresult, (CUcontext*))                                                   \
  X(cuCtxPushCurrent_v2, CUresult, (CUcontext))                                                \
  X(cuCtxPopCurrent_v2, CUresult, (CUcontext*))                                                \
  X(cuGetErrorName, CUresult, (CUresult, const char**))                                        \
  X(cuGetErrorString, CUresult, (CUresult, const char**))                                      \
  X(cuMemHostAlloc, CUresult, (void**, size_t, unsigned))                                      \
  X(cuMemFreeHost, CUresult, (void*))                                                          \
  X(cuMemAllocManaged, CUresult, (CUdeviceptr*, size_t, unsigned))                             \
  X(cuMemAlloc_v2, CUresult, (CUdeviceptr*, size_t))                                           \
  X(cuMemFree_v2, CUresult, (CUdeviceptr))                                                     \
  X(cuMemHostRegister_v2, CUresult, (void*, size_t, unsigned))                                 \
  X(cuMemHostUnregister, CUresult, (void*))                                                    \
  X(cuMemHostGetDevicePointer_v2, CUresult, (CUdeviceptr*, void*, unsigned))                   \
  X(cuPointerGetAttribute, CUresult, (void*, int, CUdeviceptr))                                \
  X(cuStreamCreate, CUresult, (CUstream*, unsigned))                                           \
  X(cuStreamDestroy_v2, CUresult, (CUstream))                                                  \
  X(cuStreamSynchronize, CUresult, (CUstream))                                                 \
  X(cuStreamQuery, CUresult, (CUstream))                                                       \
  X(cuStreamWaitEvent, CUresult, (CUstream, CUevent, unsigned))                                \
  X(cuMemcpyHtoDAsync_v2, CUresult, (CUdeviceptr, const void*, size_t, CUstream))              \
  X(cuMemcpyDtoHAsync_v2, CUresult, (void*, CUdeviceptr, size_t, CUstream))                    \
  X(cuMemcpyDtoDAsync_v2, CUresult, (CUdeviceptr, CUdeviceptr, size_t, CUstream))              \
  X(cuMemcpyHtoD_v2, CUresult, (CUdeviceptr, const void*, size_t))                             \
  X(cuMemcpyDtoH_v2, CUresult, (void*, CUdeviceptr, size_t))                                   \
  X(cuEventCreate, CUresult, (CUevent*, unsigned))                                             \
  X(cuEventRecord, CUresult, (CUevent, CUstream))                                              \
  X(cuEventQuery, CUresult, (CUevent))                                                         \
  X(cuEventSynchronize, CUresult, (CUevent))                                                   \
  X(cuEventDestroy_v2, CUresult, (CUevent))                                                    \
  X(cuEventElapsedTime, CUresult, (float*, CUevent, CUevent))                                  \
  X(cuLaunchHostFunc, CUresult, (CUstream, CUhostFn, void*))                                   \
  X(cuMemPrefetchAsync, CUresult, (CUdeviceptr, size_t, CUdevice, CUstream))                   \
  X(cuMemPrefetchAsync_v2, CUresult, (CUdeviceptr, size_t, CUmemLocation, unsigned, CUstream)) \
  X(cuMemAdvise, CUresult, (CUdeviceptr, size_t, CUmem_advise, CUdevice))                      \
  X(cuMemAdvise_v2, CUresult, (CUdeviceptr, size_t, CUmem_advise, CUmemLocation))              \
  X(pinpool_fake_cuda_set, int, (const char*, long long))                                      \
  X(pinpool_fake_cuda_counters, int, (const char**, unsigned long long*, int))                 \
  X(pinpool_fake_cuda_reset_counters, void, (void))                                            \
  X(pinpool_fake_cuda_managed_state, int, (CUdeviceptr, int*, int*, int*, unsigned long long*))

struct Api {
#define FIELD(name, ret, params) ret(*name) params = nullptr;
  SYMBOLS(FIELD)
#undef FIELD
};
Api cu;

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

unsigned long long counter(const char* name) {
  int n = cu.pinpool_fake_cuda_counters(nullptr, nullptr, 0);
  std::vector<const char*> names(n);
  std::vector<unsigned long long> values(n);
  CHECK(cu.pinpool_fake_cuda_counters(names.data(), values.data(), n) == n);
  for (int i = 0; i < n; ++i)
    if (std::strcmp(names[i], name) == 0) return values[i];
  std::fprintf(stderr, "no counter named %s\n", name);
  ++g_failures;
  return 0;
}

CUdeviceptr dptr(const void* p) { return reinterpret_cast<uintptr_t>(p); }
unsigned char* hptr(CUdeviceptr d) {
  return reinterpret_cast<unsigned char*>(static_cast<uintptr_t>(d));
}
bool all_equal(const unsigned char* p, size_t n, unsigned char v) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != v) return false;
  return true;
}

// A host function's view of the world when it ran.
struct Probe {
  const unsigned char* watched = nullptr;
  unsigned char expect = 0;
  std::atomic<int>* clock = nullptr;  // shared order counter
  int order = -1;
  bool saw_expected = false;
  CUresult alloc_result = CUDA_SUCCESS;
};
void probe(void* p) {
  auto* pr = static_cast<Probe*>(p);
  pr->order = pr->clock->fetch_add(1);
  pr->saw_expected = pr->watched && pr->watched[0] == pr->expect;
  CUdeviceptr d = 0;
  pr->alloc_result = cu.cuMemAlloc_v2(&d, 16);  // CUDA calls are not allowed in host functions
}

void test_before_init() {
  int v = 0, n = 0;
  OK(cu.cuDriverGetVersion(&v));
  CHECK(v == 12080);
  CHECK_CU(cu.cuDeviceGetCount(&n), CUDA_ERROR_NOT_INITIALIZED);
  void* p = nullptr;
  CHECK_CU(cu.cuMemHostAlloc(&p, 4096, 0), CUDA_ERROR_NOT_INITIALIZED);
  const char* s = nullptr;
  OK(cu.cuGetErrorName(CUDA_ERROR_OUT_OF_MEMORY, &s));
  CHECK(s && std::strcmp(s, "CUDA_ERROR_OUT_OF_MEMORY") == 0);
  OK(cu.cuGetErrorString(CUDA_ERROR_OUT_OF_MEMORY, &s));
  CHECK(s && std::strcmp(s, "out of memory") == 0);
  OK(cu.cuGetErrorName(CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED, &s));
  CHECK(s && std::strcmp(s, "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED") == 0);
  CHECK_CU(cu.cuGetErrorName(12345, &s), CUDA_ERROR_INVALID_VALUE);
  CHECK(s == nullptr);
  CHECK(cu.pinpool_fake_cuda_set("no_such_knob", 1) == -1);
  CHECK(cu.pinpool_fake_cuda_set("init_error", CUDA_ERROR_NO_DEVICE) == 0);
  CHECK_CU(cu.cuInit(0), CUDA_ERROR_NO_DEVICE);
  CHECK_CU(cu.cuDeviceGetCount(&n), CUDA_ERROR_NOT_INITIALIZED);
  CHECK(cu.pinpool_fake_cuda_set("init_error", 0) == 0);
  CHECK_CU(cu.cuInit(1), CUDA_ERROR_INVALID_VALUE);
  OK(cu.cuInit(0));
}

void test_devices_and_contexts() {
  int n = 0;
  OK(cu.cuDeviceGetCount(&n));
  CHECK(n == 2);  // PINPOOL_FAKE_CUDA_DEVICES=2, set by main
  CUdevice d = -1;
  OK(cu.cuDeviceGet(&d, 1));
  CHECK(d == 1);
  CHECK_CU(cu.cuDeviceGet(&d, 2), CUDA_ERROR_INVALID_DEVICE);
  CHECK_CU(cu.cuDeviceGet(nullptr, 0), CUDA_ERROR_INVALID_VALUE);
  char name[64];
  OK(cu.cuDeviceGetName(name, sizeof name, 1));
  CHECK(std::strcmp(name, "pinpool fake GPU 1") == 0);
  size_t total = 0;
  OK(cu.cuDeviceTotalMem_v2(&total, 0));
  CHECK(total == (size_t{16} << 30));

  void* p = nullptr;
  CHECK_CU(cu.cuMemHostAlloc(&p, 4096, 0), CUDA_ERROR_INVALID_CONTEXT);  // no current context
  CUcontext c0 = nullptr, c1 = nullptr, cur = nullptr;
  OK(cu.cuDevicePrimaryCtxRetain(&c0, 0));
  OK(cu.cuDevicePrimaryCtxRetain(&c1, 1));
  CHECK(c0 && c1 && c0 != c1);
  OK(cu.cuCtxSetCurrent(c0));
  OK(cu.cuCtxPushCurrent_v2(c1));
  OK(cu.cuCtxGetCurrent(&cur));
  CHECK(cur == c1);
  OK(cu.cuCtxPopCurrent_v2(&cur));
  CHECK(cur == c1);
  OK(cu.cuCtxGetCurrent(&cur));
  CHECK(cur == c0);
  OK(cu.cuDevicePrimaryCtxRelease_v2(1));
  CHECK_CU(cu.cuCtxPushCurrent_v2(c1), CUDA_ERROR_INVALID_CONTEXT);  // released: destroyed
  CHECK_CU(cu.cuDevicePrimaryCtxRelease_v2(1), CUDA_ERROR_INVALID_CONTEXT);
  CHECK_CU(cu.cuCtxSetCurrent(reinterpret_cast<CUcontext>(&n)), CUDA_ERROR_INVALID_CONTEXT);
}

void test_allocations() {
  void* p = nullptr;
  OK(cu.cuMemHostAlloc(&p, 100000, CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP));
  CHECK(p && reinterpret_cast<uintptr_t>(p) % 4096 == 0);
  std::memset(p, 0x5a, 100000);
  CHECK(counter("bytes_host_alloc_live") == 100000);
  CUdeviceptr d = 0;
  OK(cu.cuMemHostGetDevicePointer_v2(&d, static_cast<char*>(p) + 10, 0));
  CHECK(d == dptr(p) + 10);
  unsigned type = 0;
  int ordinal = -1;
  OK(cu.cuPointerGetAttribute(&type, 2, dptr(p) + 99999));
  CHECK(type == 1);
  OK(cu.cuPointerGetAttribute(&ordinal, 9, dptr(p)));
  CHECK(ordinal == 0);
  CHECK_CU(cu.cuPointerGetAttribute(&type, 2, dptr(p) + 100000), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cu.cuMemHostAlloc(&p, 0, 0), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cu.cuMemHostAlloc(&p, 16, 0x8), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cu.cuMemFree_v2(dptr(p)), CUDA_ERROR_INVALID_VALUE);  // wrong free function
  OK(cu.cuMemFreeHost(p));
  CHECK_CU(cu.cuMemFreeHost(p), CUDA_ERROR_INVALID_VALUE);  // double free is reported
  CHECK(counter("bytes_host_alloc_live") == 0);

  CUdeviceptr m = 0;
  CHECK_CU(cu.cuMemAllocManaged(&m, 64, 0), CUDA_ERROR_INVALID_VALUE);
  OK(cu.cuMemAllocManaged(&m, 8192, CU_MEM_ATTACH_GLOBAL));
  std::memset(hptr(m), 1, 8192);  // managed memory is CPU-accessible
  OK(cu.cuPointerGetAttribute(&type, 2, m + 5));
  CHECK(type == 2);
  CHECK(counter("bytes_managed_live") == 8192);
  CHECK_CU(cu.cuMemFreeHost(hptr(m)), CUDA_ERROR_INVALID_VALUE);
  OK(cu.cuMemFree_v2(m));
  CHECK(counter("bytes_managed_live") == 0);

  // Capacity and fail_after.
  CHECK(cu.pinpool_fake_cuda_set("memory_bytes", 1 << 20) == 0);
  CHECK_CU(cu.cuMemAlloc_v2(&d, 2 << 20), CUDA_ERROR_OUT_OF_MEMORY);
  OK(cu.cuMemAlloc_v2(&d, 600 << 10));
  CHECK_CU(cu.cuMemHostAlloc(&p, 600 << 10, 0), CUDA_ERROR_OUT_OF_MEMORY);  // same device budget
  OK(cu.cuMemFree_v2(d));
  OK(cu.cuMemHostAlloc(&p, 600 << 10, 0));  // freed bytes count again
  OK(cu.cuMemFreeHost(p));
  CHECK(cu.pinpool_fake_cuda_set("memory_bytes", 16LL << 30) == 0);
  CHECK(cu.pinpool_fake_cuda_set("fail_after", 2) == 0);
  CUdeviceptr a = 0, b = 0, c = 0;
  OK(cu.cuMemAlloc_v2(&a, 64));
  OK(cu.cuMemAllocManaged(&b, 64, CU_MEM_ATTACH_HOST));
  CHECK_CU(cu.cuMemAlloc_v2(&c, 64), CUDA_ERROR_OUT_OF_MEMORY);
  CHECK_CU(cu.cuMemHostAlloc(&p, 64, 0), CUDA_ERROR_OUT_OF_MEMORY);
  CHECK(cu.pinpool_fake_cuda_set("fail_after", -1) == 0);
  OK(cu.cuMemAlloc_v2(&c, 64));
  OK(cu.cuMemFree_v2(a));
  OK(cu.cuMemFree_v2(b));
  OK(cu.cuMemFree_v2(c));

  // Host registration.
  auto* buf = static_cast<char*>(std::aligned_alloc(4096, 3 * 4096));
  OK(cu.cuMemHostRegister_v2(buf, 3 * 4096, CU_MEMHOSTREGISTER_PORTABLE));
  CHECK(counter("registered_ranges_live") == 1);
  CHECK_CU(cu.cuMemHostRegister_v2(buf + 4096, 4096, 0), CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED);
  CHECK_CU(cu.cuMemHostRegister_v2(nullptr, 4096, 0), CUDA_ERROR_INVALID_VALUE);
  OK(cu.cuMemHostGetDevicePointer_v2(&d, buf + 5000, 0));
  CHECK(d == dptr(buf) + 5000);
  CHECK_CU(cu.cuMemHostUnregister(buf + 4096), CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED);
  OK(cu.cuMemHostUnregister(buf));
  CHECK_CU(cu.cuMemHostUnregister(buf), CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED);
  CHECK_CU(cu.cuMemHostGetDevicePointer_v2(&d, buf, 0), CUDA_ERROR_INVALID_VALUE);
  CHECK(counter("registered_ranges_live") == 0);
  // Read-only: the device may read it, never write it; anonymous memory pins no file page.
  OK(cu.cuMemHostRegister_v2(buf, 3 * 4096, CU_MEMHOSTREGISTER_READ_ONLY));
  CHECK(counter("file_bytes_pinned_writable") == 0);
  CUdeviceptr dev = 0;
  OK(cu.cuMemAlloc_v2(&dev, 4096));
  OK(cu.cuMemcpyHtoD_v2(dev, buf, 4096));
  CHECK_CU(cu.cuMemcpyDtoH_v2(buf, dev, 4096), CUDA_ERROR_INVALID_VALUE);
  OK(cu.cuMemFree_v2(dev));
  OK(cu.cuMemHostUnregister(buf));
  std::free(buf);
}

void test_async_copies() {
  const size_t n = 1 << 16;
  void* pinned = nullptr;
  CUdeviceptr managed = 0, dev = 0;
  OK(cu.cuMemHostAlloc(&pinned, n, 0));
  OK(cu.cuMemAllocManaged(&managed, n, CU_MEM_ATTACH_GLOBAL));
  OK(cu.cuMemAlloc_v2(&dev, n));
  CUstream s = nullptr;
  CUevent start = nullptr, done = nullptr;
  OK(cu.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  OK(cu.cuEventCreate(&start, 0));
  OK(cu.cuEventCreate(&done, 0));
  OK(cu.cuEventQuery(done));  // never recorded: complete
  std::memset(pinned, 0xab, n);
  std::memset(hptr(managed), 0, n);
  CHECK(cu.pinpool_fake_cuda_set("copy_delay_ms", 100) == 0);

  Clock::time_point t0 = Clock::now();
  OK(cu.cuEventRecord(start, s));
  OK(cu.cuMemcpyHtoDAsync_v2(managed, pinned, n, s));
  OK(cu.cuEventRecord(done, s));
  CHECK_CU(cu.cuEventQuery(done), CUDA_ERROR_NOT_READY);
  CHECK_CU(cu.cuStreamQuery(s), CUDA_ERROR_NOT_READY);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
#ifndef __SANITIZE_THREAD__  // peeking at a buffer under an in-flight copy is a race by design
  bool untouched = hptr(managed)[0] == 0 && hptr(managed)[n - 1] == 0;
  // The copy sleeps 100 ms after it was queued, so while under 100 ms have passed it cannot
  // have landed (measured after the read, so a slow machine cannot make this flaky).
  if (ms_since(t0) < 95) CHECK(untouched);
#endif
  OK(cu.cuEventSynchronize(done));
  CHECK(ms_since(t0) >= 99);
  CHECK(all_equal(hptr(managed), n, 0xab));
  OK(cu.cuEventQuery(done));
  OK(cu.cuStreamQuery(s));
  float ms = 0;
  OK(cu.cuEventElapsedTime(&ms, start, done));
  CHECK(ms >= 99);

  // Range checks happen when the copy is queued.
  CHECK_CU(cu.cuMemcpyHtoDAsync_v2(dev + 1, pinned, n, s), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cu.cuMemcpyDtoHAsync_v2(pinned, dev + n, 1, s), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cu.cuMemcpyDtoDAsync_v2(dev, dptr(pinned), 16, s), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cu.cuMemcpyHtoDAsync_v2(dev, pinned, n, reinterpret_cast<CUstream>(&ms)),
           CUDA_ERROR_INVALID_HANDLE);

  // Host functions run in order, after earlier work, on a worker where CUDA calls are refused.
  std::atomic<int> clock{0};
  Probe p1, p2;
  p1.watched = p2.watched = hptr(managed);
  p1.clock = p2.clock = &clock;
  p1.expect = p2.expect = 0xcd;
  std::memset(pinned, 0xcd, n);
  OK(cu.cuMemcpyHtoDAsync_v2(managed, pinned, n, s));
  OK(cu.cuLaunchHostFunc(s, probe, &p1));
  OK(cu.cuLaunchHostFunc(s, probe, &p2));
  OK(cu.cuStreamSynchronize(s));
  CHECK(p1.order == 0 && p2.order == 1);
  CHECK(p1.saw_expected && p2.saw_expected);
  CHECK(p1.alloc_result == CUDA_ERROR_NOT_PERMITTED);

  // Device round trip through a pageable buffer: the async DtoH returns once it has landed, and
  // an async HtoD from pageable memory has staged its bytes by the time it returns.
  std::vector<unsigned char> pageable(n, 0x11);
  const unsigned long long pageable_before = counter("copies_pageable_host");
  const unsigned long long pinned_before = counter("copies_pinned_host");
  OK(cu.cuMemcpyHtoDAsync_v2(dev, pageable.data(), n, s));
  CHECK(counter("copies_pageable_host") == pageable_before + 1);
  CHECK(counter("copies_pinned_host") == pinned_before);
  std::fill(pageable.begin(), pageable.end(), 0x22);
  std::vector<unsigned char> back(n, 0);
  OK(cu.cuMemcpyDtoHAsync_v2(back.data(), dev, n, s));
  CHECK(all_equal(back.data(), n, 0x11));
  OK(cu.cuMemcpyDtoDAsync_v2(managed, dev, n, s));
  OK(cu.cuStreamSynchronize(s));
  CHECK(all_equal(hptr(managed), n, 0x11));
  OK(cu.cuMemcpyHtoD_v2(dev, pageable.data(), n));
  OK(cu.cuMemcpyDtoH_v2(back.data(), dev, n));
  CHECK(all_equal(back.data(), n, 0x22));

  // Prefetch and advice on managed memory.
  int where = 0, preferred = 0, mostly = 0;
  unsigned long long accessed = 0;
  OK(cu.cuMemPrefetchAsync(managed, n, 1, s));
  CHECK_CU(cu.cuMemPrefetchAsync(managed, n, 7, s), CUDA_ERROR_INVALID_DEVICE);
  CHECK_CU(cu.cuMemPrefetchAsync(dev, n, 0, s), CUDA_ERROR_INVALID_VALUE);
  CHECK(cu.pinpool_fake_cuda_managed_state(managed, &where, nullptr, nullptr, nullptr) == 0);
  CHECK(where == -2);  // not yet: the prefetch takes as long as a copy
  OK(cu.cuMemPrefetchAsync_v2(managed, n, CUmemLocation{CU_MEM_LOCATION_TYPE_HOST, 0}, 0, s));
  OK(cu.cuStreamSynchronize(s));
  CHECK(cu.pinpool_fake_cuda_managed_state(managed, &where, nullptr, nullptr, nullptr) == 0);
  CHECK(where == -1);
  OK(cu.cuMemAdvise(managed, n, CU_MEM_ADVISE_SET_READ_MOSTLY, 0));
  OK(cu.cuMemAdvise_v2(managed, n, CU_MEM_ADVISE_SET_PREFERRED_LOCATION,
                       CUmemLocation{CU_MEM_LOCATION_TYPE_DEVICE, 1}));
  OK(cu.cuMemAdvise(managed, 16, CU_MEM_ADVISE_SET_ACCESSED_BY, CU_DEVICE_CPU));
  CHECK_CU(cu.cuMemAdvise(managed, n, static_cast<CUmem_advise>(7), 0), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cu.cuMemAdvise(managed, n + 1, CU_MEM_ADVISE_SET_READ_MOSTLY, 0),
           CUDA_ERROR_INVALID_VALUE);
  CHECK(cu.pinpool_fake_cuda_managed_state(managed, nullptr, &preferred, &mostly, &accessed) == 0);
  CHECK(preferred == 1 && mostly == 1 && accessed == 1);

  // A free waits for queued copies that touch the block instead of pulling memory from under them.
  t0 = Clock::now();
  OK(cu.cuMemcpyHtoDAsync_v2(dev, pinned, n, s));
  OK(cu.cuMemFreeHost(pinned));
  CHECK(ms_since(t0) >= 99);

  CHECK(cu.pinpool_fake_cuda_set("copy_delay_ms", 0) == 0);
  OK(cu.cuEventDestroy_v2(start));
  OK(cu.cuEventDestroy_v2(done));
  CHECK_CU(cu.cuEventDestroy_v2(done), CUDA_ERROR_INVALID_HANDLE);
  OK(cu.cuStreamDestroy_v2(s));
  CHECK_CU(cu.cuStreamDestroy_v2(s), CUDA_ERROR_INVALID_HANDLE);
  OK(cu.cuMemFree_v2(managed));
  OK(cu.cuMemFree_v2(dev));
}

void test_stream_ordering() {
  const size_t n = 4096;
  void* pinned = nullptr;
  CUdeviceptr a = 0, b = 0;
  OK(cu.cuMemHostAlloc(&pinned, n, 0));
  OK(cu.cuMemAllocManaged(&a, n, CU_MEM_ATTACH_GLOBAL));
  OK(cu.cuMemAllocManaged(&b, n, CU_MEM_ATTACH_GLOBAL));
  std::memset(pinned, 0x77, n);
  std::memset(hptr(a), 0, n);
  std::memset(hptr(b), 0, n);
  CUstream s1 = nullptr, s2 = nullptr, s3 = nullptr;
  CUevent e = nullptr;
  OK(cu.cuStreamCreate(&s1, 0));
  OK(cu.cuStreamCreate(&s2, CU_STREAM_NON_BLOCKING));
  OK(cu.cuStreamCreate(&s3, CU_STREAM_NON_BLOCKING));
  OK(cu.cuEventCreate(&e, CU_EVENT_DISABLE_TIMING));
  CHECK(counter("streams_live") == 3);
  CHECK(cu.pinpool_fake_cuda_set("copy_delay_ms", 100) == 0);

  // Streams run concurrently: two 100 ms copies on two streams take about 100 ms, not 200.
  Clock::time_point t0 = Clock::now();
  OK(cu.cuMemcpyHtoDAsync_v2(a, pinned, n, s2));
  OK(cu.cuMemcpyHtoDAsync_v2(b, pinned, n, s3));
  OK(cu.cuStreamSynchronize(s2));
  OK(cu.cuStreamSynchronize(s3));
  CHECK(ms_since(t0) < 190);

  // cuStreamWaitEvent: s2's host function runs only after s1's copy.
  std::atomic<int> clock{0};
  Probe p;
  p.watched = hptr(a);
  p.expect = 0x78;
  p.clock = &clock;
  std::memset(pinned, 0x78, n);
  OK(cu.cuMemcpyHtoDAsync_v2(a, pinned, n, s1));
  OK(cu.cuEventRecord(e, s1));
  OK(cu.cuStreamWaitEvent(s2, e, 0));
  OK(cu.cuLaunchHostFunc(s2, probe, &p));
  OK(cu.cuStreamSynchronize(s2));
  CHECK(p.saw_expected);
  float ms = 0;
  CHECK_CU(cu.cuEventElapsedTime(&ms, e, e), CUDA_ERROR_INVALID_HANDLE);  // timing disabled

  // Legacy default stream: work on it waits for earlier work of blocking stream s1.
  Probe q = p;
  q.watched = hptr(b);
  q.expect = 0x79;
  std::memset(pinned, 0x79, n);
  OK(cu.cuMemcpyHtoDAsync_v2(b, pinned, n, s1));
  OK(cu.cuLaunchHostFunc(nullptr, probe, &q));
  OK(cu.cuStreamSynchronize(nullptr));
  CHECK(q.saw_expected);

  // Destroying a stream lets its queued work finish first.
  std::memset(pinned, 0x7a, n);
  OK(cu.cuMemcpyHtoDAsync_v2(a, pinned, n, s3));
  OK(cu.cuStreamDestroy_v2(s3));
  CHECK(all_equal(hptr(a), n, 0x7a));

  CHECK(cu.pinpool_fake_cuda_set("copy_delay_ms", 0) == 0);
  OK(cu.cuEventDestroy_v2(e));
  OK(cu.cuStreamDestroy_v2(s1));
  OK(cu.cuStreamDestroy_v2(s2));
  OK(cu.cuMemFreeHost(pinned));
  OK(cu.cuMemFree_v2(a));
  OK(cu.cuMemFree_v2(b));
}

// Several threads allocating, copying and freeing at once (for the sanitizer builds).
void test_threads() {
  CUcontext ctx = nullptr;
  OK(cu.cuDevicePrimaryCtxRetain(&ctx, 0));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([ctx, t] {
      OK(cu.cuCtxSetCurrent(ctx));
      CUstream s = nullptr;
      CUevent e = nullptr;
      OK(cu.cuStreamCreate(&s, t % 2 ? CU_STREAM_NON_BLOCKING : 0));
      OK(cu.cuEventCreate(&e, 0));
      for (int i = 0; i < 50; ++i) {
        void* h = nullptr;
        CUdeviceptr d = 0;
        OK(cu.cuMemHostAlloc(&h, 1024, 0));
        OK(cu.cuMemAlloc_v2(&d, 1024));
        std::memset(h, i, 1024);
        // Blocking streams are ordered after the legacy default stream, so even threads may
        // put half their uploads there.
        OK(cu.cuMemcpyHtoDAsync_v2(d, h, 1024, (t % 2 == 0 && i % 2) ? nullptr : s));
        OK(cu.cuMemcpyDtoHAsync_v2(h, d, 1024, s));
        OK(cu.cuEventRecord(e, s));
        OK(cu.cuEventSynchronize(e));
        CHECK(all_equal(static_cast<unsigned char*>(h), 1024, static_cast<unsigned char>(i)));
        OK(cu.cuMemFree_v2(d));
        OK(cu.cuMemFreeHost(h));
      }
      OK(cu.cuEventDestroy_v2(e));
      OK(cu.cuStreamDestroy_v2(s));
    });
  }
  for (auto& th : threads) th.join();
  OK(cu.cuDevicePrimaryCtxRelease_v2(0));
}

void test_counters() {
  int n = cu.pinpool_fake_cuda_counters(nullptr, nullptr, 0);
  CHECK(n > 40);
  CHECK(counter("cuInit") == 3);  // the three calls of test_before_init
  CHECK(counter("cuMemHostAlloc") > 0);
  cu.pinpool_fake_cuda_reset_counters();
  CHECK(counter("cuInit") == 0);
  int v = 0;
  cu.cuDriverGetVersion(&v);
  cu.cuDriverGetVersion(nullptr);
  CHECK(counter("cuDriverGetVersion") == 2);  // failed calls count too
  // Everything the test allocated has been given back.
  CHECK(counter("bytes_host_alloc_live") == 0);
  CHECK(counter("bytes_managed_live") == 0);
  CHECK(counter("bytes_device_live") == 0);
  CHECK(counter("registered_ranges_live") == 0);
  CHECK(counter("streams_live") == 0);
  CHECK(counter("events_live") == 0);
}

// Leaves a stream that is never destroyed with a slow copy still queued, then returns from
// main: the process must exit promptly and cleanly, as it would with a real driver.
void leave_work_in_flight() {
  static unsigned char src[4096];
  CUstream s = nullptr;
  CUdeviceptr d = 0;
  OK(cu.cuStreamCreate(&s, 0));
  OK(cu.cuMemAlloc_v2(&d, sizeof src));
  CHECK(cu.pinpool_fake_cuda_set("copy_delay_ms", 200) == 0);
  OK(cu.cuMemcpyHtoDAsync_v2(d, src, sizeof src, s));
  OK(cu.cuLaunchHostFunc(
      nullptr, [](void*) {}, nullptr));
}

}  // namespace

// Issue 26: what the real driver refuses, the double refuses. Memory of one device copied on
// another device's stream, or between two devices' blocks, is a peer copy (9); a sticky error
// fails every later call but the error strings (1, 6); a code cuda.h lacks cannot be set (11).
void test_driver_rules() {
  CUcontext c0 = nullptr, c1 = nullptr;
  OK(cu.cuDevicePrimaryCtxRetain(&c0, 0));
  OK(cu.cuDevicePrimaryCtxRetain(&c1, 1));
  CUdeviceptr on0 = 0, on1 = 0;
  CUstream s0 = nullptr;
  OK(cu.cuCtxPushCurrent_v2(c1));
  OK(cu.cuMemAlloc_v2(&on1, 4096));
  OK(cu.cuCtxPopCurrent_v2(nullptr));
  OK(cu.cuCtxPushCurrent_v2(c0));
  OK(cu.cuMemAlloc_v2(&on0, 4096));
  OK(cu.cuStreamCreate(&s0, CU_STREAM_NON_BLOCKING));
  std::vector<unsigned char> host(4096, 0x33);
  CHECK_CU(cu.cuMemcpyDtoDAsync_v2(on0, on1, 4096, s0), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cu.cuMemcpyHtoDAsync_v2(on1, host.data(), 4096, s0), CUDA_ERROR_INVALID_VALUE);
  CHECK_CU(cu.cuMemcpyDtoHAsync_v2(host.data(), on1, 4096, s0), CUDA_ERROR_INVALID_VALUE);
  OK(cu.cuMemcpyHtoDAsync_v2(on0, host.data(), 4096, s0));  // its own device's memory: fine
  OK(cu.cuStreamSynchronize(s0));

  CHECK(cu.pinpool_fake_cuda_set("init_error", 35) ==
        -1);  // the runtime API's code, not a CUresult
  CHECK(cu.pinpool_fake_cuda_set("sticky_error", 35) == -1);
  CHECK(cu.pinpool_fake_cuda_set("sticky_error", CUDA_ERROR_ILLEGAL_ADDRESS) == 0);
  void* p = nullptr;
  CHECK_CU(cu.cuMemHostAlloc(&p, 4096, 0), CUDA_ERROR_ILLEGAL_ADDRESS);
  CHECK_CU(cu.cuStreamSynchronize(s0), CUDA_ERROR_ILLEGAL_ADDRESS);
  const char* name = nullptr;
  OK(cu.cuGetErrorName(CUDA_ERROR_ILLEGAL_ADDRESS, &name));
  CHECK(name != nullptr && std::strcmp(name, "CUDA_ERROR_ILLEGAL_ADDRESS") == 0);
  CHECK(cu.pinpool_fake_cuda_set("sticky_error", 0) == 0);

  OK(cu.cuStreamDestroy_v2(s0));
  OK(cu.cuMemFree_v2(on0));
  OK(cu.cuCtxPopCurrent_v2(nullptr));
  OK(cu.cuCtxPushCurrent_v2(c1));
  OK(cu.cuMemFree_v2(on1));
  OK(cu.cuCtxPopCurrent_v2(nullptr));
  OK(cu.cuDevicePrimaryCtxRelease_v2(0));
  OK(cu.cuDevicePrimaryCtxRelease_v2(1));
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s path/to/libpinpool-fakecuda.so\n", argv[0]);
    return 2;
  }
  setenv("PINPOOL_FAKE_CUDA_DEVICES", "2", 1);  // read once, at the first cuInit
  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    std::fprintf(stderr, "dlopen failed: %s\n", dlerror());
    return 2;
  }
#define LOAD(name, ret, params)                                 \
  cu.name = reinterpret_cast<ret(*) params>(dlsym(lib, #name)); \
  if (cu.name == nullptr) {                                     \
    std::fprintf(stderr, "missing symbol %s\n", #name);         \
    return 2;                                                   \
  }
  SYMBOLS(LOAD)
#undef LOAD

  test_before_init();
  test_devices_and_contexts();
  test_allocations();
  test_async_copies();
  test_stream_ordering();
  test_threads();
  test_counters();
  test_driver_rules();
  leave_work_in_flight();

  if (g_failures != 0) {
    std::fprintf(stderr, "fakecuda-selftest: %d check(s) failed\n", g_failures.load());
    return 1;
  }
  std::printf("fakecuda-selftest: all checks passed\n");
  return 0;
}
