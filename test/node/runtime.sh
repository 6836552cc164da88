#!/usr/bin/env bash
# The node's own processes, inside the holder's namespaces made by test/node/up: containerd, the kubelet,
# and (on the machine's loopback) kube-controller-manager and kube-scheduler. `runtime.sh` starts what is
# not running and waits for the Node to be Ready; `runtime.sh stop` stops kubelet, containerd and every
# container the way a power cut would (a reboot also flushes netfilter: `runtime.sh reboot` does both).
# `runtime.sh pod-range [START END]` narrows the pod addresses host-local hands out (cni_conf below).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck disable=SC1090
. "$NODE_STATE"
# shellcheck disable=SC1091
. "$CACHE/state.env" # KUBE, PKI, and RUN: the test env's run directory (its admin kubeconfig)
ADMIN_KUBECONFIG=$RUN/admin.kubeconfig
RUN=$(. "$NODE_STATE"; echo "$RUN")
# alive NAME: its recorded process runs (a killed one stays a zombie until it is reaped: not alive).
alive() { local f=$RUN/$1.pid st; [ -f "$f" ] || return 1; st=$(cut -d' ' -f3 "/proc/$(cat "$f")/stat" 2>/dev/null) || return 1; [ -n "$st" ] && [ "$st" != Z ]; }
start() { local n=$1; shift; setsid "$@" >>"$RUN/$n.log" 2>&1 </dev/null 8>&- 9>&- & echo $! >"$RUN/$n.pid"; }
fail() { echo "[node] FAIL: $*" >&2; tail -n 30 "$RUN/kubelet.log" "$RUN/containerd.log" 2>/dev/null | cut -c1-300 >&2; exit 1; }
wait_for() { local what=$1 lim=$2 i; shift 2
  for ((i = 0; i < lim * 4; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done; fail "$what not ready within ${lim}s"; }
ctr_() { in_node ctr --address "$RUN/containerd.sock" -n k8s.io "$@"; }

stop_node() {
  local p
  local i
  for n in kubelet containerd; do alive "$n" && kill -KILL "$(cat "$RUN/$n.pid")" 2>/dev/null || true; done
  for ((i = 0; i < 50; i++)); do alive kubelet || alive containerd || break; sleep 0.1; done
  # Every container and shim of the node: its processes live in the kubelet's pod cgroups and in the
  # holder's mount namespace. SIGKILL, as a power cut would.
  for p in $(cat /sys/fs/cgroup/pids/kubepods/cgroup.procs /sys/fs/cgroup/pids/kubepods/*/cgroup.procs \
    /sys/fs/cgroup/pids/kubepods/*/*/cgroup.procs /sys/fs/cgroup/pids/kubepods/*/*/*/cgroup.procs 2>/dev/null); do
    kill -KILL "$p" 2>/dev/null || true
  done
  for p in $(pgrep -f containerd-shim-runc-v2 || true); do
    [ "$(readlink "/proc/$p/ns/mnt")" = "$(readlink "/proc/$HOLDER/ns/mnt")" ] && kill -KILL "$p" 2>/dev/null || true
  done
  sleep 0.5
}

# The CNI configuration ($CNI, lib.sh): host-local IPAM over $POD_SUBNET, or only over START..END of it
# (`runtime.sh pod-range START END`: test/node/7-churn.test.ts narrows it so that addresses come back
# constantly; `runtime.sh pod-range` restores the whole subnet). `bridge` puts every pod on cni0; `ptp`
# gives each pod a veth with a /32 host route through it (the gateway address on every host veth).
# containerd's CRI plugin watches the directory and loads a changed file for the next sandbox; the file is
# renamed into place whole.
cni_conf() {
  local range="\"subnet\": \"$POD_SUBNET\", \"gateway\": \"$POD_GW\"" main
  [ -n "${1:-}" ] && range="$range, \"rangeStart\": \"$1\", \"rangeEnd\": \"$2\""
  case $CNI in
    ptp) main='"type": "ptp", "ipMasq": false' ;;
    *) main='"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true' ;;
  esac
  cat >"$RUN/cni-conf/.10-pods.tmp" <<JSON
{ "cniVersion": "0.4.0", "name": "imdsgate-bed",
  "plugins": [
    { $main,
      "ipam": { "type": "host-local", "ranges": [[{ $range }]],
                "routes": [{ "dst": "0.0.0.0/0" }] } },
    { "type": "portmap", "capabilities": { "portMappings": true } } ] }
JSON
  mv "$RUN/cni-conf/.10-pods.tmp" "$RUN/cni-conf/10-pods.conflist"
  # containerd uses the first file by name: none other may stay (a bed made before the file was renamed).
  find "$RUN/cni-conf" -name '*.conflist' ! -name 10-pods.conflist -delete
}

