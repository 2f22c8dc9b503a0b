// A per-thread record of the fallback hops made by the allocation in progress, so that
// tracing (the `pinpool:fallback` diagnostics channel) can say which handler stepped in and
// why. Off unless a thread turns it on; then a hop costs one thread-local write.
#pragma once

#include "stats.hpp"

namespace pinpool {

struct Hop {
  const char* handler;  // the fallback adaptor's name
  const char* from;     // its primary's name
  const char* to;       // its secondary's name
  Reason reason;
};

struct HopLog {
  static constexpr int kCapacity = 8;  // hops kept per allocation; deeper chains are cut
  bool enabled = false;
  int count = 0;
  Hop hops[kCapacity];

  void note(const Hop& hop) {
    if (enabled && count < kCapacity) hops[count++] = hop;
  }
};

inline HopLog& hop_log() {
  thread_local HopLog log;
  return log;
}

}  // namespace pinpool
