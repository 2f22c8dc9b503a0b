// The native cells of named scopes (core/scope_cell.hpp): made by the scope's own thread the
// first time one of its buffers is transferred, and read when the scope's counts are read.
// transfer() (hot_path.cpp) hands a cell to the block it moves; nothing else takes one.
#include "../core/scope_cell.hpp"
#include "module_exports.hpp"

namespace pinpool::binding {
namespace {

// scopeCell() -> a new cell, freed of nothing yet
napi_value NewScopeCell(napi_env env, napi_callback_info) {
  return wrap_tagged(env, ScopeCell::create(), Tag::ScopeCell,
                     [](napi_env, void* data, void*) { static_cast<ScopeCell*>(data)->release(); });
}

// scopeFreed(cell) -> { bytes, buffers } freed away from the scope's thread so far
napi_value ScopeFreed(napi_env env, napi_callback_info info) {
  PINPOOL_ARGS(env, info, 1, "scopeFreed(cell)");
  PINPOOL_REQUIRE_HANDLE(0, ScopeCell, cell);
  napi_value result = js_object(env);
  set_named(env, result, "bytes", js_number(env, static_cast<double>(cell->bytes())));
  set_named(env, result, "buffers", js_number(env, static_cast<double>(cell->buffers())));
  return result;
}

}  // namespace

void ExportScopeCells(napi_env env, napi_value exports) {
  export_functions(env, exports,
                   {{"scopeCell", guarded<NewScopeCell>}, {"scopeFreed", guarded<ScopeFreed>}});
}

}  // namespace pinpool::binding
