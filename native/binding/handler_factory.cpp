#include "handler_factory.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "boundary.hpp"

#include "../handlers/fallback_adaptor.hpp"
#include "../handlers/file_mapping_handler.hpp"
#include "../handlers/limit_adaptor.hpp"
#include "../handlers/locked_handler.hpp"
#include "../handlers/managed_handler.hpp"
#include "../handlers/pageable_handler.hpp"
#include "../handlers/pinned_handler.hpp"
#include "../handlers/pool/pool_adaptor.hpp"
#include "../handlers/shared/shared_handler.hpp"
#include "../support/kernel.hpp"

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
  GrowthOptions growth;                                // locked, pinned: how they grow
  int numa_node = PinnedOptions::kDeviceNode;          // locked: -1 for this
  uint64_t chunk_bytes = GrowthOptions{}.chunk_bytes;  // locked: per mlock; pool: per growth
  SharedOptions shared;                                // shared: the region
};

// Reads options[key] once each, as the type the key takes; a key of another type keeps its
// default. A read that throws (a getter) stops the reading, the exception pending.
class OptionsReader {
 public:
  OptionsReader(napi_env env, napi_value object) : env_(env), object_(object) {}
  bool ok() const { return ok_; }
  bool string(const char* key, std::string* out) {
    napi_value v = get(key);
    return v && get_string(env_, v, out);
  }
  void int32(const char* key, int* out) {
    int32_t i;
    if (napi_value v = get(key); v && get_int32(env_, v, &i)) *out = i;
  }
  void boolean(const char* key, bool* out) {
    if (napi_value v = get(key)) get_bool(env_, v, out);
  }
  void number(const char* key, double* out) {
    if (napi_value v = get(key)) get_any_number(env_, v, out);
  }
  // A byte count; numbers above 2^53 arrive as Infinity meaning "no bound".
  void bytes(const char* key, uint64_t* out) {
    double d;
    napi_value v = get(key);
    if (!v || !get_any_number(env_, v, &d)) return;
    if (std::isinf(d) && d > 0)
      *out = UINT64_MAX;
    else if (d >= 0 && d < 18446744073709551616.0)
      *out = static_cast<uint64_t>(d);
  }
  // A handler's external (tagged as one: boundary.hpp), or nullptr.
  pinpool_handler* handler(const char* key) {
    Handler* h = nullptr;
    napi_value v = get(key);
    return v && get_handle(env_, v, &h) ? h->abi() : nullptr;
  }

 private:
  napi_value get(const char* key) {
    napi_value v = nullptr;
    if (ok_ && napi_get_named_property(env_, object_, key, &v) != napi_ok) ok_ = false;
    return ok_ ? v : nullptr;
  }
  napi_env env_;
  napi_value object_;
  bool ok_ = true;
};

bool read(napi_env env, napi_value object, Options* r) {
  OptionsReader o(env, object);
  o.string("name", &r->name);
  o.int32("device", &r->device);
  o.boolean("portable", &r->portable);
  o.boolean("mapped", &r->mapped);
  o.boolean("writeCombined", &r->write_combined);
  o.int32("fd", &r->fd);
  o.boolean("writable", &r->writable);
  o.boolean("register", &r->register_memory);
  std::string strategy;
  if (o.string("strategy", &strategy)) r->register_memory = strategy == "register";
  r->upstream = o.handler("upstream");
  r->primary = o.handler("primary");
  r->secondary = o.handler("secondary");
  o.bytes("minBytes", &r->min_bytes);
  o.bytes("maxBytes", &r->max_bytes);
  o.bytes("maxCachedBytes", &r->max_cached_bytes);
  o.number("cacheRatio", &r->cache_ratio);
  o.boolean("hugePages", &r->growth.huge_pages);
  int threads = 0;
  o.int32("touchThreads", &threads);
  r->growth.touch_threads = threads > 0 ? static_cast<unsigned>(threads) : 0;
  o.int32("numaNode", &r->numa_node);
  o.bytes("chunkBytes", &r->chunk_bytes);
  r->growth.chunk_bytes = static_cast<size_t>(std::min<uint64_t>(r->chunk_bytes, SIZE_MAX));
  o.string("region", &r->shared.region);
  o.string("secret", &r->shared.secret);
  uint64_t region_bytes = 0;
  o.bytes("bytes", &region_bytes);
  r->shared.bytes = static_cast<size_t>(std::min<uint64_t>(region_bytes, SIZE_MAX));
  o.boolean("pageLock", &r->shared.page_lock);
  r->shared.device = r->device;
  return o.ok();
}

// The kinds, in the order constants().kinds lists them: each with how it is made from its
// options. This table is the one list of kinds (src/boundary/native.ts checks its HandlerKind
// against it at load); a kind's class spells the same name (Handler::kind()).
using Make = Handler* (*)(const Options& o, const std::string& kind, Refusal& error);
struct Kind {
  const char* name;
  bool leaf;  // hands out its own memory; else an adaptor, made over upstream handlers
  Make make;
};

