#!/usr/bin/env bash
# Everything a fresh machine needs before the demo or the tests, as root: Debian packages, npm
# dependencies, and the real test environment (pinned kube-apiserver, etcd, helm, AEMM, the aws-sdk-go-v2
# client, a Python venv with moto/botocore; built once and cached under ~/.cache/imdsgate-testenv, then
# started on 127.0.0.1). Idempotent: a second run takes seconds. Prints progress.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
t0=$SECONDS
step() { printf '\n[setup] === %s (t+%ss)\n' "$*" "$((SECONDS - t0))"; }

# Toolchains come with the machine; make sure their usual homes are on PATH in a bare environment.
for d in /usr/local/go/bin "$HOME/go/bin" "$HOME/.pyenv/shims"; do
  [ -d "$d" ] && case :$PATH: in *":$d:"*) ;; *) PATH=$d:$PATH ;; esac
done
export PATH

step "checking toolchains"
[ "$(id -u)" = 0 ] || { echo "[setup] run as root (apt, network namespaces, iptables inside them)" >&2; exit 1; }
for t in go node npm python3 git; do
  command -v "$t" >/dev/null || { echo "[setup] missing toolchain: $t" >&2; exit 1; }
done
printf '[setup] %s | node %s | npm %s | %s\n' "$(go version)" "$(node -v)" "$(npm -v)" "$(python3 --version)"

# iptables (nft + legacy backends), conntrack, iproute2: interception tests inside our own netns.
# prometheus: promtool. openssl, curl, jq: the test env. wrk: benchmarks. awscli: AWS CLI v2 as a real
# client. util-linux: setpriv (dropping capabilities in tests). python3-venv: moto/botocore venv.
APT_PACKAGES=(iptables conntrack iproute2 prometheus openssl curl jq wrk awscli util-linux python3-venv
  ca-certificates)
# Container image test (test/container): podman with runc, buildah, and debootstrap for a local base
# image; installed with their recommends (test/container/build-and-run.sh needs runc and buildah's helpers).
# The node test bed (test/node): containerd as the kubelet's CRI runtime, the CNI plugins (bridge,
# host-local, loopback) and socat for the unix-socket relays between the node's namespace and loopback.
CONTAINER_PACKAGES=(podman buildah debootstrap runc containerd containernetworking-plugins socat)

missing() { for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"; done; }
step "apt packages"
mapfile -t need < <(missing "${APT_PACKAGES[@]}")
mapfile -t need_ctr < <(missing "${CONTAINER_PACKAGES[@]}")
if [ ${#need[@]} -gt 0 ] || [ ${#need_ctr[@]} -gt 0 ]; then
  echo "[setup] installing: ${need[*]} ${need_ctr[*]}"
  apt-get update -qq
  # Package scripts must not start daemons (prometheus) on this machine; keep an existing policy.
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  [ ${#need[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ ${#need_ctr[@]} -eq 0 ] || apt-get install -y -qq "${need_ctr[@]}" >/dev/null
  [ $made_policy = 0 ] || rm -f /usr/sbin/policy-rc.d
else
  echo "[setup] all present"
fi

# The tests run on the image's Node major (the Dockerfile's pin): fetch it into the cache when the
# machine's node is another major. Nothing global changes; npm test, .ci/run and the demo put it first on
# PATH through scripts/pinned-node.sh.
step "node runtime (the image's pinned version)"
bash scripts/pinned-node.sh fetch
node_bin=$(bash scripts/pinned-node.sh bin)
[ -z "$node_bin" ] || { PATH=$node_bin:$PATH; export PATH; }
echo "[setup] tests run on node $(node -v)"

step "npm ci"
if [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  echo "[setup] node_modules up to date"
else
  npm ci --no-audit --no-fund
fi

step "test environment up (the first run builds the Go tools: several minutes)"
bash test/env/up
step "set-up done in $((SECONDS - t0))s"
