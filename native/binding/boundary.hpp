// The one typed boundary between C++ and JavaScript (design decision 10).
//
// - Native objects reach JavaScript only as type-tagged externals (napi_type_tag_object, part
//   of Node-API 8), and come back only through unwrap(), which checks the tag: no JavaScript
//   value can stand in for a native object of another kind (a stream for a handler, a plain
//   object for anything).
// - Native code throws PinpoolError itself: JavaScript hands the class over once at start-up
//   (setErrorClass), so every failure, from any layer, carries a stable `code`.
// - Argument checks are one family: each get_* fails (returns false) on a value of the wrong
//   type, and the caller throws once with the call's signature as the message.
#pragma once

#include <node_api.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

namespace pinpool::binding {

// The kinds of native object JavaScript may hold.
enum class Tag { Handler, Stream, RegionPin, Registration, ThreadCache, ScopeCell };

// Wraps `data` as an external of kind `tag`; `finalize` runs when it is collected.
napi_value wrap_tagged(napi_env env, void* data, Tag tag, napi_finalize finalize);
// The data behind an external of kind `tag`, or nullptr for any other value.
void* unwrap_tagged(napi_env env, napi_value value, Tag tag);

// Error codes, as PinpoolError spells them (src/errors.ts ErrorCode, exported from here too).
namespace code {
inline constexpr const char* kInvalidArgument = "ERR_PINPOOL_INVALID_ARGUMENT";
inline constexpr const char* kOutOfMemory = "ERR_PINPOOL_OUT_OF_MEMORY";
inline constexpr const char* kDoubleFree = "ERR_PINPOOL_DOUBLE_FREE";
inline constexpr const char* kReleased = "ERR_PINPOOL_RELEASED";
inline constexpr const char* kUnavailable = "ERR_PINPOOL_UNAVAILABLE";
inline constexpr const char* kCuda = "ERR_PINPOOL_CUDA";
}  // namespace code

// What a PinpoolError may say besides its code and message (src/errors.ts PinpoolErrorDetails).
struct ErrorDetails {
  const char* reason = nullptr;   // one word a program can test: "limit", "no-cuda" ...
  const char* handler = nullptr;  // the handler that reported it
  int cuda_error = 0;             // the CUresult behind it, or 0
  double bytes = -1;              // a page-lock cap's refusal: the bytes asked, else -1
  double cap_bytes = -1;          // and the cap that refused them, in bytes, else -1
};

// `new PinpoolError(code, "pinpool: " + message)` with `details` set on it (before
// setErrorClass has run: a plain Error with the same code).
napi_value make_error(napi_env env, const char* code, const std::string& message,
                      const ErrorDetails& details = {});
// Throws make_error(...); returns nullptr for the caller to return.
napi_value throw_error(napi_env env, const char* code, const std::string& message,
                       const ErrorDetails& details = {});
// The error for a failed CUDA call `what` returning `rc`: ERR_PINPOOL_OUT_OF_MEMORY,
// ERR_PINPOOL_UNAVAILABLE (no driver, no such device) or ERR_PINPOOL_CUDA, with the CUresult's
// number and name.
napi_value cuda_error(napi_env env, int rc, const std::string& what);
// The error for an allocation of `bytes` that `handler` refused, from what alloc reported. A
// page-lock cap's refusal (reason "mlock", core/lock_cap.hpp) also says the cap, its source and
// the bytes already locked.
napi_value alloc_error(napi_env env, const char* handler, size_t bytes, int status,
                       const char* reason, int cuda_error);
// The code PinpoolError uses for a pinpool_status_code (include/pinpool.h).
const char* status_code(int status);

// constants() -> the tables JavaScript reads instead of repeating them: error codes, the
// scratch slots, the pool's limits, managed-memory advice, failure reasons.
napi_value Constants(napi_env env, napi_callback_info info);

// setErrorClass(PinpoolError): called once per environment by src/native.ts.
napi_value SetErrorClass(napi_env env, napi_callback_info info);

// Argument readers: false when the value is not of the type asked for. Inline: alloc() and
// free() read four or five each.
inline bool get_number(napi_env env, napi_value v, double* out) {
  return napi_get_value_double(env, v, out) == napi_ok && std::isfinite(*out);
}
// A byte count, offset or alignment: an integer from 0 to 2^53.
inline bool get_size(napi_env env, napi_value v, size_t* out) {
  double d;
  if (!get_number(env, v, &d) || d < 0 || d > 9007199254740992.0 || d != std::floor(d)) return false;
  *out = static_cast<size_t>(d);
  return true;
}
// An address as JavaScript carries it (a positive integer below 2^53).
inline bool get_address(napi_env env, napi_value v, void** out) {
  size_t a;
  if (!get_size(env, v, &a) || a == 0) return false;
  *out = reinterpret_cast<void*>(a);
  return true;
}
inline bool get_bool(napi_env env, napi_value v, bool* out) {
  return napi_get_value_bool(env, v, out) == napi_ok;
}

inline double address_value(const void* p) { return static_cast<double>(reinterpret_cast<uintptr_t>(p)); }

}  // namespace pinpool::binding
