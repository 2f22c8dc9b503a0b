// Native unit tests of the core, without Node and without a test framework: size classes, the
// pool (hits, trim, cap, stale blocks, pass-through, poisoning), fallback routing and limit,
// driven through a counting upstream written against the C ABI (include/pinpool.h), as a
// foreign extension would write one. Built with AddressSanitizer (PINPOOL_SANITIZE=ON), it
// also checks that the pool poisons what it caches, and that a write into a freed block kills
// the process with ASan's report (a death test in a forked child).
//
// Prints `native tests: N passed, M failed`; exits non-zero when anything failed.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "../../include/pinpool.h"
#include "../../native/core/block_registry.hpp"
#include "../../native/core/held_blocks.hpp"
#include "../../native/core/leases.hpp"
#include "../../native/handlers/fallback_adaptor.hpp"
#include "../../native/handlers/limit_adaptor.hpp"
#include "../../native/handlers/pageable_handler.hpp"
#include "../../native/handlers/pool/pool_adaptor.hpp"
#include "../../native/handlers/pool/size_classes.hpp"
#include "../../native/lifetime/registrations.hpp"
#include "../../native/support/asan.hpp"
#include "../../native/support/call_threads.hpp"

using namespace pinpool;

namespace {

int passed = 0;
int failed = 0;

// Like assert(), but counts, says where, and goes on (and is not compiled out by NDEBUG).
#define CHECK(cond)                                                          \
  do {                                                                       \
    if (cond) {                                                              \
      passed++;                                                              \
    } else {                                                                 \
      failed++;                                                              \
      std::fprintf(stderr, "FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                        \
  } while (0)

constexpr size_t KiB = 1024;
constexpr size_t MiB = 1024 * KiB;

// ---------------------------------------------------------------------------------------------
// A counting upstream, through the C ABI only: it counts calls and live bytes, can be told to
// fail, and (under ASan) checks that nothing comes back to it still poisoned.

struct Counting {
  pinpool_handler abi;                      // first member: &abi is what adaptors hold
  std::atomic<int> refs{1};                 // the test's own reference
  std::atomic<uint64_t> alloc_calls{0};     // alloc() calls, failed ones too
  std::atomic<uint64_t> allocs{0};          // successful alloc() calls
  std::atomic<uint64_t> frees{0};           // free() calls
  std::atomic<int64_t> live_bytes{0};       // bytes handed out and not yet freed
  std::atomic<uint64_t> poisoned_frees{0};  // blocks returned with poisoned bytes in them
  std::atomic<int> fail_code{PINPOOL_OK};   // when not OK, alloc() fails with this code
  bool destroyed = false;                   // destroy() ran (the last reference went)

  explicit Counting(const char* name) {
    abi.abi_version = PINPOOL_ABI_VERSION;
    abi.struct_size = sizeof(pinpool_handler);
    abi.name = name;
    abi.kind = "counting";
    abi.ctx = this;
    abi.alloc = [](void* ctx, size_t bytes, size_t alignment, pinpool_alloc_info* info) -> void* {
      auto* c = static_cast<Counting*>(ctx);
      c->alloc_calls++;
      if (int code = c->fail_code.load(); code != PINPOOL_OK) {
        info->code = code;
        info->reason = "counting-refused";  // a foreign reason text
        return nullptr;
      }
      void* p = nullptr;
      if (posix_memalign(&p, std::max(alignment, sizeof(void*)), bytes ? bytes : 1) != 0) {
        info->code = PINPOOL_ERR_OUT_OF_MEMORY;
        return nullptr;
      }
      c->allocs++;
      c->live_bytes += static_cast<int64_t>(bytes);
      return p;
    };
    abi.free = [](void* ctx, void* ptr, size_t bytes, size_t) {
      auto* c = static_cast<Counting*>(ctx);
#ifdef PINPOOL_ASAN
      if (__asan_region_is_poisoned(ptr, bytes ? bytes : 1) != nullptr) c->poisoned_frees++;
#endif
      c->frees++;
      c->live_bytes -= static_cast<int64_t>(bytes);
      std::free(ptr);
    };
    abi.retain = [](pinpool_handler* self) { static_cast<Counting*>(self->ctx)->refs++; };
    abi.release = [](pinpool_handler* self) {
      auto* c = static_cast<Counting*>(self->ctx);
      if (--c->refs == 0) self->destroy(self->ctx);
    };
    abi.destroy = [](void* ctx) { static_cast<Counting*>(ctx)->destroyed = true; };
  }
};

bool poisoned([[maybe_unused]] const void* p) {
#ifdef PINPOOL_ASAN
  return __asan_address_is_poisoned(p) != 0;
#else
  return false;
#endif
}

void* alloc(Handler* h, size_t bytes, size_t alignment = 64, pinpool_alloc_info* out = nullptr) {
  pinpool_alloc_info info{};
  void* p = h->allocate(bytes, alignment, &info);
  if (out) *out = info;
  return p;
}

// ---------------------------------------------------------------------------------------------

void test_size_classes() {
  using namespace size_classes;
  for (int i = 0; i < kCount; i++) {
    size_t s = size_of(i);
    CHECK(s % kGranule == 0);
    CHECK(index_of(s) == i);
    if (i + 1 < kCount) {
      CHECK(size_of(i + 1) > s);        // monotonic
      CHECK(index_of(s + 1) == i + 1);  // one byte more is the next class
    }
    // Above 1 KiB, the smallest request a class serves wastes under 1/8 of itself.
    if (s > kLinearMax) {
      size_t smallest = size_of(i - 1) + 1;
      CHECK((s - smallest) * 8 < smallest);
    }
  }
  CHECK(size_of(kCount - 1) == kMaxBytes);
  // Every request up to 1 MiB lands in the smallest class that holds it.
  bool all = true;
  for (size_t bytes = 1; bytes <= 1 * MiB; bytes++) {
    int i = index_of(bytes);
    if (size_of(i) < bytes || (i > 0 && size_of(i - 1) >= bytes)) all = false;
  }
  CHECK(all);
  // The pool's division without a divide: exact for every class a slab holds, at every block
  // boundary of a 4 MiB slab and one byte either side.
  bool exact = true;
  for (int i = 0; size_of(i) <= PoolAdaptor::kSlabMaxBlock; i++) {
    size_t d = size_of(i);
    uint64_t r = reciprocal_of(d);
    for (size_t n = 0; n < 4 * MiB; n += d)
      for (size_t x : {n, n + 1, n + d - 1})
        if (x < 4 * MiB && divide(static_cast<uint32_t>(x), r) != x / d) exact = false;
  }
  CHECK(exact);
}

void test_pool_hits() {
  Counting up("up");
  auto* pool = new PoolAdaptor("pool", &up.abi, PoolOptions{});
  CHECK(up.refs == 2);  // the pool holds its upstream

  pinpool_alloc_info info{};
  void* a = alloc(pool, 100, 64, &info);
  CHECK(a != nullptr);
  CHECK(up.allocs == 1);  // one slab
  CHECK(info.slab != nullptr && info.slab_bytes >= 128);
  pool->deallocate(a, 100, 64);
  void* b = alloc(pool, 100);
  CHECK(b == a);               // a hit: the same block
  void* c = alloc(pool, 120);  // same class (128), carved from the same slab
  CHECK(c != nullptr && c != b);
  CHECK(up.allocs == 1);  // neither made an upstream call
  CHECK(pool->stats().upstreamAllocs == 1);

  void* large = alloc(pool, 1 * MiB, 4096);
  CHECK(large != nullptr);
  CHECK(up.allocs == 2);
  pool->deallocate(large, 1 * MiB, 4096);
  void* again = alloc(pool, 1 * MiB, 4096);
  CHECK(again == large);
  CHECK(up.allocs == 2);

  // Alignments above a page pass straight through, every time.
  void* odd = alloc(pool, 100, 8192);
  CHECK(odd != nullptr && reinterpret_cast<uintptr_t>(odd) % 8192 == 0);
  CHECK(up.allocs == 3);
  pool->deallocate(odd, 100, 8192);
  CHECK(up.frees == 1);

  pool->deallocate(again, 1 * MiB, 4096);
  pool->deallocate(b, 100, 64);
  pool->deallocate(c, 120, 64);
  pool->release();
  CHECK(up.frees == up.allocs);  // the destructor gave everything back
  CHECK(up.live_bytes == 0);
  CHECK(up.refs == 1);
  CHECK(!up.destroyed);
  CHECK(up.poisoned_frees == 0);  // unpoisoned before it went back
}

void test_pool_trim() {
  Counting up("up");
  auto* pool = new PoolAdaptor("pool", &up.abi, PoolOptions{});
  std::vector<std::pair<void*, size_t>> blocks;
  for (size_t bytes :
       {size_t{64}, size_t{100}, size_t{1000}, 4 * KiB, size_t{70000}, size_t{300000}, 3 * MiB})
    blocks.emplace_back(alloc(pool, bytes), bytes);
  for (auto [p, bytes] : blocks) CHECK(p != nullptr);

  // A live block keeps its slab: trim gives back only what is wholly free.
  void* keep = blocks[0].first;
  for (size_t i = 1; i < blocks.size(); i++)
    pool->deallocate(blocks[i].first, blocks[i].second, 64);
  CHECK(pool->trim() > 0);
  CHECK(up.live_bytes > 0);
  CHECK(up.allocs == up.frees + 1);
  pool->deallocate(keep, 64, 64);
  pool->trim();
  CHECK(up.live_bytes == 0);
  CHECK(up.frees == up.allocs);
  CHECK(pool->stats().cachedBytes == 0);
  CHECK(pool->stats().reserved.current == 0);
  CHECK(pool->stats().bytes.current == 0);
  pool->release();
  CHECK(up.refs == 1);
  CHECK(up.poisoned_frees == 0);
}

// Reservations (PoolAdaptor::reserve()): chunks from the upstream that misses carve from, kept by
// trim(), given back whole by trim_reservation(), unpoisoned before they go.
void test_reservation() {
  Counting up("up");
  PoolOptions options;
  options.chunk_bytes = 4 * MiB;
  auto* pool = new PoolAdaptor("reserving", &up.abi, options);
  pinpool_alloc_info info{};
  CHECK(pool->reserve(pool->begin_reservation(), 10 * MiB, &info));
  CHECK(up.allocs == 3);
  CHECK(pool->stats().reservationBytes == 12 * MiB);
  CHECK(pool->stats().cachedBytes == 12 * MiB);
  std::vector<std::pair<void*, size_t>> blocks;
  for (size_t bytes : {size_t{64}, size_t{1000}, 70 * KiB, 300 * KiB, 1 * MiB, 3 * MiB, 2 * MiB})
    blocks.emplace_back(alloc(pool, bytes), bytes);
  for (auto [p, bytes] : blocks) {
    CHECK(p != nullptr);
    std::memset(p, 0x5a, bytes);
  }
  CHECK(up.allocs == 3);  // every block carved from the reservation
  // Freed out of order, so the chunks' room coalesces from both sides.
  for (size_t i : {3, 1, 5, 0, 6, 2, 4}) pool->deallocate(blocks[i].first, blocks[i].second, 64);
  pool->trim();
  CHECK(up.frees == 0);  // trim() keeps the reservation
  CHECK(pool->stats().cachedBytes == 12 * MiB);
  CHECK(pool->trim_reservation() == 12 * MiB);
  CHECK(up.frees == 3);
  CHECK(up.live_bytes == 0);
  CHECK(pool->stats().reservationBytes == 0);
  CHECK(pool->stats().cachedBytes == 0);
  CHECK(pool->stats().reserved.current == 0);
  // A block larger than a chunk is not carved; a refused reservation gives back what it took.
  CHECK(pool->reserve(pool->begin_reservation(), 4 * MiB, &info));
  void* big = alloc(pool, 6 * MiB);
  CHECK(big != nullptr && up.allocs == 5);
  pool->deallocate(big, 6 * MiB, 64);
  pool->trim_reservation();
  CHECK(up.live_bytes == 0);
  pool->release();
  CHECK(up.poisoned_frees == 0);
}

// A reservation on one thread while others allocate and free: no block is handed out twice,
// every pattern holds, and everything goes back.
void test_reservation_threads() {
  Counting up("up");
  PoolOptions options;
  options.chunk_bytes = 2 * MiB;
  auto* pool = new PoolAdaptor("reserving", &up.abi, options);
  std::atomic<int> bad{0};
  uint64_t id = pool->begin_reservation();
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    pinpool_alloc_info info{};
    if (!pool->reserve(id, 24 * MiB, &info)) bad++;
  });
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      const size_t sizes[] = {64, 1000, 4096, 70000, 300000, 900000};
      std::vector<std::pair<unsigned char*, size_t>> live;
      uint32_t x = 777u + static_cast<uint32_t>(t);
      for (int i = 0; i < 4000; i++) {
        x = x * 1664525u + 1013904223u;
        if (live.size() < 6 && (x >> 28) < 10) {
          size_t bytes = sizes[(x >> 8) % 6];
          auto* p = static_cast<unsigned char*>(alloc(pool, bytes));
          if (!p) {
            bad++;
            continue;
          }
          std::memset(p, t + 1, bytes);
          live.emplace_back(p, bytes);
        } else if (!live.empty()) {
          auto [p, bytes] = live.back();
          live.pop_back();
          if (p[0] != t + 1 || p[bytes - 1] != t + 1) bad++;
          pool->deallocate(p, bytes, 64);
        }
        if (i % 500 == 0) pool->trim();
      }
      for (auto [p, bytes] : live) pool->deallocate(p, bytes, 64);
    });
  }
  for (auto& t : threads) t.join();
  CHECK(bad == 0);
  CHECK(pool->stats().bytes.current == 0);
  pool->trim_reservation();
  CHECK(up.live_bytes == 0);
  CHECK(pool->stats().cachedBytes == 0);
  CHECK(pool->stats().reservationBytes == 0);
  pool->release();
}

