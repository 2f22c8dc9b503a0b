// Slab views of a `slabViews` pool: one ArrayBuffer per slab, seen by many HostBuffers.
#include <atomic>
#include <memory>

#include "../handlers/pool/pool_adaptor.hpp"
#include "buffer_lifetime.hpp"
#include "instance.hpp"
#include "module_exports.hpp"

namespace pinpool::binding {

// One JavaScript view of a slab: it pins the slab (so trim() keeps it mapped) and holds the
// pool. Unpinned by releaseRegion(), or when both the view and its handle are collected;
// orphaned when the view may have left a thread that ended (buffer_lifetime.hpp).
struct RegionPin {
  PoolAdaptor* pool;  // holds a reference
  void* region;
  size_t bytes;  // the slab's size
  std::atomic<bool> pinned{true};
  std::atomic<bool> view_dead{false};  // the view's finalizer ran while its thread ran
  RegionPin(PoolAdaptor* p, void* r, size_t b) : pool(p), region(r), bytes(b) { pool->retain(); }
  ~RegionPin() {
    unpin();
    pool->release();
  }
  void unpin() {
    if (pinned.exchange(false)) pool->unpin_region(region);
  }
  // The slab stays pinned for good, and the pool with it (its reference is never given back):
  // an ArrayBuffer over the slab may live on in another thread.
  void orphan() {
    if (!pinned.exchange(false)) return;
    pool->retain();
    pool->orphan_region(region);
  }
};

namespace {

inline void* address_of(double a) { return reinterpret_cast<void*>(static_cast<uintptr_t>(a)); }

// The view's finalizer. While its thread runs, no ArrayBuffer over the slab is left; once the
// thread is ending that is not known, and Instance::end decides (end_slab_views).
void view_finalized(napi_env env, void*, void* hint) {
  auto* ref = static_cast<RegionPinRef*>(hint);
  if (buffers_move() && !can_run_js(env)) {
    Instance* inst = instance(env);
    if (inst && !inst->ended) {
      inst->ending_pins.push_back(ref);
      return;
    }
  } else {
    (*ref)->view_dead = true;
  }
  delete ref;
}

// regionView(pool, regionAddress, regionBytes) -> { buffer: ArrayBuffer over a pinned slab, pin }
// or null
// when the pool has no slab of that size there. The view's size is the slab's own.
napi_value RegionView(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 3, "regionView(pool, region, bytes)");
  PINPOOL_REQUIRE_HANDLE(0, Handler, handler);
  PINPOOL_REQUIRE_ANY_NUMBER(1, region);
  PINPOOL_REQUIRE_ANY_NUMBER(2, bytes);
  auto* pool = dynamic_cast<PoolAdaptor*>(handler);
  PINPOOL_REQUIRE(pool && region > 0 && bytes > 0);
  size_t slab_bytes = pool->pin_region(address_of(region));
  if (!slab_bytes) return js_null(env);
  if (slab_bytes != bytes) {
    pool->unpin_region(address_of(region));
    return js_null(env);
  }
  auto pin = std::make_shared<RegionPin>(pool, address_of(region), slab_bytes);
  napi_value made;
  auto* view_ref = new RegionPinRef(pin);
  if (napi_create_external_arraybuffer(env, address_of(region), slab_bytes, view_finalized,
                                       view_ref, &made) != napi_ok) {
    delete view_ref;
    return throw_error(env, code::kOutOfMemory, "regionView: no ArrayBuffer could be made");
  }
  Instance* inst = instance(env);
  SlabViewRecord record;
  napi_value view = hand_out(env, inst, made, &record.watch);
  if (record.watch) {
    // Forget the views whose pins are gone, then watch this one.
    auto& views = inst->slab_views;
    for (auto it = views.begin(); it != views.end();) {
      if (it->pin.expired()) {
        napi_delete_reference(env, it->watch);
        it = views.erase(it);
      } else {
        ++it;
      }
    }
    record.pin = pin;
    views.push_back(record);
  }
  napi_value result = js_object(env);
  set_named(env, result, "buffer", view);
  set_named(env, result, "pin",
            wrap_tagged(env, new RegionPinRef(pin), Tag::RegionPin, [](napi_env, void* ref, void*) {
              delete static_cast<RegionPinRef*>(ref);
            }));
  return result;
}

// releaseRegion(arrayBuffer, pin): detaches the view, then unpins the slab (JavaScript passes a
// buffer only it can reach: src/take-back.ts)
napi_value ReleaseRegion(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 2, "releaseRegion(buffer, pin)");
  PINPOOL_REQUIRE_ARRAYBUFFER(0, buffer);
  PINPOOL_REQUIRE_HANDLE(1, RegionPinRef, pin);
  bool detached = false;
  napi_is_detached_arraybuffer(env, buffer, &detached);
  // Detached already: the memory moved to another ArrayBuffer, whose finalizer holds the pin.
  if (detached) return nullptr;
  // Not detachable (a WebAssembly memory's: src/take-back.ts never passes one).
  if (napi_detach_arraybuffer(env, buffer) != napi_ok)
    return throw_error(env, code::kInvalidArgument, "releaseRegion: the buffer cannot be detached");
  (*pin)->unpin();
  return nullptr;
}

}  // namespace

void end_slab_views(napi_env env, Instance* inst) {
  for (SlabViewRecord& r : inst->slab_views) {
    if (RegionPinRef pin = r.pin.lock())
      if (pin->pinned && view_left_thread(env, r.watch, pin->view_dead)) pin->orphan();
    napi_delete_reference(env, r.watch);
  }
  inst->slab_views.clear();
  for (void* ref : inst->ending_pins) delete static_cast<RegionPinRef*>(ref);
  inst->ending_pins.clear();
}

void ExportSlabViews(napi_env env, napi_value exports) {
  export_functions(
      env, exports,
      {{"regionView", guarded<RegionView>}, {"releaseRegion", guarded<ReleaseRegion>}});
}

}  // namespace pinpool::binding
