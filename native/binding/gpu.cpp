#include "calls.hpp"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "../core/block_registry.hpp"
#include "../lifetime/gpu_work.hpp"
#include "../core/handler.hpp"
#include "../core/leases.hpp"
#include "boundary.hpp"

namespace pinpool::binding {
namespace {

// Per JavaScript environment (main thread or worker): the thread-safe function that brings
// completions back, referenced only while work is pending so an idle program can exit.
struct GpuState {
  napi_threadsafe_function tsfn = nullptr;
  size_t pending = 0;   // operations submitted and not yet settled (JS thread only)
  std::mutex mutex;     // orders driver threads' calls against the environment's teardown
  bool closing = false; // the environment is gone: tsfn must not be called any more
};

// One operation as JavaScript sees it.
struct Op {
  GpuState* state;
  napi_deferred deferred = nullptr;  // the Promise to settle
  GpuWork work;
  // A copy between the device and memory that is not pinpool's (a Buffer, a typed array) goes
  // through a staging block of our own: that memory can be detached, transferred or shrunk
  // while the copy runs, and nothing may write into it after it could have been freed.
  void* staging = nullptr;           // malloc'd, freed with the Op
  napi_ref destination = nullptr;    // device to host: where the staged bytes go at the end
  size_t destination_offset = 0;     // byte offset into it
  size_t bytes = 0;                  // bytes copied
  const char* what;                  // "copy" or "prefetch", for its error
  Op(GpuState* s, int device, GpuWork::Notify notify, const char* name)
      : state(s), work(device, notify, this), what(name) {}
  ~Op() { std::free(staging); }
};

// Status of a copy whose destination was detached or shrunk while it ran: nothing was written.
constexpr int kDestinationGone = -1;

// Host memory as JavaScript holds it: an ArrayBuffer, a typed array or a DataView, read by
// Node-API (never through getters a subclass could override). A detached buffer is empty.
struct HostMemory {
  char* data = nullptr;
  size_t length = 0;
};

bool host_memory(napi_env env, napi_value v, HostMemory* out) {
  bool is = false;
  void* data = nullptr;
  size_t length = 0;
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t count = 0;
    if (napi_get_typedarray_info(env, v, &type, &count, &data, nullptr, nullptr) != napi_ok) return false;
    static const size_t sizes[] = {1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8};  // by napi_typedarray_type
    length = count * (static_cast<size_t>(type) < sizeof sizes / sizeof sizes[0] ? sizes[type] : 1);
  } else if (napi_is_dataview(env, v, &is) == napi_ok && is) {
    if (napi_get_dataview_info(env, v, &length, &data, nullptr, nullptr) != napi_ok) return false;
  } else if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
    if (napi_get_arraybuffer_info(env, v, &data, &length) != napi_ok) return false;
  } else {
    return false;
  }
  out->data = static_cast<char*>(data);
  out->length = data ? length : 0;
  return true;
}

bool page_locked(const char* kind) {
  return kind && (std::strcmp(kind, "pinned") == 0 || std::strcmp(kind, "managed") == 0);
}

GpuState* state_of(const Napi::CallbackInfo& info) { return static_cast<GpuState*>(info.Data()); }


Napi::Value number(Napi::Env env, double v) { return Napi::Number::New(env, v); }

// Operations whose environment ended before they did. Nobody is left to settle their Promise;
// their fences have signalled, so the frees waiting on them complete. They cannot be destroyed
// where they end (a host function may not call CUDA, and destroying one destroys its event), so
// the next operation queued from any JavaScript thread destroys them.
struct Abandoned {
  std::mutex mutex;        // guards ops
  std::vector<Op*> ops;    // finished, never to be settled
};

Abandoned& abandoned() {
  static auto* a = new Abandoned();  // leaked: an operation may end during static destruction
  return *a;
}

void bury_abandoned() {
  std::vector<Op*> ops;
  {
    std::lock_guard<std::mutex> lock(abandoned().mutex);
    ops.swap(abandoned().ops);
  }
  for (Op* op : ops) delete op;  // its napi_ref belonged to the ended environment: not touched
}

