// Leaf: CUDA pinned host memory. Strict: without a CUDA driver or device it fails with
// "unavailable", and the default chain moves on.
//
// Two ways to get it. `alloc` (the default) asks the driver (cuMemHostAlloc). `register` maps
// anonymous memory, faults every page in, then page-locks it with cuMemHostRegister: the path
// PyTorch and cuDF found several times faster for large blocks, because the kernel's page
// faulting and the driver's pinning no longer happen one page at a time under the driver's
// lock. The register strategy grows as core/growth.hpp says (huge pages, parallel first touch)
// and registers each block with one call; a pool's reservation keeps each such call to a chunk.
//
// NUMA: the pages are preferred on `numa_node`, by default the device's own node (from its PCI
// bus id and sysfs) on a machine with more than one node: mbind before the first touch
// (register), or the calling thread's memory policy around cuMemHostAlloc (alloc).
#pragma once

#include <sys/mman.h>

#include <atomic>

#include "../core/growth.hpp"
#include "../support/kernel.hpp"
#include "cuda_leaf.hpp"

namespace pinpool {

struct PinnedOptions {
  int device = 0;                // whose primary context allocates
  bool portable = true;          // pinned for every context, not only the device's
  bool mapped = false;           // also mapped into the device's address space
  bool write_combined = false;   // fast for the device to read, slow for the host to read
  bool register_memory = false;  // strategy 'register': mmap + cuMemHostRegister
  GrowthOptions growth;          // (register) huge pages, first-touch threads
  int numa_node = kDeviceNode;   // the node its pages go to; -1: the kernel's choice

  static constexpr int kDeviceNode = -2;  // the device's own node (NUMA machines only)
};

class PinnedHandler final : public CudaLeaf {
 public:
  PinnedHandler(std::string name, const PinnedOptions& o)
      : CudaLeaf(std::move(name), "pinned", o.device, page_size(), /*page_locks=*/true),
        register_(o.register_memory),
        growth_(o.growth),
        numa_node_(o.numa_node),
        flags_(o.register_memory
                   ? (o.portable ? unsigned{CU_MEMHOSTREGISTER_PORTABLE} : 0u) |
                         (o.mapped ? unsigned{CU_MEMHOSTREGISTER_DEVICEMAP} : 0u)
                   : (o.portable ? unsigned{CU_MEMHOSTALLOC_PORTABLE} : 0u) |
                         (o.mapped ? unsigned{CU_MEMHOSTALLOC_DEVICEMAP} : 0u) |
                         (o.write_combined ? unsigned{CU_MEMHOSTALLOC_WRITECOMBINED} : 0u)) {}

 private:
  // The node its pages go to, or -1. The device's node is looked up at the first allocation
  // (the driver is loaded by then) and kept.
  int node() {
    if (numa_node_ != PinnedOptions::kDeviceNode) return numa_node_;
    int n = device_node_.load(std::memory_order_relaxed);
    if (n != kUnresolved) return n;
    n = -1;
    const Kernel& k = kernel();
    const auto& devices = cuda::driver().devices;
    if (k.node_count() > 1 && device() >= 0 && static_cast<size_t>(device()) < devices.size() &&
        !devices[device()].pci_bus_id.empty())
      n = k.pci_node(devices[device()].pci_bus_id.c_str());
    device_node_.store(n, std::memory_order_relaxed);
    return n;
  }

  CUresult raw_alloc(size_t bytes, void** out) override {
    int numa = node();
    if (!register_) {
      const Kernel& k = kernel();
      // The driver faults the pages in on this thread: its memory policy places them (unless the
      // thread has a policy of its own, which is left alone).
      bool placed = numa >= 0 && k.thread_prefer_node(numa) == 0;
      CUresult rc = cuda::host_alloc(device(), bytes, flags_, out);
      if (placed) k.thread_prefer_node(-1);
      return rc;
    }
    CUresult rc = cuda::check_device(device());
    if (rc != CUDA_SUCCESS) return rc;
    size_t length = align_up(bytes, page_size());
    GrowthOptions growth = growth_;
    growth.numa_node = numa;
    GrowthReport report;
    void* p = map_and_touch(length, page_size(), growth, &report);
    if (!p) return CUDA_ERROR_OUT_OF_MEMORY;
    count_growth(stats_, report);
    rc = cuda::host_register(device(), p, length, flags_);
    if (rc != CUDA_SUCCESS)
      munmap(p, length);
    else
      *out = p;
    return rc;
  }

  CUresult raw_free(void* ptr, size_t bytes) override {
    if (!register_) return cuda::host_free(device(), ptr);
    // A refused unregister leaves the pages registered: the mapping stays with the block, which
    // the leaf keeps recorded for a retry (cuda_leaf.hpp), so the retry unregisters and unmaps
    // it once. Unmapped now, the driver would go on pinning an address the next mmap may hand
    // to someone else, and the retry would unmap that.
    CUresult rc = cuda::host_unregister(device(), ptr);
    if (rc == CUDA_SUCCESS) munmap(ptr, align_up(bytes, page_size()));
    return rc;
  }

  static constexpr int kUnresolved = -3;

  const bool register_;         // strategy 'register' rather than cuMemHostAlloc
  const GrowthOptions growth_;  // (register) how it maps and touches
  const int numa_node_;         // as asked: a node, -1, or PinnedOptions::kDeviceNode
  std::atomic<int> device_node_{kUnresolved};  // the device's node once looked up
  const unsigned flags_;                       // CU_MEMHOSTALLOC_* or CU_MEMHOSTREGISTER_* flags
};

}  // namespace pinpool
