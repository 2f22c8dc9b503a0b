// How much memory page-locking leaves may hold (docs/decisions/0015-page-lock-cap.md: page-locking
// never takes the host down).
//
// Page-locked memory cannot be swapped or reclaimed. A process with CAP_IPC_LOCK (root, in
// most containers) or an unlimited RLIMIT_MEMLOCK (common on GPU nodes) is stopped by nothing
// in the kernel: mlock of more than the machine holds faults pages in until the OOM killer ends
// the process, and cuMemHostAlloc does the same through the driver. So every page-locking leaf
// (locked, pinned) takes its bytes from a budget first, and above its cap refuses at once,
// before any memory is mapped, faulted or locked.
//
// Two budgets, both checked:
// - the host's, one per process, shared by every page-locking leaf: kHostLockFraction of what
//   the cgroup (memory.max, v2; memory.limit_in_bytes, v1) and the machine (MemAvailable, else
//   MemTotal) allow, whichever is less. Read once, when the first page-locking leaf is made.
// - a locked leaf's own: its `maxBytes` option, and RLIMIT_MEMLOCK when the kernel applies it
//   (no CAP_IPC_LOCK) and it is smaller.
// The pinned leaf takes only from the host's: RLIMIT_MEMLOCK does not bound the driver.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace pinpool {

// Of what the cgroup and the machine allow, the share page-locking leaves may hold together.
// Half: locked pages are taken from everything else, for good, until freed, and the other half
// is what the process's own pageable memory (the JavaScript heap, the pageable fallback), the
// page cache and the rest of the host then share. A cap near the whole would trade the OOM
// killer for a host that thrashes; a smaller one refuses pinned memory a GPU node has to spare.
inline constexpr double kHostLockFraction = 0.5;

// A cap and what set it: "cgroup", "meminfo", "rlimit", "option", or "none" (no cap).
struct LockCap {
  uint64_t bytes = UINT64_MAX;  // in bytes
  const char* source = "none";  // static text
};

// What the kernel and the machine say, as read once for the process.
struct HostMemory {
  LockCap host;             // the host budget's cap: cgroup or meminfo, times the fraction
  uint64_t memlock_limit;   // RLIMIT_MEMLOCK (soft), in bytes; UINT64_MAX when unlimited
  bool memlock_privileged;  // CAP_IPC_LOCK in the effective set: the rlimit does not apply
};
const HostMemory& host_memory();

// A locked leaf's own cap without an option: RLIMIT_MEMLOCK where the kernel applies it, else
// none (the host budget still applies).
LockCap memlock_cap();
// The lesser of two caps.
inline LockCap lesser(LockCap a, LockCap b) { return b.bytes < a.bytes ? b : a; }

// A running total of page-locked bytes against a cap. Any thread.
class LockBudget {
 public:
  explicit LockBudget(LockCap cap) : cap_(cap) {}
  LockBudget(const LockBudget&) = delete;
  LockBudget& operator=(const LockBudget&) = delete;

  // Adds `bytes` to the total; false, adding nothing, when the total would pass the cap.
  bool take(uint64_t bytes) {
    uint64_t now = used_.load(std::memory_order_relaxed);
    do {
      if (bytes > cap_.bytes || now > cap_.bytes - bytes) return false;
    } while (!used_.compare_exchange_weak(now, now + bytes, std::memory_order_relaxed));
    return true;
  }
  // Gives back bytes an earlier take() added.
  void give_back(uint64_t bytes) { used_.fetch_sub(bytes, std::memory_order_relaxed); }

  const LockCap& cap() const { return cap_; }
  uint64_t used() const { return used_.load(std::memory_order_relaxed); }

 private:
  const LockCap cap_;
  std::atomic<uint64_t> used_{0};  // bytes taken and not given back
};

// The host budget: every page-locking leaf of the process takes from it.
LockBudget& host_lock_budget();

// Why the last page-lock refusal on this thread happened, for the error message (like
// fallback_log(): the binding clears it before an allocation and reads it after a failure with
// reason "mlock").
struct LockRefusal {
  bool set = false;
  uint64_t bytes = 0;  // what was asked to be locked, in bytes
  uint64_t used = 0;   // what the budget held then, in bytes
  LockCap cap;         // the cap that refused it
};
inline LockRefusal& lock_refusal() {
  thread_local LockRefusal refusal;
  return refusal;
}

// Takes `bytes` from `own` (when given) and from the host budget; on a refusal gives back what
// it took, records why (lock_refusal()) and returns false. Nothing is mapped or locked yet.
bool take_lock_budget(LockBudget* own, uint64_t bytes);
void give_back_lock_budget(LockBudget* own, uint64_t bytes);

}  // namespace pinpool
