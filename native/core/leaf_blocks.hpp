// The blocks a leaf has handed out and not taken back, so that its free can refuse anything else
// before the C library, the kernel or the driver sees it: glibc aborts on a pointer malloc never
// returned, munmap with a wrong length unmaps a neighbour, cuMemFreeHost frees whatever block the
// pointer lands in. Leaves are not the hot path (a pool sits in front of them), so one mutex and
// a hash map are enough.
#pragma once

#include <cstddef>
#include <mutex>
#include <unordered_map>

namespace pinpool {

struct LeafBlock {
  size_t bytes;      // as the caller asked, in bytes
  size_t alignment;  // as the caller asked
  void* start;       // as the OS or driver returned it (before the block when over-aligned)
  size_t length;     // as asked of the OS or driver, in bytes
};

class LeafBlocks {
 public:
  // Records a block handed out at `ptr`. Throws std::bad_alloc when it cannot: the caller gives
  // the memory back and fails the allocation.
  void add(void* ptr, const LeafBlock& block) {
    std::lock_guard<std::mutex> lock(mutex_);
    blocks_.emplace(ptr, block);
  }

  // Takes out the block at `ptr` when `bytes` and `alignment` are those it was allocated with;
  // false, changing nothing, for any other pointer or a wrong size or alignment.
  bool take(void* ptr, size_t bytes, size_t alignment, LeafBlock* out) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = blocks_.find(ptr);
    if (it == blocks_.end() || it->second.bytes != bytes || it->second.alignment != alignment)
      return false;
    *out = it->second;
    blocks_.erase(it);
    return true;
  }

  // Puts back a block taken out whose release then failed (the driver refused it), so that the
  // caller's retry finds it. Best effort: without memory for the entry, the block stays leaked.
  void put_back(void* ptr, const LeafBlock& block) noexcept {
    try {
      add(ptr, block);
    } catch (...) {}
  }

 private:
  std::mutex mutex_;                             // guards blocks_
  std::unordered_map<void*, LeafBlock> blocks_;  // handed-out start -> block
};

}  // namespace pinpool
