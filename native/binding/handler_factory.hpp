// Builds a handler from its kind and the options object the TypeScript factory validated.
#pragma once

#include <node_api.h>

#include <string>
#include <vector>

#include "../core/handler.hpp"
#include "../handlers/shared/shared_handler.hpp"

namespace pinpool::binding {

// Why a handler was not made: a message, and the PinpoolError code it is thrown with (null:
// ERR_PINPOOL_INVALID_ARGUMENT, the caller's options).
struct Refusal {
  std::string message;
  const char* code = nullptr;
};

// Returns a handler holding one reference (the caller's), or nullptr with `error` set; or
// nullptr with `error` empty when reading `options` threw (a getter), that exception pending.
Handler* make_handler(napi_env env, const std::string& kind, napi_value options, Refusal& error);

// Why shared region `o` could not be made or opened (shared::Region's errno `e`).
void shared_refusal(const SharedOptions& o, int e, Refusal& error);

// A kind make_handler() knows: its name, and whether it is a leaf (it hands out its own memory)
// or an adaptor (it takes memory from upstream handlers).
struct HandlerKind {
  const char* name;
  bool leaf;
};
// Every kind, in one order: native code owns the list; constants().kinds hands it to JavaScript.
std::vector<HandlerKind> handler_kinds();

}  // namespace pinpool::binding
