// Slab views of a `slabViews` pool: one ArrayBuffer per slab, seen by many HostBuffers.
#include <atomic>
#include <memory>

#include "../handlers/pool/pool_adaptor.hpp"
#include "buffer_lifetime.hpp"
#include "instance.hpp"
#include "module_exports.hpp"

namespace pinpool::binding {

// One JavaScript view of a slab: it leases the slab (so trim() keeps it mapped) and holds the
// pool. Ended by releaseSlabView(), or when both the view and its handle are collected;
// orphaned when the view may have left a thread that ended (buffer_lifetime.hpp).
struct SlabLease {
  PoolAdaptor* pool;  // holds a reference
  void* slab;
  size_t bytes;  // the slab's size
  std::atomic<bool> held{true};
  std::atomic<bool> view_dead{false};  // the view's finalizer ran while its thread ran
  SlabLease(PoolAdaptor* p, void* r, size_t b) : pool(p), slab(r), bytes(b) { pool->retain(); }
  ~SlabLease() {
    end_lease();
    pool->release();
  }
  void end_lease() {
    if (held.exchange(false)) pool->end_slab_lease(slab);
  }
  // The slab stays leased for good, and the pool with it (its reference is never given back):
  // an ArrayBuffer over the slab may live on in another thread.
  void orphan() {
    if (!held.exchange(false)) return;
    pool->retain();
    pool->orphan_slab(slab);
  }
};

namespace {

inline void* address_of(double a) { return reinterpret_cast<void*>(static_cast<uintptr_t>(a)); }

// The view's finalizer. While its thread runs, no ArrayBuffer over the slab is left; once the
// thread is ending that is not known, and Instance::end decides (end_slab_views).
void view_finalized(napi_env env, void*, void* hint) {
  auto* ref = static_cast<SlabLeaseRef*>(hint);
  if (buffers_move() && !can_run_js(env)) {
    Instance* inst = instance(env);
    if (inst && !inst->ended) {
      inst->ending_leases.push_back(ref);
      return;
    }
  } else {
    (*ref)->view_dead = true;
  }
  delete ref;
}

// viewSlab(pool, slab, slabBytes) -> { buffer: ArrayBuffer over a leased slab, lease }
// or null
// when the pool has no slab of that size there. The view's size is the slab's own.
napi_value ViewSlab(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 3, "viewSlab(pool, slab, bytes)");
  PINPOOL_REQUIRE_HANDLE(0, Handler, handler);
  PINPOOL_REQUIRE_ANY_NUMBER(1, slab);
  PINPOOL_REQUIRE_ANY_NUMBER(2, bytes);
  auto* pool = dynamic_cast<PoolAdaptor*>(handler);
  PINPOOL_REQUIRE(pool && slab > 0 && bytes > 0);
  size_t slab_bytes = pool->lease_slab(address_of(slab));
  if (!slab_bytes) return js_null(env);
  if (slab_bytes != bytes) {
    pool->end_slab_lease(address_of(slab));
    return js_null(env);
  }
  auto lease = std::make_shared<SlabLease>(pool, address_of(slab), slab_bytes);
  napi_value made;
  auto* view_ref = new SlabLeaseRef(lease);
  if (napi_create_external_arraybuffer(env, address_of(slab), slab_bytes, view_finalized, view_ref,
                                       &made) != napi_ok) {
    delete view_ref;
    return throw_error(env, code::kOutOfMemory, "viewSlab: no ArrayBuffer could be made");
  }
  Instance* inst = instance(env);
  SlabViewRecord record;
  napi_value view = hand_out(env, inst, made, &record.watch);
  if (record.watch) {
    // Forget the views whose leases are gone, then watch this one.
    auto& views = inst->slab_views;
    for (auto it = views.begin(); it != views.end();) {
      if (it->lease.expired()) {
        napi_delete_reference(env, it->watch);
        it = views.erase(it);
      } else {
        ++it;
      }
    }
    record.lease = lease;
    views.push_back(record);
  }
  napi_value result = js_object(env);
  set_named(env, result, "buffer", view);
  set_named(
      env, result, "lease",
      wrap_tagged(env, new SlabLeaseRef(lease), Tag::SlabLease,
                  [](napi_env, void* ref, void*) { delete static_cast<SlabLeaseRef*>(ref); }));
  return result;
}

// releaseSlabView(arrayBuffer, lease): detaches the view, then ends its lease on the slab
// (JavaScript passes a buffer only it can reach: src/memory/take-back.ts)
napi_value ReleaseSlabView(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 2, "releaseSlabView(buffer, lease)");
  PINPOOL_REQUIRE_ARRAYBUFFER(0, buffer);
  PINPOOL_REQUIRE_HANDLE(1, SlabLeaseRef, lease);
  bool detached = false;
  napi_is_detached_arraybuffer(env, buffer, &detached);
  // Detached already: the memory moved to another ArrayBuffer, whose finalizer holds the lease.
  if (detached) return nullptr;
  // Not detachable (a WebAssembly memory's: src/memory/take-back.ts never passes one).
  if (napi_detach_arraybuffer(env, buffer) != napi_ok)
    return throw_error(env, code::kInvalidArgument,
                       "releaseSlabView: the buffer cannot be detached");
  (*lease)->end_lease();
  return nullptr;
}

}  // namespace

void end_slab_views(napi_env env, Instance* inst) {
  for (SlabViewRecord& r : inst->slab_views) {
    if (SlabLeaseRef lease = r.lease.lock())
      if (lease->held && view_left_thread(env, r.watch, lease->view_dead)) lease->orphan();
    napi_delete_reference(env, r.watch);
  }
  inst->slab_views.clear();
  for (void* ref : inst->ending_leases) delete static_cast<SlabLeaseRef*>(ref);
  inst->ending_leases.clear();
}

void ExportSlabViews(napi_env env, napi_value exports) {
  export_functions(
      env, exports,
      {{"viewSlab", guarded<ViewSlab>}, {"releaseSlabView", guarded<ReleaseSlabView>}});
}

}  // namespace pinpool::binding
