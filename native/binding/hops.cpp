// Fallback hops for the pinpool:fallback tracing channel: a per-thread log, off unless
// someone listens.
#include "../core/hop_log.hpp"
#include "calls.hpp"

namespace pinpool::binding {
namespace {

// traceHops(enabled): turns this thread's hop log on or off (and empties it)
Napi::Value TraceHops(const Napi::CallbackInfo& info) {
  HopLog& log = hop_log();
  log.enabled = info[0].ToBoolean();
  log.count = 0;
  return info.Env().Undefined();
}

// takeHops() -> [[handler, from, to, reason], ...] for the last allocation; empties the log
Napi::Value TakeHops(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  HopLog& log = hop_log();
  Napi::Array hops = Napi::Array::New(env, log.count);
  for (int i = 0; i < log.count; i++) {
    const Hop& h = log.hops[i];
    Napi::Array row = Napi::Array::New(env, 4);
    row.Set(0u, h.handler);
    row.Set(1u, h.from);
    row.Set(2u, h.to);
    row.Set(3u, reason_text(h.reason));
    hops.Set(static_cast<uint32_t>(i), row);
  }
  log.count = 0;
  return hops;
}

}  // namespace

void InitHops(Napi::Env env, Napi::Object exports) {
  exports.Set("traceHops", Napi::Function::New(env, TraceHops, "traceHops"));
  exports.Set("takeHops", Napi::Function::New(env, TakeHops, "takeHops"));
}

}  // namespace pinpool::binding
