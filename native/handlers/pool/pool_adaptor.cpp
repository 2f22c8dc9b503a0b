#include "pool_adaptor.hpp"

#include <algorithm>
#include <chrono>

#include "../../support/align.hpp"
#include "../../support/asan.hpp"

namespace pinpool {
namespace {

// Makes sure one more push_back cannot throw (growing as push_back would: by doubling).
template <typename T>
void room_for_one(std::vector<T>& v) {
  if (v.size() == v.capacity()) v.reserve(std::max<size_t>(8, 2 * v.capacity()));
}

// A chunk is whole pages, at least kMinChunkBytes (smaller ones would make the chunk list, which
// a miss scans, long); a size too large to round is a chunk of 1 GiB.
constexpr size_t kMinChunkBytes = size_t{2} << 20;
size_t chunk_size(size_t bytes) {
  size_t rounded = align_up(bytes, page_size());
  return rounded == 0 ? size_t{1} << 30 : std::max(rounded, kMinChunkBytes);
}

std::optional<double> bounded(double cache_ratio) {
  if (!(cache_ratio < kUnboundedCacheRatio)) return std::nullopt;  // NaN is unbounded too
  return cache_ratio;
}

}  // namespace

using size_classes::index_of;
using size_classes::size_of;

PoolAdaptor::PoolAdaptor(std::string name, pinpool_handler* upstream, const PoolOptions& options)
    : Handler(std::move(name), "pool", Role::Adaptor),
      upstream_(upstream),
      options_(options),
      chunk_bytes_(chunk_size(options.chunk_bytes)),
      cache_ratio_(bounded(options.cache_ratio)) {
  routes_.push_back({this});  // its blocks are its own to cache, whatever lies below
}

PoolAdaptor::~PoolAdaptor() {
  // By the reference rules nothing is live when the last reference goes, so every cached block
  // and every slab goes back upstream. Anything still handed out is left alone, not freed
  // under its holder. The reservation's chunks go too, those that hold no block.
  trim();
  trim_reservation();
}

bool PoolAdaptor::passes_through(size_t bytes, size_t alignment, uint64_t cap) {
  return alignment > kBlockAlignment || bytes > cap || bytes > size_classes::kMaxBytes;
}

int PoolAdaptor::class_for(size_t bytes, size_t alignment) {
  int index = index_of(bytes ? bytes : 1);
  if (alignment <= size_classes::kGranule) return index;  // every class is a multiple of 64
  // Blocks in a slab sit at multiples of the class size from a page-aligned start, so a class
  // serves an alignment when its size is a multiple of it. Large blocks are page-aligned.
  while (size_of(index) <= kSlabMaxBlock && size_of(index) % alignment != 0) index++;
  return index;
}

size_t PoolAdaptor::slab_bytes_for(size_t class_bytes) {
  size_t bytes = std::clamp<size_t>(class_bytes * 16, 64 * 1024, 4 * 1024 * 1024);
  return align_up(bytes, page_size());
}

void* PoolAdaptor::timed_upstream_alloc(size_t bytes, size_t alignment, pinpool_alloc_info* info) {
  auto start = std::chrono::steady_clock::now();
  void* p = upstream_alloc(upstream_.get(), bytes, alignment, info);
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                                 start);
  Stats::bump(stats_.upstreamAllocs);
  Stats::bump(stats_.upstreamNanos, static_cast<uint64_t>(ns.count()));
  stats_.count_growth(static_cast<uint64_t>(ns.count()));
  if (p) stats_.reserved.add(bytes);
  return p;
}

bool PoolAdaptor::timed_upstream_free(void* ptr, size_t bytes, size_t alignment) {
  auto start = std::chrono::steady_clock::now();
  std::optional<size_t> freed = upstream_free(upstream_.get(), ptr, bytes, alignment);
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                                 start);
  Stats::bump(stats_.upstreamFrees);
  Stats::bump(stats_.upstreamNanos, static_cast<uint64_t>(ns.count()));
  if (freed) stats_.reserved.sub(*freed);
  return freed.has_value();
}

