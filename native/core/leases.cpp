#include "leases.hpp"

#include <atomic>
#include <cstdint>
#include <mutex>

#include "../support/spin_lock.hpp"

namespace pinpool::leases {
namespace {

struct Lease {
  uintptr_t begin;  // first byte
  uintptr_t end;    // one past the last byte
  Fence* fence;     // holds a reference
};

struct Table {
  SpinLock lock;                 // guards leases
  std::vector<Lease> leases;     // unordered; a handful at a time
  std::atomic<int32_t> held{0};  // 1 while `leases` is not empty, readable without the lock
                                 // (and by JavaScript: held_flag())
};

void set_held(Table& t) { t.held.store(t.leases.empty() ? 0 : 1, std::memory_order_release); }

Table& table() {
  static auto* t = new Table();  // leaked: GPU work may finish during static destruction
  return *t;
}

// Drops the leases whose fences have signalled (lock held).
void prune(Table& t) {
  for (size_t i = 0; i < t.leases.size();) {
    if (t.leases[i].fence->done()) {
      t.leases[i].fence->release();
      t.leases[i] = t.leases.back();
      t.leases.pop_back();
    } else {
      i++;
    }
  }
  set_held(t);
}

}  // namespace

void take(const void* ptr, size_t bytes, Fence* fence) {
  auto begin = reinterpret_cast<uintptr_t>(ptr);
  fence->retain();
  Table& t = table();
  std::lock_guard<SpinLock> lock(t.lock);
  prune(t);
  t.leases.push_back({begin, begin + (bytes ? bytes : 1), fence});
  set_held(t);
}

bool any() { return table().held.load(std::memory_order_acquire) != 0; }

const std::atomic<int32_t>* held_flag() { return &table().held; }

bool overlaps(const void* ptr, size_t bytes) {
  auto begin = reinterpret_cast<uintptr_t>(ptr);
  uintptr_t end = begin + (bytes ? bytes : 1);
  Table& t = table();
  std::lock_guard<SpinLock> lock(t.lock);
  prune(t);
  for (const Lease& l : t.leases)
    if (l.begin < end && begin < l.end) return true;
  return false;
}

void overlapping(const void* ptr, size_t bytes, std::vector<Fence*>& out) {
  auto begin = reinterpret_cast<uintptr_t>(ptr);
  uintptr_t end = begin + (bytes ? bytes : 1);
  Table& t = table();
  std::lock_guard<SpinLock> lock(t.lock);
  prune(t);
  for (const Lease& l : t.leases) {
    if (l.begin < end && begin < l.end) {
      l.fence->retain();
      out.push_back(l.fence);
    }
  }
}

}  // namespace pinpool::leases
