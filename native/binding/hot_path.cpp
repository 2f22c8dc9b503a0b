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

#include "../core/fallback_log.hpp"
#include "../core/handler.hpp"
#include "../core/leases.hpp"
#include "../core/lock_cap.hpp"
#include "../handlers/limit_adaptor.hpp"
#include "../handlers/shared/shared_handler.hpp"
#include "../lifetime/transfers.hpp"
#include "../support/align.hpp"
#include "boundary.hpp"
#include "buffer_lifetime.hpp"
#include "handler_factory.hpp"
#include "instance.hpp"
#include "module_exports.hpp"
#include "thread_cache.hpp"

namespace pinpool::binding {
namespace {

// The external ArrayBuffer's finalizer. While the environment runs, its backing store is gone,
// so no ArrayBuffer (the first, or one that transfer() moved the memory into, in any thread)
// reaches the block any more. Once it is ending, Node calls it whatever became of the memory:
// where buffers can move, that proves nothing, and the lease is abandoned (buffer_lifetime.hpp).
void view_gone(napi_env env, void*, void* hint) {
  auto* view = static_cast<Fence*>(hint);
  if (buffers_move() && !can_run_js(env)) {
    view->abandon();
    view->release();
    return;
  }
  view->signal();
  view->release();
  // A free that waited for this buffer may belong to a handler no one calls any more (a pool
  // JavaScript dropped): finish it now. Node runs this from an immediate, not inside a
  // collection, so a driver call here is safe; with nothing waiting it is one load.
  Handler::reclaim_all();
}

// An ArrayBuffer over a block, and its lease (a fence with one reference for the caller).
// Where buffers move, JavaScript hands out one moved out of it, and a worker names that one
// with track() (src/memory/take-back.ts handOut(): a call into JavaScript from here costs more).
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

// An allocation failed: keep its PinpoolError for takeError() (the caller publishes fallback
// fallbacks first, then throws it) and return null.
napi_value failed(napi_env env, Instance* inst, napi_value error) {
  if (inst->last_error) napi_delete_reference(env, inst->last_error);
  napi_create_reference(env, error, 1, &inst->last_error);
  return js_null(env);
}

}  // namespace

bool take_back_view(napi_env env, napi_value buffer, const LiveBlock& block, bool by_gc,
                    FenceSet& leases) {
  // The common case, an ArrayBuffer pinpool can detach, in two Node-API calls (on Node 20 every
  // free() comes here): a value that is no ArrayBuffer is not detached, and detaching it fails.
  bool detached = false;
  if (napi_is_detached_arraybuffer(env, buffer, &detached) == napi_ok && detached) {
    if (block.view) leases.add(block.view);  // escaped: wait until no ArrayBuffer reaches it
    return true;
  }
  if (napi_detach_arraybuffer(env, buffer) == napi_ok) return true;
  bool is_buffer = false;
  if (napi_is_arraybuffer(env, buffer, &is_buffer) != napi_ok || is_buffer) return false;
  napi_valuetype type;
  if (napi_typeof(env, buffer, &type) == napi_ok && type == napi_null) {
    // JavaScript could not take the buffer back (src/memory/take-back.ts): moved away, or marked
    // untransferable, which Node-API's detach would abort the process on. Wait for it.
    if (block.view) leases.add(block.view);
    return true;
  }
  // The garbage collector found the first ArrayBuffer unreachable; one that transfer() made
  // may live on, so the block waits for the finalizer.
  if (by_gc && block.view) leases.add(block.view);
  return true;
}

namespace {

// alloc(handler, bytes, alignment, view) -> ArrayBuffer | undefined | null (failed: see
// takeError)
//   view (enum View): kNoView, no ArrayBuffer (a replay measures the allocator alone);
//   kBuffer, an ArrayBuffer over the block; kSlabOrBuffer, none when the block lies in a slab
//   of the handler called (kSlab says which: JavaScript views the slab), else one. Only the
//   pool knows where a block came from, so JavaScript does not guess.
napi_value HotAlloc(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 4, "alloc(handler, bytes, alignment, view)");
  auto* inst = static_cast<Instance*>(function_data);
  PINPOOL_REQUIRE_HANDLER(0, inst, h);
  PINPOOL_REQUIRE_SIZE(1, bytes);
  PINPOOL_REQUIRE_SIZE(2, alignment);
  PINPOOL_REQUIRE_SIZE(3, view);
  PINPOOL_REQUIRE(view <= kSlabOrBuffer);
  double* out = inst->slots;
  pinpool_alloc_info result{};
  // The fallback log holds this allocation's fallbacks only: a native addon's allocations on this
  // thread (the C API) may have left fallbacks whose handler names are gone since.
  fallback_log().count = 0;
  lock_refusal().set = false;   // likewise the page-lock refusal an error message quotes
  limit_refusal().set = false;  // and the limit's
  void* p = h->allocate(bytes, alignment, &result);
  if (!p)
    return failed(
        env, inst,
        alloc_error(env, h->name().c_str(), bytes, result.code, result.reason, result.cuda_error));
  LiveBlock block{nullptr, h, bytes, alignment, result.served_by, nullptr, {}};
  napi_value value = nullptr;  // undefined
  const bool make_buffer = view == kBuffer || (view == kSlabOrBuffer && !result.slab);
  if (make_buffer && !make_view(env, p, bytes, &block.view, &value)) {
    // Out of JavaScript heap, or external buffers are refused (a sandboxed runtime): give the
    // block back rather than lose it.
    h->deallocate(p, bytes, alignment);
    return failed(
        env, inst,
        make_error(env, code::kOutOfMemory,
                   "no ArrayBuffer could be made for " + std::to_string(bytes) + " bytes"));
  }
  h->retain();
  h->hold(p);  // JavaScript reaches it now: no C caller may free it (Handler::hold)
  block.ptr = p;
  out[kLiveSlot] = inst->live.add(std::move(block));
  out[kAddress] = address_value(p);
  const Handler* leaf = Handler::from_abi(result.served_by);
  out[kServedBy] = leaf ? static_cast<double>(leaf->id()) : 0;
  out[kSlab] = address_value(result.slab);
  out[kSlabBytes] = static_cast<double>(result.slab_bytes);
  // The route is read before anything else can allocate on this thread.
  const int route = bytes ? alloc_route() : -1;
  out[kRoute] = route;
  out[kPoolClassBytes] =
      route >= 0 ? static_cast<double>(h->routes()[route].back()->class_bytes(bytes, alignment))
                 : 0;
  return value;
}

// takeError() -> the PinpoolError of the last failed alloc() of this thread
napi_value TakeError(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 0, "takeError()");
  auto* inst = static_cast<Instance*>(function_data);
  napi_value error = nullptr;
  if (inst->last_error) {
    napi_get_reference_value(env, inst->last_error, &error);
    napi_delete_reference(env, inst->last_error);
    inst->last_error = nullptr;
  }
  return error ? error : make_error(env, code::kOutOfMemory, "allocation failed");
}

