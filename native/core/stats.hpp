// Statistics of one handler, declared once. PINPOOL_STATS below is the table of them: each line
// names a statistic for JavaScript (handler.stats()), its Prometheus metric (collectMetrics()
// loops over the table, which the binding hands over as statsLayout()), and the field it reads.
// A new statistic is a field here and one line in that table.
//
// Every field is a relaxed atomic: the hot path takes no lock to count. Readers get a snapshot
// that is consistent per field, which is what a scrape needs.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <utility>

namespace pinpool {

// The native fields: {current, peak, total} triples, counters and levels. Internal: what
// JavaScript, the metrics and the C API see is PINPOOL_STATS below, which names each statistic
// and says which field it reads.
#define PINPOOL_GAUGE_FIELDS(X)                                      \
  X(bytes)       /* bytes handed to callers and not yet returned */  \
  X(allocations) /* blocks handed to callers and not yet returned */ \
  X(reserved)    /* bytes this handler holds from its upstream (pools only), in bytes */

#define PINPOOL_COUNTER_FIELDS(X)                                                              \
  X(frees)             /* blocks returned by callers */                                        \
  X(upstreamAllocs)    /* (pools) allocation calls made to the upstream */                     \
  X(upstreamFrees)     /* (pools) free calls made to the upstream */                           \
  X(upstreamNanos)     /* (pools) time spent in upstream calls, in nanoseconds */              \
  X(gcReleased)        /* blocks returned by the garbage-collection backstop, not by free() */ \
  X(gcReleasedBytes)   /* bytes of those blocks */                                             \
  X(invalidFrees)      /* frees refused: a pointer not handed out (never, or not any more),    \
                          a wrong size or alignment; nothing was freed or counted as freed */  \
  X(cachedBytes)       /* (pools) bytes held from upstream and free for reuse, in bytes */     \
  X(capBytes)          /* (limits; pinned, locked) the cap on bytes in use, or on bytes        \
                          page-locked (core/lock_cap.hpp), in bytes; fixed when made */        \
  X(orphanedBytes)     /* bytes of blocks kept out of use for good: an ArrayBuffer over them   \
                          left its thread, which ended before that buffer died                 \
                          (Handler::settle_orphans) */                                         \
  X(orphanedBlocks)    /* those blocks (a slab counts once) */                                 \
  X(reservationBytes)  /* (pools) bytes reserved ahead (reserve(), initialBytes), in bytes */  \
  X(hugePageFallbacks) /* (locked, pinned) mappings that asked for huge pages and got none */  \
  X(offNodeBytes)      /* (locked, pinned) bytes found on another NUMA node than asked */      \
  X(growthNanos)       /* (pools) time spent in allocation calls to the upstream, nanoseconds */

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
  X(CudaContext, "cuda-context")         \
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

// The upper bounds of the growth histogram's buckets (a pool's upstream allocations, timed), in
// seconds: from a cached cuMemHostAlloc to a multi-gigabyte page-locking. One more bucket, +Inf,
// follows them.
inline constexpr double kGrowthBounds[] = {0.0001, 0.001, 0.01, 0.1, 0.5, 1, 4, 16};
constexpr int kGrowthBucketCount = static_cast<int>(sizeof(kGrowthBounds) / sizeof(double)) + 1;
static_assert(kGrowthBucketCount != 0 && kGrowthBucketCount != 1, "a histogram has buckets");

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
  PINPOOL_GAUGE_FIELDS(PINPOOL_GAUGE_FIELD)
#undef PINPOOL_GAUGE_FIELD
#define PINPOOL_COUNTER_FIELD(name) std::atomic<uint64_t> name{0};
  PINPOOL_COUNTER_FIELDS(PINPOOL_COUNTER_FIELD)
#undef PINPOOL_COUNTER_FIELD
  std::atomic<uint64_t> failures[kReasonCount] = {};  // failed allocations, by reason
  std::atomic<uint64_t> fallbacks[kReasonCount] =
      {};  // (fallback) moves to the secondary, by reason
  // (pools) upstream allocations by how long each took: kGrowthBounds, then +Inf (not cumulative)
  std::atomic<uint64_t> growthBuckets[kGrowthBucketCount] = {};

  // Counts one upstream allocation (a growth) that took `ns` nanoseconds.
  void count_growth(uint64_t ns) {
    bump(growthNanos, ns);
    int i = 0;
    while (i < kGrowthBucketCount - 1 && static_cast<double>(ns) > kGrowthBounds[i] * 1e9) i++;
    bump(growthBuckets[i]);
  }

  static void bump(std::atomic<uint64_t>& counter, uint64_t n = 1) {
    counter.fetch_add(n, std::memory_order_relaxed);
  }
};

