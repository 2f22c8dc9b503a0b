// The base of every handler, leaf or adaptor (RMM's memory_resource shape).
//
// A Handler *is* a pinpool_handler (include/pinpool.h): the C struct is its first member and its
// ctx points back at the object, so a Handler can be handed to any C consumer and any C handler
// can be an upstream. The public, non-virtual allocate()/deallocate() are the one place where
// statistics are kept; subclasses implement do_allocate()/do_deallocate() only.
//
// The C ABI's contract (docs/decisions/0011-c-abi-contract.md) is kept here too: allocate() checks
// the alignment, and no exception leaves allocate(), deallocate() or the functions of the C struct.
// A free a handler refuses (do_deallocate() returns nothing) changes nothing but the count of
// invalid frees. A free it accepts is counted with the size the handler says the block had, not the
// size the free named: a pool accepts any size in the block's class, and counting the named one
// would let a caller drive the statistics, or a limit's budget, wherever it liked.
#pragma once

#include <atomic>
#include <cstddef>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "../../include/pinpool.h"
#include "../support/spin_lock.hpp"
#include "fence.hpp"
#include "held_blocks.hpp"
#include "stats.hpp"
#include "thread_caches.hpp"

namespace pinpool {

// What went wrong, for the caller and for the statistics. The text of `reason` is static.
struct Failure {
  pinpool_status_code code;
  Reason reason;
  int cuda_error = 0;
};

inline void fail(pinpool_alloc_info* info, Failure f) {
  info->code = f.code;
  info->reason = reason_text(f.reason);
  info->cuda_error = f.cuda_error;
}

class Handler;

// A route: the handlers an allocation passed through, from the handler called down to the first
// pool below it (a fallback's side, a limit, the pool), which is the one that caches such blocks.
// A thread cache in front of a chain (binding/thread_cache.hpp) keeps blocks by route, and its
// counts are folded into the statistics of every handler on the route.
using Route = std::vector<Handler*>;
// The most routes one handler tells apart; blocks of the others are not cached in front of it.
inline constexpr size_t kMaxRoutes = 8;

// The route the last successful allocate() on this thread took, as an index into the routes()
// of the handler called, or -1 when no pool of ours classed the block (a leaf served it, a pool
// passed it through, a foreign handler was on the way). Each allocate() writes it: a leaf -1, a
// pool 0 (its one route: itself), an adaptor its upstream's index moved into its own list.
inline int& alloc_route() {
  thread_local int route = -1;
  return route;
}

class Handler {
 public:
  // A leaf hands out its own memory (its blocks go in the block registry); an adaptor hands
  // out its upstreams'.
  enum class Role { Leaf, Adaptor };
  Handler(std::string name, const char* kind, Role role);
  virtual ~Handler();
  Handler(const Handler&) = delete;
  Handler& operator=(const Handler&) = delete;

