// Adaptor: caps the bytes in use through it. Past the cap an allocation fails as
// out-of-memory with reason "limit" (so a fallback above it can move on).
#pragma once

#include "../core/handler.hpp"

namespace pinpool {

class LimitAdaptor final : public Handler {
 public:
  LimitAdaptor(std::string name, pinpool_handler* upstream, uint64_t max_bytes)
      : Handler(std::move(name), "limit"), upstream_(upstream), max_bytes_(max_bytes) {}

  pinpool_handler* upstream() const { return upstream_.get(); }
  size_t do_trim() override {
    Handler* h = Handler::from_abi(upstream_.get());
    return h ? h->trim() : 0;
  }

 private:
  void* do_allocate(size_t bytes, size_t alignment, pinpool_alloc_info* info) override {
    uint64_t before = used_.fetch_add(bytes, std::memory_order_relaxed);
    if (before + bytes > max_bytes_ || before + bytes < before) {
      used_.fetch_sub(bytes, std::memory_order_relaxed);
      fail(info, {PINPOOL_ERR_OUT_OF_MEMORY, Reason::Limit});
      return nullptr;
    }
    void* p = upstream_alloc(upstream_.get(), bytes, alignment, info);
    if (!p) used_.fetch_sub(bytes, std::memory_order_relaxed);
    return p;
  }
  bool do_deallocate(void* ptr, size_t bytes, size_t alignment) override {
    if (!upstream_free(upstream_.get(), ptr, bytes, alignment)) return false;
    used_.fetch_sub(bytes, std::memory_order_relaxed);
    return true;
  }

  UpstreamRef upstream_;
  const uint64_t max_bytes_;           // the cap, in bytes
  std::atomic<uint64_t> used_{0};      // bytes in use through this adaptor
};

}  // namespace pinpool
