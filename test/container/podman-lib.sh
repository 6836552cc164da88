# Sourced by test/container/build-and-run.sh and test/node/images.sh: podman set up for this machine
# (no Docker engine, no registry: see test/container/README or the header of build-and-run.sh), the
# locally debootstrapped Debian base image, and the agent image built from the repository's Dockerfile.
# Callers set WORK (a scratch directory they remove) and may set MIRROR, BASE, IMG, SOURCE.
# shellcheck shell=bash
PODMAN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
BASE=${BASE:-localhost/imdsgate-bookworm-base:latest}
IMG=${IMG:-localhost/imdsgate:test}

t() { date +%s.%N; }
dt() { awk -v a="$2" -v b="$(t)" -v n="$1" 'BEGIN{printf "[time] %s: %.1fs\n", n, b-a}'; }

# The host's network state (nft ruleset, iptables in both backends, ip_forward, links): callers compare it
# before and after. Not `ip netns list`: other test suites on this machine create and delete namespaces.
host_net_fp() {
  { if command -v nft >/dev/null; then nft list ruleset; fi
    for s in iptables-nft-save ip6tables-nft-save iptables-legacy-save ip6tables-legacy-save; do
      command -v "$s" >/dev/null && "$s" | grep -v '^#'
    done
    cat /proc/sys/net/ipv4/ip_forward; ip -o link | cut -d: -f2
  } 2>/dev/null | sha256sum | cut -d' ' -f1
}

# Engine config: runc (crun refuses this machine's cgroup v1+v2 hybrid layout), rlimits within the
# hard limits root has here (no CAP_SYS_RESOURCE), and no bridge network (netavark would write host
# iptables rules): containers get --network none unless told otherwise.
podman_config() {
  local lim_n lim_u
  lim() { local v; v=$(ulimit -H "$1"); [ "$v" = unlimited ] && v=$2; [ "$v" -gt "$2" ] && v=$2; echo "$v"; }
  lim_n=$(lim -n 1048576); lim_u=$(lim -u 32768)
  export CONTAINERS_CONF=$WORK/containers.conf
  cat >"$CONTAINERS_CONF" <<CONF
[containers]
netns = "none"
default_ulimits = ["nofile=$lim_n:$lim_n", "nproc=$lim_u:$lim_u"]
[engine]
runtime = "runc"
CONF
}

# The base image from the Debian mirror, reused across runs.
ensure_base() {
  if podman image exists "$BASE"; then printf '[image] reusing base image %s\n' "$BASE"; return; fi
  local s rootfs=$WORK/rootfs; s=$(t)
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log"; echo "[image] FAIL: debootstrap" >&2; return 1; }
  import_rootfs "$rootfs" "$BASE"
  rm -rf "$rootfs"; dt "base image (debootstrap + import)" "$s"
}

# A debootstrapped rootfs → a podman image: apt sources, no caches, the host's extra CAs.
# ARCH (optional, e.g. arm64) labels the image for another platform (test/container/arm64.sh).
import_rootfs() {
  local rootfs=$1 image=$2 arch=${3:-}
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/*
  printf '%s\n' "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
    "deb ${MIRROR%/debian}/debian-security bookworm-security main" >"$rootfs/etc/apt/sources.list"
  : >"$rootfs/etc/resolv.conf"; echo localhost >"$rootfs/etc/hostname"
  # An intercepting egress proxy's CA (if the host trusts one) must be trusted by the build stages too.
  mkdir -p "$rootfs/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
  tar --numeric-owner -C "$rootfs" -c . \
    | podman import ${arch:+--arch "$arch"} --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
}

# The agent image from the Dockerfile. --network host: buildah ignores netns="none" and would otherwise
# create a bridge. --pull=never: a missing base fails at once. SOURCE=head builds the committed tree.
# CREATED is the commit's date, not the clock's, so an unchanged tree rebuilds to the same image ID.
# PLATFORM (e.g. linux/arm64, test/container/arm64.sh) builds for another platform; unset: the host's.
# NO_CACHE=1 rebuilds every layer (a cold-build measurement).
build_agent_image() {
  local ctx=$PODMAN_ROOT s; s=$(t)
  if [ "${SOURCE:-worktree}" = head ]; then
    ctx=$WORK/ctx; mkdir -p "$ctx"
    git -C "$PODMAN_ROOT" archive HEAD | tar -x -C "$ctx"
    cp "$PODMAN_ROOT/.dockerignore" "$ctx/"
  fi
  # buildah 1.28 (Debian 12) does not set BUILDPLATFORM/BUILDARCH, which the Dockerfile's native stages use.
  local buildarch; case "$(uname -m)" in x86_64) buildarch=amd64 ;; aarch64) buildarch=arm64 ;; *) buildarch=$(uname -m) ;; esac
  podman build --pull=never --network host ${PLATFORM:+--platform "$PLATFORM"} ${NO_CACHE:+--no-cache} \
    --build-arg BASE="$BASE" \
    --build-arg BUILDPLATFORM="linux/$buildarch" --build-arg BUILDARCH="$buildarch" \
    --build-arg REVISION="$(git -C "$PODMAN_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --build-arg CREATED="$(git -C "$PODMAN_ROOT" log -1 --format=%cI 2>/dev/null || echo unknown)" \
    -t "$IMG" -f "$PODMAN_ROOT/Dockerfile" "$ctx" >"$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log"; echo "[image] FAIL: podman build" >&2; return 1; }
  dt "podman build $IMG" "$s"
}
