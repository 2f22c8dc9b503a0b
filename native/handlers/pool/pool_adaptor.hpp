// Adaptor: caches blocks taken from its upstream so that a repeated size is served without an
// upstream call (a cuMemHostAlloc can take milliseconds).
//
// Small classes (up to kSlabMaxBlock) are carved from slabs: one upstream allocation holds many
// blocks of one class, and a slab is long-lived memory that JavaScript can view once
// ("slabViews"). Large classes cache whole upstream blocks. Sizes round to the classes of
// size_classes.hpp (under 1/8 waste). Alignments above a page, and requests larger than the
// cache cap, pass straight through.
//
// One lock guards the free lists; it is never held across an upstream call, so a slow
// cuMemHostAlloc on one thread never stalls another thread's pool hit.
//
// The pool knows every block it handed out, so a free that does not name one is refused
// (do_deallocate returns nothing) and never reaches a free list: a slab keeps a bit per block
// (handed out or not), a large block a state, and pass-through blocks sit in a map with their
// size and alignment. A free must name the start of a block, in the class its size and
// alignment map to, that is handed out now. The check costs a pool hit a bit test, a bound
// and a multiplication (the block's index in its slab), under the lock it already takes.
//
// A free may name any size of the block's class, so the pool also keeps the size each block
// was asked with (a slab 4 bytes per block, in one array made with the slab; a large block a
// member) and reports that one back: the statistics, here and in every adaptor above, count
// what was allocated. It costs a pool hit one store and a free one load, under the same lock.
//
// Under AddressSanitizer (support/asan.hpp) every byte the pool holds and has not handed out is
// poisoned: cached blocks, a slab's uncarved room, the tail of a block past the bytes asked for.
// A write through a pointer already freed into the pool is then reported where it happens, not
// found later by the block's next owner. Memory is unpoisoned before it goes back upstream.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "../../core/handler.hpp"
#include "../../support/cond_var.hpp"
#include "../../support/spin_lock.hpp"
#include "size_classes.hpp"

namespace pinpool {

struct PoolOptions {
  uint64_t max_cached_bytes = uint64_t{1} << 30;  // cap on cached large blocks, in bytes
  // When the pool must grow, cached large blocks beyond this fraction of the bytes in use go
  // back upstream first, oldest first. Without it, blocks cached for sizes no longer asked
  // for pile up next to the new ones (a mixed workload then holds twice what it uses).
  // Infinity (kUnboundedCacheRatio or more): none go back early, only the cap acts.
  double cache_ratio = 0.1;
  // A reservation (reserve()) grows the pool by upstream blocks of this size, in bytes; misses
  // carve their slabs and large blocks from them. A block larger than a chunk is never carved.
  size_t chunk_bytes = size_t{64} << 20;
};

// The smallest cache_ratio that stands for Infinity: callers pass +Infinity (include/pinpool.h,
// `cacheRatio: Infinity` in JavaScript), and a ratio this large keeps every block a real pool
// could hold anyway.
inline constexpr double kUnboundedCacheRatio = 1e18;

class PoolAdaptor final : public Handler {
 public:
  PoolAdaptor(std::string name, pinpool_handler* upstream, const PoolOptions& options);
  ~PoolAdaptor() override;

  pinpool_handler* upstream() const { return upstream_.get(); }

  // A JavaScript view over a slab leases it, so trim() keeps its memory mapped. Returns the
  // slab's size, or 0 when `slab` is not the start of one of this pool's slabs.
  size_t lease_slab(void* slab);
  void end_slab_lease(void* slab);
  // A view pinning `slab` may live on in a thread pinpool cannot watch: the lease is kept for
  // good. Counts the slab as orphaned the first time only (many views of one slab may leave).
  void orphan_slab(void* slab);

  // The bytes the pool holds for a block of (bytes, alignment): its size class, or 0 when such
  // a request passes straight through (no class: the pool does not cache it).
  size_t class_bytes(size_t bytes, size_t alignment) const override {
    if (passes_through(bytes, alignment, options_.max_cached_bytes)) return 0;
    return size_classes::size_of(class_for(bytes, alignment));
  }

