#include "shared_handler.hpp"

#include <errno.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>

#include "../../core/growth.hpp"
#include "../../cuda/cuda_driver.hpp"
#include "../../support/align.hpp"
#include "../cuda_result.hpp"

namespace pinpool {
namespace {

// The regions this process has open, by name: one handler each, so that all of this process's
// blocks are in one slot. Entries are weak: a handler takes itself out when it goes.
struct OpenRegions {
  std::mutex mutex;
  std::map<std::string, SharedHandler*> by_name;
};

OpenRegions& open_regions() {
  static auto* r = new OpenRegions();  // leaked: handlers may go during static destruction
  return *r;
}

// At exit the regions stay mapped (another thread may still be inside a block); a region that
// no other process has open loses its name, as it would had this process closed it last.
void at_exit() {
  OpenRegions& r = open_regions();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (auto& [name, h] : r.by_name) h->region().unlink_if_last();
}

bool same_secret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); i++) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

SharedHandler* SharedHandler::open(std::string name, const SharedOptions& o, int* error) {
  OpenRegions& r = open_regions();
  std::unique_lock<std::mutex> lock(r.mutex);
  static const bool exit_hook = std::atexit(at_exit) == 0;
  (void)exit_hook;
  auto it = r.by_name.find(o.region);
  if (it != r.by_name.end() && it->second->retain_if_alive()) {
    SharedHandler* h = it->second;
    if (o.bytes == 0 && same_secret(o.secret, h->region().secret())) return h;
    *error = o.bytes ? EEXIST : EACCES;
    lock.unlock();
    h->release();  // maybe the last reference: its destructor takes the registry's mutex
    return nullptr;
  }
  std::unique_ptr<shared::Region> region = o.bytes
                                               ? shared::Region::create(o.region, o.bytes, error)
                                               : shared::Region::open(o.region, o.secret, error);
  if (!region) return nullptr;
  auto* h = new SharedHandler(std::move(name), std::move(region), o);
  r.by_name[o.region] = h;  // replaces one that is going: it only erases itself
  return h;
}

SharedHandler::SharedHandler(std::string name, std::unique_ptr<shared::Region> region,
                             const SharedOptions& o)
    : Handler(std::move(name), "shared", Role::Leaf),
      region_(std::move(region)),
      device_(o.device) {
  routes_.push_back({this});  // its blocks are its own to cache, as a pool's are
  if (!o.page_lock) {
    page_locked_ = kOff;  // the caller's choice: it serves, unlocked
    return;
  }
  const size_t bytes = region_->data_bytes();
  // What the host loses: counted against the process's budget like any page-locking leaf.
  const LockCap rlimit = memlock_cap();  // where the kernel applies RLIMIT_MEMLOCK
  budget_taken_ = take_lock_budget(nullptr, bytes);
  if (!budget_taken_) return;  // lock_failure_: mlock, as a cap's refusal
  if (cuda::check_device(device_) == CUDA_SUCCESS) {
    CUresult rc = cuda::host_register(device_, region_->data(), bytes, CU_MEMHOSTREGISTER_PORTABLE);
    if (rc == CUDA_SUCCESS) {
      page_locked_ = kCuda;
      stats_.capBytes.store(bytes, std::memory_order_relaxed);
      return;
    }
    lock_failure_ = cuda_failure(rc);
  } else if (bytes <= rlimit.bytes &&
             lock_in_chunks(region_->data(), bytes, GrowthOptions{}.chunk_bytes) == 0) {
    page_locked_ = kMlock;
    stats_.capBytes.store(bytes, std::memory_order_relaxed);
    return;
  }
  give_back_lock_budget(nullptr, bytes);
  budget_taken_ = false;
}

SharedHandler::~SharedHandler() {
  {
    OpenRegions& r = open_regions();
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.by_name.find(region_->name());
    if (it != r.by_name.end() && it->second == this) r.by_name.erase(it);
  }
  // Unpinned before the region is unmapped: the driver would go on pinning an address the next
  // mmap may hand to someone else. (munmap unlocks mlocked pages.)
  if (page_locked_ == kCuda) cuda::host_unregister(device_, region_->data());
  if (budget_taken_) give_back_lock_budget(nullptr, region_->data_bytes());
  region_.reset();
}

void* SharedHandler::do_allocate(size_t bytes, size_t alignment, pinpool_alloc_info* info) {
  if (page_locked_ == kNone) {
    fail(info, lock_failure_);
    return nullptr;
  }
  // Aligned in this process: each maps the region at its own (page-aligned) address, so a
  // block adopted elsewhere is only sure to be page-aligned there.
  void* p = region_->allocate(bytes ? bytes : 1, alignment);
  if (!p) {
    fail(info, {PINPOOL_ERR_OUT_OF_MEMORY, Reason::OutOfMemory});
    return nullptr;
  }
  alloc_route() = 0;  // its one route: a thread cache may keep the block
  try {
    const size_t units = (std::max<size_t>(bytes, 1) + shared::kUnitBytes - 1) / shared::kUnitBytes;
    live_.add(p, {bytes, alignment, p, units * shared::kUnitBytes});
  } catch (...) {
    region_->free(p);
    throw;
  }
  return p;
}

std::optional<size_t> SharedHandler::do_deallocate(void* ptr, size_t bytes, size_t alignment) {
  LeafBlock block;
  if (!live_.take(ptr, bytes, alignment, &block)) return std::nullopt;
  region_->free(ptr);
  return block.bytes;
}

bool SharedHandler::hand_off(void* p, size_t bytes, size_t alignment, shared::Ticket* out) {
  LeafBlock block;
  if (!live_.take(p, bytes, alignment, &block)) return false;
  if (!region_->give(p, out)) {
    live_.put_back(p, block);
    return false;
  }
  // Open here until the process ends: a block in flight goes back to the region when its giver
  // closes it, and a handler JavaScript dropped would close it under a token still on its way.
  if (!keeps_itself_.exchange(true)) retain();
  count_departure(p, block.bytes);
  return true;
}

void* SharedHandler::take_over(const shared::Ticket& ticket, size_t bytes) {
  // Only a block of as many units as `bytes` takes: a size it cannot have been allocated with
  // adopts nothing.
  if (bytes > region_->data_bytes()) return nullptr;
  shared::Ticket t = ticket;
  t.units = (std::max<size_t>(bytes, 1) + shared::kUnitBytes - 1) / shared::kUnitBytes;
  size_t run = 0;
  void* p = region_->adopt(t, &run);
  if (!p) return nullptr;
  try {
    live_.add(p, {bytes, page_size(), p, run});
  } catch (...) {
    region_->free(p);
    throw;
  }
  count_arrival(p, bytes);
  return p;
}

}  // namespace pinpool
