// GPU operations for JavaScript: device memory, streams, asynchronous copies and prefetches
// whose completion settles a Promise, managed-memory advice, host registration, and frees
// deferred behind in-flight copies.
#pragma once

#include <napi.h>

namespace pinpool::binding {

void InitGpu(Napi::Env env, Napi::Object exports);

}  // namespace pinpool::binding
