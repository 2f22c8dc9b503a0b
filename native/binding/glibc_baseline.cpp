// Built into the prebuilt binaries only (PINPOOL_GLIBC_BASELINE, scripts/prebuild.sh), which
// load on glibc 2.28 and later whatever glibc built them. scripts/test-prebuilds.sh checks the
// versions they need.
#include <pthread.h>
#include <stdlib.h>

#include <cstdint>

#include "../support/random.hpp"

extern "C" {

// libstdc++ (its headers, and the static library linked into these binaries) reads glibc 2.32's
// __libc_single_threaded to skip atomic operations in a process without threads. Defined here,
// hidden, it binds inside this binary: 0 says "threads may exist", so reference counts always
// use atomic operations, which is right in every process.
__attribute__((visibility("hidden"))) char __libc_single_threaded = 0;

// glibc 2.34 moved pthread_once and __pthread_key_create into libc under new versions; the static
// libstdc++ calls them. The linker sends those calls here (--wrap), and from here they go to the
// versions every glibc has (in libpthread before 2.34, in libc since).
#if defined(__x86_64__)
#define PINPOOL_GLIBC_BASE "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define PINPOOL_GLIBC_BASE "GLIBC_2.17"
#endif
#ifdef PINPOOL_GLIBC_BASE
__asm__(".symver pthread_once,pthread_once@" PINPOOL_GLIBC_BASE);
__asm__(".symver __pthread_key_create,__pthread_key_create@" PINPOOL_GLIBC_BASE);
// Growth's first-touch threads (core/growth.cpp) start and detach with these.
__asm__(".symver pthread_create,pthread_create@" PINPOOL_GLIBC_BASE);
__asm__(".symver pthread_detach,pthread_detach@" PINPOOL_GLIBC_BASE);
int __pthread_key_create(pthread_key_t* key, void (*destructor)(void*));

__attribute__((visibility("hidden"))) int __wrap_pthread_once(pthread_once_t* once,
                                                              void (*init)(void)) {
  return pthread_once(once, init);
}
__attribute__((visibility("hidden"))) int __wrap_pthread_create(pthread_t* thread,
                                                                const pthread_attr_t* attr,
                                                                void* (*start)(void*), void* arg) {
  return pthread_create(thread, attr, start, arg);
}
__attribute__((visibility("hidden"))) int __wrap_pthread_detach(pthread_t thread) {
  return pthread_detach(thread);
}
__attribute__((visibility("hidden"))) int __wrap___pthread_key_create(pthread_key_t* key,
                                                                      void (*destructor)(void*)) {
  return __pthread_key_create(key, destructor);
}
#endif

// glibc 2.36's arc4random, which the static libstdc++'s std::random_device reads (pinpool does
// not use random_device; the object that defines it comes with others). Like glibc's, it ends
// the process when the kernel gives no random numbers.
__attribute__((visibility("hidden"))) uint32_t __wrap_arc4random(void) {
  try {
    return static_cast<uint32_t>(pinpool::random_word());
  } catch (...) { abort(); }
}
}
