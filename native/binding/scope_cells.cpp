// The native cells of named scopes (core/scope_cell.hpp): made by the scope's own thread the
// first time one of its buffers is transferred, and read when the scope's counts are read.
// transfer() (hot_path.cpp) hands a cell to the block it moves; nothing else takes one.
#include "calls.hpp"
#include "../core/scope_cell.hpp"

namespace pinpool::binding {
namespace {

// scopeCell() -> a new cell, freed of nothing yet
Napi::Value NewScopeCell(const Napi::CallbackInfo& info) {
  return Napi::Value(info.Env(), wrap_tagged(info.Env(), ScopeCell::create(), Tag::ScopeCell,
                                             [](napi_env, void* data, void*) { static_cast<ScopeCell*>(data)->release(); }));
}

// scopeFreed(cell) -> [bytes, buffers] freed away from the scope's thread so far
Napi::Value ScopeFreed(const Napi::CallbackInfo& info) {
  auto* cell = info.Length() < 1 ? nullptr
                                 : static_cast<ScopeCell*>(unwrap_tagged(info.Env(), info[0], Tag::ScopeCell));
  PINPOOL_CHECK(cell, "scopeFreed(cell)");
  Napi::Array result = Napi::Array::New(info.Env(), 2);
  result.Set(0u, Napi::Number::New(info.Env(), static_cast<double>(cell->bytes())));
  result.Set(1u, Napi::Number::New(info.Env(), static_cast<double>(cell->buffers())));
  return result;
}

}  // namespace

void InitScopeCells(Napi::Env env, Napi::Object exports) {
  exports.Set("scopeCell", Napi::Function::New(env, NewScopeCell, "scopeCell"));
  exports.Set("scopeFreed", Napi::Function::New(env, ScopeFreed, "scopeFreed"));
}

}  // namespace pinpool::binding
