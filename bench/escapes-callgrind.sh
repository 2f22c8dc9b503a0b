#!/usr/bin/env bash
# What watching ArrayBuffers for their thread's end costs (docs/decisions/0014-no-arraybuffer-outlives-its-block.md): instructions per 4 KiB
# alloc+free, whole process, counted by callgrind, this checkout against another built one (the
# one before the change). Three paths, each the difference between runs of N2 and N1 iterations
# over N2 - N1 (start-up and warm-up cancel out):
#   main-native   the main thread, defaultHandler() (a fallback: every call is native; the buffer
#                 handed out is now moved out of the external one)
#   worker-hit    a worker, pool(pageable()) thread-cache hits (each kept buffer is now named to
#                 native code with track())
#   main-hit      the main thread, the same pool hits (nothing changed there: the control)
# V8 compiles on the main thread (--no-concurrent-recompilation), so valgrind runs the same
# optimized code as without it.
#
#   NODE=/path/to/node bash bench/escapes-callgrind.sh /path/to/other/checkout
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
other=${1:?usage: bench/escapes-callgrind.sh /path/to/other/checkout}
node=${NODE:-node}
N1=${N1:-20000}
N2=${N2:-60000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/loop.cjs" <<'JS'
const { Worker, isMainThread, workerData } = require('node:worker_threads');
const run = ({ root, mode, n }) => {
  const p = require(root + '/dist/src/index.js');
  const h = mode === 'main-native' ? p.defaultHandler() : p.pool(p.pageable());
  let sink = 0;
  const count = n;
  for (let i = 0; i < count; i++) {
    const b = h.alloc(4096);
    sink += b.bytes.length;
    b.free();
  }
  if (sink === 1) console.log(sink);
};
if (isMainThread) {
  const [root, mode, n] = process.argv.slice(2);
  if (mode === 'worker-hit') new Worker(__filename, { workerData: { root, mode, n: Number(n) } });
  else run({ root, mode, n: Number(n) });
} else {
  run(workerData);
}
JS
count() { # root mode n -> total instructions
  valgrind --tool=callgrind --callgrind-out-file="$tmp/out" "$node" --no-concurrent-recompilation "$tmp/loop.cjs" "$1" "$2" "$3" >/dev/null 2>&1
  callgrind_annotate "$tmp/out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }'
}
per_op() { # root mode -> instructions per alloc+free
  local a b
  a=$(count "$1" "$2" "$N1")
  b=$(count "$1" "$2" "$N2")
  echo $(((b - a) / (N2 - N1)))
}
echo "instructions per 4 KiB alloc+free, whole process, N=$N1..$N2 (callgrind, Node $("$node" --version))"
for mode in main-native worker-hit main-hit; do
  b=$(per_op "$other" "$mode")
  a=$(per_op "$here" "$mode")
  echo "  $mode: before $b, now $a, $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%+.1f%%", (a - b) * 100 / b }')"
done
