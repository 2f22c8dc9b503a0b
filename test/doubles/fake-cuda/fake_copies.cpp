// Copies, prefetches and memory advice of the fake CUDA driver.
//
// A copy is validated when it is queued (a device-side range must lie wholly inside one live
// cuMemAlloc or cuMemAllocManaged block) and its bytes move only when the stream's worker runs
// it, after PINPOOL_FAKE_CUDA_COPY_DELAY_MS: code that reads a buffer before the copy's event
// has completed sees stale bytes, as it would on a GPU. Blocks a queued copy touches are pinned
// so a free waits for it instead of letting the worker write into released memory.
#include "fake_internal.h"

#include <cstring>
#include <vector>

namespace fake {
namespace {

// Without concurrent managed access the driver makes a copy touching managed memory
// host-synchronous: it returns once the copy is done.
bool synchronous_managed(const PinRef& a, const PinRef& b = nullptr) {
  if (knobs().concurrent_managed_access.load()) return false;
  return (a && a->block->kind == kManaged) || (b && b->block->kind == kManaged);
}

// A cuMemAlloc block is memory of one device: a copy on another device's stream, or between two
// devices' blocks, is a peer copy (cuMemcpyPeerAsync's job, and only with peer access), which the
// fake refuses as the driver does without it. Managed memory is reachable from every device.
bool on_another_device(const PinRef& device_side, const StreamRef& s) {
  int stream = stream_device(s.get());
  return device_side->block->kind == kDevice && stream >= 0 && device_side->block->device != stream;
}

CUresult submit(const StreamRef& s, Op op, bool wait) {
  uint64_t seq = 0;
  CUresult err = enqueue(s, std::move(op), &seq);
  if (err == CUDA_SUCCESS && wait) wait_for(s.get(), seq);
  return err;
}

// The host side of a copy. Pinned host memory (cuMemHostAlloc'd, registered, managed) is touched
// by the worker when the copy runs, like DMA. Pageable memory gets the driver's documented
// treatment: host-to-device waits for the stream, stages the bytes and returns; device-to-host
// returns once the copy has run. Either way the fake never touches a pageable buffer after the
// call has returned, which the caller is entitled to free.

CUresult htod(CUdeviceptr dst, const void* src, size_t n, CUstream h, bool sync) {
  StreamRef s = resolve_stream(h);
  if (!s) return CUDA_ERROR_INVALID_HANDLE;
  if (CUresult rc = check_stream_context(s.get())) return rc;
  if (n == 0) return CUDA_SUCCESS;
  if (src == nullptr) return CUDA_ERROR_INVALID_VALUE;
  auto host = reinterpret_cast<uintptr_t>(src);
  PinRef device = pin_range(dst, n, kDeviceSide);
  if (!device || find_block(host, 1, kDevice)) return CUDA_ERROR_INVALID_VALUE;
  if (on_another_device(device, s)) return CUDA_ERROR_INVALID_VALUE;
  PinRef pinned = pin_range(host, n, kPinnedHost);
  count_call(pinned ? kCopiesPinnedHost : kCopiesPageableHost);
  auto to = reinterpret_cast<void*>(static_cast<uintptr_t>(dst));
  if (pinned || sync) {
    return submit(
        s,
        [device, pinned, to, src, n] {
          copy_delay();
          if (context_lost()) return;
          dma_read(to, src, n, pinned ? pinned->block.get() : nullptr);
        },
        sync || synchronous_managed(device, pinned));
  }
  drain(s.get());
  auto bytes = static_cast<const unsigned char*>(src);
  auto staged = std::make_shared<std::vector<unsigned char>>(bytes, bytes + n);
  return submit(
      s,
      [device, staged, to, n] {
        copy_delay();
        if (context_lost()) return;  // the context failed while the copy waited: nothing lands
        std::memmove(to, staged->data(), n);
      },
      false);
}

CUresult dtoh(void* dst, CUdeviceptr src, size_t n, CUstream h, bool sync) {
  StreamRef s = resolve_stream(h);
  if (!s) return CUDA_ERROR_INVALID_HANDLE;
  if (CUresult rc = check_stream_context(s.get())) return rc;
  if (n == 0) return CUDA_SUCCESS;
  if (dst == nullptr) return CUDA_ERROR_INVALID_VALUE;
  auto host = reinterpret_cast<uintptr_t>(dst);
  PinRef device = pin_range(src, n, kDeviceSide);
  if (!device || find_block(host, 1, kDevice)) return CUDA_ERROR_INVALID_VALUE;
  if (on_another_device(device, s)) return CUDA_ERROR_INVALID_VALUE;
  PinRef pinned = pin_range(host, n, kPinnedHost);
  count_call(pinned ? kCopiesPinnedHost : kCopiesPageableHost);
  // Memory registered read-only is the device's to read, never to write (cuda.h,
  // CU_MEMHOSTREGISTER_READ_ONLY).
  if (pinned && pinned->block->read_only) return CUDA_ERROR_INVALID_VALUE;
  auto from = reinterpret_cast<const void*>(static_cast<uintptr_t>(src));
  return submit(
      s,
      [device, pinned, dst, from, n] {
        copy_delay();
        if (context_lost()) return;  // the context failed while the copy waited: nothing lands
        std::memmove(dst, from, n);
      },
      sync || !pinned || synchronous_managed(device, pinned));
}

CUresult dtod(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream h) {
  StreamRef s = resolve_stream(h);
  if (!s) return CUDA_ERROR_INVALID_HANDLE;
  if (CUresult rc = check_stream_context(s.get())) return rc;
  if (n == 0) return CUDA_SUCCESS;
  PinRef to = pin_range(dst, n, kDeviceSide);
  PinRef from = pin_range(src, n, kDeviceSide);
  if (!to || !from) return CUDA_ERROR_INVALID_VALUE;
  if (on_another_device(to, s) || on_another_device(from, s)) return CUDA_ERROR_INVALID_VALUE;
  if (to->block->kind == kDevice && from->block->kind == kDevice &&
      to->block->device != from->block->device)
    return CUDA_ERROR_INVALID_VALUE;
  auto to_p = reinterpret_cast<void*>(static_cast<uintptr_t>(dst));
  auto from_p = reinterpret_cast<const void*>(static_cast<uintptr_t>(src));
  return submit(
      s,
      [to, from, to_p, from_p, n] {
        copy_delay();
        if (context_lost()) return;  // the context failed while the copy waited: nothing lands
        std::memmove(to_p, from_p, n);
      },
      synchronous_managed(to, from));
}

// An ordinal no device ever has, standing for a negative one (check_location rejects it).
constexpr int kBadDevice = kMaxDevices;

// A pre-12.2 CUdevice argument as a location.
int location_of(CUdevice dev) {
  if (dev == CU_DEVICE_CPU) return kLocationCpu;
  return dev < 0 ? kBadDevice : dev;
}

// Enum arguments come from C callers and may hold any int; reading a value outside the enum's
// range through the enum type is undefined behaviour (UBSan flags it), so read the bytes.
template <class Enum>
int raw(const Enum& e) {
  static_assert(sizeof(Enum) == sizeof(int), "enums are int-sized in the driver ABI");
  int v;
  std::memcpy(&v, &e, sizeof v);
  return v;
}

// Where a prefetch or advice points: a device ordinal, kLocationCpu, or kLocationNone for a
// location type the fake does not model.
int location_of(const CUmemLocation& loc) {
  int type = raw(loc.type);
  if (type == CU_MEM_LOCATION_TYPE_DEVICE) return loc.id < 0 ? kBadDevice : loc.id;
  if (type == CU_MEM_LOCATION_TYPE_HOST) return kLocationCpu;
  return kLocationNone;
}

CUresult check_location(int location) {
  if (location == kLocationNone) return CUDA_ERROR_INVALID_VALUE;
  if (location != kLocationCpu && !valid_device(location)) return CUDA_ERROR_INVALID_DEVICE;
  return CUDA_SUCCESS;
}

CUresult prefetch(CUdeviceptr p, size_t n, int location, CUstream h) {
  if (CUresult err = check_location(location)) return err;
  // A device target needs concurrent managed access (cuda.h, cuMemPrefetchAsync).
  if (location >= 0 && !knobs().concurrent_managed_access.load()) return CUDA_ERROR_INVALID_DEVICE;
  StreamRef s = resolve_stream(h);
  if (!s) return CUDA_ERROR_INVALID_HANDLE;
  if (CUresult rc = check_stream_context(s.get())) return rc;
  PinRef managed = pin_range(p, n, kManaged);
  if (!managed) return CUDA_ERROR_INVALID_VALUE;
  // Migration takes as long as a copy, and is recorded only once it has happened.
  return submit(
      s,
      [managed, location] {
        copy_delay();
        if (context_lost()) return;
        managed->block->last_prefetch.store(location);
      },
      false);
}

CUresult advise(CUdeviceptr p, size_t n, int advice, int location) {
  std::shared_ptr<Block> b = find_block(p, n, kManaged);
  if (!b || advice < CU_MEM_ADVISE_SET_READ_MOSTLY || advice > CU_MEM_ADVISE_UNSET_ACCESSED_BY)
    return CUDA_ERROR_INVALID_VALUE;
  // Read-mostly ignores the location, as the driver does; the others need a real one.
  if (advice > CU_MEM_ADVISE_UNSET_READ_MOSTLY)
    if (CUresult err = check_location(location)) return err;
  // Only used by the accessed-by advice, whose location check_location has validated.
  unsigned long long bit = location >= kLocationCpu ? 1ULL << (location + 1) : 0;  // bit 0: CPU
  switch (advice) {
    case CU_MEM_ADVISE_SET_READ_MOSTLY:
      b->read_mostly = true;
      break;
    case CU_MEM_ADVISE_UNSET_READ_MOSTLY:
      b->read_mostly = false;
      break;
    case CU_MEM_ADVISE_SET_PREFERRED_LOCATION:
      b->preferred_location = location;
      break;
    case CU_MEM_ADVISE_UNSET_PREFERRED_LOCATION:
      b->preferred_location = kLocationNone;
      break;
    case CU_MEM_ADVISE_SET_ACCESSED_BY:
      b->accessed_by.fetch_or(bit);
      break;
    default:
      b->accessed_by.fetch_and(~bit);
      break;
  }
  return CUDA_SUCCESS;
}

}  // namespace
}  // namespace fake

