#!/usr/bin/env bash
# Instructions per alloc+free of a 4 KiB pool hit through each copy of pinpool in a process
# (bench/capsule.mjs's cases), counted by callgrind: a noise-free figure where wall-clock time on
# a shared machine moves by more than the 10% asked for. Whole process, V8 compiling on the main
# thread (--no-concurrent-recompilation: otherwise the loop stays in the interpreter under
# valgrind), the difference between N2 and N1 iterations divided by N2 - N1, so that start-up
# and loading (the capsule's one-time cost) fall out.
#
#   bash bench/capsule-callgrind.sh /path/to/checkout/before/the/capsule
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
before=${1:?usage: bench/capsule-callgrind.sh /path/to/a/checkout/built/before/the/capsule}
N1=${N1:-20000}
N2=${N2:-120000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node -e "require('$here/test/support/capsule/copies.cjs').makeCopies('$tmp', [{ name: 'a', version: '0.1.0' }, { name: 'b', version: '0.2.0' }])"
cat > "$tmp/loop.cjs" <<'JS'
const [tree, before, setup, mode, n] = process.argv.slice(2);
delete process.env.PINPOOL_NATIVE_PATH;
let p;
if (setup === 'before') p = require(before + '/dist/src/index.js');
else {
  const a = require(tree + '/node_modules/a');
  const b = require(tree + '/node_modules/b');
  if (b.info().registry.thisCopy.publisher) throw new Error('the second copy did not join the first');
  p = setup === 'first' ? a : b;
}
const h = p.pool(p.pageable(), { slabViews: mode === 'slabViews' });
const count = Number(n);
let sink = 0;
for (let i = 0; i < count; i++) {
  const buf = h.alloc(4096);
  sink += buf.bytes.length;
  buf.free();
}
if (sink === 1) console.log(sink);
JS
total() { # setup mode n -> instructions of the whole process
  valgrind --tool=callgrind --callgrind-out-file="$tmp/out" node --no-concurrent-recompilation \
    "$tmp/loop.cjs" "$tmp" "$before" "$1" "$2" "$3" >/dev/null 2>&1
  callgrind_annotate "$tmp/out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}
echo "instructions per alloc+free of 4096 B, pool(pageable()) hit, (N=$N2 - N=$N1) / $((N2 - N1)), callgrind, Node $(node --version)"
for mode in own-buffers slabViews; do
  line="  $mode:"
  for setup in before first second; do
    per=$(( ($(total "$setup" "$mode" "$N2") - $(total "$setup" "$mode" "$N1")) / (N2 - N1) ))
    line="$line $setup $per,"
  done
  echo "${line%,}"
done
