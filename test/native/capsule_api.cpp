// The capsule's C side (include/pinpool.h ABI version 2; native/capsule/): the published layouts,
// the C API table under deliberate misuse (every bad call refused with a status, nothing made,
// nothing changed), a table from an older producer (PINPOOL_HAS), and the registry's one slot
// (the first publication wins, from any number of threads at once).
//
// Prints `capsule api: N passed, M failed`; exits non-zero when anything failed.
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "../../include/pinpool.h"
#include "../../native/capsule/c_api.hpp"
#include "../../native/capsule/registry.hpp"
#include "../../native/core/handler.hpp"
#include "check.hpp"

using namespace pinpool;
using pinpool::test::isolated;

extern "C" const pinpool_registry* pinpool_capsule_publish(const pinpool_registry* candidate);

// The published layouts (LP64): members may be appended, never moved or resized.
#if UINTPTR_MAX == UINT64_MAX
static_assert(offsetof(pinpool_registry, abi_version) == 0 &&
              offsetof(pinpool_registry, struct_size) == 4 &&
              offsetof(pinpool_registry, version) == 8 && offsetof(pinpool_registry, entry) == 16 &&
              offsetof(pinpool_registry, addon) == 24 && offsetof(pinpool_registry, api) == 32);
static_assert(offsetof(pinpool_api, version) == 8 && offsetof(pinpool_api, create_leaf) == 16 &&
              offsetof(pinpool_api, create_pool) == 24 &&
              offsetof(pinpool_api, create_fallback) == 32 &&
              offsetof(pinpool_api, create_limit) == 40 &&
              offsetof(pinpool_api, read_stats) == 48 && offsetof(pinpool_api, trim) == 56 &&
              offsetof(pinpool_api, handler_id) == 64);
static_assert(offsetof(pinpool_native_handle, api) == 8 &&
              offsetof(pinpool_native_handle, handler) == 16);
static_assert(offsetof(pinpool_stats, bytes_current) == 8 &&
              offsetof(pinpool_stats, cached_bytes) == 80);
static_assert(offsetof(pinpool_leaf_options, name) == 8 &&
              offsetof(pinpool_leaf_options, flags) == 20);
static_assert(offsetof(pinpool_pool_options, max_cached_bytes) == 16 &&
              offsetof(pinpool_pool_options, cache_ratio) == 24);
#endif

