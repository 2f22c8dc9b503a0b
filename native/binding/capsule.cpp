// The capsule's JavaScript side (native/capsule/registry.hpp): publish() tells src/capsule.ts
// which copy of pinpool this process uses, and nativeHandle() hands a handler to other native
// addons as a pinpool_native_handle (include/pinpool.h).
#include <string>

#include "../capsule/c_api.hpp"
#include "../capsule/registry.hpp"
#include "calls.hpp"

namespace pinpool::binding {
namespace {

std::string g_promote_error;  // why this addon could not join the global scope, or empty

napi_value string_or_undefined(Napi::Env env, const char* s) {
  return s ? Napi::String::New(env, s) : env.Undefined();
}

// publish(version, entry) -> { abiVersion, structSize, version, entry, addon, self, promoteError? }:
// the process's registry, published by this copy when it is the first. The registry may come
// from an older copy: members past its struct_size are left out (undefined).
Napi::Value Publish(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  PINPOOL_CHECK(info.Length() >= 2 && info[0].IsString() && info[1].IsString(), "publish(version, entry)");
  const pinpool_registry* r =
      capsule::publish(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value());
  Napi::Object o = Napi::Object::New(env);
  o.Set("abiVersion", Napi::Number::New(env, r->abi_version));
  o.Set("structSize", Napi::Number::New(env, r->struct_size));
  o.Set("version", PINPOOL_HAS(r, version) ? string_or_undefined(env, r->version) : env.Undefined());
  o.Set("entry", PINPOOL_HAS(r, entry) ? string_or_undefined(env, r->entry) : env.Undefined());
  o.Set("addon", PINPOOL_HAS(r, addon) ? string_or_undefined(env, r->addon) : env.Undefined());
  o.Set("self", Napi::Boolean::New(env, r == capsule::own()));
  o.Set("ownAddon", Napi::String::New(env, capsule::own()->addon ? capsule::own()->addon : ""));
  if (!g_promote_error.empty()) o.Set("promoteError", Napi::String::New(env, g_promote_error));
  return o;
}

// nativeHandle(handler) -> an external tagged PINPOOL_NATIVE_HANDLE_TAG over a
// pinpool_native_handle that holds a reference to the handler until it is collected.
Napi::Value NativeHandle(const Napi::CallbackInfo& info) {
  Handler* h = handler_arg(info, 0);
  PINPOOL_CHECK(h, "nativeHandle(handler)");
  static const napi_type_tag tag = {PINPOOL_NATIVE_HANDLE_TAG_LOWER, PINPOOL_NATIVE_HANDLE_TAG_UPPER};
  auto* handle = new pinpool_native_handle{PINPOOL_ABI_VERSION, sizeof(pinpool_native_handle),
                                           capsule::api(), h->abi()};
  h->retain();
  napi_value value;
  auto finalize = [](napi_env, void* data, void*) {
    auto* ending = static_cast<pinpool_native_handle*>(data);
    ending->handler->release(ending->handler);
    delete ending;
  };
  if (napi_create_external(info.Env(), handle, finalize, nullptr, &value) != napi_ok) {
    finalize(info.Env(), handle, nullptr);  // no external: nothing else will release it
    PINPOOL_CHECK(false, "nativeHandle: could not make the value");
  }
  // Made: from now on only its finalizer releases the handle, when the untagged external is
  // collected (releasing it here too would release the handler twice).
  PINPOOL_CHECK(napi_type_tag_object(info.Env(), value, &tag) == napi_ok, "nativeHandle: could not tag the value");
  return Napi::Value(info.Env(), value);
}

}  // namespace

void InitCapsule(Napi::Env env, Napi::Object exports) {
  static bool promoted = [] {
    std::string why;
    if (!capsule::promote(why)) g_promote_error = why;
    return true;
  }();
  (void)promoted;
  exports.Set("publish", Napi::Function::New(env, Publish, "publish"));
  exports.Set("nativeHandle", Napi::Function::New(env, NativeHandle, "nativeHandle"));
}

}  // namespace pinpool::binding
