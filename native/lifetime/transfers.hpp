// Buffers in flight between threads: buf.transfer() parks a block here under a fresh random
// key, adopt(key) in the receiving thread takes it out, once. A parked block keeps a reference
// to its handler, so the handler outlives the sending thread, and it keeps the leases it had
// (an ArrayBuffer of the sending thread that still reaches the memory), and its named scope's
// cell: the token names neither, only the key.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "../core/fence.hpp"
#include "../core/handler.hpp"
#include "../core/scope_cell.hpp"

namespace pinpool::transfers {

struct Parcel {
  Handler* handler = nullptr;                  // holds one reference while parked
  void* ptr = nullptr;                         // the block
  size_t bytes = 0;                            // as allocated, in bytes
  size_t alignment = 0;                        // as allocated
  const pinpool_handler* served_by = nullptr;  // the leaf that provided it
  FenceSet leases;                             // leases the block carries with it
  ScopeCell* scope = nullptr;                  // the named scope that counts it until it is
                                               // freed; holds a reference; null: none
};

// Parks a parcel (taking over its handler reference); returns its key: 128 random bits as 32
// hexadecimal digits, so no other code can guess it.
std::string park(Parcel&& parcel);
// Takes a parcel out; false when there is none with that key (never parked, or adopted).
bool take(const std::string& key, Parcel& out);

// 64 random bits as 16 hexadecimal digits, fixed for the process: tokens carry it, so a token
// made in another process is refused rather than taken for one of ours.
const std::string& process_key();
// `words` random 64-bit words as hexadecimal digits (the kernel's random numbers).
std::string random_hex(int words);

}  // namespace pinpool::transfers
