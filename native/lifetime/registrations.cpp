#include "registrations.hpp"

#include <cstdint>
#include <map>
#include <mutex>

#include "../core/handler.hpp"

namespace pinpool::registrations {

class Registration {
 public:
  Registration(void* ptr, size_t bytes, int device, bool portable, const void* buffer, Fence* lease)
      : ptr(ptr), bytes(bytes), device(device), portable(portable), buffer(buffer), lease(lease) {}
  ~Registration() {
    if (lease) lease->release();
  }

  void* const ptr;
  const size_t bytes;
  const int device;
  const bool portable;  // page-locked for every context, not only the device's
  const void* const buffer;
  Fence* const lease;
  // Guarded by the registry's mutex:
  int references = 1;   // the owner's (until end() or forget()) and one per use
  bool ending = false;  // end() was called: the last reference unregisters
  bool listed = true;   // lookups find it
};

namespace {

struct Registry {
  std::mutex mutex;
  std::map<uintptr_t, Registration*> by_start;  // registrations never overlap (the driver's rule)
};

Registry& registry() {
  static auto* r = new Registry();  // leaked: copies may end during static destruction
  return *r;
}

uintptr_t address(const void* p) { return reinterpret_cast<uintptr_t>(p); }

// Takes `r` out of the lookups. Registry lock held.
void unlist(Registry& reg, Registration* r) {
  if (!r->listed) return;
  r->listed = false;
  reg.by_start.erase(address(r->ptr));
}

// The last reference is gone: the driver unregisters it if end() asked, and then the block
// under it (pinpool's memory) may be reused. No lock held.
CUresult retire(Registration* r) {
  CUresult rc = CUDA_SUCCESS;
  if (r->ending) {
    rc = cuda::host_unregister(r->device, r->ptr);
    if (r->lease) r->lease->signal();
  } else if (r->lease) {
    r->lease->abandon();
  }
  const bool leased = r->lease != nullptr;
  delete r;
  if (leased) Handler::reclaim_all();  // a block freed under the lease goes back now
  return rc;
}

// Drops one reference; retires `r` when it was the last.
CUresult drop(Registration* r) {
  {
    std::lock_guard<std::mutex> lock(registry().mutex);
    if (--r->references > 0) return CUDA_SUCCESS;
  }
  return retire(r);
}

}  // namespace

Registration* add(void* ptr, size_t bytes, int device, bool portable, const void* buffer,
                  Fence* lease) {
  auto* r = new Registration(ptr, bytes, device, portable, buffer, lease);
  std::lock_guard<std::mutex> lock(registry().mutex);
  registry().by_start[address(ptr)] = r;
  return r;
}

Registration* use(const void* p, size_t bytes, const void* buffer, int device) {
  Registry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mutex);
  auto it = reg.by_start.upper_bound(address(p));
  if (it == reg.by_start.begin()) return nullptr;
  Registration* r = (--it)->second;
  const uintptr_t offset = address(p) - address(r->ptr);
  if (r->buffer != buffer || offset > r->bytes || bytes > r->bytes - offset) return nullptr;
  if (!r->portable && r->device != device) return nullptr;  // pageable to that device's context
  ++r->references;
  return r;
}

void end_use(Registration* r) { drop(r); }

CUresult end(Registration* r) {
  {
    std::lock_guard<std::mutex> lock(registry().mutex);
    unlist(registry(), r);
    r->ending = true;
  }
  return drop(r);
}

void forget(Registration* r) {
  {
    std::lock_guard<std::mutex> lock(registry().mutex);
    unlist(registry(), r);
  }
  drop(r);
}

}  // namespace pinpool::registrations
