#include "gpu.hpp"

#include <mutex>
#include <vector>

#include "../core/gpu_work.hpp"
#include "../core/handler.hpp"

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
  napi_ref keep = nullptr;           // keeps a pageable source or destination alive
  GpuWork work;
  Op(GpuState* s, int device, GpuWork::Notify notify) : state(s), work(device, notify, this) {}
};

void* address_of(double a) { return reinterpret_cast<void*>(static_cast<uintptr_t>(a)); }
double address_value(const void* p) { return static_cast<double>(reinterpret_cast<uintptr_t>(p)); }

GpuState* state_of(const Napi::CallbackInfo& info) { return static_cast<GpuState*>(info.Data()); }

template <typename T>
T* external(const Napi::Value& v) {
  return v.IsExternal() ? v.As<Napi::External<T>>().Data() : nullptr;
}

Napi::Value number(Napi::Env env, double v) { return Napi::Number::New(env, v); }

// Driver thread: hand the finished operation to its JavaScript thread.
void notify(GpuWork*, void* context) {
  auto* op = static_cast<Op*>(context);
  GpuState* s = op->state;
  std::lock_guard<std::mutex> lock(s->mutex);
  // After teardown nobody is left to settle the Promise. The fence has been signalled, so
  // deferred frees still complete; the Op itself is abandoned.
  if (!s->closing) napi_call_threadsafe_function(s->tsfn, op, napi_tsfn_nonblocking);
}

void settle(napi_env env, Op* op) {
  CUresult rc = op->work.status();
  napi_value value;
  napi_create_int32(env, rc, &value);
  if (rc == CUDA_SUCCESS) napi_resolve_deferred(env, op->deferred, value);
  else napi_reject_deferred(env, op->deferred, value);
}

void finish(napi_env env, Op* op) {
  GpuState* s = op->state;
  if (op->keep) napi_delete_reference(env, op->keep);
  delete op;
  if (--s->pending == 0) napi_unref_threadsafe_function(env, s->tsfn);
}

// JavaScript thread, from the thread-safe function.
void on_complete(napi_env env, napi_value, void*, void* data) {
  auto* op = static_cast<Op*>(data);
  if (env == nullptr) return;  // teardown: the environment (and op->keep) are gone
  settle(env, op);
  finish(env, op);
}

// Starts tracking an operation; returns its Promise.
napi_value begin(napi_env env, Op* op, napi_value keep) {
  napi_value promise;
  napi_create_promise(env, &op->deferred, &promise);
  if (keep) napi_create_reference(env, keep, 1, &op->keep);
  if (op->state->pending++ == 0) napi_ref_threadsafe_function(env, op->state->tsfn);
  return promise;
}

// Settles an operation that failed to queue, from the JavaScript thread.
void fail_now(napi_env env, Op* op, CUresult rc) {
  napi_value value;
  napi_create_int32(env, rc, &value);
  napi_reject_deferred(env, op->deferred, value);
  finish(env, op);
}

// [promise, fence] for an operation queued now; the fence is what deferred frees wait on.
Napi::Value started(Napi::Env env, napi_value promise, Op* op) {
  Fence* fence = op->work.fence();
  fence->retain();
  Napi::Array result = Napi::Array::New(env, 2);
  result.Set(0u, Napi::Value(env, promise));
  result.Set(1u, Napi::External<Fence>::New(env, fence, [](Napi::Env, Fence* f) { f->release(); }));
  return result;
}