inline uint32_t PoolAdaptor::slab_of(void* ptr) const {
  auto key = reinterpret_cast<uintptr_t>(ptr);
  auto it =
      std::upper_bound(slab_index_.begin(), slab_index_.end(), std::make_pair(key, UINT32_MAX));
  if (it == slab_index_.begin()) return kNoSlab;
  uint32_t id = std::prev(it)->second;
  return key - std::prev(it)->first < slabs_[id].bytes ? id : kNoSlab;
}

void PoolAdaptor::describe_slab(uint32_t id, pinpool_alloc_info* info) const {
  const Slab& s = slabs_[id];
  info->served_by = s.served_by;
  info->slab = s.base;
  info->slab_bytes = s.bytes;
}

void* PoolAdaptor::take_cached(int index, size_t class_bytes, size_t bytes,
                               pinpool_alloc_info* info) {
  std::vector<FreeBlock>& list = free_[index];
  if (!list.empty()) {
    FreeBlock b = list.back();
    list.pop_back();
    if (b.slab != kNoSlab) {
      slabs_[b.slab].hand_out(b.block);
      slabs_[b.slab].asked[b.block] = static_cast<uint32_t>(bytes);
      describe_slab(b.slab, info);
    } else {
      Large& large = large_.find(b.ptr)->second;  // a cached block is always there
      large.state = LargeState::Out;
      large.asked = bytes;
      info->served_by = large.served_by;
      not_in_a_slab(info);
      cached_large_bytes_ -= class_bytes;
    }
    stats_.cachedBytes.fetch_sub(class_bytes, std::memory_order_relaxed);
    return b.ptr;
  }
  std::vector<uint32_t>& carving = carving_[index];
  while (!carving.empty()) {
    Slab& s = slabs_[carving.back()];
    if (s.carved == s.capacity) {
      carving.pop_back();
      continue;
    }
    s.hand_out(s.carved);
    s.asked[s.carved] = static_cast<uint32_t>(bytes);
    void* p = s.base + static_cast<size_t>(s.carved++) * class_bytes;
    describe_slab(carving.back(), info);
    stats_.cachedBytes.fetch_sub(class_bytes, std::memory_order_relaxed);
    return p;
  }
  return nullptr;
}

void* PoolAdaptor::grow_small(int index, size_t class_bytes, size_t bytes,
                              pinpool_alloc_info* info) {
  size_t slab_bytes = slab_bytes_for(class_bytes);
  char* base = static_cast<char*>(grow_by(slab_bytes, info));
  if (!base) return nullptr;
  // Every byte not handed out is poisoned (the caller unpoisons its first block). Done before
  // the slab is published: once other threads can carve from it, they own their blocks' marks.
  asan::poison(base, slab_bytes);
  auto undo = [&] {
    asan::unpoison(base, slab_bytes);
    give_back(base, slab_bytes);
  };
  Slab s;
  s.base = base;
  s.bytes = slab_bytes;
  s.served_by = info->served_by;
  s.class_index = index;
  s.capacity = static_cast<uint32_t>(std::min<size_t>(slab_bytes / class_bytes, kMaxSlabBlocks));
  s.reciprocal = size_classes::reciprocal_of(class_bytes);
  try {
    s.asked.reset(new uint32_t[s.capacity]);  // outside the lock: it calls malloc
  } catch (...) {
    undo();
    throw;
  }
  s.carved = 1;  // the first block is ours
  s.hand_out(0);
  s.asked[0] = static_cast<uint32_t>(bytes);
  s.live = true;
  bool carving = s.capacity > 1;
  std::unique_lock<SpinLock> lock(lock_);
  try {
    // Room first, so that nothing below throws once the slab is half published.
    room_for_one(slabs_);
    room_for_one(slab_index_);
    room_for_one(carving_[index]);
  } catch (...) {
    lock.unlock();  // never held across an upstream call
    undo();
    throw;
  }
  uint32_t id;
  if (!free_slab_slots_.empty()) {
    id = free_slab_slots_.back();
    free_slab_slots_.pop_back();
    slabs_[id] = std::move(s);
  } else {
    id = static_cast<uint32_t>(slabs_.size());
    slabs_.push_back(std::move(s));
  }
  auto entry = std::make_pair(reinterpret_cast<uintptr_t>(base), id);
  slab_index_.insert(std::upper_bound(slab_index_.begin(), slab_index_.end(), entry), entry);
  if (carving) carving_[index].push_back(id);
  stats_.cachedBytes.fetch_add(slab_bytes - class_bytes, std::memory_order_relaxed);
  describe_slab(id, info);
  return base;
}

