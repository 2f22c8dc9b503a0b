// A fence marks the end of something a block must wait for: a piece of asynchronous GPU work (a
// copy, a prefetch; a driver thread sets it from a host function queued behind the work), or
// the last ArrayBuffer over the block (its finalizer sets it). Anyone can read it without a
// CUDA call: that is what lets a pool decide, under its lock, whether a freed block may be
// handed out again.
//
// A fence can also be abandoned: the end it stood for can no longer be observed (the thread
// whose finalizer would have said so ended while an ArrayBuffer over the block lived on in
// another thread). It then never signals, and the blocks waiting on it are orphaned: never
// reused, and counted (Handler::settle_orphans).
#pragma once

#include <atomic>
#include <vector>

namespace pinpool {

class Fence {
 public:
  static Fence* create() { return new Fence(); }
  void retain() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  void signal() { done_.store(true, std::memory_order_release); }
  bool done() const { return done_.load(std::memory_order_acquire); }
  // Never signals from now on (see the top of this file); a fence already done stays done.
  void abandon() { abandoned_.store(true, std::memory_order_release); }
  bool abandoned() const { return !done() && abandoned_.load(std::memory_order_acquire); }

 private:
  Fence() = default;
  std::atomic<bool> done_{false};
  std::atomic<bool> abandoned_{false};
  std::atomic<int> refs_{1};
};

// Holds references to fences; all_done() when every one has signalled.
class FenceSet {
 public:
  FenceSet() = default;
  explicit FenceSet(std::vector<Fence*> fences) : fences_(std::move(fences)) {
    for (Fence* f : fences_) f->retain();
  }
  FenceSet(FenceSet&& o) noexcept : fences_(std::move(o.fences_)) { o.fences_.clear(); }
  FenceSet& operator=(FenceSet&& o) noexcept {
    std::swap(fences_, o.fences_);
    return *this;
  }
  FenceSet(const FenceSet&) = delete;
  FenceSet& operator=(const FenceSet&) = delete;
  ~FenceSet() {
    for (Fence* f : fences_) f->release();
  }
  // Adds a fence (taking a new reference).
  void add(Fence* f) {
    f->retain();
    fences_.push_back(f);
  }
  // Adds fences whose references the caller hands over.
  void adopt(const std::vector<Fence*>& fences) {
    fences_.insert(fences_.end(), fences.begin(), fences.end());
  }
  // Moves every fence of `other` into this set.
  void merge(FenceSet&& other) {
    adopt(other.fences_);
    other.fences_.clear();
  }
  bool empty() const { return fences_.empty(); }
  bool all_done() const {
    for (const Fence* f : fences_)
      if (!f->done()) return false;
    return true;
  }
  // True when some fence will never signal: the blocks waiting on this set are orphaned.
  bool any_abandoned() const {
    for (const Fence* f : fences_)
      if (f->abandoned()) return true;
    return false;
  }

 private:
  std::vector<Fence*> fences_;
};

}  // namespace pinpool
