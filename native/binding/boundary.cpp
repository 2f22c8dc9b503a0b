#include "boundary.hpp"

#include <cmath>

#include "instance.hpp"

namespace pinpool::binding {
namespace {

// One tag per kind: 128 bits that no other addon will choose ("pinpool" and the kind).
constexpr napi_type_tag kTags[] = {
    {0x70696e706f6f6c00, 0x68616e646c657201},  // Handler
    {0x70696e706f6f6c00, 0x73747265616d0002},  // Stream
    {0x70696e706f6f6c00, 0x736c616270696e03},  // RegionPin
    {0x70696e706f6f6c00, 0x7265676973747204},  // Registration
};

}  // namespace

napi_value wrap_tagged(napi_env env, void* data, Tag tag, napi_finalize finalize) {
  napi_value value;
  if (napi_create_external(env, data, finalize, nullptr, &value) != napi_ok) return nullptr;
  napi_type_tag_object(env, value, &kTags[static_cast<int>(tag)]);
  return value;
}

void* unwrap_tagged(napi_env env, napi_value value, Tag tag) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external) return nullptr;
  bool tagged = false;
  if (napi_check_object_type_tag(env, value, &kTags[static_cast<int>(tag)], &tagged) != napi_ok ||
      !tagged)
    return nullptr;
  void* data = nullptr;
  napi_get_value_external(env, value, &data);
  return data;
}

napi_value throw_error(napi_env env, const char* code, const std::string& message) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return nullptr;  // the first error stands
  napi_value code_value, message_value, error = nullptr;
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value);
  std::string text = "pinpool: " + message;
  napi_create_string_utf8(env, text.c_str(), text.size(), &message_value);
  Instance* inst = instance(env);
  napi_value ctor = nullptr;
  if (inst && inst->error_class) napi_get_reference_value(env, inst->error_class, &ctor);
  if (ctor) {
    napi_value argv[2] = {code_value, message_value};
    if (napi_new_instance(env, ctor, 2, argv, &error) != napi_ok) error = nullptr;
  }
  if (!error) napi_create_error(env, code_value, message_value, &error);
  napi_throw(env, error);
  return nullptr;
}

napi_value SetErrorClass(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  napi_valuetype type = napi_undefined;
  if (argc < 1 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_function)
    return throw_error(env, code::kInvalidArgument, "setErrorClass(PinpoolError)");
  Instance* inst = instance(env);
  if (inst->error_class) napi_delete_reference(env, inst->error_class);
  napi_create_reference(env, argv[0], 1, &inst->error_class);
  return nullptr;
}

bool get_number(napi_env env, napi_value v, double* out) {
  return napi_get_value_double(env, v, out) == napi_ok && std::isfinite(*out);
}

bool get_size(napi_env env, napi_value v, size_t* out) {
  double d;
  if (!get_number(env, v, &d) || d < 0 || d > 9007199254740992.0 || d != std::floor(d)) return false;
  *out = static_cast<size_t>(d);
  return true;
}

bool get_address(napi_env env, napi_value v, void** out) {
  size_t a;
  if (!get_size(env, v, &a) || a == 0) return false;
  *out = reinterpret_cast<void*>(a);
  return true;
}

bool get_bool(napi_env env, napi_value v, bool* out) { return napi_get_value_bool(env, v, out) == napi_ok; }

double address_value(const void* p) { return static_cast<double>(reinterpret_cast<uintptr_t>(p)); }

}  // namespace pinpool::binding
