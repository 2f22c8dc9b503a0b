// Every block a leaf handler has handed out, by address range. It answers "is this memory
// pinpool's, and of which kind?" for any pointer, whatever JavaScript object reached it: a
// HostBuffer, its `bytes`, another view over the same ArrayBuffer, or an ArrayBuffer that
// `transfer()` moved the memory into. copy() uses it to take its lease from the memory itself
// (leases.hpp) and to know whether the memory is page-locked.
//
// Only leaf calls touch it (an upstream allocation or release): a pool hit does not, since the
// pool's slabs and large blocks are already here as the leaf blocks they came from.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pinpool::block_registry {

// What the registry knows of the memory at an address.
struct Found {
  const char* kind = nullptr;  // the leaf's kind ("pinned", "managed", "locked", ...); null if none
  const void* base = nullptr;  // start of the leaf block holding it
  size_t bytes = 0;            // that leaf block's size, in bytes
  // The leaf handler that holds it (a Handler). It lives at least as long as the block, which
  // lives while the caller's view of it does.
  const void* owner = nullptr;
};

// Records a leaf block of `owner` (bytes == 0 records one byte, so the block still has an
// address).
void add(const void* ptr, size_t bytes, const char* kind, const void* owner);
// Forgets the block of `owner` at `ptr`; returns its size, or 0 when `owner` has none there (a
// foreign or repeated free: another handler's entry is left alone).
size_t remove(const void* ptr, const void* owner);
// The leaf block holding all of [ptr, ptr + bytes), if any.
Found find(const void* ptr, size_t bytes);

}  // namespace pinpool::block_registry
