#include "boundary.hpp"

#include <cmath>

#include "../core/lock_cap.hpp"
#include "../core/stats.hpp"
#include "../cuda/cuda_driver.hpp"
#include "../handlers/limit_adaptor.hpp"
#include "../handlers/pool/pool_adaptor.hpp"
#include "../support/align.hpp"
#include "handler_factory.hpp"
#include "hot_path.hpp"
#include "instance.hpp"
#include "module_exports.hpp"
#include "thread_cache.hpp"

namespace pinpool::binding {
namespace {

// One tag per kind: 128 bits that no other addon will choose ("pinpool" and the kind).
constexpr napi_type_tag kTags[] = {
    {0x70696e706f6f6c00, 0x68616e646c657201},  // Handler
    {0x70696e706f6f6c00, 0x73747265616d0002},  // Stream
    {0x70696e706f6f6c00, 0x736c616270696e03},  // SlabLease
    {0x70696e706f6f6c00, 0x7265676973747204},  // Registration
    {0x70696e706f6f6c00, 0x7468726561640005},  // ThreadCache
    {0x70696e706f6f6c00, 0x73636f7065000006},  // ScopeCell
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

napi_value make_error(napi_env env, const char* code, const std::string& message,
                      const ErrorDetails& details) {
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
  auto set_string = [&](const char* name, const char* value) {
    napi_value v;
    napi_create_string_utf8(env, value, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, error, name, v);
  };
  if (details.reason) set_string("reason", details.reason);
  if (details.handler) set_string("handler", details.handler);
  auto set_number = [&](const char* name, double value) {
    napi_value v;
    napi_create_double(env, value, &v);
    napi_set_named_property(env, error, name, v);
  };
  if (details.bytes >= 0) set_number("bytes", details.bytes);
  if (details.cap_bytes >= 0) set_number("capBytes", details.cap_bytes);
  if (details.bytes_in_use >= 0) set_number("bytesInUse", details.bytes_in_use);
  // Without a driver no CUDA call was made: CUDA_ERROR_NOT_INITIALIZED is then pinpool's own
  // word for "no driver" (native/cuda/cuda_driver.hpp), which `reason` says already, not a
  // result of the driver's to show.
  bool no_driver = details.cuda_error == CUDA_ERROR_NOT_INITIALIZED && !cuda::driver().available;
  if (details.cuda_error && !no_driver) {
    napi_value v;
    napi_create_int32(env, details.cuda_error, &v);
    napi_set_named_property(env, error, "cudaError", v);
    set_string("cudaErrorName",
               cuda::error_name(static_cast<CUresult>(details.cuda_error)).c_str());
  }
  return error;
}

napi_value throw_error(napi_env env, const char* code, const std::string& message,
                       const ErrorDetails& details) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw(env, make_error(env, code, message, details));  // the first error stands
  return nullptr;
}

napi_value cuda_error(napi_env env, int rc, const std::string& what) {
  std::string name = cuda::error_name(static_cast<CUresult>(rc));
  switch (rc) {
    case CUDA_ERROR_OUT_OF_MEMORY:
      return make_error(env, code::kOutOfMemory, what + ": out of memory (" + name + ")",
                        {reason_text(Reason::OutOfMemory), nullptr, rc});
    case CUDA_ERROR_NOT_INITIALIZED: {
      const std::string& why = cuda::driver().reason;
      return make_error(env, code::kUnavailable,
                        what + ": " + (why.empty() ? "CUDA is not available" : why),
                        {reason_text(Reason::NoCuda), nullptr, rc});
    }
    case CUDA_ERROR_INVALID_DEVICE:
      return make_error(env, code::kUnavailable, what + ": no such CUDA device",
                        {reason_text(Reason::NoDevice), nullptr, rc});
    default:
      return make_error(env, code::kCuda,
                        what + " failed with " + name + " (" + std::to_string(rc) +
                            "): " + cuda::error_string(static_cast<CUresult>(rc)),
                        {reason_text(Reason::Cuda), nullptr, rc});
  }
}

const char* status_code(int status) {
  switch (status) {
    case PINPOOL_ERR_INVALID_ARGUMENT:
      return code::kInvalidArgument;
    case PINPOOL_ERR_UNAVAILABLE:
      return code::kUnavailable;
    case PINPOOL_ERR_CUDA:
      return code::kCuda;
    case PINPOOL_ERR_DOUBLE_FREE:
      return code::kDoubleFree;
    default:
      return code::kOutOfMemory;  // out of memory, and whatever a foreign handler says
  }
}

napi_value alloc_error(napi_env env, const char* handler, size_t bytes, int status,
                       const char* reason, int cuda_error) {
  int r = reason_index(reason);
  const char* known =
      reason_text(static_cast<Reason>(r < 0 ? static_cast<int>(Reason::OutOfMemory) : r));
  ErrorDetails details{known, handler, cuda_error};
  std::string name = handler;
  switch (status) {
    case PINPOOL_ERR_UNAVAILABLE: {
      std::string why = r == static_cast<int>(Reason::NoDevice)
                            ? "the requested CUDA device does not exist"
                        : cuda::driver().reason.empty() ? "the CUDA device is not present"
                                                        : cuda::driver().reason;
      return make_error(env, code::kUnavailable, name + " is unavailable: " + why, details);
    }
    case PINPOOL_ERR_CUDA:
      return make_error(env, code::kCuda,
                        name + ": CUDA call failed with " +
                            cuda::error_name(static_cast<CUresult>(cuda_error)) + " (" +
                            std::to_string(cuda_error) +
                            "): " + cuda::error_string(static_cast<CUresult>(cuda_error)),
                        details);
    case PINPOOL_ERR_INVALID_ARGUMENT:
      return make_error(env, code::kInvalidArgument,
                        "bytes must be a size " + name + " accepts, got " + std::to_string(bytes),
                        details);
    default: {
      std::string message =
          name + " could not allocate " + std::to_string(bytes) + " bytes (" + known + ")";
      const LockRefusal& why = lock_refusal();
      if (r == static_cast<int>(Reason::Mlock) && why.set) {
        message += ": locking " + std::to_string(why.bytes) +
                   " bytes would pass the page-lock cap of " + std::to_string(why.cap.bytes) +
                   " bytes (" + why.cap.source + "), with " + std::to_string(why.used) +
                   " bytes locked already";
        details.bytes = static_cast<double>(bytes);
        details.cap_bytes = static_cast<double>(why.cap.bytes);
        details.bytes_in_use = static_cast<double>(why.used);
      }
      const LimitRefusal& cap = limit_refusal();
      if (r == static_cast<int>(Reason::Limit) && cap.set) {
        // A limit further down the chain (under a pool, which asks it for a slab) says which.
        std::string cap_is = cap.handler == name
                                 ? "its cap is "
                                 : "the limit '" + cap.handler + "', asked for " +
                                       std::to_string(cap.bytes) + " bytes, has a cap of ";
        message += ": " + cap_is + std::to_string(cap.cap_bytes) + " bytes, with " +
                   std::to_string(cap.bytes_in_use) +
                   " bytes in use; free buffers, or raise the limit's maxBytes";
        details.bytes = static_cast<double>(bytes);
        details.cap_bytes = static_cast<double>(cap.cap_bytes);
        details.bytes_in_use = static_cast<double>(cap.bytes_in_use);
      }
      return make_error(env, code::kOutOfMemory, message, details);
    }
  }
}

namespace {

// setErrorClass(PinpoolError): called once per environment by src/boundary/native.ts.
napi_value SetErrorClass(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS_MESSAGE(env, info, 1, "setErrorClass(PinpoolError)");
  PINPOOL_REQUIRE_FUNCTION(0, error_class);
  Instance* inst = instance(env);
  if (inst->error_class) napi_delete_reference(env, inst->error_class);
  napi_create_reference(env, error_class, 1, &inst->error_class);
  return nullptr;
}

// constants() -> the tables JavaScript reads instead of repeating them: error codes, the
// scratch slots, the pool's limits, managed-memory advice, copy directions, handler kinds.
napi_value Constants(napi_env env, napi_callback_info) {
  napi_value result, table;
  napi_create_object(env, &result);
  auto put_number = [&](napi_value object, const char* name, double value) {
    napi_value v;
    napi_create_double(env, value, &v);
    napi_set_named_property(env, object, name, v);
  };
  auto put_string = [&](napi_value object, const char* name, const char* value) {
    napi_value v;
    napi_create_string_utf8(env, value, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, object, name, v);
  };
  napi_create_object(env, &table);
  for (auto [name, value] :
       {std::pair{"INVALID_ARGUMENT", code::kInvalidArgument},
        std::pair{"OUT_OF_MEMORY", code::kOutOfMemory}, std::pair{"DOUBLE_FREE", code::kDoubleFree},
        std::pair{"RELEASED", code::kReleased}, std::pair{"UNAVAILABLE", code::kUnavailable},
        std::pair{"CUDA", code::kCuda}})
    put_string(table, name, value);
  napi_set_named_property(env, result, "codes", table);
  napi_create_object(env, &table);
  for (auto [name, value] :
       {std::pair{"address", kAddress}, std::pair{"servedBy", kServedBy}, std::pair{"slab", kSlab},
        std::pair{"slabBytes", kSlabBytes}, std::pair{"liveSlot", kLiveSlot},
        std::pair{"classBytes", kPoolClassBytes}, std::pair{"takingBack", kTakingBack},
        std::pair{"route", kRoute}})
    put_number(table, name, value);
  napi_set_named_property(env, result, "slots", table);
  napi_create_object(env, &table);
  for (auto [name, value] : {std::pair{"none", kNoView}, std::pair{"buffer", kBuffer},
                             std::pair{"slabOrBuffer", kSlabOrBuffer}})
    put_number(table, name, value);
  napi_set_named_property(env, result, "views", table);
  napi_create_object(env, &table);
  for (auto [name, value] :
       {std::pair{"blocks", thread_caches::kBlocks}, std::pair{"bytes", thread_caches::kBytes},
        std::pair{"classBytes", thread_caches::kClassBytes},
        std::pair{"hits", thread_caches::kHits}, std::pair{"hitBytes", thread_caches::kHitBytes},
        std::pair{"frees", thread_caches::kFrees}, std::pair{"trims", thread_caches::kTrims},
        std::pair{"poolTrims", thread_caches::kPoolTrims},
        std::pair{"positions", thread_caches::kCellCount}})
    put_number(table, name, value);
  put_number(table, "capacity", ThreadCache::kPositions);
  napi_set_named_property(env, result, "threadCacheCells", table);
  put_number(result, "slabMaxBlock", static_cast<double>(PoolAdaptor::kSlabMaxBlock));
  put_number(result, "poolBlockAlignment", static_cast<double>(PoolAdaptor::kBlockAlignment));
  put_number(result, "pageSize", static_cast<double>(page_size()));
  napi_create_object(env, &table);
  for (auto [name, value] :
       {std::pair{"readMostly", CU_MEM_ADVISE_SET_READ_MOSTLY},
        std::pair{"unsetReadMostly", CU_MEM_ADVISE_UNSET_READ_MOSTLY},
        std::pair{"preferredLocation", CU_MEM_ADVISE_SET_PREFERRED_LOCATION},
        std::pair{"unsetPreferredLocation", CU_MEM_ADVISE_UNSET_PREFERRED_LOCATION},
        std::pair{"accessedBy", CU_MEM_ADVISE_SET_ACCESSED_BY},
        std::pair{"unsetAccessedBy", CU_MEM_ADVISE_UNSET_ACCESSED_BY}})
    put_number(table, name, value);
  napi_set_named_property(env, result, "advice", table);
  napi_create_object(env, &table);
  put_number(table, "portable", CU_MEMHOSTREGISTER_PORTABLE);
  put_number(table, "mapped", CU_MEMHOSTREGISTER_DEVICEMAP);
  napi_set_named_property(env, result, "registerFlags", table);
  napi_create_object(env, &table);
  for (auto [name, value] : {std::pair{"hostToDevice", cuda::CopyKind::HostToDevice},
                             std::pair{"deviceToHost", cuda::CopyKind::DeviceToHost},
                             std::pair{"deviceToDevice", cuda::CopyKind::DeviceToDevice}})
    put_number(table, name, static_cast<double>(value));
  napi_set_named_property(env, result, "copyDirections", table);
  napi_create_object(env, &table);
  for (const HandlerKind& kind : handler_kinds())
    put_string(table, kind.name, kind.leaf ? "leaf" : "adaptor");
  napi_set_named_property(env, result, "kinds", table);
  return result;
}

}  // namespace

napi_value throw_native_exception(napi_env env, std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::bad_alloc&) {
    return throw_error(env, code::kOutOfMemory, "out of memory");
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (what.rfind("pinpool: ", 0) == 0) what.erase(0, 9);  // make_error says it once
    return throw_error(env, code::kUnavailable, what);
  } catch (...) { return throw_error(env, code::kUnavailable, "a native exception was thrown"); }
}

void export_functions(napi_env env, napi_value exports, std::initializer_list<Export> table,
                      void* data) {
  for (const Export& e : table) {
    napi_value f;
    if (napi_create_function(env, e.name, NAPI_AUTO_LENGTH, e.function, data, &f) == napi_ok)
      napi_set_named_property(env, exports, e.name, f);
  }
}

void ExportBoundary(napi_env env, napi_value exports) {
  export_functions(env, exports,
                   {{"constants", guarded<Constants>}, {"setErrorClass", guarded<SetErrorClass>}});
}

}  // namespace pinpool::binding
