// The binding files' exports: each file sets its own JavaScript keys, next to the functions
// behind them (a table of {name, guarded<Function>}), and addon.cpp calls these in turn, keeping
// each file's keys as one group (src/boundary/native.ts declares one interface per group;
// test/host/binding.test.ts holds the two sides together).
// (exports.map is something else: the symbols the linker lets the addon export.)
#pragma once

#include <node_api.h>

#include "boundary.hpp"
#include "instance.hpp"

namespace pinpool::binding {

// Those taking `inst` make their functions with the environment's Instance as function data.
void ExportHotPath(napi_env env, napi_value exports, Instance* inst);         // hot_path.cpp
void ExportBoundary(napi_env env, napi_value exports);                        // boundary.cpp
void ExportThreadCache(napi_env env, napi_value exports, Instance* inst);     // thread_cache.cpp
void ExportBufferLifetime(napi_env env, napi_value exports, Instance* inst);  // buffer_lifetime.cpp
void ExportHandlerCalls(napi_env env, napi_value exports);                    // handler_calls.cpp
void ExportSlabViews(napi_env env, napi_value exports);                       // slab_views.cpp
void ExportFallbacks(napi_env env, napi_value exports);                       // fallbacks.cpp
void ExportGpu(napi_env env, napi_value exports);                             // gpu.cpp
void ExportCapsule(napi_env env, napi_value exports);                         // capsule.cpp
void ExportScopeCells(napi_env env, napi_value exports);                      // scope_cells.cpp
// A test build's only (PINPOOL_TESTING): exports.testing, with the hooks and `groups` (the keys
// of each group above, by file).
void ExportTesting(napi_env env, napi_value exports, napi_value groups);  // testing.cpp

}  // namespace pinpool::binding
