#!/usr/bin/env bash
# scripts/vendor-console.sh: re-fetch the admin console's front-end files from the npm
# registry into http-edge/console/vendor/ and record their versions, licences and sha256
# in http-edge/console/vendor/VENDORED.
#
# The console is server-rendered HTML with htmx: the node embeds these files in its binary
# (include_str!), so building never needs npm or the network. Run this script only to
# upgrade: change a version below, run it, review the diff, run the http-edge tests (one
# checks the embedded files against VENDORED).
#
# Needs: npm (only `npm pack`, which downloads the package tarball), tar, sha256sum.
set -euo pipefail

HTMX_VERSION="2.0.11"      # npm package htmx.org, licence 0BSD
HTMX_SSE_VERSION="2.2.4"   # npm package htmx-ext-sse, licence 0BSD

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENDOR="$ROOT/http-edge/console/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

command -v npm >/dev/null || { echo "vendor-console: npm is needed to fetch packages" >&2; exit 1; }

# fetch PACKAGE VERSION SOURCE TARGET: unpack PACKAGE@VERSION, copy its SOURCE file (path in
# the package) to vendor/TARGET and its LICENSE to vendor/TARGET.LICENSE.
fetch() {
  local package="$1" version="$2" source="$3" target="$4" tarball
  tarball="$(cd "$WORK" && npm pack --silent "$package@$version")"
  mkdir -p "$WORK/$package"
  tar -xzf "$WORK/$tarball" -C "$WORK/$package"
  cp "$WORK/$package/package/$source" "$VENDOR/$target"
  # Both packages are Zero-Clause BSD; refuse an upgrade that changed that.
  grep -qiE 'zero.clause|0BSD' "$WORK/$package/package/LICENSE" \
    || { echo "vendor-console: $package@$version is no longer 0BSD; review its licence" >&2; exit 1; }
  cp "$WORK/$package/package/LICENSE" "$VENDOR/$target.LICENSE"
  printf '%s %s %s 0BSD %s\n' "$target" "$package" "$version" \
    "$(sha256sum "$VENDOR/$target" | cut -d' ' -f1)" >>"$WORK/VENDORED"
}

mkdir -p "$VENDOR"
{
  echo "# Vendored by scripts/vendor-console.sh from the npm registry; do not edit by hand."
  echo "# file package version licence sha256"
} >"$WORK/VENDORED"
fetch htmx.org "$HTMX_VERSION" dist/htmx.min.js htmx.min.js
fetch htmx-ext-sse "$HTMX_SSE_VERSION" dist/sse.min.js sse.min.js
cp "$WORK/VENDORED" "$VENDOR/VENDORED"
cat "$VENDOR/VENDORED"