CUresult stream_arg(const Napi::Value& v, int device, CUstream* out) {
  if (CUstream* s = external<CUstream>(v)) {
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

// copy(kind, device, dst, src, bytes, stream, pageable) -> [promise, fence] | CUresult
//   kind: 0 host to device, 1 device to host, 2 device to device; dst/src: addresses;
//   pageable: the JS buffer on the host side when it is ordinary memory, else undefined.
Napi::Value Copy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int kind = info[0].As<Napi::Number>().Int32Value();
  int device = info[1].As<Napi::Number>().Int32Value();
  void* dst = address_of(info[2].As<Napi::Number>().DoubleValue());
  const void* src = address_of(info[3].As<Napi::Number>().DoubleValue());
  size_t bytes = static_cast<size_t>(info[4].As<Napi::Number>().DoubleValue());
  CUstream stream;
  CUresult rc = stream_arg(info[5], device, &stream);
  if (rc != CUDA_SUCCESS) return number(env, rc);
  bool pageable = !info[6].IsUndefined();
  if (pageable) {
    // The host side is ordinary JS memory: its address is the memory's own plus the offset
    // given in place of an address. V8 never moves an ArrayBuffer's bytes.
    char* base = nullptr;
    if (info[6].IsArrayBuffer()) {
      base = static_cast<char*>(info[6].As<Napi::ArrayBuffer>().Data());
    } else if (info[6].IsTypedArray() || info[6].IsDataView()) {
      napi_value ab;
      size_t offset = 0;
      void* data = nullptr;
      if (info[6].IsDataView())
        napi_get_dataview_info(env, info[6], nullptr, &data, &ab, &offset);
      else
        napi_get_typedarray_info(env, info[6], nullptr, nullptr, &data, &ab, &offset);
      base = static_cast<char*>(data);
    }
    if (!base) return number(env, CUDA_ERROR_INVALID_VALUE);
    if (kind == 1) dst = base + reinterpret_cast<uintptr_t>(dst);
    else src = base + reinterpret_cast<uintptr_t>(src);
  }
  auto* op = new Op(state_of(info), device, notify);
  napi_value promise = begin(env, op, pageable ? static_cast<napi_value>(info[6]) : nullptr);
  auto copy_kind = static_cast<cuda::CopyKind>(kind);
  Napi::Value result = started(env, promise, op);
  if (pageable) {
    auto* s = new Submission{op, stream, copy_kind, dst, src, bytes};
    napi_value name;
    napi_create_string_utf8(env, "pinpool.copy", NAPI_AUTO_LENGTH, &name);
    napi_create_async_work(env, nullptr, name, submit_execute, submit_complete, s, &s->work);
    napi_queue_async_work(env, s->work);
    return result;
  }
  rc = op->work.submit(stream, [&](CUstream st) {
    return cuda::copy_async(device, copy_kind, dst, src, bytes, st);
  });
  if (rc != CUDA_SUCCESS) fail_now(env, op, rc);
  return result;
}

// prefetch(device, address, bytes, target, stream) -> [promise, fence] | CUresult
Napi::Value Prefetch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int device = info[0].As<Napi::Number>().Int32Value();
  const void* ptr = address_of(info[1].As<Napi::Number>().DoubleValue());
  size_t bytes = static_cast<size_t>(info[2].As<Napi::Number>().DoubleValue());
  int target = info[3].As<Napi::Number>().Int32Value();
  CUstream stream;
  CUresult rc = stream_arg(info[4], device, &stream);
  if (rc != CUDA_SUCCESS) return number(env, rc);
  auto* op = new Op(state_of(info), device, notify);
  napi_value promise = begin(env, op, nullptr);
  Napi::Value result = started(env, promise, op);
  rc = op->work.submit(stream, [&](CUstream st) {
    return cuda::prefetch_async(device, ptr, bytes, target, st);
  });
  if (rc != CUDA_SUCCESS) fail_now(env, op, rc);
  return result;
}

// advise(device, address, bytes, advice, target) -> CUresult
Napi::Value Advise(const Napi::CallbackInfo& info) {
  CUresult rc = cuda::advise(info[0].As<Napi::Number>().Int32Value(),
                             address_of(info[1].As<Napi::Number>().DoubleValue()),
                             static_cast<size_t>(info[2].As<Napi::Number>().DoubleValue()),
                             static_cast<CUmem_advise>(info[3].As<Napi::Number>().Int32Value()),
                             info[4].As<Napi::Number>().Int32Value());
  return number(info.Env(), rc);
}

// deviceAlloc(device, bytes) -> address | -CUresult
Napi::Value DeviceAlloc(const Napi::CallbackInfo& info) {
  void* p = nullptr;
  size_t bytes = static_cast<size_t>(info[1].As<Napi::Number>().DoubleValue());
  CUresult rc = cuda::device_alloc(info[0].As<Napi::Number>().Int32Value(), bytes ? bytes : 1, &p);
  return number(info.Env(), rc == CUDA_SUCCESS ? address_value(p) : -static_cast<double>(rc));
}

