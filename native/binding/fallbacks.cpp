// Fallbacks for the pinpool:fallback tracing channel: a per-thread log, off unless
// someone listens.
#include "../core/fallback_log.hpp"
#include "module_exports.hpp"

namespace pinpool::binding {
namespace {

// traceFallbacks(enabled): turns this thread's fallback log on or off (and empties it); any value,
// as JavaScript's truthiness
napi_value TraceFallbacks(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 1, "traceFallbacks(enabled)");
  napi_value enabled;
  bool on = false;
  if (napi_coerce_to_bool(env, argv[0], &enabled) != napi_ok) return nullptr;  // it threw
  napi_get_value_bool(env, enabled, &on);
  FallbackLog& log = fallback_log();
  log.enabled = on;
  log.count = 0;
  return nullptr;
}

// takeFallbacks() -> [{ handler, from, to, reason }, ...] for the last allocation; empties the log
napi_value TakeFallbacks(napi_env env, napi_callback_info) {
  FallbackLog& log = fallback_log();
  napi_value fallbacks = js_array(env, log.count);
  for (int i = 0; i < log.count; i++) {
    const Fallback& h = log.fallbacks[i];
    napi_value row = js_object(env);
    set_named(env, row, "handler", js_string(env, h.handler));
    set_named(env, row, "from", js_string(env, h.from));
    set_named(env, row, "to", js_string(env, h.to));
    set_named(env, row, "reason", js_string(env, reason_text(h.reason)));
    set_element(env, fallbacks, static_cast<uint32_t>(i), row);
  }
  log.count = 0;
  return fallbacks;
}

}  // namespace

void ExportFallbacks(napi_env env, napi_value exports) {
  export_functions(
      env, exports,
      {{"traceFallbacks", guarded<TraceFallbacks>}, {"takeFallbacks", guarded<TakeFallbacks>}});
}

}  // namespace pinpool::binding
