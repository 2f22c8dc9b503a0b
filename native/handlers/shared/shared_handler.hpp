// Leaf: blocks of a region of shared memory that several processes of a host open by name and
// secret (shared_region.hpp), page-locked in each of them. Any process allocates from it and
// frees what it owns; a block it gives (hand_off()) is taken over by whichever process adopts its
// ticket (take_over()), zero copy: the same pages, at that process's own address.
//
// One SharedHandler per region per process (open() finds the one this process has), so every
// block this process owns is in one slot of the region. Page-locking: cuMemHostRegister with the
// portable flag where a CUDA driver is present, else mlock; either under the process's host
// budget (core/lock_cap.hpp). A region that could not be page-locked here serves no allocation
// (reason "mlock", or the driver's), so a fallback moves on, but its blocks can still be adopted.
#pragma once

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>

#include "../../core/handler.hpp"
#include "../../core/leaf_blocks.hpp"
#include "../../core/lock_cap.hpp"
#include "shared_region.hpp"

namespace pinpool {

struct SharedOptions {
  std::string region;     // the region's name
  size_t bytes = 0;       // create it this big; 0: open the existing one with `secret`
  std::string secret;     // to open it
  int device = 0;         // whose context registers it
  bool page_lock = true;  // false: neither registered nor locked (the caller's choice)
};

class SharedHandler final : public Handler {
 public:
  // Made or opened, or null with an errno-style `*error` (shared::Region::create / open) and a
  // reference held by the caller otherwise. Opening a region this process has open already
  // returns that handler, with a new reference, when the secret matches.
  static SharedHandler* open(std::string name, const SharedOptions& o, int* error);
  ~SharedHandler() override;

  // Blocks are whole units: the size class a thread cache keeps a block by (its one route is
  // itself, as a pool's is), so a thread's freed blocks wait for its next allocation of their
  // size without a call into native code or the region's lock.
  size_t class_bytes(size_t bytes, size_t /*alignment*/) const override {
    return (std::max<size_t>(bytes, 1) + shared::kUnitBytes - 1) / shared::kUnitBytes *
           shared::kUnitBytes;
  }

  shared::Region& region() { return *region_; }
  const shared::Region& region() const { return *region_; }
  // How this process page-locked it: "cuda", "mlock", "off" (not asked to), or "none" (refused:
  // it serves no allocation, see lock_failure_).
  const char* page_locked() const { return page_locked_; }
  bool registered() const { return page_locked_ == kCuda; }

  // Hands a block this process owns, allocated as (bytes, alignment), to another process: it leaves
  // this handler's statistics and the block registry, as if freed, but stays in use. False when it
  // owns no such block.
  bool hand_off(void* p, size_t bytes, size_t alignment, shared::Ticket* out);
  // Takes over a block given by hand_off() (in any process), allocated as `bytes`: counted here
  // as if allocated (with the page size as its alignment). Null when the ticket adopts nothing
  // or `bytes` is not a size the block can have.
  void* take_over(const shared::Ticket& ticket, size_t bytes);

 private:
  static constexpr const char* kCuda = "cuda";
  static constexpr const char* kMlock = "mlock";
  static constexpr const char* kNone = "none";
  static constexpr const char* kOff = "off";
  SharedHandler(std::string name, std::unique_ptr<shared::Region> region, const SharedOptions& o);

  void* do_allocate(size_t bytes, size_t alignment, pinpool_alloc_info* info) override;
  std::optional<size_t> do_deallocate(void* ptr, size_t bytes, size_t alignment) override;

  std::unique_ptr<shared::Region> region_;
  const int device_;
  const char* page_locked_ = kNone;
  Failure lock_failure_{PINPOOL_ERR_OUT_OF_MEMORY, Reason::Mlock};  // why, when "none"
  bool budget_taken_ = false;
  LeafBlocks live_;  // blocks this process owns, as allocated (the region knows only units)
  std::atomic<bool> keeps_itself_{false};  // holds a reference to itself: it gave a block
};

}  // namespace pinpool
