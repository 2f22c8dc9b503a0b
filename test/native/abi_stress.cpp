// Many threads through the C ABI at once, as several threads of another addon would call it:
//
//   - a stress: 8 threads allocate and free through pool(pageable), limit(pool(pageable)) and two
//     fallbacks (one whose primary is often full, so blocks in its range come from either side),
//     with a quarter of the blocks freed by another thread than the one that allocated them,
//     and a pattern written into every block and checked at its free;
//   - racing double frees: two threads free the same block at the same moment, and exactly one
//     of the frees is accepted;
//   - a limit's statistics under 8 threads never read more than its cap
//   (docs/decisions/0011-c-abi-contract.md; a bug fixed once:
//     the budget came back before the statistics dropped).
//
// Built with -fsanitize=thread by scripts/tsan/test-tsan.sh, it is the ThreadSanitizer test of the
// core; in the plain and ASan builds it runs with fewer operations. PINPOOL_NATIVE_STRESS_OPS sets
// the operations per thread and chain (default 20000).
//
// Prints `abi stress: N passed, M failed`; exits non-zero when anything failed.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../../include/pinpool.h"
#include "../../native/handlers/fallback_adaptor.hpp"
#include "../../native/handlers/limit_adaptor.hpp"
#include "../../native/handlers/pageable_handler.hpp"
#include "../../native/handlers/pool/pool_adaptor.hpp"
#include "check.hpp"

using namespace pinpool;

namespace {

constexpr int kThreads = 8;
constexpr size_t KiB = 1024;

Handler* own(Handler* adaptor, std::initializer_list<Handler*> upstreams) {
  for (Handler* h : upstreams) h->release();
  return adaptor;
}
Handler* pageable() { return new PageableHandler("pageable"); }
Handler* pool(Handler* up) {
  return own(new PoolAdaptor(std::string("pool(") + up->name() + ")", up->abi(), PoolOptions{}),
             {up});
}
Handler* limit(Handler* up, uint64_t cap) {
  return own(new LimitAdaptor(std::string("limit(") + up->name() + ")", up->abi(), cap), {up});
}
Handler* fallback(Handler* primary, Handler* secondary, uint64_t max_bytes) {
  return own(new FallbackAdaptor(
                 std::string("fallback(") + primary->name() + ", " + secondary->name() + ")",
                 primary->abi(), secondary->abi(), 0, max_bytes),
             {primary, secondary});
}

long ops_per_thread() {
  const char* v = std::getenv("PINPOOL_NATIVE_STRESS_OPS");
  long n = v ? std::atol(v) : 0;
  return n > 0 ? n : 20000;
}

// A small deterministic generator per thread.
struct Random {
  uint64_t x;
  uint32_t next() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return static_cast<uint32_t>(x >> 16);
  }
};

struct Block {
  unsigned char* ptr;
  size_t bytes;
  size_t alignment;
  uint8_t tag;
};

// What a block is filled with: its tag in every byte, so any byte can be checked.
void fill(const Block& b) { std::memset(b.ptr, b.tag, b.bytes); }
bool intact(const Block& b) {
  if (b.bytes == 0) return true;
  // Every 256th byte and the last: a stray write from a block handed out twice lands somewhere
  // in a run, and this keeps the check cheap under ThreadSanitizer.
  for (size_t i = 0; i < b.bytes; i += 256)
    if (b.ptr[i] != b.tag) return false;
  return b.ptr[b.bytes - 1] == b.tag;
}

// Blocks handed from one thread to another, to be freed there.
class Mailbox {
 public:
  void put(const Block& b) {
    std::lock_guard<std::mutex> lock(mutex_);
    blocks_.push_back(b);
  }
  bool take(Block* out) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (blocks_.empty()) return false;
    *out = blocks_.back();
    blocks_.pop_back();
    return true;
  }

 private:
  std::mutex mutex_;
  std::vector<Block> blocks_;
};

struct Outcome {
  std::atomic<uint64_t> bad_patterns{0};   // blocks whose pattern changed while live
  std::atomic<uint64_t> failed_allocs{0};  // allocations refused for another reason than a limit
};