// The live block that free() or transfer() (`name`) names by (handler, _, slot, address):
// throws and returns nullptr when the arguments are of the wrong type (`call`) or name no block
// of this thread.
LiveBlock* named_block(const Call& call, Instance* inst, const napi_value* argv, const char* name) {
  PINPOOL_REQUIRE_HANDLER(0, inst, h);
  PINPOOL_REQUIRE_NUMBER(2, slot);
  PINPOOL_REQUIRE_ADDRESS(3, ptr);
  LiveBlock* block = inst->live.find(slot, ptr, h);
  if (!block)
    throw_error(call.env, code::kInvalidArgument,
                std::string(name) + ": not a block this thread owns");
  return block;
}

// free(handler, arrayBuffer | undefined, slot, address, byGc)
napi_value HotFree(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 5, "free(handler, buffer, slot, address, byGc)");
  auto* inst = static_cast<Instance*>(function_data);
  PINPOOL_REQUIRE_BOOL(4, by_gc);
  LiveBlock* block =
      named_block({env, "binding: free(handler, buffer, slot, address, ...)"}, inst, argv, "free");
  if (!block) return nullptr;
  FenceSet leases = std::move(block->inherited);
  if (!take_back_view(env, argv[1], *block, by_gc, leases))
    return throw_error(env, code::kInvalidArgument, "free: the buffer cannot be detached");
  block->handler->deallocate(block->ptr, block->bytes, block->alignment, by_gc, std::move(leases),
                             /*held=*/true);
  inst->live.remove(env, block);
  return nullptr;
}

