// Thread caches as a handler sees them. A thread cache (binding/thread_cache.hpp, and its
// JavaScript half src/memory/thread-cache.ts) keeps blocks a thread freed, ready for the same
// thread's next allocation of that size, without a call into native code. Blocks it holds are
// handed out as far as the handler's own bookkeeping goes, so the cache publishes what it holds and
// what it did, and the handler's statistics fold that in wherever they are read: a block in a
// thread cache counts as cached, not in use; a hit counts as an allocation, a free into the
// cache as a free.
//
// The counts are doubles in memory the cache's thread writes with plain stores (its JavaScript
// writes them through a Float64Array); any thread reads them with relaxed loads. Each count is
// read whole; counts read together may be a few operations apart, as with any live statistics.
#pragma once

#include <cstdint>
#include <cstring>

namespace pinpool::thread_caches {

// The counts, by index (src/memory/thread-cache.ts reads this layout from constants()).
enum Cell : int {
  kBlocks = 0,      // blocks the cache holds now
  kBytes = 1,       // their bytes, as allocated
  kClassBytes = 2,  // their bytes as the pool holds them (size classes), for cachedBytes
  kHits = 3,        // allocations the cache served
  kHitBytes = 4,    // their bytes
  kFrees = 5,       // frees the cache took
  kTrims = 6,       // requests to give the blocks back since the cache began (written by the
                    // handlers of its route: trim(), a pool over its cap, a limit that refused)
  kPoolTrims = 7,   // of those, the trims: the pool trims again once the blocks are back
  kCellCount = 8    // cells before the cache's slot list (binding/thread_caches.hpp)
};

inline double load(const double* cells, int i) {
  uint64_t bits = __atomic_load_n(reinterpret_cast<const uint64_t*>(cells + i), __ATOMIC_RELAXED);
  double value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

inline void store(double* cells, int i, double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  __atomic_store_n(reinterpret_cast<uint64_t*>(cells + i), bits, __ATOMIC_RELAXED);
}

// A count as a statistic: never negative (a count read between two of its thread's stores).
inline uint64_t count(const double* cells, int i) {
  double v = load(cells, i);
  return v > 0 ? static_cast<uint64_t>(v) : 0;
}

// What every thread cache of a handler holds and did, summed.
struct Totals {
  uint64_t blocks = 0, bytes = 0, class_bytes = 0, hits = 0, hit_bytes = 0, frees = 0;

  // `pool`: the cache keeps this handler's blocks, which count as cached here (class_bytes).
  void add(const double* cells, bool pool = true) {
    blocks += count(cells, kBlocks);
    bytes += count(cells, kBytes);
    if (pool) class_bytes += count(cells, kClassBytes);
    hits += count(cells, kHits);
    hit_bytes += count(cells, kHitBytes);
    frees += count(cells, kFrees);
  }
};

}  // namespace pinpool::thread_caches
