// Statistics of one handler, declared once. The X-macros below generate the C++ fields, the
// snapshot the binding hands to JavaScript, and (through that snapshot) the Prometheus metrics,
// so a new statistic is one line here.
//
// Every field is a relaxed atomic: the hot path takes no lock to count. Readers get a snapshot
// that is consistent per field, which is what a scrape needs.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

namespace pinpool {

// {current, peak, total} triples.
//   X(name)      e.g. bytes -> bytesCurrent, bytesPeak, bytesTotal in JavaScript
#define PINPOOL_GAUGE_STATS(X)                                       \
  X(bytes)       /* bytes handed to callers and not yet returned */  \
  X(allocations) /* blocks handed to callers and not yet returned */ \
  X(reserved)    /* bytes this handler holds from its upstream (pools only), in bytes */

// Plain monotonic counters.
#define PINPOOL_COUNTER_STATS(X)                                                               \
  X(frees)             /* blocks returned by callers */                                        \
  X(upstreamAllocs)    /* (pools) allocation calls made to the upstream */                     \
  X(upstreamFrees)     /* (pools) free calls made to the upstream */                           \
  X(upstreamNanos)     /* (pools) time spent in upstream calls, in nanoseconds */              \
  X(releasedByGc)      /* blocks returned by the garbage-collection backstop, not by free() */ \
  X(releasedByGcBytes) /* bytes of those blocks */                                             \
  X(invalidFrees)      /* frees refused: a pointer not handed out (never, or not any more),    \
                          a wrong size or alignment; nothing was freed or counted as freed */

// Single values that go up and down.
#define PINPOOL_LEVEL_STATS(X)                                                                     \
  X(cachedBytes)    /* (pools) bytes held from upstream and free for reuse, in bytes */            \
  X(capBytes)       /* (limits; pinned, locked) the cap on bytes in use, or on bytes page-locked   \
                       (core/lock_cap.hpp), in bytes; fixed when made */                           \
  X(orphanedBytes)  /* bytes of blocks kept out of use for good: an ArrayBuffer over them left     \
                       their thread, which ended before that buffer died (Handler::settle_orphans) \
                     */                                                                            \
  X(orphanedBlocks) /* those blocks (a slab counts once) */

// Why an allocation failed or moved on to a fallback. Index into the per-reason arrays; the
// strings are stable (metric label values, error reasons).
#define PINPOOL_REASONS(X)               \
  X(OutOfMemory, "out-of-memory")        \
  X(Unavailable, "unavailable")          \
  X(Cuda, "cuda")                        \
  X(Mlock, "mlock")                      \
  X(Mmap, "mmap")                        \
  X(Limit, "limit")                      \
  X(Size, "size")                        \
  X(NoCuda, "no-cuda")                   \
  X(NoDevice, "no-device")               \
  X(InvalidArgument, "invalid-argument") \
  X(Internal, "internal")

enum class Reason : uint8_t {
#define PINPOOL_REASON_ENUM(id, text) id,
  PINPOOL_REASONS(PINPOOL_REASON_ENUM)
#undef PINPOOL_REASON_ENUM
      Count
};

constexpr int kReasonCount = static_cast<int>(Reason::Count);

inline const char* reason_text(Reason r) {
  static const char* const texts[] = {
#define PINPOOL_REASON_TEXT(id, text) text,
      PINPOOL_REASONS(PINPOOL_REASON_TEXT)
#undef PINPOOL_REASON_TEXT
  };
  int i = static_cast<int>(r);
  return i >= 0 && i < kReasonCount ? texts[i] : "unknown";
}

// The index of a reason given as text (as pinpool_alloc_info carries it), or -1. Compares the
// text, not the pointer: identical string literals in different files need not be merged (they
// are not under AddressSanitizer), and a foreign handler brings its own strings.
inline int reason_index(const char* text) {
  if (!text) return -1;
  for (int i = 0; i < kReasonCount; i++) {
    const char* t = reason_text(static_cast<Reason>(i));
    if (text == t || std::strcmp(text, t) == 0) return i;
  }
  return -1;
}

struct Gauge {
  std::atomic<uint64_t> current{0};  // now
  std::atomic<uint64_t> peak{0};     // highest `current` seen
  std::atomic<uint64_t> total{0};    // sum of every increase

  // `hidden` of `current` is not really in use (blocks thread caches hold, see
  // Handler::thread_cached()): the peak is taken without it.
  void add(uint64_t n, uint64_t hidden = 0) {
    uint64_t now = current.fetch_add(n, std::memory_order_relaxed) + n;
    total.fetch_add(n, std::memory_order_relaxed);
    raise_peak(now > hidden ? now - hidden : 0);
  }
  void sub(uint64_t n) { current.fetch_sub(n, std::memory_order_relaxed); }
  void raise_peak(uint64_t level) {
    uint64_t seen = peak.load(std::memory_order_relaxed);
    while (level > seen && !peak.compare_exchange_weak(seen, level, std::memory_order_relaxed)) {}
  }
};

struct Stats {
#define PINPOOL_GAUGE_FIELD(name) Gauge name;
  PINPOOL_GAUGE_STATS(PINPOOL_GAUGE_FIELD)
#undef PINPOOL_GAUGE_FIELD
#define PINPOOL_COUNTER_FIELD(name) std::atomic<uint64_t> name{0};
  PINPOOL_COUNTER_STATS(PINPOOL_COUNTER_FIELD)
  PINPOOL_LEVEL_STATS(PINPOOL_COUNTER_FIELD)
#undef PINPOOL_COUNTER_FIELD
  std::atomic<uint64_t> failures[kReasonCount] = {};  // failed allocations, by reason
  std::atomic<uint64_t> hops[kReasonCount] = {};  // (fallback) moves to the secondary, by reason

  static void bump(std::atomic<uint64_t>& counter, uint64_t n = 1) {
    counter.fetch_add(n, std::memory_order_relaxed);
  }
};

// Where each statistic sits in a snapshot (Handler::read_stats(), the binding's stats()): the
// gauges as {current, peak, total}, the counters and levels, then failures and fallback hops
// by reason.
enum StatSlot : int {
#define PINPOOL_GAUGE_SLOT(name) kStat_##name##Current, kStat_##name##Peak, kStat_##name##Total,
  PINPOOL_GAUGE_STATS(PINPOOL_GAUGE_SLOT)
#undef PINPOOL_GAUGE_SLOT
#define PINPOOL_COUNTER_SLOT(name) kStat_##name,
      PINPOOL_COUNTER_STATS(PINPOOL_COUNTER_SLOT) PINPOOL_LEVEL_STATS(PINPOOL_COUNTER_SLOT)
#undef PINPOOL_COUNTER_SLOT
          kStatFailures,
  kStatHops = kStatFailures + kReasonCount,
  kStatCount = kStatHops + kReasonCount
};

}  // namespace pinpool
