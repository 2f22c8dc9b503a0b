// Leaf: page-locked host memory without CUDA: an anonymous mapping pinned with mlock.
// The kernel's RLIMIT_MEMLOCK bounds it (unless the process has CAP_IPC_LOCK); a refusal is an
// out-of-memory with reason "mlock", so a fallback can move on to pageable memory.
//
// Every mapping it hands out is recorded (core/leaf_blocks.hpp): munmap would unmap whatever
// lies at a foreign pointer, or a live neighbour when given a wrong length.
#pragma once

#include <sys/mman.h>

#include <cerrno>

#include "../core/align.hpp"
#include "../core/handler.hpp"
#include "../core/leaf_blocks.hpp"

namespace pinpool {

class LockedHandler final : public Handler {
 public:
  explicit LockedHandler(std::string name) : Handler(std::move(name), "locked") {}

 private:
  static size_t mapped_bytes(size_t bytes) {
    return align_up(bytes ? bytes : 1, page_size());
  }

  void* do_allocate(size_t bytes, size_t alignment, pinpool_alloc_info* info) override {
    size_t length = mapped_bytes(bytes);
    // Larger alignments than a page: map extra and unmap the unaligned head and tail, so the
    // block is exactly `length` bytes and free needs no bookkeeping.
    size_t extra = alignment > page_size() ? alignment : 0;
    if (length == 0 || length > SIZE_MAX - extra) {
      fail(info, {PINPOOL_ERR_OUT_OF_MEMORY, Reason::Mmap});
      return nullptr;
    }
    void* raw = mmap(nullptr, length + extra, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) {
      fail(info, {PINPOOL_ERR_OUT_OF_MEMORY, Reason::Mmap});
      return nullptr;
    }
    char* p = static_cast<char*>(raw);
    if (extra) {
      char* aligned = reinterpret_cast<char*>(align_up(reinterpret_cast<uintptr_t>(p), alignment));
      size_t head = static_cast<size_t>(aligned - p);
      if (head) munmap(p, head);
      size_t tail = extra - head;
      if (tail) munmap(aligned + length, tail);
      p = aligned;
    }
    if (mlock(p, length) != 0) {
      munmap(p, length);
      fail(info, {PINPOOL_ERR_OUT_OF_MEMORY, Reason::Mlock});
      return nullptr;
    }
    try {
      live_.add(p, {bytes, alignment, p, length});
    } catch (...) {
      munmap(p, length);
      throw;
    }
    return p;
  }

  std::optional<size_t> do_deallocate(void* ptr, size_t bytes, size_t alignment) override {
    LeafBlock block;
    if (!live_.take(ptr, bytes, alignment, &block)) return std::nullopt;
    munmap(block.start, block.length);  // also unlocks the pages
    return block.bytes;
  }

  LeafBlocks live_;  // mappings handed out
};

}  // namespace pinpool
