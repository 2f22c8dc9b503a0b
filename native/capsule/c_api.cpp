#include "c_api.hpp"

#include <cmath>
#include <cstring>
#include <new>
#include <string>

#include "../core/handler.hpp"
#include "../handlers/fallback_adaptor.hpp"
#include "../handlers/limit_adaptor.hpp"
#include "../handlers/locked_handler.hpp"
#include "../handlers/managed_handler.hpp"
#include "../handlers/pageable_handler.hpp"
#include "../handlers/pinned_handler.hpp"
#include "../handlers/pool/pool_adaptor.hpp"

namespace pinpool::capsule {
namespace {

// The size of the first version of each options struct: a caller's struct_size below it is a
// caller that filled in less than the oldest layout, refused.
constexpr size_t kLeafOptionsV1 = offsetof(pinpool_leaf_options, flags) + sizeof(uint32_t);
constexpr size_t kPoolOptionsV1 = offsetof(pinpool_pool_options, cache_ratio) + sizeof(double);
constexpr size_t kFallbackOptionsV1 =
    offsetof(pinpool_fallback_options, max_bytes) + sizeof(uint64_t);
constexpr size_t kLimitOptionsV1 = offsetof(pinpool_limit_options, max_bytes) + sizeof(uint64_t);
constexpr size_t kStatsV1 = offsetof(pinpool_stats, cached_bytes) + sizeof(uint64_t);

// The smallest handler this ABI knows: up to `destroy` (version 1).
constexpr size_t kHandlerV1 = offsetof(pinpool_handler, destroy) + sizeof(void*);

// A handler another library may have made: its struct must at least hold version 1's members,
// each function there. Its memory must be live; that is the caller's contract.
bool usable(const pinpool_handler* h) {
  return h && h->struct_size >= kHandlerV1 && h->abi_version >= 1 && h->alloc && h->free &&
         h->retain && h->release;
}

// A name from C: NULL gives the fallback; more than 128 bytes is refused (as in JavaScript).
bool name_of(const char* name, const char* fallback, std::string& out) {
  if (!name) {
    out = fallback;
    return true;
  }
  size_t n = strnlen(name, 129);
  if (n == 0 || n > 128) return false;
  out.assign(name, n);
  return true;
}

// Each maker runs inside one try: a std::bad_alloc or any other exception becomes a status.
template <typename F>
int32_t guarded(pinpool_handler** out, F&& make) noexcept {
  if (!out) return PINPOOL_ERR_INVALID_ARGUMENT;
  *out = nullptr;
  try {
    Handler* h = make();
    if (!h) return PINPOOL_ERR_INVALID_ARGUMENT;
    *out = h->abi();
    return PINPOOL_OK;
  } catch (const std::bad_alloc&) { return PINPOOL_ERR_OUT_OF_MEMORY; } catch (...) {
    return PINPOOL_ERR_INTERNAL;
  }
}

int32_t create_leaf(const pinpool_leaf_options* o, pinpool_handler** out) noexcept {
  return guarded(out, [&]() -> Handler* {
    if (!o || o->struct_size < kLeafOptionsV1) return nullptr;
    static const char* const names[] = {nullptr, "pageable", "locked", "pinned", "managed"};
    if (o->kind < PINPOOL_LEAF_PAGEABLE || o->kind > PINPOOL_LEAF_MANAGED) return nullptr;
    std::string name;
    if (!name_of(o->name, names[o->kind], name)) return nullptr;
    bool cuda = o->kind == PINPOOL_LEAF_PINNED || o->kind == PINPOOL_LEAF_MANAGED;
    if (cuda && (o->device < 0 || o->device > 1023)) return nullptr;
    const uint32_t known =
        PINPOOL_PINNED_PORTABLE | PINPOOL_PINNED_MAPPED | PINPOOL_PINNED_WRITE_COMBINED;
    if ((o->flags & ~known) != 0 || (o->flags != 0 && o->kind != PINPOOL_LEAF_PINNED))
      return nullptr;
    switch (o->kind) {
      case PINPOOL_LEAF_PAGEABLE:
        return new PageableHandler(name);
      case PINPOOL_LEAF_LOCKED:
        return new LockedHandler(name);
      case PINPOOL_LEAF_MANAGED:
        return new ManagedHandler(name, o->device);
      default:
        return new PinnedHandler(name, {o->device,
                                        (o->flags & PINPOOL_PINNED_PORTABLE) != 0,
                                        (o->flags & PINPOOL_PINNED_MAPPED) != 0,
                                        (o->flags & PINPOOL_PINNED_WRITE_COMBINED) != 0,
                                        false,
                                        {},
                                        PinnedOptions::kDeviceNode});
    }
  });
}

int32_t create_pool(pinpool_handler* upstream, const pinpool_pool_options* o,
                    pinpool_handler** out) noexcept {
  return guarded(out, [&]() -> Handler* {
    std::string name;
    if (!usable(upstream) || !o || o->struct_size < kPoolOptionsV1 ||
        !name_of(o->name, "pool", name))
      return nullptr;
    if (std::isnan(o->cache_ratio) || o->cache_ratio < 0) return nullptr;
    return new PoolAdaptor(name, upstream, {o->max_cached_bytes, o->cache_ratio});
  });
}

int32_t create_fallback(pinpool_handler* primary, pinpool_handler* secondary,
                        const pinpool_fallback_options* o, pinpool_handler** out) noexcept {
  return guarded(out, [&]() -> Handler* {
    std::string name;
    if (!usable(primary) || !usable(secondary) || !o || o->struct_size < kFallbackOptionsV1 ||
        !name_of(o->name, "fallback", name) || o->min_bytes > o->max_bytes)
      return nullptr;
    return new FallbackAdaptor(name, primary, secondary, o->min_bytes, o->max_bytes);
  });
}

int32_t create_limit(pinpool_handler* upstream, const pinpool_limit_options* o,
                     pinpool_handler** out) noexcept {
  return guarded(out, [&]() -> Handler* {
    std::string name;
    if (!usable(upstream) || !o || o->struct_size < kLimitOptionsV1 ||
        !name_of(o->name, "limit", name))
      return nullptr;
    return new LimitAdaptor(name, upstream, o->max_bytes);
  });
}

int32_t read_stats(const pinpool_handler* handler, pinpool_stats* out) noexcept {
  const Handler* h = Handler::from_abi(handler);
  if (!h || !out || out->struct_size < kStatsV1) return PINPOOL_ERR_INVALID_ARGUMENT;
  uint64_t v[kStatCount];
  h->read_stats(v);
  // Members this copy knows, up to what the caller's struct holds (all of version 1 here).
  out->bytes_current = v[kStat_bytesInUse];
  out->bytes_peak = v[kStat_bytesPeak];
  out->bytes_total = v[kStat_allocatedBytes];
  out->allocations_current = v[kStat_buffersInUse];
  out->allocations_peak = v[kStat_buffersPeak];
  out->allocations_total = v[kStat_allocations];
  out->frees = v[kStat_frees];
  out->invalid_frees = v[kStat_invalidFrees];
  out->reserved_bytes = v[kStat_reservedBytes];
  out->cached_bytes = v[kStat_cachedBytes];
  return PINPOOL_OK;
}

int32_t trim(pinpool_handler* handler, size_t* released) noexcept {
  Handler* h = Handler::from_abi(handler);
  if (!h) return PINPOOL_ERR_INVALID_ARGUMENT;
  try {
    size_t n = h->trim();
    if (released) *released = n;
    return PINPOOL_OK;
  } catch (...) { return PINPOOL_ERR_INTERNAL; }
}

int32_t handler_id(const pinpool_handler* handler, uint64_t* id) noexcept {
  const Handler* h = Handler::from_abi(handler);
  if (!h || !id) return PINPOOL_ERR_INVALID_ARGUMENT;
  *id = h->id();
  return PINPOOL_OK;
}

pinpool_api g_api = {
    PINPOOL_ABI_VERSION, sizeof(pinpool_api), "unknown",  create_leaf, create_pool,
    create_fallback,     create_limit,        read_stats, trim,        handler_id,
};

}  // namespace

const pinpool_api* api() { return &g_api; }

void set_api_version(const char* version) { g_api.version = version; }

}  // namespace pinpool::capsule
