#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "../core/block_registry.hpp"
#include "../core/handler.hpp"
#include "../core/leases.hpp"
#include "../handlers/file_mapping_handler.hpp"
#include "../handlers/shared/shared_handler.hpp"
#include "../lifetime/gpu_work.hpp"
#include "../lifetime/registrations.hpp"
#include "../support/call_threads.hpp"
#include "../support/kernel.hpp"
#include "boundary.hpp"
#include "module_exports.hpp"

namespace pinpool::binding {

namespace {
struct Op;
}  // namespace

// A stream createStream() made, with the device whose context made it (and destroys it).
struct OwnedStream {
  CUstream stream;
  int device;
};

// Per JavaScript environment (main thread or worker): the thread-safe function that brings
// completions back, referenced only while work is pending so an idle program can exit. (Not
// in the anonymous namespace: InitGpu, which makes it, keeps its full name in sanitizer stacks.)
struct GpuState {
  napi_env env = nullptr;
  napi_threadsafe_function tsfn = nullptr;
  napi_threadsafe_function submitted = nullptr;  // brings back copies queued by submit_from_pool
  size_t pending = 0;    // operations submitted and not yet settled (JS thread only)
  std::mutex mutex;      // orders driver threads' calls against the environment's teardown
  bool closing = false;  // the environment is gone: tsfn must not be called any more
  // Operations queued on a stream and not settled yet, for the watch (JS thread only).
  std::vector<Op*> watched;
};

namespace {

// One operation as JavaScript sees it.
struct Op {
  GpuState* state;
  napi_deferred deferred = nullptr;  // the Promise to settle
  GpuWork work;
  // A copy between the device and memory that is not pinpool's (a Buffer, a typed array) goes
  // through a staging block of our own: that memory can be detached, transferred or shrunk
  // while the copy runs, and nothing may write into it after it could have been freed.
  void* staging = nullptr;         // malloc'd, freed with the Op
  napi_ref destination = nullptr;  // device to host: where the staged bytes go at the end
  size_t destination_offset = 0;   // byte offset into it
  size_t bytes = 0;                // bytes copied
  // A copy in place of memory registered with register() that is not pinpool's: the memory
  // (kept alive while the copy runs) and the registration (not unregistered until it is over).
  napi_ref memory = nullptr;
  registrations::Registration* registration = nullptr;
  const char* what;  // "copy" or "prefetch", for its error
  // The watch (watch_gpu): whether the work is queued (its event can be asked), whether its
  // Promise was settled without the host function, and how many watches found it complete.
  bool queued = false;
  bool settled = false;
  int complete_reads = 0;
  // Queued from a thread of ours (submit_from_pool): until on_submitted runs on this thread, its
  // host function may already have settled it, and then it must not be freed yet.
  bool submitting = false;
  bool finished = false;
  Op(GpuState* s, int device, GpuWork::Notify notify, const char* name)
      : state(s), work(device, notify, this), what(name) {}
  ~Op() {
    std::free(staging);
    end_registration();
  }
  // The device is done with the memory: a registration unregistered meanwhile may go now.
  void end_registration() {
    if (registration) registrations::end_use(registration);
    registration = nullptr;
  }
};

// Status of a copy whose destination was detached or shrunk while it ran: nothing was written.
constexpr int kDestinationGone = -1;

// Host memory as JavaScript holds it: an ArrayBuffer, a typed array or a DataView, read by
// Node-API (never through getters a subclass could override). A detached buffer is empty.
struct HostMemory {
  char* data = nullptr;
  size_t length = 0;
  const char* buffer = nullptr;  // the first byte of the ArrayBuffer or SharedArrayBuffer under it
};

bool host_memory(napi_env env, napi_value v, HostMemory* out) {
  bool is = false;
  void* data = nullptr;
  size_t length = 0;
  size_t offset = 0;  // of the view into its buffer
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t count = 0;
    if (napi_get_typedarray_info(env, v, &type, &count, &data, nullptr, &offset) != napi_ok)
      return false;
    static const size_t sizes[] = {1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8};  // by napi_typedarray_type
    length = count * (static_cast<size_t>(type) < sizeof sizes / sizeof sizes[0] ? sizes[type] : 1);
  } else if (napi_is_dataview(env, v, &is) == napi_ok && is) {
    if (napi_get_dataview_info(env, v, &length, &data, nullptr, &offset) != napi_ok) return false;
  } else if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
    if (napi_get_arraybuffer_info(env, v, &data, &length) != napi_ok) return false;
  } else {
    return false;
  }
  out->data = static_cast<char*>(data);
  out->length = data ? length : 0;
  out->buffer = data ? out->data - offset : nullptr;  // a view's data pointer includes its offset
  return true;
}