// deviceFree(address) -> CUresult
Napi::Value DeviceFree(const Napi::CallbackInfo& info) {
  return number(info.Env(), cuda::device_free(address_of(info[0].As<Napi::Number>().DoubleValue())));
}

// createStream(device) -> External | CUresult
Napi::Value CreateStream(const Napi::CallbackInfo& info) {
  CUstream s = nullptr;
  CUresult rc = cuda::stream_create(info[0].As<Napi::Number>().Int32Value(), &s);
  if (rc != CUDA_SUCCESS) return number(info.Env(), rc);
  // Destroying a stream with work queued is safe: CUDA finishes the work first.
  return Napi::External<CUstream>::New(info.Env(), new CUstream(s), [](Napi::Env, CUstream* p) {
    cuda::stream_destroy(*p);
    delete p;
  });
}

// hostRegister(device, buffer, flags) -> [CUresult, address, bytes]
Napi::Value HostRegister(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  void* data = nullptr;
  size_t bytes = 0;
  if (info[1].IsArrayBuffer()) {
    Napi::ArrayBuffer ab = info[1].As<Napi::ArrayBuffer>();
    data = ab.Data();
    bytes = ab.ByteLength();
  } else if (info[1].IsTypedArray()) {
    Napi::TypedArray t = info[1].As<Napi::TypedArray>();
    data = static_cast<char*>(t.ArrayBuffer().Data()) + t.ByteOffset();
    bytes = t.ByteLength();
  }
  CUresult rc = data && bytes ? cuda::host_register(info[0].As<Napi::Number>().Int32Value(), data,
                                                    bytes, info[2].As<Napi::Number>().Uint32Value())
                              : CUDA_ERROR_INVALID_VALUE;
  Napi::Array result = Napi::Array::New(env, 3);
  result.Set(0u, number(env, rc));
  result.Set(1u, number(env, address_value(data)));
  result.Set(2u, number(env, static_cast<double>(bytes)));
  return result;
}

// hostUnregister(address) -> CUresult
Napi::Value HostUnregister(const Napi::CallbackInfo& info) {
  return number(info.Env(), cuda::host_unregister(address_of(info[0].As<Napi::Number>().DoubleValue())));
}

// freeAfter(handler, arrayBuffer | undefined, address, bytes, alignment, [fence...])
Napi::Value FreeAfter(const Napi::CallbackInfo& info) {
  Handler* h = external<Handler>(info[0]);
  if (!h || !info[5].IsArray()) return info.Env().Undefined();
  if (info[1].IsArrayBuffer()) {
    Napi::ArrayBuffer ab = info[1].As<Napi::ArrayBuffer>();
    if (!ab.IsDetached()) ab.Detach();
  }
  Napi::Array list = info[5].As<Napi::Array>();
  std::vector<Fence*> fences;
  for (uint32_t i = 0; i < list.Length(); i++)
    if (Fence* f = external<Fence>(list.Get(i))) fences.push_back(f);
  h->deallocate_after(address_of(info[2].As<Napi::Number>().DoubleValue()),
                      static_cast<size_t>(info[3].As<Napi::Number>().DoubleValue()),
                      static_cast<size_t>(info[4].As<Napi::Number>().DoubleValue()),
                      FenceSet(std::move(fences)));
  return info.Env().Undefined();
}

// reclaim(handler) -> blocks whose deferred free finished now
Napi::Value Reclaim(const Napi::CallbackInfo& info) {
  Handler* h = external<Handler>(info[0]);
  return number(info.Env(), h ? static_cast<double>(h->reclaim()) : 0);
}

// deferred(handler) -> blocks still waiting for their fences
Napi::Value Deferred(const Napi::CallbackInfo& info) {
  Handler* h = external<Handler>(info[0]);
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
  add("freeAfter", FreeAfter);
  add("reclaim", Reclaim);
  add("deferred", Deferred);
}

}  // namespace pinpool::binding
