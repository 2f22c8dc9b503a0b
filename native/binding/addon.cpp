// The addon's entry point: per-environment state, the export table, and what the module tells
// about itself (info, the test double's hooks). Each concern's calls live in their own file:
// hot_path.cpp (alloc, free, transfer, adopt), handler_calls.cpp, slab_views.cpp, hops.cpp,
// gpu.cpp, capsule.cpp (the process-wide registry, native handles), scope_cells.cpp, boundary.cpp
// (errors, type tags, constants).
#include <napi.h>

#include <cmath>
#include <string>
#include <vector>

#include "../core/lock_cap.hpp"
#include "../core/stats.hpp"
#include "../cuda/cuda_driver.hpp"
#include "buffer_lifetime.hpp"
#include "calls.hpp"
#include "hot_path.hpp"
#include "thread_cache.hpp"
#include "instance.hpp"

namespace pinpool::binding {
namespace {

Napi::Value Scratch(const Napi::CallbackInfo& info) {
  napi_value scratch;
  napi_get_reference_value(info.Env(), instance(info.Env())->scratch, &scratch);
  return Napi::Value(info.Env(), scratch);
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cuda::DriverState& d = cuda::driver();
  Napi::Object o = Napi::Object::New(env);
  o.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
  o.Set("abiVersion", Napi::Number::New(env, PINPOOL_ABI_VERSION));
  Napi::Object c = Napi::Object::New(env);
  c.Set("available", Napi::Boolean::New(env, d.available));
  if (!d.available) c.Set("reason", Napi::String::New(env, d.reason));
  c.Set("library", Napi::String::New(env, d.library));
  if (d.driver_version) c.Set("driverVersion", Napi::Number::New(env, d.driver_version));
  Napi::Array devices = Napi::Array::New(env, d.devices.size());
  for (size_t i = 0; i < d.devices.size(); i++) {
    Napi::Object dev = Napi::Object::New(env);
    dev.Set("index", Napi::Number::New(env, d.devices[i].index));
    dev.Set("name", Napi::String::New(env, d.devices[i].name));
    dev.Set("totalBytes", Napi::Number::New(env, static_cast<double>(d.devices[i].total_bytes)));
    devices.Set(static_cast<uint32_t>(i), dev);
  }
  c.Set("devices", devices);
  o.Set("cuda", c);
  Napi::Array reasons = Napi::Array::New(env, kReasonCount);
  for (int i = 0; i < kReasonCount; i++)
    reasons.Set(static_cast<uint32_t>(i), reason_text(static_cast<Reason>(i)));
  o.Set("reasons", reasons);
  auto cap = [&](LockCap c) {
    Napi::Object v = Napi::Object::New(env);
    v.Set("bytes", Napi::Number::New(env, c.bytes == UINT64_MAX ? INFINITY : static_cast<double>(c.bytes)));
    v.Set("source", Napi::String::New(env, c.source));
    return v;
  };
  o.Set("hostLockCap", cap(host_lock_budget().cap()));
  o.Set("lockedCap", cap(lesser(memlock_cap(), host_lock_budget().cap())));
  return o;
}

// fakeCuda('counters') -> object | null; fakeCuda('reset') -> bool; fakeCuda('set', knob, value)
Napi::Value FakeCuda(const Napi::CallbackInfo& info) {
  PINPOOL_CHECK(info[0].IsString(), "fakeCuda(op, ...)");
  Napi::Env env = info.Env();
  std::string op = info[0].As<Napi::String>();
  if (op == "counters") {
    std::vector<cuda::Counter> counters;
    if (!cuda::fake_counters(counters)) return env.Null();
    Napi::Object o = Napi::Object::New(env);
    for (const auto& c : counters) o.Set(c.name, Napi::Number::New(env, static_cast<double>(c.value)));
    return o;
  }
  if (op == "reset") return Napi::Boolean::New(env, cuda::fake_reset_counters());
  if (op == "set") {
    PINPOOL_CHECK(info[1].IsString() && info[2].IsNumber(), "fakeCuda('set', knob, value)");
    std::string knob = info[1].As<Napi::String>();
    return Napi::Boolean::New(
        env, cuda::fake_set(knob.c_str(), info[2].As<Napi::Number>().Int64Value()));
  }
  PINPOOL_CHECK(false, "fakeCuda: unknown op " + op);
  return env.Undefined();
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* inst = new Instance();
  Napi::Float64Array scratch = Napi::Float64Array::New(env, kSlotCount);
  napi_create_reference(env, scratch, 1, &inst->scratch);
  inst->slots = scratch.Data();
  inst->slots[kTakingBack] = -1;
  napi_set_instance_data(
      env, inst,
      [](napi_env env, void* data, void*) {
        auto* ending = static_cast<Instance*>(data);
        // Node does not free a worker's references when its environment ends; we do.
        if (ending->scratch) napi_delete_reference(env, ending->scratch);
        if (ending->error_class) napi_delete_reference(env, ending->error_class);
        if (ending->last_error) napi_delete_reference(env, ending->last_error);
        if (ending->transfer) napi_delete_reference(env, ending->transfer);
        if (ending->probe) napi_delete_reference(env, ending->probe);
        delete ending;
      },
      nullptr);
  // Before Node-API's own clean-up, which deletes every reference (the instance data's
  // finalizer runs after that): Instance::end reads the weak references it watches.
  napi_add_env_cleanup_hook(
      env, [](void* arg) { static_cast<Instance*>(arg)->end(static_cast<Instance*>(arg)->env); }, inst);
  inst->env = env;
  make_probe(env, inst);
  ExportHotPath(env, exports, inst);
  ExportBoundary(env, exports);
  exports.Set("scratch", Napi::Function::New(env, Scratch, "scratch"));
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("fakeCuda", Napi::Function::New(env, FakeCuda, "fakeCuda"));
  ExportThreadCache(env, exports, inst);
  ExportBufferLifetime(env, exports, inst);
  InitHandlerCalls(env, exports);
  InitSlabViews(env, exports);
  InitHops(env, exports);
  InitGpu(env, exports);
  InitCapsule(env, exports);
  InitScopeCells(env, exports);
  return exports;
}

}  // namespace pinpool::binding

static Napi::Object InitPinpool(Napi::Env env, Napi::Object exports) {
  return pinpool::binding::Init(env, exports);
}
NODE_API_MODULE(pinpool, InitPinpool)