// Whether queueing a copy of this kind of pinpool memory returns at once, so it may be queued
// from the JavaScript thread: pinned memory, and a shared region registered here. Pageable memory
// may wait for the copy; so may managed memory (the driver makes copies touching it
// host-synchronous on devices without concurrent managed access, and documents no promise
// otherwise), so both queue from one of copy_threads().
bool queues_without_waiting(const block_registry::Found& found) {
  if (!found.kind) return false;
  if (std::strcmp(found.kind, "pinned") == 0) return true;
  // A shared region this process registered with the driver (shared_handler.hpp).
  const auto* shared = dynamic_cast<const SharedHandler*>(static_cast<const Handler*>(found.owner));
  return shared && shared->registered();
}

// Operations whose environment ended before they did. Nobody is left to settle their Promise;
// their fences have signalled, so the frees waiting on them complete. They cannot be destroyed
// where they end (a host function may not call CUDA, and destroying one destroys its event), so
// the next operation queued from any JavaScript thread destroys them.
struct Abandoned {
  std::mutex mutex;      // guards ops
  std::vector<Op*> ops;  // finished, never to be settled
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

// Driver thread: hand the finished operation to its JavaScript thread.
void abandon(Op* op) {
  std::lock_guard<std::mutex> graveyard(abandoned().mutex);
  abandoned().ops.push_back(op);
}

void notify(GpuWork*, void* context) {
  auto* op = static_cast<Op*>(context);
  GpuState* s = op->state;
  std::lock_guard<std::mutex> lock(s->mutex);
  if (!s->closing && napi_call_threadsafe_function(s->tsfn, op, napi_tsfn_nonblocking) == napi_ok)
    return;
  // The environment is gone. Of this and the end of its submission (a copy queued from a copy
  // thread), the last abandons it: until then the other may still touch it.
  if (op->submitting)
    op->finished = true;
  else
    abandon(op);
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
                      std::string(op->what) +
                          ": the destination was detached or shrunk while the copy ran; nothing "
                          "was written to it");
  return cuda_error(env, rc, op->what);
}

void settle(napi_env env, Op* op, int rc) {
  if (rc == CUDA_SUCCESS && op->destination) rc = unstage(env, op);
  if (rc == CUDA_SUCCESS) {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, op->deferred, undefined);
  } else {
    napi_reject_deferred(env, op->deferred, op_error(env, op, rc));
  }
}

// Its Promise is settled: no longer pending, so an idle program can exit.
void unpend(napi_env env, Op* op) {
  op->end_registration();
  GpuState* s = op->state;
  auto& w = s->watched;
  w.erase(std::remove(w.begin(), w.end(), op), w.end());
  if (--s->pending == 0) napi_unref_threadsafe_function(env, s->tsfn);
}

void destroy(napi_env env, Op* op) {
  if (op->destination) napi_delete_reference(env, op->destination);
  if (op->memory) napi_delete_reference(env, op->memory);
  delete op;
}

void finish(napi_env env, Op* op) {
  unpend(env, op);
  destroy(env, op);
  // Its lease is over: a block freed under it goes back now, and a pool dropped meanwhile (kept
  // only by that free) with it. Nothing else would: a dropped pool allocates no more.
  Handler::reclaim_all();
}

// JavaScript thread, from the thread-safe function.
void on_complete(napi_env env, napi_value, void*, void* data) {
  auto* op = static_cast<Op*>(data);
  if (env == nullptr) {  // teardown: the environment (and op->destination) are gone; it is done
    std::lock_guard<std::mutex> lock(op->state->mutex);
    if (op->submitting)
      op->finished = true;  // its submission's end has it (abandon_submission)
    else
      abandon(op);
    return;
  }
  if (op->settled) {
    destroy(env, op);  // the watch settled it already; this was the last anyone would hear of it
    return;
  }
  settle(env, op, op->work.status());
  if (op->submitting) {
    unpend(env, op);
    op->finished = true;     // on_submitted frees it
    Handler::reclaim_all();  // as finish() does: the lease ended with the copy
    return;
  }
  finish(env, op);
}