// The statistics of a handler as JavaScript (handler.stats()), the metrics (collectMetrics())
// and the C API (pinpool_stats) see them: one line each, and the only list of them.
//
//   X(name, stem, type, aggregator, kinds, labels, field, scale, help)
//     name        the field of handler.stats() (camelCase)
//     stem        the metric's name without the prefix: `name` in snake_case, then `_total` for a
//                 counter (checked below)
//     type        the Prometheus type: "counter" (only goes up) or "gauge"
//     aggregator  how prom-client merges the series of several workers: "sum", "max", "first"
//     kinds       the handler kinds whose metrics report it, space-separated; "" for every kind
//                 (handler.stats() has every field on every handler, 0 where it does not apply)
//     labels      the metric's labels after `handler`; "reason" makes a statistic per reason
//                 (handler.stats() gives it as { reason: count }, non-zero reasons only)
//     field       the Stats field it reads (a per-reason array for "reason" statistics)
//     scale       what a value is multiplied by for JavaScript (nanoseconds to seconds)
//     help        the metric's help text
#define PINPOOL_STATS(X)                                                                         \
  X(bytesInUse, "bytes_in_use", "gauge", "sum", "", "kind", bytes.current, 1,                    \
    "Bytes handed out by the handler and not yet returned.")                                     \
  X(bytesPeak, "bytes_peak", "gauge", "max", "", "kind", bytes.peak, 1,                          \
    "Highest bytes_in_use seen since the handler was made.")                                     \
  X(allocatedBytes, "allocated_bytes", "counter", "sum", "", "kind", bytes.total, 1,             \
    "Bytes allocated from the handler, summed over all allocations.")                            \
  X(buffersInUse, "buffers_in_use", "gauge", "sum", "", "kind", allocations.current, 1,          \
    "Buffers handed out by the handler and not yet returned.")                                   \
  X(buffersPeak, "buffers_peak", "gauge", "max", "", "kind", allocations.peak, 1,                \
    "Highest buffers_in_use seen since the handler was made.")                                   \
  X(allocations, "allocations", "counter", "sum", "", "kind", allocations.total, 1,              \
    "Allocations served by the handler.")                                                        \
  X(frees, "frees", "counter", "sum", "", "kind", frees, 1, "Buffers returned to the handler.")  \
  X(reservedBytes, "reserved_bytes", "gauge", "sum", "pool", "kind", reserved.current, 1,        \
    "Bytes a pool holds from its upstream, in use or cached.")                                   \
  X(reservedBytesPeak, "reserved_bytes_peak", "gauge", "max", "pool", "kind", reserved.peak, 1,  \
    "Highest reserved_bytes seen since the pool was made.")                                      \
  X(cachedBytes, "cached_bytes", "gauge", "sum", "pool", "kind", cachedBytes, 1,                 \
    "Bytes a pool holds from its upstream and has free for reuse.")                              \
  X(capBytes, "cap_bytes", "gauge", "first", "limit pinned locked", "kind", capBytes, 1,         \
    "The cap of a limit handler on its bytes_in_use (its maxBytes), or of a page-locking leaf "  \
    "(pinned, locked) on the bytes it holds page-locked.")                                       \
  X(upstreamAllocs, "upstream_allocs", "counter", "sum", "pool", "kind", upstreamAllocs, 1,      \
    "Allocation calls a pool made to its upstream (its cache misses).")                          \
  X(upstreamFrees, "upstream_frees", "counter", "sum", "pool", "kind", upstreamFrees, 1,         \
    "Free calls a pool made to its upstream.")                                                   \
  X(upstreamSeconds, "upstream_seconds", "counter", "sum", "pool", "kind", upstreamNanos, 1e-9,  \
    "Seconds a pool spent in calls to its upstream.")                                            \
  X(gcReleased, "gc_released", "counter", "sum", "", "kind", gcReleased, 1,                      \
    "Buffers returned by the garbage-collection backstop instead of free(): leaks.")             \
  X(gcReleasedBytes, "gc_released_bytes", "counter", "sum", "", "kind", gcReleasedBytes, 1,      \
    "Bytes returned by the garbage-collection backstop instead of free(): leaks.")               \
  X(invalidFrees, "invalid_frees", "counter", "sum", "", "kind", invalidFrees, 1,                \
    "Frees the handler refused (a block it did not hand out, a second free, a wrong size or "    \
    "alignment): misuse of the C ABI.")                                                          \
  X(orphanedBytes, "orphaned_bytes", "gauge", "sum", "", "kind", orphanedBytes, 1,               \
    "Bytes kept out of use for good: an ArrayBuffer over them left a thread that then ended "    \
    "(hand buffers over with transfer() and adopt() instead).")                                  \
  X(orphanedBlocks, "orphaned_blocks", "gauge", "sum", "", "kind", orphanedBlocks, 1,            \
    "Blocks (a slab counts once) kept out of use for good, as orphaned_bytes counts them.")      \
  X(reservationBytes, "reservation_bytes", "gauge", "sum", "pool", "kind", reservationBytes, 1,  \
    "Bytes a pool reserved ahead of its misses (reserve(), initialBytes) and holds until "       \
    "trim({ reservation: true }); part of reserved_bytes.")                                      \
  X(hugePageFallbacks, "huge_page_fallbacks", "counter", "sum", "locked pinned", "kind",         \
    hugePageFallbacks, 1,                                                                        \
    "Mappings of 2 MiB or more a page-locking leaf asked huge pages for and got 4 KiB pages "    \
    "(transparent huge pages off, or madvise refused).")                                         \
  X(offNodeBytes, "off_node_bytes", "counter", "sum", "locked pinned", "kind", offNodeBytes, 1,  \
    "Bytes a page-locking leaf with a numaNode found on another node after first touch "         \
    "(sampled one page per 2 MiB).")                                                             \
  X(growthSeconds, "growth_seconds", "histogram", "sum", "pool", "kind le", growthBuckets, 1,    \
    "Time of each allocation call a pool made to its upstream (its growth: misses, reservation " \
    "chunks, requests passed through), in seconds.")                                             \
  X(growthSecondsSum, "growth_seconds_sum", "counter", "sum", "pool", "kind", growthNanos, 1e-9, \
    "The growth_seconds histogram's sum: seconds of upstream allocation calls.")                 \
  X(failures, "failures", "counter", "sum", "", "kind reason", failures, 1,                      \
    "Allocations the handler could not serve, by reason.")                                       \
  X(fallbacks, "fallbacks", "counter", "sum", "fallback", "from to reason", fallbacks, 1,        \
    "Allocations a fallback handler sent to its secondary, by reason (size, out-of-memory, "     \
    "unavailable).")

