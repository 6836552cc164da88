#!/usr/bin/env bash
# Fetches Debian's cloud-init package at the pinned version and unpacks it into the cache, without
# installing it (nothing of it runs on this machine except its EC2 metadata crawler, inside a test's pod
# network namespace). Prints the unpacked python directory. Idempotent: cached by version.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
CACHE=${IMDSGATE_TESTENV_CACHE:-$HOME/.cache/imdsgate-testenv}
DEST=$CACHE/cloud-init/$CLOUD_INIT_VERSION
PY=$DEST/usr/lib/python3/dist-packages
log() { printf '[testenv] %s\n' "$*" >&2; }

if [ -f "$PY/cloudinit/sources/helpers/ec2.py" ]; then
  log "cloud-init $CLOUD_INIT_VERSION: cached"
  echo "$PY"
  exit 0
fi
command -v apt-get >/dev/null || { log "apt-get missing: cloud-init comes from Debian's archive"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log "cloud-init $CLOUD_INIT_VERSION: downloading"
download() {
  (cd "$tmp" && apt-get download -qq "cloud-init=$CLOUD_INIT_VERSION" 2>&1 |
    grep -v '^W: Download is performed unsandboxed' >&2 || true)
  ls "$tmp"/cloud-init_*.deb 2>/dev/null | head -n1
}
deb=$(download)
if [ -z "$deb" ]; then
  # A fresh machine whose packages were all present never ran apt-get update in scripts/setup.sh.
  log "cloud-init $CLOUD_INIT_VERSION: not in the package lists; apt-get update"
  apt-get update -qq >&2 || true
  deb=$(download)
fi
[ -n "$deb" ] || { log "cloud-init $CLOUD_INIT_VERSION: download failed (apt-get update first?)"; exit 1; }
mkdir -p "$tmp/x" "$CACHE/cloud-init"
dpkg-deb -x "$deb" "$tmp/x"
rm -rf "$DEST"
mv "$tmp/x" "$DEST"
log "cloud-init $CLOUD_INIT_VERSION: unpacked in $DEST"
echo "$PY"