void test_pool_cap_and_stale() {
  {
    Counting up("up");
    PoolOptions options;
    options.max_cached_bytes = 2 * MiB;
    options.cache_ratio = 1e300;  // never give back stale blocks: only the cap acts
    auto* pool = new PoolAdaptor("capped", &up.abi, options);
    void* blocks[3];
    for (void*& p : blocks) p = alloc(pool, 1 * MiB, 4096);
    for (void* p : blocks) pool->deallocate(p, 1 * MiB, 4096);
    CHECK(up.frees == 1);  // two fit under the cap; the third went back at once
    CHECK(pool->stats().cachedBytes == 2 * MiB);
    pool->release();
    CHECK(up.live_bytes == 0);
    CHECK(up.poisoned_frees == 0);
  }
  {
    Counting up("up");
    auto* pool = new PoolAdaptor("stale", &up.abi, PoolOptions{});  // cache_ratio 0.1
    void* old = alloc(pool, 1 * MiB, 4096);
    pool->deallocate(old, 1 * MiB, 4096);
    CHECK(up.frees == 0);
    // Growing for another size while nothing is in use: the cached 1 MiB is stale.
    void* fresh = alloc(pool, 2 * MiB, 4096);
    CHECK(fresh != nullptr);
    CHECK(up.frees == 1);
    pool->deallocate(fresh, 2 * MiB, 4096);
    pool->release();
    CHECK(up.live_bytes == 0);
    CHECK(up.poisoned_frees == 0);
  }
}

