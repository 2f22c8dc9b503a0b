#include "growth.hpp"

#include <pthread.h>
#include <sys/mman.h>

#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include "../support/align.hpp"
#include "../support/cond_var.hpp"
#include "../support/kernel.hpp"

namespace pinpool {
namespace {

// The threads that first-touch mappings: made when first needed, one fewer than the most a
// touch has asked for (the caller is the other), and never ended: they wait on a condition
// variable and do not keep the process alive. Kept in a heap object never destroyed, so that a
// thread still waiting at exit never sees its mutex destroyed.
class TouchThreads {
 public:
  static TouchThreads& get() {
    static TouchThreads* threads = new TouchThreads();
    return *threads;
  }

  // Touches the parts of [p, p + length) split `n` ways; returns when all are done.
  void run(char* p, size_t length, unsigned n) {
    size_t pages = length / page_size();
    size_t per = (pages + n - 1) / n;
    struct Batch {
      std::mutex m;
      CondVar done;
      unsigned left;
    } batch;
    batch.left = n - 1;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // Threads are added for good; starting one may fail (resources): the caller then does
      // that part itself.
      while (workers_ < n - 1) {
        // pthreads, not std::thread: the prebuilt binaries link libstdc++ statically, and its
        // std::thread needs glibc 2.34's symbols (native/binding/glibc_baseline.cpp).
        pthread_t thread;
        if (pthread_create(&thread, nullptr, &TouchThreads::start, this) != 0) break;
        pthread_detach(thread);
        workers_++;
      }
      for (unsigned i = 1; i < n; i++) {
        size_t first = std::min(pages, i * per), last = std::min(pages, (i + 1) * per);
        char* start = p + first * page_size();
        size_t bytes = (last - first) * page_size();
        jobs_.push_back([start, bytes, &batch] {
          fault_in(start, bytes);
          std::lock_guard<std::mutex> l(batch.m);
          if (--batch.left == 0) batch.done.notify_one();
        });
      }
    }
    ready_.notify_all();
    fault_in(p, std::min(pages, per) * page_size());
    // Idle workers (or none started) leave jobs queued: the caller takes them itself.
    while (auto job = take_job()) job();
    std::unique_lock<std::mutex> l(batch.m);
    batch.done.wait(l, [&] { return batch.left == 0; });
  }

  // Faults [p, p + length) in: inside the kernel where it can (MADV_POPULATE_WRITE, no trap per
  // page: a 4 KiB fault taken from user space costs a virtual machine several microseconds),
  // else one write per page. Either way the kernel maps zeroed pages, huge ones where it can.
  // A kernel without it (before 5.14) refuses with EINVAL, at the cost of one system call; any
  // other refusal (out of memory) leaves the writes to fault what they can, and locking the
  // pages reports the failure.
  static void fault_in(char* p, size_t length) {
    if (kernel().populate_write(p, length) == 0) return;
    for (size_t off = 0; off < length; off += page_size()) static_cast<volatile char*>(p)[off] = 0;
  }

 private:
  std::function<void()> take_job() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (jobs_.empty()) return nullptr;
    std::function<void()> job = std::move(jobs_.front());
    jobs_.pop_front();
    return job;
  }

  static void* start(void* self) {
    static_cast<TouchThreads*>(self)->work();
    return nullptr;
  }

  void work() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [&] { return !jobs_.empty(); });
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  std::mutex mutex_;  // guards jobs_ and workers_
  CondVar ready_;
  std::deque<std::function<void()>> jobs_;
  unsigned workers_ = 0;
};

}  // namespace

unsigned default_touch_threads() {
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  auto n = static_cast<unsigned>(online > 0 ? online : 1);
  return std::clamp(n, 1u, 16u);
}

void touch_pages(char* p, size_t length, unsigned threads) {
  if (threads == 0) threads = default_touch_threads();
  // Each thread gets at least a few huge pages' worth: fewer, larger parts otherwise.
  threads = static_cast<unsigned>(
      std::min<size_t>(threads, std::max<size_t>(1, length / (kParallelTouchBytes / 2))));
  if (threads <= 1 || length < kParallelTouchBytes)
    TouchThreads::fault_in(p, length);
  else
    TouchThreads::get().run(p, length, threads);
}

void* map_and_touch(size_t length, size_t alignment, const GrowthOptions& o, GrowthReport* report) {
  const Kernel& k = kernel();
  bool huge = o.huge_pages && length >= kHugePage;
  if (huge) alignment = std::max(alignment, kHugePage);
  // Larger alignments than a page: map extra and unmap the unaligned head and tail, so the
  // mapping is exactly `length` bytes and its owner needs no bookkeeping.
  size_t extra = alignment > page_size() ? alignment : 0;
  if (length == 0 || length > SIZE_MAX - extra) {
    errno = ENOMEM;
    return nullptr;
  }
  void* raw = mmap(nullptr, length + extra, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  char* p = static_cast<char*>(raw);
  if (extra) {
    char* aligned = reinterpret_cast<char*>(align_up(reinterpret_cast<uintptr_t>(p), alignment));
    size_t head = static_cast<size_t>(aligned - p);
    if (head) munmap(p, head);
    size_t tail = extra - head;
    if (tail) munmap(aligned + length, tail);
    p = aligned;
  }
  if (huge) {
    report->huge_asked = true;
    // Refused or not offered: the mapping goes on with 4 KiB pages, counted by the leaf.
    report->huge_refused = !k.huge_pages_offered() || k.advise_huge(p, length) != 0;
  }
  // Before the first touch: a page is placed when it is faulted in. A refusal (the node has no
  // memory) leaves the kernel's choice, which the sampling below reports.
  if (o.numa_node >= 0) k.prefer_node(p, length, o.numa_node);
  unsigned threads = o.touch_threads ? o.touch_threads : default_touch_threads();
  touch_pages(p, length, threads);
  report->threads = length >= kParallelTouchBytes ? threads : 1;
  if (o.numa_node >= 0) {
    // Where the pages landed: one page per huge page, at most 512 of them.
    size_t step = std::max(kHugePage, align_up(length / 512, page_size()));
    std::vector<void*> pages;
    for (size_t off = 0; off < length; off += step) pages.push_back(p + off);
    std::vector<int> nodes(pages.size(), -1);
    if (k.nodes_of(pages.data(), pages.size(), nodes.data()) == 0)
      for (size_t i = 0; i < pages.size(); i++)
        if (nodes[i] != o.numa_node) report->off_node_bytes += std::min(step, length - i * step);
  }
  return p;
}

int lock_in_chunks(char* p, size_t length, size_t chunk_bytes) {
  const Kernel& k = kernel();
  size_t chunk = align_up(chunk_bytes, page_size());
  if (chunk == 0) chunk = chunk_bytes ? length : page_size();  // overflowed: one call
  for (size_t off = 0; off < length; off += chunk) {
    if (k.lock_pages(p + off, std::min(chunk, length - off)) != 0) {
      int error = errno;
      if (off > 0) k.unlock_pages(p, off);
      errno = error;
      return -1;
    }
  }
  return 0;
}

}  // namespace pinpool