Handler* with_upstream(const Options& o, const std::string& kind, Refusal& error,
                       Handler* (*make)(const Options&)) {
  if (!o.upstream) {
    error.message = kind + " needs an upstream handler";
    return nullptr;
  }
  return make(o);
}

// A node the machine has, or -1 / the device's default; else says why in `error`.
bool node_exists(const Options& o, Refusal& error) {
  if (o.numa_node < 0 || o.numa_node < kernel().node_count()) return true;
  error.message = "numaNode " + std::to_string(o.numa_node) + ": this machine has " +
                  std::to_string(kernel().node_count()) + " NUMA node(s)";
  return false;
}

}  // namespace

void shared_refusal(const SharedOptions& o, int e, Refusal& error) {
  const std::string region = "shared region '" + o.region + "'";
  error.code = code::kInvalidArgument;
  switch (e) {
    case EEXIST:
      error.message = region + " exists already (open it with its secret)";
      break;
    case ENOENT:
      error.code = code::kUnavailable;
      error.message = region + " does not exist (no process has it open)";
      break;
    case EACCES:
    case EPERM:
      error.message = region + ": not this secret, or a file of another user";
      break;
    case EMFILE:
      error.code = code::kUnavailable;
      error.message =
          region + ": " + std::to_string(shared::kMaxProcesses) + " processes have it open already";
      break;
    case ENOSPC:
    case ENOMEM:
    case EFBIG:
      error.code = code::kOutOfMemory;
      error.message = region + ": no room for " + std::to_string(o.bytes) + " bytes in /dev/shm (" +
                      std::strerror(e) + ")";
      break;
    case EPROTO:
      error.message = region + ": the file is no pinpool region (or of another version)";
      break;
    default:
      if (e != EINVAL) error.code = code::kUnavailable;
      error.message = region + ": " + std::strerror(e);
  }
}

namespace {

const Kind kKinds[] = {
    {"pinned", true,
     [](const Options& o, const std::string&, Refusal& error) -> Handler* {
       if (!node_exists(o, error)) return nullptr;
       return new PinnedHandler(o.name, {o.device, o.portable, o.mapped, o.write_combined,
                                         o.register_memory, o.growth, o.numa_node});
     }},
    {"managed", true,
     [](const Options& o, const std::string&, Refusal&) -> Handler* {
       return new ManagedHandler(o.name, o.device);
     }},
    {"locked", true,
     [](const Options& o, const std::string&, Refusal& error) -> Handler* {
       if (!node_exists(o, error)) return nullptr;
       GrowthOptions growth = o.growth;
       growth.numa_node = o.numa_node == PinnedOptions::kDeviceNode ? -1 : o.numa_node;
       return new LockedHandler(o.name, o.max_bytes, growth);
     }},
    {"pageable", true,
     [](const Options& o, const std::string&, Refusal&) -> Handler* {
       return new PageableHandler(o.name);
     }},
    {"file", true,
     [](const Options& o, const std::string&, Refusal&) -> Handler* {
       return new FileMappingHandler(o.name, {o.fd, o.writable, o.register_memory, o.device});
     }},
    {"shared", true,
     [](const Options& o, const std::string&, Refusal& error) -> Handler* {
       int e = 0;
       if (Handler* h = SharedHandler::open(o.name, o.shared, &e)) return h;
       shared_refusal(o.shared, e, error);
       return nullptr;
     }},
    {"pool", false,
     [](const Options& o, const std::string& kind, Refusal& error) {
       return with_upstream(o, kind, error, [](const Options& u) -> Handler* {
         return new PoolAdaptor(u.name, u.upstream,
                                {u.max_cached_bytes, u.cache_ratio, u.growth.chunk_bytes});
       });
     }},
    {"fallback", false,
     [](const Options& o, const std::string&, Refusal& error) -> Handler* {
       if (!o.primary || !o.secondary) {
         error.message = "fallback needs a primary and a secondary handler";
         return nullptr;
       }
       return new FallbackAdaptor(o.name, o.primary, o.secondary, o.min_bytes, o.max_bytes);
     }},
    {"limit", false,
     [](const Options& o, const std::string& kind, Refusal& error) {
       return with_upstream(o, kind, error, [](const Options& u) -> Handler* {
         return new LimitAdaptor(u.name, u.upstream, u.max_bytes);
       });
     }},
};

}  // namespace

std::vector<HandlerKind> handler_kinds() {
  std::vector<HandlerKind> kinds;
  for (const Kind& k : kKinds) kinds.push_back({k.name, k.leaf});
  return kinds;
}

Handler* make_handler(napi_env env, const std::string& kind, napi_value options, Refusal& error) {
  Options o;
  if (!read(env, options, &o)) return nullptr;
  if (o.name.empty()) o.name = kind;
  for (const Kind& k : kKinds)
    if (kind == k.name) return k.make(o, kind, error);
  // Unknown kinds are an error, never a default (RMM's lesson).
  error.message = "unknown handler kind '" + kind + "'";
  return nullptr;
}

}  // namespace pinpool::binding
