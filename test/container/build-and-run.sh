#!/usr/bin/env bash
# Builds the imdsgate image from the repository's Dockerfile and runs it, on a machine with no Docker
# engine and no registry: debootstrap → podman import as the base,
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
# Run as root: `npm run test:container`. The base image, the built image and the layer cache are kept for
# warm runs; CLEANUP=1 removes them. SOURCE=head builds the committed tree instead of the working tree.
# MANAGE_RULES=false skips the agent's own rules (the pod then asks the agent directly).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${IMDSGATE_TESTENV_BIN:-$HOME/.cache/imdsgate-testenv/bin}
AEMM=${AEMM:-$BIN/ec2-metadata-mock}
SUFFIX=$$
NS_NODE=imdsgate-ct-node-$SUFFIX
NS_POD=imdsgate-ct-pod-$SUFFIX
WORK=$(mktemp -d /tmp/imdsgate-ct.XXXXXX)
CTR=imdsgate-ct-$SUFFIX
# shellcheck source=podman-lib.sh
. "$ROOT/test/container/podman-lib.sh"

log() { printf '[container] %s\n' "$*"; }
fail() { printf '[container] FAIL: %s\n' "$*" >&2; exit 1; }

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
  if [ "${CLEANUP:-0}" = 1 ]; then
    podman rmi -f "$IMG" "$BASE" >/dev/null 2>&1 || true
    podman image prune -f >/dev/null 2>&1 || true
  fi
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

# --- engine config, base image, build (podman-lib.sh) ------------------------------------------------
podman_config
ensure_base || fail "base image"
build_agent_image || fail "podman build"
log "image size: $(podman image inspect "$IMG" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"

# --- 1. version -------------------------------------------------------------------------------------
want=$(node -p 'require(process.argv[1]).version' "$ROOT/package.json")
got=$(podman run --rm "$IMG" --version)
[ "$got" = "$want" ] || fail "imdsgate --version: got '$got', want '$want'"
log "imdsgate --version: $got"
labels=$(podman image inspect "$IMG" --format '{{index .Labels "org.opencontainers.image.version"}} {{index .Labels "org.opencontainers.image.title"}}')
[ "$labels" = "$want imdsgate" ] || fail "OCI labels: got '$labels'"

# --- 2. both iptables backends and conntrack ---------------------------------------------------------
tools=$(podman run --rm --entrypoint sh "$IMG" -c \
  'iptables-nft --version; iptables-legacy --version; ip6tables-nft --version; ip6tables-legacy --version; conntrack --version; node --version')
printf '%s\n' "$tools" | sed 's/^/  /'
grep -q 'iptables v.* (nf_tables)' <<<"$tools" || fail "iptables-nft missing"
grep -q 'iptables v.* (legacy)' <<<"$tools" || fail "iptables-legacy missing"
grep -q 'ip6tables v.* (nf_tables)' <<<"$tools" && grep -q 'ip6tables v.* (legacy)' <<<"$tools" || fail "ip6tables missing"
grep -q '^conntrack v' <<<"$tools" || fail "conntrack missing"
if podman run --rm --entrypoint sh "$IMG" -c 'test -e /app/node_modules/typescript || test -e /app/node_modules/vitest'; then
  fail "dev dependencies in the runtime image"
fi

# --- 3. capabilities per backend, as the chart grants them (private netns, read-only root) -----------
# nft needs NET_ADMIN only; legacy also needs NET_RAW (its raw socket); conntrack needs NET_ADMIN.
touch "$WORK/xtables.lock"
RESTORE='*raw
:IMDSGATE-CT - [0:0]
-A IMDSGATE-CT -d 169.254.169.254/32 -p tcp -m rpfilter --invert -j DROP
COMMIT
*nat
:IMDSGATE-CT - [0:0]
-A IMDSGATE-CT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 169.254.77.1:8181
COMMIT'
caps_try() { # caps backend → exit status of restore + conntrack in a fresh private netns
  podman run --rm --network none --cap-drop ALL --cap-add "$1" --security-opt no-new-privileges --read-only \
    -v "$WORK/xtables.lock:/run/xtables.lock" -e RESTORE="$RESTORE" --entrypoint sh "$IMG" -c \
    "printf '%s\n' \"\$RESTORE\" | iptables-$2-restore -w 5 --noflush && iptables-$2-save | grep -q IMDSGATE-CT \
     && conntrack -D -d 169.254.169.254 >/dev/null 2>&1; r=\$?; [ \$r -le 1 ]" >/dev/null 2>&1
}
caps_try NET_ADMIN nft || fail "nft backend with NET_ADMIN"
caps_try NET_ADMIN,NET_RAW legacy || fail "legacy backend with NET_ADMIN,NET_RAW"
if caps_try NET_ADMIN legacy; then fail "legacy backend worked without NET_RAW: update the chart's capabilities"; fi
if caps_try NET_RAW nft; then fail "nft backend worked without NET_ADMIN"; fi
log "capabilities: nft = NET_ADMIN; legacy = NET_ADMIN + NET_RAW (as the chart grants)"

