// What the binding files share: the argument check that throws and returns, reading a handler
// argument, and wrapping a handler for JavaScript (each through the typed boundary).
#pragma once

#include <napi.h>

#include <cmath>
#include <string>

#include "../core/handler.hpp"
#include "boundary.hpp"
#include "instance.hpp"

namespace pinpool::binding {

// Throws ERR_PINPOOL_INVALID_ARGUMENT naming the call, and returns undefined from the binding
// function, when `cond` is false.
#define PINPOOL_CHECK(cond, what)                                                          \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      throw_error(info.Env(), code::kInvalidArgument, std::string("binding: ") + (what));  \
      return info.Env().Undefined();                                                       \
    }                                                                                      \
  } while (0)

inline Handler* handler_arg(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length()) return nullptr;
  return static_cast<Handler*>(unwrap_tagged(info.Env(), info[i], Tag::Handler));
}

inline double number_arg(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() && info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : NAN;
}

inline void* address_of(double a) { return reinterpret_cast<void*>(static_cast<uintptr_t>(a)); }

// Wraps a handler reference (already counted) for JavaScript; the wrapper releases it.
inline Napi::Value wrap(Napi::Env env, Handler* h) {
  return Napi::Value(env, wrap_tagged(env, h, Tag::Handler, release_handler_external));
}

// Each binding file adds its functions to the module's exports.
void InitHandlerCalls(Napi::Env env, Napi::Object exports);
void InitSlabViews(Napi::Env env, Napi::Object exports);
void InitHops(Napi::Env env, Napi::Object exports);
void InitGpu(Napi::Env env, Napi::Object exports);
void InitCapsule(Napi::Env env, Napi::Object exports);

}  // namespace pinpool::binding
