// The one typed boundary between C++ and JavaScript (design decision 10).
//
// - Native objects reach JavaScript only as type-tagged externals (napi_type_tag_object, part
//   of Node-API 8), and come back only through unwrap_tagged(), which checks the tag: no
//   JavaScript value can stand in for a native object of another kind (a stream for a handler,
//   a plain object for anything).
// - Native code throws PinpoolError itself: JavaScript hands the class over once at start-up
//   (setErrorClass), so every failure, from any layer, carries a stable `code`.
// - Arguments are read and checked by one macro family, PINPOOL_ARGS and PINPOOL_REQUIRE_*
//   (below, in better-sqlite3's REQUIRE_ARGUMENT_* manner): a value of the wrong type throws
//   once, with the call's signature as the message.
// - No C++ exception crosses into JavaScript: every exported function runs inside guarded().
#pragma once

#include <node_api.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <memory>
#include <new>
#include <string>

typedef struct CUstream_st* CUstream;  // as cuda/cuda_types.h declares it

namespace pinpool {
class Handler;
class ScopeCell;
}  // namespace pinpool

namespace pinpool::binding {

// The kinds of native object JavaScript may hold.
enum class Tag { Handler, Stream, SlabLease, Registration, ThreadCache, ScopeCell };

// Wraps `data` as an external of kind `tag`; `finalize` runs when it is collected.
napi_value wrap_tagged(napi_env env, void* data, Tag tag, napi_finalize finalize);
// The data behind an external of kind `tag`, or nullptr for any other value.
void* unwrap_tagged(napi_env env, napi_value value, Tag tag);

// The C++ type behind each kind: an external of kind TagOf<T>::kTag holds a T*.
struct ThreadCache;
struct SlabLease;
struct Registration;
struct OwnedStream;
using SlabLeaseRef = std::shared_ptr<SlabLease>;  // a slab view's lease (slab_views.cpp)
// The tag of each native type JavaScript may hold, for PINPOOL_REQUIRE_HANDLE.
template <typename T>
struct TagOf;
#define PINPOOL_TAG_OF(Type, tag)         \
  template <>                             \
  struct TagOf<Type> {                    \
    static constexpr Tag kTag = Tag::tag; \
  };
PINPOOL_TAG_OF(Handler, Handler)
PINPOOL_TAG_OF(OwnedStream, Stream)
PINPOOL_TAG_OF(SlabLeaseRef, SlabLease)
PINPOOL_TAG_OF(Registration, Registration)
PINPOOL_TAG_OF(ThreadCache, ThreadCache)
PINPOOL_TAG_OF(ScopeCell, ScopeCell)
#undef PINPOOL_TAG_OF

// Error codes, as PinpoolError spells them (src/boundary/errors.ts ErrorCode, exported from here
// too).
namespace code {
inline constexpr const char* kInvalidArgument = "ERR_PINPOOL_INVALID_ARGUMENT";
inline constexpr const char* kOutOfMemory = "ERR_PINPOOL_OUT_OF_MEMORY";
inline constexpr const char* kDoubleFree = "ERR_PINPOOL_DOUBLE_FREE";
inline constexpr const char* kReleased = "ERR_PINPOOL_RELEASED";
inline constexpr const char* kUnavailable = "ERR_PINPOOL_UNAVAILABLE";
inline constexpr const char* kCuda = "ERR_PINPOOL_CUDA";
}  // namespace code

// What a PinpoolError may say besides its code and message (src/boundary/errors.ts
// PinpoolErrorDetails).
struct ErrorDetails {
  const char* reason = nullptr;   // one word a program can test: "limit", "no-cuda" ...
  const char* handler = nullptr;  // the handler that reported it
  int cuda_error = 0;             // the CUresult behind it, or 0
  double bytes = -1;              // a cap's refusal (page-lock, limit): the bytes asked, else -1
  double cap_bytes = -1;          // the cap that refused them, in bytes, else -1
  double bytes_in_use = -1;       // and what the cap held already, in bytes, else -1
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
// the bytes already locked; a limit's (reason "limit", handlers/limit_adaptor.hpp) its cap and
// the bytes in use through it.
napi_value alloc_error(napi_env env, const char* handler, size_t bytes, int status,
                       const char* reason, int cuda_error);
// The code PinpoolError uses for a pinpool_status_code (include/pinpool.h).
const char* status_code(int status);

inline double address_value(const void* p) {
  return static_cast<double>(reinterpret_cast<uintptr_t>(p));
}

// ---- Argument checks ------------------------------------------------------------------------
//
// Every binding function reads its arguments one way (better-sqlite3's REQUIRE_ARGUMENT_*):
//
//   // leased(address, bytes) -> bool
//   napi_value Leased(napi_env env, napi_callback_info info) {
//     PINPOOL_ARGS(env, info, 2, "leased(address, bytes)");
//     PINPOOL_REQUIRE_ADDRESS(0, ptr);
//     PINPOOL_REQUIRE_SIZE(1, bytes);
//     ...
//
// PINPOOL_ARGS(env, info, n, signature) declares `argc` (how many arguments were passed),
// `argv` (n of them; undefined past argc), `function_data` (the data the function was made
// with) and `call` (the message its checks throw: "binding: " + signature).
// PINPOOL_REQUIRE_<TYPE>(i, var) declares `var` and reads argv[i] into it; a value of another
// type throws ERR_PINPOOL_INVALID_ARGUMENT with call's message and returns from the enclosing
// function: nullptr (undefined to JavaScript), or false from a helper that returns bool.
// PINPOOL_REQUIRE(cond) does the same for what a signature implies beyond a type (a count of
// arguments, an enum's range). Whether a value names something live (a block this thread owns,
// a token of this process) is the function's own error, with its own message.
// A helper that checks arguments for a binding function declares its own `call` (the message
// differs) and takes `argv`.

// What a failed check returns: nullptr from a function returning a pointer (a napi_value),
// false from one returning bool.
struct Failed {
  template <typename T>
  operator T*() const {
    return nullptr;
  }
  operator bool() const { return false; }
};

// The message a call's argument checks throw.
struct Call {
  napi_env env;
  const char* message;  // "binding: alloc(handler, bytes, alignment, view)"
  // Throws ERR_PINPOOL_INVALID_ARGUMENT with `message`.
  Failed invalid() const {
    throw_error(env, code::kInvalidArgument, message);
    return {};
  }
};

#define PINPOOL_ARGS(env, info, n, signature) \
  PINPOOL_ARGS_MESSAGE(env, info, n, "binding: " signature)
// The same with the whole message given (setErrorClass's predates the "binding: ").
#define PINPOOL_ARGS_MESSAGE(env, info, n, message)                      \
  size_t argc = (n);                                                     \
  [[maybe_unused]] napi_value argv[(n) > 0 ? (n) : 1];                   \
  [[maybe_unused]] void* function_data = nullptr;                        \
  napi_get_cb_info((env), (info), &argc, argv, nullptr, &function_data); \
  [[maybe_unused]] const ::pinpool::binding::Call call { (env), message }

#define PINPOOL_REQUIRE(cond)           \
  do {                                  \
    if (!(cond)) return call.invalid(); \
  } while (0)

// argv[i] read by `read(env, value, &var)`, which is false for a value of the wrong type.
#define PINPOOL_REQUIRE_ARG(i, read, Type, var) \
  Type var{};                                   \
  if (!read(call.env, argv[i], &var)) return call.invalid()

// double: a finite number.
#define PINPOOL_REQUIRE_NUMBER(i, var) \
  PINPOOL_REQUIRE_ARG(i, ::pinpool::binding::get_number, double, var)
// double: any number, NaN and the infinities too.
#define PINPOOL_REQUIRE_ANY_NUMBER(i, var) \
  PINPOOL_REQUIRE_ARG(i, ::pinpool::binding::get_any_number, double, var)
// size_t: a byte count, offset or alignment (an integer from 0 to 2^53).
#define PINPOOL_REQUIRE_SIZE(i, var) \
  PINPOOL_REQUIRE_ARG(i, ::pinpool::binding::get_size, size_t, var)
// void*: an address (an integer from 1 to 2^53).
#define PINPOOL_REQUIRE_ADDRESS(i, var) \
  PINPOOL_REQUIRE_ARG(i, ::pinpool::binding::get_address, void*, var)
// int32_t and int64_t: any number, converted as Node-API converts it (NaN is 0).
#define PINPOOL_REQUIRE_INT32(i, var) \
  PINPOOL_REQUIRE_ARG(i, ::pinpool::binding::get_int32, int32_t, var)
#define PINPOOL_REQUIRE_INT64(i, var) \
  PINPOOL_REQUIRE_ARG(i, ::pinpool::binding::get_int64, int64_t, var)
// bool: a boolean (not a truthy value).
#define PINPOOL_REQUIRE_BOOL(i, var) PINPOOL_REQUIRE_ARG(i, ::pinpool::binding::get_bool, bool, var)
// std::string: a string, as UTF-8.
#define PINPOOL_REQUIRE_STRING(i, var) \
  PINPOOL_REQUIRE_ARG(i, ::pinpool::binding::get_string, std::string, var)
// napi_value: an object (a function is one), a function, an ArrayBuffer.
#define PINPOOL_REQUIRE_OBJECT(i, var) \
  PINPOOL_REQUIRE_ARG(i, ::pinpool::binding::get_object, napi_value, var)
#define PINPOOL_REQUIRE_FUNCTION(i, var) \
  PINPOOL_REQUIRE_ARG(i, ::pinpool::binding::get_function, napi_value, var)
#define PINPOOL_REQUIRE_ARRAYBUFFER(i, var) \
  PINPOOL_REQUIRE_ARG(i, ::pinpool::binding::get_arraybuffer, napi_value, var)
// napi_value: a function, or nullptr for undefined.
#define PINPOOL_REQUIRE_FUNCTION_OR_UNDEFINED(i, var) \
  PINPOOL_REQUIRE_ARG(i, ::pinpool::binding::get_function_or_undefined, napi_value, var)
// Float64s: a Float64Array's elements.
#define PINPOOL_REQUIRE_FLOAT64_ARRAY(i, var) \
  PINPOOL_REQUIRE_ARG(i, ::pinpool::binding::get_float64_array, ::pinpool::binding::Float64s, var)
// Uint8s: a Uint8Array's bytes.
#define PINPOOL_REQUIRE_UINT8_ARRAY(i, var) \
  PINPOOL_REQUIRE_ARG(i, ::pinpool::binding::get_uint8_array, ::pinpool::binding::Uint8s, var)
// Type*: the native object of an external tagged as TagOf<Type>'s kind.
#define PINPOOL_REQUIRE_HANDLE(i, Type, var) \
  PINPOOL_REQUIRE_ARG(i, ::pinpool::binding::get_handle<Type>, Type*, var)
// Type*: the same, or nullptr for undefined.
#define PINPOOL_REQUIRE_HANDLE_OR_UNDEFINED(i, Type, var) \
  PINPOOL_REQUIRE_ARG(i, ::pinpool::binding::get_handle_or_undefined<Type>, Type*, var)
// Handler*: a handler's external, through the Instance `inst`'s cache of handlers it checked
// lately (instance.hpp): the hot path's way, where the tag check costs more than a pool hit.
#define PINPOOL_REQUIRE_HANDLER(i, inst, var)                   \
  ::pinpool::Handler* var = (inst)->handler(call.env, argv[i]); \
  if (!var) return call.invalid()

// The readers behind them: false when the value is not of the type asked for. Inline: alloc()
// and free() read four or five each.
inline bool get_any_number(napi_env env, napi_value v, double* out) {
  return napi_get_value_double(env, v, out) == napi_ok;
}
inline bool get_number(napi_env env, napi_value v, double* out) {
  return napi_get_value_double(env, v, out) == napi_ok && std::isfinite(*out);
}
inline bool get_size(napi_env env, napi_value v, size_t* out) {
  double d;
  if (!get_number(env, v, &d) || d < 0 || d > 9007199254740992.0 || d != std::floor(d))
    return false;
  *out = static_cast<size_t>(d);
  return true;
}
inline bool get_address(napi_env env, napi_value v, void** out) {
  size_t a;
  if (!get_size(env, v, &a) || a == 0) return false;
  *out = reinterpret_cast<void*>(a);
  return true;
}
inline bool get_int32(napi_env env, napi_value v, int32_t* out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}
inline bool get_int64(napi_env env, napi_value v, int64_t* out) {
  return napi_get_value_int64(env, v, out) == napi_ok;
}
inline bool get_bool(napi_env env, napi_value v, bool* out) {
  return napi_get_value_bool(env, v, out) == napi_ok;
}
inline bool get_string(napi_env env, napi_value v, std::string* out) {
  size_t length = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &length) != napi_ok) return false;
  out->assign(length, '\0');
  return napi_get_value_string_utf8(env, v, out->data(), length + 1, &length) == napi_ok;
}
inline bool is_type(napi_env env, napi_value v, napi_valuetype type) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && t == type;
}
inline bool get_object(napi_env env, napi_value v, napi_value* out) {
  *out = v;
  return is_type(env, v, napi_object) || is_type(env, v, napi_function);
}
inline bool get_function(napi_env env, napi_value v, napi_value* out) {
  *out = v;
  return is_type(env, v, napi_function);
}
inline bool get_function_or_undefined(napi_env env, napi_value v, napi_value* out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || (t != napi_function && t != napi_undefined))
    return false;
  *out = t == napi_function ? v : nullptr;
  return true;
}
inline bool get_arraybuffer(napi_env env, napi_value v, napi_value* out) {
  bool is = false;
  *out = v;
  return napi_is_arraybuffer(env, v, &is) == napi_ok && is;
}
// The elements of a typed array of one type (none when its buffer is detached).
template <typename T, napi_typedarray_type kType>
struct Elements {
  T* data = nullptr;
  size_t length = 0;
};
template <typename T, napi_typedarray_type kType>
bool get_elements(napi_env env, napi_value v, Elements<T, kType>* out) {
  bool is = false;
  napi_typedarray_type type;
  void* data = nullptr;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &type, &out->length, &data, nullptr, nullptr) != napi_ok ||
      type != kType)
    return false;
  out->data = static_cast<T*>(data);
  return true;
}
using Float64s = Elements<double, napi_float64_array>;
using Uint8s = Elements<uint8_t, napi_uint8_array>;
inline bool get_float64_array(napi_env env, napi_value v, Float64s* out) {
  return get_elements(env, v, out);
}
inline bool get_uint8_array(napi_env env, napi_value v, Uint8s* out) {
  return get_elements(env, v, out);
}
template <typename T>
bool get_handle(napi_env env, napi_value v, T** out) {
  *out = static_cast<T*>(unwrap_tagged(env, v, TagOf<T>::kTag));
  return *out != nullptr;
}
template <typename T>
bool get_handle_or_undefined(napi_env env, napi_value v, T** out) {
  *out = nullptr;
  return is_type(env, v, napi_undefined) || get_handle(env, v, out);
}