// The work is on its stream: from now on the watch may ask its event.
void watch(Op* op) {
  op->queued = true;
  op->state->watched.push_back(op);
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

// The stream `v` names (createStream()), or the device's default stream for any other value.
CUresult stream_arg(napi_env env, napi_value v, int device, CUstream* out) {
  OwnedStream* s;
  if (get_handle(env, v, &s)) {
    *out = s->stream;
    return CUDA_SUCCESS;
  }
  return cuda::default_stream(device, out);
}

// Queues a copy on `stream`, behind the mark `after` (consumed) when it is not null.
CUresult queue_copy(int device, cuda::CopyKind kind, void* dst, const void* src, size_t bytes,
                    CUstream stream, CUevent after) {
  if (after) {
    CUresult rc = cuda::wait_for_mark(device, stream, after);
    if (rc != CUDA_SUCCESS) return rc;
  }
  return cuda::copy_async(device, kind, dst, src, bytes, stream);
}

// Queueing a copy with a pageable host side can block until the copy is done (CUDA stages
// pageable memory through its own buffers, and returns from a copy to pageable memory once it
// has landed), so it is queued from a thread of ours (never libuv's pool: Node's fs, dns,
// crypto and zlib wait for those threads) and the result comes back through `submitted`.
struct Submission {
  Op* op;
  GpuState* state;
  CUstream stream;
  CUevent after;  // what the copy waits for (cuda::mark when copy() was called), or null
  cuda::CopyKind kind;
  void* dst;
  const void* src;
  size_t bytes;
  CUresult rc = CUDA_SUCCESS;
};

CallThreads& copy_threads() {
  static auto* threads = new CallThreads(4);  // leaked: its threads never end
  return *threads;
}

// A submission whose environment has gone: nobody will settle its Promise. When its work was
// queued its host function hands the operation to the abandoned list (notify(), or on_complete
// at teardown), unless it was heard already; when it failed no host function comes, so it goes
// there now, its leases ended. Called with the state's mutex held.
void abandon_submission(Submission* s) {
  Op* op = s->op;
  if (s->rc != CUDA_SUCCESS) {
    op->work.fence()->signal();
    abandon(op);
  } else if (op->finished) {
    abandon(op);  // its host function was heard already: nobody else has it now
  } else {
    op->submitting = false;  // its host function, when heard, abandons it
  }
  delete s;
}

// One of copy_threads().
void submit_execute(void* data) {
  auto* s = static_cast<Submission*>(data);
  GpuState* state = s->state;
  s->rc = s->op->work.submit(s->stream, [&](CUstream st) {
    return queue_copy(s->op->work.device(), s->kind, s->dst, s->src, s->bytes, st, s->after);
  });
  std::lock_guard<std::mutex> lock(state->mutex);
  if (!state->closing &&
      napi_call_threadsafe_function(state->submitted, s, napi_tsfn_nonblocking) == napi_ok)
    return;
  abandon_submission(s);
}

// JavaScript thread, from `submitted`.
void on_submitted(napi_env env, napi_value, void*, void* data) {
  auto* s = static_cast<Submission*>(data);
  if (env == nullptr) {  // teardown
    std::lock_guard<std::mutex> lock(s->state->mutex);
    abandon_submission(s);
    return;
  }
  Op* op = s->op;
  op->submitting = false;
  if (s->rc != CUDA_SUCCESS)
    fail_now(env, op, s->rc);
  else if (op->finished)
    destroy(env, op);  // it ended before its submission did
  else
    watch(op);
  delete s;
}

void submit_from_pool(Submission* s) { copy_threads().run(submit_execute, s); }

// The host side of a copy: `bytes` bytes at `offset` into argv[i]. Throws and returns false
// when the value is not host memory or the range does not fit.
bool host_range(napi_env env, const napi_value* argv, size_t i, size_t offset, size_t bytes,
                char** out, const char** buffer) {
  const Call call{env, "binding: host memory must be an ArrayBuffer, a typed array or a DataView"};
  PINPOOL_REQUIRE_ARG(i, host_memory, HostMemory, m);
  if (offset > m.length || bytes > m.length - offset) {
    throw_error(env, code::kInvalidArgument,
                "copy: offset " + std::to_string(offset) + " + bytes " + std::to_string(bytes) +
                    " exceeds the host memory's " + std::to_string(m.length) + " bytes" +
                    (m.length == 0 ? " (is it detached?)" : ""));
    return false;
  }
  *out = m.data + offset;
  *buffer = m.buffer;
  return true;
}

// What copy() was asked for, its pointers resolved.
struct CopyRequest {
  cuda::CopyKind kind;                // constants().copyDirections names each
  int device;                         // the device whose stream runs it
  size_t bytes;                       // bytes to copy
  size_t dst_offset, src_offset;      // byte offsets into each side
  void* dst = nullptr;                // where the copy writes
  const void* src = nullptr;          // where it reads
  char* host = nullptr;               // the host side (not device to device)
  const char* host_buffer = nullptr;  // the first byte of the (Shared)ArrayBuffer holding it
  napi_value host_value = nullptr;    // the JavaScript value that holds it
};

// The copy's two sides from argv[2] (dst) and argv[3] (src): a device side is an address, the
// host side the memory itself, so the lease is taken from the memory whatever object reaches
// it. Throws and returns false when a side is not what the kind says.
bool resolve_sides(napi_env env, const napi_value* argv, CopyRequest* r) {
  if (r->kind == cuda::CopyKind::DeviceToDevice) {
    const Call call{env, "binding: copy: device addresses"};
    PINPOOL_REQUIRE_ADDRESS(2, dst);
    PINPOOL_REQUIRE_ADDRESS(3, src);
    r->dst = static_cast<char*>(dst) + r->dst_offset;
    r->src = static_cast<char*>(src) + r->src_offset;
    return true;
  }
  const bool to_device = r->kind == cuda::CopyKind::HostToDevice;
  const Call call{env, "binding: copy: device address"};
  PINPOOL_REQUIRE_ADDRESS(to_device ? 2 : 3, device_address);
  const size_t host_index = to_device ? 3 : 2;
  if (!host_range(env, argv, host_index, to_device ? r->src_offset : r->dst_offset, r->bytes,
                  &r->host, &r->host_buffer))
    return false;
  r->host_value = argv[host_index];
  char* device_side =
      static_cast<char*>(device_address) + (to_device ? r->dst_offset : r->src_offset);
  r->dst = to_device ? static_cast<void*>(device_side) : static_cast<void*>(r->host);
  r->src = to_device ? static_cast<const void*>(r->host) : static_cast<const void*>(device_side);
  return true;
}

// How a copy uses a file mapping of pinpool's (mapFile): not registered, like any pageable
// memory; registered for writing, in place; pinned read-only (a private mapping), in place
// only when the device reads it and the pin sees every page the process sees (the kernel gave
// the pin the process's own copies, or the process has written none of the pages since). The
// device may not write memory pinned read-only, and a page written since is the process's own
// copy, which the device does not see: such copies are staged.
enum class FileCopy { NotRegistered, InPlace, Staged };

FileCopy file_copy(const block_registry::Found& found, const CopyRequest& r) {
  const auto* file =
      dynamic_cast<const FileMappingHandler*>(static_cast<const Handler*>(found.owner));
  if (!file || !file->registered()) return FileCopy::NotRegistered;
  if (!file->pinned_read_only()) return FileCopy::InPlace;
  if (r.kind == cuda::CopyKind::DeviceToHost) return FileCopy::Staged;
  if (file->coherent()) return FileCopy::InPlace;
  // -1 (the kernel cannot tell) stages too.
  return kernel().private_copies(r.host, r.bytes) == 0 ? FileCopy::InPlace : FileCopy::Staged;
}

bool stage(napi_env env, Op* op, CopyRequest* r, bool* from_pool);

// Makes the copy's host memory safe to use until it is over. pinpool's memory is leased (the
// block is not reused meanwhile); other memory inside a registration (register()) is used in
// place, held by a reference and a use of the registration; anyone else's is staged through
// memory of our own, never touched again after this call (host to device) or before the copy
// is over (device to host, in unstage()). `from_pool` says whether to queue from one of
// copy_threads(): the host side is not page-locked, so queueing may wait for the copy. False when
// no staging memory could be had.
bool resolve_memory(napi_env env, Op* op, CopyRequest* r, bool* from_pool) {
  *from_pool = false;
  if (r->kind == cuda::CopyKind::DeviceToDevice) return true;
  block_registry::Found found = block_registry::find(r->host, r->bytes);
  if (found.kind) {
    leases::take(r->host, r->bytes, op->work.fence());
    switch (file_copy(found, *r)) {
      case FileCopy::InPlace:
        return true;  // page-locked: queued from this thread
      case FileCopy::Staged:
        return stage(env, op, r, from_pool);
      case FileCopy::NotRegistered:
        break;
    }
    // pinpool's pageable memory page-locked by register() queues like pinned memory.
    if (!queues_without_waiting(found))
      op->registration = registrations::use(r->host, r->bytes, r->host_buffer, r->device);
    *from_pool = !queues_without_waiting(found) && !op->registration;
    return true;
  }
  if (r->bytes &&
      (op->registration = registrations::use(r->host, r->bytes, r->host_buffer, r->device))) {
    napi_create_reference(env, r->host_value, 1, &op->memory);
    return true;
  }
  return stage(env, op, r, from_pool);
}

// Sends the copy through a staging block of our own (see resolve_memory()).
bool stage(napi_env env, Op* op, CopyRequest* r, bool* from_pool) {
  op->staging = std::malloc(r->bytes ? r->bytes : 1);
  if (!op->staging) return false;
  op->bytes = r->bytes;
  if (r->kind == cuda::CopyKind::HostToDevice) {
    // An empty or detached source has no data pointer at all: memcpy from null is undefined
    // even for 0 bytes.
    if (r->bytes) std::memcpy(op->staging, r->host, r->bytes);
    r->src = op->staging;
  } else {
    napi_create_reference(env, r->host_value, 1, &op->destination);
    op->destination_offset = r->dst_offset;
    r->dst = op->staging;
  }
  *from_pool = true;
  return true;
}

// Queues the copy and returns its Promise, settled when the copy's fence signals (notify(),
// then settle() on this thread).
napi_value submit_copy(napi_env env, Op* op, CUstream stream, CUevent after, const CopyRequest& r,
                       bool from_pool) {
  napi_value promise = begin(env, op);
  if (from_pool) {
    op->submitting = true;
    submit_from_pool(new Submission{op, op->state, stream, after, r.kind, r.dst, r.src, r.bytes});
    return promise;
  }
  CUresult rc = op->work.submit(stream, [&](CUstream st) {
    return queue_copy(r.device, r.kind, r.dst, r.src, r.bytes, st, after);
  });
  if (rc != CUDA_SUCCESS)
    fail_now(env, op, rc);
  else
    watch(op);
  return promise;
}

// What a copy waits for (its `after` option): undefined for nothing, the string "legacy" for
// the device's legacy default stream, or a stream createStream() made. False (and a thrown
// error) for anything else.
bool after_arg(napi_env env, napi_value v, CUstream* out) {
  *out = nullptr;
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok) return false;
  if (type == napi_undefined) return true;
  char text[8] = {0};
  size_t length = 0;
  if (type == napi_string &&
      napi_get_value_string_utf8(env, v, text, sizeof text, &length) == napi_ok &&
      std::strcmp(text, "legacy") == 0) {
    *out = CU_STREAM_LEGACY;
    return true;
  }
  OwnedStream* s;
  if (get_handle(env, v, &s)) {
    *out = s->stream;
    return true;
  }
  throw_error(env, code::kInvalidArgument, "binding: copy: after must be 'legacy' or a stream");
  return false;
}

