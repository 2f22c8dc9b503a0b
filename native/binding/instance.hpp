// What the binding keeps per JavaScript environment (the main thread, or one worker).
#pragma once

#include <node_api.h>

#include <cstdint>
#include <vector>

#include "../core/fence.hpp"
#include "../core/handler.hpp"

namespace pinpool::binding {

// A block this environment's JavaScript owns (a HostBuffer, or a block replayTrace holds).
// Every one is here from alloc() (or adopt()) to free() (or transfer()), not only those that
// outlived a tick: a worker terminated in the middle of a synchronous loop loses nothing.
struct LiveBlock {
  void* ptr = nullptr;                  // the block; null while the slot is free
  Handler* handler = nullptr;           // holds a reference: memory returns to it only
  size_t bytes = 0;                     // as allocated
  size_t alignment = 0;                 // as allocated
  const pinpool_handler* served_by = nullptr;  // the leaf whose memory it is (null: foreign)
  Fence* view = nullptr;                // signalled when no ArrayBuffer reaches the memory any
                                        // more (the external ArrayBuffer's finalizer); holds a
                                        // reference; null for a slab view or an empty block
  FenceSet inherited;                   // leases it came with (from the thread it left)
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
  // The block in `slot` if it is one of `handler`'s, else nullptr.
  LiveBlock* at(double slot, const Handler* handler) {
    if (!(slot >= 0 && slot < static_cast<double>(blocks_.size()))) return nullptr;
    LiveBlock& b = blocks_[static_cast<size_t>(slot)];
    return b.ptr && b.handler == handler ? &b : nullptr;
  }
  // Empties the slot of `block` (found by find()), releasing its references.
  void remove(LiveBlock* block) {
    if (block->view) block->view->release();
    block->handler->release();
    *block = LiveBlock{};
    free_.push_back(static_cast<uint32_t>(block - blocks_.data()));
  }
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

struct Instance {
  double* slots = nullptr;           // the scratch report array's storage (hot_path.hpp Slot)
  napi_ref scratch = nullptr;        // the Float64Array over `slots`
  napi_ref error_class = nullptr;    // PinpoolError, from setErrorClass()
  napi_ref last_error = nullptr;     // why the last alloc() failed, for takeError()
  LiveTable live;                    // blocks owned here
  std::vector<ThreadCache*> caches;  // thread caches made here and not yet dropped

  // Handlers whose externals passed the type-tag check lately, each holding a reference (so
  // none of these addresses can belong to anything else meanwhile). alloc() and free() accept
  // an external whose data is one of them without asking Node-API for its tag again: the check
  // costs more than the rest of a pool hit's native work.
  static constexpr int kKnownHandlers = 4;
  Handler* known[kKnownHandlers] = {};
  int next_known = 0;
  // The handler behind `value` if it is a handler's external, else nullptr.
  Handler* handler(napi_env env, napi_value value);

  // The environment is ending: every block it owned goes back to its handler, each after the
  // leases on its memory (a copy still in flight) are over.
  ~Instance();
};

// This environment's Instance (napi_get_instance_data).
Instance* instance(napi_env env);

// The Instance a plain Node-API function was made with (its function data), and its arguments.
inline Instance* instance_of(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv) {
  void* data = nullptr;
  napi_get_cb_info(env, info, argc, argv, nullptr, &data);
  return static_cast<Instance*>(data);
}

}  // namespace pinpool::binding
