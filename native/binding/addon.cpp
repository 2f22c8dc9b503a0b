// The addon's entry point: the per-environment state (instance.hpp), the scratch array alloc()
// reports into, what the module tells about itself (info), and the export table, which each
// binding file fills with its own calls: hot_path.cpp (alloc, free, transfer, adopt),
// boundary.cpp (constants, errors), thread_cache.cpp, buffer_lifetime.cpp, handler_calls.cpp,
// slab_views.cpp, fallbacks.cpp, gpu.cpp, capsule.cpp (the process-wide registry, native handles),
// scope_cells.cpp; and, in a test build (PINPOOL_TESTING), testing.cpp's hooks under `testing`.
// src/boundary/native.ts declares the same groups (one interface per file).
#include <node_api.h>

#include <cmath>
#include <cstdint>

#include "../core/lock_cap.hpp"
#include "../core/stats.hpp"
#include "../cuda/cuda_driver.hpp"
#include "../support/kernel.hpp"
#include "buffer_lifetime.hpp"
#include "hot_path.hpp"
#include "instance.hpp"
#include "module_exports.hpp"
#include "thread_cache.hpp"

namespace pinpool::binding {
namespace {

// scratch() -> the Float64Array alloc() and adopt() write their report into (hot_path.hpp Slot)
napi_value Scratch(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 0, "scratch()");
  napi_value scratch;
  napi_get_reference_value(env, static_cast<Instance*>(function_data)->scratch, &scratch);
  return scratch;
}

napi_value lock_cap_value(napi_env env, LockCap cap) {
  napi_value v = js_object(env);
  set_named(env, v, "bytes",
            js_number(env, cap.bytes == UINT64_MAX ? INFINITY : static_cast<double>(cap.bytes)));
  set_named(env, v, "source", js_string(env, cap.source));
  return v;
}

// info() -> { napiVersion, abiVersion, cuda: { available, reason?, library, driverVersion?,
// devices }, reasons, hostLockCap, lockedCap }
napi_value Info(napi_env env, napi_callback_info) {
  const cuda::DriverState& d = cuda::driver();
  napi_value o = js_object(env);
  set_named(env, o, "napiVersion", js_number(env, NAPI_VERSION));
  set_named(env, o, "abiVersion", js_number(env, PINPOOL_ABI_VERSION));
  napi_value c = js_object(env);
  set_named(env, c, "available", js_bool(env, d.available));
  if (!d.available) set_named(env, c, "reason", js_string(env, d.reason));
  set_named(env, c, "library", js_string(env, d.library));
  if (d.driver_version) set_named(env, c, "driverVersion", js_number(env, d.driver_version));
  napi_value devices = js_array(env, d.devices.size());
  for (size_t i = 0; i < d.devices.size(); i++) {
    napi_value dev = js_object(env);
    set_named(env, dev, "index", js_number(env, d.devices[i].index));
    set_named(env, dev, "name", js_string(env, d.devices[i].name));
    set_named(env, dev, "totalBytes",
              js_number(env, static_cast<double>(d.devices[i].total_bytes)));
    const std::string& bus = d.devices[i].pci_bus_id;
    if (!bus.empty()) set_named(env, dev, "pciBusId", js_string(env, bus));
    set_named(env, dev, "managedMemory", js_bool(env, d.devices[i].managed_memory));
    set_named(env, dev, "concurrentManagedAccess",
              js_bool(env, d.devices[i].concurrent_managed_access));
    set_named(env, dev, "numaNode",
              js_number(env, bus.empty() ? -1 : kernel().pci_node(bus.c_str())));
    set_element(env, devices, static_cast<uint32_t>(i), dev);
  }
  set_named(env, c, "devices", devices);
  set_named(env, o, "cuda", c);
  napi_value reasons = js_array(env, kReasonCount);
  for (int i = 0; i < kReasonCount; i++)
    set_element(env, reasons, static_cast<uint32_t>(i),
                js_string(env, reason_text(static_cast<Reason>(i))));
  set_named(env, o, "reasons", reasons);
  set_named(env, o, "hostLockCap", lock_cap_value(env, host_lock_budget().cap()));
  set_named(env, o, "lockedCap",
            lock_cap_value(env, lesser(memlock_cap(), host_lock_budget().cap())));
  return o;
}

// Node does not free a worker's references when its environment ends; we do.
void delete_instance(napi_env env, void* data, void*) {
  auto* ending = static_cast<Instance*>(data);
  if (ending->scratch) napi_delete_reference(env, ending->scratch);
  if (ending->error_class) napi_delete_reference(env, ending->error_class);
  if (ending->last_error) napi_delete_reference(env, ending->last_error);
  if (ending->transfer) napi_delete_reference(env, ending->transfer);
  if (ending->probe) napi_delete_reference(env, ending->probe);
  delete ending;
}

// This environment's Instance, with its scratch array.
Instance* make_instance(napi_env env) {
  auto* inst = new Instance();
  napi_value buffer, scratch;
  void* slots = nullptr;
  napi_create_arraybuffer(env, kSlotCount * sizeof(double), &slots, &buffer);
  napi_create_typedarray(env, napi_float64_array, kSlotCount, buffer, 0, &scratch);
  napi_create_reference(env, scratch, 1, &inst->scratch);
  inst->slots = static_cast<double*>(slots);
  inst->slots[kTakingBack] = -1;
  napi_set_instance_data(env, inst, delete_instance, nullptr);
  // Before Node-API's own clean-up, which deletes every reference (the instance data's
  // finalizer runs after that): Instance::end reads the weak references it watches.
  napi_add_env_cleanup_hook(
      env, [](void* arg) { static_cast<Instance*>(arg)->end(static_cast<Instance*>(arg)->env); },
      inst);
  inst->env = env;
  make_probe(env, inst);
  return inst;
}

// One binding file's exports: made on an object of their own, then set on the module; their keys
// are kept in `groups` under the file's name (a test build hands them over: testing.groups).
template <typename Fill>
void export_group(napi_env env, napi_value exports, napi_value groups, const char* file,
                  Fill fill) {
  napi_value group = js_object(env);
  fill(group);
  napi_value keys;
  napi_get_all_property_names(
      env, group, napi_key_own_only,
      static_cast<napi_key_filter>(napi_key_enumerable | napi_key_skip_symbols),
      napi_key_numbers_to_strings, &keys);
  uint32_t count = 0;
  napi_get_array_length(env, keys, &count);
  for (uint32_t i = 0; i < count; i++) {
    napi_value key, value;
    napi_get_element(env, keys, i, &key);
    napi_get_property(env, group, key, &value);
    napi_set_property(env, exports, key, value);
  }
  set_named(env, groups, file, keys);
}

void ExportAddon(napi_env env, napi_value exports, Instance* inst) {
  export_functions(env, exports, {{"scratch", guarded<Scratch>}, {"info", guarded<Info>}}, inst);
}

napi_value init(napi_env env, napi_value exports) {
  Instance* inst = make_instance(env);
  napi_value groups = js_object(env);
  auto group = [&](const char* file, auto fill) { export_group(env, exports, groups, file, fill); };
  group("hot_path.cpp", [&](napi_value e) { ExportHotPath(env, e, inst); });
  group("boundary.cpp", [&](napi_value e) { ExportBoundary(env, e); });
  group("addon.cpp", [&](napi_value e) { ExportAddon(env, e, inst); });
  group("thread_cache.cpp", [&](napi_value e) { ExportThreadCache(env, e, inst); });
  group("buffer_lifetime.cpp", [&](napi_value e) { ExportBufferLifetime(env, e, inst); });
  group("handler_calls.cpp", [&](napi_value e) { ExportHandlerCalls(env, e); });
  group("slab_views.cpp", [&](napi_value e) { ExportSlabViews(env, e); });
  group("fallbacks.cpp", [&](napi_value e) { ExportFallbacks(env, e); });
  group("gpu.cpp", [&](napi_value e) { ExportGpu(env, e); });
  group("capsule.cpp", [&](napi_value e) { ExportCapsule(env, e); });
  group("scope_cells.cpp", [&](napi_value e) { ExportScopeCells(env, e); });
#ifdef PINPOOL_TESTING
  ExportTesting(env, exports, groups);
#endif
  return exports;
}

// As guarded<> does for a call: no C++ exception unwinds into Node.
napi_value Init(napi_env env, napi_value exports) noexcept {
  try {
    return init(env, exports);
  } catch (...) { return throw_native_exception(env, std::current_exception()); }
}

}  // namespace
}  // namespace pinpool::binding

NAPI_MODULE(pinpool, pinpool::binding::Init)