// copy(direction, device, dst, src, bytes, dstOffset, srcOffset, stream, after) -> Promise
//   direction: a cuda::CopyKind, as constants().copyDirections names them: hostToDevice,
//   deviceToHost, deviceToDevice (resolve_sides() says what each side is).
napi_value Copy(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 9,
               "copy(direction, device, dst, src, bytes, dstOffset, srcOffset, stream, after)");
  PINPOOL_REQUIRE(argc >= 9);
  PINPOOL_REQUIRE_INT32(0, direction);
  PINPOOL_REQUIRE(direction >= static_cast<int>(cuda::CopyKind::HostToDevice) &&
                  direction <= static_cast<int>(cuda::CopyKind::DeviceToDevice));
  const auto kind = static_cast<cuda::CopyKind>(direction);
  PINPOOL_REQUIRE_INT32(1, device);
  PINPOOL_REQUIRE_SIZE(4, bytes);
  PINPOOL_REQUIRE_SIZE(5, dst_offset);
  PINPOOL_REQUIRE_SIZE(6, src_offset);
  CopyRequest request{kind, device, bytes, dst_offset, src_offset};
  if (!resolve_sides(env, argv, &request)) return nullptr;
  CUstream after_stream;
  if (!after_arg(env, argv[8], &after_stream)) return nullptr;
  CUstream stream;
  CUresult rc = stream_arg(env, argv[7], device, &stream);
  if (rc != CUDA_SUCCESS) return rejected(env, cuda_error(env, rc, "copy"));
  // What to wait for is marked now, so a copy queued later from a copy thread waits for the
  // work queued before this call, not for what came after.
  CUevent after = nullptr;
  if (after_stream) {
    rc = cuda::mark(device, after_stream, &after);
    if (rc != CUDA_SUCCESS) return rejected(env, cuda_error(env, rc, "copy"));
  }
  auto* op = new Op(static_cast<GpuState*>(function_data), device, notify, "copy");
  bool from_pool;
  if (!resolve_memory(env, op, &request, &from_pool)) {
    if (after) cuda::event_destroy(device, after);
    delete op;
    return rejected(env,
                    make_error(env, code::kOutOfMemory,
                               "copy: no staging memory for " + std::to_string(bytes) + " bytes"));
  }
  return submit_copy(env, op, stream, after, request, from_pool);
}

