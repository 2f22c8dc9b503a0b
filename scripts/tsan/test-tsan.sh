#!/usr/bin/env bash
# `npm run test:tsan`: the native core under ThreadSanitizer.
#
#   1. builds the CUDA test double with -fsanitize=thread into build-tsan/fake-cuda/ (the
#      misuse test's pinned cases run on it)
#   2. builds the native tests (test/native, no Node) with -fsanitize=thread into
#      build-tsan/native-tests/ and runs them: the unit tests (4 threads sharing a pool), the C ABI
#      misuse test, and the C ABI stress (8 threads through pool, limit and two fallbacks, frees
#      on other threads, racing double frees, a limit kept at its cap)
#
# Only the core is tested here, not the addon under Node: Node and V8 are not built with TSan,
# so their own synchronisation would be invisible to it and every report would be noise.
#
# No suppressions: the run must be clean. Should one ever be needed, it goes into
# scripts/tsan/tsan.supp with a comment saying why the report is not a race, and this script
# passes it on (suppressions=...).
#
# Needs: g++ with libtsan (Debian: libtsan2), cmake.
# Environment: PINPOOL_NATIVE_STRESS_OPS (operations per stress thread and chain, default 20000).
# Exit status: 0 when everything built and passed without a ThreadSanitizer report.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

tsan_dir=build-tsan
libtsan=$(g++ -print-file-name=libtsan.so)
if [ ! -e "$libtsan" ]; then
  echo "test:tsan: g++ has no libtsan.so (got '$libtsan'); install the compiler's TSan runtime (Debian: libtsan2)" >&2
  exit 1
fi

started=$SECONDS
echo "test:tsan: building the CUDA test double and the native tests with ThreadSanitizer into $tsan_dir/"
cmake -S test/doubles/fake-cuda -B "$tsan_dir/fake-cuda" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPINPOOL_FAKE_CUDA_SANITIZE=thread >/dev/null
cmake --build "$tsan_dir/fake-cuda" -j "$(nproc)" >/dev/null
cmake -S test/native -B "$tsan_dir/native-tests" -DPINPOOL_SANITIZE=thread \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$tsan_dir/native-tests" -j "$(nproc)" >/dev/null
built=$((SECONDS - started))

# halt_on_error: the first report fails the run (and the program exits 66, so ctest sees it).
# second_deadlock_stack: both stacks of a lock-order inversion, not one.
log=$tsan_dir/ctest.log
status=0
if TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  PINPOOL_CUDA_LIBRARY="$root/$tsan_dir/fake-cuda/libpinpool-fakecuda.so" \
  ctest --test-dir "$tsan_dir/native-tests" --output-on-failure --verbose >"$log" 2>&1; then
  outcome=passed
else
  outcome=FAILED
  status=1
  cat "$log"
fi
if grep -a -q 'WARNING: ThreadSanitizer' "$log"; then
  outcome="FAILED (ThreadSanitizer reports in $log)"
  status=1
fi

echo
grep -a -E '(native tests|abi misuse|abi stress|capsule api|shared region): ' "$log" | grep -a -v -E 'abi misuse: +[0-9]+ ms' |
  sed 's/^[0-9]*: //'
echo
echo "test:tsan: $(date -u +%FT%TZ), $(nproc) cores, $(g++ --version | head -1)"
printf 'test:tsan: %-24s %5d s\n' "build" "$built"
printf 'test:tsan: %-24s %5d s  %s\n' "native tests (TSan)" $((SECONDS - started - built)) "$outcome"
exit $status
