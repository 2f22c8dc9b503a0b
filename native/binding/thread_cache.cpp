#include "thread_cache.hpp"

#include <algorithm>

#include "../core/leases.hpp"
#include "boundary.hpp"
#include "buffer_lifetime.hpp"
#include "hot_path.hpp"
#include "instance.hpp"
#include "module_exports.hpp"

namespace pinpool::binding {

namespace tc = thread_caches;

void ThreadCache::drop(napi_env env, bool ending) {
  if (!instance) return;
  Instance* inst = instance;
  instance = nullptr;
  inst->caches.erase(std::remove(inst->caches.begin(), inst->caches.end(), this),
                     inst->caches.end());
  for (Handler* h : route) h->remove_thread_cache(cells);
  // The environment closes the notice itself when it ends.
  if (trim_notice && !ending) napi_release_threadsafe_function(trim_notice, napi_tsfn_abort);
  Handler* handler = route.front();  // the blocks were allocated from it
  for (int p = 0; p < kPositions; p++) {
    double slot = tc::load(cells, tc::kCellCount + p);
    tc::store(cells, tc::kCellCount + p, -1);
    LiveBlock* block = slot >= 0 ? inst->live.at(slot, handler) : nullptr;
    if (!block) continue;
    FenceSet leases = std::move(block->inherited);
    // The block's ArrayBuffer waits in the cache, unreachable but perhaps not collected yet: the
    // block waits for its finalizer. Once the environment ends, nothing can reach it.
    if (!ending && block->view) leases.add(block->view);
    handler->deallocate(block->ptr, block->bytes, block->alignment, false, std::move(leases),
                        /*held=*/true);
    inst->live.remove(env, block);
  }
  release();  // the instance's reference
}

void ThreadCache::release() {
  if (--refs > 0) return;
  for (Handler* h : route) h->release();
  delete this;
}

namespace {

// Called by a trim in any thread (under the handler's lock): queues `trimAsked` on the cache's
// own thread, so a thread that makes no further call to the pool still gives its blocks back.
void notify_trim(void* ctx) {
  napi_threadsafe_function notice = static_cast<ThreadCache*>(ctx)->trim_notice;
  if (notice)
    napi_call_threadsafe_function(notice, nullptr, napi_tsfn_nonblocking);  // one queued is enough
}

// The notice is gone (released by drop(), or closed with its environment): no trim calls it
// any more, and it lets go of the cache.
void trim_notice_gone(napi_env, void* data, void*) {
  auto* cache = static_cast<ThreadCache*>(data);
  for (Handler* h : cache->route) h->clear_trim_notice(cache->cells);
  cache->trim_notice = nullptr;
  cache->release();
}

// threadCache(handler, route, trimAsked) -> { cells: Float64Array, cache, pool } or null when
// the handler has no such route (alloc() reports the route of each block: only blocks a pool of
// ours classed can wait in a thread cache). `pool` is the id of the route's pool. trimAsked() runs
// in this thread when another thread asks the cache to give its blocks back.
napi_value NewThreadCache(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 3, "threadCache(handler, route, trimAsked)");
  auto* inst = static_cast<Instance*>(function_data);
  PINPOOL_REQUIRE_HANDLER(0, inst, h);
  PINPOOL_REQUIRE_SIZE(1, route_index);
  PINPOOL_REQUIRE_FUNCTION(2, trim_asked);
  napi_value result;
  const std::vector<Route>& routes = h->routes();
  if (route_index >= routes.size()) {
    napi_get_null(env, &result);
    return result;
  }
  const Route& route = routes[route_index];
  auto* cache = new ThreadCache();
  std::fill(std::begin(cache->cells), std::end(cache->cells), 0.0);
  std::fill(cache->cells + tc::kCellCount, std::end(cache->cells), -1.0);
  cache->route = route;
  for (Handler* on : route) on->retain();
  cache->instance = inst;
  cache->refs = 1;  // the instance's
  inst->caches.push_back(cache);
  napi_value buffer, cells, handle;
  auto release = [](napi_env, void* data, void* hint) {
    static_cast<ThreadCache*>(hint ? hint : data)->release();
  };
  if (napi_create_external_arraybuffer(env, cache->cells, sizeof cache->cells, release, cache,
                                       &buffer) != napi_ok) {
    cache->drop(env, false);
    return throw_error(env, code::kOutOfMemory, "threadCache: no ArrayBuffer could be made");
  }
  cache->refs++;
  napi_create_typedarray(env, napi_float64_array, std::size(cache->cells), buffer, 0, &cells);
  // JavaScript drops the cache (dropCache) once the Handler wrapper holding it is collected;
  // an environment that ends drops its caches itself (Instance::end).
  handle = wrap_tagged(env, cache, Tag::ThreadCache, [](napi_env, void* data, void*) {
    static_cast<ThreadCache*>(data)->release();
  });
  cache->refs++;
  napi_value name;
  napi_create_string_latin1(env, "pinpool thread cache trim", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, trim_asked, nullptr, name, 1, 1, cache, trim_notice_gone,
                                      nullptr, nullptr, &cache->trim_notice) == napi_ok) {
    cache->refs++;  // the notice's, given back when it is gone
    napi_unref_threadsafe_function(env, cache->trim_notice);  // it keeps no thread alive
  } else {
    cache->trim_notice = nullptr;  // trims are then seen at the thread's next call only
  }
  for (Handler* on : route)
    on->add_thread_cache(cache->cells, notify_trim, cache, /*pool=*/on == route.back());
  result = js_object(env);
  set_named(env, result, "cells", cells);
  set_named(env, result, "cache", handle);
  napi_value pool;
  napi_create_double(env, static_cast<double>(route.back()->id()), &pool);
  set_named(env, result, "pool", pool);
  return result;
}