// A pool over a pool: only blocks carved from the called pool's own slabs name a slab (the
// slab a slabViews pool views in JavaScript); passed-through and large blocks name none, even
// though the upstream pool carved them from a slab of its own.
void test_pool_slabs() {
  Counting up("up");
  auto* inner = new PoolAdaptor("inner", &up.abi, PoolOptions{});
  PoolOptions options;
  options.max_cached_bytes = 5000;  // blocks above it pass straight through to `inner`
  auto* outer = new PoolAdaptor("outer", inner->abi(), options);
  pinpool_alloc_info info{};
  void* small = alloc(outer, 1000, 64, &info);
  CHECK(small != nullptr && info.slab != nullptr);
  void* slab = info.slab;
  size_t slab_bytes = info.slab_bytes;
  CHECK(outer->lease_slab(slab) == slab_bytes);    // the slab, and its real size
  void* through = alloc(outer, 65536, 64, &info);  // inner carves it from a slab of its own
  CHECK(through != nullptr && info.slab == nullptr && info.slab_bytes == 0);
  CHECK(outer->lease_slab(static_cast<char*>(through)) == 0);
  options.max_cached_bytes = uint64_t{1} << 30;
  auto* large_pool = new PoolAdaptor("large", inner->abi(), options);
  void* large = alloc(large_pool, 1 * MiB, 4096, &info);
  CHECK(large != nullptr && info.slab == nullptr);
  large_pool->deallocate(large, 1 * MiB, 4096);
  large = alloc(large_pool, 1 * MiB, 4096, &info);  // from its cache, still no slab
  CHECK(large != nullptr && info.slab == nullptr);
  large_pool->deallocate(large, 1 * MiB, 4096);
  large_pool->release();
  outer->end_slab_lease(slab);
  outer->deallocate(through, 65536, 64);
  outer->deallocate(small, 1000, 64);
  outer->release();
  inner->release();
  CHECK(up.live_bytes == 0);
}

