// Deliberate misuse of the C ABI (include/pinpool.h), as another native addon could commit it:
// frees of NULL, of pointers the handler never gave out, twice, with the wrong size or the
// wrong alignment, and allocations with alignments that are not a power of two up to 2^30.
// Every call goes through the handler's function pointers; only the statistics are read from
// the core. Each handler runs in a forked child, so a crash (an exception thrown through the
// ABI, a corrupted free list) fails that handler's case instead of ending the program.
//
// What must hold (docs/decisions/0011-c-abi-contract.md): no call crashes; a refused free changes
// no byte or block count, is counted in `invalidFrees`, and never puts the block into a free list
// (the same block is never handed out twice, a neighbour is never overwritten); a bad alignment is
// PINPOOL_ERR_INVALID_ARGUMENT; every alignment that succeeds is honoured.
//
// Prints `abi misuse: N passed, M failed`; exits non-zero when anything failed.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../include/pinpool.h"
#include "../../native/handlers/fallback_adaptor.hpp"
#include "../../native/handlers/limit_adaptor.hpp"
#include "../../native/handlers/locked_handler.hpp"
#include "../../native/handlers/pageable_handler.hpp"
#include "../../native/handlers/pinned_handler.hpp"
#include "../../native/handlers/pool/pool_adaptor.hpp"
#include "check.hpp"

using namespace pinpool;
using pinpool::test::isolated;

// The published layout (include/pinpool.h, ABI version 1, LP64): members may be appended, never
// moved or resized, or every consumer built against the header breaks.
#if UINTPTR_MAX == UINT64_MAX
static_assert(offsetof(pinpool_handler, abi_version) == 0 &&
              offsetof(pinpool_handler, struct_size) == 4 && offsetof(pinpool_handler, name) == 8 &&
              offsetof(pinpool_handler, kind) == 16 && offsetof(pinpool_handler, ctx) == 24 &&
              offsetof(pinpool_handler, alloc) == 32 && offsetof(pinpool_handler, free) == 40 &&
              offsetof(pinpool_handler, retain) == 48 && offsetof(pinpool_handler, release) == 56 &&
              offsetof(pinpool_handler, destroy) == 64 && sizeof(pinpool_handler) >= 72);
static_assert(offsetof(pinpool_alloc_info, code) == 0 &&
              offsetof(pinpool_alloc_info, cuda_error) == 4 &&
              offsetof(pinpool_alloc_info, reason) == 8 &&
              offsetof(pinpool_alloc_info, served_by) == 16 &&
              offsetof(pinpool_alloc_info, slab) == 24 &&
              offsetof(pinpool_alloc_info, slab_bytes) == 32);
#endif

