// The calls on a handler as a whole: create one, trim it, read its statistics, describe it,
// share it with another thread (secret) and attach it there.
#include <algorithm>
#include <cstdio>
#include <iterator>
#include <string>
#include <vector>

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
  std::string error;
  Handler* h = make_handler(env, kind, options, error);
  // An unknown kind, a missing upstream; or a getter of `options` threw, and that error stands.
  if (!h) return throw_error(env, code::kInvalidArgument, "binding: " + error);
  return wrap_handler(env, h);
}

// trim(handler) -> bytes given back upstream
napi_value Trim(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 1, "trim(handler)");
  PINPOOL_REQUIRE_HANDLE(0, Handler, h);
  return js_number(env, static_cast<double>(h->trim()));
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
// reason statistics: the reason of each slot), help }. Read once; stats() then fills numbers.
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
    if (s.width == kReasonCount) {
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

}  // namespace

void ExportHandlerCalls(napi_env env, napi_value exports) {
  export_functions(env, exports,
                   {{"createHandler", guarded<CreateHandler>},
                    {"trim", guarded<Trim>},
                    {"stats", guarded<GetStats>},
                    {"statsLayout", guarded<StatsLayout>},
                    {"describe", guarded<Describe>},
                    {"secret", guarded<Secret>},
                    {"attach", guarded<Attach>}});
}

}  // namespace pinpool::binding
