#include "block_registry.hpp"

#include <map>
#include <mutex>

#include "../support/spin_lock.hpp"

namespace pinpool::block_registry {
namespace {

struct Entry {
  size_t bytes;       // at least 1
  const char* kind;   // the leaf's kind (static text)
  const void* owner;  // the leaf handler
};

struct Table {
  SpinLock lock;                      // guards blocks
  std::map<uintptr_t, Entry> blocks;  // leaf blocks by start address
};

Table& table() {
  static auto* t = new Table();  // leaked: blocks may be freed during static destruction
  return *t;
}

}  // namespace

void add(const void* ptr, size_t bytes, const char* kind, const void* owner) {
  Table& t = table();
  std::lock_guard<SpinLock> lock(t.lock);
  t.blocks[reinterpret_cast<uintptr_t>(ptr)] = Entry{bytes ? bytes : 1, kind, owner};
}

size_t remove(const void* ptr, const void* owner) {
  Table& t = table();
  std::lock_guard<SpinLock> lock(t.lock);
  auto it = t.blocks.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == t.blocks.end() || it->second.owner != owner) return 0;
  size_t bytes = it->second.bytes;
  t.blocks.erase(it);
  return bytes;
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
  return {e.kind, reinterpret_cast<const void*>(base), e.bytes, e.owner};
}

}  // namespace pinpool::block_registry