namespace {

const pinpool_api* api = capsule::api();

pinpool_leaf_options leaf(int32_t kind, const char* name = nullptr) {
  pinpool_leaf_options o{};
  o.struct_size = sizeof o;
  o.kind = kind;
  o.name = name;
  return o;
}

pinpool_pool_options pool_options(double ratio = 0.1) {
  pinpool_pool_options o{};
  o.struct_size = sizeof o;
  o.max_cached_bytes = 1 << 20;
  o.cache_ratio = ratio;
  return o;
}

// A handler of another library: pinpool keeps no statistics for it.
void* foreign_alloc(void*, size_t bytes, size_t, pinpool_alloc_info*) {
  return std::malloc(bytes ? bytes : 1);
}
void foreign_free(void*, void* p, size_t, size_t) { std::free(p); }
void foreign_ref(pinpool_handler*) {}
void foreign_destroy(void*) {}
pinpool_handler foreign = {1,
                           offsetof(pinpool_handler, destroy) + sizeof(void*),
                           "foreign",
                           "foreign",
                           nullptr,
                           foreign_alloc,
                           foreign_free,
                           foreign_ref,
                           foreign_ref,
                           foreign_destroy};

void refuses_bad_calls() {
  pinpool_handler* out = reinterpret_cast<pinpool_handler*>(0x1);
  auto refused = [&](int32_t rc) { return rc == PINPOOL_ERR_INVALID_ARGUMENT && out == nullptr; };

  pinpool_leaf_options o = leaf(PINPOOL_LEAF_PAGEABLE);
  CHECK(api->create_leaf(&o, nullptr) == PINPOOL_ERR_INVALID_ARGUMENT);
  CHECK(refused(api->create_leaf(nullptr, &out)));
  o.struct_size = 8;  // less than the first version
  CHECK(refused(api->create_leaf(&o, &out)));
  for (int32_t kind : {0, 5, -1}) {
    o = leaf(kind);
    CHECK(refused(api->create_leaf(&o, &out)));
  }
  o = leaf(PINPOOL_LEAF_PAGEABLE, "");
  CHECK(refused(api->create_leaf(&o, &out)));
  std::string long_name(129, 'x');
  o = leaf(PINPOOL_LEAF_PAGEABLE, long_name.c_str());
  CHECK(refused(api->create_leaf(&o, &out)));
  o = leaf(PINPOOL_LEAF_PINNED);
  o.device = -1;
  CHECK(refused(api->create_leaf(&o, &out)));
  o.device = 1024;
  CHECK(refused(api->create_leaf(&o, &out)));
  o = leaf(PINPOOL_LEAF_PINNED);
  o.flags = 0x80;  // unknown flag
  CHECK(refused(api->create_leaf(&o, &out)));
  o = leaf(PINPOOL_LEAF_PAGEABLE);
  o.flags = PINPOOL_PINNED_PORTABLE;  // a pinned flag on another kind
  CHECK(refused(api->create_leaf(&o, &out)));

  pinpool_pool_options p = pool_options();
  CHECK(refused(api->create_pool(nullptr, &p, &out)));
  CHECK(refused(api->create_pool(&foreign, nullptr, &out)));
  pinpool_handler truncated = foreign;
  truncated.struct_size = 16;  // too small to hold alloc and free
  CHECK(refused(api->create_pool(&truncated, &p, &out)));
  pinpool_handler no_free = foreign;
  no_free.free = nullptr;
  CHECK(refused(api->create_pool(&no_free, &p, &out)));
  for (double ratio : {std::nan(""), -0.5}) {
    p = pool_options(ratio);
    CHECK(refused(api->create_pool(&foreign, &p, &out)));
  }
  pinpool_fallback_options f{};
  f.struct_size = sizeof f;
  f.min_bytes = 10;
  f.max_bytes = 5;
  CHECK(refused(api->create_fallback(&foreign, &foreign, &f, &out)));
  f.min_bytes = 0;
  CHECK(refused(api->create_fallback(&foreign, nullptr, &f, &out)));
  pinpool_limit_options l{};
  l.struct_size = 4;
  CHECK(refused(api->create_limit(&foreign, &l, &out)));

  // Statistics, trim and ids are pinpool's: another library's handler is refused.
  pinpool_stats s{};
  s.struct_size = sizeof s;
  CHECK(api->read_stats(&foreign, &s) == PINPOOL_ERR_INVALID_ARGUMENT);
  CHECK(api->read_stats(nullptr, &s) == PINPOOL_ERR_INVALID_ARGUMENT);
  CHECK(api->trim(&foreign, nullptr) == PINPOOL_ERR_INVALID_ARGUMENT);
  CHECK(api->trim(nullptr, nullptr) == PINPOOL_ERR_INVALID_ARGUMENT);
  uint64_t id = 0;
  CHECK(api->handler_id(&foreign, &id) == PINPOOL_ERR_INVALID_ARGUMENT && id == 0);
}

void makes_and_reads_a_chain() {
  pinpool_leaf_options o = leaf(PINPOOL_LEAF_PAGEABLE, "c-leaf");
  pinpool_handler* base = nullptr;
  CHECK(api->create_leaf(&o, &base) == PINPOOL_OK && base != nullptr);
  if (!base) return;
  CHECK(std::strcmp(base->name, "c-leaf") == 0 && std::strcmp(base->kind, "pageable") == 0);
  pinpool_pool_options p = pool_options();
  pinpool_handler* pool = nullptr;
  CHECK(api->create_pool(base, &p, &pool) == PINPOOL_OK && std::strcmp(pool->name, "pool") == 0);
  base->release(base);  // the pool holds its own reference
  pinpool_limit_options l{};
  l.struct_size = sizeof l;
  l.max_bytes = 10000;
  pinpool_handler* limit = nullptr;
  CHECK(api->create_limit(pool, &l, &limit) == PINPOOL_OK);
  pinpool_handler* over_foreign = nullptr;  // an adaptor over another library's handler
  CHECK(api->create_pool(&foreign, &p, &over_foreign) == PINPOOL_OK);

  std::vector<void*> blocks;
  for (int i = 0; i < 3; i++) blocks.push_back(limit->alloc(limit->ctx, 3000, 64, nullptr));
  pinpool_alloc_info why{};
  CHECK(limit->alloc(limit->ctx, 3000, 64, &why) == nullptr &&
        why.code == PINPOOL_ERR_OUT_OF_MEMORY);
  pinpool_stats s{};
  s.struct_size = sizeof s;
  CHECK(api->read_stats(limit, &s) == PINPOOL_OK);
  CHECK(s.allocations_current == 3 && s.bytes_current == 9000 && s.allocations_total == 3);
  for (void* b : blocks) limit->free(limit->ctx, b, 3000, 64);
  limit->free(limit->ctx, blocks[0], 3000, 64);  // a second free: refused and counted
  CHECK(api->read_stats(limit, &s) == PINPOOL_OK && s.frees == 3 && s.invalid_frees == 1 &&
        s.bytes_current == 0);
  CHECK(api->read_stats(pool, &s) == PINPOOL_OK && s.cached_bytes > 0 && s.reserved_bytes > 0);
  size_t released = 0;
  CHECK(api->trim(limit, &released) == PINPOOL_OK && released > 0);  // the limit passes it down
  CHECK(api->read_stats(pool, &s) == PINPOOL_OK && s.cached_bytes == 0);

  // A caller with a newer, larger stats struct: the members this copy knows are filled, the
  // rest left as the caller set them.
  struct Newer {
    pinpool_stats known;
    uint64_t future;
  } newer{};
  newer.known.struct_size = sizeof newer;
  newer.future = 77;
  CHECK(api->read_stats(pool, &newer.known) == PINPOOL_OK && newer.known.frees == 3 &&
        newer.future == 77);
  pinpool_stats small{};
  small.struct_size = offsetof(pinpool_stats, frees);
  CHECK(api->read_stats(pool, &small) == PINPOOL_ERR_INVALID_ARGUMENT);

  uint64_t id = 0;
  CHECK(api->handler_id(pool, &id) == PINPOOL_OK && id == Handler::from_abi(pool)->id());
  limit->release(limit);
  pool->release(pool);
  over_foreign->release(over_foreign);
}

void an_older_table() {
  // A table from a producer of ABI version 2 whose struct ended before read_stats: a consumer
  // sees through PINPOOL_HAS what it may call.
  pinpool_api older = *api;
  older.struct_size = offsetof(pinpool_api, read_stats);
  CHECK(PINPOOL_HAS(&older, create_limit));
  CHECK(!PINPOOL_HAS(&older, read_stats) && !PINPOOL_HAS(&older, trim) &&
        !PINPOOL_HAS(&older, handler_id));
  CHECK(PINPOOL_HAS(api, handler_id));
  pinpool_registry r{};
  r.struct_size = offsetof(pinpool_registry, addon);
  CHECK(PINPOOL_HAS(&r, entry) && !PINPOOL_HAS(&r, addon) && !PINPOOL_HAS(&r, api));
}

void one_slot() {
  // Eight threads publish at once; every one gets the same registry, this copy's, filled with
  // the values of whichever came first.
  std::vector<std::thread> threads;
  const pinpool_registry* seen[8] = {};
  for (int i = 0; i < 8; i++)
    threads.emplace_back([&, i] {
      seen[i] = capsule::publish("9.9." + std::to_string(i), "/entry/" + std::to_string(i));
    });
  for (auto& t : threads) t.join();
  for (const pinpool_registry* r : seen) CHECK(r == capsule::own());
  const pinpool_registry* r = capsule::own();
  CHECK(r->abi_version == PINPOOL_ABI_VERSION && r->struct_size == sizeof(pinpool_registry));
  CHECK(std::strncmp(r->version, "9.9.", 4) == 0 && std::strncmp(r->entry, "/entry/", 7) == 0);
  CHECK(std::strcmp(r->version + 4, r->entry + 7) == 0);  // one caller's values, not a mix
  CHECK(r->api == api && std::strcmp(api->version, r->version) == 0);
  // Later publications, of another registry too, leave the first in place.
  pinpool_registry other{};
  CHECK(pinpool_capsule_publish(&other) == r && pinpool_capsule_publish(nullptr) == r);
  CHECK(capsule::publish("1.0.0", "/elsewhere") == r && std::strncmp(r->version, "9.9.", 4) == 0);
}

}  // namespace

int main() {
  isolated("refuses bad calls", refuses_bad_calls);
  isolated("makes and reads a chain", makes_and_reads_a_chain);
  isolated("an older table", an_older_table);
  isolated("one slot", one_slot);
  std::printf("capsule api: %d passed, %d failed\n", pinpool::test::passed, pinpool::test::failed);
  return pinpool::test::failed == 0 ? 0 : 1;
}
