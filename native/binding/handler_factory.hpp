// Builds a handler from its kind and the options object the TypeScript factory validated.
#pragma once

#include <napi.h>

#include <string>

#include "../core/handler.hpp"

namespace pinpool::binding {

// Returns a handler holding one reference (the caller's), or nullptr with `error` set.
Handler* make_handler(const std::string& kind, const Napi::Object& options, std::string& error);

}  // namespace pinpool::binding
