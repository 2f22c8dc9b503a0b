#include "block_registry.hpp"

#include <map>
#include <mutex>

#include "spin_lock.hpp"

namespace pinpool::block_registry {
namespace {

struct Entry {
  size_t bytes;
  const char* kind;
};

struct Table {
  SpinLock lock;                       // guards blocks
  std::map<uintptr_t, Entry> blocks;   // leaf blocks by start address
};

Table& table() {
  static auto* t = new Table();  // leaked: blocks may be freed during static destruction
  return *t;
}

}  // namespace

void add(const void* ptr, size_t bytes, const char* kind) {
  Table& t = table();
  std::lock_guard<SpinLock> lock(t.lock);
  t.blocks[reinterpret_cast<uintptr_t>(ptr)] = Entry{bytes ? bytes : 1, kind};
}

bool remove(const void* ptr) {
  Table& t = table();
  std::lock_guard<SpinLock> lock(t.lock);
  return t.blocks.erase(reinterpret_cast<uintptr_t>(ptr)) == 1;
}

Found find(const void* ptr, size_t bytes) {
  auto start = reinterpret_cast<uintptr_t>(ptr);
  Table& t = table();
  std::lock_guard<SpinLock> lock(t.lock);
  auto it = t.blocks.upper_bound(start);
  if (it == t.blocks.begin()) return {};
  --it;
  uintptr_t base = it->first;
  const Entry& e = it->second;
  if (start - base > e.bytes || bytes > e.bytes - (start - base)) return {};
  return {e.kind, reinterpret_cast<const void*>(base), e.bytes};
}

}  // namespace pinpool::block_registry
