// Events of the fake CUDA driver, and cuStreamWaitEvent.
//
// An event remembers its latest record: the stream and the sequence number of the operation
// cuEventRecord queued there. The event has completed once that stream has run that operation,
// which is everything queued on the stream before the record; an event never recorded counts as
// complete. The record's operation stamps the time the worker reached it, for
// cuEventElapsedTime.
#include "fake_internal.h"

#include <chrono>
#include <mutex>
#include <unordered_map>

namespace fake {

// One cuEventRecord: the point in a stream it captured, and when the worker reached it.
struct Record {
  StreamRef stream;
  uint64_t seq = 0;
  std::chrono::steady_clock::time_point when;  // written by the worker before `completed` moves
};

}  // namespace fake

struct CUevent_st {
  unsigned flags = 0;
  const CUctx_st* ctx = nullptr;  // the context it was created in
  std::mutex m;
  std::shared_ptr<fake::Record> last;  // the latest record; null if never recorded
};

namespace fake {
namespace {

constexpr unsigned kEventInterprocess = 0x4;  // CU_EVENT_INTERPROCESS (cuda.h)

struct EventTable {
  std::mutex m;
  std::unordered_map<CUevent_st*, std::shared_ptr<CUevent_st>> events;
};

// Leaked on purpose, like the stream table: never destroyed while a thread might use it.
EventTable& table() {
  static EventTable* t = new EventTable;
  return *t;
}

// The event behind a handle, or null: a stale or bogus handle is reported, never dereferenced.
std::shared_ptr<CUevent_st> resolve_event(CUevent e) {
  EventTable& t = table();
  std::lock_guard<std::mutex> lk(t.m);
  auto it = t.events.find(e);
  return it == t.events.end() ? nullptr : it->second;
}

std::shared_ptr<Record> last_record(CUevent_st* e) {
  std::lock_guard<std::mutex> lk(e->m);
  return e->last;
}

}  // namespace
}  // namespace fake

using namespace fake;

FAKE_API CUresult cuStreamWaitEvent(CUstream s, CUevent e, unsigned int flags) {
  return entry(k_cuStreamWaitEvent, true, [&]() -> CUresult {
    if (flags != 0) return CUDA_ERROR_INVALID_VALUE;  // only CU_EVENT_WAIT_DEFAULT outside graphs
    StreamRef stream = resolve_stream(s);
    std::shared_ptr<CUevent_st> event = resolve_event(e);
    if (!stream || !event) return CUDA_ERROR_INVALID_HANDLE;
    std::shared_ptr<Record> rec = last_record(event.get());
    if (!rec) return CUDA_SUCCESS;  // an event never recorded is complete: nothing to wait for
    // Waits for the record as of now; a later re-record of the event does not matter.
    return enqueue(
        stream, [rec] { wait_for(rec->stream.get(), rec->seq); }, nullptr);
  });
}

FAKE_API CUresult cuEventCreate(CUevent* e, unsigned int flags) {
  return entry(k_cuEventCreate, true, [&]() -> CUresult {
    const unsigned allowed = CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING;
    if (e == nullptr) return CUDA_ERROR_INVALID_VALUE;
    // Interprocess events cannot be faked in one process: refused rather than half-done.
    if (flags & kEventInterprocess) return CUDA_ERROR_NOT_SUPPORTED;
    if ((flags & ~allowed) != 0) return CUDA_ERROR_INVALID_VALUE;
    if (current_device() < 0) return CUDA_ERROR_INVALID_CONTEXT;
    auto event = std::make_shared<CUevent_st>();
    event->flags = flags;
    event->ctx = current_context();
    {
      EventTable& t = table();
      std::lock_guard<std::mutex> lk(t.m);
      t.events.emplace(event.get(), event);
    }
    gauge_add(kEventsLive, 1);
    *e = event.get();
    return CUDA_SUCCESS;
  });
}

