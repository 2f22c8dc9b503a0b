// Leaf: CUDA managed (unified) memory (cuMemAllocManaged, attached globally): one address
// valid on the host and the device, migrated on demand.
#pragma once

#include "cuda_leaf.hpp"

namespace pinpool {

class ManagedHandler final : public CudaLeaf {
 public:
  ManagedHandler(std::string name, int device)
      : CudaLeaf(std::move(name), "managed", device, 256, /*page_locks=*/false) {}

 private:
  CUresult raw_alloc(size_t bytes, void** out) override {
    CUresult rc = cuda::check_managed(device());
    return rc != CUDA_SUCCESS ? rc : cuda::managed_alloc(device(), bytes, out);
  }
  CUresult raw_free(void* ptr, size_t) override { return cuda::managed_free(device(), ptr); }
};

}  // namespace pinpool
