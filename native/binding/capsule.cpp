// The capsule's JavaScript side (native/capsule/registry.hpp): publish() tells
// src/process/capsule.ts which copy of pinpool this process uses, and nativeHandle() hands a
// handler to other native addons as a pinpool_native_handle (include/pinpool.h).
#include <string>

#include "../capsule/c_api.hpp"
#include "../capsule/registry.hpp"
#include "module_exports.hpp"

namespace pinpool::binding {
namespace {

std::string g_promote_error;  // why this addon could not join the global scope, or empty

napi_value string_or_undefined(napi_env env, const char* s) {
  return s ? js_string(env, s) : js_undefined(env);
}

// publish(version, entry) -> { abiVersion, structSize, version, entry, addon, self, promoteError?
// }: the process's registry, published by this copy when it is the first. The registry may come
// from an older copy: members past its struct_size are left out (undefined).
napi_value Publish(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 2, "publish(version, entry)");
  PINPOOL_REQUIRE_STRING(0, version);
  PINPOOL_REQUIRE_STRING(1, entry);
  const pinpool_registry* r = capsule::publish(version, entry);
  napi_value o = js_object(env);
  set_named(env, o, "abiVersion", js_number(env, r->abi_version));
  set_named(env, o, "structSize", js_number(env, r->struct_size));
  set_named(env, o, "version",
            PINPOOL_HAS(r, version) ? string_or_undefined(env, r->version) : js_undefined(env));
  set_named(env, o, "entry",
            PINPOOL_HAS(r, entry) ? string_or_undefined(env, r->entry) : js_undefined(env));
  set_named(env, o, "addon",
            PINPOOL_HAS(r, addon) ? string_or_undefined(env, r->addon) : js_undefined(env));
  set_named(env, o, "self", js_bool(env, r == capsule::own()));
  set_named(env, o, "ownAddon", js_string(env, capsule::own()->addon ? capsule::own()->addon : ""));
  if (!g_promote_error.empty()) set_named(env, o, "promoteError", js_string(env, g_promote_error));
  return o;
}

// nativeHandle(handler) -> an external tagged PINPOOL_NATIVE_HANDLE_TAG over a
// pinpool_native_handle that holds a reference to the handler until it is collected.
napi_value NativeHandle(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 1, "nativeHandle(handler)");
  PINPOOL_REQUIRE_HANDLE(0, Handler, h);
  static const napi_type_tag tag = {PINPOOL_NATIVE_HANDLE_TAG_LOWER,
                                    PINPOOL_NATIVE_HANDLE_TAG_UPPER};
  auto* handle = new pinpool_native_handle{PINPOOL_ABI_VERSION, sizeof(pinpool_native_handle),
                                           capsule::api(), h->abi()};
  h->retain();
  napi_value value;
  auto finalize = [](napi_env, void* data, void*) {
    auto* ending = static_cast<pinpool_native_handle*>(data);
    ending->handler->release(ending->handler);
    delete ending;
  };
  if (napi_create_external(env, handle, finalize, nullptr, &value) != napi_ok) {
    finalize(env, handle, nullptr);  // no external: nothing else will release it
    return throw_error(env, code::kInvalidArgument,
                       "binding: nativeHandle: could not make the value");
  }
  // Made: from now on only its finalizer releases the handle, when the untagged external is
  // collected (releasing it here too would release the handler twice).
  if (napi_type_tag_object(env, value, &tag) != napi_ok)
    return throw_error(env, code::kInvalidArgument,
                       "binding: nativeHandle: could not tag the value");
  return value;
}

}  // namespace

void ExportCapsule(napi_env env, napi_value exports) {
  static bool promoted = [] {
    std::string why;
    if (!capsule::promote(why)) g_promote_error = why;
    return true;
  }();
  (void)promoted;
  export_functions(env, exports,
                   {{"publish", guarded<Publish>}, {"nativeHandle", guarded<NativeHandle>}});
}

}  // namespace pinpool::binding
