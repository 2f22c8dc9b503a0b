// Buffers in flight between threads: buf.transfer() parks a block here under a fresh number,
// adopt(number) in the receiving thread takes it out, once. A parked block keeps a reference
// to its handler, so the handler outlives the sending thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "handler.hpp"

namespace pinpool::transfers {

struct Parcel {
  Handler* handler = nullptr;                 // holds one reference while parked
  void* ptr = nullptr;                        // the block
  size_t bytes = 0;                           // as allocated, in bytes
  size_t alignment = 0;                       // as allocated
  const pinpool_handler* served_by = nullptr; // the leaf that provided it
};

// Parks a parcel (taking over its handler reference); returns its number.
uint64_t park(const Parcel& parcel);
// Takes a parcel out; false when there is none with that number (never parked, or adopted).
bool take(uint64_t id, Parcel& out);

}  // namespace pinpool::transfers
