// Streams and host functions of the fake CUDA driver (events are in fake_events.cpp).
//
// Each stream is a FIFO of operations run in order by a worker thread of its own, so streams run
// concurrently while each keeps its order, as on a GPU. Operations get consecutive sequence
// numbers; a stream has run operation `seq` once `completed >= seq`. Everything that waits
// (synchronize, events, cross-stream waits) waits on the stream's condition variable for that;
// nothing spins.
//
// The default stream (handle 0) has the legacy semantics pinpool would see on a real driver:
// work queued on it waits for earlier work of every blocking stream, and work queued on a
// blocking stream waits for earlier work of the default stream. Streams created with
// CU_STREAM_NON_BLOCKING are exempt.
#include "fake_internal.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

struct CUstream_st {
  unsigned flags = 0;
  bool is_default = false;
  int device = -1;  // the device of the context it was created in; -1 for the default stream
  const CUctx_st* ctx = nullptr;  // that context; null for the default stream
  std::mutex m;
  std::condition_variable work;  // the worker waits here for operations or shutdown
  std::condition_variable done;  // waiters wait here for `completed` to advance
  std::deque<fake::Op> queue;
  uint64_t enqueued = 0;
  uint64_t completed = 0;
  bool stopping = false;
  std::thread worker;
};

namespace fake {

thread_local bool t_on_worker = false;
// True on the default (legacy) stream's worker: the hold_legacy knob holds its copies.
thread_local bool t_on_default_stream = false;

namespace {

// Constants of cuda.h not in cuda_types.h.
const CUstream kStreamLegacy = reinterpret_cast<CUstream>(0x1);  // CU_STREAM_LEGACY

struct Handles {
  std::mutex m;
  std::unordered_map<CUstream_st*, StreamRef> streams;
  StreamRef default_stream;  // created on first use, never destroyed
};

// Leaked on purpose, as is every stream never destroyed: worker threads may outlive static
// destruction at process exit, and a std::thread destroyed while joinable would terminate.
// Threads left blocked on a condition variable do not keep the process alive.
Handles& handles() {
  static Handles* h = new Handles;
  return *h;
}

void worker_main(CUstream_st* s) {
  t_on_worker = true;
  t_on_default_stream = s->is_default;
  std::unique_lock<std::mutex> lk(s->m);
  for (;;) {
    s->work.wait(lk, [s] { return !s->queue.empty() || s->stopping; });
    if (s->queue.empty()) return;  // stopping, and everything queued has run
    Op op = std::move(s->queue.front());
    s->queue.pop_front();
    lk.unlock();
    try {
      if (!context_lost()) op();
    } catch (...) {
      // Our operations do not throw; a host function that does must not kill the process.
    }
    op = nullptr;  // drop pins before reporting completion, so a free after a sync never waits
    lk.lock();
    ++s->completed;
    s->done.notify_all();
  }
}

StreamRef start_stream(unsigned flags, bool is_default) {
  auto s = std::make_shared<CUstream_st>();
  s->flags = flags;
  s->is_default = is_default;
  s->worker = std::thread(worker_main, s.get());  // the owner keeps s alive until it joins
  return s;
}

StreamRef default_stream() {
  Handles& h = handles();
  std::lock_guard<std::mutex> lk(h.m);
  if (!h.default_stream) h.default_stream = start_stream(0, true);
  return h.default_stream;
}

bool blocking(const CUstream_st& s) { return !s.is_default && !(s.flags & CU_STREAM_NON_BLOCKING); }

// The point (last queued operation) of s, if it still has unfinished work.
void add_if_busy(const StreamRef& s, std::vector<std::pair<StreamRef, uint64_t>>* deps) {
  std::lock_guard<std::mutex> lk(s->m);
  if (s->completed < s->enqueued) deps->emplace_back(s, s->enqueued);
}

}  // namespace

int stream_device(const CUstream_st* s) { return s->device; }

const CUctx_st* stream_context(const CUstream_st* s) { return s->ctx; }

CUresult check_stream_context(const CUstream_st* s) {
  const CUctx_st* current = current_context();
  return s->ctx != nullptr && current != nullptr && current != s->ctx ? CUDA_ERROR_INVALID_CONTEXT
                                                                      : CUDA_SUCCESS;
}

StreamRef resolve_stream(CUstream h) {
  if (h == nullptr || h == kStreamLegacy) return default_stream();
  Handles& hs = handles();
  std::lock_guard<std::mutex> lk(hs.m);
  auto it = hs.streams.find(h);
  return it == hs.streams.end() ? nullptr : it->second;
}

CUresult enqueue(const StreamRef& s, Op op, uint64_t* seq) {
  // Legacy default-stream ordering: find the work this operation must wait for.
  std::vector<std::pair<StreamRef, uint64_t>> deps;
  if (s->is_default) {
    Handles& h = handles();
    std::lock_guard<std::mutex> lk(h.m);
    for (auto& entry : h.streams)
      if (blocking(*entry.second)) add_if_busy(entry.second, &deps);
  } else if (blocking(*s)) {
    add_if_busy(default_stream(), &deps);
  }
  std::lock_guard<std::mutex> lk(s->m);
  // A stream being destroyed takes no more work: its worker may already have exited.
  if (s->stopping) return CUDA_ERROR_INVALID_HANDLE;
  for (auto& dep : deps) {
    s->queue.push_back([dep] { wait_for(dep.first.get(), dep.second); });
    ++s->enqueued;
  }
  s->queue.push_back(std::move(op));
  uint64_t mine = ++s->enqueued;
  if (seq != nullptr) *seq = mine;
  s->work.notify_one();
  return CUDA_SUCCESS;
}

void wait_for(CUstream_st* s, uint64_t seq) {
  std::unique_lock<std::mutex> lk(s->m);
  s->done.wait(lk, [&] { return s->completed >= seq; });
}

bool reached(CUstream_st* s, uint64_t seq) {
  std::lock_guard<std::mutex> lk(s->m);
  return s->completed >= seq;
}

void drain(CUstream_st* s) {
  uint64_t target;
  {
    std::lock_guard<std::mutex> lk(s->m);
    target = s->enqueued;
  }
  wait_for(s, target);
}

namespace {
std::mutex g_hold_mutex;
std::condition_variable g_hold_released;
bool g_held = false;         // guarded by g_hold_mutex
bool g_legacy_held = false;  // guarded by g_hold_mutex
}  // namespace

void copy_delay() {
  long long ms = knobs().copy_delay_ms.load();
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  std::unique_lock<std::mutex> lk(g_hold_mutex);
  g_hold_released.wait(lk, [] { return !g_held && !(t_on_default_stream && g_legacy_held); });
}

void hold_copies(bool hold) {
  {
    std::lock_guard<std::mutex> lk(g_hold_mutex);
    g_held = hold;
  }
  g_hold_released.notify_all();
}

void hold_legacy(bool hold) {
  {
    std::lock_guard<std::mutex> lk(g_hold_mutex);
    g_legacy_held = hold;
  }
  g_hold_released.notify_all();
}

}  // namespace fake

