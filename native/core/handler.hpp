// The base of every handler, leaf or adaptor (RMM's memory_resource shape).
//
// A Handler *is* a pinpool_handler (include/pinpool.h): the C struct is its first member and its
// ctx points back at the object, so a Handler can be handed to any C consumer and any C handler
// can be an upstream. The public, non-virtual allocate()/deallocate() are the one place where
// statistics are kept; subclasses implement do_allocate()/do_deallocate() only.
#pragma once

#include <atomic>
#include <cstddef>
#include <string>

#include <vector>

#include "../../include/pinpool.h"
#include "fence.hpp"
#include "spin_lock.hpp"
#include "stats.hpp"

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

class Handler {
 public:
  Handler(std::string name, const char* kind);
  virtual ~Handler();
  Handler(const Handler&) = delete;
  Handler& operator=(const Handler&) = delete;

  // Returns a block of `bytes` aligned to `alignment`, or nullptr with `info` filled in.
  // `info` must be zero-initialised by the caller.
  void* allocate(size_t bytes, size_t alignment, pinpool_alloc_info* info);
  // Returns a block to this handler. `by_gc`: the garbage-collection backstop, not free().
  // The caller's accounting ends now; the block itself reaches do_deallocate(), and so can be
  // handed out again, only once no lease on its memory remains (leases.hpp): neither one of
  // `fences` (leases the caller knows of, such as an ArrayBuffer that escaped) nor a lease in
  // the table (a copy in flight). That is PyTorch's CachingHostAllocator rule, made general.
  void deallocate(void* ptr, size_t bytes, size_t alignment, bool by_gc = false,
                  FenceSet fences = {});
  // Finishes the deferred frees whose fences have signalled; returns how many. Never blocks
  // on a fence. allocate() and trim() call it.
  size_t reclaim();
  // Blocks still waiting for their fences.
  size_t deferred() const { return deferred_count_.load(std::memory_order_relaxed); }

  // Gives cached memory back upstream; returns the bytes released. Adaptors forward it.
  size_t trim() {
    reclaim();
    return do_trim();
  }

  pinpool_handler* abi() { return &abi_; }
  const std::string& name() const { return name_; }
  const char* kind() const { return abi_.kind; }
  const Stats& stats() const { return stats_; }

  void retain() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release();

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
  virtual void do_deallocate(void* ptr, size_t bytes, size_t alignment) = 0;
  virtual size_t do_trim() { return 0; }

  Stats stats_;  // mutable through const paths only via atomics

 private:
  pinpool_handler abi_{};
  std::string name_;
  std::atomic<int64_t> refs_{1};  // the creator's reference
  uint64_t id_ = 0;               // see id()
  uint64_t secret_[2] = {0, 0};   // see secret()
  bool leaf_ = false;             // hands out its own memory: its blocks are in block_registry

  // Gives a block whose leases are over back to do_deallocate().
  void finish(void* ptr, size_t bytes, size_t alignment);

  struct Deferred {
    void* ptr;
    size_t bytes;
    size_t alignment;
    FenceSet fences;
  };
  SpinLock deferred_lock_;                     // guards deferred_
  std::vector<Deferred> deferred_;             // frees waiting for their fences
  std::atomic<size_t> deferred_count_{0};      // deferred_.size(), readable without the lock
};

// Calls into any ABI handler, ours or foreign.
inline void* upstream_alloc(pinpool_handler* h, size_t bytes, size_t alignment,
                            pinpool_alloc_info* info) {
  return h->alloc(h->ctx, bytes, alignment, info);
}
inline void upstream_free(pinpool_handler* h, void* ptr, size_t bytes, size_t alignment) {
  h->free(h->ctx, ptr, bytes, alignment);
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
