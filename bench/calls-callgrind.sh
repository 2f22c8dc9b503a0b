#!/usr/bin/env bash
# The calls users make (issue 22), counted: instructions per 4 KiB alloc+free on the hit paths,
# by callgrind, for one or more built checkouts side by side (bench/calls.mjs times the same
# cases; on a shared machine these counts are the figure to trust). Each case runs N1 iterations
# (the warm-up), then M = N2 - N1 that are counted: callgrind dumps its counters each time the
# script calls os.getPriority() (--dump-before=uv_os_getpriority), once before and once after the
# M iterations, and the figure is the second dump's total over M. Counting the whole process and
# taking the difference of two runs (N2 against N1 iterations) is not repeatable: start-up varies
# by +-6 million instructions from run to run (+-300 per alloc+free at M = 20 000); the dump
# between the markers repeats to the instruction on a quiet machine, and within about 100 per
# alloc+free on a loaded one (something timed by the wall clock, a GC heuristic or a task, then
# lands in the window): compare checkouts in one invocation, where each case runs for every
# checkout back to back. Everything the process does in between counts: the garbage collections
# the iterations cause, and every thread's instructions.
# An "after gc" case runs a full collection (gc()) after the warm-up, before the first marker.
#
#   default      defaultHandler().alloc(4096)            controller   alloc() outside every run()
#   scope        alloc() in controller.run() (one run per batch) of a named scope bound to
#                defaultHandler()
#   own          pool(locked()), own ArrayBuffers         slab         pool(locked(), { slabViews })
#   arraybuffer  new Uint8Array(new ArrayBuffer(4096))    floor        alloc-small.mjs's floor
#   <case>-gc    <case> in the M iterations after a full collection
#
# V8 compiles on the main thread (--single-threaded), so that the count is the main thread's
# work: without it the background compiler's instructions land in it too (THREADED=1 shows how
# much: about 1% for `default` on Node 24 with this method). And a loop that runs as one long
# call is compiled on stack (OSR), which under --single-threaded stays at V8's middle tier
# (Maglev) on Node 24 and 26: each case therefore runs in calls of BATCH iterations, as a
# benchmark's batches do. Node 26 reaches TurboFan only after 20 000 to 40 000 iterations, hence
# N1. Before counting, the script checks that every case's batch function runs TurboFan code
# after the warm-up (natively, and the first case under valgrind too), and names the cases whose
# code the collection deoptimized.
#
#   NODE=/path/to/node bash bench/calls-callgrind.sh [checkout ...]   (default: this checkout)
#   N1=40000 N2=60000 MODES="default own-gc ..." THREADED=1 (also count the first case without
#   --single-threaded, to show why it is needed)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -eq 0 ]; then set -- "$here"; fi
roots=("$@")
node=${NODE:-node}
N1=${N1:-40000}
N2=${N2:-60000}
M=$((N2 - N1))
BATCH=100
MODES=${MODES:-default controller scope own slab arraybuffer floor default-gc controller-gc scope-gc own-gc slab-gc floor-gc}
flags=(--single-threaded --expose-gc)
if [ $((N1 % BATCH)) -ne 0 ] || [ $((M % BATCH)) -ne 0 ] || [ "$M" -le 0 ]; then
  echo "N1 and N2 must be multiples of $BATCH with N2 > N1" >&2
  exit 2
