#include "transfers.hpp"

#include <mutex>
#include <unordered_map>

namespace pinpool::transfers {
namespace {

struct Table {
  std::mutex mutex;                              // guards the members below
  std::unordered_map<uint64_t, Parcel> parcels;  // parked blocks by number
  uint64_t next_id = 1;                          // numbers are never reused
};

Table& table() {
  static auto* t = new Table();  // leaked: parcels may be parked at exit
  return *t;
}

}  // namespace

uint64_t park(const Parcel& parcel) {
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mutex);
  uint64_t id = t.next_id++;
  t.parcels.emplace(id, parcel);
  return id;
}

bool take(uint64_t id, Parcel& out) {
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mutex);
  auto it = t.parcels.find(id);
  if (it == t.parcels.end()) return false;
  out = it->second;
  t.parcels.erase(it);
  return true;
}

}  // namespace pinpool::transfers
