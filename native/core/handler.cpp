#include "handler.hpp"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "../support/align.hpp"
#include "../support/random.hpp"
#include "block_registry.hpp"
#include "leases.hpp"

namespace pinpool {

void* Handler::abi_alloc(void* ctx, size_t bytes, size_t alignment,
                         pinpool_alloc_info* info) noexcept {
  pinpool_alloc_info local{};
  return static_cast<Handler*>(ctx)->allocate(bytes, alignment, info ? info : &local);
}

void Handler::abi_free(void* ctx, void* ptr, size_t bytes, size_t alignment) noexcept {
  if (!ptr) return;  // as free(NULL) in C: nothing, and not counted
  auto* self = static_cast<Handler*>(ctx);
  try {
    // A block JavaScript still reaches is not the C caller's to free.
    if (self->is_held(ptr)) {
      Stats::bump(self->stats_.invalidFrees);
      return;
    }
    self->deallocate(ptr, bytes, alignment);
  } catch (...) {
    // deallocate() does not throw; should that ever change, the free is refused, not a crash.
    Stats::bump(self->stats_.invalidFrees);
  }
}

namespace {

void abi_retain(pinpool_handler* self) { static_cast<Handler*>(self->ctx)->retain(); }
void abi_release(pinpool_handler* self) { static_cast<Handler*>(self->ctx)->release(); }
void abi_destroy(void* ctx) { delete static_cast<Handler*>(ctx); }

// Every live handler by id. Leaked on purpose: handlers may outlive static destruction.
std::mutex& registry_mutex() {
  static auto* m = new std::mutex();
  return *m;
}
std::unordered_map<uint64_t, Handler*>& registry() {
  static auto* r = new std::unordered_map<uint64_t, Handler*>();
  return *r;
}
uint64_t next_id = 1;  // guarded by registry_mutex()
// Deferred frees waiting in every handler (not the orphans): lets reclaim_all() return at once
// when there are none, which is nearly always.
std::atomic<size_t> deferred_total{0};

}  // namespace

Handler::~Handler() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry().erase(id_);
}

Handler* Handler::find(uint64_t id) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  auto it = registry().find(id);
  if (it == registry().end()) return nullptr;
  return it->second->retain_if_alive() ? it->second : nullptr;
}

bool Handler::retain_if_alive() {
  int64_t refs = refs_.load(std::memory_order_relaxed);
  while (refs > 0 && !refs_.compare_exchange_weak(refs, refs + 1, std::memory_order_relaxed)) {}
  return refs > 0;
}

size_t Handler::reclaim_all() {
  if (deferred_total.load(std::memory_order_relaxed) == 0) return 0;
  std::vector<Handler*> waiting;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    for (auto& [id, h] : registry())
      if (h->deferred_count_.load(std::memory_order_relaxed) != 0 && h->retain_if_alive())
        waiting.push_back(h);
  }
  // Outside the lock: a handler destroyed here leaves the registry in its destructor.
  size_t finished = 0;
  for (Handler* h : waiting) {
    finished += h->reclaim();
    h->release();
  }
  return finished;
}

Handler::Handler(std::string name, const char* kind, Role role) : name_(std::move(name)) {
  abi_.abi_version = PINPOOL_ABI_VERSION;
  abi_.struct_size = sizeof(pinpool_handler);
  abi_.name = name_.c_str();
  abi_.kind = kind;
  abi_.ctx = this;
  abi_.alloc = abi_alloc;
  abi_.free = abi_free;
  abi_.retain = abi_retain;
  abi_.release = abi_release;
  abi_.destroy = abi_destroy;
  leaf_ = role == Role::Leaf;
  random_words(secret_, 2);  // the kernel's random numbers
  std::lock_guard<std::mutex> lock(registry_mutex());
  id_ = next_id++;
  registry()[id_] = this;
}

Handler* Handler::from_abi(const pinpool_handler* h) {
  return h && h->alloc == abi_alloc ? static_cast<Handler*>(h->ctx) : nullptr;
}

void Handler::release() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  // No free is waiting (each wait holds a reference): nothing under a lease goes with it.
  abi_.destroy(abi_.ctx);
}

