// Small arithmetic on sizes and alignments, shared by every handler.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>

namespace pinpool {

constexpr size_t kMaxAlignment = size_t{1} << 30;  // 1 GiB, the largest alignment we accept

inline bool is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

// The alignments the C ABI accepts (include/pinpool.h): a power of two from 1 to kMaxAlignment.
inline bool is_valid_alignment(size_t alignment) {
  // alignment - 1 wraps for 0, so one comparison bounds both ends.
  return alignment - 1 < kMaxAlignment && (alignment & (alignment - 1)) == 0;
}

// Rounds up to a multiple of `alignment` (a power of two); returns 0 on overflow.
inline size_t align_up(size_t bytes, size_t alignment) {
  size_t mask = alignment - 1;
  return bytes > SIZE_MAX - mask ? 0 : (bytes + mask) & ~mask;
}

inline bool is_aligned(const void* p, size_t alignment) {
  return (reinterpret_cast<uintptr_t>(p) & (alignment - 1)) == 0;
}

inline size_t page_size() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

}  // namespace pinpool