// Managed memory for prefetch and advise, from argv[i]: throws and returns nullptr for
// anything else.
char* managed_range(napi_env env, const napi_value* argv, size_t i, size_t* bytes) {
  const Call call{env, "binding: managed memory must be a live buffer's bytes"};
  PINPOOL_REQUIRE_ARG(i, host_memory, HostMemory, m);
  PINPOOL_REQUIRE(m.length != 0);
  block_registry::Found found = block_registry::find(m.data, m.length);
  if (!found.kind || std::strcmp(found.kind, "managed") != 0) {
    throw_error(env, code::kInvalidArgument, "prefetch() and advise() work on managed memory only");
    return nullptr;
  }
  *bytes = m.length;
  return m.data;
}

// prefetch(device, memory, target, stream) -> Promise
napi_value Prefetch(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 4, "prefetch(device, memory, target, stream)");
  PINPOOL_REQUIRE_INT32(0, device);
  PINPOOL_REQUIRE_INT32(2, target);
  size_t bytes = 0;
  char* ptr = managed_range(env, argv, 1, &bytes);
  if (!ptr) return nullptr;
  CUstream stream;
  CUresult rc = stream_arg(env, argv[3], device, &stream);
  if (rc != CUDA_SUCCESS) return rejected(env, cuda_error(env, rc, "prefetch"));
  auto* op = new Op(static_cast<GpuState*>(function_data), device, notify, "prefetch");
  leases::take(ptr, bytes, op->work.fence());
  napi_value promise = begin(env, op);
  rc = op->work.submit(
      stream, [&](CUstream st) { return cuda::prefetch_async(device, ptr, bytes, target, st); });
  if (rc != CUDA_SUCCESS)
    fail_now(env, op, rc);
  else
    watch(op);
  return promise;
}

