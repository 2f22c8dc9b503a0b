#include "buffer_lifetime.hpp"

#include <atomic>

#include "boundary.hpp"
#include "instance.hpp"
#include "module_exports.hpp"

namespace pinpool::binding {
namespace {

std::atomic<bool> moves{false};

}  // namespace

bool buffers_move() { return moves.load(std::memory_order_relaxed); }

bool can_run_js(napi_env env) {
  // Node-API refuses calls that may run JavaScript once the environment is ending (they return
  // napi_pending_exception); asking an object of our own for an element runs none. The object
  // is made once per environment (a finalizer runs this for every block).
  Instance* inst = instance(env);
  napi_value object = nullptr;
  bool has = false;
  if (!inst || !inst->probe || napi_get_reference_value(env, inst->probe, &object) != napi_ok ||
      !object)
    return false;
  return napi_has_element(env, object, 0, &has) == napi_ok;
}

void make_probe(napi_env env, Instance* inst) {
  napi_value object;
  if (napi_create_object(env, &object) == napi_ok)
    napi_create_reference(env, object, 1, &inst->probe);
}

napi_value hand_out(napi_env env, Instance* inst, napi_value made, napi_ref* watch) {
  *watch = nullptr;
  napi_value out = made;
  napi_value transfer;
  if (inst->transfer && napi_get_reference_value(env, inst->transfer, &transfer) == napi_ok &&
      transfer) {
    napi_value moved;
    if (napi_call_function(env, made, transfer, 0, nullptr, &moved) == napi_ok) {
      out = moved;
    } else {
      // Cannot happen for a fresh buffer; should it, hand out the first one (a worker then
      // counts it as gone at its end: orphaned, never risked).
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
    }
  }
  if (inst->watches_buffers) napi_create_reference(env, out, 0, watch);
  return out;
}

bool view_left_thread(napi_env env, napi_ref watch, bool dead) {
  if (!watch || dead) return false;  // nothing to watch (it never could leave), or it died
  napi_value value = nullptr;
  if (napi_get_reference_value(env, watch, &value) != napi_ok || value == nullptr) return true;
  bool detached = false;
  return napi_is_detached_arraybuffer(env, value, &detached) != napi_ok || detached;
}

bool left_thread(napi_env env, const LiveBlock& block) {
  return view_left_thread(env, block.watch, block.view && block.view->done());
}

namespace {

// setBufferMoves(ArrayBuffer.prototype.transfer | undefined, isMainThread): once per
// environment, from src/memory/take-back.ts.
napi_value SetBufferMoves(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 2, "setBufferMoves(transfer, isMainThread), once");
  auto* inst = static_cast<Instance*>(function_data);
  PINPOOL_REQUIRE_FUNCTION_OR_UNDEFINED(0, transfer);
  PINPOOL_REQUIRE_BOOL(1, main_thread);
  PINPOOL_REQUIRE(!inst->transfer);
  if (transfer) {
    napi_create_reference(env, transfer, 1, &inst->transfer);
    moves.store(true, std::memory_order_relaxed);
    inst->watches_buffers = !main_thread;
  }
  return nullptr;
}

// track(slot, address, arrayBuffer): a worker is about to hand out `arrayBuffer` (moved out of
// the block's external one, or kept by its thread cache) for the block in `slot`: watch it
// instead of the last one.
napi_value Track(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 3, "track(slot, address, arrayBuffer)");
  auto* inst = static_cast<Instance*>(function_data);
  PINPOOL_REQUIRE_NUMBER(0, slot);
  PINPOOL_REQUIRE_ADDRESS(1, ptr);
  PINPOOL_REQUIRE_ARRAYBUFFER(2, buffer);
  LiveBlock* block = inst->live.find(slot, ptr);
  if (!block)
    return throw_error(env, code::kInvalidArgument, "track: not a block this thread owns");
  if (!inst->watches_buffers) return nullptr;
  if (block->watch) napi_delete_reference(env, block->watch);
  block->watch = nullptr;
  napi_create_reference(env, buffer, 0, &block->watch);
  return nullptr;
}

}  // namespace

void ExportBufferLifetime(napi_env env, napi_value exports, Instance* inst) {
  export_functions(env, exports,
                   {{"setBufferMoves", guarded<SetBufferMoves>}, {"track", guarded<Track>}}, inst);
}

}  // namespace pinpool::binding