std::pair<uint64_t, uint64_t> PoolAdaptor::thread_cached_bytes() const {
  if (thread_cache_count() == 0) return {0, 0};
  thread_caches::Totals t = thread_cached();
  return {t.bytes, t.class_bytes};
}

void PoolAdaptor::release_stale_large() {
  if (!cache_ratio_) return;  // unbounded: keep everything up to the cap
  std::vector<std::pair<void*, size_t>> releases;
  // Blocks waiting in thread caches are counted as handed out, but are not in use; they count
  // against the budget with the pool's own cached blocks.
  auto [thread_cached, thread_class] = thread_cached_bytes();
  bool over = false;
  {
    Lock lock(lock_);
    uint64_t current = stats_.bytes.current.load(std::memory_order_relaxed);
    double in_use = static_cast<double>(current > thread_cached ? current - thread_cached : 0);
    auto whole = static_cast<uint64_t>(*cache_ratio_ * in_use);
    uint64_t budget = whole > thread_class ? whole - thread_class : 0;  // for the pool's own
    while (cached_large_bytes_ > budget && !large_order_.empty()) {
      auto [ptr, index] = large_order_.front();
      large_order_.pop_front();
      auto& list = free_[index];
      auto it =
          std::find_if(list.begin(), list.end(), [&](const FreeBlock& b) { return b.ptr == ptr; });
      if (it == list.end()) continue;  // handed out again since it was cached
      list.erase(it);
      large_.erase(ptr);
      size_t class_bytes = size_of(index);
      cached_large_bytes_ -= class_bytes;
      stats_.cachedBytes.fetch_sub(class_bytes, std::memory_order_relaxed);
      releases.emplace_back(ptr, class_bytes);
    }
    if (large_order_.size() > 4 * (cached_large_bytes_ / PoolAdaptor::kSlabMaxBlock + 16)) {
      // Drop entries of blocks handed out again, so the queue stays proportional to the cache.
      std::deque<std::pair<void*, int>> kept;
      for (auto& e : large_order_)
        for (const FreeBlock& b : free_[e.second])
          if (b.ptr == e.first) {
            kept.push_back(e);
            break;
          }
      large_order_.swap(kept);
    }
    over = thread_class > 0 && cached_large_bytes_ + thread_class > whole;
  }
  // Still over with the thread caches' blocks: they give theirs back at their threads' next
  // calls (the pool cannot take them), and the next growth finds them here.
  if (over) ask_thread_caches_to_trim();
  for (auto [ptr, bytes] : releases) {
    asan::unpoison(ptr, bytes);
    give_back(ptr, bytes);
  }
}

void* PoolAdaptor::grow_large(int index, size_t class_bytes, size_t bytes,
                              pinpool_alloc_info* info) {
  release_stale_large();
  void* p = grow_by(class_bytes, info);
  not_in_a_slab(info);
  if (!p) return nullptr;
  try {
    Lock lock(lock_);
    large_.emplace(p, Large{info->served_by, index, LargeState::Out, bytes});
  } catch (...) {
    give_back(p, class_bytes);
    throw;
  }
  asan::poison(p, class_bytes);  // the tail past the request stays poisoned
  return p;
}

void* PoolAdaptor::pass_through(size_t bytes, size_t alignment, pinpool_alloc_info* info) {
  void* p = timed_upstream_alloc(bytes, alignment, info);
  if (!p) return nullptr;
  try {
    std::lock_guard<std::mutex> lock(passed_mutex_);
    passed_.emplace(p, PassedThrough{bytes, alignment});
  } catch (...) {
    timed_upstream_free(p, bytes, alignment);
    throw;
  }
  return p;
}

void PoolAdaptor::not_in_a_slab(pinpool_alloc_info* info) {
  // An upstream pool may have named its own slab: the block is in no slab of this pool, and
  // whoever views this pool's slabs (a slabViews pool in JavaScript) must not look for it there.
  info->slab = nullptr;
  info->slab_bytes = 0;
}

