#!/usr/bin/env bash
# Builds the prebuilt binaries that ship in the package (prebuilds/<platform>-<arch>/pinpool.node),
# so that `npm install pinpool` needs no compiler: linux-x64 with this machine's g++, linux-arm64
# with Debian's cross compiler (g++-aarch64-linux-gnu). Both with PINPOOL_GLIBC_BASELINE: they
# load on glibc 2.28 and later (scripts/test-prebuilds.sh reads the versions back). Each is
# stripped with its arch's strip (the symbol table and debug sections go; the dynamic symbols
# that Node-API and the capsule need stay): about a quarter smaller.
#
# Usage: scripts/prebuild.sh [x64] [arm64]
#   The arches come from the arguments, else from PINPOOL_PREBUILD_ARCHES (space-separated),
#   else both. An arch without its compiler fails, naming the package that brings it. To pack
#   linux-x64 only (a package that then loads on linux-x64 alone):
#     PINPOOL_PREBUILD_ARCHES=x64 npm pack
#   prebuilds/ is emptied first: it holds exactly the arches of this run.
# Needs: cmake, g++ (and g++-aarch64-linux-gnu for arm64, which brings aarch64-linux-gnu-strip),
# node_modules (node-api-headers, a devDependency, for the Node-API headers). Runs from
# `npm pack` (prepack). CXX_X64 and CXX_ARM64 name other compilers; the strip beside each
# (its name with g++ replaced by strip) strips its binary.
set -euo pipefail
cd "$(dirname "$0")/.."

arches=("$@")
# shellcheck disable=SC2206 # the variable is a space-separated list
[ ${#arches[@]} -gt 0 ] || arches=(${PINPOOL_PREBUILD_ARCHES:-x64 arm64})
headers=$(node -p "require('node-api-headers').include_dir")
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)

# Every compiler is checked before anything is built or removed.
for arch in "${arches[@]}"; do
  case "$arch" in
    x64) cxx=${CXX_X64:-g++}; debian=g++ ;;
    arm64) cxx=${CXX_ARM64:-aarch64-linux-gnu-g++}; debian=g++-aarch64-linux-gnu ;;
    *) echo "prebuild: unknown arch $arch (x64 or arm64)" >&2; exit 2 ;;
  esac
  for tool in "$cxx" "${cxx%g++}strip"; do
    if ! command -v "$tool" >/dev/null; then
      echo "prebuild: $tool not found: linux-$arch's binary needs it (Debian and Ubuntu: apt-get install $debian)." >&2
      [ "$arch" = arm64 ] && echo "prebuild: to pack linux-x64 only: PINPOOL_PREBUILD_ARCHES=x64 npm pack" >&2
      exit 1
    fi
  done
done

rm -rf prebuilds
for arch in "${arches[@]}"; do
  case "$arch" in
    x64) cxx=${CXX_X64:-g++}; processor=x86_64 ;;
    arm64) cxx=${CXX_ARM64:-aarch64-linux-gnu-g++}; processor=aarch64 ;;
  esac
  dir=build-prebuild/linux-$arch
  # Without the test hooks (PINPOOL_TESTING), said outright: a build folder keeps its options.
  cmake -S . -B "$dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DPINPOOL_GLIBC_BASELINE=ON -DPINPOOL_TESTING=OFF \
    -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=$processor -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_JS_INC="$headers" >/dev/null
  cmake --build "$dir" --target pinpool >/dev/null
  mkdir -p prebuilds/linux-$arch
  out=prebuilds/linux-$arch/pinpool.node
  # --strip-all keeps .dynsym: the exported entry points resolve as before (test-prebuilds.sh).
  "${cxx%g++}strip" --strip-all -o "$out" "$dir/pinpool.node"
  echo "prebuild: $out ($(wc -c < "$dir/pinpool.node") bytes, $(wc -c < "$out") stripped)"
done