void* Handler::allocate(size_t bytes, size_t alignment, pinpool_alloc_info* info) noexcept {
  void* p = nullptr;
  alloc_route() = -1;  // a leaf's block; a pool or an adaptor says otherwise
  try {
    if (deferred_count_.load(std::memory_order_relaxed) != 0) reclaim();
    if (is_valid_alignment(alignment))
      p = do_allocate(bytes, alignment, info);
    else
      fail(info, {PINPOOL_ERR_INVALID_ARGUMENT, Reason::InvalidArgument});
  } catch (const std::bad_alloc&) {
    *info = pinpool_alloc_info{};  // whatever was filled in before the throw
    fail(info, {PINPOOL_ERR_OUT_OF_MEMORY, Reason::OutOfMemory});
  } catch (...) {
    *info = pinpool_alloc_info{};
    fail(info, {PINPOOL_ERR_INTERNAL, Reason::Internal});
  }
  if (!p) {
    if (info->code == PINPOOL_OK) fail(info, {PINPOOL_ERR_INTERNAL, Reason::OutOfMemory});
    // Count by our own reason table; text we do not know counts as out-of-memory.
    int r = reason_index(info->reason);
    if (r < 0) r = static_cast<int>(Reason::OutOfMemory);
    Stats::bump(stats_.failures[r]);
    return nullptr;
  }
  if (!info->served_by) info->served_by = abi();
  if (leaf_) block_registry::add(p, bytes, kind(), this);
  // Blocks in thread caches are counted as handed out here but are not in use: the peak leaves
  // them out.
  thread_caches::Totals cached;
  if (thread_cache_count_.load(std::memory_order_relaxed) != 0) cached = thread_cached();
  stats_.bytes.add(bytes, cached.bytes);
  stats_.allocations.add(1, cached.blocks);
  return p;
}

std::optional<size_t> Handler::deallocate(void* ptr, size_t bytes, size_t alignment, bool by_gc,
                                          FenceSet fences, bool held) {
  if (leases::any()) {
    std::vector<Fence*> leased;
    leases::overlapping(ptr, bytes, leased);
    fences.adopt(leased);
  }
  if (fences.all_done()) {
    if (held) unhold(ptr);
    std::optional<size_t> freed = finish(ptr, bytes, alignment);
    if (!freed) return std::nullopt;  // counted; nothing else moves
    count_free(*freed, by_gc);
    after_deallocate(*freed);
    return freed;
  }
  // Checked when it is finished (reclaim()); a refusal then takes these statistics back, and a
  // block of another size than named corrects them. The wait holds this handler: were it
  // destroyed meanwhile, it (a pool) would give the block's memory back upstream while the
  // lease still reaches it.
  retain();
  const bool orphan = fences.any_abandoned();
  {
    std::lock_guard<SpinLock> lock(deferred_lock_);
    (orphan ? orphaned_ : deferred_)
        .push_back({ptr, bytes, alignment, std::move(fences), held, by_gc});
    deferred_count_.store(deferred_.size(), std::memory_order_relaxed);
  }
  if (!orphan) deferred_total.fetch_add(1, std::memory_order_relaxed);
  count_free(bytes, by_gc);
  if (orphan) count_orphaned(bytes);
  return bytes;
}

void Handler::count_arrival(void* ptr, size_t bytes) {
  block_registry::add(ptr, bytes, kind(), this);
  stats_.bytes.add(bytes);
  stats_.allocations.add(1);
}

void Handler::count_departure(void* ptr, size_t bytes) {
  unhold(ptr);
  block_registry::remove(ptr, this);
  stats_.bytes.sub(bytes);
  stats_.allocations.sub(1);
}

void Handler::settle_orphans() {
  if (deferred_count_.load(std::memory_order_relaxed) == 0) return;
  size_t bytes = 0, blocks = 0;
  {
    std::lock_guard<SpinLock> lock(deferred_lock_);
    auto lost = std::stable_partition(deferred_.begin(), deferred_.end(),
                                      [](const Deferred& d) { return !d.fences.any_abandoned(); });
    for (auto it = lost; it != deferred_.end(); ++it) {
      bytes += it->bytes;
      blocks++;
      orphaned_.push_back(std::move(*it));
    }
    deferred_.erase(lost, deferred_.end());
    deferred_count_.store(deferred_.size(), std::memory_order_relaxed);
  }
  deferred_total.fetch_sub(blocks, std::memory_order_relaxed);
  if (blocks) count_orphaned(bytes, blocks);
}

void Handler::count_orphaned(size_t bytes, size_t blocks) {
  Stats::bump(stats_.orphanedBytes, bytes);
  Stats::bump(stats_.orphanedBlocks, blocks);
}