void test_pool_poisoning() {
  if (!asan::kEnabled) return;
  Counting up("up");
  auto* pool = new PoolAdaptor("pool", &up.abi, PoolOptions{});
  auto* p = static_cast<char*>(alloc(pool, 100));  // class 128
  CHECK(!poisoned(p) && !poisoned(p + 99));
  CHECK(poisoned(p + 100));  // past the request, inside the class
  CHECK(poisoned(p + 128));  // the slab's uncarved room
  pool->deallocate(p, 100, 64);
  CHECK(poisoned(p));  // cached
  auto* q = static_cast<char*>(alloc(pool, 128));
  CHECK(q == p && !poisoned(q) && !poisoned(q + 127));
  pool->deallocate(q, 128, 64);

  auto* large = static_cast<char*>(alloc(pool, 1 * MiB - 100, 4096));  // class 1 MiB
  CHECK(!poisoned(large) && !poisoned(large + 1 * MiB - 101));
  CHECK(poisoned(large + 1 * MiB - 96));
  pool->deallocate(large, 1 * MiB - 100, 4096);
  CHECK(poisoned(large));
  pool->release();
  CHECK(up.live_bytes == 0);
  CHECK(up.poisoned_frees == 0);  // everything was unpoisoned before it went back
}

void test_fallback() {
  Counting a("primary"), b("secondary");
  auto* fb = new FallbackAdaptor("fallback", &a.abi, &b.abi, 16, 64 * KiB);
  const Stats& st = fb->stats();
  auto fallbacks = [&](Reason r) { return st.fallbacks[static_cast<int>(r)].load(); };

  void* in_range = alloc(fb, 4 * KiB);
  void* tiny = alloc(fb, 8);
  void* big = alloc(fb, 1 * MiB);
  CHECK(a.allocs == 1 && b.allocs == 2);
  CHECK(fallbacks(Reason::Size) == 2);

  a.fail_code = PINPOOL_ERR_OUT_OF_MEMORY;
  void* moved = alloc(fb, 4 * KiB);
  CHECK(moved != nullptr && b.allocs == 3);
  CHECK(fallbacks(Reason::OutOfMemory) == 1);
  a.fail_code = PINPOOL_OK;

  // Each block goes back to the handler that served it, in range or not.
  fb->deallocate(moved, 4 * KiB, 64);
  CHECK(b.frees == 1 && a.frees == 0);
  fb->deallocate(in_range, 4 * KiB, 64);
  CHECK(a.frees == 1);
  fb->deallocate(tiny, 8, 64);
  fb->deallocate(big, 1 * MiB, 64);
  CHECK(b.frees == 3);

  // Any other error propagates; the secondary is not asked.
  a.fail_code = PINPOOL_ERR_INVALID_ARGUMENT;
  pinpool_alloc_info info{};
  CHECK(alloc(fb, 4 * KiB, 64, &info) == nullptr);
  CHECK(info.code == PINPOOL_ERR_INVALID_ARGUMENT);
  CHECK(b.alloc_calls == 3);

  // "Unavailable" is for good: the primary is not asked again, and the fallback is counted once.
  a.fail_code = PINPOOL_ERR_UNAVAILABLE;
  void* u1 = alloc(fb, 4 * KiB);
  a.fail_code = PINPOOL_OK;
  uint64_t asked = a.alloc_calls;
  void* u2 = alloc(fb, 4 * KiB);
  CHECK(u1 && u2 && a.alloc_calls == asked);
  CHECK(fallbacks(Reason::Unavailable) == 1);
  fb->deallocate(u1, 4 * KiB, 64);
  fb->deallocate(u2, 4 * KiB, 64);

  fb->release();
  CHECK(a.live_bytes == 0 && b.live_bytes == 0);
  CHECK(a.refs == 1 && b.refs == 1);
}