// Argument `i` as an int (a device, a target, advice, flags): false when it is not a number.
// The values were checked in src/gpu.ts; this only keeps other types from becoming a plain
// TypeError ("A number was expected") instead of a PinpoolError.
bool int_arg(const Napi::CallbackInfo& info, size_t i, int* out) {
  if (i >= info.Length() || !info[i].IsNumber()) return false;
  *out = info[i].As<Napi::Number>().Int32Value();
  return true;
}

// Driver thread: hand the finished operation to its JavaScript thread.
void notify(GpuWork*, void* context) {
  auto* op = static_cast<Op*>(context);
  GpuState* s = op->state;
  std::lock_guard<std::mutex> lock(s->mutex);
  if (!s->closing) {
    napi_call_threadsafe_function(s->tsfn, op, napi_tsfn_nonblocking);
    return;
  }
  std::lock_guard<std::mutex> graveyard(abandoned().mutex);
  abandoned().ops.push_back(op);
}

// Device to host through staging: the staged bytes go where the destination is now.
int unstage(napi_env env, Op* op) {
  napi_value destination;
  HostMemory m;
  if (napi_get_reference_value(env, op->destination, &destination) != napi_ok || !destination ||
      !host_memory(env, destination, &m) || op->destination_offset > m.length ||
      op->bytes > m.length - op->destination_offset)
    return kDestinationGone;
  if (op->bytes) std::memcpy(m.data + op->destination_offset, op->staging, op->bytes);
  return CUDA_SUCCESS;
}

// The error an operation that ended with `rc` rejects with.
napi_value op_error(napi_env env, Op* op, int rc) {
  if (rc == kDestinationGone)
    return make_error(env, code::kReleased,
                      std::string(op->what) + ": the destination was detached or shrunk while the copy ran; nothing was written to it");
  return cuda_error(env, rc, op->what);
}

void settle(napi_env env, Op* op) {
  int rc = op->work.status();
  if (rc == CUDA_SUCCESS && op->destination) rc = unstage(env, op);
  if (rc == CUDA_SUCCESS) {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, op->deferred, undefined);
  } else {
    napi_reject_deferred(env, op->deferred, op_error(env, op, rc));
  }
}

void finish(napi_env env, Op* op) {
  GpuState* s = op->state;
  if (op->destination) napi_delete_reference(env, op->destination);
  delete op;
  if (--s->pending == 0) napi_unref_threadsafe_function(env, s->tsfn);
  // Its lease is over: a block freed under it goes back now, and a pool dropped meanwhile (kept
  // only by that free) with it. Nothing else would: a dropped pool allocates no more.
  Handler::reclaim_all();
}

// JavaScript thread, from the thread-safe function.
void on_complete(napi_env env, napi_value, void*, void* data) {
  auto* op = static_cast<Op*>(data);
  if (env == nullptr) return;  // teardown: the environment (and op->destination) are gone
  settle(env, op);
  finish(env, op);
}

// Starts tracking an operation; returns its Promise.
napi_value begin(napi_env env, Op* op) {
  bury_abandoned();
  napi_value promise;
  napi_create_promise(env, &op->deferred, &promise);
  if (op->state->pending++ == 0) napi_ref_threadsafe_function(env, op->state->tsfn);
  return promise;
}

// Settles an operation that failed to queue, from the JavaScript thread. Its work either never
// started or was waited for (GpuWork::submit), so the leases it holds end now.
void fail_now(napi_env env, Op* op, CUresult rc) {
  op->work.fence()->signal();
  napi_reject_deferred(env, op->deferred, op_error(env, op, rc));
  finish(env, op);
}

// A Promise rejected with `error`: an operation refused before anything was queued.
napi_value rejected(napi_env env, napi_value error) {
  napi_deferred deferred;
  napi_value promise;
  napi_create_promise(env, &deferred, &promise);
  napi_reject_deferred(env, deferred, error);
  return promise;
}