// advise(device, memory, advice, target) -> undefined
napi_value Advise(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 4, "advise(device, memory, advice, target)");
  PINPOOL_REQUIRE_INT32(0, device);
  PINPOOL_REQUIRE_INT32(2, advice);
  PINPOOL_REQUIRE_INT32(3, target);
  size_t bytes = 0;
  char* ptr = managed_range(env, argv, 1, &bytes);
  if (!ptr) return nullptr;
  CUresult rc = cuda::advise(device, ptr, bytes, static_cast<CUmem_advise>(advice), target);
  if (rc != CUDA_SUCCESS) napi_throw(env, cuda_error(env, rc, "advise"));
  return nullptr;
}

// deviceAlloc(device, bytes) -> address
napi_value DeviceAlloc(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 2, "deviceAlloc(device, bytes)");
  PINPOOL_REQUIRE_INT32(0, device);
  PINPOOL_REQUIRE_SIZE(1, bytes);
  void* p = nullptr;
  CUresult rc = cuda::device_alloc(device, bytes ? bytes : 1, &p);
  if (rc != CUDA_SUCCESS) {
    napi_throw(env, cuda_error(env, rc, "deviceAlloc(" + std::to_string(bytes) + ")"));
    return nullptr;
  }
  return js_number(env, address_value(p));
}