# --- 4. the agent serving inside a network namespace --------------------------------------------------
# node netns: 169.254.169.254 on lo served by ec2-metadata-mock (the "cloud"), veth to a pod netns.
# The container joins the node netns; the pod's requests reach it through the agent's own DNAT.
NODE_IP=169.254.77.1 POD_IP=169.254.77.2 VN=igcn$SUFFIX VP=igcp$SUFFIX
ip netns add "$NS_NODE"; ip netns add "$NS_POD"
ip -n "$NS_NODE" link set lo up; ip -n "$NS_POD" link set lo up
ip -n "$NS_NODE" addr add 169.254.169.254/32 dev lo
ip link add "$VN" netns "$NS_NODE" type veth peer name "$VP" netns "$NS_POD"
ip -n "$NS_NODE" addr add "$NODE_IP/30" dev "$VN"; ip -n "$NS_NODE" link set "$VN" up
ip -n "$NS_POD" addr add "$POD_IP/30" dev "$VP"; ip -n "$NS_POD" link set "$VP" up
ip -n "$NS_POD" route add default via "$NODE_IP"
ip netns exec "$NS_NODE" "$AEMM" --hostname 169.254.169.254 --port 80 >"$WORK/aemm.log" 2>&1 &
AEMM_PID=$!
cat >"$WORK/identity.yaml" <<YAML
pods:
  - ip: $POD_IP
    namespace: ct
    name: roleless
    serviceAccount: default
YAML
MANAGE_RULES=${MANAGE_RULES:-true}
s=$(t)
# Configured through IMDSGATE_* variables, as the chart's DaemonSet does.
podman run -d --name "$CTR" --network "ns:/run/netns/$NS_NODE" \
  --cap-drop ALL --cap-add NET_ADMIN,NET_RAW --security-opt no-new-privileges --read-only \
  -v "$WORK/xtables.lock:/run/xtables.lock" -v "$WORK/identity.yaml:/etc/imdsgate/identity.yaml:ro" \
  -e IMDSGATE_IDENTITY_FILE=/etc/imdsgate/identity.yaml -e IMDSGATE_NODE_NAME=ct-node \
  -e IMDSGATE_HOST_IP="$NODE_IP" -e IMDSGATE_LISTEN="$NODE_IP:8181" -e IMDSGATE_METRICS_LISTEN="$NODE_IP:9181" \
  -e IMDSGATE_INTERFACES='igcn+' -e IMDSGATE_MANAGE_RULES="$MANAGE_RULES" -e IMDSGATE_REGION=us-east-1 \
  -e IMDSGATE_LOG_LEVEL=debug "$IMG" serve >/dev/null
in_node() { ip netns exec "$NS_NODE" "$@"; }
in_pod() { ip netns exec "$NS_POD" "$@"; }
ready=0
for _ in $(seq 1 100); do
  if in_node curl -fsS -m 1 "http://$NODE_IP:9181/readyz" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.1
done
[ "$ready" = 1 ] || { podman logs "$CTR" 2>&1 | tail -30; fail "agent not ready on $NODE_IP:9181 within 10 s"; }
dt "agent ready in the container" "$s"
# /readyz does not (yet) wait for the rules: wait for the DNAT rule itself.
has_dnat() { # (no `| grep -q` under pipefail: an early exit of grep fails the writer with SIGPIPE)
  local nat; nat=$({ in_node iptables-nft-save -t nat; in_node iptables-legacy-save -t nat; } 2>/dev/null || true)
  [[ "$nat" == *"DNAT --to-destination $NODE_IP:8181"* ]]
}
if [ "$MANAGE_RULES" = true ]; then
  for _ in $(seq 1 100); do has_dnat && break; sleep 0.1; done
  has_dnat || { podman logs "$CTR" 2>&1 | tail -20 | cut -c1-600; fail "no DNAT rule in the node netns within 10 s"; }
  dt "rules installed by the agent in the node netns" "$s"
fi
in_node curl -fsS -m 2 "http://$NODE_IP:9181/healthz" >/dev/null || fail "/healthz"
in_node curl -fsS -m 2 "http://$NODE_IP:9181/metrics" >"$WORK/metrics.txt" || fail "/metrics"
grep -q '^imdsgate_ready 1' "$WORK/metrics.txt" || fail "imdsgate_ready 1 missing from /metrics"
# The pod asks the metadata address; with MANAGE_RULES=false it asks the agent directly.
MD=http://169.254.169.254
[ "$MANAGE_RULES" = true ] || MD=http://$NODE_IP:8181
token=$(in_pod curl -fsS -m 2 -X PUT -H 'x-aws-ec2-metadata-token-ttl-seconds: 60' "$MD/latest/api/token") \
  || fail "token PUT from the pod netns"
iid=$(in_pod curl -fsS -m 2 -H "x-aws-ec2-metadata-token: $token" "$MD/latest/meta-data/instance-id") \
  || fail "instance-id from the pod netns"
[ "$iid" = "$(in_node curl -fsS -m 2 http://169.254.169.254/latest/meta-data/instance-id)" ] || fail "instance-id not forwarded"
code=$(in_pod curl -sS -m 2 -o "$WORK/listing" -w '%{http_code}' -H "x-aws-ec2-metadata-token: $token" \
  "$MD/latest/meta-data/iam/security-credentials/")
[ "$code" = 404 ] || {
  cat "$WORK/listing"; echo; in_node iptables-nft-save 2>/dev/null; in_node iptables-legacy-save 2>/dev/null
  podman logs "$CTR" 2>&1 | tail -20 | cut -c1-600; fail "role-less pod: credentials listing answered $code, want 404 (the raw mock would answer 200)"; }
log "pod netns: token 200, instance-id $iid forwarded, credentials listing 404 (imdsgate, not the node role)"
if [ "$MANAGE_RULES" = true ]; then
  podman stop -t 5 "$CTR" >/dev/null
  # Fail closed: the rules stay, the pod gets connection refused, never the mock's role listing.
  code=$(in_pod curl -sS -m 2 -o /dev/null -w '%{http_code}' "$MD/latest/meta-data/iam/security-credentials/" 2>/dev/null || true)
  [ "$code" = 000 ] || fail "after the agent stopped the pod got HTTP $code, want connection refused"
  log "agent stopped: rules stay, pod gets connection refused"
fi
log "ALL OK"