CUresult stream_arg(const Napi::Value& v, int device, CUstream* out) {
  if (auto* s = static_cast<CUstream*>(unwrap_tagged(v.Env(), v, Tag::Stream))) {
    *out = *s;
    return CUDA_SUCCESS;
  }
  return cuda::default_stream(device, out);
}

// Queueing a copy with a pageable host side can block until the copy is done (CUDA stages
// pageable memory through its own buffers), so it is queued from a worker thread.
struct Submission {
  Op* op;
  CUstream stream;
  cuda::CopyKind kind;
  void* dst;
  const void* src;
  size_t bytes;
  CUresult rc = CUDA_SUCCESS;
  napi_async_work work = nullptr;
};

void submit_execute(napi_env, void* data) {
  auto* s = static_cast<Submission*>(data);
  s->rc = s->op->work.submit(s->stream, [&](CUstream st) {
    return cuda::copy_async(s->op->work.device(), s->kind, s->dst, s->src, s->bytes, st);
  });
}

void submit_complete(napi_env env, napi_status, void* data) {
  auto* s = static_cast<Submission*>(data);
  if (s->rc != CUDA_SUCCESS) fail_now(env, s->op, s->rc);
  napi_delete_async_work(env, s->work);
  delete s;
}

void submit_from_pool(napi_env env, Submission* s) {
  napi_value name;
  napi_create_string_utf8(env, "pinpool.copy", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, nullptr, name, submit_execute, submit_complete, s, &s->work);
  napi_queue_async_work(env, s->work);
}

// The host side of a copy or prefetch: `bytes` bytes at `offset` into `value`. Throws and
// returns false when the value is not host memory or the range does not fit.
bool host_range(napi_env env, napi_value value, size_t offset, size_t bytes, char** out) {
  HostMemory m;
  if (!host_memory(env, value, &m)) {
    throw_error(env, code::kInvalidArgument, "binding: host memory must be an ArrayBuffer, a typed array or a DataView");
    return false;
  }
  if (offset > m.length || bytes > m.length - offset) {
    throw_error(env, code::kInvalidArgument,
                "copy: offset " + std::to_string(offset) + " + bytes " + std::to_string(bytes) +
                    " exceeds the host memory's " + std::to_string(m.length) + " bytes" +
                    (m.length == 0 ? " (is it detached?)" : ""));
    return false;
  }
  *out = m.data + offset;
  return true;
}

