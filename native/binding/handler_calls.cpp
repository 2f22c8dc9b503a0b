// The calls on a handler as a whole: create one, trim it, reserve ahead (a pool), read its
// statistics, describe it, share it with another thread (secret) and attach it there.
#include <pthread.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <string>
#include <vector>

#include "../core/fallback_log.hpp"
#include "../core/lock_cap.hpp"
#include "../handlers/limit_adaptor.hpp"
#include "../handlers/pool/pool_adaptor.hpp"
#include "../handlers/shared/shared_handler.hpp"
#include "../lifetime/transfers.hpp"
#include "handler_factory.hpp"
#include "module_exports.hpp"

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
napi_value CreateHandler(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 2, "createHandler(kind, options)");
  PINPOOL_REQUIRE_STRING(0, kind);
  PINPOOL_REQUIRE_OBJECT(1, options);
  Refusal error;
  Handler* h = make_handler(env, kind, options, error);
  // An unknown kind, a missing upstream, a region that cannot be had; or a getter of `options`
  // threw, and that error stands.
  if (!h && error.code) return throw_error(env, error.code, error.message);
  if (!h) return throw_error(env, code::kInvalidArgument, "binding: " + error.message);
  return wrap_handler(env, h);
}

// trim(handler) -> bytes given back upstream
napi_value Trim(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 1, "trim(handler)");
  PINPOOL_REQUIRE_HANDLE(0, Handler, h);
  return js_number(env, static_cast<double>(h->trim()));
}

// trimReservation(pool) -> bytes given back upstream: trim(), then the reservation's chunks that
// hold no block. Throws for a handler that is not a pool.
napi_value TrimReservation(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 1, "trimReservation(pool)");
  PINPOOL_REQUIRE_HANDLE(0, Handler, h);
  auto* pool = dynamic_cast<PoolAdaptor*>(h);
  if (!pool)
    return throw_error(
        env, code::kInvalidArgument,
        "trim({ reservation: true }): " + h->name() + " is a " + h->kind() + ", not a pool");
  return js_number(env, static_cast<double>(pool->trim_reservation()));
}

// A reserve() under way. It grows the pool on a thread of its own, not on libuv's pool: a miss
// waits for a reservation under way, so a reservation must never queue behind other work (a
// full libuv pool would then hold the waiting thread, the event loop, until it frees up), nor
// behind another reservation that waits for it (pools over pools). Its Promise is settled on the
// JavaScript thread through a thread-safe function, which also keeps the event loop alive
// meanwhile.
struct Reservation {
  PoolAdaptor* pool = nullptr;  // holds a reference
  uint64_t id = 0;              // PoolAdaptor::begin_reservation()'s
  uint64_t bytes = 0;
  bool ok = false;
  pinpool_alloc_info info{};
  // What the growing thread recorded of a refusal, for the error (alloc_error() reads them from
  // the calling thread).
  LockRefusal lock;
  LimitRefusal limit;
  napi_deferred deferred = nullptr;
  napi_threadsafe_function done = nullptr;

  ~Reservation() { pool->release(); }
};

// The JavaScript thread: settles the Promise. `env` is null when the environment is going away
// with the call still queued: nothing to settle then.
void settle_reservation(napi_env env, napi_value, void*, void* data) {
  auto* r = static_cast<Reservation*>(data);
  if (env && r->ok) {
    // Whole chunks: what the pool grew by.
    uint64_t chunk = r->pool->chunk_bytes();
    uint64_t grown = (r->bytes / chunk + (r->bytes % chunk != 0)) * chunk;
    napi_resolve_deferred(env, r->deferred, js_number(env, static_cast<double>(grown)));
  } else if (env) {
    lock_refusal() = r->lock;
    limit_refusal() = r->limit;
    napi_value error = alloc_error(env, r->pool->name().c_str(), r->bytes, r->info.code,
                                   r->info.reason, r->info.cuda_error);
    napi_reject_deferred(env, r->deferred, error);
  }
  delete r;
}

// The reservation's own thread.
void* grow_reservation(void* data) {
  auto* r = static_cast<Reservation*>(data);
  fallback_log().count = 0;
  lock_refusal().set = false;
  limit_refusal().set = false;
  try {
    r->ok = r->pool->reserve(r->id, r->bytes, &r->info);
  } catch (...) {  // out of memory for the pool's own bookkeeping (reserve() ended it)
    r->ok = false;
    fail(&r->info, {PINPOOL_ERR_OUT_OF_MEMORY, Reason::OutOfMemory});
  }
  r->lock = lock_refusal();
  r->limit = limit_refusal();
  napi_threadsafe_function done = r->done;
  // Refused only while the environment goes away: then nobody settles it, and this thread
  // cleans up.
  if (napi_call_threadsafe_function(done, r, napi_tsfn_blocking) != napi_ok) delete r;
  napi_release_threadsafe_function(done, napi_tsfn_release);
  return nullptr;
}

