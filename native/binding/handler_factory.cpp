#include "handler_factory.hpp"

#include <cmath>

#include "../handlers/fallback_adaptor.hpp"
#include "../handlers/file_mapping_handler.hpp"
#include "../handlers/limit_adaptor.hpp"
#include "../handlers/locked_handler.hpp"
#include "../handlers/managed_handler.hpp"
#include "../handlers/pageable_handler.hpp"
#include "../handlers/pinned_handler.hpp"
#include "../handlers/pool/pool_adaptor.hpp"

namespace pinpool::binding {
namespace {

// The options every kind may carry, copied out of JavaScript once.
struct Options {
  std::string name;
  int device = 0;
  bool portable = true, mapped = false, write_combined = false, register_memory = false;
  int fd = -1;  // file: the open file to map
  bool writable = false;
  pinpool_handler* upstream = nullptr;
  pinpool_handler* primary = nullptr;
  pinpool_handler* secondary = nullptr;
  uint64_t min_bytes = 0, max_bytes = UINT64_MAX, max_cached_bytes = uint64_t{1} << 30;
  double cache_ratio = 0.1;
};

pinpool_handler* handler_of(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsExternal() ? v.As<Napi::External<Handler>>().Data()->abi() : nullptr;
}

// Numbers above 2^53 arrive as Infinity meaning "no bound".
uint64_t bytes_of(const Napi::Object& o, const char* key, uint64_t fallback) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) return fallback;
  double d = v.As<Napi::Number>().DoubleValue();
  if (std::isinf(d) && d > 0) return UINT64_MAX;
  return d >= 0 && d < 18446744073709551616.0 ? static_cast<uint64_t>(d) : fallback;
}

Options read(const Napi::Object& o) {
  Options r;
  if (o.Get("name").IsString()) r.name = o.Get("name").As<Napi::String>();
  if (o.Get("device").IsNumber()) r.device = o.Get("device").As<Napi::Number>().Int32Value();
  if (o.Get("portable").IsBoolean()) r.portable = o.Get("portable").As<Napi::Boolean>();
  if (o.Get("mapped").IsBoolean()) r.mapped = o.Get("mapped").As<Napi::Boolean>();
  if (o.Get("writeCombined").IsBoolean())
    r.write_combined = o.Get("writeCombined").As<Napi::Boolean>();
  if (o.Get("fd").IsNumber()) r.fd = o.Get("fd").As<Napi::Number>().Int32Value();
  if (o.Get("writable").IsBoolean()) r.writable = o.Get("writable").As<Napi::Boolean>();
  if (o.Get("register").IsBoolean()) r.register_memory = o.Get("register").As<Napi::Boolean>();
  if (o.Get("strategy").IsString())
    r.register_memory = o.Get("strategy").As<Napi::String>().Utf8Value() == "register";
  r.upstream = handler_of(o, "upstream");
  r.primary = handler_of(o, "primary");
  r.secondary = handler_of(o, "secondary");
  r.min_bytes = bytes_of(o, "minBytes", 0);
  r.max_bytes = bytes_of(o, "maxBytes", UINT64_MAX);
  r.max_cached_bytes = bytes_of(o, "maxCachedBytes", r.max_cached_bytes);
  if (o.Get("cacheRatio").IsNumber()) r.cache_ratio = o.Get("cacheRatio").As<Napi::Number>().DoubleValue();
  return r;
}

}  // namespace

Handler* make_handler(const std::string& kind, const Napi::Object& options, std::string& error) {
  Options o = read(options);
  if (o.name.empty()) o.name = kind;
  if (kind == "pageable") return new PageableHandler(o.name);
  if (kind == "locked") return new LockedHandler(o.name, o.max_bytes);
  if (kind == "pinned")
    return new PinnedHandler(o.name,
                             {o.device, o.portable, o.mapped, o.write_combined, o.register_memory});
  if (kind == "managed") return new ManagedHandler(o.name, o.device);
  if (kind == "file")
    return new FileMappingHandler(o.name, {o.fd, o.writable, o.register_memory, o.device});
  if (kind == "pool" || kind == "limit") {
    if (!o.upstream) {
      error = kind + " needs an upstream handler";
      return nullptr;
    }
    if (kind == "pool")
      return new PoolAdaptor(o.name, o.upstream, {o.max_cached_bytes, o.cache_ratio});
    return new LimitAdaptor(o.name, o.upstream, o.max_bytes);
  }
  if (kind == "fallback") {
    if (!o.primary || !o.secondary) {
      error = "fallback needs a primary and a secondary handler";
      return nullptr;
    }
    return new FallbackAdaptor(o.name, o.primary, o.secondary, o.min_bytes, o.max_bytes);
  }
  // Unknown kinds are an error, never a default (RMM's lesson).
  error = "unknown handler kind '" + kind + "'";
  return nullptr;
}

}  // namespace pinpool::binding