namespace {

constexpr size_t KiB = 1024;
constexpr size_t MiB = 1024 * KiB;
constexpr size_t kLimitCap = 8 * MiB;  // the cap of the limit() handlers below

// The sizes the cases use: a small slab class (128), a larger slab class (3072), a large
// class cached whole (1 MiB). Leaves see them as plain sizes.
constexpr size_t kSizes[] = {100, 3000, 1 * MiB};

// ---------------------------------------------------------------------------------------------
// The handlers under test, made by the core as the binding makes them. Each factory returns the
// only reference to the outermost handler; adaptors hold their upstreams.

Handler* own(Handler* adaptor, std::initializer_list<Handler*> upstreams) {
  for (Handler* h : upstreams) h->release();  // the adaptor holds them now
  return adaptor;
}
Handler* pageable() { return new PageableHandler("pageable"); }
Handler* locked() { return new LockedHandler("locked"); }
Handler* pinned() { return new PinnedHandler("pinned", PinnedOptions{}); }
Handler* pool(Handler* up) {
  return own(new PoolAdaptor(std::string("pool(") + up->name() + ")", up->abi(), PoolOptions{}),
             {up});
}
Handler* limit(Handler* up, uint64_t cap = kLimitCap) {
  return own(new LimitAdaptor(std::string("limit(") + up->name() + ")", up->abi(), cap), {up});
}
// Sizes up to 64 KiB go to the primary, larger ones to the secondary.
Handler* fallback(Handler* primary, Handler* secondary) {
  return own(new FallbackAdaptor(
                 std::string("fallback(") + primary->name() + ", " + secondary->name() + ")",
                 primary->abi(), secondary->abi(), 0, 64 * KiB),
             {primary, secondary});
}

struct Config {
  const char* name;
  Handler* (*make)();
  bool needs_cuda;
};

const Config kConfigs[] = {
    {"pool(pageable)", [] { return pool(pageable()); }, false},
    {"pool(locked)", [] { return pool(locked()); }, false},
    {"limit(pool(pageable))", [] { return limit(pool(pageable())); }, false},
    {"fallback(pool(pageable), pageable)", [] { return fallback(pool(pageable()), pageable()); },
     false},
    {"fallback(limit(pool(locked)), pool(pageable))",
     [] { return fallback(limit(pool(locked())), pool(pageable())); }, false},
    {"pageable", pageable, false},
    {"locked", locked, false},
    {"limit(pageable)", [] { return limit(pageable()); }, false},
    {"pinned", pinned, true},
    {"pool(pinned)", [] { return pool(pinned()); }, true},
};

// ---------------------------------------------------------------------------------------------
// Calls through the C struct only.

void* abi_alloc(pinpool_handler* h, size_t bytes, size_t alignment = 64,
                pinpool_alloc_info* out = nullptr) {
  pinpool_alloc_info info{};
  void* p = h->alloc(h->ctx, bytes, alignment, &info);
  if (out) *out = info;
  return p;
}
void abi_free(pinpool_handler* h, void* p, size_t bytes, size_t alignment = 64) {
  h->free(h->ctx, p, bytes, alignment);
}

// Fills a block with a byte that names it, and checks it later: a refused free must leave
// every live block as its owner wrote it.
void fill(void* p, size_t bytes, unsigned char tag) { std::memset(p, tag, bytes); }
bool intact(const void* p, size_t bytes, unsigned char tag) {
  auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < bytes; i++)
    if (b[i] != tag) return false;
  return true;
}

char* offset(void* p, size_t n) { return static_cast<char*>(p) + n; }

// Counts the refused frees a case makes, and checks after each one that it was counted and
// that nothing else moved.
class Probe {
 public:
  explicit Probe(Handler* core) : stats_(core->stats()) {}
  // A free that must be refused.
  void refused(pinpool_handler* h, void* p, size_t bytes, size_t alignment, const char* what) {
    uint64_t bytes_before = stats_.bytes.current.load();
    uint64_t blocks_before = stats_.allocations.current.load();
    uint64_t frees_before = stats_.frees.load();
    abi_free(h, p, bytes, alignment);
    expected_++;
    bool ok =
        stats_.invalidFrees.load() == expected_ && stats_.bytes.current.load() == bytes_before &&
        stats_.allocations.current.load() == blocks_before && stats_.frees.load() == frees_before;
    if (!ok)
      std::fprintf(stderr,
                   "  %s: free(%p, %zu, %zu) was not refused and counted as it should "
                   "(invalidFrees %llu, expected %llu)\n",
                   what, p, bytes, alignment,
                   static_cast<unsigned long long>(stats_.invalidFrees.load()),
                   static_cast<unsigned long long>(expected_));
    CHECK(ok);
    expected_ = stats_.invalidFrees.load();  // one miss is reported once, not in every later check
  }
  uint64_t expected() const { return expected_; }

 private:
  const Stats& stats_;
  uint64_t expected_ = 0;
};

// ---------------------------------------------------------------------------------------------

void null_free(pinpool_handler* h, Handler* core) {
  for (size_t bytes : {size_t{0}, size_t{100}, 1 * MiB}) abi_free(h, nullptr, bytes, 64);
  abi_free(h, nullptr, 100, 3);  // a no-op, whatever the arguments
  CHECK(core->stats().invalidFrees == 0);
  CHECK(core->stats().frees == 0);
  // And the handler still works: a NULL in a free list would come back as a failed alloc.
  for (size_t bytes : kSizes) {
    void* p = abi_alloc(h, bytes);
    CHECK(p != nullptr);
    if (p) abi_free(h, p, bytes);
  }
}

