#!/usr/bin/env bash
# Builds the node test bed's images with podman (test/container/podman-lib.sh: no registry, no Docker
# engine, builds on the host network, nothing run): the agent from the repository's Dockerfile, the pause
# (sandbox) image and the client image. Writes one docker-archive per image into $1 and prints
# "NAME ID" lines to $1/ids, so `up` imports into containerd only what changed. Prints progress.
set -euo pipefail
OUT=$1
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
WORK=$(mktemp -d /tmp/imdsgate-img.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
IMG=$AGENT_IMAGE
# shellcheck source=../container/podman-lib.sh
. "$ROOT/test/container/podman-lib.sh"
podman_config
mkdir -p "$OUT"

nlog "images: base"
ensure_base
nlog "images: agent ($AGENT_IMAGE, from the Dockerfile; cached layers make an unchanged tree quick)"
build_agent_image

nlog "images: pause ($PAUSE_IMAGE)"
cp "$BIN/pause" "$NODE_HERE/images/pause/Containerfile" "$WORK/"
podman build --pull=never --network host -t "$PAUSE_IMAGE" -f "$WORK/Containerfile" "$WORK" >"$WORK/pause.log" 2>&1 \
  || { tail -20 "$WORK/pause.log"; exit 1; }

nlog "images: client ($CLIENT_IMAGE: AWS CLI v2, botocore, aws-sdk-go-v2, curl)"
mkdir -p "$WORK/client"
cp "$BIN/goimds" "$ROOT/test/clients/botocore_creds.py" "$NODE_HERE/images/client/Containerfile" "$WORK/client/"
arch=$(podman info --format '{{.Host.Arch}}')
podman build --pull=never --network host --platform "linux/$arch" --build-arg ARCH="$arch" --build-arg BASE="$BASE" -t "$CLIENT_IMAGE" \
  -f "$WORK/client/Containerfile" "$WORK/client" >"$WORK/client.log" 2>&1 || { tail -30 "$WORK/client.log"; exit 1; }

: >"$OUT/ids.new"
for img in "$AGENT_IMAGE" "$PAUSE_IMAGE" "$CLIENT_IMAGE"; do
  id=$(podman image inspect "$img" --format '{{.Id}}')
  f=$OUT/$(echo "$img" | tr '/:' '__').tar
  if ! grep -qx "$img $id" "$OUT/ids" 2>/dev/null || [ ! -f "$f" ]; then
    nlog "images: saving $img"
    rm -f "$f"; podman save --format docker-archive -o "$f" "$img" >/dev/null
  fi
  echo "$img $id" >>"$OUT/ids.new"
done
mv "$OUT/ids.new" "$OUT/ids"
