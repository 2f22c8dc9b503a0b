// A small test-and-test-and-set lock for critical sections of a few dozen instructions (a pool's
// free-list push or pop). Cheaper than a pthread mutex on the uncontended path; under contention
// it yields the CPU instead of spinning hard, so a preempted holder is not starved.
#pragma once

#include <atomic>
#include <thread>

namespace pinpool {

class SpinLock {
 public:
  void lock() {
    for (int spins = 0; locked_.exchange(true, std::memory_order_acquire); spins++) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins > 64) std::this_thread::yield();
#if defined(__x86_64__) || defined(__i386__)
        else
          __builtin_ia32_pause();
#endif
      }
    }
  }
  void unlock() { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace pinpool
