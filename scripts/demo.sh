#!/usr/bin/env bash
# The main job: imdsgate as a platform team meets it on EKS, on a real one-node Kubernetes cluster built on
# this machine (docs/node-testbed.md): `helm install` the chart, watch the DaemonSet come up and open the
# node, then real pods with the AWS CLI get their own role, or are refused with the reason. The first run
# builds everything (minutes, with progress); with warm caches the demo takes about 2 minutes.
#
# Nothing here touches the machine's own network namespace: the node, its pods and the "cloud" (the EC2
# metadata mock on 169.254.169.254) live in network namespaces the node bed creates, on link-local
# addresses. On exit or Ctrl-C the demo uninstalls the chart and removes the node it brought up; the test
# environment (API server, etcd, STS emulator) stays up for the next run (`npm run testenv:down`).
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }

say "set-up: packages, npm dependencies, test environment"
bash scripts/setup.sh
npm run --silent build

say "the node: kubelet, containerd and a CNI bridge in network namespaces; images built with podman"
# A fresh node, so that it registers with the startup taint as a new EKS node would.
bash test/node/down
bash test/node/up
# shellcheck source=../test/node/lib.sh
. test/node/lib.sh
# shellcheck disable=SC1091
. "$CACHE/state.env"
export KUBECONFIG=$RUN/admin.kubeconfig HELM_CACHE_HOME=/tmp/imdsgate-helm-cache PATH=$BIN:$PATH
NODE_RUN=$(. "$NODE_STATE"; echo "$RUN") HOLDER=$(. "$NODE_STATE"; echo "$HOLDER")
cleanup() {
  say "cleaning up"
  helm uninstall imdsgate -n imdsgate --wait --timeout 60s >/dev/null 2>&1 || true
  kubectl delete ns shop batch --wait=false >/dev/null 2>&1 || true
  bash test/node/down
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# The image's Node major, fetched by setup into the cache when the machine's node is another one.
node_bin=$(bash scripts/pinned-node.sh bin)
[ -z "$node_bin" ] || { PATH=$node_bin:$PATH; export PATH; }
echo "node $(node -v)"

say "a new node registers with the startup taint: no app pod may run before its agent is ready"
run kubectl get node "$NODE_NAME" -o custom-columns=NAME:.metadata.name,READY:.status.conditions[-1].status,TAINTS:.spec.taints[*].key

say "helm install (the image from the Dockerfile; values in test/node/values.yaml)"
run helm upgrade --install imdsgate charts/imdsgate -n imdsgate --create-namespace --values test/node/values.yaml --wait
run kubectl -n imdsgate rollout status ds/imdsgate --timeout=180s
run kubectl -n imdsgate get ds,pods -o wide
run kubectl get node "$NODE_NAME" -o custom-columns=NAME:.metadata.name,TAINTS:.spec.taints[*].key

say "two teams: shop may use shop-* roles, batch may use batch-* roles"
kubectl apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Namespace
metadata: { name: shop, annotations: { iam.amazonaws.com/allowed-roles: '["shop-*"]' } }
---
apiVersion: v1
kind: Namespace
metadata: { name: batch, annotations: { iam.amazonaws.com/allowed-roles: '["batch-*"]' } }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: web, namespace: shop, annotations: { eks.amazonaws.com/role-arn: "arn:aws:iam::123456789012:role/shop-web" } }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: intruder, namespace: batch, annotations: { eks.amazonaws.com/role-arn: "arn:aws:iam::123456789012:role/shop-web" } }
YAML
for p in shop/web batch/intruder; do
  ns=${p%/*} name=${p#*/}
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: { name: $name, namespace: $ns }
spec:
  serviceAccountName: $name
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  containers:
    - name: aws
      image: $CLIENT_IMAGE
      imagePullPolicy: Never
      # The SDK setting docs/troubleshooting.md recommends: botocore retries a non-200 metadata answer
      # (a pod's first request can come before the kubelet has reported its IP).
      env:
        - { name: HOME, value: /tmp }
        - { name: AWS_REGION, value: us-east-1 }
        - { name: AWS_METADATA_SERVICE_NUM_ATTEMPTS, value: "3" }
      command: ["sh", "-c"]
      args:
        - |
          echo "\$ aws sts get-caller-identity"
          aws sts get-caller-identity --endpoint-url http://$SVC_STS_IP --output text --query Arn 2>&1 | tail -n 1
          echo "\$ curl http://169.254.169.254/latest/meta-data/iam/security-credentials/"
          code=\$(curl -s -o /tmp/b -w '%{http_code}' http://169.254.169.254/latest/meta-data/iam/security-credentials/)
          echo "HTTP \$code: \$(sed -n 's/.*<title>\(.*\)<.title>.*/\1/p' /tmp/b)\$(grep -v '<' /tmp/b)"
YAML
done
run kubectl get pods -n shop -o wide
for p in shop/web batch/intruder; do
  kubectl -n "${p%/*}" wait --for=jsonpath='{.status.phase}'=Succeeded "pod/${p#*/}" --timeout=120s >/dev/null
  say "pod $p (its own output, from the node's log directory)"
  sed -E 's/^\S+ (stdout|stderr) [FP] //' "$NODE_RUN"/pod-logs/"${p%/*}"_"${p#*/}"_*/aws/0.log
done

say "why was batch/intruder refused? (imdsgate explain)"
run node dist/main.js explain --namespace batch --pod intruder --kubeconfig "$KUBECONFIG" --node-name "$NODE_NAME" \
  --region us-east-1 --base-role-arn "arn:aws:iam::123456789012:role/" --log-level warn || true

say "the agent's decisions in its log"
sed -E 's/^\S+ (stdout|stderr) [FP] //' "$NODE_RUN"/pod-logs/imdsgate_imdsgate-*/imdsgate/*.log | grep '"msg":"decision"' |
  grep -E '"namespace":"(shop|batch)"' | tail -n 4 | jq -c '{namespace, pod, role, outcome, reason: .decisionReason, path, status}'

say "the interception rules in the node's netfilter"
nsenter -t "$HOLDER" -m -n iptables-nft-save | grep -E 'IMDSGATE' | grep -E 'cni0|PREROUTING' | cut -c1-150

say "metrics (http://$NODE_IP:9181/metrics inside the node)"
nsenter -t "$HOLDER" -m -n curl -fsS "http://$NODE_IP:9181/metrics" | grep -E '^imdsgate_(decisions_total|ready|build_info)' | head -n 8

say "helm uninstall: the agent sees its DaemonSet deleted and removes its rules"
run helm uninstall imdsgate -n imdsgate --wait
sleep 2
printf 'imdsgate rules left in the node: %s\n' "$(nsenter -t "$HOLDER" -m -n iptables-nft-save | grep -c IMDSGATE || true)"
say "demo done in $((SECONDS - t0))s"
