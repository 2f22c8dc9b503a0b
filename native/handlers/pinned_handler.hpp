// Leaf: CUDA pinned host memory (cuMemHostAlloc). Strict: without a CUDA driver or device it
// fails with "unavailable", and the default chain moves on.
#pragma once

#include "cuda_leaf.hpp"

namespace pinpool {

struct PinnedOptions {
  int device = 0;              // whose primary context allocates
  bool portable = true;        // pinned for every context, not only the device's
  bool mapped = false;         // also mapped into the device's address space
  bool write_combined = false; // fast for the device to read, slow for the host to read
};

class PinnedHandler final : public CudaLeaf {
 public:
  PinnedHandler(std::string name, const PinnedOptions& o)
      : CudaLeaf(std::move(name), "pinned", o.device, page_size()),
        flags_((o.portable ? unsigned{CU_MEMHOSTALLOC_PORTABLE} : 0u) |
               (o.mapped ? unsigned{CU_MEMHOSTALLOC_DEVICEMAP} : 0u) |
               (o.write_combined ? unsigned{CU_MEMHOSTALLOC_WRITECOMBINED} : 0u)) {}

 private:
  CUresult raw_alloc(size_t bytes, void** out) override {
    return cuda::host_alloc(device(), bytes, flags_, out);
  }
  CUresult raw_free(void* ptr) override { return cuda::host_free(ptr); }

  const unsigned flags_;  // CU_MEMHOSTALLOC_* flags
};

}  // namespace pinpool
