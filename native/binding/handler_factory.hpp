// Builds a handler from its kind and the options object the TypeScript factory validated.
#pragma once

#include <node_api.h>

#include <string>

#include "../core/handler.hpp"

namespace pinpool::binding {

// Returns a handler holding one reference (the caller's), or nullptr with `error` set; or
// nullptr with `error` empty when reading `options` threw (a getter), that exception pending.
Handler* make_handler(napi_env env, const std::string& kind, napi_value options,
                      std::string& error);

}  // namespace pinpool::binding
