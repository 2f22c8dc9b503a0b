// The process-wide registry (include/pinpool.h, pinpool_registry): the first copy of pinpool
// to publish one is the process's pinpool; every later copy, older or newer, finds it and uses
// that copy instead of its own (docs/decisions/0012-one-pinpool-per-process.md;
// docs/decisions/seed-000-capsule.md).
//
// How copies find each other. Node loads each addon with dlopen(RTLD_LAZY), so one copy's
// symbols are invisible to another. At load each copy promotes its own file to the global
// scope (dlopen(its path, RTLD_NOLOAD | RTLD_LAZY | RTLD_GLOBAL)); the global scope only grows,
// by appending, so dlsym(RTLD_DEFAULT, "pinpool_capsule_publish") gives every copy, in any
// thread, the function of the first copy promoted. That function holds the one slot: the first
// registry published there wins (a compare-and-swap) and never changes.
//
// Why promoting is safe: the addon exports nothing else (CMakeLists.txt: hidden visibility and
// a version script), so a later copy's calls inside itself can never bind to an earlier copy's
// functions, and its own pinpool_capsule_publish is protected: bound inside the copy, not
// interposed. Only the dlsym lookup crosses copies.
#pragma once

#include <string>

#include "../../include/pinpool.h"

namespace pinpool::capsule {

// Promotes this addon to the global scope; returns false (with `why`) when it cannot, in which
// case find() sees only copies that could.
bool promote(std::string& why);

// Fills this copy's registry (once: later calls keep the first values) and publishes it unless
// another copy's is published already. Returns the process's registry, never null: this copy's
// when it is the first, or when no copy could be found in the global scope.
const pinpool_registry* publish(const std::string& version, const std::string& entry);

// This copy's own registry (filled or not).
const pinpool_registry* own();

// The path of this addon's file, as the dynamic linker knows it.
std::string addon_path();

}  // namespace pinpool::capsule
