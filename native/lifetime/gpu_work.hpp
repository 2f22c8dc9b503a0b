// One asynchronous GPU operation (a copy, a prefetch) from submission to completion: the work
// is queued on a stream, then an event (for its status) and a host function (for its end)
// are queued behind it. The host function signals the fence and calls `notify` on a driver
// thread; whoever handles `notify` reads the status with status(), on its own thread, since
// a host function may not call CUDA.
#pragma once

#include <unistd.h>

#include "../core/fence.hpp"
#include "../cuda/cuda_driver.hpp"

namespace pinpool {

class GpuWork {
 public:
  using Notify = void (*)(GpuWork* work, void* context);

  GpuWork(int device, Notify notify, void* context)
      : device_(device), fence_(Fence::create()), notify_(notify), context_(context) {}
  ~GpuWork() {
    if (event_) cuda::event_destroy(device_, event_);
    fence_->release();
  }
  GpuWork(const GpuWork&) = delete;
  GpuWork& operator=(const GpuWork&) = delete;

  // Queues `enqueue(stream)` (a cuda:: call returning CUresult) and the completion behind it.
  // `enqueue` is always called (it may own resources only it gives back, as a copy's `after`
  // mark). On an error nothing will be notified; if the work itself was queued, this waits for
  // the stream so that no buffer is released under a running copy.
  template <typename F>
  CUresult submit(CUstream stream, F&& enqueue) {
    CUresult rc = enqueue(stream);
    if (rc != CUDA_SUCCESS) return rc;
    rc = cuda::event_create(device_, &event_);
    if (rc == CUDA_SUCCESS) rc = cuda::event_record(device_, event_, stream);
    if (rc == CUDA_SUCCESS) rc = cuda::launch_host_func(device_, stream, &GpuWork::on_done, this);
    if (rc != CUDA_SUCCESS) cuda::stream_synchronize(device_, stream);
    return rc;
  }

  // The work's status once notified: CUDA_SUCCESS or the error that ended it.
  CUresult status() const {
    return event_ ? cuda::event_query(device_, event_) : CUDA_ERROR_INVALID_HANDLE;
  }
  // Waits until the device is done with the work: its event completes, or reports the error
  // that ended it (a failed context never completes it). For the end of a JavaScript
  // environment whose memory the work uses in place.
  void wait() const {
    while (status() == CUDA_ERROR_NOT_READY) usleep(1000);
  }
  Fence* fence() const { return fence_; }
  int device() const { return device_; }

 private:
  static void on_done(void* self) {
    auto* w = static_cast<GpuWork*>(self);
    w->fence_->signal();
    w->notify_(w, w->context_);
  }

  const int device_;         // device whose context queued the work
  Fence* const fence_;       // signalled when the work is done; shared with deferred frees
  CUevent event_ = nullptr;  // recorded behind the work, for its status
  Notify notify_;            // called on a driver thread at the end
  void* context_;            // passed to notify_
};

}  // namespace pinpool
