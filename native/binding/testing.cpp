// Test hooks, compiled only with PINPOOL_TESTING=ON (CMakeLists.txt; `npm run build` turns it on,
// `prepare` and scripts/prebuild.sh leave it off): the module's `testing` object. No production
// module calls them; the published binaries have no `testing` key (test/prebuilds/smoke.cjs).
//   fakeCuda    the CUDA test double's counters and knobs (test/support/fake-cuda.ts)
//   deferred    a handler's frees still waiting for their leases
//   cudaError   what pinpool calls a CUresult: the loaded driver's name and words, or its own
//   groups      the module's keys by the binding file that exports them (test/host/binding.test.ts)
#include <string>
#include <vector>

#include "../cuda/cuda_driver.hpp"
#include "module_exports.hpp"

namespace pinpool::binding {
namespace {

// fakeCuda('set', knob, value) -> bool
napi_value fake_set(napi_env env, const napi_value* argv) {
  const Call call{env, "binding: testing.fakeCuda('set', knob, value)"};
  PINPOOL_REQUIRE_STRING(1, knob);
  PINPOOL_REQUIRE_INT64(2, value);
  return js_bool(env, cuda::fake_set(knob.c_str(), value));
}

// fakeCuda('counters') -> object | null; fakeCuda('reset') -> bool; fakeCuda('set', knob, value)
napi_value FakeCuda(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 3, "testing.fakeCuda(op, ...)");
  PINPOOL_REQUIRE_STRING(0, op);
  if (op == "counters") {
    std::vector<cuda::Counter> counters;
    if (!cuda::fake_counters(counters)) return js_null(env);
    napi_value o = js_object(env);
    for (const auto& c : counters)
      set_named(env, o, c.name.c_str(), js_number(env, static_cast<double>(c.value)));
    return o;
  }
  if (op == "reset") return js_bool(env, cuda::fake_reset_counters());
  if (op == "set") return fake_set(env, argv);
  return throw_error(env, code::kInvalidArgument, "binding: testing.fakeCuda: unknown op " + op);
}

// deferred(handler) -> blocks still waiting for their leases (0 for any other value)
napi_value Deferred(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 1, "testing.deferred(handler)");
  Handler* h = nullptr;
  get_handle(env, argv[0], &h);
  return js_number(env, h ? static_cast<double>(h->deferred()) : 0);
}

// cudaError(code) -> { name, text }: cuda::error_name() and cuda::error_string()
napi_value CudaError(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 1, "testing.cudaError(code)");
  PINPOOL_REQUIRE_INT64(0, code);
  PINPOOL_REQUIRE(code >= INT32_MIN && code <= INT32_MAX);
  const auto rc = static_cast<CUresult>(code);
  napi_value o = js_object(env);
  set_named(env, o, "name", js_string(env, cuda::error_name(rc)));
  set_named(env, o, "text", js_string(env, cuda::error_string(rc)));
  return o;
}

}  // namespace

void ExportTesting(napi_env env, napi_value exports, napi_value groups) {
  napi_value testing = js_object(env);
  export_functions(env, testing,
                   {{"fakeCuda", guarded<FakeCuda>},
                    {"deferred", guarded<Deferred>},
                    {"cudaError", guarded<CudaError>}});
  set_named(env, testing, "groups", groups);
  set_named(env, exports, "testing", testing);
}

}  // namespace pinpool::binding
