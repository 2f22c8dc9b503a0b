// What threads other than a named scope's own freed of the scope's buffers
// (src/memory/scope-cells.ts ScopeAccount). The scope's thread counts its own frees in plain
// JavaScript numbers; a buffer moved to another thread (transfer(), adopt()) carries a reference to
// its scope's cell in native code, from parcel to live table to parcel, and is counted here when it
// leaves the live table of whichever thread holds it: freed, collected, or returned when that
// thread ended. No token names a cell, so no holder of a token can forge, move or lose a scope's
// counts.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace pinpool {

class ScopeCell {
 public:
  static ScopeCell* create() { return new ScopeCell(); }  // with one reference, the caller's
  void retain() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  // One buffer of `bytes` bytes of the scope was freed away from the scope's thread.
  void freed(size_t bytes) {
    bytes_.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
    buffers_.fetch_add(1, std::memory_order_relaxed);
  }
  int64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }      // freed, in bytes
  int64_t buffers() const { return buffers_.load(std::memory_order_relaxed); }  // freed, in buffers

 private:
  ScopeCell() = default;
  std::atomic<int64_t> bytes_{0};
  std::atomic<int64_t> buffers_{0};
  std::atomic<int> refs_{1};
};

}  // namespace pinpool
