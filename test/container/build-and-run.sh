#!/usr/bin/env bash
# Builds the imdsgate image from the repository's Dockerfile and runs it, on a machine with no Docker
# engine and no registry (shared/docs/container-build.md): debootstrap → podman import as the base,
# podman + runc, builds with --network host, containers with --network none or inside a network
# namespace this script creates. It checks:
#   1. `imdsgate --version` in the image equals package.json's version;
#   2. both iptables backends (nft and legacy) and conntrack are present;
#   3. which capabilities each backend needs (the chart grants exactly these);
#   4. the agent serving inside a network namespace: a "node" netns holding the metadata address
#      (ec2-metadata-mock on 169.254.169.254), the container joined to it, a "pod" netns on a veth pair;
#      the pod's requests reach the agent through the agent's own DNAT rules (or directly with
#      MANAGE_RULES=false);
#   5. the host's network fingerprint (nft ruleset, iptables-save, ip_forward, links) is byte-identical
#      before and after.
# Run as root: `npm run test:container`. KEEP_BASE=0 also removes the cached base image; the built
# image is removed unless KEEP_IMAGE=1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
BASE=${BASE:-localhost/imdsgate-bookworm-base:latest}
IMG=${IMG:-localhost/imdsgate:test}
BIN=${IMDSGATE_TESTENV_BIN:-$HOME/.cache/imdsgate-testenv/bin}
AEMM=${AEMM:-$BIN/ec2-metadata-mock}
SUFFIX=$$
NS_NODE=imdsgate-ct-node-$SUFFIX
NS_POD=imdsgate-ct-pod-$SUFFIX
WORK=$(mktemp -d /tmp/imdsgate-ct.XXXXXX)
CTR=imdsgate-ct-$SUFFIX
export CONTAINERS_CONF=$WORK/containers.conf

t() { date +%s.%N; }
dt() { awk -v a="$2" -v b="$(t)" -v n="$1" 'BEGIN{printf "[time] %s: %.1fs\n", n, b-a}'; }
log() { printf '[container] %s\n' "$*"; }
fail() { printf '[container] FAIL: %s\n' "$*" >&2; exit 1; }
host_net_fp() {
  { if command -v nft >/dev/null; then nft list ruleset; fi
    for s in iptables-nft-save ip6tables-nft-save iptables-legacy-save ip6tables-legacy-save; do
      command -v "$s" >/dev/null && "$s" | grep -v '^#'
    done
    cat /proc/sys/net/ipv4/ip_forward; ip -o link | cut -d: -f2; ip netns list | grep -v "imdsgate-ct-.*-$SUFFIX" || true
  } 2>/dev/null | sha256sum | cut -d' ' -f1
}

[ "$(id -u)" = 0 ] || fail "run as root (podman rootful, ip netns)"
for c in podman runc debootstrap ip iptables-nft-save iptables-legacy-save; do
  command -v "$c" >/dev/null || fail "missing $c (apt-get install podman buildah runc debootstrap iproute2 iptables)"
done
[ -x "$AEMM" ] || fail "missing ec2-metadata-mock at $AEMM (npm run testenv:up builds it)"

NET_BEFORE=$(host_net_fp)
cleanup() {
  local rc=$?
  podman rm -f -t 0 "$CTR" >/dev/null 2>&1 || true
  [ -n "${AEMM_PID:-}" ] && kill "$AEMM_PID" 2>/dev/null || true
  ip netns del "$NS_POD" 2>/dev/null || true
  ip netns del "$NS_NODE" 2>/dev/null || true
  [ "${KEEP_IMAGE:-0}" = 1 ] || podman rmi -f "$IMG" >/dev/null 2>&1 || true
  [ "${KEEP_BASE:-1}" = 1 ] || podman rmi -f "$BASE" >/dev/null 2>&1 || true
  podman image prune -f >/dev/null 2>&1 || true
  rm -rf "$WORK"
  local after; after=$(host_net_fp)
  if [ "$after" != "$NET_BEFORE" ]; then
    echo "[container] FAIL: host network fingerprint changed ($NET_BEFORE -> $after)" >&2; rc=1
  else
    log "host network fingerprint unchanged ($after)"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- engine config: runc, rlimits the VM allows, no bridge network (container-build.md §1) ---------
lim() { local v; v=$(ulimit -H "$1"); [ "$v" = unlimited ] && v=$2; [ "$v" -gt "$2" ] && v=$2; echo "$v"; }
cat >"$CONTAINERS_CONF" <<CONF
[containers]
netns = "none"
default_ulimits = ["nofile=$(lim -n 1048576):$(lim -n 1048576)", "nproc=$(lim -u 32768):$(lim -u 32768)"]
[engine]
runtime = "runc"
CONF

# --- base image from the Debian mirror, reused across runs ------------------------------------------
if ! podman image exists "$BASE"; then
  s=$(t); rootfs=$WORK/rootfs
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log"; fail debootstrap; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/*
  printf '%s\n' "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
    "deb ${MIRROR%/debian}/debian-security bookworm-security main" >"$rootfs/etc/apt/sources.list"
  : >"$rootfs/etc/resolv.conf"; echo localhost >"$rootfs/etc/hostname"
  # An intercepting egress proxy's CA (if the host trusts one) must be trusted by the build stages too.
  mkdir -p "$rootfs/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
  tar --numeric-owner -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  rm -rf "$rootfs"; dt "base image (debootstrap + import)" "$s"
else
  log "reusing base image $BASE"
fi

# --- build ----------------------------------------------------------------------------------------
# --network host: buildah ignores netns="none" and would otherwise create a bridge (host iptables rules).
# --pull=never: a missing base must fail at once, not try https://localhost/v2/.
# SOURCE=head builds the committed tree (git archive HEAD) instead of the working tree.
CTX=$ROOT
if [ "${SOURCE:-worktree}" = head ]; then
  CTX=$WORK/ctx; mkdir -p "$CTX"
  git -C "$ROOT" archive HEAD | tar -x -C "$CTX"
  cp "$ROOT/.dockerignore" "$CTX/"
fi
s=$(t)
podman build --pull=never --network host --build-arg BASE="$BASE" \
  --build-arg REVISION="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  -t "$IMG" -f "$ROOT/Dockerfile" "$CTX" >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; fail "podman build"; }
dt "podman build" "$s"
log "image size: $(podman image inspect "$IMG" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"
