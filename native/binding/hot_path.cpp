// The calls that move a block's ownership between native code and JavaScript: alloc and free
// (made for every buffer, so in plain Node-API C: node-addon-api's wrappers cost several
// hundred nanoseconds a call here, plain Node-API about 80 ns), transfer and adopt.
//
// Each block JavaScript owns is in its environment's live table (instance.hpp) from alloc to
// free, with the lease of its ArrayBuffer: the external ArrayBuffer's finalizer signals a fence
// when no ArrayBuffer reaches the memory any more. free() detaches the buffer it was given; if
// that buffer was detached already, its memory escaped (ArrayBuffer.prototype.transfer() moved
// it into a new ArrayBuffer), and the block waits for that fence before it can be reused.
#include "hot_path.hpp"

#include "../core/handler.hpp"
#include "../core/transfers.hpp"
#include "boundary.hpp"
#include "instance.hpp"

namespace pinpool::binding {
namespace {

Instance* instance_of(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv) {
  void* data = nullptr;
  napi_get_cb_info(env, info, argc, argv, nullptr, &data);
  return static_cast<Instance*>(data);
}

Handler* get_handler(napi_env env, napi_value v) {
  return static_cast<Handler*>(unwrap_tagged(env, v, Tag::Handler));
}

// The external ArrayBuffer's finalizer: its backing store is gone, so no ArrayBuffer (the
// first, or one that transfer() moved the memory into) reaches the block any more.
void view_gone(napi_env, void*, void* hint) {
  auto* view = static_cast<Fence*>(hint);
  view->signal();
  view->release();
}

// An ArrayBuffer over a block, and its lease (a fence with one reference for the caller).
bool make_view(napi_env env, void* ptr, size_t bytes, Fence** view, napi_value* out) {
  if (bytes == 0) return napi_create_arraybuffer(env, 0, nullptr, out) == napi_ok;
  Fence* fence = Fence::create();  // this reference is the finalizer's
  if (napi_create_external_arraybuffer(env, ptr, bytes, view_gone, fence, out) != napi_ok) {
    fence->release();
    return false;
  }
  fence->retain();
  *view = fence;
  return true;
}

// Detaches `buffer` (the block's own ArrayBuffer, or undefined) and adds to `leases` what must
// end before the block is reused. False when it cannot be detached.
bool take_back_view(napi_env env, napi_value buffer, const LiveBlock& block, bool by_gc,
                    FenceSet& leases) {
  bool is_buffer = false;
  napi_is_arraybuffer(env, buffer, &is_buffer);
  if (is_buffer) {
    bool detached = false;
    napi_is_detached_arraybuffer(env, buffer, &detached);
    if (detached) {
      if (block.view) leases.add(block.view);  // escaped: wait until no ArrayBuffer reaches it
      return true;
    }
    return napi_detach_arraybuffer(env, buffer) == napi_ok;
  }
  // The garbage collector found the first ArrayBuffer unreachable; one that transfer() made
  // may live on, so the block waits for the finalizer.
  if (by_gc && block.view) leases.add(block.view);
  return true;
}

void forget(Instance* inst, std::unordered_map<uintptr_t, LiveBlock>::iterator it) {
  if (it->second.view) it->second.view->release();
  it->second.handler->release();
  inst->live.erase(it);
}

napi_value null_value(napi_env env) {
  napi_value v;
  napi_get_null(env, &v);
  return v;
}

// Finds the live block a free or transfer names, checking that the caller's view of it
// (handler, bytes, alignment) is the truth.
LiveBlock* find_live(Instance* inst, Handler* h, void* ptr, size_t bytes, size_t alignment,
                     std::unordered_map<uintptr_t, LiveBlock>::iterator* where) {
  auto it = inst->live.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == inst->live.end() || it->second.handler != h || it->second.bytes != bytes ||
      it->second.alignment != alignment)
    return nullptr;
  *where = it;
  return &it->second;
}

}  // namespace