// ---- Values for JavaScript -------------------------------------------------------------------

// Node-API's out-parameters in one expression, for the values binding functions return.
inline napi_value js_undefined(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}
inline napi_value js_null(napi_env env) {
  napi_value v;
  napi_get_null(env, &v);
  return v;
}
inline napi_value js_bool(napi_env env, bool b) {
  napi_value v;
  napi_get_boolean(env, b, &v);
  return v;
}
inline napi_value js_number(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}
inline napi_value js_string(napi_env env, const char* s) {
  napi_value v;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  return v;
}
inline napi_value js_string(napi_env env, const std::string& s) {
  napi_value v;
  napi_create_string_utf8(env, s.data(), s.size(), &v);
  return v;
}
inline napi_value js_object(napi_env env) {
  napi_value v;
  napi_create_object(env, &v);
  return v;
}
inline napi_value js_array(napi_env env, size_t length) {
  napi_value v;
  napi_create_array_with_length(env, length, &v);
  return v;
}
inline void set_named(napi_env env, napi_value object, const char* name, napi_value value) {
  napi_set_named_property(env, object, name, value);
}
inline void set_element(napi_env env, napi_value array, uint32_t index, napi_value value) {
  napi_set_element(env, array, index, value);
}

// ---- Exports ---------------------------------------------------------------------------------

// A C++ exception must not unwind into JavaScript (the process would abort): an exported
// function that throws one throws a PinpoolError instead (ERR_PINPOOL_OUT_OF_MEMORY for
// std::bad_alloc, ERR_PINPOOL_UNAVAILABLE for anything else).
napi_value throw_native_exception(napi_env env, std::exception_ptr error);
template <napi_callback F>
napi_value guarded(napi_env env, napi_callback_info info) noexcept {
  try {
    return F(env, info);
  } catch (...) { return throw_native_exception(env, std::current_exception()); }
}

// One JavaScript key of the module and the function behind it (guarded<...>).
struct Export {
  const char* name;
  napi_callback function;
};
// Sets each of `table` on `exports`, made with `data` as its function data.
void export_functions(napi_env env, napi_value exports, std::initializer_list<Export> table,
                      void* data = nullptr);

}  // namespace pinpool::binding