FAKE_API CUresult cuEventRecord(CUevent e, CUstream s) {
  return entry(k_cuEventRecord, true, [&]() -> CUresult {
    std::shared_ptr<CUevent_st> event = resolve_event(e);
    StreamRef stream = resolve_stream(s);
    if (!event || !stream) return CUDA_ERROR_INVALID_HANDLE;
    // An event records only on a stream of its own context (cuda.h, cuEventRecord).
    const CUctx_st* owner = stream_context(stream.get());
    if (owner != nullptr && owner != event->ctx) return CUDA_ERROR_INVALID_HANDLE;
    if (CUresult rc = check_stream_context(stream.get())) return rc;
    auto rec = std::make_shared<Record>();
    rec->stream = stream;
    // The record holds the stream, not the event, so destroying either early is harmless.
    std::lock_guard<std::mutex> lk(event->m);
    uint64_t seq = 0;
    CUresult err = enqueue(
        stream, [rec] { rec->when = std::chrono::steady_clock::now(); }, &seq);
    if (err != CUDA_SUCCESS) return err;
    rec->seq = seq;  // readers only see rec through event->last, set below under the same lock
    event->last = std::move(rec);
    return CUDA_SUCCESS;
  });
}

FAKE_API CUresult cuEventQuery(CUevent e) {
  return entry(k_cuEventQuery, true, [&]() -> CUresult {
    std::shared_ptr<CUevent_st> event = resolve_event(e);
    if (!event) return CUDA_ERROR_INVALID_HANDLE;
    std::shared_ptr<Record> rec = last_record(event.get());
    return (!rec || reached(rec->stream.get(), rec->seq)) ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
  });
}

FAKE_API CUresult cuEventSynchronize(CUevent e) {
  return entry(k_cuEventSynchronize, true, [&]() -> CUresult {
    std::shared_ptr<CUevent_st> event = resolve_event(e);
    if (!event) return CUDA_ERROR_INVALID_HANDLE;
    std::shared_ptr<Record> rec = last_record(event.get());
    if (rec) wait_for(rec->stream.get(), rec->seq);
    return CUDA_SUCCESS;
  });
}

FAKE_API CUresult cuEventDestroy_v2(CUevent e) {
  return entry(k_cuEventDestroy_v2, true, [&]() -> CUresult {
    std::shared_ptr<CUevent_st> event;  // released after the lock, outside the handle table
    {
      EventTable& t = table();
      std::lock_guard<std::mutex> lk(t.m);
      auto it = t.events.find(e);
      if (it == t.events.end()) return CUDA_ERROR_INVALID_HANDLE;
      event = std::move(it->second);
      t.events.erase(it);
    }
    gauge_add(kEventsLive, -1);
    return CUDA_SUCCESS;
  });
}

FAKE_API CUresult cuEventElapsedTime(float* ms, CUevent start, CUevent end) {
  return entry(k_cuEventElapsedTime, true, [&]() -> CUresult {
    if (ms == nullptr) return CUDA_ERROR_INVALID_VALUE;
    std::shared_ptr<CUevent_st> a = resolve_event(start), b = resolve_event(end);
    if (!a || !b) return CUDA_ERROR_INVALID_HANDLE;
    if ((a->flags | b->flags) & CU_EVENT_DISABLE_TIMING) return CUDA_ERROR_INVALID_HANDLE;
    std::shared_ptr<Record> ra = last_record(a.get()), rb = last_record(b.get());
    if (!ra || !rb) return CUDA_ERROR_INVALID_HANDLE;  // as the driver: both must be recorded
    // reached() takes the stream lock the worker released after writing `when`, so reading
    // `when` afterwards is ordered after that write.
    if (!reached(ra->stream.get(), ra->seq) || !reached(rb->stream.get(), rb->seq))
      return CUDA_ERROR_NOT_READY;
    *ms = std::chrono::duration<float, std::milli>(rb->when - ra->when).count();
    return CUDA_SUCCESS;
  });
}
