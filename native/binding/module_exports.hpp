// The binding files' exports: each file sets its own JavaScript keys, next to the functions
// behind them (a table of {name, guarded<Function>}), and addon.cpp calls these in turn.
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
void ExportHops(napi_env env, napi_value exports);                            // hops.cpp
void ExportGpu(napi_env env, napi_value exports);                             // gpu.cpp
void ExportCapsule(napi_env env, napi_value exports);                         // capsule.cpp
void ExportScopeCells(napi_env env, napi_value exports);                      // scope_cells.cpp

}  // namespace pinpool::binding
