// AddressSanitizer hooks for memory that a pool caches. ASan sees malloc and free, but not a
// block that a pool keeps after its caller freed it: without these marks, a write through a
// stale pointer lands in cached memory and goes unnoticed until the block's next owner finds
// its bytes changed. Poisoned bytes make that write an immediate "use-after-poison" report.
//
// In a build without ASan (PINPOOL_SANITIZE off) both functions are empty inline calls and
// compile to nothing.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)  // GCC
#define PINPOOL_ASAN 1
#elif defined(__has_feature)  // clang
#if __has_feature(address_sanitizer)
#define PINPOOL_ASAN 1
#endif
#endif

#ifdef PINPOOL_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace pinpool::asan {

#ifdef PINPOOL_ASAN
constexpr bool kEnabled = true;
#else
constexpr bool kEnabled = false;
#endif

// Marks [ptr, ptr + bytes) as off limits: any instrumented access to it is reported. ASan
// tracks memory in 8-byte granules; a range that ends mid-granule leaves that granule's head
// accessible, so callers poison whole blocks (every pool block is a multiple of 64 bytes).
inline void poison([[maybe_unused]] const void* ptr, [[maybe_unused]] size_t bytes) {
#ifdef PINPOOL_ASAN
  ASAN_POISON_MEMORY_REGION(ptr, bytes);
#endif
}

// Makes [ptr, ptr + bytes) accessible again. Memory must be unpoisoned before it goes back to
// whoever provided it: poison outlives a munmap, and the next owner of those addresses would
// be reported for using its own memory.
inline void unpoison([[maybe_unused]] const void* ptr, [[maybe_unused]] size_t bytes) {
#ifdef PINPOOL_ASAN
  ASAN_UNPOISON_MEMORY_REGION(ptr, bytes);
#endif
}

}  // namespace pinpool::asan
