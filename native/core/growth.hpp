// Growth at the speed of the hardware (docs/decisions/0017-growth-off-critical-path.md): how a
// page-locking leaf gets new memory. Page-locking is bounded by page faults and by the locking
// call, not by the allocator, so a large mapping is
//   1. asked to be backed by huge pages (MADV_HUGEPAGE; the kernel's transparent huge pages):
//      one fault per 2 MiB instead of one per 4 KiB,
//   2. bound to a NUMA node when one is asked (mbind, before any page exists),
//   3. first-touched by several threads at once (a small pool of its own, sized by the machine),
//      each faulting its part in inside the kernel (MADV_POPULATE_WRITE) where it can,
//   4. page-locked chunk by chunk, so that no single locking call (mlock, cuMemHostRegister)
//      covers more than the chunk size and holds the kernel's or the driver's lock for long.
// Every kernel call goes through support/kernel.hpp, which a test can replace.
#pragma once

#include <cstddef>
#include <cstdint>

#include "stats.hpp"

namespace pinpool {

struct GrowthOptions {
  bool huge_pages = true;         // ask for transparent huge pages on mappings of 2 MiB or more
  unsigned touch_threads = 0;     // threads that first-touch a mapping; 0: the machine's cores
  size_t chunk_bytes = 64 << 20;  // the most one locking call covers, in bytes (a page multiple)
  int numa_node = -1;             // bind the pages to this node; -1: the kernel's choice
};

// What a growth did, for the leaf's statistics.
struct GrowthReport {
  bool huge_refused = false;    // huge pages were asked and the kernel offers none (THP off,
                                // madvise refused)
  uint64_t off_node_bytes = 0;  // of the pages sampled after the touch, bytes on another node
};

inline constexpr size_t kHugePage = size_t{2} << 20;
// Below this a mapping is touched by the calling thread alone: handing work to other threads
// costs more than faulting a few megabytes.
inline constexpr size_t kParallelTouchBytes = size_t{16} << 20;

// Threads first touch uses when asked for 0: the machine's cores, at most 16.
unsigned default_touch_threads();

// Maps `length` bytes (a page multiple) of private anonymous memory aligned to `alignment`
// (a power of two; huge pages want 2 MiB), applies `o` (huge pages, node), and faults every page
// in. Returns the mapping, or nullptr with errno set (nothing left mapped): no mapping, or no
// memory to fault it in. Never throws.
void* map_and_touch(size_t length, size_t alignment, const GrowthOptions& o, GrowthReport* report);

// Faults in [p, p + length) for writing with `threads` threads (the caller is one of them);
// false when the kernel had not the memory for some of it.
bool touch_pages(char* p, size_t length, unsigned threads);

// Locks [p, p + length) with mlock (support/kernel.hpp), at most `chunk_bytes` per call, in
// order. When a call fails, everything it and the calls before locked is unlocked, and -1 is
// returned (errno set); 0 on success.
int lock_in_chunks(char* p, size_t length, size_t chunk_bytes);

// Counts in a leaf's statistics what a growth did: a refused huge-page request, pages off node.
inline void count_growth(Stats& stats, const GrowthReport& r) {
  if (r.huge_refused) Stats::bump(stats.hugePageFallbacks);
  if (r.off_node_bytes) Stats::bump(stats.offNodeBytes, r.off_node_bytes);
}

}  // namespace pinpool
