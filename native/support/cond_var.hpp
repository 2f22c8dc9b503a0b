// A condition variable over pthread_cond_t, waited on with a std::mutex. Not
// std::condition_variable: libstdc++ defines it in an object file that also needs glibc 2.34's
// pthread_key_* symbols, and the prebuilt binaries link libstdc++ statically and load on glibc
// 2.28 (native/binding/glibc_baseline.cpp); pthread_cond_* are as old as glibc 2.3.2.
#pragma once

#include <pthread.h>

#include <mutex>

namespace pinpool {

class CondVar {
 public:
  CondVar() { pthread_cond_init(&cond_, nullptr); }
  ~CondVar() { pthread_cond_destroy(&cond_); }
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // Waits until `ready()` holds; `lock` holds the mutex the waking side changes state under.
  template <typename Ready>
  void wait(std::unique_lock<std::mutex>& lock, Ready ready) {
    while (!ready()) pthread_cond_wait(&cond_, lock.mutex()->native_handle());
  }
  void notify_one() { pthread_cond_signal(&cond_); }
  void notify_all() { pthread_cond_broadcast(&cond_); }

 private:
  pthread_cond_t cond_;
};

}  // namespace pinpool