fi
for root in "$@"; do
  if [ ! -f "$root/dist/src/index.js" ]; then
    echo "$root: no dist/src/index.js (build it: npm run build)" >&2
    exit 2
  fi
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/loop.cjs" <<'JS'
'use strict';
const { getPriority } = require('node:os');
const [root, mode, n1, m, batchSize] = process.argv.slice(2);
/** @type {typeof import('pinpool')} */
const p = require(root + '/dist/src/index.js');
const { alloc, controller, defaultHandler, locked, pool } = p;
const SIZE = 4096;
let sink = 0;
const base = mode.replace(/-gc$/, '');
const explicit = base === 'own' ? pool(locked(), { name: 'calls-explicit' }) : null;
const slab = base === 'slab' ? pool(locked(), { name: 'calls-slab', slabViews: true }) : null;
if (base === 'scope') {
  controller.register('calls-default', defaultHandler());
  controller.scope('calls-scope', 'calls-default');
}
const floorSlab = new ArrayBuffer(64 * SIZE);
const floorFree = Array.from({ length: 64 }, (_, i) => i * SIZE);
// One function per case, named batch_<case> for the tier check.
function batch_default(n) {
  for (let i = 0; i < n; i++) {
    const b = defaultHandler().alloc(SIZE);
    sink += b.bytes.length;
    b.free();
  }
}
function batch_controller(n) {
  for (let i = 0; i < n; i++) {
    const b = alloc(SIZE);
    sink += b.bytes.length;
    b.free();
  }
}
function batch_scope(n) {
  controller.run('calls-scope', batch_controller, n);
}
function batch_own(n) {
  for (let i = 0; i < n; i++) {
    const b = explicit.alloc(SIZE);
    sink += b.bytes.length;
    b.free();
  }
}
function batch_slab(n) {
  for (let i = 0; i < n; i++) {
    const b = slab.alloc(SIZE);
    sink += b.bytes.length;
    b.free();
  }
}
function batch_arraybuffer(n) {
  for (let i = 0; i < n; i++) sink += new Uint8Array(new ArrayBuffer(SIZE)).length;
}
function batch_floor(n) {
  for (let i = 0; i < n; i++) {
    const offset = floorFree.pop();
    const b = { bytes: new Uint8Array(floorSlab, offset, SIZE), offset, released: false };
    sink += b.bytes.length;
    b.released = true;
    floorFree.push(b.offset);
  }
}
const batches = {
  default: batch_default,
  controller: batch_controller,
  scope: batch_scope,
  own: batch_own,
  slab: batch_slab,
  arraybuffer: batch_arraybuffer,
  floor: batch_floor,
};
const batch = batches[base];
if (batch === undefined) throw new Error(`unknown case ${mode}`);
const size = Number(batchSize);
const iterate = (n) => {
  for (let done = 0; done < n; done += size) batch(size);
};
// The tier check (a separate run with --allow-natives-syntax, never counted): whether the
// function that iterates runs as TurboFan code, read by comparing its status bits (their layout changes between
// V8 versions) with those of a function TurboFan compiled on request.
const tier = process.env.CALLS_TIER_CHECK === undefined ? null : tierOf();
function tierOf() {
  const status = new Function('f', 'return %GetOptimizationStatus(f)');
  const reference = new Function('x', 'return x + 1');
  new Function('f', '%PrepareFunctionForOptimization(f)')(reference);
  reference(1);
  reference(2);
  new Function('f', '%OptimizeFunctionOnNextCall(f)')(reference);
  reference(3);
  const turbofan = status(reference);
  const hot = base === 'scope' ? batch_controller : batch; // the function that iterates
  return () => ((status(hot) & turbofan) === turbofan ? 'turbofan' : 'not-turbofan');
}
const states = [];
iterate(Number(n1));
if (tier) states.push(`warm=${tier()}`);
if (mode.endsWith('-gc')) {
  globalThis.gc();
  if (tier) states.push(`after-gc=${tier()}`);
}
getPriority(); // the marker: callgrind's counters are dumped here
iterate(Number(m));
getPriority(); // and here
if (tier) console.log(`tier ${states.join(' ')} end=${tier()}`);
if (sink === 1) console.log(sink);
JS
# The tier check: the loop run with --allow-natives-syntax (never counted) prints the batch
# function's tier after the warm-up, after the collection and at the end.
tier() { # runner... -- prints "tier warm=... [after-gc=...] end=..."
  CALLS_TIER_CHECK=1 "$@" 2>&1 | grep '^tier ' || echo 'tier failed'
}
per_op() { # root mode [node flags...] -> instructions per alloc+free between the markers
  local root=$1 mode=$2 dumps
  shift 2
  rm -f "$tmp"/out*
  if ! valgrind --tool=callgrind --dump-before=uv_os_getpriority --callgrind-out-file="$tmp/out" \
    "$node" "$@" "$tmp/loop.cjs" "$root" "$mode" "$N1" "$M" "$BATCH" >"$tmp/log" 2>&1; then
    echo "failed: $node $* loop.cjs $root $mode $N1 $M $BATCH" >&2
    tail -20 "$tmp/log" >&2
    exit 1
  fi
  # out.1: start-up and warm-up; out.2: the M iterations; out: the rest, to the exit.
  dumps=$(find "$tmp" -name 'out*' | wc -l)
  if [ "$dumps" -ne 3 ]; then
    echo "expected 3 callgrind dumps (uv_os_getpriority called elsewhere?), got $dumps" >&2
    exit 1
  fi
  awk -v m="$M" '/^totals:/ { printf "%d\n", $2 / m }' "$tmp/out.2"
}

