// Adaptor: caps the bytes in use through it. Past the cap an allocation fails as
// out-of-memory with reason "limit" (so a fallback above it can move on).
//
// The count of bytes in use never wraps and never passes the cap: an allocation reserves its
// bytes with a compare-and-swap bounded by the cap, a free gives them back only when the
// upstream accepted it (a double or foreign free is refused there, not subtracted here), and
// only after the base has counted the free in the statistics, so `bytes` never reads more than
// the cap either (stats.bytes <= reserved <= cap at every moment). What a free gives back is
// the size the upstream reports for the block, which is what was reserved for it: a free that
// names another size in the block's class (a pool accepts it) moves the budget by nothing else.
#pragma once

#include <string>

#include "../core/handler.hpp"

namespace pinpool {

// Why the last limit refusal on this thread happened, for the error message (like
// lock_refusal(): the binding clears it before an allocation and reads it after a failure with
// reason "limit"). In a chain the innermost limit that refused writes it last.
struct LimitRefusal {
  bool set = false;
  std::string handler;        // the limit that refused
  uint64_t bytes = 0;         // what was asked, in bytes
  uint64_t bytes_in_use = 0;  // what the limit had handed out then, in bytes
  uint64_t cap_bytes = 0;     // its cap, in bytes
};
inline LimitRefusal& limit_refusal() {
  thread_local LimitRefusal refusal;
  return refusal;
}

class LimitAdaptor final : public Handler {
 public:
  LimitAdaptor(std::string name, pinpool_handler* upstream, uint64_t max_bytes)
      : Handler(std::move(name), "limit", Role::Adaptor),
        upstream_(upstream),
        max_bytes_(max_bytes) {
    stats_.capBytes.store(max_bytes, std::memory_order_relaxed);
    add_routes_through(upstream);  // its routes are its upstream's, behind it
  }

  pinpool_handler* upstream() const { return upstream_.get(); }
  size_t do_trim() override {
    Handler* h = Handler::from_abi(upstream_.get());
    return h ? h->trim() : 0;
  }

 private:
  void* do_allocate(size_t bytes, size_t alignment, pinpool_alloc_info* info) override {
    // Acquire: pairs with the release in after_deallocate, so the statistics of a free whose
    // bytes we take over are counted before ours.
    uint64_t used = used_.load(std::memory_order_relaxed);
    do {
      if (bytes > max_bytes_ || used > max_bytes_ - bytes) {
        fail(info, {PINPOOL_ERR_OUT_OF_MEMORY, Reason::Limit});
        LimitRefusal& why = limit_refusal();  // the string may allocate: allocate() catches
        why.handler = name();
        why.bytes = bytes;
        why.bytes_in_use = used;
        why.cap_bytes = max_bytes_;
        why.set = true;
        // Blocks waiting in thread caches in front hold some of the budget: their threads give
        // them back (each at its next call, or through its notice), so a later request fits.
        if (thread_cache_count() != 0 && thread_cached().bytes != 0) ask_thread_caches_to_return();
        return nullptr;
      }
    } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_acquire,
                                          std::memory_order_relaxed));
    void* p = upstream_alloc(upstream_.get(), bytes, alignment, info);
    if (!p) count_down(used_, bytes);  // never counted in the statistics: no order needed
    // The upstream's route is ours (the same index): a block cached in front still holds its
    // bytes of the budget, so the cap holds whatever the thread caches keep.
    int& route = alloc_route();
    if (route >= static_cast<int>(routes_.size())) route = -1;
    return p;
  }

  std::optional<size_t> do_deallocate(void* ptr, size_t bytes, size_t alignment) override {
    return upstream_free(upstream_.get(), ptr, bytes, alignment);
  }

  // The budget comes back here, after the statistics dropped (Handler::after_deallocate).
  void after_deallocate(size_t bytes) override {
    count_down(used_, bytes, std::memory_order_release);
  }

  UpstreamRef upstream_;
  const uint64_t max_bytes_;       // the cap, in bytes
  std::atomic<uint64_t> used_{0};  // bytes reserved through this adaptor, never above the cap
};

}  // namespace pinpool