// reserve(pool, bytes) -> Promise<bytes grown>: grows the pool by `bytes` (whole chunks) without
// blocking the event loop (PoolAdaptor::reserve()). Rejects with the allocation's error, the
// pool left as it was. Throws for a handler that is not a pool.
napi_value Reserve(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 2, "reserve(pool, bytes)");
  PINPOOL_REQUIRE_HANDLE(0, Handler, h);
  PINPOOL_REQUIRE_SIZE(1, bytes);
  auto* pool = dynamic_cast<PoolAdaptor*>(h);
  if (!pool)
    return throw_error(env, code::kInvalidArgument,
                       "reserve(): " + h->name() + " is a " + h->kind() + ", not a pool");
  pool->retain();
  auto* r = new Reservation();
  r->pool = pool;
  r->bytes = bytes;
  napi_value promise, name;
  napi_create_promise(env, &r->deferred, &promise);
  napi_create_string_utf8(env, "pinpool.reserve", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, nullptr,
                                      settle_reservation, &r->done) != napi_ok) {
    napi_reject_deferred(env, r->deferred,
                         make_error(env, code::kOutOfMemory, "reserve(): no thread-safe function"));
    delete r;
    return promise;
  }
  // Under way from here, before this call returns: a miss right after it waits for it.
  r->id = pool->begin_reservation();
  pthread_t thread;
  if (pthread_create(&thread, nullptr, grow_reservation, r) == 0) {
    pthread_detach(thread);
  } else {
    pinpool_alloc_info none{};
    pool->reserve(r->id, 0, &none);  // ends it: no miss waits for it any more
    napi_release_threadsafe_function(r->done, napi_tsfn_abort);
    napi_reject_deferred(env, r->deferred,
                         make_error(env, code::kOutOfMemory, "reserve(): no thread to grow on"));
    delete r;
  }
  return promise;
}

// The words of a space-separated list ("limit pinned locked") as a JavaScript array.
napi_value js_words(napi_env env, const char* text) {
  std::vector<std::string> words;
  for (const char* p = text; *p;) {
    const char* end = p;
    while (*end && *end != ' ') end++;
    if (end > p) words.emplace_back(p, end);
    p = *end ? end + 1 : end;
  }
  napi_value a = js_array(env, words.size());
  for (size_t i = 0; i < words.size(); i++)
    set_element(env, a, static_cast<uint32_t>(i), js_string(env, words[i]));
  return a;
}

// statsLayout() -> the statistics table of stats.hpp (PINPOOL_STATS), one record per statistic:
// { name, stem, type, aggregator, kinds (null: every kind), labels, slot, width, reasons (per
// reason statistics: the reason of each slot), bounds (histograms: each bucket's upper bound, in
// seconds, Infinity last), help }. Read once; stats() then fills numbers.
napi_value StatsLayout(napi_env env, napi_callback_info) {
  napi_value rows = js_array(env, std::size(kStatTable));
  uint32_t n = 0;
  for (const StatInfo& s : kStatTable) {
    napi_value o = js_object(env);
    set_named(env, o, "name", js_string(env, s.name));
    set_named(env, o, "stem", js_string(env, s.stem));
    set_named(env, o, "type", js_string(env, s.type));
    set_named(env, o, "aggregator", js_string(env, s.aggregator));
    set_named(env, o, "kinds", *s.kinds ? js_words(env, s.kinds) : js_null(env));
    set_named(env, o, "labels", js_words(env, s.labels));
    set_named(env, o, "slot", js_number(env, s.slot));
    set_named(env, o, "width", js_number(env, s.width));
    if (std::string(s.type) == "histogram") {
      napi_value bounds = js_array(env, kGrowthBucketCount);
      for (int i = 0; i < kGrowthBucketCount; i++)
        set_element(env, bounds, static_cast<uint32_t>(i),
                    js_number(env, i < kGrowthBucketCount - 1 ? kGrowthBounds[i] : INFINITY));
      set_named(env, o, "bounds", bounds);
    } else if (s.width == kReasonCount) {
      napi_value reasons = js_array(env, kReasonCount);
      for (int i = 0; i < kReasonCount; i++)
        set_element(env, reasons, static_cast<uint32_t>(i),
                    js_string(env, reason_text(static_cast<Reason>(i))));
      set_named(env, o, "reasons", reasons);
    }
    set_named(env, o, "help", js_string(env, s.help));
    set_element(env, rows, n++, o);
  }
  return rows;
}

