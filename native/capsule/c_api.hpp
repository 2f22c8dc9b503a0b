// The C API table other native addons call (include/pinpool.h, pinpool_api): handlers made,
// read and trimmed through plain C functions. No Node-API here: the table compiles and is
// tested without Node (test/native/capsule_api.cpp).
#pragma once

#include "../../include/pinpool.h"

namespace pinpool::capsule {

// This copy's table. Its `version` is "unknown" until set_api_version() names the package
// version (a string that lives as long as the process), once, before the table is published.
const pinpool_api* api();
void set_api_version(const char* version);

}  // namespace pinpool::capsule