// copy(kind, device, dst, src, bytes, dstOffset, srcOffset, stream) -> Promise
//   kind: 0 host to device, 1 device to host, 2 device to device. A device side is an address;
//   the host side is the memory itself (ArrayBuffer, typed array or DataView), so the lease is
//   taken from the memory whatever object reaches it.
Napi::Value Copy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t bytes = 0, dst_offset = 0, src_offset = 0;
  int kind = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : -1;
  if (info.Length() < 8 || kind < 0 || kind > 2 || !info[1].IsNumber() ||
      !get_size(env, info[4], &bytes) || !get_size(env, info[5], &dst_offset) ||
      !get_size(env, info[6], &src_offset)) {
    throw_error(env, code::kInvalidArgument, "binding: copy(kind, device, dst, src, bytes, dstOffset, srcOffset, stream)");
    return env.Undefined();
  }
  int device = info[1].As<Napi::Number>().Int32Value();
  napi_value host_value = kind == 0 ? info[3] : info[2];
  char* host = nullptr;
  void* dst = nullptr;
  const void* src = nullptr;
  if (kind == 2) {
    void* d;
    void* s;
    if (!get_address(env, info[2], &d) || !get_address(env, info[3], &s)) {
      throw_error(env, code::kInvalidArgument, "binding: copy: device addresses");
      return env.Undefined();
    }
    dst = static_cast<char*>(d) + dst_offset;
    src = static_cast<char*>(s) + src_offset;
  } else {
    void* device_address;
    if (!get_address(env, kind == 0 ? info[2] : info[3], &device_address)) {
      throw_error(env, code::kInvalidArgument, "binding: copy: device address");
      return env.Undefined();
    }
    if (!host_range(env, host_value, kind == 0 ? src_offset : dst_offset, bytes, &host))
      return env.Undefined();
    char* device_side = static_cast<char*>(device_address) + (kind == 0 ? dst_offset : src_offset);
    dst = kind == 0 ? static_cast<void*>(device_side) : static_cast<void*>(host);
    src = kind == 0 ? static_cast<const void*>(host) : static_cast<const void*>(device_side);
  }
  CUstream stream;
  CUresult rc = stream_arg(info[7], device, &stream);
  if (rc != CUDA_SUCCESS) return Napi::Value(env, rejected(env, cuda_error(env, rc, "copy")));

  auto* op = new Op(state_of(info), device, notify, "copy");
  bool from_pool = false;
  if (kind != 2) {
    block_registry::Found found = block_registry::find(host, bytes);
    if (found.kind) {
      // pinpool memory: lease it until the copy is done; queue from the JS thread only when it
      // is page-locked (CUDA then only queues the copy).
      leases::take(host, bytes, op->work.fence());
      from_pool = !page_locked(found.kind);
    } else {
      // Someone else's memory: stage it, and never touch it again after this call (host to
      // device) or before the copy is over (device to host, in unstage()).
      op->staging = std::malloc(bytes ? bytes : 1);
      if (!op->staging) {
        delete op;
        return Napi::Value(env, rejected(env, make_error(env, code::kOutOfMemory,
                                                         "copy: no staging memory for " + std::to_string(bytes) + " bytes")));
      }
      op->bytes = bytes;
      if (kind == 0) {
        // An empty or detached source has no data pointer at all: memcpy from null is
        // undefined even for 0 bytes.
        if (bytes) std::memcpy(op->staging, host, bytes);
        src = op->staging;
      } else {
        napi_create_reference(env, host_value, 1, &op->destination);
        op->destination_offset = dst_offset;
        dst = op->staging;
      }
      from_pool = true;
    }
  }
  napi_value promise = begin(env, op);
  auto copy_kind = static_cast<cuda::CopyKind>(kind);
  if (from_pool) {
    submit_from_pool(env, new Submission{op, stream, copy_kind, dst, src, bytes});
    return Napi::Value(env, promise);
  }
  rc = op->work.submit(stream, [&](CUstream st) {
    return cuda::copy_async(device, copy_kind, dst, src, bytes, st);
  });
  if (rc != CUDA_SUCCESS) fail_now(env, op, rc);
  return Napi::Value(env, promise);
}

// Managed memory for prefetch and advise: throws and returns nullptr for anything else.
char* managed_range(napi_env env, napi_value value, size_t* bytes) {
  HostMemory m;
  if (!host_memory(env, value, &m) || m.length == 0) {
    throw_error(env, code::kInvalidArgument, "binding: managed memory must be a live buffer's bytes");
    return nullptr;
  }
  block_registry::Found found = block_registry::find(m.data, m.length);
  if (!found.kind || std::strcmp(found.kind, "managed") != 0) {
    throw_error(env, code::kInvalidArgument, "prefetch() and advise() work on managed memory only");
    return nullptr;
  }
  *bytes = m.length;
  return m.data;
}

// prefetch(device, memory, target, stream) -> Promise
Napi::Value Prefetch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int device, target;
  PINPOOL_CHECK(int_arg(info, 0, &device) && int_arg(info, 2, &target), "prefetch(device, memory, target, stream)");
  size_t bytes = 0;
  char* ptr = managed_range(env, info[1], &bytes);
  if (!ptr) return env.Undefined();
  CUstream stream;
  CUresult rc = stream_arg(info[3], device, &stream);
  if (rc != CUDA_SUCCESS) return Napi::Value(env, rejected(env, cuda_error(env, rc, "prefetch")));
  auto* op = new Op(state_of(info), device, notify, "prefetch");
  leases::take(ptr, bytes, op->work.fence());
  napi_value promise = begin(env, op);
  rc = op->work.submit(stream, [&](CUstream st) {
    return cuda::prefetch_async(device, ptr, bytes, target, st);
  });
  if (rc != CUDA_SUCCESS) fail_now(env, op, rc);
  return Napi::Value(env, promise);
}