// How many snapshot slots a Stats field takes: 1, or one per reason.
#define PINPOOL_STAT_WIDTH(field) \
  static_cast<int>(sizeof(std::declval<Stats&>().field) / sizeof(std::atomic<uint64_t>))

// Where each statistic sits in a snapshot (Handler::read_stats(), the binding's stats()), in
// table order: kStat_<name>, and kReasonCount slots from there for a per-reason statistic.
enum StatSlot : int {
#define PINPOOL_STAT_SLOT(name, stem, type, aggregator, kinds, labels, field, scale, help) \
  kStat_##name, kStatLast_##name = kStat_##name + PINPOOL_STAT_WIDTH(field) - 1,
  PINPOOL_STATS(PINPOOL_STAT_SLOT)
#undef PINPOOL_STAT_SLOT
      kStatCount
};

// One row of PINPOOL_STATS, for code that walks the table (the binding's statsLayout()).
struct StatInfo {
  const char* name;
  const char* stem;
  const char* type;
  const char* aggregator;
  const char* kinds;
  const char* labels;
  int slot;
  int width;
  double scale;
  const char* help;
};

inline constexpr StatInfo kStatTable[] = {
#define PINPOOL_STAT_INFO(name, stem, type, aggregator, kinds, labels, field, scale, help) \
  {#name, stem, type, aggregator, kinds, labels, kStat_##name, PINPOOL_STAT_WIDTH(field),  \
   scale, help},
    PINPOOL_STATS(PINPOOL_STAT_INFO)
#undef PINPOOL_STAT_INFO
};

// The rules of the table, checked when it compiles: the stem is the name in snake_case, the type
// and aggregator are Prometheus's, and only a per-reason statistic has a `reason` label.
constexpr bool stat_stem_matches(const char* name, const char* stem) {
  for (;; name++, stem++) {
    char c = *name;
    if (c >= 'A' && c <= 'Z') {
      if (*stem++ != '_') return false;
      c = static_cast<char>(c - 'A' + 'a');
    }
    if (*stem != c) return false;
    if (c == 0) return true;
  }
}
constexpr bool stat_text_is(const char* a, const char* b) {
  for (; *a == *b; a++, b++)
    if (*a == 0) return true;
  return false;
}
constexpr bool stat_text_ends_with(const char* text, const char* tail) {
  const char* t = text;
  while (*t) t++;
  const char* u = tail;
  while (*u) u++;
  while (u > tail && t > text)
    if (*--u != *--t) return false;
  return u == tail;
}
constexpr bool stat_table_is_sound() {
  for (const StatInfo& s : kStatTable) {
    if (!stat_stem_matches(s.name, s.stem)) return false;
    bool histogram = stat_text_is(s.type, "histogram");
    if (!stat_text_is(s.type, "counter") && !stat_text_is(s.type, "gauge") && !histogram)
      return false;
    // A histogram's slots are its buckets, and it alone has an `le` label.
    if (histogram != stat_text_ends_with(s.labels, "le")) return false;
    if (histogram != (s.width == kGrowthBucketCount)) return false;
    if (!stat_text_is(s.aggregator, "sum") && !stat_text_is(s.aggregator, "max") &&
        !stat_text_is(s.aggregator, "first"))
      return false;
    if (stat_text_ends_with(s.labels, "reason") != (s.width == kReasonCount)) return false;
    if (s.width != 1 && s.width != kReasonCount && !histogram) return false;
  }
  return true;
}
static_assert(stat_table_is_sound(), "PINPOOL_STATS: a stem, type, aggregator or width is wrong");

}  // namespace pinpool