// transfer(handler, arrayBuffer | undefined, slot, address, scope | undefined) -> { key, process }
//   scope: the cell of the named scope a block of this thread was allocated in (scopeCell()); a
//   block adopted here keeps the scope it came with.
napi_value Transfer(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 5, "transfer(handler, buffer, slot, address, scope)");
  auto* inst = static_cast<Instance*>(function_data);
  PINPOOL_REQUIRE_HANDLE_OR_UNDEFINED(4, ScopeCell, scope);
  PINPOOL_REQUIRE(argc >= 4);
  LiveBlock* block = named_block({env, "binding: transfer(handler, buffer, slot, address, ...)"},
                                 inst, argv, "transfer");
  if (!block) return nullptr;
  Handler* h = block->handler;
  void* ptr = block->ptr;
  transfers::Parcel parcel;
  parcel.leases = std::move(block->inherited);
  if (!take_back_view(env, argv[1], *block, false, parcel.leases))
    return throw_error(env, code::kInvalidArgument, "transfer: the buffer cannot be detached");
  h->retain();  // the parcel's own reference, handed to the adopting thread
  parcel.handler = h;
  parcel.ptr = ptr;
  parcel.bytes = block->bytes;
  parcel.alignment = block->alignment;
  parcel.served_by = block->served_by;
  // Still in use, elsewhere: the scope goes with the block, not to the live table's settling.
  parcel.scope = block->scope;
  block->scope = nullptr;
  if (!parcel.scope && scope) {
    scope->retain();
    parcel.scope = scope;
  }
  inst->live.remove(env, block);
  std::string key = transfers::park(std::move(parcel));
  napi_value result = js_object(env);
  set_named(env, result, "key", js_string(env, key));
  set_named(env, result, "process", js_string(env, transfers::process_key()));
  return result;
}

// adopt(key, process) -> { handler, buffer, bytes, alignment } or null when no parcel has
// that key; the address and leaf id land in scratch. A token of another process is refused.
napi_value Adopt(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 2, "adopt(key, process)");
  auto* inst = static_cast<Instance*>(function_data);
  PINPOOL_REQUIRE_STRING(0, key);
  PINPOOL_REQUIRE_STRING(1, process);
  if (process != transfers::process_key())
    return throw_error(env, code::kInvalidArgument, "adopt: the token was made in another process");
  transfers::Parcel p;
  if (!transfers::take(key, p)) return js_null(env);
  LiveBlock block{p.ptr, p.handler, p.bytes, p.alignment, p.served_by, nullptr, {}};
  block.inherited = std::move(p.leases);
  block.scope = p.scope;  // takes over the parcel's reference
  napi_value buffer;
  if (!make_view(env, p.ptr, p.bytes, &block.view, &buffer)) {
    p.handler->deallocate(p.ptr, p.bytes, p.alignment, false, std::move(block.inherited),
                          /*held=*/true);
    p.handler->release();
    if (block.scope) {
      block.scope->freed(p.bytes);
      block.scope->release();
    }
    return throw_error(env, code::kOutOfMemory,
                       "adopt: no ArrayBuffer could be made for the block");
  }
  double* out = inst->slots;
  out[kLiveSlot] = inst->live.add(std::move(block));  // takes over the parcel's reference
  p.handler->retain();                                // the wrapper's reference
  out[kAddress] = address_value(p.ptr);
  const Handler* leaf = Handler::from_abi(p.served_by);
  out[kServedBy] = leaf ? static_cast<double>(leaf->id()) : 0;
  napi_value result = js_object(env);
  set_named(env, result, "handler", wrap_handler(env, p.handler));
  set_named(env, result, "buffer", buffer);
  set_named(env, result, "bytes", js_number(env, static_cast<double>(p.bytes)));
  set_named(env, result, "alignment", js_number(env, static_cast<double>(p.alignment)));
  return result;
}

