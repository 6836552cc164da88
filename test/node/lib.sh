# Shared by test/node/up, down and status. Names, addresses and paths of the node test bed.
# Everything is link-local and lives in network namespaces this bed creates; nothing is added to the
# machine's own network namespace. One bed per machine: its names are fixed.
# shellcheck shell=bash
NODE_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$NODE_HERE/../.." && pwd)
export IMDSGATE_TESTENV_CACHE=${IMDSGATE_TESTENV_CACHE:-$HOME/.cache/imdsgate-testenv}
CACHE=$IMDSGATE_TESTENV_CACHE
BIN=$CACHE/bin
PKI=$CACHE/pki
NODE_STATE=$CACHE/node-state.env

NODE_NAME=imdsgate-node
NS_NODE=imdsgate-node
NS_CLOUD=imdsgate-cloud
NODE_IP=169.254.100.1           # the node's InternalIP (kubelet --node-ip), on the veth to the cloud
CLOUD_IP=169.254.100.2
POD_SUBNET=169.254.64.0/27      # host-local IPAM: 29 addresses, so they come back often
POD_GW=169.254.64.1
# The CNI plugin: `bridge` (cni0, one route for the whole subnet) or `ptp` (a veth and a /32 host route per
# pod, as aws-vpc-cni, Calico and kindnet do). IMDSGATE_NODE_CNI chooses it at `up`; the bed records it.
CNI=${IMDSGATE_NODE_CNI:-bridge}
SVC_KUBE_IP=169.254.240.1       # the `kubernetes` Service's ClusterIP (first address of the service range)
SVC_STS_IP=169.254.240.10       # where the chart's stsEndpoint points: a relay to moto
IMDS_IP=169.254.169.254
STARTUP_TAINT=imdsgate.io/agent-not-ready

PAUSE_IMAGE=localhost/imdsgate-pause:1
CLIENT_IMAGE=localhost/imdsgate-client:1
AGENT_IMAGE=${IMG:-localhost/imdsgate:test}

nlog() { printf '[node] %s\n' "$*"; }
# in_node CMD...: run in the node's network AND private mount namespace (where kubelet and containerd live).
in_node() { nsenter -t "$HOLDER" -m -n "$@"; }
in_cloud() { ip netns exec "$NS_CLOUD" "$@"; }
kcurl() { curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$@"; }