// stats(handler, Float64Array): fills the array's slots as statsLayout() places them, each
// value multiplied by its statistic's scale. Numbers, not an object: a scrape reads dozens of
// handlers, and building objects in C++ costs more than the reading.
napi_value GetStats(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 2, "stats(handler, Float64Array)");
  PINPOOL_REQUIRE_HANDLE(0, Handler, h);
  PINPOOL_REQUIRE_FLOAT64_ARRAY(1, out);
  uint64_t values[kStatCount];
  h->read_stats(values);
  size_t n = std::min<size_t>(out.length, kStatCount);
  for (const StatInfo& s : kStatTable)
    for (int i = 0; i < s.width && static_cast<size_t>(s.slot + i) < n; i++)
      out.data[s.slot + i] = static_cast<double>(values[s.slot + i]) * s.scale;
  return nullptr;
}

// describe(handler | id) -> { id, name, kind } or null when no such handler is alive (or the
// value names none)
napi_value Describe(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 1, "describe(handler | id)");
  Handler* h = nullptr;
  bool counted = false;
  size_t id;
  if (!get_handle(env, argv[0], &h) && get_size(env, argv[0], &id)) {
    h = Handler::find(id);
    counted = h != nullptr;
  }
  if (!h) return js_null(env);
  napi_value o = js_object(env);
  set_named(env, o, "id", js_number(env, static_cast<double>(h->id())));
  set_named(env, o, "name", js_string(env, h->name()));
  set_named(env, o, "kind", js_string(env, h->kind()));
  if (counted) h->release();
  return o;
}

// secret(handler) -> { secret: the handler's secret as hex digits, process: the process key }:
// what a share() token carries besides the id
napi_value Secret(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 1, "secret(handler)");
  PINPOOL_REQUIRE_HANDLE(0, Handler, h);
  napi_value result = js_object(env);
  set_named(env, result, "secret", js_string(env, secret_hex(h)));
  set_named(env, result, "process", js_string(env, transfers::process_key()));
  return result;
}

// attach(id, secret, process) -> External with a new reference, or null when the handler is
// gone; a secret or process that does not match is refused (a guessed or foreign token)
napi_value Attach(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 3, "attach(id, secret, process)");
  PINPOOL_REQUIRE_SIZE(0, id);
  PINPOOL_REQUIRE_STRING(1, secret);
  PINPOOL_REQUIRE_STRING(2, process);
  if (process != transfers::process_key())
    return throw_error(env, code::kInvalidArgument,
                       "binding: attach: the token was made in another process");
  Handler* h = Handler::find(id);
  if (!h) return js_null(env);
  if (secret != secret_hex(h)) {
    h->release();
    return throw_error(env, code::kInvalidArgument,
                       "binding: attach: not a token from handler.share()");
  }
  return wrap_handler(env, h);
}

// region(handler) -> { region, secret, bytes, pageLocked, stats } for a shared() leaf, else
// null. stats: the region's (shared::RegionStats), read now under its lock, after taking back
// the blocks of processes that died.
napi_value Region(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 1, "region(handler)");
  PINPOOL_REQUIRE_HANDLE(0, Handler, h);
  auto* shared = dynamic_cast<SharedHandler*>(h);
  if (!shared) return js_null(env);
  shared::Region& r = shared->region();
  const shared::RegionStats s = r.stats();
  napi_value stats = js_object(env);
  auto number = [&](const char* key, uint64_t v) {
    set_named(env, stats, key, js_number(env, static_cast<double>(v)));
  };
  number("bytes", s.bytes);
  number("bytesInUse", s.bytes_in_use);
  number("blocksInUse", s.blocks_in_use);
  number("blocksInFlight", s.blocks_in_flight);
  number("recoveredBlocks", s.recovered_blocks);
  number("recoveredBytes", s.recovered_bytes);
  number("repairs", s.repairs);
  number("processes", s.processes);
  number("bytesHere", s.bytes_here);
  number("blocksHere", s.blocks_here);
  number("givenHere", s.given_here);
  napi_value result = js_object(env);
  set_named(env, result, "region", js_string(env, r.name()));
  set_named(env, result, "secret", js_string(env, r.secret()));
  set_named(env, result, "bytes", js_number(env, static_cast<double>(r.data_bytes())));
  set_named(env, result, "pageLocked", js_string(env, shared->page_locked()));
  set_named(env, result, "stats", stats);
  return result;
}

}  // namespace

void ExportHandlerCalls(napi_env env, napi_value exports) {
  export_functions(env, exports,
                   {{"createHandler", guarded<CreateHandler>},
                    {"trim", guarded<Trim>},
                    {"trimReservation", guarded<TrimReservation>},
                    {"reserve", guarded<Reserve>},
                    {"stats", guarded<GetStats>},
                    {"statsLayout", guarded<StatsLayout>},
                    {"describe", guarded<Describe>},
                    {"secret", guarded<Secret>},
                    {"attach", guarded<Attach>},
                    {"region", guarded<Region>}});
}

}  // namespace pinpool::binding
