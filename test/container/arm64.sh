#!/usr/bin/env bash
# Builds the arm64 (Graviton) agent image from the repository's Dockerfile on an x86_64 host under qemu
# user-mode emulation, and runs its entrypoint. No Docker engine, no registry (test/container/podman-lib.sh).
#   - qemu-aarch64-static comes from Debian's qemu-user-static package (pinned below): `apt-get download`
#     + `dpkg -x` into ~/.cache/imdsgate-testenv, never installed (its postinst would register every
#     handler on the host, persistently).
#   - ONE binfmt_misc handler, for aarch64 ELF only, registered here with the F flag (the kernel opens the
#     interpreter now, so it also works inside containers and chroots) and removed on exit; binfmt_misc is
#     mounted only if it was not, and unmounted again. https://docs.kernel.org/admin-guide/binfmt-misc.html
#     Handlers this script did not register are never touched; an aarch64 handler already present is used.
#   - The arm64 base: `debootstrap --foreign --arch=arm64`, then its second stage under qemu in a chroot
#     (in a private mount namespace); reused across runs like the amd64 base. A local manifest list holds
#     both bases, so the Dockerfile's $BUILDPLATFORM stages (toolchain, builder: npm) run natively and
#     only the runtime stage (apt, `imdsgate --version`) is emulated.
#   - The image's entrypoint: --version, --help, `rules --print`, and `serve` with a bad config (exit 2);
#     node's process.arch is arm64 and its ELF header says aarch64.
#   - binfmt_misc (mounted or not, its handlers) and the host's network fingerprint are the same after.
# Run as root: `npm run test:container:arm64`. CLEANUP=1 removes its images (not the shared amd64 base);
# COLD=1 starts from nothing of its own: no cached qemu, no arm64 base, no layer cache (--no-cache).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${IMDSGATE_TESTENV_CACHE:-$HOME/.cache/imdsgate-testenv}
QEMU_VERSION=1:7.2+dfsg-7+deb12u18+b3
QEMU_DIR=$CACHE/qemu-user-static-${QEMU_VERSION#*:}
QEMU=$QEMU_DIR/qemu-aarch64-static
BINFMT=/proc/sys/fs/binfmt_misc
HANDLER=imdsgate-aarch64
# ELF64, little-endian, e_machine EM_AARCH64 (183 = 0xb7): qemu's own pattern, as Debian ships it.
AARCH64_MAGIC=7f454c460201010000000000000000000200b700
BASE=${BASE:-localhost/imdsgate-bookworm-base:latest}
BASE_ARM64=${BASE_ARM64:-localhost/imdsgate-bookworm-base:arm64}
BASE_MULTI=${BASE_MULTI:-localhost/imdsgate-bookworm-base:multiarch}
IMG=${IMG:-localhost/imdsgate:arm64-test}
WORK=$(mktemp -d /tmp/imdsgate-arm64.XXXXXX)
# shellcheck source=podman-lib.sh
. "$ROOT/test/container/podman-lib.sh"

log() { printf '[arm64] %s\n' "$*"; }
fail() { printf '[arm64] FAIL: %s\n' "$*" >&2; exit 1; }
START=$(t)

[ "$(id -u)" = 0 ] || fail "run as root (binfmt_misc, podman rootful, chroot)"
for c in podman runc debootstrap apt-get dpkg flock unshare chroot od; do
  command -v "$c" >/dev/null || fail "missing $c (apt-get install podman buildah runc debootstrap)"
done
grep -qw binfmt_misc /proc/filesystems || fail "the kernel has no binfmt_misc: no user-mode emulation here"

# One run at a time on this machine: the handler is machine-wide.
mkdir -p "$CACHE"
exec 9>"$CACHE/arm64.lock"
flock -w 1800 9 || fail "another arm64.sh run holds $CACHE/arm64.lock"

binfmt_state() { # mounted or not, and each handler's name and content
  if mountpoint -q "$BINFMT"; then
    echo mounted
    for f in "$BINFMT"/*; do [ "$(basename "$f")" = register ] || { echo "== $f"; cat "$f"; }; done
  else echo unmounted; fi | sha256sum | cut -d' ' -f1
}
NET_BEFORE=$(host_net_fp)
BINFMT_BEFORE=$(binfmt_state)
MOUNTED=0 REGISTERED=0
cleanup() {
  local rc=$?
  podman rm -f -t 0 "imdsgate-arm64-$$" >/dev/null 2>&1 || true
  if [ "${CLEANUP:-0}" = 1 ]; then
    podman rmi -f "$IMG" >/dev/null 2>&1 || true
    podman manifest rm "$BASE_MULTI" >/dev/null 2>&1 || true
    podman rmi -f "$BASE_ARM64" >/dev/null 2>&1 || true
  fi
  [ "$REGISTERED" = 1 ] && { echo -1 >"$BINFMT/$HANDLER" || rc=1; }
  # While mounted the kernel's handlers are visible: they must be those found at mount time.
  if [ -n "${AT_MOUNT:-}" ] && [ "$(binfmt_state)" != "$AT_MOUNT" ]; then
    echo "[arm64] FAIL: binfmt_misc handlers differ from those at mount time" >&2; rc=1
  fi
  [ "$MOUNTED" = 1 ] && { umount "$BINFMT" || rc=1; }
  rm -rf --one-file-system "$WORK"
  if [ "$(binfmt_state)" != "$BINFMT_BEFORE" ]; then echo "[arm64] FAIL: binfmt_misc differs from before" >&2; rc=1
  else log "binfmt_misc as before ($(mountpoint -q "$BINFMT" && echo mounted || echo not mounted))"; fi
  if [ "$(host_net_fp)" != "$NET_BEFORE" ]; then echo "[arm64] FAIL: host network fingerprint changed" >&2; rc=1
  else log "host network fingerprint unchanged"; fi
  dt "arm64.sh total" "$START"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "${COLD:-0}" = 1 ]; then
  rm -rf "$QEMU_DIR"; export NO_CACHE=1
  podman rmi -f "$BASE_ARM64" >/dev/null 2>&1 || podman untag "$BASE_ARM64" "$BASE_ARM64" 2>/dev/null || true
  log "COLD=1: no cached qemu, no arm64 base, no layer cache"
fi

# --- 1. qemu-aarch64-static from the Debian package, never installed -----------------------------------
if [ ! -x "$QEMU" ]; then
  s=$(t); mkdir -p "$WORK/deb"
  (cd "$WORK/deb" && apt-get download "qemu-user-static=$QEMU_VERSION" >/dev/null 2>&1) \
    || fail "apt-get download qemu-user-static=$QEMU_VERSION (not in the apt lists: apt-get update, or bump QEMU_VERSION)"
  dpkg -x "$WORK"/deb/qemu-user-static_*.deb "$WORK/deb/x"
  mkdir -p "$QEMU_DIR.tmp"
  cp "$WORK/deb/x/usr/bin/qemu-aarch64-static" "$QEMU_DIR.tmp/"
  rm -rf "$QEMU_DIR" && mv "$QEMU_DIR.tmp" "$QEMU_DIR"
  dt "qemu-user-static $QEMU_VERSION downloaded (apt checks it) into $QEMU_DIR" "$s"
fi
log "$("$QEMU" --version | head -1)"

# --- 2. one binfmt_misc handler ---------------------------------------------------------------------
if ! mountpoint -q "$BINFMT"; then
  mount -t binfmt_misc binfmt_misc "$BINFMT"; MOUNTED=1; log "mounted binfmt_misc (unmounted on exit)"
fi
# A handler of ours left by a killed run: ours by name, so remove it (and compare against the state without).
if [ -e "$BINFMT/$HANDLER" ]; then
  echo -1 >"$BINFMT/$HANDLER"; log "removed $HANDLER left by an earlier run"
  [ "$MOUNTED" = 1 ] || BINFMT_BEFORE=$(binfmt_state)
fi
AT_MOUNT=$(binfmt_state)
other=$(grep -ls "^magic $AARCH64_MAGIC" "$BINFMT"/* 2>/dev/null | xargs -r grep -l '^enabled' || true)
if [ -n "$other" ]; then
  log "using the aarch64 handler already registered: $other (left as it is)"
else
  # flags: F opens the interpreter now (works in any mount namespace), P keeps argv[0], O passes an fd.
  printf ':%s:M::%s:%s:%s:OPF' "$HANDLER" \
    '\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00' \
    '\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff' "$QEMU" >"$BINFMT/register"
  REGISTERED=1; log "registered binfmt_misc handler $HANDLER → $QEMU (removed on exit)"
fi

# --- 3. base images: amd64 (shared with build-and-run.sh) and arm64, one manifest list --------------------
podman_config
ensure_base || fail "amd64 base image"
if podman image exists "$BASE_ARM64"; then log "reusing base image $BASE_ARM64"; else
  s=$(t); rootfs=$WORK/rootfs
  debootstrap --foreign --arch=arm64 --variant=minbase bookworm "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap --foreign"; }
  dt "debootstrap first stage (native)" "$s"; s=$(t)
  # The second stage runs the arm64 maintainer scripts; its /proc and /sys mounts die with the namespace.
  unshare --mount --propagation private chroot "$rootfs" /debootstrap/debootstrap --second-stage \
    >>"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap --second-stage"; }
  dt "debootstrap second stage (emulated)" "$s"
  import_rootfs "$rootfs" "$BASE_ARM64" arm64
  rm -rf --one-file-system "$rootfs"
fi
podman manifest rm "$BASE_MULTI" >/dev/null 2>&1 || true
podman manifest create "$BASE_MULTI" >/dev/null
podman manifest add "$BASE_MULTI" "containers-storage:$BASE" >/dev/null
podman manifest add "$BASE_MULTI" "containers-storage:$BASE_ARM64" >/dev/null

# --- 4. the image -------------------------------------------------------------------------------------
BASE=$BASE_MULTI PLATFORM=linux/arm64 build_agent_image || fail "podman build --platform linux/arm64"
arch=$(podman image inspect "$IMG" --format '{{.Os}}/{{.Architecture}}')
[ "$arch" = linux/arm64 ] || fail "image platform is $arch, want linux/arm64"
log "image $IMG: $arch, $(podman image inspect "$IMG" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"

# --- 5. its entrypoint, under emulation --------------------------------------------------------------
run() { podman run --rm --network none --platform linux/arm64 "$@"; }
s=$(t)
want=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$ROOT/package.json" | head -1)
got=$(run "$IMG" --version)
[ "$got" = "$want" ] || fail "imdsgate --version: got '$got', want '$want'"
dt "imdsgate --version → $got" "$s"
run "$IMG" --help | grep -q '^  serve ' || fail "imdsgate --help lists no serve command"
rules=$(run "$IMG" rules --print --host-ip 169.254.77.1 --listen 169.254.77.1:8181 --interfaces 'eth+')
grep -q 'DNAT --to-destination 169.254.77.1:8181' <<<"$rules" || fail "rules --print: no DNAT rule"
rc=0; err=$(run "$IMG" serve --listen bogus 2>&1 >/dev/null) || rc=$?
[ "$rc" = 2 ] && grep -q 'invalid configuration' <<<"$err" || fail "serve with a bad config: exit $rc ($err), want 2"
log "--help, rules --print, serve with a bad config → exit 2"
# qemu-user emulates no netfilter netlink socket ("Failed to initialize nft: Protocol not supported"), so
# iptables, conntrack and the agent's rules cannot run here: check the packages' architecture instead.
facts=$(run --entrypoint sh "$IMG" -c 'uname -m; node -p process.arch; find /app/node_modules -name "*.node" | wc -l
  dpkg-query -W -f "\${Architecture} " iptables conntrack')
printf '%s\n' "$facts" | sed 's/^/  /'
[ "$(sed -n 1p <<<"$facts")" = aarch64 ] || fail "uname -m in the container is not aarch64"
[ "$(sed -n 2p <<<"$facts")" = arm64 ] || fail "node's process.arch is not arm64"
[ "$(sed -n 3p <<<"$facts")" = 0 ] || fail "native addons (*.node) in node_modules: built for the build machine"
[ "$(sed -n 4p <<<"$facts")" = 'arm64 arm64 ' ] || fail "iptables/conntrack packages are not arm64"
# A short serve without rules (see above) in a private netns: the HTTP stack loads and answers on arm64.
cat >"$WORK/identity.yaml" <<'YAML'
pods:
  - { ip: 127.0.0.9, namespace: ct, name: roleless, serviceAccount: default }
YAML
s=$(t)
served=$(run -v "$WORK/identity.yaml:/etc/imdsgate/identity.yaml:ro" -e IMDSGATE_MANAGE_RULES=false \
  -e IMDSGATE_IDENTITY_FILE=/etc/imdsgate/identity.yaml -e IMDSGATE_NODE_NAME=arm64 -e IMDSGATE_REGION=us-east-1 \
  -e IMDSGATE_HOST_IP=127.0.0.1 -e IMDSGATE_LISTEN=127.0.0.1:8181 -e IMDSGATE_METRICS_LISTEN=127.0.0.1:9181 \
  -e IMDSGATE_UPSTREAM=http://127.0.0.1:9 --entrypoint sh "$IMG" -c 'imdsgate serve >/tmp/serve.log 2>&1 &
  node -e "
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    (async () => {
      for (let i = 0; i < 240; i++) {
        const h = await fetch(\"http://127.0.0.1:9181/healthz\").catch(() => undefined);
        if (h) {
          const t = await fetch(\"http://127.0.0.1:8181/latest/api/token\",
            { method: \"PUT\", headers: { \"x-aws-ec2-metadata-token-ttl-seconds\": \"60\" } });
          console.log(\"healthz\", h.status, \"token\", t.status, (await t.text()).length > 0);
          return;
        }
        await sleep(250);
      }
      console.log(\"no healthz within 60 s\"); process.exitCode = 1;
    })();" || { cat /tmp/serve.log; exit 1; }') || fail "serve under emulation: $served"
[ "$served" = 'healthz 200 token 200 true' ] || fail "serve under emulation: $served"
dt "serve (no rules, unreachable upstream): /healthz 200, IMDSv2 token PUT 200" "$s"
# The node binary's ELF header (EI_CLASS at 4, e_machine at 18): 64-bit, EM_AARCH64.
hdr=$(run --entrypoint head "$IMG" -c 20 /usr/local/bin/node | od -An -tx1 | tr -d ' \n')
[ "${hdr:8:2}${hdr:36:4}" = 02b700 ] || fail "/usr/local/bin/node is not an aarch64 ELF (header $hdr)"
log "node is an aarch64 ELF, runs as process.arch arm64; no native addons; iptables, conntrack arm64"
log "ALL OK"
