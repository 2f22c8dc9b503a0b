// Random 64-bit words from the kernel, for secrets and token ids.
//
// getrandom(2) directly rather than std::random_device: libstdc++'s random_device reads
// arc4random where glibc has it (2.36), a symbol the prebuilt binaries, which load on glibc 2.28,
// must not need (scripts/prebuild.sh).
#pragma once

#include <cerrno>
#include <cstdint>
#include <stdexcept>

#if defined(__linux__)
#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>
#else
#include <stdlib.h>
#endif

namespace pinpool {

// Fills `out` with `count` random words; throws std::runtime_error when the kernel has none to
// give (no getrandom and no /dev/urandom), rather than hand out guessable secrets.
inline void random_words(uint64_t* out, size_t count) {
#if defined(__linux__)
  auto* bytes = reinterpret_cast<unsigned char*>(out);
  size_t want = count * sizeof(uint64_t), got = 0;
  while (got < want) {
    ssize_t n = getrandom(bytes + got, want - got, 0);
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;  // ENOSYS: a kernel before 3.17
    }
  }
  if (got < want) {
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    while (fd >= 0 && got < want) {
      ssize_t n = read(fd, bytes + got, want - got);
      if (n > 0)
        got += static_cast<size_t>(n);
      else if (!(n < 0 && errno == EINTR))
        break;
    }
    if (fd >= 0) close(fd);
  }
  if (got < want)
    throw std::runtime_error(
        "pinpool: the kernel gave no random numbers (getrandom, /dev/urandom)");
#else
  arc4random_buf(out, count * sizeof(uint64_t));
#endif
}

inline uint64_t random_word() {
  uint64_t word;
  random_words(&word, 1);
  return word;
}

}  // namespace pinpool
