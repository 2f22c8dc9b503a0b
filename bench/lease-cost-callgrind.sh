#!/usr/bin/env bash
# Instructions the binding spends per alloc+free of a 4 KiB pool hit (HotAlloc + HotFree,
# inclusive of everything they call: Node-API, the handler, the pool), counted by callgrind:
# this checkout against another built checkout (the one before a change). A noise-free figure
# where wall-clock time on a shared 2-core machine moves by 30%. V8's own work (the JavaScript
# wrapper, garbage collection) is not in it: whole-program counts vary by more than the change
# with the timing of scavenges.
#
#   bash bench/lease-cost-callgrind.sh /path/to/other/checkout
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
other=${1:?usage: bench/lease-cost-callgrind.sh /path/to/other/checkout}
N=${N:-40000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/loop.cjs" <<'JS'
const [root, mode, n] = process.argv.slice(2);
const p = require(root + '/dist/src/index.js');
const h = p.pool(p.pageable(), { slabViews: mode === 'slabViews' });
let sink = 0;
for (let i = 0; i < Number(n); i++) {
  const b = h.alloc(4096);
  sink += b.bytes.length;
  b.free();
}
if (sink === 1) console.log(sink);
JS
per_op() { # root mode -> instructions in HotAlloc + HotFree per alloc+free
  valgrind --tool=callgrind --callgrind-out-file="$tmp/out" node "$tmp/loop.cjs" "$1" "$2" "$N" >/dev/null 2>&1
  callgrind_annotate --inclusive=yes "$tmp/out" 2>/dev/null |
    awk -v n="$N" '/binding::Hot(Alloc|Free)\(/ { gsub(",", "", $1); sum += $1 } END { printf "%d", sum / n }'
}
echo "binding instructions per alloc+free of 4096 B, pool(pageable()) hit, N=$N (callgrind, Node $(node --version))"
for mode in detach slabViews; do
  b=$(per_op "$other" "$mode")
  a=$(per_op "$here" "$mode")
  echo "  $mode: before $b, now $a, +$((a - b))"
done
