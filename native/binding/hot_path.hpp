// alloc and free, the binding's hot path, in plain Node-API (see hot_path.cpp), and the other
// calls that hand a block's ownership over: transfer and adopt.
#pragma once

#include <node_api.h>

#include "../core/fence.hpp"

namespace pinpool::binding {

// Layout of the per-thread scratch array that alloc() and adopt() write their report into.
// JavaScript reads the layout from constants().slots. Positional numbers in one Float64Array, not
// a record, on purpose: alloc() runs for every block that reaches native code, and an object
// per call would be made here and collected there each time; the cold calls return records.
enum Slot {
  kAddress = 0,         // the block's address
  kServedBy = 1,        // id of the leaf that served it (0: a foreign handler)
  kSlab = 2,            // address of the slab holding the block, or 0
  kSlabBytes = 3,       // its size, in bytes
  kLiveSlot = 4,        // the block's slot in the live table, for free() and transfer()
  kPoolClassBytes = 5,  // what the pool of its route holds for it (its size class), or 0: a
                        // thread cache may keep the block only when this is not 0
                        // (Handler::class_bytes())
  kTakingBack = 6,      // written by JavaScript: the live slot whose ArrayBuffer pinpool itself
                        // just detached and whose native call has not come yet, else -1
                        // (a thread ended in between has not lost that buffer: Instance::end)
  kRoute = 7,           // the route it took among the handler's routes(), or -1: no pool of
                        // ours classed it (core/handler.hpp alloc_route())
  kSlotCount = 8
};

// What alloc() gives JavaScript to reach the block (src/boundary/native.ts View).
enum View { kNoView = 0, kBuffer = 1, kSlabOrBuffer = 2 };

struct LiveBlock;

// Detaches `buffer` (the block's own ArrayBuffer, or undefined) and adds to `leases` what must
// end before the block is reused. False when it cannot be detached.
bool take_back_view(napi_env env, napi_value buffer, const LiveBlock& block, bool by_gc,
                    FenceSet& leases);

}  // namespace pinpool::binding