// HeldBlocks (Handler::hold) against std::unordered_set: random inserts, erases and lookups
// over address ranges from dense (long probe runs, wrapping deletions) to sparse.
void test_held_blocks() {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 20; round++) {
    pinpool::HeldBlocks held;
    std::unordered_set<const void*> model;
    const uint64_t range = 1 + (round * 151) % 3000;
    for (int i = 0; i < 50000; i++) {
      const void* p = reinterpret_cast<const void*>((1 + rng() % range) * 64);
      switch (rng() % 3) {
        case 0:
          held.insert(p);
          model.insert(p);
          break;
        case 1:
          held.erase(p);
          model.erase(p);
          break;
        default:
          CHECK(held.contains(p) == (model.count(p) != 0));
      }
      CHECK(held.size() == model.size());
    }
    for (const void* p : model) CHECK(held.contains(p));
  }
}

void test_limit() {
  Counting up("up");
  auto* lim = new LimitAdaptor("limit", &up.abi, 1000);
  void* p = alloc(lim, 600);
  CHECK(p != nullptr);
  pinpool_alloc_info info{};
  CHECK(alloc(lim, 600, 64, &info) == nullptr);
  CHECK(info.code == PINPOOL_ERR_OUT_OF_MEMORY);
  CHECK(info.reason && std::strcmp(info.reason, "limit") == 0);
  // Counted under its own reason (the reason text is compared where it is counted).
  CHECK(lim->stats().failures[static_cast<int>(Reason::Limit)] == 1);
  CHECK(up.alloc_calls == 1);  // refused before the upstream was asked
  lim->deallocate(p, 600, 64);
  void* q = alloc(lim, 1000);
  CHECK(q != nullptr);
  lim->deallocate(q, 1000, 64);
  lim->release();
  CHECK(up.live_bytes == 0 && up.refs == 1);
}