using namespace fake;

// ---- streams ----

FAKE_API CUresult cuStreamCreate(CUstream* s, unsigned int flags) {
  return entry(k_cuStreamCreate, true, [&]() -> CUresult {
    if (s == nullptr || (flags & ~static_cast<unsigned>(CU_STREAM_NON_BLOCKING)) != 0)
      return CUDA_ERROR_INVALID_VALUE;
    if (current_device() < 0) return CUDA_ERROR_INVALID_CONTEXT;
    StreamRef stream = start_stream(flags, false);
    stream->device = current_device();
    stream->ctx = current_context();
    try {
      Handles& h = handles();
      std::lock_guard<std::mutex> lk(h.m);
      h.streams.emplace(stream.get(), stream);
    } catch (...) {
      {
        std::lock_guard<std::mutex> lk(stream->m);
        stream->stopping = true;
      }
      stream->work.notify_all();
      stream->worker.join();
      throw;
    }
    gauge_add(kStreamsLive, 1);
    *s = stream.get();
    return CUDA_SUCCESS;
  });
}

FAKE_API CUresult cuStreamDestroy_v2(CUstream s) {
  return entry(k_cuStreamDestroy_v2, true, [&]() -> CUresult {
    StreamRef stream;
    {
      Handles& h = handles();
      std::lock_guard<std::mutex> lk(h.m);
      auto it = h.streams.find(s);  // the default stream is never in the map: not destroyable
      if (it == h.streams.end()) return CUDA_ERROR_INVALID_HANDLE;
      stream = std::move(it->second);
      h.streams.erase(it);
    }
    // As in CUDA, work already queued still runs; the worker exits once the queue is empty.
    {
      std::lock_guard<std::mutex> lk(stream->m);
      stream->stopping = true;
    }
    stream->work.notify_all();
    stream->worker.join();  // never our own thread: workers are refused by entry()
    gauge_add(kStreamsLive, -1);
    return CUDA_SUCCESS;
  });
}

FAKE_API CUresult cuStreamSynchronize(CUstream s) {
  return entry(k_cuStreamSynchronize, true, [&]() -> CUresult {
    StreamRef stream = resolve_stream(s);
    if (!stream) return CUDA_ERROR_INVALID_HANDLE;
    drain(stream.get());
    return CUDA_SUCCESS;
  });
}

FAKE_API CUresult cuStreamQuery(CUstream s) {
  return entry(k_cuStreamQuery, true, [&]() -> CUresult {
    StreamRef stream = resolve_stream(s);
    if (!stream) return CUDA_ERROR_INVALID_HANDLE;
    std::lock_guard<std::mutex> lk(stream->m);
    return stream->completed == stream->enqueued ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
  });
}

FAKE_API CUresult cuLaunchHostFunc(CUstream s, CUhostFn fn, void* user_data) {
  return entry(k_cuLaunchHostFunc, true, [&]() -> CUresult {
    if (fn == nullptr) return CUDA_ERROR_INVALID_VALUE;
    StreamRef stream = resolve_stream(s);
    if (!stream) return CUDA_ERROR_INVALID_HANDLE;
    if (CUresult rc = check_stream_context(stream.get())) return rc;
    return enqueue(
        stream, [fn, user_data] { fn(user_data); }, nullptr);
  });
}