  // Returns a block of `bytes` aligned to `alignment`, or nullptr with `info` filled in: an
  // alignment that is not a power of two up to kMaxAlignment is PINPOOL_ERR_INVALID_ARGUMENT,
  // an exception inside is a failure (std::bad_alloc out of memory, anything else
  // PINPOOL_ERR_INTERNAL with reason "internal"). `info` must be zero-initialised by the caller.
  void* allocate(size_t bytes, size_t alignment, pinpool_alloc_info* info) noexcept;
  // Returns a block to this handler. `by_gc`: the garbage-collection backstop, not free().
  // The caller's accounting ends now; the block itself reaches do_deallocate(), and so can be
  // handed out again, only once no lease on its memory remains (leases.hpp): neither one of
  // `fences` (leases the caller knows of, such as an ArrayBuffer that escaped) nor a lease in
  // the table (a copy in flight). That is PyTorch's CachingHostAllocator rule, made general.
  // Returns the bytes the block was allocated with, which is what the statistics count, or
  // nothing when the handler refused the free (see do_deallocate()): it is counted in
  // invalidFrees and nothing else changes. A free that waits for leases is counted (and
  // returned) as named and checked when it is finished; a refusal then takes its statistics
  // back, and a block of another size corrects them. Never throws.
  // `held`: the block was one JavaScript reached (hold()); it is no longer held once it is
  // finished.
  std::optional<size_t> deallocate(void* ptr, size_t bytes, size_t alignment, bool by_gc = false,
                                   FenceSet fences = {}, bool held = false);
  // Blocks JavaScript reaches: the binding holds each block it hands to JavaScript until it
  // gives it back through deallocate(..., held = true). A free of a held block through the C
  // struct (another native addon's) is refused and counted as an invalid free, like a foreign
  // pointer's: JavaScript still reads and writes that memory.
  void hold(const void* ptr);
  // A block that moves to or from another process (the shared leaf's hand-off) with no
  // allocation or free here: counted into, or out of, the statistics, the block registry and
  // the held blocks as an allocation or a free would be, but for the count of frees. Leaves only.
  void count_arrival(void* ptr, size_t bytes);
  void count_departure(void* ptr, size_t bytes);
  // Finishes the deferred frees whose leases are over; returns how many. Never blocks on a
  // fence. allocate(), trim() and reclaim_all() call it.
  size_t reclaim();
  // reclaim() on every handler with deferred frees, each held meanwhile: a handler whose last
  // references were its waits goes with them, and gives its memory back upstream. Called where a
  // lease ends on a JavaScript thread (a GPU operation's completion, unregister), so that memory
  // a lease kept goes back when the lease ends, not at the handler's next allocate() or trim(),
  // which a dropped pool never gets. Returns how many frees it finished.
  static size_t reclaim_all();
  // Blocks still waiting for their fences.
  size_t deferred() const { return deferred_count_.load(std::memory_order_relaxed); }
  // Moves the deferred frees one of whose fences was abandoned (fence.hpp) to the orphans and
  // counts them (orphanedBytes, orphanedBlocks). An orphan is never finished: some ArrayBuffer
  // in a thread pinpool cannot watch may still reach it. Orphans, like deferred frees, hold a
  // reference to this handler, so neither it nor its upstream ever gives their memory back.
  // reclaim() and the statistics' readers call it.
  void settle_orphans();
  // Counts memory a caller keeps out of use for good on this handler's behalf (a slab whose
  // view left its thread): `blocks` blocks of `bytes` in all.
  void count_orphaned(size_t bytes, size_t blocks = 1);

  // Gives cached memory back upstream; returns the bytes released. Adaptors forward it. The
  // thread caches in front of this handler are asked to give their blocks back too; each does
  // at its thread's next call (its thread may be busy now).
  size_t trim() {
    reclaim();
    ask_thread_caches_to_trim();
    return do_trim();
  }

  // The bytes this handler holds for a block of (bytes, alignment) when it caches such blocks
  // (a pool: the size class), else 0. Only blocks with a class may wait in a thread cache.
  virtual size_t class_bytes(size_t /*bytes*/, size_t /*alignment*/) const { return 0; }
  // The routes from this handler to the pools below it (see Route), at most kMaxRoutes, fixed
  // at construction: a pool has one (itself), a leaf none, an adaptor its upstreams' behind it.
  const std::vector<Route>& routes() const { return routes_; }

  // Thread caches in front of this handler (thread_caches.hpp). A cache's counts are folded
  // into the statistics while it is added; remove_thread_cache() folds what it did for good.
  // The blocks it still holds must then come back through deallocate() (by_gc false), which
  // counts each as a free again, so their frees into the cache are not folded twice.
  // `asked(ctx)`, if given, is called (under a lock: it must not block or call back into this
  // handler) when a trim asks the cache to give its blocks back, so that a thread that makes
  // no further call to the pool still hears of it; clear_trim_notice() stops the calls.
  // `pool`: the cache keeps this handler's blocks (the last handler of the cache's route), so
  // what it holds counts in cachedBytes here; on the other handlers of the route it counts only
  // as not in use.
  void add_thread_cache(double* cells, void (*asked)(void*) = nullptr, void* ctx = nullptr,
                        bool pool = true);
  void remove_thread_cache(double* cells);
  void clear_trim_notice(const double* cells);
  // Gives cached memory back upstream without asking the thread caches again: what a cache
  // that gave its blocks back for a trim asked elsewhere finishes that trim with.
  size_t trim_after_thread_cache() {
    reclaim();
    return do_trim();
  }
  thread_caches::Totals thread_cached() const;
  size_t thread_cache_count() const { return thread_cache_count_.load(std::memory_order_relaxed); }
  // Raises the peaks to what is in use now: a thread cache's hit can raise it without a call
  // into this handler, so the cache calls this when its thread's use passes its last mark.
  void note_peak();
  // The statistics as read, in StatSlot order: the counters with the thread caches folded in.
  void read_stats(uint64_t (&out)[kStatCount]) const;

