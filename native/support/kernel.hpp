// The kernel calls growth makes (core/growth.hpp) and the NUMA lookups, behind one table that a
// test can replace (the binding's testing.kernel(), test/host/growth.test.ts): that is how a
// machine with one NUMA node, or one whose kernel offers huge pages, tests the other cases.
// Nothing here aborts or throws; every call returns what the kernel said.
#pragma once

#include <cstddef>

namespace pinpool {

struct Kernel {
  // Whether the kernel backs a MADV_HUGEPAGE mapping with transparent huge pages at all
  // (/sys/kernel/mm/transparent_hugepage/enabled is not "never").
  bool (*huge_pages_offered)();
  // madvise(MADV_HUGEPAGE); 0 or -1 with errno.
  int (*advise_huge)(void* p, size_t length);
  // mbind(MPOL_PREFERRED) of [p, p + length) to `node`, before the pages exist; 0 or -1.
  int (*prefer_node)(void* p, size_t length, int node);
  // The node each page is on (move_pages without moving): `nodes[i]` for `pages[i]`, a
  // negative errno for a page not present. 0 or -1.
  int (*nodes_of)(void* const* pages, size_t count, int* nodes);
  // set_mempolicy(MPOL_PREFERRED, node) for the calling thread: 0 when set (node -1 then
  // puts the default back), 1 when the thread has a policy of its own (numactl), which is kept
  // and nothing is set, -1 on an error.
  int (*thread_prefer_node)(int node);
  // The NUMA node of a PCI device, from sysfs (/sys/bus/pci/devices/<bus id>/numa_node), by
  // the bus id CUDA gives ("0000:3B:00.0"); -1 when unknown.
  int (*pci_node)(const char* bus_id);
  // The number of NUMA nodes the kernel has (the highest online node + 1); 1 without NUMA.
  int (*node_count)();
  // madvise(MADV_POPULATE_WRITE) (Linux 5.14): faults [p, p + length) in for writing inside the
  // kernel, without a trap per page (which a virtual machine makes expensive). 0, or -1 with
  // errno (EINVAL where the kernel is older).
  int (*populate_write)(void* p, size_t length);
  // mlock and munlock; 0 or -1 with errno.
  int (*lock_pages)(void* p, size_t length);
  int (*unlock_pages)(void* p, size_t length);
  // 1 when some page of [p, p + length) is the process's own copy of a file page (written since
  // a private file mapping mapped it: copy-on-write), 0 when none is, -1 when the kernel cannot
  // tell (/proc/self/pagemap unreadable). A page swapped out is anonymous, so the process's own;
  // one not present at all counts as the file's.
  int (*private_copies)(const void* p, size_t length);
};

// The table in use: the real kernel's, unless a test installed its own.
Kernel& kernel();
// The real kernel's table.
const Kernel& real_kernel();

}  // namespace pinpool