// One chain, 8 threads: random sizes (mostly small, some 64 KiB-class, a few large), up to 16
// live blocks per thread, a quarter of the frees through the mailbox of the next thread.
void stress_chain(const char* name, Handler* core, long ops) {
  pinpool_handler* h = core->abi();
  Outcome outcome;
  std::vector<Mailbox> mailboxes(kThreads);
  std::atomic<int> running{kThreads};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      Random rng{0x9E3779B97F4A7C15ull * static_cast<uint64_t>(t + 1)};
      std::vector<Block> live;
      auto free_block = [&](const Block& b) {
        if (!intact(b)) outcome.bad_patterns++;
        h->free(h->ctx, b.ptr, b.bytes, b.alignment);
      };
      for (long i = 0; i < ops; i++) {
        uint32_t r = rng.next();
        Block b;
        if (mailboxes[t].take(&b)) free_block(b);  // a block another thread allocated
        if (live.size() < 16 && (r & 1)) {
          uint32_t kind = (r >> 1) % 100;
          size_t bytes = kind < 80   ? 1 + (r >> 8) % 2048                  // small classes
                         : kind < 97 ? 2048 + (r >> 8) % (62 * KiB)         // larger slab classes
                                     : 256 * KiB + (r >> 8) % (256 * KiB);  // large classes
          size_t alignment = (r >> 20) % 8 == 0 ? 4096 : 64;
          pinpool_alloc_info info{};
          void* p = h->alloc(h->ctx, bytes, alignment, &info);
          if (!p) {
            if (!info.reason || std::strcmp(info.reason, "limit") != 0) outcome.failed_allocs++;
            continue;
          }
          if (reinterpret_cast<uintptr_t>(p) % alignment != 0) outcome.bad_patterns++;
          Block nb{static_cast<unsigned char*>(p), bytes, alignment,
                   static_cast<uint8_t>(1 + (r >> 24) % 255)};
          fill(nb);
          live.push_back(nb);
        } else if (!live.empty()) {
          size_t at = (r >> 4) % live.size();
          Block nb = live[at];
          live[at] = live.back();
          live.pop_back();
          if ((r >> 12) % 4 == 0) {
            if (!intact(nb)) outcome.bad_patterns++;
            mailboxes[(t + 1) % kThreads].put(nb);  // freed by the next thread
          } else {
            free_block(nb);
          }
        }
      }
      for (const Block& b : live) free_block(b);
      running--;
      // Drain what other threads still send until every thread is done.
      for (;;) {
        bool others_done = running.load() == 0;  // read first: no put comes after it is 0
        Block b;
        if (mailboxes[t].take(&b))
          free_block(b);
        else if (others_done)
          break;
        else
          std::this_thread::yield();
      }
    });
  }
  for (auto& th : threads) th.join();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start);
  const Stats& st = core->stats();
  std::printf(
      "abi stress: %s: %d threads x %ld operations in %lld ms, %llu allocations, %llu "
      "fallbacks\n",
      name, kThreads, ops, static_cast<long long>(ms.count()),
      static_cast<unsigned long long>(st.allocations.total.load()),
      static_cast<unsigned long long>(st.fallbacks[static_cast<int>(Reason::OutOfMemory)].load()));
  CHECK(outcome.bad_patterns == 0);
  CHECK(outcome.failed_allocs == 0);
  CHECK(st.bytes.current == 0);
  CHECK(st.allocations.current == 0);
  CHECK(st.invalidFrees == 0);
  CHECK(st.frees == st.allocations.total);
  core->trim();
  core->release();
}

