// The calls on a handler as a whole: create one, trim it, read its statistics, describe it,
// share it with another thread (secret) and attach it there.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "../lifetime/transfers.hpp"
#include "calls.hpp"
#include "handler_factory.hpp"

namespace pinpool::binding {
namespace {

// The hex digits of a handler's secret (Handler::secret()).
std::string secret_hex(const Handler* h) {
  char digits[33];
  std::snprintf(digits, sizeof digits, "%016llx%016llx",
                static_cast<unsigned long long>(h->secret()[0]),
                static_cast<unsigned long long>(h->secret()[1]));
  return digits;
}

// createHandler(kind, options) -> External
Napi::Value CreateHandler(const Napi::CallbackInfo& info) {
  PINPOOL_CHECK(info.Length() >= 2 && info[0].IsString() && info[1].IsObject(),
                "createHandler(kind, options)");
  std::string error;
  Handler* h = make_handler(info[0].As<Napi::String>(), info[1].As<Napi::Object>(), error);
  PINPOOL_CHECK(h, error);
  return wrap(info.Env(), h);
}

Napi::Value Trim(const Napi::CallbackInfo& info) {
  Handler* h = handler_arg(info, 0);
  PINPOOL_CHECK(h, "trim(handler)");
  return Napi::Number::New(info.Env(), static_cast<double>(h->trim()));
}

// The order in which stats() writes a handler's statistics: the names of stats.hpp's X-macros
// ({current, peak, total} for gauges), then failures and fallback hops by reason.
std::vector<std::string> stats_layout() {
  std::vector<std::string> names;
#define PINPOOL_NAME_GAUGE(name)         \
  names.push_back(#name "Current");      \
  names.push_back(#name "Peak");         \
  names.push_back(#name "Total");
  PINPOOL_GAUGE_STATS(PINPOOL_NAME_GAUGE)
#undef PINPOOL_NAME_GAUGE
#define PINPOOL_NAME_COUNTER(name) names.push_back(#name);
  PINPOOL_COUNTER_STATS(PINPOOL_NAME_COUNTER)
  PINPOOL_LEVEL_STATS(PINPOOL_NAME_COUNTER)
#undef PINPOOL_NAME_COUNTER
  for (int i = 0; i < kReasonCount; i++) names.push_back(std::string("failures.") + reason_text(static_cast<Reason>(i)));
  for (int i = 0; i < kReasonCount; i++) names.push_back(std::string("fallbacks.") + reason_text(static_cast<Reason>(i)));
  return names;
}

// statsLayout() -> the names of the slots stats() fills
Napi::Value StatsLayout(const Napi::CallbackInfo& info) {
  std::vector<std::string> names = stats_layout();
  Napi::Array a = Napi::Array::New(info.Env(), names.size());
  for (size_t i = 0; i < names.size(); i++) a.Set(static_cast<uint32_t>(i), names[i]);
  return a;
}

// stats(handler, Float64Array): fills the array in statsLayout() order. Numbers, not an
// object: a scrape reads dozens of handlers, and building objects in C++ costs more than the
// reading.
Napi::Value GetStats(const Napi::CallbackInfo& info) {
  Handler* h = handler_arg(info, 0);
  PINPOOL_CHECK(h && info[1].IsTypedArray() &&
                    info[1].As<Napi::TypedArray>().TypedArrayType() == napi_float64_array,
                "stats(handler, Float64Array)");
  Napi::Float64Array out = info[1].As<Napi::Float64Array>();
  uint64_t values[kStatCount];
  h->read_stats(values);
  size_t n = std::min<size_t>(out.ElementLength(), kStatCount);
  for (size_t i = 0; i < n; i++) out[i] = static_cast<double>(values[i]);
  return info.Env().Undefined();
}

// describe(handler | id) -> { id, name, kind } or null when no such handler is alive
Napi::Value Describe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Handler* h = handler_arg(info, 0);
  bool counted = false;
  size_t id;
  if (!h && info.Length() >= 1 && get_size(env, info[0], &id)) {
    h = Handler::find(id);
    counted = h != nullptr;
  }
  if (!h) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", Napi::Number::New(env, static_cast<double>(h->id())));
  o.Set("name", Napi::String::New(env, h->name()));
  o.Set("kind", Napi::String::New(env, h->kind()));
  if (counted) h->release();
  return o;
}

// secret(handler) -> [the handler's secret as hex digits, the process key]: what a share()
// token carries besides the id
Napi::Value Secret(const Napi::CallbackInfo& info) {
  Handler* h = handler_arg(info, 0);
  PINPOOL_CHECK(h, "secret(handler)");
  Napi::Array result = Napi::Array::New(info.Env(), 2);
  result.Set(0u, Napi::String::New(info.Env(), secret_hex(h)));
  result.Set(1u, Napi::String::New(info.Env(), transfers::process_key()));
  return result;
}

// attach(id, secret, process) -> External with a new reference, or null when the handler is
// gone; a secret or process that does not match is refused (a guessed or foreign token)
Napi::Value Attach(const Napi::CallbackInfo& info) {
  size_t id = 0;
  PINPOOL_CHECK(info.Length() >= 3 && get_size(info.Env(), info[0], &id) && info[1].IsString() && info[2].IsString(),
                "attach(id, secret, process)");
  PINPOOL_CHECK(info[2].As<Napi::String>().Utf8Value() == transfers::process_key(),
                "attach: the token was made in another process");
  Handler* h = Handler::find(id);
  if (!h) return info.Env().Null();
  if (info[1].As<Napi::String>().Utf8Value() != secret_hex(h)) {
    h->release();
    PINPOOL_CHECK(false, "attach: not a token from handler.share()");
  }
  return wrap(info.Env(), h);
}

}  // namespace

void InitHandlerCalls(Napi::Env env, Napi::Object exports) {
  exports.Set("createHandler", Napi::Function::New(env, CreateHandler, "createHandler"));
  exports.Set("trim", Napi::Function::New(env, Trim, "trim"));
  exports.Set("stats", Napi::Function::New(env, GetStats, "stats"));
  exports.Set("statsLayout", Napi::Function::New(env, StatsLayout, "statsLayout"));
  exports.Set("describe", Napi::Function::New(env, Describe, "describe"));
  exports.Set("secret", Napi::Function::New(env, Secret, "secret"));
  exports.Set("attach", Napi::Function::New(env, Attach, "attach"));
}

}  // namespace pinpool::binding