  pinpool_handler* abi() { return &abi_; }
  const std::string& name() const { return name_; }
  const char* kind() const { return abi_.kind; }
  const Stats& stats() const { return stats_; }

  void retain() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release();
  // retain() unless the last reference is already gone (the handler is being destroyed).
  bool retain_if_alive();

  // A process-wide number for this handler (never reused), so JavaScript in any thread can
  // name it: share()/attach() tokens, `servedBy`. find() returns it with a new reference, or
  // nullptr when it is gone or going.
  uint64_t id() const { return id_; }
  static Handler* find(uint64_t id);

  // The Handler behind a pinpool_handler made by this library, or nullptr for a foreign one.
  static Handler* from_abi(const pinpool_handler* h);

  // 128 random bits, fixed for the handler's life: a share() token must carry them, so a
  // guessed id reaches nothing.
  const uint64_t* secret() const { return secret_; }

 protected:
  virtual void* do_allocate(size_t bytes, size_t alignment, pinpool_alloc_info* info) = 0;
  // Takes a block back and returns the bytes it was allocated with. Returns nothing, having
  // changed nothing, when (ptr, bytes, alignment) is not a block this handler handed out and
  // has not taken back: a foreign pointer, a pointer inside a block, a second free, a size or
  // alignment other than the allocation's (a pool: of another class). Each handler checks what
  // it knows (a pool its slabs, a leaf its live blocks, an adaptor asks its upstream) and
  // reports the size from there, so every level counts the same bytes. The alignment is
  // already known to be valid.
  virtual std::optional<size_t> do_deallocate(void* ptr, size_t bytes, size_t alignment) = 0;
  // Called after a free's statistics are counted (deallocate(), or reclaim() for a deferred
  // free). A limit gives its budget back here, not in do_deallocate(): were the budget free
  // before the statistics drop, another thread could allocate it meanwhile and the statistics
  // would read more bytes in use than the cap.
  virtual void after_deallocate(size_t /*bytes*/) {}
  virtual size_t do_trim() { return 0; }
  // Asks every thread cache in front to give its blocks back (at its thread's next call).
  void ask_thread_caches_to_trim();
  // The same for a limit that refused while thread caches held some of its budget: they give
  // their blocks back, but the pools below keep them cached (no trim follows).
  void ask_thread_caches_to_return();
  // Each subclass adds its routes in its constructor (see routes()).
  std::vector<Route> routes_;
  // Adds the routes of `upstream` (when it is one of ours) behind this handler; returns how many.
  size_t add_routes_through(const pinpool_handler* upstream);

  Stats stats_;  // mutable through const paths only via atomics

 private:
  // The functions of the C struct; from_abi() knows our handlers by abi_alloc.
  static void* abi_alloc(void* ctx, size_t bytes, size_t alignment,
                         pinpool_alloc_info* info) noexcept;
  static void abi_free(void* ctx, void* ptr, size_t bytes, size_t alignment) noexcept;
  // do_deallocate() for a valid alignment, with an exception taken as a refusal; counts a
  // refusal in invalidFrees.
  std::optional<size_t> checked_deallocate(void* ptr, size_t bytes, size_t alignment) noexcept;

  pinpool_handler abi_{};
  std::string name_;
  std::atomic<int64_t> refs_{1};  // the creator's reference
  uint64_t id_ = 0;               // see id()
  uint64_t secret_[2] = {0, 0};   // see secret()
  bool leaf_ = false;             // hands out its own memory: its blocks are in block_registry

  // Gives a block whose leases are over back to do_deallocate() (checked_deallocate()): its
  // bytes as allocated, or nothing when refused.
  std::optional<size_t> finish(void* ptr, size_t bytes, size_t alignment);
  // The statistics of one free.
  void count_free(size_t bytes, bool by_gc);
  // A deferred free was counted as `named` bytes and the block had `freed`: moves the counts.
  void recount_free(size_t named, size_t freed, bool by_gc);

