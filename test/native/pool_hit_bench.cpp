// The cost of a pool hit, for callgrind: one warm pool(pageable), then `rounds` alloc + free
// pairs of one small class, through the C ABI (as another addon calls it) and through
// Handler::allocate/deallocate (as the binding calls it). Not a test: build it as the addon is
// built (Release) and run it under callgrind:
//
//   cmake -S test/native -B build/native-release -DCMAKE_BUILD_TYPE=Release
//   cmake --build build/native-release --target pinpool-pool-hit
//   valgrind --tool=callgrind --toggle-collect='*measure_*' build/native-release/pinpool-pool-hit
//
// and divide the instructions (Ir) of each measure_ function by its rounds. Without
// valgrind it prints nanoseconds per pair, which on a shared machine are only a rough guide.
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "../../include/pinpool.h"
#include "../../native/handlers/pageable_handler.hpp"
#include "../../native/handlers/pool/pool_adaptor.hpp"

using namespace pinpool;

namespace {

// noinline: callgrind's --toggle-collect needs the functions to exist.
__attribute__((noinline)) void measure_abi(pinpool_handler* h, long rounds, size_t bytes) {
  for (long i = 0; i < rounds; i++) {
    pinpool_alloc_info info{};
    void* p = h->alloc(h->ctx, bytes, 64, &info);
    if (!p) std::abort();
    h->free(h->ctx, p, bytes, 64);
  }
}

__attribute__((noinline)) void measure_core(Handler* h, long rounds, size_t bytes) {
  for (long i = 0; i < rounds; i++) {
    pinpool_alloc_info info{};
    void* p = h->allocate(bytes, 64, &info);
    if (!p) std::abort();
    h->deallocate(p, bytes, 64);
  }
}

}  // namespace

int main(int argc, char** argv) {
  long rounds = argc > 1 ? std::atol(argv[1]) : 1000000;
  auto* leaf = new PageableHandler("pageable");
  auto* pool = new PoolAdaptor("pool", leaf->abi(), PoolOptions{});
  leaf->release();  // the pool holds it
  // Warm: the slab exists and one block is cached, so every round below is a hit.
  measure_abi(pool->abi(), 16, 256);
  for (int pass = 0; pass < 2; pass++) {
    auto start = std::chrono::steady_clock::now();
    if (pass == 0)
      measure_abi(pool->abi(), rounds, 256);
    else
      measure_core(pool, rounds, 256);
    double ns =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    std::printf("pool hit (%s): %.1f ns per alloc + free, %ld rounds\n",
                pass == 0 ? "C ABI" : "Handler::allocate", ns / static_cast<double>(rounds),
                rounds);
  }
  pool->release();
  return 0;
}
