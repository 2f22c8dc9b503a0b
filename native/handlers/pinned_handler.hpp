// Leaf: CUDA pinned host memory. Strict: without a CUDA driver or device it fails with
// "unavailable", and the default chain moves on.
//
// Two ways to get it. `alloc` (the default) asks the driver (cuMemHostAlloc). `register` maps
// anonymous memory, faults every page in, then page-locks it with cuMemHostRegister: the path
// PyTorch and cuDF found several times faster for large blocks, because the kernel's page
// faulting and the driver's pinning no longer happen one page at a time under the driver's
// lock.
#pragma once

#include <sys/mman.h>

#include "cuda_leaf.hpp"

namespace pinpool {

struct PinnedOptions {
  int device = 0;                // whose primary context allocates
  bool portable = true;          // pinned for every context, not only the device's
  bool mapped = false;           // also mapped into the device's address space
  bool write_combined = false;   // fast for the device to read, slow for the host to read
  bool register_memory = false;  // strategy 'register': mmap + cuMemHostRegister
};

class PinnedHandler final : public CudaLeaf {
 public:
  PinnedHandler(std::string name, const PinnedOptions& o)
      : CudaLeaf(std::move(name), "pinned", o.device, page_size(), /*page_locks=*/true),
        register_(o.register_memory),
        flags_(o.register_memory
                   ? (o.portable ? unsigned{CU_MEMHOSTREGISTER_PORTABLE} : 0u) |
                         (o.mapped ? unsigned{CU_MEMHOSTREGISTER_DEVICEMAP} : 0u)
                   : (o.portable ? unsigned{CU_MEMHOSTALLOC_PORTABLE} : 0u) |
                         (o.mapped ? unsigned{CU_MEMHOSTALLOC_DEVICEMAP} : 0u) |
                         (o.write_combined ? unsigned{CU_MEMHOSTALLOC_WRITECOMBINED} : 0u)) {}

 private:
  CUresult raw_alloc(size_t bytes, void** out) override {
    if (!register_) return cuda::host_alloc(device(), bytes, flags_, out);
    CUresult rc = cuda::check_device(device());
    if (rc != CUDA_SUCCESS) return rc;
    size_t length = align_up(bytes, page_size());
    void* p = mmap(nullptr, length, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
    rc = cuda::host_register(device(), p, length, flags_);
    if (rc != CUDA_SUCCESS)
      munmap(p, length);
    else
      *out = p;
    return rc;
  }

  CUresult raw_free(void* ptr, size_t bytes) override {
    if (!register_) return cuda::host_free(ptr);
    CUresult rc = cuda::host_unregister(ptr);
    munmap(ptr, align_up(bytes, page_size()));
    return rc;
  }

  const bool register_;   // strategy 'register' rather than cuMemHostAlloc
  const unsigned flags_;  // CU_MEMHOSTALLOC_* or CU_MEMHOSTREGISTER_* flags
};

}  // namespace pinpool
