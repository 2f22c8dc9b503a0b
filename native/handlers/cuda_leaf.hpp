// Shared shape of the two CUDA leaves (pinned, managed): the driver gives blocks aligned to
// `native_alignment`; a larger alignment is met by allocating extra and handing out an aligned
// address inside.
//
// Every block is recorded with what the driver returned (core/leaf_blocks.hpp), so a free of a
// pointer the leaf did not hand out, or hands back a second time, is refused before the driver
// sees it, and an error the driver returns on a free is not ignored: the free is refused and
// counted, and the block stays recorded for a retry.
//
// A page-locking leaf (pinned) takes each block's bytes from the host's page-lock budget
// (core/lock_cap.hpp) before the driver is asked: the driver would fault in and lock more than
// the machine holds. Past the cap the refusal is an out-of-memory with reason "mlock".
#pragma once

#include "../core/leaf_blocks.hpp"
#include "../core/lock_cap.hpp"
#include "../support/align.hpp"
#include "cuda_result.hpp"

namespace pinpool {

class CudaLeaf : public Handler {
 public:
  // `page_locks`: the driver's memory is page-locked host memory (pinned, not managed).
  CudaLeaf(std::string name, const char* kind, int device, size_t native_alignment, bool page_locks)
      : Handler(std::move(name), kind, Role::Leaf),
        device_(device),
        native_alignment_(native_alignment),
        page_locks_(page_locks) {
    if (page_locks_)
      stats_.capBytes.store(host_lock_budget().cap().bytes, std::memory_order_relaxed);
  }

  int device() const { return device_; }

 protected:
  virtual CUresult raw_alloc(size_t bytes, void** out) = 0;
  virtual CUresult raw_free(void* ptr, size_t bytes) = 0;

 private:
  void* do_allocate(size_t bytes, size_t alignment, pinpool_alloc_info* info) override {
    size_t extra = alignment > native_alignment_ ? alignment : 0;
    size_t length = bytes ? bytes : 1;
    if (length > SIZE_MAX - extra) {
      fail(info, {PINPOOL_ERR_OUT_OF_MEMORY, Reason::OutOfMemory});
      return nullptr;
    }
    if (page_locks_) {
      // No driver or no device says so first, whatever the size: a fallback then stops asking.
      CUresult rc = cuda::check_device(device_);
      if (rc != CUDA_SUCCESS) {
        fail(info, cuda_failure(rc));
        return nullptr;
      }
      if (!take_lock_budget(nullptr, length + extra)) {
        fail(info, {PINPOOL_ERR_OUT_OF_MEMORY, Reason::Mlock});
        return nullptr;
      }
    }
    void* raw = nullptr;
    CUresult rc = raw_alloc(length + extra, &raw);
    if (rc != CUDA_SUCCESS) {
      if (page_locks_) give_back_lock_budget(nullptr, length + extra);
      fail(info, cuda_failure(rc));
      return nullptr;
    }
    void* p = extra ? reinterpret_cast<void*>(align_up(reinterpret_cast<uintptr_t>(raw), alignment))
                    : raw;
    try {
      live_.add(p, {bytes, alignment, raw, length + extra});
    } catch (...) {
      if (raw_free(raw, length + extra) == CUDA_SUCCESS && page_locks_)
        give_back_lock_budget(nullptr, length + extra);
      throw;
    }
    return p;
  }

  std::optional<size_t> do_deallocate(void* ptr, size_t bytes, size_t alignment) override {
    LeafBlock block;
    if (!live_.take(ptr, bytes, alignment, &block)) return std::nullopt;
    if (raw_free(block.start, block.length) == CUDA_SUCCESS) {
      if (page_locks_) give_back_lock_budget(nullptr, block.length);
      return block.bytes;
    }
    live_.put_back(ptr, block);
    return std::nullopt;
  }

  const int device_;               // device ordinal whose primary context allocates
  const size_t native_alignment_;  // alignment the driver guarantees, in bytes
  const bool page_locks_;          // blocks count against the host's page-lock budget
  LeafBlocks live_;                // blocks handed out
};

}  // namespace pinpool