// Deferred frees (deallocate with fences, for blocks an asynchronous copy may still use) are
// checked when their fences signal: a refused one is counted and its statistics are taken back, and
// a limit's budget returns only when the free is done.
void test_deferred_frees() {
  {
    Counting up("up");
    auto* pool = new PoolAdaptor("pool", &up.abi, PoolOptions{});
    void* p = alloc(pool, 100);
    Fence* copy = Fence::create();
    pool->deallocate(p, 100, 64, false, FenceSet({copy}));
    pool->deallocate(p, 100, 64, false, FenceSet({copy}));  // a second free, deferred as well
    CHECK(pool->deferred() == 2);
    copy->signal();
    CHECK(pool->reclaim() == 2);
    const Stats& st = pool->stats();
    CHECK(st.invalidFrees == 1);
    CHECK(st.frees == 1 && st.bytes.current == 0 && st.allocations.current == 0);
    void* a = alloc(pool, 100);
    void* b = alloc(pool, 100);
    CHECK(a && b && a != b);  // in the free list once
    pool->deallocate(a, 100, 64);
    pool->deallocate(b, 100, 64);
    copy->release();
    pool->release();
    CHECK(up.live_bytes == 0);
  }
  {
    Counting up("up");
    auto* lim = new LimitAdaptor("limit", &up.abi, 1000);
    void* p = alloc(lim, 600);
    Fence* copy = Fence::create();
    lim->deallocate(p, 600, 64, false, FenceSet({copy}));
    CHECK(lim->stats().bytes.current == 0);
    CHECK(alloc(lim, 600) == nullptr);  // the copy still uses the block: its bytes still count
    copy->signal();
    void* q = alloc(lim, 600);  // allocate() reclaims first
    CHECK(q != nullptr);
    lim->deallocate(q, 600, 64);
    CHECK(lim->stats().bytes.peak <= 1000);
    copy->release();
    lim->release();
    CHECK(up.live_bytes == 0);
  }
  {
    // A deferred free naming another size of the block's class is counted as named, then
    // corrected to the block's own size when it is finished: at every level, and in the budget.
    Counting up("up");
    auto* pool = new PoolAdaptor("pool", &up.abi, PoolOptions{});
    auto* lim = new LimitAdaptor("limit", pool->abi(), 1000);
    pool->release();  // the limit holds it
    for (size_t named : {size_t{1010}, size_t{990}}) {
      void* p = alloc(lim, 1000);
      Fence* copy = Fence::create();
      lim->deallocate(p, named, 64, false, FenceSet({copy}));
      copy->signal();
      CHECK(lim->reclaim() == 1);
      CHECK(lim->stats().bytes.current == 0 && lim->stats().invalidFrees == 0);
      CHECK(pool->stats().bytes.current == 0);
      void* q = alloc(lim, 1000);  // the whole budget came back, and no more
      CHECK(q != nullptr);
      CHECK(alloc(lim, 1) == nullptr);
      lim->deallocate(q, 1000, 64);
      copy->release();
    }
    lim->release();
    CHECK(up.live_bytes == 0);
  }
}

// Threads share one pool; each writes a pattern over the bytes it asked for and checks it at
// free. Under ASan a block poisoned while another thread owns it would be reported here.
void test_threads() {
  Counting up("up");
  auto* pool = new PoolAdaptor("shared", &up.abi, PoolOptions{});
  constexpr int kThreads = 4;
  constexpr int kOps = 20000;
  std::atomic<int> bad{0};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      const size_t sizes[] = {64, 100, 1000, 4096, 70000, 300000};
      std::vector<std::pair<unsigned char*, size_t>> live;
      uint32_t x = 12345u + static_cast<uint32_t>(t);
      for (int i = 0; i < kOps; i++) {
        x = x * 1664525u + 1013904223u;
        if (live.size() < 8 && (x >> 28) < 10) {
          size_t bytes = sizes[(x >> 8) % 6];
          auto* p = static_cast<unsigned char*>(alloc(pool, bytes));
          if (!p) {
            bad++;
            continue;
          }
          std::memset(p, t + 1, bytes);
          live.emplace_back(p, bytes);
        } else if (!live.empty()) {
          auto [p, bytes] = live.back();
          live.pop_back();
          if (p[0] != t + 1 || p[bytes - 1] != t + 1) bad++;
          pool->deallocate(p, bytes, 64);
        }
      }
      for (auto [p, bytes] : live) pool->deallocate(p, bytes, 64);
    });
  }
  for (auto& th : threads) th.join();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start);
  std::printf(
      "native tests: threads: %d x %d pool operations in %lld ms, %llu upstream allocations\n",
      kThreads, kOps, static_cast<long long>(ms.count()),
      static_cast<unsigned long long>(up.allocs.load()));
  CHECK(bad == 0);
  CHECK(pool->stats().bytes.current == 0);
  pool->release();
  CHECK(up.live_bytes == 0);
  CHECK(up.poisoned_frees == 0);
}

// Runs `body` in a forked child with its stderr on a pipe; true when the child died (did not
// exit 0) and its stderr holds `expected`.
bool dies_with(const char* expected, void (*body)(), std::string* report) {
  int fds[2];
  if (pipe(fds) != 0) return false;
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], STDERR_FILENO);
    body();
    _exit(0);  // not reached when ASan catches the access
  }
  close(fds[1]);
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) report->append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  bool died = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  return died && report->find(expected) != std::string::npos;
}