  // A reservation in two steps: begin_reservation() (on the caller's thread, so that a miss
  // right after it already waits for it) returns its id; reserve() then grows the pool by
  // `bytes` (rounded up to whole chunks) ahead of its misses, one chunk at a time, and blocks
  // (on another thread) until done; every begin_reservation() needs its reserve(), with 0 bytes
  // to end it without growing. Misses carve from the chunks as each lands, and a miss that
  // arrives while a reservation is under way waits for its next chunk instead of growing the
  // pool itself. trim() keeps the chunks; trim_reservation() gives back those wholly free. On
  // an upstream refusal, returns false with `info` describing it and gives back the chunks of
  // this reservation no block was carved from: nothing is left half-grown.
  uint64_t begin_reservation();
  bool reserve(uint64_t id, uint64_t bytes, pinpool_alloc_info* info);
  // trim(), then gives the reservation's chunks that hold no block back upstream; returns the
  // bytes given back upstream.
  size_t trim_reservation();
  size_t chunk_bytes() const { return chunk_bytes_; }

  static constexpr size_t kSlabMaxBlock = 256 * 1024;  // largest class carved from slabs
  static constexpr size_t kBlockAlignment = 4096;      // alignment the pool guarantees

 private:
  static constexpr uint32_t kNoSlab = UINT32_MAX;
  // Most blocks one slab holds: the smallest slab (64 KiB) of the smallest class (64 bytes).
  static constexpr uint32_t kMaxSlabBlocks = 64 * 1024 / size_classes::kGranule;

  struct FreeBlock {
    void* ptr;
    uint32_t slab;   // index into slabs_, or kNoSlab for a large block
    uint32_t block;  // (slab blocks) its index in the slab
  };
  struct Slab {
    char* base = nullptr;                           // start of the upstream block
    size_t bytes = 0;                               // its size, in bytes
    const pinpool_handler* served_by = nullptr;     // the leaf that provided it
    int class_index = 0;                            // the one class carved from it
    uint32_t capacity = 0;                          // blocks it can hold
    uint32_t carved = 0;                            // blocks handed out at least once
    uint32_t leases = 0;                            // JavaScript views over it
    bool orphaned = false;                          // a view of it may outlive its thread:
                                                    // pinned for good (orphan_slab())
    bool live = false;                              // false: the slot is free for reuse
    uint64_t reciprocal = 0;                        // size_classes::reciprocal_of(class size)
    uint64_t handed_out[kMaxSlabBlocks / 64] = {};  // a bit per block: with a caller now
                                                    // (never set past `carved`)
    std::unique_ptr<uint32_t[]> asked;              // per block: the bytes its caller asked for
                                                    // (`capacity` of them; a block is < 2^32)

    bool is_out(uint32_t block) const { return handed_out[block / 64] >> (block % 64) & 1; }
    void hand_out(uint32_t block) { handed_out[block / 64] |= uint64_t{1} << (block % 64); }
    void take_back(uint32_t block) { handed_out[block / 64] &= ~(uint64_t{1} << (block % 64)); }
  };
  enum class LargeState : uint8_t {
    Out,      // with a caller
    Freeing,  // being freed: checked, not yet cached or released (see do_deallocate)
    Cached,   // in free_
  };
  struct Large {
    const pinpool_handler* served_by;  // the leaf that provided it
    int class_index;                   // its class
    LargeState state;
    size_t asked;  // the bytes its caller asked for (while Out)
  };
  struct PassedThrough {
    size_t bytes;      // as asked, in bytes
    size_t alignment;  // as asked
  };

  void* do_allocate(size_t bytes, size_t alignment, pinpool_alloc_info* info) override;
  std::optional<size_t> do_deallocate(void* ptr, size_t bytes, size_t alignment) override;
  size_t do_trim() override;

  static bool passes_through(size_t bytes, size_t alignment, uint64_t cap);
  static int class_for(size_t bytes, size_t alignment);
  static size_t slab_bytes_for(size_t class_bytes);