void Handler::count_free(size_t bytes, bool by_gc) {
  stats_.bytes.sub(bytes);
  stats_.allocations.sub(1);
  Stats::bump(stats_.frees);
  if (by_gc) {
    Stats::bump(stats_.gcReleased);
    Stats::bump(stats_.gcReleasedBytes, bytes);
  }
}

void Handler::recount_free(size_t named, size_t freed, bool by_gc) {
  // Modulo 2^64, so one add moves the count either way.
  stats_.bytes.current.fetch_add(named - freed, std::memory_order_relaxed);
  if (by_gc) stats_.gcReleasedBytes.fetch_add(freed - named, std::memory_order_relaxed);
}

std::optional<size_t> Handler::finish(void* ptr, size_t bytes, size_t alignment) {
  if (!leaf_) return checked_deallocate(ptr, bytes, alignment);
  // Forget the block before it goes: once freed, its address may be handed out again (and
  // recorded by whoever gets it). A refused free puts the record back.
  size_t recorded = block_registry::remove(ptr, this);
  std::optional<size_t> freed = checked_deallocate(ptr, bytes, alignment);
  if (!freed && recorded) block_registry::add(ptr, recorded, kind(), this);
  return freed;
}

size_t Handler::reclaim() {
  settle_orphans();
  std::vector<Deferred> ready;
  {
    std::lock_guard<SpinLock> lock(deferred_lock_);
    auto done = std::stable_partition(deferred_.begin(), deferred_.end(),
                                      [](const Deferred& d) { return !d.fences.all_done(); });
    for (auto it = done; it != deferred_.end(); ++it) ready.push_back(std::move(*it));
    deferred_.erase(done, deferred_.end());
    deferred_count_.store(deferred_.size(), std::memory_order_relaxed);
  }
  deferred_total.fetch_sub(ready.size(), std::memory_order_relaxed);
  // Outside the lock: do_deallocate may take a pool's lock or call the driver.
  for (Deferred& d : ready) {
    if (d.held) unhold(d.ptr);
    if (std::optional<size_t> freed = finish(d.ptr, d.bytes, d.alignment)) {
      if (*freed != d.bytes) recount_free(d.bytes, *freed, d.by_gc);
      after_deallocate(*freed);
    } else {
      // Refused: take back what deallocate() counted, as if the free had never come.
      stats_.bytes.current.fetch_add(d.bytes, std::memory_order_relaxed);
      stats_.allocations.current.fetch_add(1, std::memory_order_relaxed);
      stats_.frees.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  // Last: the waits' references. None can be the last one (the caller holds its own), except
  // from release(), which reclaims only once no wait is left.
  const size_t finished = ready.size();
  ready.clear();
  for (size_t i = 0; i < finished; i++) release();
  return finished;
}

void Handler::add_thread_cache(double* cells, void (*asked)(void*), void* ctx, bool pool) {
  std::lock_guard<SpinLock> lock(thread_caches_lock_);
  thread_caches_.push_back({cells, asked, ctx, pool});
  thread_cache_count_.store(thread_caches_.size(), std::memory_order_relaxed);
}

void Handler::remove_thread_cache(double* cells) {
  std::lock_guard<SpinLock> lock(thread_caches_lock_);
  auto it = std::find_if(thread_caches_.begin(), thread_caches_.end(),
                         [cells](const CacheEntry& e) { return e.cells == cells; });
  if (it == thread_caches_.end()) return;
  thread_caches_.erase(it);
  thread_cache_count_.store(thread_caches_.size(), std::memory_order_relaxed);
  // Folded under the lock, so that a reader sees the cache's counts once: in its cells or here.
  using namespace thread_caches;
  stats_.allocations.total.fetch_add(count(cells, kHits), std::memory_order_relaxed);
  stats_.bytes.total.fetch_add(count(cells, kHitBytes), std::memory_order_relaxed);
  uint64_t frees = count(cells, kFrees), held = count(cells, kBlocks);
  Stats::bump(stats_.frees, frees > held ? frees - held : 0);
}

thread_caches::Totals Handler::thread_cached() const {
  thread_caches::Totals totals;
  std::lock_guard<SpinLock> lock(thread_caches_lock_);
  for (const CacheEntry& e : thread_caches_) totals.add(e.cells, e.pool);
  return totals;
}

void Handler::note_peak() {
  thread_caches::Totals cached = thread_cached();
  uint64_t bytes = stats_.bytes.current.load(std::memory_order_relaxed);
  uint64_t blocks = stats_.allocations.current.load(std::memory_order_relaxed);
  stats_.bytes.raise_peak(bytes > cached.bytes ? bytes - cached.bytes : 0);
  stats_.allocations.raise_peak(blocks > cached.blocks ? blocks - cached.blocks : 0);
}

void Handler::ask_thread_caches_to_trim() { ask_thread_caches(true); }

void Handler::ask_thread_caches_to_return() { ask_thread_caches(false); }

void Handler::ask_thread_caches(bool trim) {
  using namespace thread_caches;
  std::lock_guard<SpinLock> lock(thread_caches_lock_);
  for (const CacheEntry& e : thread_caches_) {
    if (trim) store(e.cells, kPoolTrims, load(e.cells, kPoolTrims) + 1);
    store(e.cells, kTrims, load(e.cells, kTrims) + 1);
    if (e.asked) e.asked(e.ctx);
  }
}

size_t Handler::add_routes_through(const pinpool_handler* upstream) {
  const Handler* ours = from_abi(upstream);
  if (!ours) return 0;
  size_t added = 0;
  for (const Route& below : ours->routes()) {
    if (routes_.size() >= kMaxRoutes) break;
    Route route{this};
    route.insert(route.end(), below.begin(), below.end());
    routes_.push_back(std::move(route));
    added++;
  }
  return added;
}

void Handler::clear_trim_notice(const double* cells) {
  std::lock_guard<SpinLock> lock(thread_caches_lock_);
  for (CacheEntry& e : thread_caches_)
    if (e.cells == cells) e.asked = nullptr;
}

void Handler::read_stats(uint64_t (&out)[kStatCount]) const {
  // Orphans are counted when they are found; a reader finds the ones a thread's end made.
  const_cast<Handler*>(this)->settle_orphans();
  const Stats& s = stats_;
  // A field is one slot; a per-reason array one slot per reason, a histogram one per bucket.
  struct Copy {
    uint64_t* at;
    void operator()(const std::atomic<uint64_t>& v) const {
      *at = v.load(std::memory_order_relaxed);
    }
    void operator()(const std::atomic<uint64_t> (&v)[kReasonCount]) const { all(v, kReasonCount); }
    void operator()(const std::atomic<uint64_t> (&v)[kGrowthBucketCount]) const {
      all(v, kGrowthBucketCount);
    }
    void all(const std::atomic<uint64_t>* v, int n) const {
      for (int i = 0; i < n; i++) at[i] = v[i].load(std::memory_order_relaxed);
    }
  };
#define PINPOOL_READ_STAT(name, stem, type, aggregator, kinds, labels, field, scale, help) \
  Copy{out + kStat_##name}(s.field);
  PINPOOL_STATS(PINPOOL_READ_STAT)
#undef PINPOOL_READ_STAT
  if (thread_cache_count_.load(std::memory_order_relaxed) == 0) return;
  thread_caches::Totals cached = thread_cached();
  auto less = [](uint64_t a, uint64_t b) { return a > b ? a - b : 0; };
  out[kStat_bytesInUse] = less(out[kStat_bytesInUse], cached.bytes);
  out[kStat_buffersInUse] = less(out[kStat_buffersInUse], cached.blocks);
  out[kStat_allocatedBytes] += cached.hit_bytes;
  out[kStat_allocations] += cached.hits;
  out[kStat_frees] += cached.frees;
  out[kStat_cachedBytes] += cached.class_bytes;
}

void Handler::hold(const void* ptr) {
  std::lock_guard<SpinLock> lock(held_lock_);
  held_.insert(ptr);
  held_count_.store(held_.size(), std::memory_order_relaxed);
}

void Handler::unhold(const void* ptr) {
  std::lock_guard<SpinLock> lock(held_lock_);
  held_.erase(ptr);
  held_count_.store(held_.size(), std::memory_order_relaxed);
}

bool Handler::is_held(const void* ptr) const {
  if (held_count_.load(std::memory_order_relaxed) == 0) return false;
  std::lock_guard<SpinLock> lock(held_lock_);
  return held_.contains(ptr);
}

std::optional<size_t> Handler::checked_deallocate(void* ptr, size_t bytes,
                                                  size_t alignment) noexcept {
  std::optional<size_t> freed;
  if (is_valid_alignment(alignment)) {
    try {
      freed = do_deallocate(ptr, bytes, alignment);
    } catch (...) {
      freed.reset();  // a handler that throws half-way keeps the block rather than lose track of it
    }
  }
  if (!freed) Stats::bump(stats_.invalidFrees);
  return freed;
}

}  // namespace pinpool
