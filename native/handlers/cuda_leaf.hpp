// Shared shape of the two CUDA leaves (pinned, managed): the driver gives blocks aligned to
// `native_alignment`; a larger alignment is met by allocating extra and remembering the real
// start of those few blocks, so ordinary blocks carry no bookkeeping at all.
#pragma once

#include <mutex>
#include <unordered_map>

#include "../core/align.hpp"
#include "cuda_result.hpp"

namespace pinpool {

class CudaLeaf : public Handler {
 public:
  CudaLeaf(std::string name, const char* kind, int device, size_t native_alignment)
      : Handler(std::move(name), kind), device_(device), native_alignment_(native_alignment) {}

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
    void* raw = nullptr;
    CUresult rc = raw_alloc(length + extra, &raw);
    if (rc != CUDA_SUCCESS) {
      fail(info, cuda_failure(rc));
      return nullptr;
    }
    if (!extra) return raw;
    void* aligned = reinterpret_cast<void*>(align_up(reinterpret_cast<uintptr_t>(raw), alignment));
    std::lock_guard<std::mutex> lock(over_aligned_mutex_);
    over_aligned_[aligned] = {raw, length + extra};
    return aligned;
  }

  bool do_deallocate(void* ptr, size_t bytes, size_t alignment) override {
    Block block{ptr, bytes ? bytes : 1};
    if (alignment > native_alignment_) {
      std::lock_guard<std::mutex> lock(over_aligned_mutex_);
      auto it = over_aligned_.find(ptr);
      if (it != over_aligned_.end()) {
        block = it->second;
        over_aligned_.erase(it);
      }
    }
    raw_free(block.start, block.bytes);
    return true;
  }

  struct Block {
    void* start;   // as the driver returned it
    size_t bytes;  // as asked of the driver
  };

  const int device_;                      // device ordinal whose primary context allocates
  const size_t native_alignment_;         // alignment the driver guarantees, in bytes
  std::mutex over_aligned_mutex_;         // guards over_aligned_
  std::unordered_map<void*, Block> over_aligned_;  // aligned start -> the driver's block
};

}  // namespace pinpool