void write_after_free_small() {
  Counting up("up");
  auto* pool = new PoolAdaptor("pool", &up.abi, PoolOptions{});
  auto* p = static_cast<volatile char*>(alloc(pool, 256));
  p[0] = 1;
  pool->deallocate(const_cast<char*>(p), 256, 64);
  p[8] = 2;  // the block is in the pool's free list now
}

void write_after_free_large() {
  Counting up("up");
  auto* pool = new PoolAdaptor("pool", &up.abi, PoolOptions{});
  auto* p = static_cast<volatile char*>(alloc(pool, 1 * MiB, 4096));
  pool->deallocate(const_cast<char*>(p), 1 * MiB, 4096);
  p[4096] = 2;
}

void write_past_request() {
  Counting up("up");
  auto* pool = new PoolAdaptor("pool", &up.abi, PoolOptions{});
  auto* p = static_cast<volatile char*>(alloc(pool, 100));  // class 128
  p[100] = 1;  // inside the class, past what was asked for
}

void test_death() {
  if (!asan::kEnabled) {
    std::printf("native tests: death tests skipped (not an AddressSanitizer build)\n");
    return;
  }
  struct Case {
    const char* name;
    void (*body)();
  };
  for (Case c : {Case{"write into a freed small block", write_after_free_small},
                 Case{"write into a freed large block", write_after_free_large},
                 Case{"write past the bytes asked for", write_past_request}}) {
    std::string report;
    bool ok = dies_with("use-after-poison", c.body, &report);
    CHECK(ok);
    std::printf("native tests: death test: %s: %s\n", c.name,
                ok ? "the child died with ASan's use-after-poison report" : "NOT CAUGHT");
    if (!ok) {
      std::fprintf(stderr, "child's stderr:\n%s\n", report.c_str());
      continue;
    }
    // The report's headline and the first frame: the access, in this file.
    for (const char* key : {"ERROR: AddressSanitizer", "#0 "}) {
      size_t at = report.find(key);
      if (at == std::string::npos) continue;
      size_t end = report.find('\n', at);
      std::printf("native tests:   %s\n", report.substr(at, end - at).c_str());
    }
  }
}

}  // namespace

// Leases are taken from memory: a lease on a range defers the free of every block overlapping
// it, at every level of a chain (the pool's block, and the leaf block under a slab at trim()),
// and the block registry knows leaf blocks by address range, whoever holds a pointer into them.
void test_leases_and_registry() {
  auto* leaf = new PageableHandler("pageable");
  auto* pool = new PoolAdaptor("pool", leaf->abi(), PoolOptions{});
  leaf->release();  // the pool holds it
  void* p = alloc(pool, 4096);
  CHECK(p != nullptr);
  block_registry::Found found = block_registry::find(static_cast<char*>(p) + 100, 200);
  CHECK(found.kind && std::strcmp(found.kind, "pageable") == 0);  // inside the slab under it
  CHECK(!block_registry::find(&found, 1).kind);                   // the stack is nobody's
  Fence* copy = Fence::create();
  leases::take(static_cast<char*>(p) + 100, 200, copy);  // a copy into the middle of the block
  CHECK(leases::any());
  pool->deallocate(p, 4096, 64);
  CHECK(pool->deferred() == 1 && pool->stats().bytes.current == 0);
  void* q = alloc(pool, 4096);
  CHECK(q != nullptr && q != p);  // not handed out again while the copy runs
  pool->deallocate(q, 4096, 64);
  pool->trim();  // the slab holding p is not free yet: p waits
  CHECK(block_registry::find(p, 4096).kind != nullptr);
  copy->signal();
  CHECK(pool->reclaim() == 1);
  void* again = alloc(pool, 4096);
  CHECK(again != nullptr);
  pool->deallocate(again, 4096, 64);
  CHECK(pool->trim() > 0);
  CHECK(!block_registry::find(p, 1).kind);  // the leaf block went back: forgotten
  std::vector<Fence*> still;
  leases::overlapping(p, 4096, still);  // forgets the leases whose fences signalled
  CHECK(still.empty() && !leases::any());
  copy->release();
  pool->release();
}