// giveShared(handler, arrayBuffer | undefined, slot, address, checkOnly) -> [unit, nonce]: hands a
//   block of a shared() leaf to whichever process adopts the ticket (nonce: 16 hexadecimal
//   digits). It leaves this process as a free would (statistics, named scope), still in use.
//   Refused, changing nothing, while anything here may still reach the memory: a copy in flight,
//   a registration, an ArrayBuffer that left the buffer. `checkOnly`: only those refusals, before
//   JavaScript takes the buffer back (which a refusal after it would leave detached).
napi_value GiveShared(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 5, "giveShared(handler, buffer, slot, address, checkOnly)");
  auto* inst = static_cast<Instance*>(function_data);
  PINPOOL_REQUIRE_BOOL(4, check_only);
  LiveBlock* block =
      named_block({env, "binding: giveShared(handler, buffer, slot, address, checkOnly)"}, inst,
                  argv, "transfer");
  if (!block) return nullptr;
  auto* shared = dynamic_cast<SharedHandler*>(block->handler);
  if (!shared)
    return throw_error(env, code::kInvalidArgument,
                       "transfer: only a block of a shared() handler can leave the process");
  const char* in_use =
      "transfer: the block cannot leave the process while something here still reaches it (a "
      "copy in flight, a registration, or an ArrayBuffer moved out of the buffer)";
  if (!block->inherited.all_done() || leases::overlaps(block->ptr, block->bytes))
    return throw_error(env, code::kInvalidArgument, in_use);
  if (check_only) return nullptr;
  FenceSet leases;
  if (!take_back_view(env, argv[1], *block, false, leases))
    return throw_error(env, code::kInvalidArgument, "transfer: the buffer cannot be detached");
  if (!leases.all_done()) {
    // Its ArrayBuffer was moved away before: the block stays here, to be freed (which waits).
    return throw_error(env, code::kInvalidArgument, in_use);
  }
  shared::Ticket ticket;
  if (!shared->hand_off(block->ptr, block->bytes, block->alignment, &ticket))
    return throw_error(env, code::kInvalidArgument, "transfer: not a block this process owns");
  inst->live.remove(env, block);
  char nonce[17];
  std::snprintf(nonce, sizeof nonce, "%016llx", static_cast<unsigned long long>(ticket.nonce));
  // An array, not an object: named properties cost more than the rest of a hand-off here.
  napi_value result;
  napi_create_array_with_length(env, 2, &result);
  napi_set_element(env, result, 0, js_number(env, static_cast<double>(ticket.unit)));
  napi_set_element(env, result, 1, js_string(env, nonce));
  return result;
}

// adoptShared(region, secret, unit, nonce, bytes) -> the block's ArrayBuffer, or null when the
//   ticket adopts nothing (adopted already, its giver died, or forged); its live slot, address
//   and handler id (the leaf's: the handler is the leaf) land in scratch, and its alignment is
//   the page size. Opens the region here when this process has not. No handler external is
//   made: blockHandler() makes one where this thread has no wrapper of the handler yet.
napi_value AdoptShared(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 5, "adoptShared(region, secret, unit, nonce, bytes)");
  auto* inst = static_cast<Instance*>(function_data);
  SharedOptions o;
  PINPOOL_REQUIRE_STRING(0, region);
  PINPOOL_REQUIRE_STRING(1, secret);
  PINPOOL_REQUIRE_SIZE(2, unit);
  PINPOOL_REQUIRE_STRING(3, nonce_hex);
  PINPOOL_REQUIRE_SIZE(4, bytes);
  char* end = nullptr;
  shared::Ticket ticket{unit, std::strtoull(nonce_hex.c_str(), &end, 16), 0};
  PINPOOL_REQUIRE(nonce_hex.size() == 16 && end == nonce_hex.c_str() + 16);
  o.region = region;
  o.secret = secret;
  int e = 0;
  SharedHandler* h = SharedHandler::open("shared-" + region, o, &e);
  if (!h) {
    Refusal refusal;
    shared_refusal(o, e, refusal);
    return throw_error(env, refusal.code, "adopt: " + refusal.message);
  }
  void* p = h->take_over(ticket, bytes);
  if (!p) {
    h->release();
    return js_null(env);
  }
  const size_t alignment = page_size();
  LiveBlock block{p, h, bytes, alignment, h->abi(), nullptr, {}};
  napi_value buffer;
  if (!make_view(env, p, bytes, &block.view, &buffer)) {
    h->deallocate(p, bytes, alignment);
    h->release();
    return throw_error(env, code::kOutOfMemory,
                       "adopt: no ArrayBuffer could be made for the block");
  }
  h->hold(p);
  double* out = inst->slots;
  out[kLiveSlot] = inst->live.add(std::move(block));  // takes over open()'s reference
  out[kAddress] = address_value(p);
  out[kServedBy] = static_cast<double>(h->id());
  return buffer;
}