// advise(device, memory, advice, target) -> undefined
Napi::Value Advise(const Napi::CallbackInfo& info) {
  int device, advice, target;
  PINPOOL_CHECK(int_arg(info, 0, &device) && int_arg(info, 2, &advice) && int_arg(info, 3, &target),
                "advise(device, memory, advice, target)");
  size_t bytes = 0;
  char* ptr = managed_range(info.Env(), info[1], &bytes);
  if (!ptr) return info.Env().Undefined();
  CUresult rc = cuda::advise(device, ptr, bytes, static_cast<CUmem_advise>(advice), target);
  if (rc != CUDA_SUCCESS) napi_throw(info.Env(), cuda_error(info.Env(), rc, "advise"));
  return info.Env().Undefined();
}

// deviceAlloc(device, bytes) -> address
Napi::Value DeviceAlloc(const Napi::CallbackInfo& info) {
  void* p = nullptr;
  int device;
  size_t bytes;
  PINPOOL_CHECK(int_arg(info, 0, &device) && info.Length() >= 2 && get_size(info.Env(), info[1], &bytes),
                "deviceAlloc(device, bytes)");
  CUresult rc = cuda::device_alloc(device, bytes ? bytes : 1, &p);
  if (rc != CUDA_SUCCESS) {
    napi_throw(info.Env(), cuda_error(info.Env(), rc, "deviceAlloc(" + std::to_string(bytes) + ")"));
    return info.Env().Undefined();
  }
  return number(info.Env(), address_value(p));
}

// deviceFree(address): a failure here has no one to tell (it runs from free() and from the
// garbage-collection backstop); the driver keeps its own count.
Napi::Value DeviceFree(const Napi::CallbackInfo& info) {
  void* address;
  PINPOOL_CHECK(info.Length() >= 1 && get_address(info.Env(), info[0], &address), "deviceFree(address)");
  cuda::device_free(address);
  return info.Env().Undefined();
}

// createStream(device) -> External
Napi::Value CreateStream(const Napi::CallbackInfo& info) {
  CUstream s = nullptr;
  int device;
  PINPOOL_CHECK(int_arg(info, 0, &device), "createStream(device)");
  CUresult rc = cuda::stream_create(device, &s);
  if (rc != CUDA_SUCCESS) {
    napi_throw(info.Env(), cuda_error(info.Env(), rc, "createStream"));
    return info.Env().Undefined();
  }
  // Destroying a stream with work queued is safe: CUDA finishes the work first.
  return Napi::Value(info.Env(), wrap_tagged(info.Env(), new CUstream(s), Tag::Stream,
                                              [](napi_env, void* data, void*) {
                                                auto* p = static_cast<CUstream*>(data);
                                                cuda::stream_destroy(*p);
                                                delete p;
                                              }));
}

// Memory page-locked in place. When it is pinpool's, the registration leases it, so the block
// is not reused while registered.
struct Registration {
  void* ptr;
  Fence* lease = nullptr;  // signalled at unregister; null for memory that is not pinpool's
  bool registered = true;
};

