// Slab views of a `slabViews` pool: one ArrayBuffer per slab, seen by many HostBuffers.
#include <atomic>
#include <memory>

#include "../handlers/pool_adaptor.hpp"
#include "calls.hpp"

namespace pinpool::binding {
namespace {

// One JavaScript view of a slab: it pins the slab (so trim() keeps it mapped) and holds the
// pool. Unpinned by releaseRegion(), or when both the view and its handle are collected.
struct RegionPin {
  PoolAdaptor* pool;  // holds a reference
  void* region;
  std::atomic<bool> pinned{true};
  RegionPin(PoolAdaptor* p, void* r) : pool(p), region(r) { pool->retain(); }
  ~RegionPin() {
    unpin();
    pool->release();
  }
  void unpin() {
    if (pinned.exchange(false)) pool->unpin_region(region);
  }
};
using RegionPinRef = std::shared_ptr<RegionPin>;

// regionView(pool, regionAddress, regionBytes) -> [ArrayBuffer over a pinned slab, pin] or null
// when the pool has no slab of that size there. The view's size is the slab's own.
Napi::Value RegionView(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* pool = dynamic_cast<PoolAdaptor*>(handler_arg(info, 0));
  double region = number_arg(info, 1), bytes = number_arg(info, 2);
  PINPOOL_CHECK(pool && region > 0 && bytes > 0, "regionView(pool, region, bytes)");
  size_t slab_bytes = pool->pin_region(address_of(region));
  if (!slab_bytes) return env.Null();
  if (slab_bytes != bytes) {
    pool->unpin_region(address_of(region));
    return env.Null();
  }
  auto pin = std::make_shared<RegionPin>(pool, address_of(region));
  auto drop = [](Napi::Env, void*, RegionPinRef* ref) { delete ref; };
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, address_of(region), slab_bytes,
                                                drop, new RegionPinRef(pin));
  Napi::Array result = Napi::Array::New(env, 2);
  result.Set(0u, ab);
  result.Set(1u, Napi::Value(env, wrap_tagged(env, new RegionPinRef(pin), Tag::RegionPin,
                                               [](napi_env, void* ref, void*) {
                                                 delete static_cast<RegionPinRef*>(ref);
                                               })));
  return result;
}

// releaseRegion(arrayBuffer, pin): detaches the view, then unpins the slab (JavaScript passes a
// buffer only it can reach: src/take-back.ts)
Napi::Value ReleaseRegion(const Napi::CallbackInfo& info) {
  auto* pin = static_cast<RegionPinRef*>(unwrap_tagged(info.Env(), info[1], Tag::RegionPin));
  PINPOOL_CHECK(info[0].IsArrayBuffer() && pin, "releaseRegion(buffer, pin)");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  // Detached already: the memory moved to another ArrayBuffer, whose finalizer holds the pin.
  if (ab.IsDetached()) return info.Env().Undefined();
  ab.Detach();
  (*pin)->unpin();
  return info.Env().Undefined();
}

}  // namespace

void InitSlabViews(Napi::Env env, Napi::Object exports) {
  exports.Set("regionView", Napi::Function::New(env, RegionView, "regionView"));
  exports.Set("releaseRegion", Napi::Function::New(env, ReleaseRegion, "releaseRegion"));
}

}  // namespace pinpool::binding