// deviceFree(device, address): a failure here has no one to tell (it runs from free() and from
// the garbage-collection backstop); the driver keeps its own count.
napi_value DeviceFree(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 2, "deviceFree(device, address)");
  PINPOOL_REQUIRE_INT32(0, device);
  PINPOOL_REQUIRE_ADDRESS(1, address);
  cuda::device_free(device, address);
  return nullptr;
}

// createStream(device) -> External
napi_value CreateStream(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 1, "createStream(device)");
  PINPOOL_REQUIRE_INT32(0, device);
  CUstream s = nullptr;
  CUresult rc = cuda::stream_create(device, &s);
  if (rc != CUDA_SUCCESS) {
    napi_throw(env, cuda_error(env, rc, "createStream"));
    return nullptr;
  }
  // Destroying a stream with work queued is safe: CUDA finishes the work first.
  return wrap_tagged(env, new OwnedStream{s, device}, Tag::Stream, [](napi_env, void* data, void*) {
    auto* p = static_cast<OwnedStream*>(data);
    cuda::stream_destroy(p->device, p->stream);
    delete p;
  });
}

}  // namespace

// Memory page-locked in place, as JavaScript holds it (lifetime/registrations.hpp says how
// copies use it). When it is pinpool's, the registration leases it, so the block is not reused
// while registered.
struct Registration {
  registrations::Registration* record;
  bool registered = true;
};

namespace {

// hostRegister(device, memory, flags, plainAllowed) -> { registration, bytes, leased }, or null
// (nothing registered) for memory that is not pinpool's when plainAllowed is false:
// src/gpu/register.ts decides which other memory it can keep alive while registered.
napi_value HostRegister(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 4, "hostRegister(device, memory, flags, plainAllowed)");
  PINPOOL_REQUIRE_INT32(0, device);
  PINPOOL_REQUIRE_ARG(1, host_memory, HostMemory, m);
  PINPOOL_REQUIRE_INT32(2, flags);
  PINPOOL_REQUIRE_BOOL(3, plain_allowed);
  const bool leased = m.data && m.length && block_registry::find(m.data, m.length).kind;
  CUresult rc = cuda::check_device(device);  // no driver: ERR_PINPOOL_UNAVAILABLE before a refusal
  if (rc == CUDA_SUCCESS && m.data && m.length && !leased && !plain_allowed) return js_null(env);
  if (rc == CUDA_SUCCESS)
    rc = m.data && m.length
             ? cuda::host_register(device, m.data, m.length, static_cast<unsigned>(flags))
             : CUDA_ERROR_INVALID_VALUE;
  if (rc != CUDA_SUCCESS) {
    napi_throw(env, cuda_error(env, rc, "register"));
    return nullptr;
  }
  Fence* lease = nullptr;  // signalled once the driver has unregistered it
  if (leased) {
    lease = Fence::create();
    leases::take(m.data, m.length, lease);
  }
  auto* r = new Registration{registrations::add(
      m.data, m.length, device, (flags & CU_MEMHOSTREGISTER_PORTABLE) != 0, m.buffer, lease)};
  napi_value result = js_object(env);
  set_named(env, result, "registration",
            wrap_tagged(env, r, Tag::Registration, [](napi_env, void* data, void*) {
              auto* reg = static_cast<Registration*>(data);
              // Collected without unregister: src/gpu/register.ts unregisters first, while its
              // thread runs. A thread that ends while registered cannot: the driver keeps the
              // range, and the block under it is orphaned (its lease never ends), counted rather
              // than lost unseen.
              if (reg->registered) registrations::forget(reg->record);
              delete reg;
            }));
  set_named(env, result, "bytes", js_number(env, static_cast<double>(m.length)));
  set_named(env, result, "leased", js_bool(env, leased));
  return result;
}