echo "instructions per 4 KiB alloc+free, callgrind, Node $("$node" --version), iterations" \
  "$N1..$N2 after start-up, batches of $BATCH, ${flags[*]}"
first=${MODES%% *}
for root in "$@"; do
  cold="" deopt=""
  for mode in $MODES; do
    t=$(tier "$node" "${flags[@]}" --allow-natives-syntax "$tmp/loop.cjs" "$root" "$mode" "$N1" "$M" "$BATCH")
    case "$t" in *warm=turbofan*) ;; *) cold="$cold $mode" ;; esac
    case "$t" in *after-gc=not-turbofan*) deopt="$deopt $mode(${t##*end=})" ;; esac
  done
  t=$(tier valgrind --tool=none "$node" "${flags[@]}" --allow-natives-syntax "$tmp/loop.cjs" "$root" "$first" "$N1" "$M" "$BATCH")
  case "$t" in *warm=turbofan*) ;; *) cold="$cold $first(under-valgrind)" ;; esac
  if [ -n "$cold" ]; then
    echo "  $(basename "$root"): WARNING: not TurboFan after the N1 warm-up:$cold (raise N1)"
  else
    echo "  $(basename "$root"): every case runs TurboFan code after the N1 warm-up ($first under valgrind too)"
  fi
  if [ -n "$deopt" ]; then
    echo "  $(basename "$root"): deoptimized by the collection (tier at the end):$deopt"
  fi
done

declare -A figure
for mode in $MODES; do
  for root in "$@"; do figure["$root|$mode"]=$(per_op "$root" "$mode" "${flags[@]}"); done
done

printf '\n%-14s' case
for root in "$@"; do printf ' %14s' "$(basename "$root")"; done
printf '\n'
for mode in $MODES; do
  printf '%-14s' "$mode"
  for root in "$@"; do printf ' %14s' "${figure["$root|$mode"]}"; done
  printf '\n'
done

# The issue's targets, by instructions, where this run counted both sides.
ratio_row() { # label a b want, for each checkout
  local label=$1 a=$2 b=$3 want=$4
  case " $MODES " in *" $a "*) ;; *) return ;; esac
  case " $MODES " in *" $b "*) ;; *) return ;; esac
  printf '%-30s' "$label"
  for root in "${roots[@]}"; do
    printf ' %14s' "$(awk -v a="${figure["$root|$a"]}" -v b="${figure["$root|$b"]}" 'BEGIN { printf "%.3f", a / b }')"
  done
  printf '   want %s\n' "$want"
}
printf '\n%-30s' 'ratio of instructions'
for root in "$@"; do printf ' %14s' "$(basename "$root")"; done
printf '\n'
ratio_row 'default / arraybuffer' default arraybuffer '<= 0.333'
ratio_row 'controller / arraybuffer' controller arraybuffer '<= 0.333'
ratio_row 'scope / arraybuffer' scope arraybuffer '<= 0.333'
ratio_row 'default / own' default own '<= 1.3'
ratio_row 'controller / own' controller own '<= 1.3'
ratio_row 'scope / own' scope own '<= 1.3'
ratio_row 'own / floor' own floor '<= 4'
ratio_row 'slab / floor' slab floor '<= 2.5'
for mode in default controller scope own slab floor; do
  ratio_row "$mode-gc / $mode" "$mode-gc" "$mode" "$([ "$mode" = floor ] && echo reference || echo '<= 1.3')"
done

case " $MODES " in *" own "*)
  if [ "$("$node" -p 'process.versions.node.split(".")[0]')" = 20 ]; then
    printf '%-30s' 'own: Node 20 native hit path'
    for root in "${roots[@]}"; do printf ' %14s' "${figure["$root|own"]}"; done
    printf '   want <= 6000\n'
  fi
  ;;
esac

if [ -n "${THREADED:-}" ]; then
  echo
  echo "without --single-threaded (background compilation counted; not a figure to use):"
  for root in "$@"; do
    echo "  $first, $(basename "$root"): $(per_op "$root" "$first" --expose-gc)"
  done
fi