// Two threads free the same block at the same moment; the handler accepts exactly one of the
// frees, and never hands the block to two callers afterwards.
void racing_double_frees(const char* name, Handler* core, int rounds) {
  pinpool_handler* h = core->abi();
  std::atomic<void*> target{nullptr};
  std::atomic<int> round{0};
  std::atomic<int> done{0};
  size_t bytes = 200;
  auto racer = [&](int) {
    for (int r = 1; r <= rounds; r++) {
      while (round.load(std::memory_order_acquire) != r) std::this_thread::yield();
      h->free(h->ctx, target.load(std::memory_order_relaxed), bytes, 64);
      done.fetch_add(1, std::memory_order_acq_rel);
    }
  };
  std::thread a(racer, 0), b(racer, 1);
  bool distinct = true;
  for (int r = 1; r <= rounds; r++) {
    bytes = r % 3 == 0 ? 300 * KiB : 200;  // written before the release below
    void* p = h->alloc(h->ctx, bytes, 64, nullptr);
    target.store(p, std::memory_order_relaxed);
    round.store(r, std::memory_order_release);
    while (done.load(std::memory_order_acquire) != 2 * r) std::this_thread::yield();
    // Freed once: two allocations of its class are two blocks.
    void* x = h->alloc(h->ctx, bytes, 64, nullptr);
    void* y = h->alloc(h->ctx, bytes, 64, nullptr);
    if (!x || !y || x == y) distinct = false;
    h->free(h->ctx, x, bytes, 64);
    h->free(h->ctx, y, bytes, 64);
  }
  a.join();
  b.join();
  const Stats& st = core->stats();
  std::printf("abi stress: %s: %d racing double frees, %llu refused\n", name, rounds,
              static_cast<unsigned long long>(st.invalidFrees.load()));
  CHECK(distinct);
  CHECK(st.invalidFrees == static_cast<uint64_t>(rounds));
  CHECK(st.bytes.current == 0);
  CHECK(st.frees == st.allocations.total);
  core->release();
}

// 8 threads keep a limit at its cap; its statistics never read more than the cap.
void limit_peak(long ops) {
  constexpr uint64_t kCap = 64 * KiB;
  Handler* core = limit(pool(pageable()), kCap);
  pinpool_handler* h = core->abi();
  std::atomic<uint64_t> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      Random rng{0xD1B54A32D192ED03ull * static_cast<uint64_t>(t + 1)};
      std::vector<std::pair<void*, size_t>> live;
      for (long i = 0; i < ops; i++) {
        uint32_t r = rng.next();
        if (live.size() < 4 && (r & 1)) {
          size_t bytes = 1 + (r >> 8) % (16 * KiB);
          pinpool_alloc_info info{};
          void* p = h->alloc(h->ctx, bytes, 64, &info);
          if (p)
            live.emplace_back(p, bytes);
          else
            refused++;
        } else if (!live.empty()) {
          h->free(h->ctx, live.back().first, live.back().second, 64);
          live.pop_back();
        }
      }
      for (auto [p, bytes] : live) h->free(h->ctx, p, bytes, 64);
    });
  }
  for (auto& th : threads) th.join();
  const Stats& st = core->stats();
  uint64_t peak = st.bytes.peak.load();
  std::printf(
      "abi stress: limit(pool(pageable)) cap %llu: peak %llu, %llu allocations refused at the "
      "cap\n",
      static_cast<unsigned long long>(kCap), static_cast<unsigned long long>(peak),
      static_cast<unsigned long long>(refused.load()));
  CHECK(peak <= kCap);
  CHECK(refused > 0);  // the cap was reached: the test tested something
  CHECK(st.bytes.current == 0);
  core->release();
}

}  // namespace

int main() {
  auto start = std::chrono::steady_clock::now();
  long ops = ops_per_thread();
  limit_peak(ops * 10);
  racing_double_frees("pool(pageable)", pool(pageable()), 2000);
  racing_double_frees("pageable", pageable(), 2000);
  racing_double_frees("limit(pool(pageable))", limit(pool(pageable()), 1 << 30), 2000);
  stress_chain("pool(pageable)", pool(pageable()), ops);
  stress_chain("limit(pool(pageable))", limit(pool(pageable()), 4 << 20), ops);
  stress_chain("fallback(pool(pageable), pageable)",
               fallback(pool(pageable()), pageable(), 64 * KiB), ops);
  // The primary is full much of the time: blocks in its range come from either side, and frees
  // cross threads, so the fallback's routing set is in play.
  stress_chain("fallback(limit(pool(pageable)), pool(pageable))",
               fallback(limit(pool(pageable()), 1 << 20), pool(pageable()), 64 * KiB), ops);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start);
  std::printf("abi stress: %d passed, %d failed in %lld ms\n", pinpool::test::passed,
              pinpool::test::failed, static_cast<long long>(ms.count()));
  return pinpool::test::failed == 0 ? 0 : 1;
}