// Registrations (lifetime/registrations.hpp): found only for ranges wholly inside, in the same
// buffer; copies take uses from several threads while the owner ends it, and the driver's
// unregister (its lease, here) comes only after the last use. No driver is loaded: the
// unregister call fails, and the bookkeeping is what is tested.
void test_registrations() {
  std::vector<char> memory(1 << 16);
  char* buffer = memory.data();
  char* start = buffer + 4096;
  Fence* lease = Fence::create();
  lease->retain();  // ours, to read after the registration lets go of it
  registrations::Registration* r = registrations::add(start, 8192, 0, true, buffer, lease);
  for (auto range : {std::pair<size_t, size_t>{0, 8192}, {1000, 100}, {8191, 1}}) {
    registrations::Registration* u =
        registrations::use(start + range.first, range.second, buffer, 0);
    CHECK(u == r);
    if (u) registrations::end_use(u);
  }
  CHECK(!registrations::use(start - 1, 2, buffer, 0));       // starts before it
  CHECK(!registrations::use(start + 8191, 2, buffer, 0));    // runs past its end
  CHECK(!registrations::use(start, 8192, buffer + 1, 0));    // another buffer at that address
  CHECK(!registrations::use(buffer + 30000, 1, buffer, 0));  // elsewhere
  // Not portable: page-locked for its device's context only; pageable to another device's.
  Fence* local = Fence::create();
  registrations::Registration* device_only =
      registrations::add(buffer + 20000, 100, 1, false, buffer, local);
  CHECK(!registrations::use(buffer + 20000, 100, buffer, 0));
  registrations::Registration* on_1 = registrations::use(buffer + 20000, 100, buffer, 1);
  CHECK(on_1 == device_only);
  if (on_1) registrations::end_use(on_1);
  registrations::end(device_only);
  registrations::Registration* held = registrations::use(start, 1, buffer, 0);  // a copy in flight
  std::atomic<bool> go{false};
  std::atomic<int> found{0};
  std::vector<std::thread> copies;
  for (int t = 0; t < 4; t++)
    copies.emplace_back([&] {
      while (!go.load()) {}
      for (int i = 0; i < 20000; i++)
        if (registrations::Registration* u = registrations::use(start + i % 8192, 1, buffer, 0)) {
          found++;
          registrations::end_use(u);
        }
    });
  go = true;
  registrations::end(r);                            // unregister() while copies run
  CHECK(!registrations::use(start, 1, buffer, 0));  // later copies do not find it
  for (auto& t : copies) t.join();
  CHECK(!lease->done());  // the held use still keeps the driver from unregistering
  registrations::end_use(held);
  CHECK(lease->done());
  lease->release();
  // An owner that goes without ending it (its thread ended): the lease is abandoned.
  Fence* orphan = Fence::create();
  orphan->retain();
  registrations::Registration* r2 = registrations::add(start, 8192, 0, true, buffer, orphan);
  held = registrations::use(start, 8192, buffer, 0);
  registrations::forget(r2);
  CHECK(!registrations::use(start, 8192, buffer, 0));
  registrations::end_use(held);
  CHECK(orphan->abandoned());
  orphan->release();
}

// CallThreads (support/call_threads.hpp): every task runs, on at most its maximum of threads,
// and tasks that block do not stop the others from being queued.
void test_call_threads() {
  struct Tasks {
    std::mutex mutex;
    CondVar changed;
    int running = 0, most = 0, done = 0;
    bool release = false;
  };
  static auto* threads = new CallThreads(4);  // leaked: its threads never end
  auto* tasks = new Tasks();                  // leaked with them
  for (int i = 0; i < 64; i++)
    threads->run(
        [](void* arg) {
          auto* t = static_cast<Tasks*>(arg);
          std::unique_lock<std::mutex> lock(t->mutex);
          t->most = std::max(t->most, ++t->running);
          t->changed.notify_all();
          t->changed.wait(lock, [&] { return t->release; });
          t->running--;
          t->done++;
          t->changed.notify_all();
        },
        tasks);
  std::unique_lock<std::mutex> lock(tasks->mutex);
  tasks->changed.wait(lock, [&] { return tasks->running == 4; });  // four blocked at once ...
  tasks->release = true;
  tasks->changed.notify_all();
  tasks->changed.wait(lock, [&] { return tasks->done == 64; });  // ... and then all ran
  CHECK(tasks->most == 4);
}

int main() {
  auto start = std::chrono::steady_clock::now();
  test_size_classes();
  test_pool_hits();
  test_pool_trim();
  test_pool_cap_and_stale();
  test_reservation();
  test_pool_slabs();
  test_pool_poisoning();
  test_fallback();
  test_limit();
  test_held_blocks();
  test_deferred_frees();
  test_leases_and_registry();
  test_death();  // forks: before any thread is started
  test_threads();
  test_reservation_threads();
  test_registrations();
  test_call_threads();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start);
  std::printf("native tests: %d passed, %d failed in %lld ms (AddressSanitizer %s)\n", passed,
              failed, static_cast<long long>(ms.count()), asan::kEnabled ? "on" : "off");
  return failed == 0 ? 0 : 1;
}
