#!/usr/bin/env bash
# Lints the package as published, after `npm run build`: publint on its files and exports,
# then attw (are the types wrong) on the packed tarball, for Node's ESM and CommonJS
# resolution and bundlers. node10 resolution (no `exports` support) is out of scope.
set -euo pipefail
cd "$(dirname "$0")/.."
test -f dist/index.js || { echo "check:package: no dist/, run npm run build first" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
publint --strict --pack false
npm pack --ignore-scripts --silent --pack-destination "$tmp" >/dev/null
attw --profile node16 --format table-flipped "$tmp"/*.tgz