// hostRegister(device, memory, flags, plainAllowed) -> [registration, bytes, leased], or null
// (nothing registered) for memory that is not pinpool's when plainAllowed is false: src/gpu.ts
// decides which other memory it can keep alive while registered.
Napi::Value HostRegister(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  HostMemory m;
  int device, flags;
  PINPOOL_CHECK(int_arg(info, 0, &device) && host_memory(env, info[1], &m) && int_arg(info, 2, &flags) &&
                    info.Length() > 3 && info[3].IsBoolean(),
                "hostRegister(device, memory, flags, plainAllowed)");
  const bool leased = m.data && m.length && block_registry::find(m.data, m.length).kind;
  CUresult rc = cuda::check_device(device);  // no driver: ERR_PINPOOL_UNAVAILABLE before a refusal
  if (rc == CUDA_SUCCESS && m.data && m.length && !leased && !info[3].As<Napi::Boolean>().Value())
    return env.Null();
  if (rc == CUDA_SUCCESS)
    rc = m.data && m.length ? cuda::host_register(device, m.data, m.length, static_cast<unsigned>(flags))
                            : CUDA_ERROR_INVALID_VALUE;
  if (rc != CUDA_SUCCESS) {
    napi_throw(env, cuda_error(env, rc, "register"));
    return env.Undefined();
  }
  auto* r = new Registration{m.data};
  if (leased) {
    r->lease = Fence::create();
    leases::take(m.data, m.length, r->lease);
  }
  Napi::Array result = Napi::Array::New(env, 3);
  result.Set(0u, Napi::Value(env, wrap_tagged(env, r, Tag::Registration, [](napi_env, void* data, void*) {
                               auto* reg = static_cast<Registration*>(data);
                               // Collected without unregister: src/gpu.ts unregisters first, while
                               // its thread runs. A thread that ends while registered cannot: the
                               // driver keeps the range, and the block under it is orphaned (its
                               // lease never ends), counted rather than lost unseen.
                               if (reg->lease) {
                                 if (reg->registered) reg->lease->abandon();
                                 reg->lease->release();
                               }
                               delete reg;
                             })));
  result.Set(1u, number(env, static_cast<double>(m.length)));
  result.Set(2u, Napi::Boolean::New(env, leased));
  return result;
}

// hostUnregister(registration) -> undefined; the lease ends with it
Napi::Value HostUnregister(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* r = static_cast<Registration*>(unwrap_tagged(env, info[0], Tag::Registration));
  if (!r) {
    throw_error(env, code::kInvalidArgument, "binding: hostUnregister(registration)");
    return env.Undefined();
  }
  if (!r->registered) {
    throw_error(env, code::kDoubleFree, "already unregistered");
    return env.Undefined();
  }
  r->registered = false;
  CUresult rc = cuda::host_unregister(r->ptr);
  if (r->lease) {
    r->lease->signal();
    Handler::reclaim_all();  // as at the end of a copy (finish())
  }
  if (rc != CUDA_SUCCESS) napi_throw(env, cuda_error(env, rc, "unregister"));
  return env.Undefined();
}

// deferred(handler) -> blocks still waiting for their leases
Napi::Value Deferred(const Napi::CallbackInfo& info) {
  auto* h = static_cast<Handler*>(unwrap_tagged(info.Env(), info[0], Tag::Handler));
  return number(info.Env(), h ? static_cast<double>(h->deferred()) : 0);
}

}  // namespace

void InitGpu(Napi::Env env, Napi::Object exports) {
  auto* state = new GpuState();
  napi_value name;
  napi_create_string_utf8(env, "pinpool.gpu", NAPI_AUTO_LENGTH, &name);
  napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, nullptr,
                                  on_complete, &state->tsfn);
  napi_unref_threadsafe_function(env, state->tsfn);
  napi_add_env_cleanup_hook(
      env,
      [](void* data) {
        auto* s = static_cast<GpuState*>(data);
        std::lock_guard<std::mutex> lock(s->mutex);
        s->closing = true;
        napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
        // `s` stays allocated: a driver thread may still be finishing a notify() with it.
      },
      state);
  auto add = [&](const char* fn_name, Napi::Function::Callback fn) {
    exports.Set(fn_name, Napi::Function::New(env, fn, fn_name, state));
  };
  add("copy", Copy);
  add("prefetch", Prefetch);
  add("advise", Advise);
  add("deviceAlloc", DeviceAlloc);
  add("deviceFree", DeviceFree);
  add("createStream", CreateStream);
  add("hostRegister", HostRegister);
  add("hostUnregister", HostUnregister);
  add("deferred", Deferred);
}

}  // namespace pinpool::binding
