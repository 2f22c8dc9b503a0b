// A per-thread record of the fallbacks made by the allocation in progress, so that
// tracing (the `pinpool:fallback` diagnostics channel) can say which handler stepped in and
// why. Off unless a thread turns it on; then a fallback costs one thread-local write.
#pragma once

#include "stats.hpp"

namespace pinpool {

struct Fallback {
  const char* handler;  // the fallback adaptor's name
  const char* from;     // its primary's name
  const char* to;       // its secondary's name
  Reason reason;
};

struct FallbackLog {
  static constexpr int kCapacity = 8;  // fallbacks kept per allocation; deeper chains are cut
  bool enabled = false;
  int count = 0;
  Fallback fallbacks[kCapacity];

  void note(const Fallback& fallback) {
    if (enabled && count < kCapacity) fallbacks[count++] = fallback;
  }
};

inline FallbackLog& fallback_log() {
  thread_local FallbackLog log;
  return log;
}

}  // namespace pinpool
