// Leaf: ordinary (pageable) host memory from the C library, aligned as asked.
// It always works, so it ends the default chain.
//
// Every block it hands out is recorded (core/leaf_blocks.hpp), so a free of anything else is
// refused before glibc, which would abort the process, sees it.
#pragma once

#include <cstdlib>

#include "../core/handler.hpp"
#include "../core/leaf_blocks.hpp"
#include "../support/align.hpp"

namespace pinpool {

class PageableHandler final : public Handler {
 public:
  explicit PageableHandler(std::string name) : Handler(std::move(name), "pageable", Role::Leaf) {}

 private:
  void* do_allocate(size_t bytes, size_t alignment, pinpool_alloc_info* info) override {
    void* p = nullptr;
    // posix_memalign needs at least pointer alignment; zero bytes still gets a unique block.
    size_t a = alignment < sizeof(void*) ? sizeof(void*) : alignment;
    if (posix_memalign(&p, a, bytes ? bytes : 1) != 0) {
      fail(info, {PINPOOL_ERR_OUT_OF_MEMORY, Reason::OutOfMemory});
      return nullptr;
    }
    try {
      live_.add(p, {bytes, alignment, p, bytes});
    } catch (...) {
      std::free(p);
      throw;
    }
    return p;
  }

  std::optional<size_t> do_deallocate(void* ptr, size_t bytes, size_t alignment) override {
    LeafBlock block;
    if (!live_.take(ptr, bytes, alignment, &block)) return std::nullopt;
    std::free(ptr);
    return block.bytes;
  }

  LeafBlocks live_;  // blocks handed out
};

}  // namespace pinpool
