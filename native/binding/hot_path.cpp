// The two calls made for every buffer, alloc and free, in plain Node-API C: node-addon-api's
// wrappers cost several hundred nanoseconds a call here, plain Node-API about 80 ns. Type
// checks come free: each napi_get_value_* fails on a value of the wrong type.
#include "hot_path.hpp"

#include <cmath>

#include "../core/handler.hpp"

namespace pinpool::binding {
namespace {

bool get_handler(napi_env env, napi_value v, Handler** out) {
  void* data = nullptr;
  if (napi_get_value_external(env, v, &data) != napi_ok || !data) return false;
  *out = static_cast<Handler*>(data);
  return true;
}

// A byte count or alignment: a finite, non-negative number below 2^64.
bool get_size(napi_env env, napi_value v, double* out) {
  return napi_get_value_double(env, v, out) == napi_ok && *out >= 0 && *out < 18446744073709551616.0;
}

napi_value type_error(napi_env env, const char* what) {
  napi_value code, message, error;
  napi_create_string_utf8(env, "ERR_PINPOOL_INVALID_ARGUMENT", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &message);
  napi_create_type_error(env, code, message, &error);
  napi_throw(env, error);
  return nullptr;
}

double address_value(const void* p) { return static_cast<double>(reinterpret_cast<uintptr_t>(p)); }

bool detach_if_buffer(napi_env env, napi_value v) {
  bool is_buffer = false;
  if (napi_is_arraybuffer(env, v, &is_buffer) != napi_ok || !is_buffer) return true;
  bool detached = false;
  napi_is_detached_arraybuffer(env, v, &detached);
  return detached || napi_detach_arraybuffer(env, v) == napi_ok;
}

}  // namespace

// alloc(handler, bytes, alignment, makeBuffer) -> ArrayBuffer | undefined | null (failed)
napi_value HotAlloc(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  void* data = nullptr;
  napi_get_cb_info(env, info, &argc, argv, nullptr, &data);
  Handler* h;
  double bytes, alignment;
  bool make_buffer = false;
  if (argc < 4 || !get_handler(env, argv[0], &h) || !get_size(env, argv[1], &bytes) ||
      !get_size(env, argv[2], &alignment) || alignment < 1 ||
      napi_get_value_bool(env, argv[3], &make_buffer) != napi_ok)
    return type_error(env, "pinpool binding: alloc(handler, bytes, alignment, makeBuffer)");
  double* out = static_cast<double*>(data);
  pinpool_alloc_info result{};
  void* p = h->allocate(static_cast<size_t>(bytes), static_cast<size_t>(alignment), &result);
  napi_value value;
  if (!p) {
    out[kCode] = result.code;
    out[kCudaError] = result.cuda_error;
    out[kReason] = reason_index(result.reason);
    napi_get_null(env, &value);
    return value;
  }
  out[kAddress] = address_value(p);
  const Handler* leaf = Handler::from_abi(result.served_by);
  out[kServedBy] = leaf ? static_cast<double>(leaf->id()) : 0;
  out[kCode] = 0;
  out[kRegion] = address_value(result.region);
  out[kRegionBytes] = static_cast<double>(result.region_bytes);
  if (!make_buffer) return nullptr;  // undefined
  size_t n = static_cast<size_t>(bytes);
  napi_status status = n == 0 ? napi_create_arraybuffer(env, 0, nullptr, &value)
                              : napi_create_external_arraybuffer(env, p, n, nullptr, nullptr, &value);
  if (status != napi_ok) {
    // Out of JavaScript heap, or external buffers are refused (a sandboxed runtime): give the
    // block back rather than lose it.
    h->deallocate(p, n, static_cast<size_t>(alignment));
    out[kCode] = PINPOOL_ERR_OUT_OF_MEMORY;
    out[kCudaError] = 0;
    out[kReason] = static_cast<double>(Reason::OutOfMemory);
    napi_get_null(env, &value);
  }
  return value;
}

// free(handler, arrayBuffer | undefined, address, bytes, alignment, byGc)
napi_value HotFree(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  Handler* h;
  double address, bytes, alignment;
  bool by_gc = false;
  if (argc < 6 || !get_handler(env, argv[0], &h) || !get_size(env, argv[2], &address) ||
      address == 0 || !get_size(env, argv[3], &bytes) || !get_size(env, argv[4], &alignment) ||
      alignment < 1 || napi_get_value_bool(env, argv[5], &by_gc) != napi_ok)
    return type_error(env, "pinpool binding: free(handler, buffer, address, bytes, alignment, byGc)");
  // Detach first: from here on no view reaches the block, whoever gets it next.
  if (!detach_if_buffer(env, argv[1]))
    return type_error(env, "pinpool binding: free: the buffer cannot be detached");
  h->deallocate(reinterpret_cast<void*>(static_cast<uintptr_t>(address)), static_cast<size_t>(bytes),
                static_cast<size_t>(alignment), by_gc);
  return nullptr;
}

}  // namespace pinpool::binding
