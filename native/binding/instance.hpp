// What the binding keeps per JavaScript environment (the main thread, or one worker).
#pragma once

#include <node_api.h>

#include <cstdint>
#include <unordered_map>

#include "../core/fence.hpp"
#include "../core/handler.hpp"

namespace pinpool::binding {

// A block this environment's JavaScript owns (a HostBuffer, or a block replayTrace holds).
// Every one is here from alloc() (or adopt()) to free() (or transfer()), not only those that
// outlived a tick: a worker terminated in the middle of a synchronous loop loses nothing.
struct LiveBlock {
  Handler* handler;                     // holds a reference: memory returns to it only
  size_t bytes;                         // as allocated
  size_t alignment;                     // as allocated
  const pinpool_handler* served_by;     // the leaf whose memory it is (null: foreign)
  Fence* view = nullptr;                // signalled when no ArrayBuffer reaches the memory any
                                        // more (the external ArrayBuffer's finalizer); holds a
                                        // reference; null for a slab view or an empty block
  FenceSet inherited;                   // leases it came with (from the thread it left)
};

struct Instance {
  double* slots = nullptr;           // the scratch report array's storage (hot_path.hpp Slot)
  napi_ref scratch = nullptr;        // the Float64Array over `slots`
  napi_ref error_class = nullptr;    // PinpoolError, from setErrorClass()
  napi_ref last_error = nullptr;     // why the last alloc() failed, for takeError()
  std::unordered_map<uintptr_t, LiveBlock> live;  // blocks owned here, by address

  // The environment is ending: every block it owned goes back to its handler, each after the
  // leases on its memory (a copy still in flight) are over.
  ~Instance();
};

// This environment's Instance (napi_get_instance_data).
Instance* instance(napi_env env);

}  // namespace pinpool::binding
