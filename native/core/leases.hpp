// Leases on memory. A block reaches a free list only when its owner has released it *and* no
// lease on its memory remains (docs/decisions/0009-leases.md). A lease is a range of addresses held
// until a fence signals: an in-flight copy or prefetch (the fence of its GPU work), a registration
// (signalled at unregister), an ArrayBuffer that escaped its HostBuffer (signalled by its
// finalizer).
//
// Leases are taken from the memory, by address, never from the JavaScript object a caller
// passed: a copy into `buf.bytes`, into a view made from `buf.bytes.buffer`, or into the
// ArrayBuffer that `transfer()` moved the memory into, leases the same block. Every free, at
// every level of a chain (Handler::deallocate), asks for the leases over the block it frees, so
// the block, and the slab or leaf block under it, waits for them.
//
// The table holds the leases of work in flight, a handful at a time; when it is empty (nearly
// always) a free pays one atomic load for it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fence.hpp"

namespace pinpool::leases {

// Leases [ptr, ptr + bytes) until `fence` signals (the table holds its own reference).
void take(const void* ptr, size_t bytes, Fence* fence);
// True while any lease may still be held (a relaxed load: the fast path of every free).
bool any();
// The flag any() reads, for readers that cannot call any(): a thread cache's JavaScript reads it
// through an Int32Array before it keeps a freed block.
const std::atomic<int32_t>* held_flag();
// True when a lease that has not signalled overlaps [ptr, ptr + bytes).
bool overlaps(const void* ptr, size_t bytes);
// Adds to `out` (each with a new reference) the fences of the leases that overlap
// [ptr, ptr + bytes) and have not signalled; forgets the leases that have.
void overlapping(const void* ptr, size_t bytes, std::vector<Fence*>& out);

}  // namespace pinpool::leases