// blockHandler(slot, address) -> an external of the handler of this thread's live block at
// (slot, address), with a new reference: for a wrapper of the handler a block was adopted into.
napi_value BlockHandler(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 2, "blockHandler(slot, address)");
  auto* inst = static_cast<Instance*>(function_data);
  PINPOOL_REQUIRE_NUMBER(0, slot);
  PINPOOL_REQUIRE_ADDRESS(1, ptr);
  LiveBlock* block = inst->live.find(slot, ptr);
  if (!block) return throw_error(env, code::kInvalidArgument, "blockHandler: no such block here");
  block->handler->retain();  // the external's
  return wrap_handler(env, block->handler);
}

}  // namespace

void ExportHotPath(napi_env env, napi_value exports, Instance* inst) {
  export_functions(env, exports,
                   {{"alloc", guarded<HotAlloc>},
                    {"free", guarded<HotFree>},
                    {"transfer", guarded<Transfer>},
                    {"adopt", guarded<Adopt>},
                    {"giveShared", guarded<GiveShared>},
                    {"adoptShared", guarded<AdoptShared>},
                    {"blockHandler", guarded<BlockHandler>},
                    {"takeError", guarded<TakeError>}},
                   inst);
}

Handler* Instance::handler(napi_env env, napi_value value) {
  void* data = nullptr;
  if (napi_get_value_external(env, value, &data) != napi_ok || !data) return nullptr;
  for (Handler* h : known)
    if (h == data) return h;
  auto* h = static_cast<Handler*>(unwrap_tagged(env, value, Tag::Handler));
  if (!h) return nullptr;
  h->retain();
  if (known[next_known]) known[next_known]->release();
  known[next_known] = h;
  next_known = (next_known + 1) % kKnownHandlers;
  return h;
}

void Instance::forget(Handler* h) {
  for (Handler*& k : known) {
    if (k != h) continue;
    k = nullptr;
    h->release();
  }
}

void release_handler_handle(napi_env env, void* data, void*) {
  auto* h = static_cast<Handler*>(data);
  if (Instance* inst = instance(env)) inst->forget(h);
  h->release();
}

napi_value wrap_handler(napi_env env, Handler* h) {
  return wrap_tagged(env, h, Tag::Handler, release_handler_handle);
}

void Instance::end(napi_env env) {
  if (ended) return;
  ended = true;
  napi_handle_scope scope;  // a clean-up hook runs outside any
  const bool scoped = napi_open_handle_scope(env, &scope) == napi_ok;
  // Thread caches first: the blocks they hold go back as cached blocks, not as collected ones
  // (their ArrayBuffers were never handed out).
  while (!caches.empty()) caches.back()->drop(env, /*ending=*/true);
  // The environment's JavaScript will never run again, so no ArrayBuffer of it can reach a
  // block any more; a copy still in flight holds its own lease (Handler::deallocate). One that
  // left the thread may: its block waits on a lease that never ends. Either way the block is
  // freed for its owner's accounting, its named scope's included (LiveTable::remove).
  // A block whose buffer pinpool itself was taking back when the thread stopped (free(),
  // transfer() or a thread cache's keep() between their transfer() and their native call):
  // that buffer's memory moved into one only pinpool held, in this thread.
  const double taking_back = slots[kTakingBack];
  live.each([&](LiveBlock& block) {
    FenceSet leases = std::move(block.inherited);
    const bool ours = static_cast<double>(&block - live.first()) == taking_back;
    if (!ours && left_thread(env, block)) {
      Fence* gone = Fence::create();
      gone->abandon();
      leases.adopt({gone});
    }
    block.handler->deallocate(block.ptr, block.bytes, block.alignment, /*by_gc=*/true,
                              std::move(leases), /*held=*/true);
    live.remove(env, &block);
  });
  end_slab_views(env, this);
  if (scoped) napi_close_handle_scope(env, scope);
}

Instance::~Instance() {
  for (Handler* h : known)
    if (h) h->release();
}

Instance* instance(napi_env env) {
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  return static_cast<Instance*>(data);
}

}  // namespace pinpool::binding