void* PoolAdaptor::do_allocate(size_t bytes, size_t alignment, pinpool_alloc_info* info) {
  if (passes_through(bytes, alignment, options_.max_cached_bytes)) {
    void* p = pass_through(bytes, alignment, info);
    not_in_a_slab(info);
    alloc_route() = -1;  // not cached here, whatever the upstream does with it
    return p;
  }
  int index = class_for(bytes, alignment);
  size_t class_bytes = size_of(index);
  void* p;
  {
    Lock lock(lock_);
    p = take_cached(index, class_bytes, bytes, info);
  }
  if (!p)
    p = class_bytes <= kSlabMaxBlock ? grow_small(index, class_bytes, bytes, info)
                                     : grow_large(index, class_bytes, bytes, info);
  // Outside the lock: the block is ours alone now, and marking a large block writes
  // class_bytes / 8 bytes of shadow. Only the bytes asked for: the class's tail stays
  // poisoned, so an overrun past the request is caught too.
  if (p) asan::unpoison(p, bytes);
  alloc_route() = p ? 0 : -1;
  return p;
}

std::optional<size_t> PoolAdaptor::do_deallocate(void* ptr, size_t bytes, size_t alignment) {
  if (passes_through(bytes, alignment, options_.max_cached_bytes))
    return free_passed_through(ptr, bytes, alignment);
  int index = class_for(bytes, alignment);
  size_t class_bytes = size_of(index);
  return class_bytes <= kSlabMaxBlock ? free_small(ptr, index, class_bytes)
                                      : free_large(ptr, index, class_bytes);
}

inline std::optional<size_t> PoolAdaptor::free_small(void* ptr, int index, size_t class_bytes) {
  Lock lock(lock_);
  uint32_t id = slab_of(ptr);
  if (id == kNoSlab) return std::nullopt;  // not in any slab: foreign, or a large block
  Slab& s = slabs_[id];
  if (s.class_index != index) return std::nullopt;  // a size or alignment of another class
  auto offset = static_cast<uint32_t>(static_cast<char*>(ptr) - s.base);  // a slab is <= 4 MiB
  uint32_t block = size_classes::divide(offset, s.reciprocal);
  if (static_cast<size_t>(block) * class_bytes != offset) return std::nullopt;  // inside a block
  if (block >= kMaxSlabBlocks || !s.is_out(block)) return std::nullopt;  // not handed out now
  free_[index].push_back({ptr, id, block});  // first: it may throw, and then nothing changed
  s.take_back(block);
  // Poisoned before the lock goes: once the block is in the list another thread may take it
  // and unpoison it. (An empty call without AddressSanitizer.)
  asan::poison(ptr, class_bytes);
  stats_.cachedBytes.fetch_add(class_bytes, std::memory_order_relaxed);
  return s.asked[block];
}

std::optional<size_t> PoolAdaptor::free_large(void* ptr, int index, size_t class_bytes) {
  size_t asked;
  {
    Lock lock(lock_);
    auto it = large_.find(ptr);
    if (it == large_.end() || it->second.class_index != index ||
        it->second.state != LargeState::Out)
      return std::nullopt;                   // foreign, another class, or not with a caller
    it->second.state = LargeState::Freeing;  // a second free of it is refused from here on
    asked = it->second.asked;
  }
  // Outside the lock: the block is ours alone, and marking it writes class_bytes / 8 bytes of
  // shadow. Poisoned before it enters a free list, where another thread may take it.
  asan::poison(ptr, class_bytes);
  // The cap holds for what the pool caches and what thread caches in front of it keep, together.
  uint64_t thread_cached = thread_cached_bytes().second;
  {
    Lock lock(lock_);
    if (cached_large_bytes_ + thread_cached + class_bytes <= options_.max_cached_bytes) {
      try {
        large_order_.emplace_back(ptr, index);  // a stale entry is skipped, should the next throw
        free_[index].push_back({ptr, kNoSlab, 0});
        large_.find(ptr)->second.state = LargeState::Cached;
        cached_large_bytes_ += class_bytes;
        stats_.cachedBytes.fetch_add(class_bytes, std::memory_order_relaxed);
        return asked;
      } catch (const std::bad_alloc&) {
        // No room to cache it: give it back instead, as over the cap.
      }
    }
    large_.erase(ptr);
  }
  asan::unpoison(ptr, class_bytes);  // poisoned above, before the cap was known
  give_back(ptr, class_bytes);       // over the cap: give it back now
  return asked;
}

