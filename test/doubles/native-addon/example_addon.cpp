// An example consumer of pinpool's C API (include/pinpool.h), as a decoder or a CUDA kernel
// binding would use it: JavaScript hands it a pool with `handler.nativeHandle()`, and it
// allocates from two threads of its own, writing a pattern into every block, and frees each
// block on the other thread, checking the pattern. test/host/native-addon.test.ts reads the pool's
// statistics and metrics afterwards in JavaScript.
//
// Plain Node-API (node_api.h) and pinpool.h: no node-addon-api, nothing of pinpool linked.
#include <node_api.h>
// After node_api.h: pinpool.h then offers pinpool_unwrap_native_handle().
#include <pinpool.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

// The API members this addon calls beyond ABI version 1's handler: a table from an older
// pinpool that lacks one is refused with both versions named, not called through.
bool api_complete(const pinpool_api* api) {
  return PINPOOL_HAS(api, read_stats) && PINPOOL_HAS(api, create_leaf) &&
         PINPOOL_HAS(api, create_pool) && PINPOOL_HAS(api, trim) && PINPOOL_HAS(api, handler_id);
}

napi_value fail(napi_env env, const std::string& message) {
  napi_throw_error(env, "ERR_EXAMPLE_ADDON", message.c_str());
  return nullptr;
}

const pinpool_native_handle* handle_arg(napi_env env, napi_callback_info info, size_t want,
                                        napi_value* argv) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < want) return nullptr;
  const pinpool_native_handle* h = pinpool_unwrap_native_handle(env, argv[0]);
  if (!h || !PINPOOL_HAS(h, handler) || !h->api || !api_complete(h->api)) return nullptr;
  return h;
}

void set_number(napi_env env, napi_value object, const char* name, double value) {
  napi_value v;
  napi_create_double(env, value, &v);
  napi_set_named_property(env, object, name, v);
}

// The C API's statistics under the names handler.stats() gives them in JavaScript.
napi_value stats_object(napi_env env, const pinpool_stats& s) {
  napi_value o;
  napi_create_object(env, &o);
  set_number(env, o, "allocations", static_cast<double>(s.allocations_total));
  set_number(env, o, "buffersInUse", static_cast<double>(s.allocations_current));
  set_number(env, o, "bytesInUse", static_cast<double>(s.bytes_current));
  set_number(env, o, "frees", static_cast<double>(s.frees));
  set_number(env, o, "invalidFrees", static_cast<double>(s.invalid_frees));
  return o;
}

struct Block {
  unsigned char* ptr;
  size_t bytes;
  unsigned char mark;
};

// exchange(nativeHandle, blocksPerThread, bytes) -> { allocated, freed, badPatterns, failures,
// threads, stats }: two threads each allocate `blocksPerThread` blocks of `bytes` bytes, then
// each frees the other's. `stats` is read through the C API afterwards.
napi_value Exchange(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  const pinpool_native_handle* h = handle_arg(env, info, 3, argv);
  if (!h)
    return fail(env,
                "exchange(handle, blocks, bytes): not a pinpool native handle, or its C API lacks "
                "what this addon needs");
  uint32_t blocks = 0, bytes = 0;
  if (napi_get_value_uint32(env, argv[1], &blocks) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &bytes) != napi_ok || blocks == 0 || blocks > 100000 ||
      bytes == 0)
    return fail(env, "exchange: blocks from 1 to 100000 and bytes above 0");

  pinpool_handler* handler = h->handler;
  handler->retain(handler);  // ours while our threads run, whatever JavaScript's GC does
  std::vector<Block> made[2];
  size_t failures[2] = {0, 0}, bad[2] = {0, 0};
  std::thread::id ids[2];

  auto allocate = [&](int t) {
    ids[t] = std::this_thread::get_id();
    for (uint32_t i = 0; i < blocks; i++) {
      pinpool_alloc_info why{};
      auto* p = static_cast<unsigned char*>(handler->alloc(handler->ctx, bytes, 64, &why));
      if (!p) {
        failures[t]++;
        continue;
      }
      unsigned char mark = static_cast<unsigned char>(t * 100 + i);
      std::memset(p, mark, bytes);
      made[t].push_back({p, bytes, mark});
    }
  };
  auto free_other = [&](int t) {
    for (const Block& b : made[1 - t]) {
      for (size_t k = 0; k < b.bytes; k++)
        if (b.ptr[k] != b.mark) {
          bad[t]++;
          break;
        }
      handler->free(handler->ctx, b.ptr, b.bytes, 64);
    }
  };
  {
    std::thread one(allocate, 0), two(allocate, 1);
    one.join();
    two.join();
  }
  {
    std::thread one(free_other, 0), two(free_other, 1);
    one.join();
    two.join();
  }

  pinpool_stats s{};
  s.struct_size = sizeof s;
  int32_t rc = h->api->read_stats(handler, &s);
  handler->release(handler);
  if (rc != PINPOOL_OK)
    return fail(env, "exchange: read_stats failed with status " + std::to_string(rc));

  napi_value result;
  napi_create_object(env, &result);
  set_number(env, result, "allocated", static_cast<double>(made[0].size() + made[1].size()));
  set_number(env, result, "freed", static_cast<double>(made[0].size() + made[1].size()));
  set_number(env, result, "failures", static_cast<double>(failures[0] + failures[1]));
  set_number(env, result, "badPatterns", static_cast<double>(bad[0] + bad[1]));
  set_number(env, result, "threads", ids[0] != ids[1] ? 2 : 1);
  napi_set_named_property(env, result, "stats", stats_object(env, s));
  return result;
}

