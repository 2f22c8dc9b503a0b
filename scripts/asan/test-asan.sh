#!/usr/bin/env bash
# `npm run test:asan`: the native code under AddressSanitizer, UndefinedBehaviorSanitizer and
# LeakSanitizer.
#
#   1. builds the addon with PINPOOL_SANITIZE=ON into build-asan/ (build/ is left alone)
#   2. builds and runs the native tests (test/native, no Node: the unit tests, the C ABI misuse
#      test, the C ABI stress) with the same sanitizers, LeakSanitizer checking at exit (and in
#      each forked child of the misuse test)
#   3. runs the native-facing vitest suites, in the host and fake-cuda projects, with the
#      sanitized addon (PINPOOL_NATIVE_PATH) and libasan preloaded into node, and a
#      LeakSanitizer check at the end of every test file (scripts/asan/leak-check.setup.ts)
#
# Pool blocks are poisoned while cached (native/support/asan.hpp), so a write into a freed block
# is reported where it happens. Node itself is not instrumented: JavaScript's own reads and
# writes of a buffer are not checked, only native code (ours, and the libc calls Node makes).
#
# Needs: a checkout with node_modules (npm ci), g++ with libasan, cmake.
# Environment: PINPOOL_STRESS_OPS (allocations per stress thread; default 25,000 here, a quarter
# of the suite's own: `npm run test:stress` runs the full count at native speed, and a quarter
# under ASan takes each path thousands of times for about 70 s instead of 280 s);
# PINPOOL_FUZZ_SEED and PINPOOL_FUZZ_CASES for the fuzzers (default seed 90, 5000 calls a file).
# Exit status: 0 when every phase passed.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

asan_dir=build-asan
addon=$asan_dir/Release/pinpool.node
lsan_check=$asan_dir/lsan-check.node
# Inside build-asan/, which .gitignore already covers.
native_dir=$asan_dir/native-tests

libasan=$(g++ -print-file-name=libasan.so)
if [ ! -e "$libasan" ]; then
  echo "test:asan: g++ has no libasan.so (got '$libasan'); install the compiler's ASan runtime (Debian: libasan8)" >&2
  exit 1
fi

# AddressSanitizer options, the fewest that work with Node:
#   detect_leaks=1            LeakSanitizer on.
#   leak_check_at_exit=0      ...but not at exit of the Node processes: vitest ends a test fork
#                             with SIGTERM (SIGKILL 500 ms later), so exit() and its check never
#                             run, and at exit every block a live JavaScript object holds looks
#                             leaked (LSan cannot scan V8's heap). The check runs instead in the
#                             fork, after the file's tests and a few garbage collections
#                             (leak-check.setup.ts). The native tests (a plain program) get
#                             the ordinary check at exit (their own ASAN_OPTIONS, below).
#   allocator_may_return_null=1
#                             tests ask for impossible sizes (2^50 bytes) and expect
#                             ERR_PINPOOL_OUT_OF_MEMORY; by default ASan aborts the process on
#                             such a request ("allocation-size-too-big") instead of failing it.
#   intercept_tls_get_addr=0  works around a crash of LeakSanitizer's tracer ("Tracer caught
#                             signal 11", then "LeakSanitizer has encountered a fatal error")
#                             in GCC 12's runtime with glibc >= 2.25: it mistakes some dynamic
#                             TLS blocks for the glibc 2.19 layout and scans a bogus range
#                             (google/sanitizers#1322). Dynamic TLS is still scanned, as heap
#                             reachable from each thread's TLS.
asan_options=detect_leaks=1:leak_check_at_exit=0:allocator_may_return_null=1:intercept_tls_get_addr=0
lsan_options=suppressions=$root/scripts/asan/lsan.supp:print_suppressions=0
# UBSan: print where, and stop at the first finding (the build also has -fno-sanitize-recover).
ubsan_options=print_stacktrace=1:halt_on_error=1

phases=()
status=0
started=$SECONDS
phase_start=$SECONDS
# Records the phase just finished: name, seconds, outcome.
finish() {
  phases+=("$(printf '%-34s %5d s  %s' "$1" $((SECONDS - phase_start)) "$2")")
  phase_start=$SECONDS
}

echo "test:asan: building the addon with AddressSanitizer and UBSan into $asan_dir/"
# configure, then build: `cmake-js compile` configures only a new build folder, so an option
# given to it would not reach one configured before. PINPOOL_TESTING: the suites use the hooks.
npx cmake-js configure -O "$asan_dir" --CDPINPOOL_SANITIZE=ON --CDPINPOOL_TESTING=ON --log-level warn
npx cmake-js build -O "$asan_dir" --log-level warn
cc -shared -fPIC -O1 -Wall -Wextra -I node_modules/node-api-headers/include \
  scripts/asan/lsan-check.c -o "$lsan_check"
finish "build addon (ASan + UBSan)" "built $addon"

