// The native half of a thread cache: the per-thread JavaScript cache in front of a handler
// (src/memory/thread-cache.ts), for the blocks of one of its routes (core/handler.hpp): a pool
// itself, or a chain (a fallback, a limit) down to one pool in it. A hit there never calls into
// native code: a freed block waits in the thread's cache, with its ArrayBuffer, for the thread's
// next allocation of its size from the same handler.
//
// What native code keeps of a cache is its record of counts and slots, shared with JavaScript
// as a Float64Array:
//   cells[0 .. kCellCount)        the counts the pool folds into its statistics
//                                 (core/thread_caches.hpp);
//   cells[kCellCount + position]  the live-table slot of a block the cache holds, or -1.
// The record is added to every handler of the route, so each folds it into its statistics (and
// each can ask for the blocks back: a trim, a pool over its cap, a limit that refused).
// Every block a cache holds stays in its environment's live table, owned by the thread, so
// when the cache is dropped (its Handler wrapper was collected, or its environment ended)
// native code finds each block and returns it to the pool, after the leases on it.
#pragma once

#include <node_api.h>

#include "../core/handler.hpp"
#include "../core/thread_caches.hpp"

namespace pinpool::binding {

struct Instance;

struct ThreadCache {
  static constexpr int kPositions = 256;  // blocks one cache holds at most

  double cells[thread_caches::kCellCount + kPositions];
  Route route;  // the handlers the record is added to, each with a reference: the first is
                // the one the blocks were allocated from, the last the pool that caches them
  Instance* instance = nullptr;  // its environment; nullptr once dropped
  int refs = 0;                  // the instance's list, the External, the cells' ArrayBuffer,
                                 // the trim notice
  napi_threadsafe_function trim_notice = nullptr;  // queues trimAsked on the cache's thread

  // Returns every block the cache holds to the pool and folds its counts in for good.
  // `ending`: the environment is ending, so no ArrayBuffer of it can reach a block any more.
  void drop(napi_env env, bool ending);
  void release();
};

}  // namespace pinpool::binding
