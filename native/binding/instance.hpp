// What the binding keeps per JavaScript environment (the main thread, or one worker).
#pragma once

#include <node_api.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "../core/fence.hpp"
#include "../core/handler.hpp"
#include "../core/scope_cell.hpp"

namespace pinpool::binding {

// A block this environment's JavaScript owns (a HostBuffer, or a block replayTrace holds).
// Every one is here from alloc() (or adopt()) to free() (or transfer()), not only those that
// outlived a tick: a worker terminated in the middle of a synchronous loop loses nothing.
struct LiveBlock {
  void* ptr = nullptr;                         // the block; null while the slot is free
  Handler* handler = nullptr;                  // holds a reference: memory returns to it only
  size_t bytes = 0;                            // as allocated
  size_t alignment = 0;                        // as allocated
  const pinpool_handler* served_by = nullptr;  // the leaf whose memory it is (null: foreign)
  Fence* view = nullptr;       // signalled when no ArrayBuffer reaches the memory any
                               // more (the external ArrayBuffer's finalizer); holds a
                               // reference; null for a slab view or an empty block
  FenceSet inherited;          // leases it came with (from the thread it left)
  napi_ref watch = nullptr;    // a worker's weak reference to the ArrayBuffer
                               // JavaScript was handed (buffer_lifetime.hpp)
  ScopeCell* scope = nullptr;  // an adopted block's named scope, where it is counted
                               // when it leaves this table (not by transfer());
                               // holds a reference; null for every other block
};

// The live blocks by slot: alloc() tells JavaScript the slot (in scratch), free() and
// transfer() name it back, and the block's address must match. A slot costs a vector index,
// where a map by address cost more than the rest of a pool hit's native work.
class LiveTable {
 public:
  uint32_t add(LiveBlock&& block) {
    if (free_.empty()) {
      blocks_.push_back(std::move(block));
      return static_cast<uint32_t>(blocks_.size() - 1);
    }
    uint32_t slot = free_.back();
    free_.pop_back();
    blocks_[slot] = std::move(block);
    return slot;
  }
  // The block in `slot` if it is `ptr` from `handler`, else nullptr.
  LiveBlock* find(double slot, const void* ptr, const Handler* handler) {
    if (!(slot >= 0 && slot < static_cast<double>(blocks_.size()))) return nullptr;
    LiveBlock& b = blocks_[static_cast<size_t>(slot)];
    return b.ptr && b.ptr == ptr && b.handler == handler ? &b : nullptr;
  }
  // The block in `slot` if it is `ptr`, whoever's, else nullptr.
  LiveBlock* find(double slot, const void* ptr) {
    if (!(slot >= 0 && slot < static_cast<double>(blocks_.size()))) return nullptr;
    LiveBlock& b = blocks_[static_cast<size_t>(slot)];
    return b.ptr && b.ptr == ptr ? &b : nullptr;
  }
  // The block in `slot` if it is one of `handler`'s, else nullptr.
  LiveBlock* at(double slot, const Handler* handler) {
    if (!(slot >= 0 && slot < static_cast<double>(blocks_.size()))) return nullptr;
    LiveBlock& b = blocks_[static_cast<size_t>(slot)];
    return b.ptr && b.handler == handler ? &b : nullptr;
  }
  // Empties the slot of `block` (found by find()), releasing its references. The block is
  // freed for its scope's accounting here, whatever ends it (free, collection, the thread's
  // end, orphaned or not): transfer() takes the scope out first.
  void remove(napi_env env, LiveBlock* block) {
    if (block->scope) {
      block->scope->freed(block->bytes);
      block->scope->release();
    }
    if (block->watch) napi_delete_reference(env, block->watch);
    if (block->view) block->view->release();
    block->handler->release();
    *block = LiveBlock{};
    free_.push_back(static_cast<uint32_t>(block - blocks_.data()));
  }
  // The first slot's block (slots are indices from it).
  const LiveBlock* first() const { return blocks_.data(); }
  template <typename F>
  void each(F&& f) {
    for (LiveBlock& b : blocks_)
      if (b.ptr) f(b);
  }

 private:
  std::vector<LiveBlock> blocks_;  // by slot
  std::vector<uint32_t> free_;     // empty slots
};

struct ThreadCache;
struct SlabLease;

// A worker's view of a slab (slab_views.cpp), watched like a block's ArrayBuffer.
struct SlabViewRecord {
  napi_ref watch = nullptr;        // weak reference to the slab's ArrayBuffer as handed out
  std::weak_ptr<SlabLease> lease;  // the view's lease, while anything holds it
};

struct Instance {
  napi_env env = nullptr;                  // the environment it belongs to
  double* slots = nullptr;                 // the scratch report array's storage (hot_path.hpp Slot)
  napi_ref scratch = nullptr;              // the Float64Array over `slots`
  napi_ref error_class = nullptr;          // PinpoolError, from setErrorClass()
  napi_ref last_error = nullptr;           // why the last alloc() failed, for takeError()
  LiveTable live;                          // blocks owned here
  std::vector<ThreadCache*> caches;        // thread caches made here and not yet dropped
  napi_ref transfer = nullptr;             // ArrayBuffer.prototype.transfer where buffers move
  napi_ref probe = nullptr;                // can_run_js()'s object (buffer_lifetime.cpp)
  bool watches_buffers = false;            // a worker where buffers move (buffer_lifetime.hpp)
  bool ended = false;                      // end() ran
  std::vector<SlabViewRecord> slab_views;  // a worker's slab views, watched
  std::vector<void*> ending_leases;        // slab views' leases whose finalizers ran as the
                                           // environment ended, decided by end() (slab_views.cpp)

  // Handlers whose externals passed the type-tag check lately, each holding a reference (so
  // none of these addresses can belong to anything else meanwhile). alloc() and free() accept
  // an external whose data is one of them without asking Node-API for its tag again: the check
  // costs more than the rest of a pool hit's native work.
  static constexpr int kKnownHandlers = 4;
  Handler* known[kKnownHandlers] = {};
  int next_known = 0;
  // The handler behind `value` if it is a handler's external, else nullptr.
  Handler* handler(napi_env env, napi_value value);
  // Drops `h` from `known` (one of its externals here was collected): a handler JavaScript let
  // go of must not be kept alive, with a pool's cached memory, by this cache.
  void forget(Handler* h);

  // The environment is ending (a clean-up hook, while Node-API references still work): its
  // thread caches give their blocks back; every block it owned goes back to its handler, each
  // after the leases on its memory (a copy still in flight) are over, except a block whose
  // ArrayBuffer may have left the thread, which is orphaned; the same for its slab views.
  void end(napi_env env);
  ~Instance();
};

// At the end of `inst`'s environment: its slab views' leases go, except those whose view may
// have left the thread, which are orphaned (slab_views.cpp).
void end_slab_views(napi_env env, Instance* inst);

// The finalizer of a handler's external: forgets it in this environment's `known` cache, then
// releases the external's reference.
void release_handler_handle(napi_env env, void* data, void* hint);
// Wraps a handler reference (already counted) for JavaScript; the wrapper releases it.
napi_value wrap_handler(napi_env env, Handler* h);

// This environment's Instance (napi_get_instance_data).
Instance* instance(napi_env env);

}  // namespace pinpool::binding
