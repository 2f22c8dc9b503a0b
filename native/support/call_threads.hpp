// A few threads of our own for calls that may block for as long as a device takes (a copy the
// CUDA driver makes wait until it has landed). Not libuv's pool: that one is Node's, four
// threads by default that fs, dns, crypto and zlib wait for, and a handful of slow copies would
// take them all.
//
// pthreads and CondVar, not std::thread: the prebuilt binaries link libstdc++ statically and
// load on glibc 2.28 (native/binding/glibc_baseline.cpp). The threads are detached and never
// end, so a process may exit with one still inside a call.
#pragma once

#include <pthread.h>

#include <deque>
#include <mutex>
#include <utility>

#include "cond_var.hpp"

namespace pinpool {

class CallThreads {
 public:
  using Task = void (*)(void* arg);

  explicit CallThreads(int max_threads) : max_threads_(max_threads) {}
  CallThreads(const CallThreads&) = delete;
  CallThreads& operator=(const CallThreads&) = delete;

  // Runs task(arg) on one of the threads, starting one when every thread is busy and fewer than
  // the maximum run. With no thread at all (none could be started) it runs here and now.
  void run(Task task, void* arg) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.emplace_back(task, arg);
      if (idle_ < static_cast<int>(queue_.size()) && threads_ < max_threads_) {
        pthread_t thread;
        if (pthread_create(&thread, nullptr, &CallThreads::start, this) == 0) {
          pthread_detach(thread);
          threads_++;
          idle_++;  // counted as idle until it takes a task
        }
      }
      if (threads_ > 0) {
        ready_.notify_one();
        return;
      }
      queue_.pop_back();
    }
    task(arg);
  }

 private:
  static void* start(void* self) {
    static_cast<CallThreads*>(self)->loop();
    return nullptr;
  }
  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      ready_.wait(lock, [&] { return !queue_.empty(); });
      std::pair<Task, void*> next = queue_.front();
      queue_.pop_front();
      idle_--;
      lock.unlock();
      next.first(next.second);
      lock.lock();
      idle_++;
    }
  }

  const int max_threads_;
  std::mutex mutex_;
  CondVar ready_;
  std::deque<std::pair<Task, void*>> queue_;  // guarded by mutex_
  int threads_ = 0;                           // started; guarded by mutex_
  int idle_ = 0;                              // waiting for a task; guarded by mutex_
};

}  // namespace pinpool