std::optional<size_t> PoolAdaptor::free_passed_through(void* ptr, size_t bytes, size_t alignment) {
  {
    std::lock_guard<std::mutex> lock(passed_mutex_);
    auto it = passed_.find(ptr);
    if (it == passed_.end() || it->second.bytes != bytes || it->second.alignment != alignment)
      return std::nullopt;
    passed_.erase(it);
  }
  if (!timed_upstream_free(ptr, bytes, alignment)) return std::nullopt;
  return bytes;  // the size asked, checked above
}

size_t PoolAdaptor::lease_slab(void* slab) {
  Lock lock(lock_);
  uint32_t id = slab_of(slab);
  if (id == kNoSlab || slabs_[id].base != slab) return 0;
  slabs_[id].leases++;
  return slabs_[id].bytes;
}

void PoolAdaptor::end_slab_lease(void* slab) {
  Lock lock(lock_);
  uint32_t id = slab_of(slab);
  if (id != kNoSlab && slabs_[id].base == slab && slabs_[id].leases > 0) slabs_[id].leases--;
}

void PoolAdaptor::orphan_slab(void* slab) {
  size_t bytes = 0;
  {
    Lock lock(lock_);
    uint32_t id = slab_of(slab);
    if (id == kNoSlab || slabs_[id].base != slab || slabs_[id].orphaned) return;
    slabs_[id].orphaned = true;
    bytes = slabs_[id].bytes;
  }
  count_orphaned(bytes);
}

size_t PoolAdaptor::do_trim() {
  std::vector<Release> releases;
  {
    Lock lock(lock_);
    std::vector<bool> dead = take_idle_slabs(releases);
    take_cached_blocks(dead, releases);
    if (cached_large_bytes_ == 0) large_order_.clear();  // every entry names a block gone now
  }
  // No pool lock held from here on: the upstream frees may be CUDA calls
  // (docs/decisions/0006-gpu-aware-reuse.md).
  size_t released = 0;
  for (const Release& r : releases) {
    asan::unpoison(r.ptr, r.bytes);  // poison would outlive the memory's return upstream
    released += give_back(r.ptr, r.bytes);
  }
  if (Handler* next = Handler::from_abi(upstream_.get())) released += next->trim();
  return released;
}

std::vector<bool> PoolAdaptor::take_idle_slabs(std::vector<Release>& releases) {
  // A slab goes back when every block carved from it is free and no JavaScript view leases it.
  std::vector<uint32_t> free_count(slabs_.size(), 0);
  for (int i = 0; i < size_classes::kCount; i++)
    for (const FreeBlock& b : free_[i])
      if (b.slab != kNoSlab) free_count[b.slab]++;
  std::vector<bool> dead(slabs_.size(), false);
  for (uint32_t id = 0; id < slabs_.size(); id++) {
    Slab& s = slabs_[id];
    if (!s.live || s.leases != 0 || free_count[id] != s.carved) continue;
    dead[id] = true;
    releases.push_back({s.base, s.bytes});
    stats_.cachedBytes.fetch_sub(s.bytes, std::memory_order_relaxed);
    auto& carving = carving_[s.class_index];
    carving.erase(std::remove(carving.begin(), carving.end(), id), carving.end());
    s = Slab{};
    free_slab_slots_.push_back(id);
  }
  slab_index_.erase(std::remove_if(slab_index_.begin(), slab_index_.end(),
                                   [&](const auto& e) { return dead[e.second]; }),
                    slab_index_.end());
  return dead;
}

