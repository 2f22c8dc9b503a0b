// Fallback hops for the pinpool:fallback tracing channel: a per-thread log, off unless
// someone listens.
#include "../core/hop_log.hpp"
#include "module_exports.hpp"

namespace pinpool::binding {
namespace {

// traceHops(enabled): turns this thread's hop log on or off (and empties it); any value, as
// JavaScript's truthiness
napi_value TraceHops(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 1, "traceHops(enabled)");
  napi_value enabled;
  bool on = false;
  if (napi_coerce_to_bool(env, argv[0], &enabled) != napi_ok) return nullptr;  // it threw
  napi_get_value_bool(env, enabled, &on);
  HopLog& log = hop_log();
  log.enabled = on;
  log.count = 0;
  return nullptr;
}

// takeHops() -> [{ handler, from, to, reason }, ...] for the last allocation; empties the log
napi_value TakeHops(napi_env env, napi_callback_info) {
  HopLog& log = hop_log();
  napi_value hops = js_array(env, log.count);
  for (int i = 0; i < log.count; i++) {
    const Hop& h = log.hops[i];
    napi_value row = js_object(env);
    set_named(env, row, "handler", js_string(env, h.handler));
    set_named(env, row, "from", js_string(env, h.from));
    set_named(env, row, "to", js_string(env, h.to));
    set_named(env, row, "reason", js_string(env, reason_text(h.reason)));
    set_element(env, hops, static_cast<uint32_t>(i), row);
  }
  log.count = 0;
  return hops;
}

}  // namespace

void ExportHops(napi_env env, napi_value exports) {
  export_functions(env, exports,
                   {{"traceHops", guarded<TraceHops>}, {"takeHops", guarded<TakeHops>}});
}

}  // namespace pinpool::binding