  void* timed_upstream_alloc(size_t bytes, size_t alignment, pinpool_alloc_info* info);
  bool timed_upstream_free(void* ptr, size_t bytes, size_t alignment);  // false: refused
  // The allocation paths take `bytes`, the size asked, to record it with the block.
  void* take_cached(int index, size_t class_bytes, size_t bytes,
                    pinpool_alloc_info* info);  // lock held
  void* grow_small(int index, size_t class_bytes, size_t bytes, pinpool_alloc_info* info);
  void* grow_large(int index, size_t class_bytes, size_t bytes, pinpool_alloc_info* info);
  void* pass_through(size_t bytes, size_t alignment, pinpool_alloc_info* info);
  // The free paths return the size the block was asked with, or nothing when refused.
  std::optional<size_t> free_small(void* ptr, int index, size_t class_bytes);
  std::optional<size_t> free_large(void* ptr, int index, size_t class_bytes);
  std::optional<size_t> free_passed_through(void* ptr, size_t bytes, size_t alignment);
  void release_stale_large();
  // What trim() gives back upstream once the lock is gone.
  struct Release {
    void* ptr;     // an upstream block
    size_t bytes;  // its size, in bytes
  };
  // trim(), under the lock: takes the slabs whose blocks are all free and unpinned out of the
  // pool, adding them to `releases`; returns which slab indexes died.
  std::vector<bool> take_idle_slabs(std::vector<Release>& releases);
  // trim(), under the lock: takes every cached large block, and the free lists' entries of the
  // dead slabs, out of the pool, adding the large blocks to `releases`.
  void take_cached_blocks(const std::vector<bool>& dead, std::vector<Release>& releases);
  // What the thread caches in front of the pool keep: {bytes as allocated, class bytes}.
  std::pair<uint64_t, uint64_t> thread_cached_bytes() const;
  uint32_t slab_of(void* ptr) const;  // the slab holding ptr, or kNoSlab; lock held
  void describe_slab(uint32_t id, pinpool_alloc_info* info) const;  // lock held
  static void not_in_a_slab(pinpool_alloc_info* info);

  // A chunk of a reservation: one upstream block, carved into the pool's slabs and large blocks.
  struct Chunk {
    char* base;
    size_t bytes;
    const pinpool_handler* served_by;  // the leaf that provided it
    std::map<size_t, size_t> free;     // uncarved room: offset -> length, coalesced
    uint64_t reservation;              // which reserve() call brought it
    size_t carved = 0;                 // bytes carved from it and not given back: 0 means free,
                                       // whatever `free` says (a room lost to bad_alloc)
  };
  // A block of `bytes` (a page multiple) from a chunk, best fit, or nullptr. Lock held.
  void* carve(size_t bytes, pinpool_alloc_info* info);
  // Takes a block of `bytes` from the chunks; waits for a reservation under way when none has
  // room (and it could: bytes <= a chunk), rather than growing the pool a second time.
  void* carve_or_wait(size_t bytes, pinpool_alloc_info* info);
  // An upstream-sized block for a slab or a large block: carved, or from the upstream.
  void* grow_by(size_t bytes, pinpool_alloc_info* info);
  // Gives a block of grow_by() back: to its chunk when carved from one (returns 0), else
  // upstream (returns its bytes). Lock not held.
  size_t give_back(void* ptr, size_t bytes);
  // Gives back upstream the chunks wholly free: of reservation `reservation`, or for 0 of every
  // reservation that has ended (one under way keeps its chunks until it resolves).
  size_t release_free_chunks(uint64_t reservation);
  // The chunk holding ptr, or nullptr. Lock held.
  Chunk* chunk_of(void* ptr);

  UpstreamRef upstream_;
  const PoolOptions options_;
  const size_t chunk_bytes_;  // options_.chunk_bytes in whole pages
  // options_.cache_ratio, or nothing when it is unbounded (kUnboundedCacheRatio or more, NaN):
  // then release_stale_large() gives nothing back.
  const std::optional<double> cache_ratio_;

  using Lock = std::lock_guard<SpinLock>;
  SpinLock lock_;                                           // guards everything below
  std::vector<FreeBlock> free_[size_classes::kCount];       // cached blocks, by class
  std::vector<uint32_t> carving_[size_classes::kCount];     // slabs with uncarved room, by class
  std::vector<Slab> slabs_;                                 // every slab, by index
  std::vector<uint32_t> free_slab_slots_;                   // indexes of dead slabs, for reuse
  std::vector<std::pair<uintptr_t, uint32_t>> slab_index_;  // (base, index), sorted by base
  std::unordered_map<void*, Large> large_;                  // every large block held
  uint64_t cached_large_bytes_ = 0;                         // bytes of large blocks in free_
  std::deque<std::pair<void*, int>> large_order_;           // cached large blocks, oldest first
                                                            // (entries taken since are skipped)

  std::vector<Chunk> chunks_;  // the reservation's, by base

  std::mutex growth_mutex_;        // guards landed_, reservations_ and running_
  CondVar growth_cv_;              // a chunk landed, or a reservation ended
  uint64_t landed_ = 0;            // chunks landed and reservations ended, ever
  uint64_t reservations_ = 0;      // reserve() calls, ever (names each one's chunks)
  std::vector<uint64_t> running_;  // the ids of those under way

  std::mutex passed_mutex_;                          // guards passed_
  std::unordered_map<void*, PassedThrough> passed_;  // pass-through blocks handed out
};

}  // namespace pinpool