// alloc(handler, bytes, alignment, view) -> ArrayBuffer | undefined | null (failed)
//   view (enum View): kNoView, no ArrayBuffer (a replay measures the allocator alone);
//   kBuffer, an ArrayBuffer over the block; kSlabOrBuffer, none when the block lies in a slab
//   of the handler called (kRegion says which: JavaScript views the slab), else one. Only the
//   pool knows where a block came from, so JavaScript does not guess.
napi_value HotAlloc(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  Instance* inst = instance_of(env, info, &argc, argv);
  Handler* h;
  size_t bytes, alignment, view;
  if (argc < 4 || !(h = get_handler(env, argv[0])) || !get_size(env, argv[1], &bytes) ||
      !get_size(env, argv[2], &alignment) || !get_size(env, argv[3], &view) || view > kSlabOrBuffer)
    return throw_error(env, code::kInvalidArgument, "binding: alloc(handler, bytes, alignment, view)");
  double* out = inst->slots;
  pinpool_alloc_info result{};
  void* p = h->allocate(bytes, alignment, &result);
  if (!p) {
    out[kCode] = result.code;
    out[kCudaError] = result.cuda_error;
    out[kReason] = reason_index(result.reason);
    return null_value(env);
  }
  LiveBlock block{h, bytes, alignment, result.served_by, nullptr, {}};
  napi_value value = nullptr;  // undefined
  const bool make_buffer = view == kBuffer || (view == kSlabOrBuffer && !result.region);
  if (make_buffer && !make_view(env, p, bytes, &block.view, &value)) {
    // Out of JavaScript heap, or external buffers are refused (a sandboxed runtime): give the
    // block back rather than lose it.
    h->deallocate(p, bytes, alignment);
    out[kCode] = PINPOOL_ERR_OUT_OF_MEMORY;
    out[kCudaError] = 0;
    out[kReason] = static_cast<double>(Reason::OutOfMemory);
    return null_value(env);
  }
  h->retain();
  inst->live.insert_or_assign(reinterpret_cast<uintptr_t>(p), std::move(block));
  out[kAddress] = address_value(p);
  const Handler* leaf = Handler::from_abi(result.served_by);
  out[kServedBy] = leaf ? static_cast<double>(leaf->id()) : 0;
  out[kCode] = 0;
  out[kRegion] = address_value(result.region);
  out[kRegionBytes] = static_cast<double>(result.region_bytes);
  return value;
}

// free(handler, arrayBuffer | undefined, address, bytes, alignment, byGc)
napi_value HotFree(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  Instance* inst = instance_of(env, info, &argc, argv);
  Handler* h;
  void* ptr;
  size_t bytes, alignment;
  bool by_gc = false;
  if (argc < 6 || !(h = get_handler(env, argv[0])) || !get_address(env, argv[2], &ptr) ||
      !get_size(env, argv[3], &bytes) || !get_size(env, argv[4], &alignment) ||
      !get_bool(env, argv[5], &by_gc))
    return throw_error(env, code::kInvalidArgument, "binding: free(handler, buffer, address, bytes, alignment, byGc)");
  std::unordered_map<uintptr_t, LiveBlock>::iterator it;
  LiveBlock* block = find_live(inst, h, ptr, bytes, alignment, &it);
  if (!block) return throw_error(env, code::kInvalidArgument, "free: not a block this thread owns");
  FenceSet leases = std::move(block->inherited);
  if (!take_back_view(env, argv[1], *block, by_gc, leases))
    return throw_error(env, code::kInvalidArgument, "free: the buffer cannot be detached");
  h->deallocate(ptr, bytes, alignment, by_gc, std::move(leases));
  forget(inst, it);
  return nullptr;
}

