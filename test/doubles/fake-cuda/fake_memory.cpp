// Allocations, host registration and pointer queries of the fake CUDA driver.
//
// Every kind of memory is host memory: pinned (cuMemHostAlloc), managed and "device" memory are
// page-aligned posix_memalign blocks whose address doubles as the CUdeviceptr, so copies are
// memcpy. Every live block and registered range is tracked in one address-ordered map, so
// misuse (double free, unknown pointer, range overrun) is reported rather than crashing.
#include "fake_internal.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <string>

namespace fake {
namespace {

constexpr size_t kPageSize = 4096;

// Values of CUpointer_attribute and CUmemorytype (cuda.h) not in cuda_types.h.
constexpr int kAttrContext = 1;            // CU_POINTER_ATTRIBUTE_CONTEXT
constexpr int kAttrMemoryType = 2;         // CU_POINTER_ATTRIBUTE_MEMORY_TYPE
constexpr int kAttrDeviceOrdinal = 9;      // CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL
constexpr unsigned kMemoryTypeHost = 1;    // CU_MEMORYTYPE_HOST
constexpr unsigned kMemoryTypeDevice = 2;  // CU_MEMORYTYPE_DEVICE (managed memory reports this too)

struct Registry {
  std::mutex m;
  std::condition_variable unpinned;                    // signalled whenever a Pin goes away
  std::map<uintptr_t, std::shared_ptr<Block>> blocks;  // by base address; ranges never overlap
  unsigned long long used[kMaxDevices] = {};           // bytes counted against each device
};

// Leaked on purpose: workers may still release pins while the process runs its static
// destructors, so the registry must never be destroyed.
Registry& reg() {
  static Registry* r = new Registry;
  return *r;
}

// The block containing [p, p + n) whose kind is in kinds. Caller holds reg().m.
std::shared_ptr<Block> find_locked(uintptr_t p, size_t n, unsigned kinds) {
  Registry& r = reg();
  auto it = r.blocks.upper_bound(p);  // first block starting after p
  if (it == r.blocks.begin()) return nullptr;
  const std::shared_ptr<Block>& b = std::prev(it)->second;
  uintptr_t offset = p - b->base;  // b->base <= p by construction
  if (!(b->kind & kinds) || offset >= b->size || n > b->size - offset) return nullptr;
  return b;
}

// Any block overlapping [p, p + n). Caller holds reg().m and has checked p + n does not wrap.
const Block* overlap_locked(uintptr_t p, size_t n) {
  Registry& r = reg();
  auto it = r.blocks.lower_bound(p);  // first block starting at or after p
  if (it != r.blocks.end() && it->first < p + n) return it->second.get();
  if (it != r.blocks.begin()) {
    const Block* prev = std::prev(it)->second.get();
    if (prev->base + prev->size > p) return prev;
  }
  return nullptr;
}

void gauge_for(const Block& b, long long sign) {
  switch (b.kind) {
    case kHostAlloc:
      gauge_add(kBytesHostAllocLive, sign * static_cast<long long>(b.size));
      break;
    case kManaged:
      gauge_add(kBytesManagedLive, sign * static_cast<long long>(b.size));
      break;
    case kDevice:
      gauge_add(kBytesDeviceLive, sign * static_cast<long long>(b.size));
      break;
    case kRegistered:
      gauge_add(kRegisteredRangesLive, sign);
      gauge_add(kFileBytesPinnedWritable, sign * static_cast<long long>(b.file_bytes_writable));
      break;
  }
}

// The file mapping holding address p, as /proc/self/maps lists it.
struct FileMapping {
  std::string path;
  bool is_private = false;
  bool writable = false;
  long long offset = 0;  // the file offset of p
};

// False for anonymous memory, or when the maps cannot be read.
bool file_mapping_at(uintptr_t p, FileMapping* out) {
  FILE* maps = std::fopen("/proc/self/maps", "re");
  if (maps == nullptr) return false;
  char line[4096];
  bool found = false;
  while (std::fgets(line, sizeof line, maps) != nullptr) {
    unsigned long start = 0, end = 0, offset = 0, inode = 0;
    char perms[5] = {0};
    int path_at = 0;  // "start-end perms offset dev inode   path"
    if (std::sscanf(line, "%lx-%lx %4s %lx %*s %lu %n", &start, &end, perms, &offset, &inode,
                    &path_at) < 5 ||
        p < start || p >= end)
      continue;
    if (inode != 0 && path_at > 0 && line[path_at] == '/') {
      out->path.assign(line + path_at, std::strcspn(line + path_at, "\n"));
      out->is_private = perms[3] == 'p';
      out->writable = perms[1] == 'w';
      out->offset = static_cast<long long>(offset + (p - start));
      found = true;
    }
    break;
  }
  std::fclose(maps);
  return found;
}

// Whether the page at `page` is the process's own anonymous copy (written since it was mapped
// from a file: copy-on-write), from /proc/self/pagemap (bit 63 present, bit 61 file page).
bool anonymous_page(int pagemap, uintptr_t page) {
  uint64_t entry = 0;
  if (pread(pagemap, &entry, sizeof entry, static_cast<off_t>(page / kPageSize * sizeof entry)) !=
      static_cast<ssize_t>(sizeof entry))
    return false;
  return (entry >> 63 & 1) && !(entry >> 61 & 1);
}

// Gives back what reserve() took. Caller holds reg().m.
void unreserve_locked(int dev, size_t bytes) {
  reg().used[dev] -= bytes;
  knobs().alloc_successes.fetch_sub(1);
}

// Counts an allocation against fail_after and the device's capacity, or refuses it. The success
// is counted up front (and given back on failure) so concurrent callers cannot both slip past
// fail_after. Caller holds reg().m.
CUresult reserve_locked(int dev, size_t bytes) {
  Knobs& k = knobs();
  long long fail_after = k.fail_after.load();
  if (fail_after >= 0 && k.alloc_successes.load() >= fail_after) return CUDA_ERROR_OUT_OF_MEMORY;
  long long cap_signed = k.memory_bytes.load();
  unsigned long long cap = cap_signed < 0 ? 0 : static_cast<unsigned long long>(cap_signed);
  unsigned long long& used = reg().used[dev];
  if (bytes > cap || used > cap - bytes) return CUDA_ERROR_OUT_OF_MEMORY;
  used += bytes;
  k.alloc_successes.fetch_add(1);
  return CUDA_SUCCESS;
}

CUresult allocate(Kind kind, size_t bytes, uintptr_t* out) {
  if (bytes == 0) return CUDA_ERROR_INVALID_VALUE;
  int dev = current_device();
  if (dev < 0) return CUDA_ERROR_INVALID_CONTEXT;
  auto b = std::make_shared<Block>();  // before any side effect, so a throw leaves nothing behind
  Registry& r = reg();
  {
    std::lock_guard<std::mutex> lk(r.m);
    if (CUresult err = reserve_locked(dev, bytes)) return err;
  }
  void* mem = nullptr;
  if (posix_memalign(&mem, kPageSize, bytes) != 0) {
    std::lock_guard<std::mutex> lk(r.m);
    unreserve_locked(dev, bytes);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  b->base = reinterpret_cast<uintptr_t>(mem);
  b->size = bytes;
  b->kind = kind;
  b->device = dev;
  b->ctx = current_context();
  b->owned = mem;
  try {
    std::lock_guard<std::mutex> lk(r.m);
    r.blocks.emplace(b->base, b);
  } catch (...) {
    std::free(mem);
    std::lock_guard<std::mutex> lk(r.m);
    unreserve_locked(dev, bytes);
    throw;
  }
  gauge_for(*b, +1);
  *out = b->base;
  return CUDA_SUCCESS;
}

// Frees (or unregisters) the block starting exactly at p if its kind is in kinds.
CUresult release(uintptr_t p, unsigned kinds, CUresult not_found) {
  Registry& r = reg();
  std::shared_ptr<Block> b;
  {
    std::unique_lock<std::mutex> lk(r.m);
    auto it = r.blocks.find(p);
    if (it == r.blocks.end() || !(it->second->kind & kinds)) return not_found;
    b = std::move(it->second);
    r.blocks.erase(it);  // from here no new operation can pin it; a second free is reported
    // CUDA's frees synchronize implicitly: operations already queued on the block run first,
    // so a worker never copies into memory that has been handed back.
    r.unpinned.wait(lk, [&] { return b->pending == 0; });
    if (b->kind != kRegistered) r.used[b->device] -= b->size;
  }
  std::free(b->owned);
  if (b->file_fd >= 0) close(b->file_fd);
  gauge_for(*b, -1);
  return CUDA_SUCCESS;
}

}  // namespace

void dma_read(void* to, const void* from, size_t n, const Block* source) {
  std::memmove(to, from, n);
  if (source == nullptr || source->file_fd < 0 || n == 0) return;
  int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (pagemap < 0) return;
  const auto begin = reinterpret_cast<uintptr_t>(from);
  for (uintptr_t page = begin / kPageSize * kPageSize; page < begin + n; page += kPageSize) {
    if (!anonymous_page(pagemap, page)) continue;
    const uintptr_t first = std::max(page, begin);
    const size_t length = std::min(page + kPageSize, begin + n) - first;
    // The device reads the page it pinned: the file's, not the copy the process wrote.
    if (pread(source->file_fd, static_cast<char*>(to) + (first - begin), length,
              static_cast<off_t>(source->file_offset + (first - source->base))) < 0)
      break;
  }
  close(pagemap);
}

Pin::Pin(std::shared_ptr<Block> b) : block(std::move(b)) { ++block->pending; }

Pin::~Pin() {
  Registry& r = reg();
  std::lock_guard<std::mutex> lk(r.m);
  --block->pending;
  r.unpinned.notify_all();
}

PinRef pin_range(uintptr_t p, size_t n, unsigned kinds) {
  if (n == 0) return nullptr;
  std::lock_guard<std::mutex> lk(reg().m);
  std::shared_ptr<Block> b = find_locked(p, n, kinds);
  return b ? std::make_shared<Pin>(std::move(b)) : nullptr;
}

std::shared_ptr<Block> find_block(uintptr_t p, size_t n, unsigned kinds) {
  if (n == 0) return nullptr;
  std::lock_guard<std::mutex> lk(reg().m);
  return find_locked(p, n, kinds);
}

}  // namespace fake

using namespace fake;

FAKE_API CUresult cuMemHostAlloc(void** pp, size_t bytes, unsigned int flags) {
  return entry(k_cuMemHostAlloc, true, [&]() -> CUresult {
    const unsigned allowed =
        CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_WRITECOMBINED;
    if (pp == nullptr || bytes == 0 || (flags & ~allowed) != 0) return CUDA_ERROR_INVALID_VALUE;
    uintptr_t p = 0;
    CUresult err = allocate(kHostAlloc, bytes, &p);
    if (err == CUDA_SUCCESS) *pp = reinterpret_cast<void*>(p);
    return err;
  });
}

FAKE_API CUresult cuMemFreeHost(void* p) {
  return entry(k_cuMemFreeHost, true, [&]() -> CUresult {
    return release(reinterpret_cast<uintptr_t>(p), kHostAlloc, CUDA_ERROR_INVALID_VALUE);
  });
}

FAKE_API CUresult cuMemAllocManaged(CUdeviceptr* dptr, size_t bytes, unsigned int flags) {
  return entry(k_cuMemAllocManaged, true, [&]() -> CUresult {
    if (dptr == nullptr || bytes == 0) return CUDA_ERROR_INVALID_VALUE;
    if (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST)
      return CUDA_ERROR_INVALID_VALUE;
    if (!knobs().managed_memory.load()) return CUDA_ERROR_NOT_SUPPORTED;
    uintptr_t p = 0;
    CUresult err = allocate(kManaged, bytes, &p);
    if (err == CUDA_SUCCESS) *dptr = p;
    return err;
  });
}

FAKE_API CUresult cuMemAlloc_v2(CUdeviceptr* dptr, size_t bytes) {
  return entry(k_cuMemAlloc_v2, true, [&]() -> CUresult {
    if (dptr == nullptr || bytes == 0) return CUDA_ERROR_INVALID_VALUE;
    uintptr_t p = 0;
    CUresult err = allocate(kDevice, bytes, &p);
    if (err == CUDA_SUCCESS) *dptr = p;
    return err;
  });
}

FAKE_API CUresult cuMemFree_v2(CUdeviceptr p) {
  return entry(k_cuMemFree_v2, true, [&]() -> CUresult {
    return release(static_cast<uintptr_t>(p), kDeviceSide, CUDA_ERROR_INVALID_VALUE);
  });
}

FAKE_API CUresult cuMemHostRegister_v2(void* p, size_t bytes, unsigned int flags) {
  return entry(k_cuMemHostRegister_v2, true, [&]() -> CUresult {
    const unsigned allowed =
        CU_MEMHOSTREGISTER_PORTABLE | CU_MEMHOSTREGISTER_DEVICEMAP | CU_MEMHOSTREGISTER_READ_ONLY;
    auto base = reinterpret_cast<uintptr_t>(p);
    if (p == nullptr || bytes == 0 || (flags & ~allowed) != 0) return CUDA_ERROR_INVALID_VALUE;
    if (bytes > UINTPTR_MAX - base) return CUDA_ERROR_INVALID_VALUE;  // range wraps around
    int dev = current_device();
    if (dev < 0) return CUDA_ERROR_INVALID_CONTEXT;
    const bool read_only = (flags & CU_MEMHOSTREGISTER_READ_ONLY) != 0;
    if (read_only && !knobs().read_only_host_register.load()) return CUDA_ERROR_NOT_SUPPORTED;
    auto b = std::make_shared<Block>();
    b->base = base;
    b->size = bytes;
    b->kind = kRegistered;
    b->device = dev;
    b->ctx = current_context();
    b->read_only = read_only;
    FileMapping file;
    if (file_mapping_at(base, &file)) {
      if (!read_only) {
        b->file_bytes_writable = bytes;
      } else if (file.is_private && knobs().unshare_read_only_pins.load() && file.writable) {
        // The kernel's unsharing: every page becomes the process's own copy, and the pin holds
        // those, so the device sees later writes.
        auto* page = reinterpret_cast<volatile char*>(base);
        for (size_t at = 0; at < bytes; at += kPageSize) page[at] = page[at];
      } else if (file.is_private) {
        b->file_fd = open(file.path.c_str(), O_RDONLY | O_CLOEXEC);
        b->file_offset = file.offset;
      }
    }
    {
      std::lock_guard<std::mutex> lk(reg().m);
      if (const Block* other = overlap_locked(base, bytes)) {
        if (b->file_fd >= 0) close(b->file_fd);
        // Pinned host memory is already "registered"; managed or device memory is not the
        // caller's to register at all.
        return (other->kind & (kHostAlloc | kRegistered))
                   ? CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED
                   : CUDA_ERROR_INVALID_VALUE;
      }
      reg().blocks.emplace(base, b);
    }
    gauge_for(*b, +1);
    return CUDA_SUCCESS;
  });
}

FAKE_API CUresult cuMemHostUnregister(void* p) {
  return entry(k_cuMemHostUnregister, true, [&]() -> CUresult {
    long long left = knobs().fail_unregister.load();
    while (left > 0 && !knobs().fail_unregister.compare_exchange_weak(left, left - 1)) {}
    if (left > 0) return CUDA_ERROR_UNKNOWN;
    return release(reinterpret_cast<uintptr_t>(p), kRegistered,
                   CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED);
  });
}

FAKE_API CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr* d, void* p, unsigned int flags) {
  return entry(k_cuMemHostGetDevicePointer_v2, true, [&]() -> CUresult {
    if (d == nullptr || p == nullptr || flags != 0)
      return CUDA_ERROR_INVALID_VALUE;  // flags: must be 0
    if (!find_block(reinterpret_cast<uintptr_t>(p), 1, kHostAlloc | kRegistered))
      return CUDA_ERROR_INVALID_VALUE;
    *d = reinterpret_cast<uintptr_t>(p);  // unified addressing: the device sees the same address
    return CUDA_SUCCESS;
  });
}

FAKE_API CUresult cuPointerGetAttribute(void* data, int attribute, CUdeviceptr ptr) {
  return entry(k_cuPointerGetAttribute, true, [&]() -> CUresult {
    if (data == nullptr) return CUDA_ERROR_INVALID_VALUE;
    if (attribute != kAttrContext && attribute != kAttrMemoryType &&
        attribute != kAttrDeviceOrdinal)
      return CUDA_ERROR_INVALID_VALUE;
    std::shared_ptr<Block> b = find_block(static_cast<uintptr_t>(ptr), 1, ~0u);
    if (!b) return CUDA_ERROR_INVALID_VALUE;
    if (attribute == kAttrContext)
      *static_cast<const void**>(data) = b->ctx;
    else if (attribute == kAttrMemoryType)
      *static_cast<unsigned*>(data) = (b->kind & kDeviceSide) ? kMemoryTypeDevice : kMemoryTypeHost;
    else
      *static_cast<int*>(data) = b->device;
    return CUDA_SUCCESS;
  });
}
