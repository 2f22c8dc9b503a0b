// Size classes of the pool. Up to 1 KiB: multiples of 64 bytes. Above: eight classes per
// doubling (1152, 1280, ..., 2048, 2304, ...), so rounding wastes less than 1/8 of a block at
// any size, unlike the power-of-two rounding that can waste half (PyTorch's and CuPy's host
// caches). Every class size is a multiple of 64.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pinpool::size_classes {

constexpr size_t kGranule = 64;      // smallest class and step up to kLinearMax, in bytes
constexpr size_t kLinearMax = 1024;  // end of the linear classes, in bytes
constexpr int kLinearCount = 16;     // kLinearMax / kGranule
constexpr int kStepsPerDoubling = 8;
constexpr int kCount = kLinearCount + (62 - 10) * kStepsPerDoubling;  // up to 2^62 bytes
constexpr size_t kMaxBytes = size_t{1} << 62;  // larger requests are not classed

inline int floor_log2(uint64_t x) { return 63 - __builtin_clzll(x); }

// The class of a request of `bytes` (1 <= bytes <= kMaxBytes).
inline int index_of(size_t bytes) {
  if (bytes <= kLinearMax) return static_cast<int>((bytes + kGranule - 1) / kGranule) - 1;
  int k = floor_log2(bytes - 1);  // 2^k < bytes <= 2^(k+1)
  size_t step = size_t{1} << (k - 3);
  int m = static_cast<int>((bytes + step - 1) >> (k - 3));  // 9..16
  return kLinearCount + (k - 10) * kStepsPerDoubling + (m - 9);
}

inline size_t size_of(int index) {
  if (index < kLinearCount) return static_cast<size_t>(index + 1) * kGranule;
  int j = index - kLinearCount;
  int k = 10 + j / kStepsPerDoubling;
  size_t m = 9 + static_cast<size_t>(j % kStepsPerDoubling);
  return m << (k - 3);
}

// Division by a class size without a divide instruction, for the pool's free path (which
// block of a slab a pointer names). With m = ceil(2^44 / d), floor(n * m / 2^44) == floor(n / d)
// for every n < 2^22 and d <= 2^22 (Granlund and Montgomery: m * d - 2^44 < d <= 2^(44 - 22)),
// and n * m < 2^22 * 2^38 fits in 64 bits for d >= 64. A slab is at most 4 MiB = 2^22 bytes.
constexpr int kReciprocalShift = 44;
constexpr uint64_t reciprocal_of(size_t d) {
  return ((uint64_t{1} << kReciprocalShift) + d - 1) / d;
}
inline uint32_t divide(uint32_t n, uint64_t reciprocal) {
  return static_cast<uint32_t>((n * reciprocal) >> kReciprocalShift);
}

}  // namespace pinpool::size_classes