// hostUnregister(registration) -> undefined; the lease ends with it. With copies still using
// the memory in place, the driver unregisters it when the last of them is done.
napi_value HostUnregister(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 1, "hostUnregister(registration)");
  PINPOOL_REQUIRE_HANDLE(0, Registration, r);
  if (!r->registered) return throw_error(env, code::kDoubleFree, "already unregistered");
  r->registered = false;
  CUresult rc = registrations::end(r->record);
  if (rc != CUDA_SUCCESS) napi_throw(env, cuda_error(env, rc, "unregister"));
  return nullptr;
}

}  // namespace

// watchGpu() -> number of operations it settled. Completion normally comes from the host
// function queued behind each operation, but the driver never calls those once the context has
// failed (a kernel fault of any library sharing it: cuda.h, cuLaunchHostFunc), and then no
// Promise would settle and the thread-safe function would keep Node alive for ever.
// src/gpu/completion.ts calls this every 100 ms while operations are pending: an operation whose
// event reports an error is settled with it (its fence signalled: the device will not touch the
// memory again), and one found complete twice without its host function is settled as done. The
// Op stays allocated until its host function runs, if it ever does.
napi_value WatchGpu(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 0, "watchGpu()");
  auto* state = static_cast<GpuState*>(function_data);
  int settled = 0;
  const std::vector<Op*> ops = state->watched;  // settling edits the list
  for (Op* op : ops) {
    if (!op->queued || op->settled) continue;
    CUresult rc = op->work.status();
    if (rc == CUDA_ERROR_NOT_READY) continue;
    if (rc == CUDA_SUCCESS && ++op->complete_reads < 2) continue;
    op->work.fence()->signal();
    op->settled = true;
    settle(env, op, rc);
    unpend(env, op);
    settled++;
  }
  if (settled > 0) Handler::reclaim_all();
  napi_value out;
  napi_create_int32(env, settled, &out);
  return out;
}

// This environment's GpuState: its thread-safe function, and a clean-up hook that closes it.
// Never freed: a CUDA driver thread may still be finishing a notify() with it when the
// environment goes. scripts/asan/lsan.supp suppresses that leak by this function's name, which
// LeakSanitizer prints in full only for a frame that was not inlined.
[[gnu::noinline]] GpuState* InitGpu(napi_env env) {
  auto* state = new GpuState();
  state->env = env;
  napi_value name;
  napi_create_string_utf8(env, "pinpool.gpu", NAPI_AUTO_LENGTH, &name);
  napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, nullptr,
                                  on_complete, &state->tsfn);
  napi_unref_threadsafe_function(env, state->tsfn);
  // Never referenced: while a submission is out, its operation is pending and `tsfn` keeps the
  // environment alive.
  napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, nullptr,
                                  on_submitted, &state->submitted);
  napi_unref_threadsafe_function(env, state->submitted);
  napi_add_env_cleanup_hook(
      env,
      [](void* data) {
        auto* s = static_cast<GpuState*>(data);
        // A copy in place of this environment's own memory (inside a registration) must be
        // over before the environment frees its ArrayBuffers, which happens next. The
        // references of queued operations go now, while the environment can still free them.
        for (Op* op : s->watched) {
          if (op->memory && !op->settled) op->work.wait();
          for (napi_ref* ref : {&op->memory, &op->destination}) {
            if (*ref) napi_delete_reference(s->env, *ref);
            *ref = nullptr;
          }
        }
        std::lock_guard<std::mutex> lock(s->mutex);
        s->closing = true;
        napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
        napi_release_threadsafe_function(s->submitted, napi_tsfn_abort);
        // `s` stays allocated: a driver thread may still be finishing a notify() with it.
      },
      state);
  return state;
}

void ExportGpu(napi_env env, napi_value exports) {
  // Each made with the environment's GpuState as its function data.
  export_functions(env, exports,
                   {{"copy", guarded<Copy>},
                    {"prefetch", guarded<Prefetch>},
                    {"advise", guarded<Advise>},
                    {"watchGpu", guarded<WatchGpu>},
                    {"deviceAlloc", guarded<DeviceAlloc>},
                    {"deviceFree", guarded<DeviceFree>},
                    {"createStream", guarded<CreateStream>},
                    {"hostRegister", guarded<HostRegister>},
                    {"hostUnregister", guarded<HostUnregister>}},
                   InitGpu(env));
}

}  // namespace pinpool::binding
