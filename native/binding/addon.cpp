// The Node-API glue. It checks argument *types* (the TypeScript layer has validated values),
// calls into core, and hands back numbers, handles and ArrayBuffers. Hot calls take positional
// numbers and report through a per-thread Float64Array ("scratch") instead of building objects.
#include <napi.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>
#include <unordered_map>
#include <new>

#include "../core/handler.hpp"
#include "../core/hop_log.hpp"
#include "../core/transfers.hpp"
#include "boundary.hpp"
#include "../cuda/cuda_driver.hpp"
#include "../handlers/pool_adaptor.hpp"
#include "gpu.hpp"
#include "handler_factory.hpp"
#include "hot_path.hpp"
#include "instance.hpp"

namespace pinpool::binding {
namespace {

// Throws ERR_PINPOOL_INVALID_ARGUMENT naming the call, and returns undefined from the binding
// function, when `cond` is false.
#define PINPOOL_CHECK(cond, what)                                                          \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      throw_error(info.Env(), code::kInvalidArgument, std::string("binding: ") + (what));  \
      return info.Env().Undefined();                                                       \
    }                                                                                      \
  } while (0)

Handler* handler_arg(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length()) return nullptr;
  return static_cast<Handler*>(unwrap_tagged(info.Env(), info[i], Tag::Handler));
}

double number_arg(const Napi::CallbackInfo& info, size_t i) {
  return info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : NAN;
}

void* address_of(double a) { return reinterpret_cast<void*>(static_cast<uintptr_t>(a)); }

// Wraps a handler reference (already counted) for JavaScript; the wrapper releases it.
Napi::Value wrap(Napi::Env env, Handler* h) {
  return Napi::Value(env, wrap_tagged(env, h, Tag::Handler, [](napi_env, void* data, void*) {
                       static_cast<Handler*>(data)->release();
                     }));
}

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
  const Stats& s = h->stats();
  size_t i = 0, n = out.ElementLength();
  auto put = [&](uint64_t v) {
    if (i < n) out[i] = static_cast<double>(v);
    i++;
  };
#define PINPOOL_PUT_GAUGE(name)                           \
  put(s.name.current.load(std::memory_order_relaxed));    \
  put(s.name.peak.load(std::memory_order_relaxed));       \
  put(s.name.total.load(std::memory_order_relaxed));
  PINPOOL_GAUGE_STATS(PINPOOL_PUT_GAUGE)
#undef PINPOOL_PUT_GAUGE
#define PINPOOL_PUT_COUNTER(name) put(s.name.load(std::memory_order_relaxed));
  PINPOOL_COUNTER_STATS(PINPOOL_PUT_COUNTER)
  PINPOOL_LEVEL_STATS(PINPOOL_PUT_COUNTER)
#undef PINPOOL_PUT_COUNTER
  for (const auto& f : s.failures) put(f.load(std::memory_order_relaxed));
  for (const auto& f : s.hops) put(f.load(std::memory_order_relaxed));
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

// releaseRegion(arrayBuffer, pin): detaches the view, then unpins the slab
Napi::Value ReleaseRegion(const Napi::CallbackInfo& info) {
  auto* pin = static_cast<RegionPinRef*>(unwrap_tagged(info.Env(), info[1], Tag::RegionPin));
  PINPOOL_CHECK(info[0].IsArrayBuffer() && pin, "releaseRegion(buffer, pin)");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  if (!ab.IsDetached()) ab.Detach();
  (*pin)->unpin();
  return info.Env().Undefined();
}

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
  return o;
}

Napi::Value CudaErrorName(const Napi::CallbackInfo& info) {
  PINPOOL_CHECK(info[0].IsNumber(), "cudaErrorName(code)");
  return Napi::String::New(info.Env(), cuda::error_name(static_cast<CUresult>(
                                           info[0].As<Napi::Number>().Int32Value())));
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
  napi_set_instance_data(
      env, inst, [](napi_env, void* data, void*) { delete static_cast<Instance*>(data); }, nullptr);
  exports.Set("createHandler", Napi::Function::New(env, CreateHandler, "createHandler"));
  for (auto [name, fn] : {std::pair{"alloc", HotAlloc}, std::pair{"free", HotFree},
                          std::pair{"transfer", Transfer}, std::pair{"adopt", Adopt},
                          std::pair{"setErrorClass", SetErrorClass}}) {
    napi_value f;
    NAPI_THROW_IF_FAILED(env, napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, inst, &f),
                         exports);
    exports.Set(name, Napi::Value(env, f));
  }
  exports.Set("trim", Napi::Function::New(env, Trim, "trim"));
  exports.Set("stats", Napi::Function::New(env, GetStats, "stats"));
  exports.Set("statsLayout", Napi::Function::New(env, StatsLayout, "statsLayout"));
  exports.Set("describe", Napi::Function::New(env, Describe, "describe"));
  exports.Set("attach", Napi::Function::New(env, Attach, "attach"));
  exports.Set("secret", Napi::Function::New(env, Secret, "secret"));
  exports.Set("regionView", Napi::Function::New(env, RegionView, "regionView"));
  exports.Set("releaseRegion", Napi::Function::New(env, ReleaseRegion, "releaseRegion"));
  exports.Set("scratch", Napi::Function::New(env, Scratch, "scratch"));
  exports.Set("traceHops", Napi::Function::New(env, TraceHops, "traceHops"));
  exports.Set("takeHops", Napi::Function::New(env, TakeHops, "takeHops"));
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("cudaErrorName", Napi::Function::New(env, CudaErrorName, "cudaErrorName"));
  exports.Set("fakeCuda", Napi::Function::New(env, FakeCuda, "fakeCuda"));
  InitGpu(env, exports);
  return exports;
}

}  // namespace pinpool::binding

static Napi::Object InitPinpool(Napi::Env env, Napi::Object exports) {
  return pinpool::binding::Init(env, exports);
}
NODE_API_MODULE(pinpool, InitPinpool)