start_node() {
  if ! alive containerd; then
    nlog "runtime: containerd (Debian's 1.6, CRI plugin, runc, CNI $CNI)"
    cat >"$RUN/containerd.toml" <<TOML
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$RUN/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Root here lacks CAP_SYS_RESOURCE: without this runc fails every sandbox on oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
TOML
    cni_conf
    start containerd nsenter -t "$HOLDER" -m -n containerd --config "$RUN/containerd.toml"
    wait_for containerd 20 ctr_ version
    for img in "$AGENT_IMAGE" "$PAUSE_IMAGE" "$CLIENT_IMAGE"; do
      id=$(grep "^$img " "$CACHE/node-images/ids" | cut -d' ' -f2)
      if [ "$(cat "$RUN/imported-${img//[\/:]/_}" 2>/dev/null)" != "$id" ]; then
        nlog "runtime: importing $img"
        ctr_ images import --no-unpack "$CACHE/node-images/$(echo "$img" | tr '/:' '__').tar" >/dev/null
        echo "$id" >"$RUN/imported-${img//[\/:]/_}"
      fi
    done
  fi
  if ! alive kubelet; then
    nlog "runtime: kubelet ($NODE_NAME, node IP $NODE_IP, registers with the taint $STARTUP_TAINT)"
    cat >"$RUN/kubelet.kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters: [{ name: bed, cluster: { server: "https://$SVC_KUBE_IP:443", certificate-authority: "$PKI/ca.crt" } }]
users: [{ name: kubelet, user: { client-certificate: "$PKI/kubelet.crt", client-key: "$PKI/kubelet.key" } }]
contexts: [{ name: bed, context: { cluster: bed, user: kubelet } }]
current-context: bed
YAML
    cat >"$RUN/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 (hybrid) machine: the cgroupfs driver, and v1 explicitly allowed (kubelet 1.31+ refuses v1
# unless told). On a cgroup v2 host: drop failCgroupV1 and use the systemd driver if systemd runs there.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
protectKernelDefaults: true
containerRuntimeEndpoint: unix://$RUN/containerd.sock
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication: { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: "$PKI/ca.crt" } }
authorization: { mode: AlwaysAllow }
registerWithTaints: [{ key: "$STARTUP_TAINT", effect: NoSchedule }]
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
maxPods: 40
# A shared build machine's disk is not this node's to guard: never evict, never collect the local images.
evictionHard: { memory.available: "1Mi", nodefs.available: "0%", imagefs.available: "0%", nodefs.inodesFree: "0%" }
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
nodeStatusReportFrequency: 10s
YAML
    kubelet_started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    start kubelet nsenter -t "$HOLDER" -m -n "$BIN/kubelet" --config="$RUN/kubelet.yaml" \
      --kubeconfig="$RUN/kubelet.kubeconfig" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1
  fi
  if ! alive kube-controller-manager; then
    nlog "control plane: kube-controller-manager, kube-scheduler (loopback)"
    start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig="$ADMIN_KUBECONFIG" \
      --leader-elect=false --secure-port=0 --root-ca-file="$PKI/ca.crt" \
      --service-account-private-key-file="$PKI/sa.key" --controllers='*' --v=1
    start kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$ADMIN_KUBECONFIG" \
      --leader-elect=false --secure-port=0 --v=1
  fi
  wait_for "node $NODE_NAME registered" 60 kcurl "$KUBE/api/v1/nodes/$NODE_NAME"
  set_node_address
  wait_for "node $NODE_NAME Ready" 90 node_ready
}
# The kubelet refuses a link-local --node-ip ("nodeIP can't be a link-local unicast address",
# kubelet_node_status.go validateNodeIP), and this bed may only use link-local addresses. When that check
# fails the kubelet leaves the Node's addresses as they are, so they are written here once, as the
# kubelet would have: pods' status.hostIP (the chart's IMDSGATE_HOST_IP) comes from them.
set_node_address() {
  kcurl -X PATCH -H 'Content-Type: application/merge-patch+json' "$KUBE/api/v1/nodes/$NODE_NAME/status" \
    -d "{\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"$NODE_IP\"},{\"type\":\"Hostname\",\"address\":\"$NODE_NAME\"}]}}" >/dev/null
}
# What a reboot does to the node's netfilter: every table of both backends empty again.
flush_netfilter() {
  local b t
  for b in iptables-nft ip6tables-nft iptables-legacy ip6tables-legacy; do
    for t in raw mangle nat filter; do
      in_node "$b" -w -t "$t" -F 2>/dev/null || true; in_node "$b" -w -t "$t" -X 2>/dev/null || true
    done
  done
}
# Ready, as reported by a kubelet started at or after $kubelet_started (after a restart the Node still
# shows the old kubelet's last status for a while).
kubelet_started=1970-01-01T00:00:00Z
node_ready() {
  kcurl "$KUBE/api/v1/nodes/$NODE_NAME" | jq -e --arg t "$kubelet_started" \
    '.status.conditions[] | select(.type=="Ready") | .status=="True" and .lastHeartbeatTime >= $t' | grep -q true
}

case ${1:-start} in
  start) start_node ;;
  stop) stop_node ;;
  reboot) stop_node; flush_netfilter ;;
  pod-range) cni_conf "${2:-}" "${3:-}" ;;
  *) echo "usage: runtime.sh [start|stop|reboot|pod-range [START END]]" >&2; exit 2 ;;
esac
