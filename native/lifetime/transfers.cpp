#include "transfers.hpp"

#include <cstdio>
#include <mutex>
#include <unordered_map>

#include "../support/random.hpp"

namespace pinpool::transfers {
namespace {

struct Table {
  std::mutex mutex;                                 // guards parcels
  std::unordered_map<std::string, Parcel> parcels;  // parked blocks by key
};

Table& table() {
  static auto* t = new Table();  // leaked: parcels may be parked at exit
  return *t;
}

}  // namespace

std::string random_hex(int words) {
  std::string out;
  char digits[17];
  for (int i = 0; i < words; i++) {
    uint64_t word = random_word();
    std::snprintf(digits, sizeof digits, "%016llx", static_cast<unsigned long long>(word));
    out += digits;
  }
  return out;
}

const std::string& process_key() {
  static const std::string* key = new std::string(random_hex(1));
  return *key;
}

std::string park(Parcel&& parcel) {
  Table& t = table();
  std::string key = random_hex(2);
  std::lock_guard<std::mutex> lock(t.mutex);
  while (t.parcels.count(key)) key = random_hex(2);
  t.parcels.emplace(key, std::move(parcel));
  return key;
}

bool take(const std::string& key, Parcel& out) {
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mutex);
  auto it = t.parcels.find(key);
  if (it == t.parcels.end()) return false;
  out = std::move(it->second);
  t.parcels.erase(it);
  return true;
}

}  // namespace pinpool::transfers
