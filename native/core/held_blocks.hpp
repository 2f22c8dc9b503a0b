// The blocks of a handler that pinpool's own code holds (JavaScript, through the binding, or
// an adaptor above it): Handler::hold(). A set of addresses with open addressing (linear
// probing, backward-shift deletion), so that holding a block allocates nothing but an
// occasional doubling: it sits on every allocation that calls into native code.
// Not thread-safe: the handler guards it with a lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace pinpool {

class HeldBlocks {
 public:
  // Adds `ptr` (non-null); adding it twice keeps one entry.
  void insert(const void* ptr) {
    if ((size_ + 1) * 4 > capacity_ * 3) grow();
    size_t i = find_slot(ptr);
    if (slots_[i] == ptr) return;
    slots_[i] = ptr;
    size_++;
  }

  // Removes `ptr` if present.
  void erase(const void* ptr) {
    if (size_ == 0) return;
    size_t i = find_slot(ptr);
    if (slots_[i] != ptr) return;
    // Backward-shift deletion: later entries of the probe run move up, so no tombstones.
    size_t hole = i;
    for (size_t j = next(i);; j = next(j)) {
      const void* p = slots_[j];
      if (!p) break;
      size_t home = hash(p);
      // Move p into the hole when its home lies cyclically outside (hole, j].
      if ((j > hole && (home <= hole || home > j)) || (j < hole && (home <= hole && home > j))) {
        slots_[hole] = p;
        hole = j;
      }
    }
    slots_[hole] = nullptr;
    size_--;
  }

  bool contains(const void* ptr) const {
    if (size_ == 0) return false;
    return slots_[find_slot(ptr)] == ptr;
  }

  size_t size() const { return size_; }

 private:
  size_t hash(const void* p) const {
    uint64_t x = reinterpret_cast<uintptr_t>(p);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return static_cast<size_t>(x) & (capacity_ - 1);
  }
  size_t next(size_t i) const { return (i + 1) & (capacity_ - 1); }

  // The slot holding `ptr`, or the empty slot where it would go (capacity_ > size_ always).
  size_t find_slot(const void* ptr) const {
    size_t i = hash(ptr);
    while (slots_[i] && slots_[i] != ptr) i = next(i);
    return i;
  }

  void grow() {
    size_t old_capacity = capacity_;
    std::unique_ptr<const void*[]> old = std::move(slots_);
    capacity_ = old_capacity ? old_capacity * 2 : 64;
    slots_.reset(new const void*[capacity_]());
    size_ = 0;
    for (size_t i = 0; i < old_capacity; i++)
      if (old[i]) insert(old[i]);
  }

  std::unique_ptr<const void*[]> slots_;
  size_t capacity_ = 0;
  size_t size_ = 0;
};

}  // namespace pinpool