// transfer(handler, arrayBuffer | undefined, address, bytes, alignment) -> [key, process]
napi_value Transfer(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  Instance* inst = instance_of(env, info, &argc, argv);
  Handler* h;
  void* ptr;
  size_t bytes, alignment;
  if (argc < 5 || !(h = get_handler(env, argv[0])) || !get_address(env, argv[2], &ptr) ||
      !get_size(env, argv[3], &bytes) || !get_size(env, argv[4], &alignment))
    return throw_error(env, code::kInvalidArgument, "binding: transfer(handler, buffer, address, bytes, alignment)");
  std::unordered_map<uintptr_t, LiveBlock>::iterator it;
  LiveBlock* block = find_live(inst, h, ptr, bytes, alignment, &it);
  if (!block) return throw_error(env, code::kInvalidArgument, "transfer: not a block this thread owns");
  transfers::Parcel parcel;
  parcel.leases = std::move(block->inherited);
  if (!take_back_view(env, argv[1], *block, false, parcel.leases))
    return throw_error(env, code::kInvalidArgument, "transfer: the buffer cannot be detached");
  h->retain();  // the parcel's own reference, handed to the adopting thread
  parcel.handler = h;
  parcel.ptr = ptr;
  parcel.bytes = bytes;
  parcel.alignment = alignment;
  parcel.served_by = block->served_by;
  forget(inst, it);
  std::string key = transfers::park(std::move(parcel));
  napi_value result, key_value, process_value;
  napi_create_array_with_length(env, 2, &result);
  napi_create_string_utf8(env, key.c_str(), key.size(), &key_value);
  napi_create_string_utf8(env, transfers::process_key().c_str(), NAPI_AUTO_LENGTH, &process_value);
  napi_set_element(env, result, 0, key_value);
  napi_set_element(env, result, 1, process_value);
  return result;
}

// adopt(key, process) -> [handler, arrayBuffer, bytes, alignment] or null when no parcel has
// that key; the address and leaf id land in scratch. A token of another process is refused.
napi_value Adopt(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  Instance* inst = instance_of(env, info, &argc, argv);
  char key[40], process[24];
  size_t key_length = 0, process_length = 0;
  if (argc < 2 ||
      napi_get_value_string_utf8(env, argv[0], key, sizeof key, &key_length) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], process, sizeof process, &process_length) != napi_ok)
    return throw_error(env, code::kInvalidArgument, "binding: adopt(key, process)");
  if (std::string(process, process_length) != transfers::process_key())
    return throw_error(env, code::kInvalidArgument, "adopt: the token was made in another process");
  transfers::Parcel p;
  if (!transfers::take(std::string(key, key_length), p)) return null_value(env);
  LiveBlock block{p.handler, p.bytes, p.alignment, p.served_by, nullptr, {}};
  block.inherited = std::move(p.leases);
  napi_value buffer;
  if (!make_view(env, p.ptr, p.bytes, &block.view, &buffer)) {
    p.handler->deallocate(p.ptr, p.bytes, p.alignment, false, std::move(block.inherited));
    p.handler->release();
    return throw_error(env, code::kOutOfMemory, "adopt: no ArrayBuffer could be made for the block");
  }
  inst->live.insert_or_assign(reinterpret_cast<uintptr_t>(p.ptr), std::move(block));  // takes over the parcel's reference
  p.handler->retain();  // the wrapper's reference
  double* out = inst->slots;
  out[kAddress] = address_value(p.ptr);
  const Handler* leaf = Handler::from_abi(p.served_by);
  out[kServedBy] = leaf ? static_cast<double>(leaf->id()) : 0;
  napi_value result, handle, bytes, alignment;
  handle = wrap_tagged(env, p.handler, Tag::Handler,
                       [](napi_env, void* data, void*) { static_cast<Handler*>(data)->release(); });
  napi_create_double(env, static_cast<double>(p.bytes), &bytes);
  napi_create_double(env, static_cast<double>(p.alignment), &alignment);
  napi_create_array_with_length(env, 4, &result);
  napi_set_element(env, result, 0, handle);
  napi_set_element(env, result, 1, buffer);
  napi_set_element(env, result, 2, bytes);
  napi_set_element(env, result, 3, alignment);
  return result;
}

Instance::~Instance() {
  // The environment's JavaScript will never run again, so no ArrayBuffer of it can reach a
  // block any more; a copy still in flight holds its own lease (Handler::deallocate).
  for (auto& [address, block] : live) {
    block.handler->deallocate(reinterpret_cast<void*>(address), block.bytes, block.alignment,
                              /*by_gc=*/true, std::move(block.inherited));
    if (block.view) block.view->release();
    block.handler->release();
  }
}

Instance* instance(napi_env env) {
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  return static_cast<Instance*>(data);
}

}  // namespace pinpool::binding
