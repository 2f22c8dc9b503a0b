// The few helpers the native test programs share: a CHECK that counts and goes on, and a way
// to run one case in a forked child so that a crash fails that case instead of ending the
// program (a misuse test must be able to say "it aborted", not just abort).
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>

#include "../../native/support/asan.hpp"
#ifdef PINPOOL_ASAN
#include <sanitizer/lsan_interface.h>
#endif

namespace pinpool::test {

inline int passed = 0;  // CHECKs that held, in this process
inline int failed = 0;  // CHECKs that did not

}  // namespace pinpool::test

// Like assert(), but counts, says where, and goes on (and is not compiled out by NDEBUG).
#define CHECK(cond)                                                          \
  do {                                                                       \
    if (cond) {                                                              \
      ::pinpool::test::passed++;                                             \
    } else {                                                                 \
      ::pinpool::test::failed++;                                             \
      std::fprintf(stderr, "FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                        \
  } while (0)

namespace pinpool::test {

// Runs `body` in a forked child and adds the child's CHECK counts to this process's. A child
// that dies (a signal, an abort from an exception that crossed the C ABI) counts as one
// failure and is reported with its signal. Under AddressSanitizer the child also runs
// LeakSanitizer before it reports (it leaves with _exit, which skips the check at exit): a leak
// is one failure. Call it before any thread is started.
template <typename Body>
void isolated(const char* name, Body body) {
  int fds[2];
  if (pipe(fds) != 0) {
    failed++;
    return;
  }
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    passed = failed = 0;
    body();
#ifdef PINPOOL_ASAN
    if (__lsan_do_recoverable_leak_check() != 0) {
      failed++;
      std::fprintf(stderr, "FAILED %s: LeakSanitizer found leaks (above)\n", name);
    }
#endif
    int counts[2] = {passed, failed};
    ssize_t n = write(fds[1], counts, sizeof counts);
    std::fflush(nullptr);
    _exit(n == static_cast<ssize_t>(sizeof counts) ? 0 : 3);
  }
  close(fds[1]);
  int counts[2] = {0, 0};
  ssize_t got = read(fds[0], counts, sizeof counts);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  passed += counts[0];
  failed += counts[1];
  if (WIFSIGNALED(status)) {
    failed++;
    std::fprintf(stderr, "FAILED %s: the child died with signal %d (%s)\n", name, WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
  } else if (got != static_cast<ssize_t>(sizeof counts) || !WIFEXITED(status) ||
             WEXITSTATUS(status) != 0) {
    failed++;
    std::fprintf(stderr, "FAILED %s: the child exited with status %d before reporting\n", name,
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
}

}  // namespace pinpool::test