// ownChain(nativeHandle) -> { version, id, pool, trimmed }: makes a pageable leaf and a pool in
// front of it with the C API (the table reached through the handle), allocates and frees once,
// trims, reads the pool's statistics and releases both; `id` is the JavaScript handler's id.
napi_value OwnChain(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  const pinpool_native_handle* h = handle_arg(env, info, 1, argv);
  if (!h) return fail(env, "ownChain(handle): not a pinpool native handle");
  const pinpool_api* api = h->api;
  pinpool_leaf_options leaf_options{};
  leaf_options.struct_size = sizeof leaf_options;
  leaf_options.kind = PINPOOL_LEAF_PAGEABLE;
  leaf_options.name = "addon-leaf";
  pinpool_handler* leaf = nullptr;
  if (api->create_leaf(&leaf_options, &leaf) != PINPOOL_OK) return fail(env, "create_leaf failed");
  pinpool_pool_options pool_options{};
  pool_options.struct_size = sizeof pool_options;
  pool_options.name = "addon-pool";
  pool_options.max_cached_bytes = 1 << 20;
  pool_options.cache_ratio = 0.1;
  pinpool_handler* pool = nullptr;
  int32_t rc = api->create_pool(leaf, &pool_options, &pool);
  leaf->release(leaf);  // the pool holds its own reference
  if (rc != PINPOOL_OK) return fail(env, "create_pool failed");
  void* p = pool->alloc(pool->ctx, 4096, 64, nullptr);
  if (p) pool->free(pool->ctx, p, 4096, 64);
  size_t trimmed = 0;
  api->trim(pool, &trimmed);
  pinpool_stats s{};
  s.struct_size = sizeof s;
  api->read_stats(pool, &s);
  uint64_t id = 0;
  api->handler_id(h->handler, &id);
  pool->release(pool);

  napi_value result, version;
  napi_create_object(env, &result);
  napi_create_string_utf8(env, api->version, NAPI_AUTO_LENGTH, &version);
  napi_set_named_property(env, result, "version", version);
  set_number(env, result, "abiVersion", api->abi_version);
  set_number(env, result, "id", static_cast<double>(id));
  set_number(env, result, "trimmed", static_cast<double>(trimmed));
  napi_set_named_property(env, result, "pool", stats_object(env, s));
  return result;
}

// What a misbehaving addon does, for test/host/native-addon.test.ts.
// freeBlock(nativeHandle, address: bigint, bytes, alignment): frees that address through the
// handler's C struct, whatever it is.
napi_value FreeBlock(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  const pinpool_native_handle* h = handle_arg(env, info, 4, argv);
  if (!h)
    return fail(env, "freeBlock(handle, address, bytes, alignment): not a pinpool native handle");
  uint64_t address = 0;
  bool lossless = false;
  int64_t bytes = 0, alignment = 0;
  napi_get_value_bigint_uint64(env, argv[1], &address, &lossless);
  napi_get_value_int64(env, argv[2], &bytes);
  napi_get_value_int64(env, argv[3], &alignment);
  h->handler->free(h->handler->ctx, reinterpret_cast<void*>(address), static_cast<size_t>(bytes),
                   static_cast<size_t>(alignment));
  return nullptr;
}

// fallbackOnce(nativeHandle, name): makes a fallback of its own on this thread (a 0-byte limit
// in front of a pageable leaf, so every allocation falls back), named `name`, allocates and
// frees once through it, and releases it all: its names are gone afterwards.
napi_value FallbackOnce(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  const pinpool_native_handle* h = handle_arg(env, info, 2, argv);
  if (!h) return fail(env, "fallbackOnce(handle, name): not a pinpool native handle");
  char name[200];
  size_t length = 0;
  napi_get_value_string_utf8(env, argv[1], name, sizeof name, &length);
  const pinpool_api* api = h->api;
  pinpool_leaf_options leaf_options{};
  leaf_options.struct_size = sizeof leaf_options;
  leaf_options.kind = PINPOOL_LEAF_PAGEABLE;
  leaf_options.name = name;
  pinpool_handler *leaf = nullptr, *capped = nullptr, *fallback = nullptr;
  if (api->create_leaf(&leaf_options, &leaf) != PINPOOL_OK) return fail(env, "create_leaf failed");
  pinpool_limit_options limit_options{};
  limit_options.struct_size = sizeof limit_options;
  limit_options.name = name;
  limit_options.max_bytes = 0;
  pinpool_fallback_options fallback_options{};
  fallback_options.struct_size = sizeof fallback_options;
  fallback_options.name = name;
  fallback_options.max_bytes = UINT64_MAX;
  int32_t rc = api->create_limit(leaf, &limit_options, &capped);
  if (rc == PINPOOL_OK) rc = api->create_fallback(capped, leaf, &fallback_options, &fallback);
  if (rc == PINPOOL_OK) {
    void* p = fallback->alloc(fallback->ctx, 64, 64, nullptr);
    if (p) fallback->free(fallback->ctx, p, 64, 64);
  }
  if (fallback) fallback->release(fallback);
  if (capped) capped->release(capped);
  leaf->release(leaf);
  if (rc != PINPOOL_OK) return fail(env, "create_limit or create_fallback failed");
  return nullptr;
}

// isHandle(value) -> whether pinpool_unwrap_native_handle() accepts it.
napi_value IsHandle(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  napi_value result;
  napi_get_boolean(env, argc == 1 && pinpool_unwrap_native_handle(env, argv[0]) != nullptr,
                   &result);
  return result;
}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor functions[] = {
      {"exchange", nullptr, Exchange, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"ownChain", nullptr, OwnChain, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"isHandle", nullptr, IsHandle, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"freeBlock", nullptr, FreeBlock, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"fallbackOnce", nullptr, FallbackOnce, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
