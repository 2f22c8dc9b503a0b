// Adaptor: routes a request to `primary` when its size is in [min_bytes, max_bytes] and to
// `secondary` otherwise; when the primary is out of memory or unavailable, the secondary gets
// it. Any other error (a CUDA fault, a bad argument) propagates: hiding it would hide a bug.
// Every move to the secondary is counted with its reason; a primary that said "unavailable"
// (never on this host) is counted once and skipped from then on.
//
// Freeing must find the handler that served a block. By size it is decided; within the primary's
// range it is not, since the secondary may have stepped in. The common cases are answered by two
// counters without a lock (nothing from the secondary in range, or nothing live from the
// primary); only while both have live blocks in range does a free consult a locked set.
//
// A free goes to the one side that can have served it, and that side decides whether the block
// is its own (a pool knows its blocks, a leaf its live allocations): a foreign pointer, a second
// free or a wrong size is refused there, and the counters and the set change only for a free
// the side accepted, so they never drift or wrap.
#pragma once

#include <mutex>
#include <unordered_set>

#include "../core/fallback_log.hpp"
#include "../core/handler.hpp"

namespace pinpool {

class FallbackAdaptor final : public Handler {
 public:
  FallbackAdaptor(std::string name, pinpool_handler* primary, pinpool_handler* secondary,
                  uint64_t min_bytes, uint64_t max_bytes)
      : Handler(std::move(name), "fallback", Role::Adaptor),
        primary_(primary),
        secondary_(secondary),
        min_bytes_(min_bytes),
        max_bytes_(max_bytes) {
    primary_routes_ = add_routes_through(primary);
    secondary_routes_ = add_routes_through(secondary);
  }

  pinpool_handler* primary() const { return primary_.get(); }
  pinpool_handler* secondary() const { return secondary_.get(); }

  size_t do_trim() override {
    size_t released = 0;
    for (pinpool_handler* h : {primary_.get(), secondary_.get()})
      if (Handler* ours = Handler::from_abi(h)) released += ours->trim();
    return released;
  }

 private:
  bool in_range(size_t bytes) const { return bytes >= min_bytes_ && bytes <= max_bytes_; }

  void* do_allocate(size_t bytes, size_t alignment, pinpool_alloc_info* info) override {
    Reason why = Reason::Size;
    bool skipped = false;  // the primary is known unavailable: not a move, a route
    if (in_range(bytes)) {
      skipped = primary_unavailable_.load(std::memory_order_relaxed);
      if (!skipped) {
        void* p = upstream_alloc(primary_.get(), bytes, alignment, info);
        if (p) {
          primary_live_.fetch_add(1, std::memory_order_relaxed);
          int& route = alloc_route();  // the primary's routes come first in ours
          if (route >= static_cast<int>(primary_routes_)) route = -1;
          return p;
        }
        if (info->code == PINPOOL_ERR_UNAVAILABLE) {
          // "Unavailable" means never on this host (no driver, no such device): stop asking.
          primary_unavailable_.store(true, std::memory_order_relaxed);
        } else if (info->code != PINPOOL_ERR_OUT_OF_MEMORY) {
          return nullptr;
        }
      }
      why = primary_unavailable_.load(std::memory_order_relaxed) ? Reason::Unavailable
                                                                 : Reason::OutOfMemory;
    }
    // An unavailable primary is counted (and traced) once, when it says so: on a host without
    // CUDA every allocation of the default chain would otherwise count as a fallback.
    if (!skipped) {
      Stats::bump(stats_.fallbacks[static_cast<int>(why)]);
      fallback_log().note({name().c_str(), primary_.name(), secondary_.name(), why});
    }
    *info = pinpool_alloc_info{};
    void* p = upstream_alloc(secondary_.get(), bytes, alignment, info);
    if (p && why != Reason::Size) note_secondary_in_range(p);
    int& route = alloc_route();  // the secondary's routes follow the primary's in ours
    route = p && route >= 0 && route < static_cast<int>(secondary_routes_)
                ? static_cast<int>(primary_routes_) + route
                : -1;
    return p;
  }

  // Returns what the side that took the block reports as its size.
  std::optional<size_t> do_deallocate(void* ptr, size_t bytes, size_t alignment) override {
    if (!in_range(bytes)) return upstream_free(secondary_.get(), ptr, bytes, alignment);
    bool listed = false;  // taken out of secondary_in_range_
    if (served_by_secondary(ptr, &listed)) {
      std::optional<size_t> freed = upstream_free(secondary_.get(), ptr, bytes, alignment);
      if (!freed) {
        if (listed) relist(ptr);  // still the secondary's: the right free must find it again
        return std::nullopt;
      }
      count_down(secondary_in_range_live_);
      return freed;
    }
    std::optional<size_t> freed = upstream_free(primary_.get(), ptr, bytes, alignment);
    if (freed) count_down(primary_live_);
    return freed;
  }

  void note_secondary_in_range(void* p) {
    secondary_in_range_live_.fetch_add(1, std::memory_order_relaxed);
    // With the primary permanently unavailable and holding nothing, the counters alone decide
    // every later free: no set needed.
    if (primary_unavailable_.load(std::memory_order_relaxed) &&
        primary_live_.load(std::memory_order_relaxed) == 0)
      return;
    std::lock_guard<std::mutex> lock(set_mutex_);
    secondary_in_range_.insert(p);
    set_size_.store(secondary_in_range_.size(), std::memory_order_relaxed);
  }

  // True when `p` (a block in the primary's range) can only be the secondary's. Takes it out of
  // the set when it is there (`*listed`), so that of two frees racing for it only one goes
  // to the secondary; the counters are left to the caller, once the secondary has answered.
  bool served_by_secondary(void* p, bool* listed) {
    if (secondary_in_range_live_.load(std::memory_order_relaxed) == 0) return false;
    bool nothing_of_primary = primary_live_.load(std::memory_order_relaxed) == 0;
    if (nothing_of_primary && set_size_.load(std::memory_order_relaxed) == 0) return true;
    std::lock_guard<std::mutex> lock(set_mutex_);
    *listed = secondary_in_range_.erase(p) != 0;
    set_size_.store(secondary_in_range_.size(), std::memory_order_relaxed);
    // With nothing of the primary's live it must be the secondary's, listed or not.
    return *listed || nothing_of_primary;
  }

  void relist(void* p) noexcept {
    std::lock_guard<std::mutex> lock(set_mutex_);
    try {
      secondary_in_range_.insert(p);
    } catch (...) {
      // No memory for the entry: a later free of p goes to the primary, which refuses it.
    }
    set_size_.store(secondary_in_range_.size(), std::memory_order_relaxed);
  }

  UpstreamRef primary_;
  UpstreamRef secondary_;
  const uint64_t min_bytes_;     // smallest request the primary sees, in bytes
  const uint64_t max_bytes_;     // largest request the primary sees, in bytes
  size_t primary_routes_ = 0;    // routes through the primary: the first of routes()
  size_t secondary_routes_ = 0;  // routes through the secondary: the rest
  std::atomic<bool> primary_unavailable_{false};      // sticky: the primary said "unavailable"
  std::atomic<uint64_t> primary_live_{0};             // live blocks served by the primary
  std::atomic<uint64_t> secondary_in_range_live_{0};  // live in-range blocks from the secondary
  std::mutex set_mutex_;                              // guards secondary_in_range_
  std::unordered_set<void*> secondary_in_range_;      // those blocks, while the counters can't tell
  std::atomic<size_t> set_size_{0};                   // its size, readable without the lock
};

}  // namespace pinpool