  struct Deferred {
    void* ptr;
    size_t bytes;
    size_t alignment;
    FenceSet fences;
    bool held;   // a block JavaScript reached: held until it is finished
    bool by_gc;  // counted as released by the garbage-collection backstop
  };
  void unhold(const void* ptr);
  bool is_held(const void* ptr) const;
  struct CacheEntry {
    double* cells;         // the cache's counts
    void (*asked)(void*);  // told of a trim (see add_thread_cache), or null
    void* ctx;
    bool pool;  // the cache keeps this handler's blocks (see add_thread_cache)
  };
  void ask_thread_caches(bool trim);
  mutable SpinLock thread_caches_lock_;        // guards thread_caches_
  std::vector<CacheEntry> thread_caches_;      // each thread cache in front
  std::atomic<size_t> thread_cache_count_{0};  // thread_caches_.size(), readable without the lock

  mutable SpinLock held_lock_;         // guards held_
  HeldBlocks held_;                    // blocks pinpool's own code holds (hold())
  std::atomic<size_t> held_count_{0};  // held_.size(), readable without the lock

  SpinLock deferred_lock_;                 // guards deferred_ and orphaned_
  std::vector<Deferred> deferred_;         // frees waiting for their fences; each holds
                                           // a reference to this handler
  std::vector<Deferred> orphaned_;         // frees that will never finish (settle_orphans)
  std::atomic<size_t> deferred_count_{0};  // deferred_.size(), readable without the lock
};

// Calls into any ABI handler, ours or foreign. Ours never throw; a foreign one written in C++
// might, and what it throws stops here: an adaptor never unwinds half-way through its
// bookkeeping. A block one of ours gives an adaptor is held (Handler::hold) until the adaptor
// gives it back: another addon's free of it through the upstream's C struct is refused.
inline void* upstream_alloc(pinpool_handler* h, size_t bytes, size_t alignment,
                            pinpool_alloc_info* info) noexcept {
  try {
    if (Handler* ours = Handler::from_abi(h)) {
      void* p = ours->allocate(bytes, alignment, info);
      if (p) ours->hold(p);
      return p;
    }
    alloc_route() = -1;  // a foreign handler keeps no route of ours
    return h->alloc(h->ctx, bytes, alignment, info);
  } catch (const std::bad_alloc&) {
    *info = pinpool_alloc_info{};
    fail(info, {PINPOOL_ERR_OUT_OF_MEMORY, Reason::OutOfMemory});
  } catch (...) {
    *info = pinpool_alloc_info{};
    fail(info, {PINPOOL_ERR_INTERNAL, Reason::Internal});
  }
  return nullptr;
}
// Returns a block upstream: the bytes it was allocated with, or nothing when the upstream
// refused it. One of ours says so (and counts it); a foreign handler's free returns nothing and
// is taken at its word, size included, unless it throws.
inline std::optional<size_t> upstream_free(pinpool_handler* h, void* ptr, size_t bytes,
                                           size_t alignment) noexcept {
  try {
    if (Handler* ours = Handler::from_abi(h))
      return ours->deallocate(ptr, bytes, alignment, false, {}, /*held=*/true);
    h->free(h->ctx, ptr, bytes, alignment);
    return bytes;
  } catch (...) { return std::nullopt; }
}

// Subtracts n from a count of live blocks or bytes, never below zero: a count that wrapped would
// read as 2^64 and refuse (or admit) everything after. Only a foreign upstream that takes a
// double free at its word could make it try.
inline void count_down(std::atomic<uint64_t>& count, uint64_t n = 1,
                       std::memory_order order = std::memory_order_relaxed) noexcept {
  uint64_t now = count.load(std::memory_order_relaxed);
  while (
      !count.compare_exchange_weak(now, now > n ? now - n : 0, order, std::memory_order_relaxed)) {}
}

// Holds one reference to an ABI handler (an adaptor's upstream).
class UpstreamRef {
 public:
  explicit UpstreamRef(pinpool_handler* h) : h_(h) { h_->retain(h_); }
  ~UpstreamRef() { h_->release(h_); }
  UpstreamRef(const UpstreamRef&) = delete;
  UpstreamRef& operator=(const UpstreamRef&) = delete;
  pinpool_handler* get() const { return h_; }
  const char* name() const { return h_->name; }

 private:
  pinpool_handler* h_;
};

}  // namespace pinpool