void foreign_free(pinpool_handler* h, Handler* core, Probe& probe) {
  // Memory the handler never saw: the heap, the stack, and a large page-aligned area (so a pool
  // could mistake it for one of its large blocks).
  void* area = nullptr;
  if (posix_memalign(&area, 4096, 2 * MiB) != 0) std::abort();
  fill(area, 2 * MiB, 0xAA);
  char on_stack[128];
  auto* heap = static_cast<char*>(std::malloc(256));
  for (size_t bytes : kSizes) {
    probe.refused(h, area, bytes, 64, "foreign page-aligned area");
    probe.refused(h, offset(area, 64), bytes, 64, "foreign area + 64");
    probe.refused(h, on_stack, bytes, 64, "stack");
    probe.refused(h, heap, bytes, 64, "heap");
    // The next allocation of that class works and is not the foreign memory.
    void* p = abi_alloc(h, bytes);
    CHECK(p != nullptr);
    CHECK(p != area && p != offset(area, 64) && p != on_stack && p != heap);
    if (p) {
      fill(p, bytes, 0x11);
      abi_free(h, p, bytes);
    }
  }
  CHECK(intact(area, 2 * MiB, 0xAA));  // nothing wrote into it
  std::free(heap);
  std::free(area);
  (void)core;
}

void double_free(pinpool_handler* h, Handler*, Probe& probe) {
  for (size_t bytes : kSizes) {
    void* p = abi_alloc(h, bytes);
    CHECK(p != nullptr);
    if (!p) continue;
    abi_free(h, p, bytes);
    probe.refused(h, p, bytes, 64, "second free");
    // The block was freed once, so it is handed out at most once.
    void* a = abi_alloc(h, bytes);
    void* b = abi_alloc(h, bytes);
    CHECK(a && b && a != b);
    if (a) fill(a, bytes, 0x21);
    if (b) fill(b, bytes, 0x22);
    if (a) CHECK(intact(a, bytes, 0x21));
    if (a) abi_free(h, a, bytes);
    probe.refused(h, a, bytes, 64, "second free of a block handed out again");
    if (b) abi_free(h, b, bytes);
    probe.refused(h, b, bytes, 64, "third free");
  }
}

void wrong_size(pinpool_handler* h, Handler*, Probe& probe) {
  // A small block freed as a larger class, next to a live neighbour: the neighbour must survive
  // whatever the pool hands out next.
  void* a = abi_alloc(h, 100);
  void* b = abi_alloc(h, 100);
  CHECK(a && b);
  if (!a || !b) return;
  fill(a, 100, 0x31);
  fill(b, 100, 0x32);
  probe.refused(h, a, 200, 64, "100-byte block freed as 200");
  probe.refused(h, a, 5000, 64, "100-byte block freed as 5000");
  probe.refused(h, a, 1 * MiB, 64, "100-byte block freed as 1 MiB");
  for (int i = 0; i < 8; i++) {
    void* c = abi_alloc(h, 200);
    CHECK(c != nullptr && c != a);
    if (c) {
      fill(c, 200, 0x33);
      abi_free(h, c, 200);
    }
  }
  CHECK(intact(a, 100, 0x31));
  CHECK(intact(b, 100, 0x32));
  abi_free(h, a, 100);
  abi_free(h, b, 100);

  void* large = abi_alloc(h, 1 * MiB);
  CHECK(large != nullptr);
  if (!large) return;
  probe.refused(h, large, 100, 64, "1 MiB block freed as 100");
  probe.refused(h, large, 2 * MiB, 64, "1 MiB block freed as 2 MiB");
  probe.refused(h, large, 64 * MiB, 64, "1 MiB block freed as 64 MiB");
  fill(large, 1 * MiB, 0x34);
  CHECK(intact(large, 1 * MiB, 0x34));
  abi_free(h, large, 1 * MiB);
}

void wrong_alignment(pinpool_handler* h, Handler*, Probe& probe) {
  void* p = abi_alloc(h, 256);
  CHECK(p != nullptr);
  if (!p) return;
  fill(p, 256, 0x41);
  probe.refused(h, offset(p, 64), 256, 64, "pointer inside a block, on a 64-byte boundary");
  probe.refused(h, offset(p, 8), 256, 64, "pointer inside a block");
  probe.refused(h, offset(p, 1), 256, 64, "odd pointer");
  probe.refused(h, p, 256, 8192, "alignment 8192 for a block allocated with 64");
  for (size_t bad : {size_t{0}, size_t{3}, size_t{24}, size_t{1} << 31, size_t{1} << 40})
    probe.refused(h, p, 256, bad, "an alignment that is not a power of two up to 2^30");
  CHECK(intact(p, 256, 0x41));
  abi_free(h, p, 256);

  // Blocks of a slab class never carved, or carved and free, or past the slab's end.
  void* q = abi_alloc(h, 3000);
  CHECK(q != nullptr);
  if (q) {
    for (size_t i = 1; i <= 40; i += 13)
      probe.refused(h, offset(q, 3072 * i), 3000, 64, "a block of the slab that is not handed out");
    abi_free(h, q, 3000);
  }
  void* large = abi_alloc(h, 1 * MiB);
  CHECK(large != nullptr);
  if (large) {
    probe.refused(h, offset(large, 4096), 1 * MiB, 64, "inside a large block, on a page");
    abi_free(h, large, 1 * MiB);
  }
}