// dropCache(cache): its Handler wrapper is gone; every block it holds goes back to the pool, each
// once its cached ArrayBuffer is collected.
// Anything else is let be: a cache of another environment, or one dropped already.
napi_value DropCache(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 1, "dropCache(cache)");
  auto* inst = static_cast<Instance*>(function_data);
  ThreadCache* cache = nullptr;
  if (get_handle(env, argv[0], &cache) && cache->instance == inst) cache->drop(env, false);
  return nullptr;
}

// trimAfterThreadCache(cache) -> bytes: the cache gave its blocks back for a trim asked in
// another thread, which ran without them: the route's pool gives its cached memory back
// upstream now (the others of the route trimmed already, and keep nothing of the cache's).
napi_value TrimAfterThreadCache(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 1, "trimAfterThreadCache(cache)");
  PINPOOL_REQUIRE_HANDLE(0, ThreadCache, cache);
  PINPOOL_REQUIRE(cache->instance == function_data);  // this environment's, not dropped
  napi_value bytes;
  napi_create_double(env, static_cast<double>(cache->route.back()->trim_after_thread_cache()),
                     &bytes);
  return bytes;
}

// notePeak(cache): the thread's use of the route passed its last mark; raise the peaks.
napi_value NotePeak(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 1, "notePeak(cache)");
  PINPOOL_REQUIRE_HANDLE(0, ThreadCache, cache);
  PINPOOL_REQUIRE(cache->instance == function_data);  // this environment's, not dropped
  for (Handler* on : cache->route) on->note_peak();
  return nullptr;
}

// leased(address, bytes) -> true when a lease (a copy in flight, a registration) covers part of
// the range: a block there must go back through free(), which waits for it.
napi_value Leased(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 2, "leased(address, bytes)");
  PINPOOL_REQUIRE_ADDRESS(0, ptr);
  PINPOOL_REQUIRE_SIZE(1, bytes);
  return js_bool(env, leases::overlaps(ptr, bytes));
}

// A few bytes no one frees, for probes: whether ArrayBuffer.prototype.transfer() moves an
// external ArrayBuffer's memory (the new one over the same bytes) rather than copying it.
alignas(16) unsigned char probe_memory[16];

// transferProbe() -> an external ArrayBuffer over the probe bytes
napi_value TransferProbe(napi_env env, napi_callback_info) {
  napi_value probe;
  if (napi_create_external_arraybuffer(env, probe_memory, sizeof probe_memory, nullptr, nullptr,
                                       &probe) != napi_ok)
    return throw_error(env, code::kOutOfMemory, "transferProbe: no ArrayBuffer could be made");
  return probe;
}

// leaseFlag() -> Int32Array over the flag that is not 0 while any lease may be held
napi_value LeaseFlag(napi_env env, napi_callback_info) {
  napi_value buffer, flag;
  void* held = const_cast<std::atomic<int32_t>*>(leases::held_flag());
  if (napi_create_external_arraybuffer(env, held, sizeof(int32_t), nullptr, nullptr, &buffer) !=
      napi_ok)
    return throw_error(env, code::kOutOfMemory, "leaseFlag: no ArrayBuffer could be made");
  napi_create_typedarray(env, napi_int32_array, 1, buffer, 0, &flag);
  return flag;
}

// isProbe(value) -> true when value is an ArrayBuffer over the probe bytes
// (any other value is not the probe: false)
napi_value IsProbe(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 1, "isProbe(value)");
  napi_value buffer;
  if (!get_arraybuffer(env, argv[0], &buffer)) return js_bool(env, false);
  void* memory = nullptr;
  size_t length = 0;
  napi_get_arraybuffer_info(env, buffer, &memory, &length);
  return js_bool(env, memory == probe_memory && length == sizeof probe_memory);
}

}  // namespace

void ExportThreadCache(napi_env env, napi_value exports, Instance* inst) {
  export_functions(env, exports,
                   {{"threadCache", guarded<NewThreadCache>},
                    {"dropCache", guarded<DropCache>},
                    {"notePeak", guarded<NotePeak>},
                    {"trimAfterThreadCache", guarded<TrimAfterThreadCache>},
                    {"leased", guarded<Leased>},
                    {"transferProbe", guarded<TransferProbe>},
                    {"leaseFlag", guarded<LeaseFlag>},
                    {"isProbe", guarded<IsProbe>}},
                   inst);
}

}  // namespace pinpool::binding
