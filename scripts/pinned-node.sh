#!/usr/bin/env bash
# The tests run on the Node.js the image runs. The Dockerfile pins it (NODE_VERSION and a sha512 per
# architecture, the npm registry's `node-linux-<arch>` packages); this script is the one place that reads
# that pin for the machine:
#
#   scripts/pinned-node.sh fetch        when the machine's node is another major, fetch the pinned runtime
#                                       (npm pack, then the Dockerfile's sha512) into
#                                       ~/.cache/imdsgate-testenv/node-v<version>/bin; nothing global changes
#   scripts/pinned-node.sh bin          print the bin dir to put first on PATH (empty: the machine's node fits)
#   scripts/pinned-node.sh run CMD...   run CMD with that bin dir first on PATH (npm test, .ci/run, demo)
#
# test/unit/runtime.test.ts fails when the test runtime's major differs from the Dockerfile's.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
arg() { sed -n "s/^ARG $1=//p" "$root/Dockerfile" | head -1; }
version=$(arg NODE_VERSION)
major=${version%%.*}
cache="${IMDSGATE_TESTENV_CACHE:-$HOME/.cache/imdsgate-testenv}/node-v$version"

machine_fits() { command -v node >/dev/null && [ "$(node -p 'process.versions.node.split(".")[0]')" = "$major" ]; }
cached_fits() { [ -x "$cache/bin/node" ] && [ "$("$cache/bin/node" -p process.versions.node)" = "$version" ]; }

bin_dir() {
  if cached_fits; then echo "$cache/bin"; elif machine_fits; then echo ""; else
    echo "[node] Node $major needed (the Dockerfile pins $version), machine has $(node -v 2>/dev/null || echo none):" \
      "run bash scripts/setup.sh" >&2
    return 1
  fi
}

fetch() {
  if machine_fits; then echo "[node] machine's node $(node -v) is the image's major ($major)"; return; fi
  if cached_fits; then echo "[node] pinned node $version cached in $cache"; return; fi
  case "$(uname -m)" in
    x86_64) arch=x64 sum=$(arg NODE_SHA512_AMD64) ;;
    aarch64) arch=arm64 sum=$(arg NODE_SHA512_ARM64) ;;
    *) echo "[node] unsupported machine $(uname -m)" >&2; exit 1 ;;
  esac
  echo "[node] machine has $(node -v 2>/dev/null || echo 'no node'); fetching node-linux-$arch@$version (image's runtime)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-$arch@$version" >/dev/null)
  echo "$sum  $tmp/node-linux-$arch-$version.tgz" | sha512sum -c --quiet - \
    || { echo "[node] sha512 of node-linux-$arch-$version.tgz differs from the Dockerfile's pin" >&2; exit 1; }
  tar -xzf "$tmp/node-linux-$arch-$version.tgz" -C "$tmp" package/bin/node
  mkdir -p "$cache.tmp/bin" && mv "$tmp/package/bin/node" "$cache.tmp/bin/node"
  rm -rf "$cache" && mv "$cache.tmp" "$cache"
  echo "[node] pinned node $("$cache/bin/node" -v) in $cache (sha512 checked)"
}

case "${1:-}" in
  fetch) fetch ;;
  bin) bin_dir ;;
  run)
    shift
    dir=$(bin_dir)
    [ -z "$dir" ] || PATH="$dir:$PATH"
    export PATH
    exec "$@"
    ;;
  *) echo "usage: $0 fetch | bin | run CMD..." >&2; exit 2 ;;
esac