// Blocks a pool does not cache (an alignment above a page) go straight upstream; it still knows
// them, with their exact size and alignment.
void over_aligned(pinpool_handler* h, Handler*, Probe& probe) {
  for (size_t bytes : kSizes) {
    void* p = abi_alloc(h, bytes, 8192);
    CHECK(p != nullptr);
    if (!p) continue;
    fill(p, bytes, 0x61);
    probe.refused(h, p, bytes + 1, 8192, "over-aligned block freed one byte longer");
    probe.refused(h, p, bytes, 16384, "over-aligned block freed with a larger alignment");
    probe.refused(h, p, bytes, 64, "over-aligned block freed with alignment 64");
    probe.refused(h, offset(p, 64), bytes, 8192, "inside an over-aligned block");
    CHECK(intact(p, bytes, 0x61));
    abi_free(h, p, bytes, 8192);
    probe.refused(h, p, bytes, 8192, "second free of an over-aligned block");
  }
}

// An alignment outside the contract is INVALID_ARGUMENT with reason "invalid-argument"; every
// power of two up to 2^30 that succeeds is honoured.
void alignment_sweep(pinpool_handler* h, Handler* core) {
  const Stats& st = core->stats();
  const size_t bad[] = {
      0, 3, 24, 96, 3000, 12288, size_t{1} << 31, size_t{1} << 40, (size_t{1} << 30) + 1, SIZE_MAX};
  for (size_t alignment : bad) {
    for (size_t bytes : {size_t{0}, size_t{100}, 1 * MiB}) {
      pinpool_alloc_info info{};
      void* p = abi_alloc(h, bytes, alignment, &info);
      bool ok = p == nullptr && info.code == PINPOOL_ERR_INVALID_ARGUMENT && info.reason &&
                std::strcmp(info.reason, "invalid-argument") == 0;
      if (!ok)
        std::fprintf(stderr, "  alloc(%zu, alignment %zu) -> %p, code %d, reason %s\n", bytes,
                     alignment, p, info.code, info.reason ? info.reason : "(none)");
      CHECK(ok);
      if (p) abi_free(h, p, bytes, alignment);
    }
  }
  CHECK(st.failures[static_cast<int>(Reason::InvalidArgument)] == std::size(bad) * 3);
  int served = 0;
  for (int k = 0; k <= 30; k++) {
    size_t alignment = size_t{1} << k;
    for (size_t bytes : {size_t{0}, size_t{100}, size_t{5000}}) {
      pinpool_alloc_info info{};
      void* p = abi_alloc(h, bytes, alignment, &info);
      if (!p) {
        // Only a real shortage may refuse a valid alignment (2^30 reserves a GiB of addresses).
        CHECK(info.code == PINPOOL_ERR_OUT_OF_MEMORY && k >= 20);
        continue;
      }
      served++;
      bool aligned = reinterpret_cast<uintptr_t>(p) % alignment == 0;
      if (!aligned)
        std::fprintf(stderr, "  alloc(%zu, alignment %zu) -> %p, not aligned\n", bytes, alignment,
                     p);
      CHECK(aligned);
      fill(p, bytes, 0x51);
      abi_free(h, p, bytes, alignment);
    }
  }
  CHECK(served >= 3 * 21);  // at least every alignment up to 1 MiB
}

void check_settled(Handler* core, const Probe& probe) {
  const Stats& st = core->stats();
  CHECK(st.bytes.current == 0);
  CHECK(st.allocations.current == 0);
  CHECK(st.invalidFrees == probe.expected());
  CHECK(st.frees == st.allocations.total);
}