void PoolAdaptor::take_cached_blocks(const std::vector<bool>& dead,
                                     std::vector<Release>& releases) {
  for (int i = 0; i < size_classes::kCount; i++) {
    auto& list = free_[i];
    size_t class_bytes = size_of(i);
    list.erase(std::remove_if(list.begin(), list.end(),
                              [&](const FreeBlock& b) {
                                if (b.slab != kNoSlab) return static_cast<bool>(dead[b.slab]);
                                releases.push_back({b.ptr, class_bytes});
                                large_.erase(b.ptr);
                                cached_large_bytes_ -= class_bytes;
                                stats_.cachedBytes.fetch_sub(class_bytes,
                                                             std::memory_order_relaxed);
                                return true;
                              }),
               list.end());
  }
}

PoolAdaptor::Chunk* PoolAdaptor::chunk_of(void* ptr) {
  auto key = static_cast<char*>(ptr);
  auto it = std::upper_bound(chunks_.begin(), chunks_.end(), key,
                             [](char* k, const Chunk& c) { return k < c.base; });
  if (it == chunks_.begin()) return nullptr;
  Chunk& c = *std::prev(it);
  return key - c.base < static_cast<ptrdiff_t>(c.bytes) ? &c : nullptr;
}

void* PoolAdaptor::carve(size_t bytes, pinpool_alloc_info* info) {
  Chunk* best = nullptr;
  std::map<size_t, size_t>::iterator room;
  for (Chunk& c : chunks_)
    for (auto it = c.free.begin(); it != c.free.end(); ++it)
      if (it->second >= bytes && (!best || it->second < room->second)) {
        best = &c;
        room = it;
      }
  if (!best) return nullptr;
  auto [offset, length] = *room;
  if (length > bytes) best->free.emplace_hint(std::next(room), offset + bytes, length - bytes);
  best->free.erase(room);  // after the emplace, which may throw: then nothing changed
  best->carved += bytes;
  stats_.cachedBytes.fetch_sub(bytes, std::memory_order_relaxed);
  info->served_by = best->served_by;
  return best->base + offset;
}

void* PoolAdaptor::carve_or_wait(size_t bytes, pinpool_alloc_info* info) {
  for (;;) {
    uint64_t seen;
    bool growing;
    {
      std::lock_guard<std::mutex> g(growth_mutex_);
      seen = landed_;
      growing = !running_.empty();
    }
    {
      Lock lock(lock_);
      if (void* p = carve(bytes, info)) return p;
    }
    if (!growing) return nullptr;
    // A reservation is under way: its next chunk serves this miss (growing the pool a second
    // time would pin memory twice for one need). Waits natively, holding no pool lock.
    std::unique_lock<std::mutex> g(growth_mutex_);
    growth_cv_.wait(g, [&] { return landed_ != seen; });
  }
}

void* PoolAdaptor::grow_by(size_t bytes, pinpool_alloc_info* info) {
  if (bytes <= chunk_bytes_)
    if (void* p = carve_or_wait(bytes, info)) return p;
  return timed_upstream_alloc(bytes, kBlockAlignment, info);
}

size_t PoolAdaptor::give_back(void* ptr, size_t bytes) {
  bool carved;
  {
    Lock lock(lock_);
    carved = chunk_of(ptr) != nullptr;
  }
  if (!carved) {
    timed_upstream_free(ptr, bytes, kBlockAlignment);
    return bytes;
  }
  // Poisoned outside the lock (it writes bytes / 8 bytes of shadow): the block is still ours,
  // and its chunk stays while the block is counted as carved from it.
  asan::poison(ptr, bytes);
  Lock lock(lock_);
  Chunk* c = chunk_of(ptr);
  c->carved -= bytes;
  stats_.cachedBytes.fetch_add(bytes, std::memory_order_relaxed);
  auto offset = static_cast<size_t>(static_cast<char*>(ptr) - c->base);
  size_t length = bytes;
  // Coalesced with the room on either side, so a chunk wholly free is one entry again. Out of
  // memory for an entry, the room is lost until the chunk goes (`carved` says when it is free).
  auto next = c->free.lower_bound(offset);
  auto prev = next == c->free.begin() ? c->free.end() : std::prev(next);
  try {
    if (prev != c->free.end() && prev->first + prev->second == offset) {
      prev->second += length;
      if (next != c->free.end() && offset + length == next->first) {
        prev->second += next->second;
        c->free.erase(next);
      }
    } else if (next != c->free.end() && offset + length == next->first) {
      size_t merged = length + next->second;
      c->free.emplace_hint(next, offset, merged);
      c->free.erase(next);
    } else {
      c->free.emplace_hint(next, offset, length);
    }
  } catch (const std::bad_alloc&) {}
  return 0;
}