using namespace fake;

FAKE_API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t bytes, CUstream s) {
  return entry(k_cuMemcpyHtoDAsync_v2, true, [&] { return htod(dst, src, bytes, s, false); });
}

FAKE_API CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t bytes, CUstream s) {
  return entry(k_cuMemcpyDtoHAsync_v2, true, [&] { return dtoh(dst, src, bytes, s, false); });
}

FAKE_API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream s) {
  return entry(k_cuMemcpyDtoDAsync_v2, true, [&] { return dtod(dst, src, bytes, s); });
}

// The synchronous copies run on the default stream, so they are ordered after earlier work of
// blocking streams, and return once the bytes have landed.
FAKE_API CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t bytes) {
  return entry(k_cuMemcpyHtoD_v2, true, [&] { return htod(dst, src, bytes, nullptr, true); });
}

FAKE_API CUresult cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t bytes) {
  return entry(k_cuMemcpyDtoH_v2, true, [&] { return dtoh(dst, src, bytes, nullptr, true); });
}

FAKE_API CUresult cuMemPrefetchAsync(CUdeviceptr p, size_t bytes, CUdevice dst, CUstream s) {
  return entry(k_cuMemPrefetchAsync, true, [&] { return prefetch(p, bytes, location_of(dst), s); });
}