// A limit's budget is whole again after the misuse: the full cap can be allocated.
void limit_budget(pinpool_handler* h, Handler* core) {
  if (std::strcmp(core->kind(), "limit") != 0) return;
  void* p = abi_alloc(h, kLimitCap);
  CHECK(p != nullptr);
  pinpool_alloc_info info{};
  void* q = abi_alloc(h, 1, 64, &info);
  CHECK(q == nullptr && info.code == PINPOOL_ERR_OUT_OF_MEMORY);
  if (q) abi_free(h, q, 1);
  if (p) abi_free(h, p, kLimitCap);
  CHECK(core->stats().bytes.peak <= kLimitCap);
}

void run_config(const Config& c) {
  Handler* core = c.make();
  pinpool_handler* h = core->abi();
  std::printf("abi misuse: %s\n", c.name);
  std::fflush(stdout);  // before anything can crash the child
  Probe probe(core);
  null_free(h, core);
  foreign_free(h, core, probe);
  double_free(h, core, probe);
  wrong_size(h, core, probe);
  wrong_alignment(h, core, probe);
  over_aligned(h, core, probe);
  check_settled(core, probe);
  alignment_sweep(h, core);
  check_settled(core, probe);
  limit_budget(h, core);
  core->trim();
  core->release();
}

// ---------------------------------------------------------------------------------------------
// Exceptions never cross the ABI. A foreign upstream written in C++ that throws (it should
// not, but a consumer's bug must not become an abort in pinpool) fails the call instead.

struct Throwing {
  pinpool_handler abi{};
  Throwing() {
    abi.abi_version = PINPOOL_ABI_VERSION;
    abi.struct_size = sizeof(pinpool_handler);
    abi.name = "throwing";
    abi.kind = "throwing";
    abi.ctx = this;
    abi.alloc = [](void*, size_t bytes, size_t, pinpool_alloc_info*) -> void* {
      if (bytes > 1000) throw std::bad_alloc();
      throw std::runtime_error("a foreign handler's bug");
    };
    abi.free = [](void*, void*, size_t, size_t) {
      throw std::runtime_error("a foreign handler's bug");
    };
    abi.retain = [](pinpool_handler*) {};
    abi.release = [](pinpool_handler*) {};
    abi.destroy = [](void*) {};
  }
};

void exceptions() {
  Throwing up;
  Handler* lim = new LimitAdaptor("limit(throwing)", &up.abi, kLimitCap);
  pinpool_handler* h = lim->abi();
  pinpool_alloc_info info{};
  CHECK(abi_alloc(h, 100, 64, &info) == nullptr);
  CHECK(info.code == PINPOOL_ERR_INTERNAL);
  CHECK(info.reason && std::strcmp(info.reason, "internal") == 0);
  info = {};
  CHECK(abi_alloc(h, 5000, 64, &info) == nullptr);
  CHECK(info.code == PINPOOL_ERR_OUT_OF_MEMORY);  // std::bad_alloc is a shortage
  CHECK(lim->stats().failures[static_cast<int>(Reason::Internal)] == 1);
  CHECK(lim->stats().failures[static_cast<int>(Reason::OutOfMemory)] == 1);
  char block[64];
  abi_free(h, block, 64, 64);  // the upstream throws: the free is refused, counted
  CHECK(lim->stats().invalidFrees == 1);
  CHECK(lim->stats().bytes.current == 0);
  // The budget did not move: the full cap still fits (and fails only in the upstream).
  info = {};
  CHECK(abi_alloc(h, kLimitCap, 64, &info) == nullptr && info.code == PINPOOL_ERR_OUT_OF_MEMORY);
  CHECK(lim->stats().failures[static_cast<int>(Reason::Limit)] == 0);
  lim->release();
}

// A CUDA leaf whose "driver" refuses the next free (a real driver does when its context is
// gone): the free is refused and counted, not ignored, and the block can be freed again.
class RefusingLeaf final : public CudaLeaf {
 public:
  RefusingLeaf() : CudaLeaf("refusing", "pinned", 0, 4096, /*page_locks=*/false) {}
  bool refuse_next = false;  // the next raw_free fails with CUDA_ERROR_INVALID_VALUE