# The suites load the package from dist/ and the CUDA test double from build/fake-cuda/
# (neither is sanitized; the test double's memcpy and malloc still go through ASan).
npx tsc -p tsconfig.build.json
npm run --silent build:fake-cuda
npm run --silent build:native-addon
finish "build dist/, the CUDA test double, the example addon" "done"

echo
echo "test:asan: native tests (test/native) with AddressSanitizer, UBSan and LeakSanitizer"
cmake -S test/native -B "$native_dir" -DPINPOOL_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$native_dir" -j "$(nproc)"
# LeakSanitizer at exit here: a plain program, everything it allocates is ours.
if ASAN_OPTIONS=detect_leaks=1:intercept_tls_get_addr=0 UBSAN_OPTIONS=$ubsan_options \
  ctest --test-dir "$native_dir" --output-on-failure --verbose >"$native_dir/ctest.log" 2>&1; then
  grep -a -E '(native tests|abi misuse|abi stress|capsule api|shared region): ' "$native_dir/ctest.log" |
    grep -a -v -E 'abi misuse: +[0-9]+ ms' | sed 's/^[0-9]*: //'
  # One count for the five programs.
  counts=$(grep -a -o -E '[0-9]+ passed, [0-9]+ failed' "$native_dir/ctest.log" |
    awk '{p += $1; f += $3} END {printf "%d passed, %d failed", p, f}')
  finish "native tests (build + run)" "passed: $counts"
else
  cat "$native_dir/ctest.log"
  status=1
  finish "native tests (build + run)" "FAILED (log above)"
fi

# The native-facing suites: those that drive the addon. Stress suites when present (another
# file's work), switched on here; PINPOOL_STRESS_OPS shortens them. The fuzzers run with another
# seed than `npm test` does, so that CI covers two sequences of calls, one of them sanitized.
files=(test/host/handlers.contract.test.ts test/host/adaptors.test.ts test/host/misuse.test.ts test/host/threads.test.ts
  test/host/gc.test.ts test/host/lifecycle.test.ts test/fake-cuda/cuda.contract.test.ts test/fake-cuda/cuda.test.ts
  test/fake-cuda/gpu.test.ts test/host/lifetimes.test.ts test/fake-cuda/lifetimes.test.ts test/host/map-file.test.ts
  test/fake-cuda/map-file.test.ts test/host/trace.test.ts test/host/fuzz.test.ts test/fake-cuda/fuzz.test.ts
  test/host/native-addon.test.ts test/host/escapes.test.ts test/fake-cuda/escapes.test.ts test/host/fuzz-escapes.test.ts
  test/host/thread-cache.test.ts test/host/growth.test.ts test/fake-cuda/growth.test.ts
  test/fake-cuda/contexts.test.ts test/host/shared.test.ts test/fake-cuda/shared.test.ts)
for f in test/host/stress/*.test.ts test/fake-cuda/stress/*.test.ts; do [ -e "$f" ] && files+=("$f"); done
present=()
for f in "${files[@]}"; do
  if [ -e "$f" ]; then present+=("$f"); else echo "test:asan: $f is missing, skipped" >&2; fi
done

for project in host fake-cuda; do
  echo
  echo "test:asan: vitest, project $project, addon $addon, libasan preloaded"
  log=$asan_dir/vitest-$project.log
  # node runs vitest directly (not npx): npm itself need not run under ASan.
  if env LD_PRELOAD="$libasan" ASAN_OPTIONS="$asan_options" LSAN_OPTIONS="$lsan_options" \
    UBSAN_OPTIONS="$ubsan_options" PINPOOL_NATIVE_PATH="$root/$addon" \
    PINPOOL_LSAN_CHECK="$root/$lsan_check" PINPOOL_STRESS=1 PINPOOL_STRESS_OPS="${PINPOOL_STRESS_OPS:-25000}" \
    PINPOOL_FUZZ_SEED="${PINPOOL_FUZZ_SEED:-90}" \
    PINPOOL_FUZZ_CASES="${PINPOOL_FUZZ_CASES:-5000}" \
    node node_modules/vitest/vitest.mjs run --config scripts/asan/vitest.config.mts \
    --project "$project" "${present[@]}" 2>&1 | tee "$log"; then
    outcome=passed
  else
    outcome=FAILED
    status=1
  fi
  counts=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -a -E '^ +Tests ' | tail -1 | sed -E 's/^ +Tests +//')
  finish "vitest $project" "$outcome: ${counts:-no test count}"
done

echo
echo "test:asan: $(date -u +%FT%TZ), $(nproc) cores, node $(node --version), $(g++ --version | head -1)"
echo "test:asan: LeakSanitizer on: at exit of the native tests, and at the end of every vitest file"
printf 'test:asan: %s\n' "${phases[@]}"
printf 'test:asan: %-34s %5d s  %s\n' "total" $((SECONDS - started)) "$([ $status = 0 ] && echo passed || echo FAILED)"
exit $status