uint64_t PoolAdaptor::begin_reservation() {
  std::lock_guard<std::mutex> g(growth_mutex_);
  uint64_t id = ++reservations_;
  running_.push_back(id);  // may throw: then nothing began
  return id;
}

bool PoolAdaptor::reserve(uint64_t id, uint64_t bytes, pinpool_alloc_info* info) {
  auto landed = [&](bool ended) {
    {
      std::lock_guard<std::mutex> g(growth_mutex_);
      landed_++;
      if (ended) {
        running_.erase(std::remove(running_.begin(), running_.end(), id), running_.end());
      }
    }
    growth_cv_.notify_all();
  };
  // Ends the reservation however this returns (a throw included): a miss waiting for it must
  // not wait for good.
  struct Ending {
    decltype(landed)& end;
    ~Ending() { end(true); }
  } ending{landed};
  bool ok = true;
  uint64_t chunks = bytes / chunk_bytes_ + (bytes % chunk_bytes_ != 0);
  for (uint64_t i = 0; i < chunks && ok; i++) {
    auto* p = static_cast<char*>(timed_upstream_alloc(chunk_bytes_, kBlockAlignment, info));
    if (!p) {
      ok = false;
      break;
    }
    asan::poison(p, chunk_bytes_);
    try {
      Lock lock(lock_);
      room_for_one(chunks_);
      Chunk c{p, chunk_bytes_, info->served_by, {}, id};
      c.free.emplace(0, chunk_bytes_);
      auto at = std::upper_bound(chunks_.begin(), chunks_.end(), p,
                                 [](char* k, const Chunk& x) { return k < x.base; });
      chunks_.insert(at, std::move(c));
      stats_.cachedBytes.fetch_add(chunk_bytes_, std::memory_order_relaxed);
      stats_.reservationBytes.fetch_add(chunk_bytes_, std::memory_order_relaxed);
    } catch (const std::bad_alloc&) {
      asan::unpoison(p, chunk_bytes_);
      timed_upstream_free(p, chunk_bytes_, kBlockAlignment);
      fail(info, {PINPOOL_ERR_OUT_OF_MEMORY, Reason::OutOfMemory});
      ok = false;
    }
    if (ok) landed(false);
  }
  // Refused part way: this reservation's chunks no block was carved from go back, so a failed
  // reserve() leaves the pool as it found it (a chunk a miss already carved from stays: it
  // serves that block as any growth would).
  if (!ok) release_free_chunks(id);
  return ok;
}

size_t PoolAdaptor::release_free_chunks(uint64_t reservation) {
  std::vector<uint64_t> running;
  if (reservation == 0) {
    std::lock_guard<std::mutex> g(growth_mutex_);
    running = running_;
  }
  std::vector<Release> releases;
  {
    Lock lock(lock_);
    releases.reserve(chunks_.size());  // before anything changes: it may throw
    auto idle = [&](const Chunk& c) {
      if (c.carved != 0) return false;
      if (reservation != 0) return c.reservation == reservation;
      return std::find(running.begin(), running.end(), c.reservation) == running.end();
    };
    for (const Chunk& c : chunks_)
      if (idle(c)) {
        releases.push_back({c.base, c.bytes});
        stats_.cachedBytes.fetch_sub(c.bytes, std::memory_order_relaxed);
        stats_.reservationBytes.fetch_sub(c.bytes, std::memory_order_relaxed);
      }
    chunks_.erase(std::remove_if(chunks_.begin(), chunks_.end(), idle), chunks_.end());
  }
  size_t released = 0;
  for (const Release& r : releases) {
    asan::unpoison(r.ptr, r.bytes);
    timed_upstream_free(r.ptr, r.bytes, kBlockAlignment);
    released += r.bytes;
  }
  return released;
}

size_t PoolAdaptor::trim_reservation() {
  // Blocks carved from the chunks and cached go back to their chunks first.
  size_t released = trim();
  return released + release_free_chunks(0);
}

}  // namespace pinpool