 private:
  CUresult raw_alloc(size_t bytes, void** out) override {
    return posix_memalign(out, 4096, bytes) == 0 ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
  }
  CUresult raw_free(void* ptr, size_t) override {
    if (refuse_next) {
      refuse_next = false;
      return CUDA_ERROR_INVALID_VALUE;
    }
    std::free(ptr);
    return CUDA_SUCCESS;
  }
};

void driver_refuses_free() {
  auto* leaf = new RefusingLeaf();
  pinpool_handler* h = leaf->abi();
  for (size_t alignment : {size_t{64}, size_t{1} << 16}) {
    void* p = abi_alloc(h, 1000, alignment);
    CHECK(p != nullptr);
    leaf->refuse_next = true;
    abi_free(h, p, 1000, alignment);
    CHECK(leaf->stats().bytes.current == 1000);  // still allocated: the driver did not free it
    abi_free(h, p, 1000, alignment);             // the retry goes through
    CHECK(leaf->stats().bytes.current == 0);
  }
  CHECK(leaf->stats().invalidFrees == 2);
  leaf->release();
}

// pinned({ strategy: 'register' }) when the driver refuses to unregister a block: the mapping
// stays (still registered, still readable), the free is refused, and the retry unregisters and
// unmaps it once. It used to unmap first and keep the block for the retry, which then unmapped
// whatever had been mapped at that address since.
void driver_refuses_unregister() {
  PinnedOptions o;
  o.register_memory = true;
  auto* leaf = new PinnedHandler("registered", o);
  pinpool_handler* h = leaf->abi();
  auto* p = static_cast<unsigned char*>(abi_alloc(h, 3 * 4096));
  CHECK(p != nullptr);
  if (!p) return;
  std::memset(p, 7, 3 * 4096);
  CHECK(cuda::fake_set("fail_unregister", 1));
  abi_free(h, p, 3 * 4096);
  CHECK(leaf->stats().bytes.current == 3 * 4096);  // refused: the block is still the caller's
  CHECK(leaf->stats().invalidFrees == 1);
  p[0] = 8;  // still mapped (a fault here, in this isolated child, fails the case)
  p[3 * 4096 - 1] = 9;
  CHECK(p[4096] == 7);
  abi_free(h, p, 3 * 4096);  // the retry goes through
  CHECK(leaf->stats().bytes.current == 0);
  CHECK(leaf->stats().invalidFrees == 1);
  leaf->release();
}

// A fallback routes a free to the side that can have served it, and keeps its routing state
// only for frees that side accepted. Here the primary (a 64 KiB limit) is full, so one block in
// the primary's range comes from the secondary; a double free of a primary block while nothing
// of the primary's is live must not make the fallback forget that block.
void fallback_routing() {
  Handler* fb = fallback(limit(pageable(), 64 * KiB), pageable());
  pinpool_handler* h = fb->abi();
  void* p = abi_alloc(h, 60000);  // the primary
  void* q = abi_alloc(h, 10000);  // over the primary's cap: the secondary, in range
  CHECK(p && q);
  CHECK(fb->stats().fallbacks[static_cast<int>(Reason::OutOfMemory)] == 1);
  abi_free(h, p, 60000);
  abi_free(h, p, 60000);  // refused (by the secondary, the only side it could be from now)
  CHECK(fb->stats().invalidFrees == 1);
  abi_free(h, q, 10000);  // the right free still reaches the secondary
  CHECK(fb->stats().invalidFrees == 1);
  CHECK(fb->stats().bytes.current == 0);
  void* r = abi_alloc(h, 60000);  // and the primary serves again
  CHECK(r != nullptr && fb->stats().fallbacks[static_cast<int>(Reason::OutOfMemory)] == 1);
  if (r) abi_free(h, r, 60000);
  CHECK(fb->stats().bytes.current == 0 && fb->stats().invalidFrees == 1);
  fb->release();
}

