#include "growth.hpp"

#include <pthread.h>
#include <sys/mman.h>

#include <unistd.h>
#include <algorithm>
#include <cerrno>
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

  // Faults in the parts of [p, p + length) split `n` ways; returns when all are done: true, or
  // false when some part could not be faulted in (out of memory). Never throws: out of memory
  // for its own lists, the caller faults it all in itself.
  bool run(char* p, size_t length, unsigned n) noexcept {
    size_t pages = length / page_size();
    size_t per = (pages + n - 1) / n;
    Batch batch;
    batch.left = n - 1;
    try {
      std::lock_guard<std::mutex> lock(mutex_);
      // Room for every part first: once one is published, nothing below may throw (a worker
      // would be left with a batch whose caller has gone).
      jobs_.reserve(jobs_.size() + n - 1);
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
        jobs_.push_back({p + first * page_size(), (last - first) * page_size(), &batch});
      }
    } catch (...) { return fault_in(p, length); }
    ready_.notify_all();
    bool ok = fault_in(p, std::min(pages, per) * page_size());
    // Idle workers (or none started) leave parts queued: the caller takes them itself.
    Job job;
    while (take_job(&job)) job.run();
    std::unique_lock<std::mutex> l(batch.m);
    batch.done.wait(l, [&] { return batch.left == 0; });
    return ok && !batch.failed;
  }

  // Faults [p, p + length) in: inside the kernel where it can (MADV_POPULATE_WRITE, no trap per
  // page: a 4 KiB fault taken from user space costs a virtual machine several microseconds),
  // else one write per page, where the kernel is older than 5.14 (EINVAL). Either way the
  // kernel maps zeroed pages, huge ones where it can. False when the kernel refused for want of
  // memory: then nothing is written (a write would meet the OOM killer, not an error).
  static bool fault_in(char* p, size_t length) noexcept {
    if (kernel().populate_write(p, length) == 0) return true;
    if (errno != EINVAL) return false;
    for (size_t off = 0; off < length; off += page_size()) static_cast<volatile char*>(p)[off] = 0;
    return true;
  }

 private:
  // One run()'s parts: on the caller's stack until the last part is done.
  struct Batch {
    std::mutex m;
    CondVar done;
    unsigned left = 0;    // parts not done
    bool failed = false;  // a part could not be faulted in
  };
  struct Job {
    char* p = nullptr;
    size_t length = 0;
    Batch* batch = nullptr;

    void run() const noexcept {
      bool ok = fault_in(p, length);
      std::lock_guard<std::mutex> l(batch->m);
      if (!ok) batch->failed = true;
      if (--batch->left == 0) batch->done.notify_one();
    }
  };

  bool take_job(Job* out) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (jobs_.empty()) return false;
    *out = jobs_.back();
    jobs_.pop_back();
    return true;
  }

  static void* start(void* self) {
    static_cast<TouchThreads*>(self)->work();
    return nullptr;
  }

  void work() {
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [&] { return !jobs_.empty(); });
        job = jobs_.back();
        jobs_.pop_back();
      }
      job.run();
    }
  }

  std::mutex mutex_;  // guards jobs_ and workers_
  CondVar ready_;
  std::vector<Job> jobs_;  // parts waiting for a thread
  unsigned workers_ = 0;
};

}  // namespace

unsigned default_touch_threads() {
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  auto n = static_cast<unsigned>(online > 0 ? online : 1);
  return std::clamp(n, 1u, 16u);
}

bool touch_pages(char* p, size_t length, unsigned threads) {
  if (threads == 0) threads = default_touch_threads();
  // Each thread gets at least a few huge pages' worth: fewer, larger parts otherwise.
  threads = static_cast<unsigned>(
      std::min<size_t>(threads, std::max<size_t>(1, length / (kParallelTouchBytes / 2))));
  if (threads <= 1 || length < kParallelTouchBytes) return TouchThreads::fault_in(p, length);
  return TouchThreads::get().run(p, length, threads);
}

// Where the pages of a mapping bound to `node` landed: one page per huge page, at most 512.
static void sample_nodes(char* p, size_t length, int node, GrowthReport* report) noexcept try {
  size_t step = std::max(kHugePage, align_up(length / 512, page_size()));
  std::vector<void*> pages;
  for (size_t off = 0; off < length; off += step) pages.push_back(p + off);
  std::vector<int> nodes(pages.size(), -1);
  if (kernel().nodes_of(pages.data(), pages.size(), nodes.data()) == 0)
    for (size_t i = 0; i < pages.size(); i++)
      if (nodes[i] != node) report->off_node_bytes += std::min(step, length - i * step);
} catch (const std::bad_alloc&) {
  // No room to sample: the pages are there all the same, unreported.
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
  // Refused or not offered: the mapping goes on with 4 KiB pages, counted by the leaf.
  if (huge) report->huge_refused = !k.huge_pages_offered() || k.advise_huge(p, length) != 0;
  // Before the first touch: a page is placed when it is faulted in. A refusal (the node has no
  // memory) leaves the kernel's choice, which the sampling below reports.
  if (o.numa_node >= 0) k.prefer_node(p, length, o.numa_node);
  unsigned threads = o.touch_threads ? o.touch_threads : default_touch_threads();
  if (!touch_pages(p, length, threads)) {
    munmap(p, length);
    errno = ENOMEM;
    return nullptr;
  }
  if (o.numa_node >= 0) sample_nodes(p, length, o.numa_node, report);
  return p;
}

int lock_in_chunks(char* p, size_t length, size_t chunk_bytes) {
  const Kernel& k = kernel();
  size_t chunk = align_up(chunk_bytes, page_size());
  if (chunk == 0) chunk = chunk_bytes ? length : page_size();  // overflowed: one call
  for (size_t off = 0; off < length; off += chunk) {
    size_t n = std::min(chunk, length - off);
    if (k.lock_pages(p + off, n) != 0) {
      int error = errno;
      k.unlock_pages(p, off + n);  // a refused call may have locked part of its chunk
      errno = error;
      return -1;
    }
  }
  return 0;
}

}  // namespace pinpool
