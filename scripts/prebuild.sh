#!/usr/bin/env bash
# Builds the prebuilt binaries that ship in the package (prebuilds/<platform>-<arch>/pinpool.node),
# so that `npm install pinpool` needs no compiler: linux-x64 with this machine's g++, linux-arm64
# with Debian's cross compiler (g++-aarch64-linux-gnu). Both with PINPOOL_GLIBC_BASELINE: they
# load on glibc 2.28 and later (scripts/test-prebuilds.sh reads the versions back).
#
# Usage: scripts/prebuild.sh [x64] [arm64]   (default: both; an arch without its compiler fails)
# Needs: cmake, g++ (and g++-aarch64-linux-gnu for arm64), node_modules (node-api-headers
# for the Node-API headers). Runs from `npm pack` (prepack).
set -euo pipefail
cd "$(dirname "$0")/.."

arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x64 arm64)
headers=$(node -p "require('node-api-headers').include_dir")
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)

for arch in "${arches[@]}"; do
  case "$arch" in
    x64) cxx=${CXX_X64:-g++}; processor=x86_64 ;;
    arm64) cxx=${CXX_ARM64:-aarch64-linux-gnu-g++}; processor=aarch64 ;;
    *) echo "prebuild: unknown arch $arch (x64 or arm64)" >&2; exit 2 ;;
  esac
  if ! command -v "$cxx" >/dev/null; then
    echo "prebuild: $cxx not found (linux-$arch needs it; on Debian: apt-get install ${cxx%-g++}-g++ or g++)" >&2
    exit 1
  fi
  dir=build-prebuild/linux-$arch
  # Without the test hooks (PINPOOL_TESTING), said outright: a build folder keeps its options.
  cmake -S . -B "$dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DPINPOOL_GLIBC_BASELINE=ON -DPINPOOL_TESTING=OFF \
    -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=$processor -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_JS_INC="$headers" >/dev/null
  cmake --build "$dir" --target pinpool >/dev/null
  mkdir -p prebuilds/linux-$arch
  cp "$dir/pinpool.node" prebuilds/linux-$arch/pinpool.node
  echo "prebuild: prebuilds/linux-$arch/pinpool.node ($(wc -c < prebuilds/linux-$arch/pinpool.node) bytes)"
done
