#!/usr/bin/env bash
# The package.json that ships carries no `scripts`: the repository's scripts (pretest, prestart,
# prepack, ...) build and test a checkout, none of them means anything in node_modules, and an
# installer that sees a lifecycle script warns about it (npm 11: "install scripts not yet covered
# by allowScripts", for `prepare`). npm has no option to leave a field out of the tarball, so
# `npm pack` does it in place, the way pinst and clean-publish do:
#
#   prepack   scripts/prebuild.sh, then `strip`: package.json is kept as build/package.json.repo
#             and written again without `scripts` (npm reads the file from disk when it packs)
#   postpack  `restore`: the repository's package.json comes back
#
# A pack that fails between the two leaves package.json without scripts; the next `strip` (or
# `restore`) puts it back first. `npm publish` from the directory would send the registry the
# manifest it reads again after postpack, scripts and all, so prepublishOnly (which npm runs for a
# directory publish only) refuses it: publish the tarball, whose package.json is the stripped one.
#
# Usage: scripts/published-manifest.sh strip|restore|refuse-directory-publish
set -euo pipefail
cd "$(dirname "$0")/.."
kept=build/package.json.repo

restore() { if [ -f "$kept" ]; then mv "$kept" package.json; fi; }

case "${1:-}" in
  strip)
    restore
    mkdir -p build
    cp package.json "$kept"
    node -e '
      const fs = require("node:fs");
      const manifest = JSON.parse(fs.readFileSync("package.json", "utf8"));
      delete manifest.scripts;
      fs.writeFileSync("package.json", JSON.stringify(manifest, null, 2) + "\n");'
    ;;
  restore) restore ;;
  refuse-directory-publish)
    echo "pinpool: publish the packed tarball, whose package.json has no scripts:" >&2
    echo "  npm pack && npm publish pinpool-$(node -p 'require("./package.json").version').tgz" >&2
    exit 1
    ;;
  *)
    echo "usage: scripts/published-manifest.sh strip|restore|refuse-directory-publish" >&2
    exit 2
    ;;
esac
