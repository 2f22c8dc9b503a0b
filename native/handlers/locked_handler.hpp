// Leaf: page-locked host memory without CUDA: an anonymous mapping pinned with mlock. It grows
// as core/growth.hpp says: huge pages where the kernel offers them, bound to a NUMA node when
// asked, first-touched by several threads, then locked `chunk_bytes` at a time.
// Its cap (core/lock_cap.hpp): its own `maxBytes` and RLIMIT_MEMLOCK where the kernel applies
// it, and the host budget every page-locking leaf shares, which holds even with CAP_IPC_LOCK
// or an unlimited rlimit. A request past a cap is refused before anything is mapped; that and
// the kernel's refusal are an out-of-memory with reason "mlock", so a fallback can move on to
// pageable memory.
//
// Every mapping it hands out is recorded (core/leaf_blocks.hpp): munmap would unmap whatever
// lies at a foreign pointer, or a live neighbour when given a wrong length.
#pragma once

#include <sys/mman.h>

#include <cerrno>

#include "../core/growth.hpp"
#include "../core/handler.hpp"
#include "../core/leaf_blocks.hpp"
#include "../core/lock_cap.hpp"
#include "../support/align.hpp"

namespace pinpool {

class LockedHandler final : public Handler {
 public:
  // `max_bytes`: the caller's cap on what this leaf holds locked; UINT64_MAX for none.
  explicit LockedHandler(std::string name, uint64_t max_bytes = UINT64_MAX,
                         const GrowthOptions& growth = {})
      : Handler(std::move(name), "locked", Role::Leaf),
        growth_(growth),
        own_(lesser(max_bytes == UINT64_MAX ? LockCap{} : LockCap{max_bytes, "option"},
                    memlock_cap())) {
    stats_.capBytes.store(lesser(own_.cap(), host_lock_budget().cap()).bytes,
                          std::memory_order_relaxed);
  }

 private:
  static size_t mapped_bytes(size_t bytes) { return align_up(bytes ? bytes : 1, page_size()); }

  void* do_allocate(size_t bytes, size_t alignment, pinpool_alloc_info* info) override {
    size_t length = mapped_bytes(bytes);
    if (length == 0) {
      fail(info, {PINPOOL_ERR_OUT_OF_MEMORY, Reason::Mmap});
      return nullptr;
    }
    // The pages locked are counted, not the bytes asked: that is what the host loses.
    if (!take_lock_budget(&own_, length)) {
      fail(info, {PINPOOL_ERR_OUT_OF_MEMORY, Reason::Mlock});
      return nullptr;
    }
    GrowthReport report;
    char* p = static_cast<char*>(map_and_touch(length, alignment, growth_, &report));
    if (!p) {
      give_back_lock_budget(&own_, length);
      fail(info, {PINPOOL_ERR_OUT_OF_MEMORY, Reason::Mmap});
      return nullptr;
    }
    count_growth(stats_, report);
    if (lock_in_chunks(p, length, growth_.chunk_bytes) != 0) {
      munmap(p, length);
      give_back_lock_budget(&own_, length);
      lock_refusal().set = false;  // the kernel's refusal, not a cap's
      fail(info, {PINPOOL_ERR_OUT_OF_MEMORY, Reason::Mlock});
      return nullptr;
    }
    try {
      live_.add(p, {bytes, alignment, p, length});
    } catch (...) {
      munmap(p, length);
      give_back_lock_budget(&own_, length);
      throw;
    }
    return p;
  }

  std::optional<size_t> do_deallocate(void* ptr, size_t bytes, size_t alignment) override {
    LeafBlock block;
    if (!live_.take(ptr, bytes, alignment, &block)) return std::nullopt;
    munmap(block.start, block.length);  // also unlocks the pages
    give_back_lock_budget(&own_, block.length);
    return block.bytes;
  }

  const GrowthOptions growth_;  // how it maps, touches and locks
  LockBudget own_;              // this leaf's locked bytes against its own cap
  LeafBlocks live_;             // mappings handed out
};

}  // namespace pinpool