// A foreign upstream whose free returns nothing and ignores what it does not know, as a sloppy C
// handler may: a limit over it cannot learn that a second free was wrong, but its count must
// still never wrap (which would refuse everything after).
struct Lenient {
  pinpool_handler abi{};
  std::vector<void*> live;  // one thread only
  Lenient() {
    abi.abi_version = PINPOOL_ABI_VERSION;
    abi.struct_size = sizeof(pinpool_handler);
    abi.name = "lenient";
    abi.kind = "lenient";
    abi.ctx = this;
    abi.alloc = [](void* ctx, size_t bytes, size_t, pinpool_alloc_info*) -> void* {
      void* p = std::malloc(bytes ? bytes : 1);
      static_cast<Lenient*>(ctx)->live.push_back(p);
      return p;
    };
    abi.free = [](void* ctx, void* p, size_t, size_t) {
      auto& live = static_cast<Lenient*>(ctx)->live;
      auto it = std::find(live.begin(), live.end(), p);
      if (it == live.end()) return;  // unknown: silently ignored
      live.erase(it);
      std::free(p);
    };
    abi.retain = [](pinpool_handler*) {};
    abi.release = [](pinpool_handler*) {};
    abi.destroy = [](void*) {};
  }
};

void limit_over_lenient_upstream() {
  Lenient up;
  Handler* lim = new LimitAdaptor("limit(lenient)", &up.abi, kLimitCap);
  pinpool_handler* h = lim->abi();
  void* p = abi_alloc(h, 4096);
  abi_free(h, p, 4096);
  abi_free(h, p, 4096);  // the upstream says nothing; the limit's count must not go below zero
  void* all = abi_alloc(h, kLimitCap);
  CHECK(all != nullptr);
  if (all) abi_free(h, all, kLimitCap);
  lim->release();
}

// A free whose size differs from the allocation's but falls in the same size class is accepted
// by a pool (it compares classes), and must count what was allocated, at every level: a size
// taken at its word would wrap the statistics (1000 freed as 1010), leave bytes counted with
// nothing live (1000 freed as 990), or hand a limit back more than it reserved, so that more
// than the cap is in use while the statistics say the cap.

// Checks one level's statistics: the bytes in use, their peak, and no free refused.
void check_level(const char* what, Handler* core, uint64_t bytes, uint64_t peak) {
  const Stats& st = core->stats();
  bool ok = st.bytes.current == bytes && st.bytes.peak == peak && st.invalidFrees == 0;
  if (!ok)
    std::fprintf(stderr,
                 "  %s (%s): bytes %llu (expected %llu), peak %llu (expected %llu), "
                 "invalidFrees %llu\n",
                 what, core->name().c_str(),
                 static_cast<unsigned long long>(st.bytes.current.load()),
                 static_cast<unsigned long long>(bytes),
                 static_cast<unsigned long long>(st.bytes.peak.load()),
                 static_cast<unsigned long long>(peak),
                 static_cast<unsigned long long>(st.invalidFrees.load()));
  CHECK(ok);
}

// alloc(1000), then free(p, 1010) (and 990): the same class (1024), so accepted, and the 1000
// bytes allocated are what is subtracted, by the pool and by a limit or fallback above it.
void wrong_size_in_class(const char* what, Handler* outer, Handler* inner_pool) {
  pinpool_handler* h = outer->abi();
  for (size_t freed_as : {size_t{1010}, size_t{990}}) {
    void* p = abi_alloc(h, 1000);
    CHECK(p != nullptr);
    if (!p) continue;
    abi_free(h, p, freed_as);
    check_level(what, outer, 0, 1000);
    check_level(what, inner_pool, 0, 1000);
    CHECK(outer->stats().allocations.current == 0 &&
          outer->stats().frees == outer->stats().allocations.total);
  }
  outer->release();
}

void wrong_size_in_class_pool() {
  Handler* p = pool(pageable());
  wrong_size_in_class("pool(pageable)", p, p);
}
void wrong_size_in_class_limit() {
  Handler* p = pool(pageable());
  wrong_size_in_class("limit(pool(pageable))", limit(p), p);
}
void wrong_size_in_class_fallback() {
  Handler* p = pool(pageable());
  wrong_size_in_class("fallback(pool(pageable), pageable)", fallback(p, pageable()), p);
}