FAKE_API CUresult cuMemPrefetchAsync_v2(CUdeviceptr p, size_t bytes, CUmemLocation location,
                                        unsigned int flags, CUstream s) {
  return entry(k_cuMemPrefetchAsync_v2, true, [&]() -> CUresult {
    if (flags != 0) return CUDA_ERROR_INVALID_VALUE;  // reserved, must be 0
    return prefetch(p, bytes, location_of(location), s);
  });
}

FAKE_API CUresult cuMemAdvise(CUdeviceptr p, size_t bytes, CUmem_advise advice, CUdevice device) {
  return entry(k_cuMemAdvise, true,
               [&] { return advise(p, bytes, raw(advice), location_of(device)); });
}

FAKE_API CUresult cuMemAdvise_v2(CUdeviceptr p, size_t bytes, CUmem_advise advice,
                                 CUmemLocation location) {
  return entry(k_cuMemAdvise_v2, true,
               [&] { return advise(p, bytes, raw(advice), location_of(location)); });
}

// Test control: what prefetch and advice recorded for the managed allocation containing p.
// Locations are a device ordinal, -1 for the CPU or -2 for none. Returns 0, or -1 when p is not
// inside a live managed allocation.
FAKE_API int pinpool_fake_cuda_managed_state(CUdeviceptr p, int* last_prefetch,
                                             int* preferred_location, int* read_mostly,
                                             unsigned long long* accessed_by) {
  std::shared_ptr<Block> b = find_block(p, 1, kManaged);
  if (!b) return -1;
  if (last_prefetch) *last_prefetch = b->last_prefetch.load();
  if (preferred_location) *preferred_location = b->preferred_location.load();
  if (read_mostly) *read_mostly = b->read_mostly.load() ? 1 : 0;
  if (accessed_by) *accessed_by = b->accessed_by.load();
  return 0;
}