// 100 rounds of alloc(1000), free(p, 990) under a 1 MiB limit: nothing stays counted, and the
// whole MiB can be allocated after.
void wrong_size_rounds_under_limit() {
  Handler* p = pool(pageable());
  Handler* lim = limit(p, 1 * MiB);
  pinpool_handler* h = lim->abi();
  for (int i = 0; i < 100; i++) {
    void* b = abi_alloc(h, 1000);
    CHECK(b != nullptr);
    if (b) abi_free(h, b, 990);
  }
  check_level("100 rounds", lim, 0, 1000);
  check_level("100 rounds", p, 0, 1000);
  pinpool_alloc_info info{};
  void* all = abi_alloc(h, 1 * MiB, 64, &info);
  if (!all)
    std::fprintf(stderr, "  1 MiB after 100 rounds: refused, reason %s\n",
                 info.reason ? info.reason : "(none)");
  CHECK(all != nullptr);
  if (all) abi_free(h, all, 1 * MiB);
  check_level("after the whole MiB", lim, 0, 1 * MiB);
  lim->release();
}

// Under a 4,096-byte limit: 1000 + 3096 in use, the 1000 freed as 1023. Only 1000 comes back,
// so 1023 more would be 4,119 bytes in use: refused; 1000 fits exactly.
void wrong_size_at_the_cap() {
  Handler* p = pool(pageable());
  Handler* lim = limit(p, 4096);
  pinpool_handler* h = lim->abi();
  void* a = abi_alloc(h, 1000);
  void* b = abi_alloc(h, 3096);
  CHECK(a && b);
  if (!a || !b) return;
  abi_free(h, a, 1023);
  check_level("a freed as 1023", lim, 3096, 4096);
  pinpool_alloc_info info{};
  void* over = abi_alloc(h, 1023, 64, &info);
  CHECK(over == nullptr && info.reason && std::strcmp(info.reason, "limit") == 0);
  if (over) {
    std::fprintf(stderr, "  1023 more under the 4,096-byte cap was served: %llu bytes counted\n",
                 static_cast<unsigned long long>(lim->stats().bytes.current.load()));
    abi_free(h, over, 1023);
  }
  void* fits = abi_alloc(h, 1000);
  CHECK(fits != nullptr);
  check_level("at the cap", lim, fits ? 4096 : 3096, 4096);
  check_level("at the cap", p, fits ? 4096 : 3096, 4096);
  if (fits) abi_free(h, fits, 1000);
  abi_free(h, b, 3096);
  check_level("all freed", lim, 0, 4096);
  check_level("all freed", p, 0, 4096);
  lim->release();
}

bool have_cuda() {
  if (!std::getenv("PINPOOL_CUDA_LIBRARY")) {
#ifdef PINPOOL_FAKE_CUDA
    struct stat st {};
    if (stat(PINPOOL_FAKE_CUDA, &st) == 0) setenv("PINPOOL_CUDA_LIBRARY", PINPOOL_FAKE_CUDA, 1);
#endif
  }
  return cuda::check_device(0) == CUDA_SUCCESS;
}

}  // namespace

int main() {
  auto start = std::chrono::steady_clock::now();
  bool cuda = have_cuda();
  for (const Config& c : kConfigs) {
    if (c.needs_cuda && !cuda) {
      std::printf(
          "abi misuse: %s skipped (no CUDA driver; build the test double with `npm run "
          "build:fake-cuda`)\n",
          c.name);
      continue;
    }
    auto t = std::chrono::steady_clock::now();
    isolated(c.name, [&] { run_config(c); });
    std::printf("abi misuse:   %lld ms\n",
                static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::steady_clock::now() - t)
                                           .count()));
  }
  isolated("exceptions", exceptions);
  isolated("a driver that refuses a free", driver_refuses_free);
  if (cuda) isolated("a driver that refuses to unregister", driver_refuses_unregister);
  isolated("fallback routing after refused frees", fallback_routing);
  isolated("limit over a lenient foreign upstream", limit_over_lenient_upstream);
  isolated("pool: a free of another size in the class counts the allocation's",
           wrong_size_in_class_pool);
  isolated("limit: a free of another size in the class counts the allocation's",
           wrong_size_in_class_limit);
  isolated("fallback: a free of another size in the class counts the allocation's",
           wrong_size_in_class_fallback);
  isolated("100 rounds of 1000 freed as 990 under a 1 MiB limit", wrong_size_rounds_under_limit);
  isolated("a 4,096-byte limit after a free of 1000 as 1023", wrong_size_at_the_cap);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start);
  std::printf("abi misuse: %d passed, %d failed in %lld ms\n", pinpool::test::passed,
              pinpool::test::failed, static_cast<long long>(ms.count()));
  return pinpool::test::failed == 0 ? 0 : 1;
}
