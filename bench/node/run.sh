#!/usr/bin/env bash
# Benchmark of the agent as the chart runs it on the node test bed (docs/node-testbed.md): a real kubelet,
# containerd and the image from the Dockerfile, under the chart's resources and limits.
#   1. rolling-update gap: `helm upgrade` changing the pod template while a pod asks for credentials every
#      100 ms; the longest time between two answers (ROUNDS rounds, median);
#   2. node Ready → agent Ready: kubelet, containerd and every container killed and netfilter flushed (a
#      reboot), then started; from the first poll that sees the Node Ready again to the agent pod Ready;
#   3. the agent's memory: VmRSS of its process and the pod cgroup's usage, idle and after a 20 s burst of
#      credential requests from one pod, against the chart's 256 Mi limit.
# Bounded: about 3 minutes. Prints a Markdown table; bench/node/RESULTS.md keeps the runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
. test/node/lib.sh
# A fresh node, so the images (the agent from this tree) are rebuilt and imported.
bash test/node/down >/dev/null
bash test/node/up >/dev/null
# shellcheck disable=SC1091
. "$CACHE/state.env"; ENV_RUN=$RUN
# shellcheck disable=SC1090
. "$NODE_STATE"
export KUBECONFIG=$ENV_RUN/admin.kubeconfig HELM_CACHE_HOME=/tmp/imdsgate-helm-cache
k() { "$BIN/kubectl" "$@"; }
install() { "$BIN/helm" upgrade --install imdsgate charts/imdsgate -n imdsgate --create-namespace --wait \
  --timeout 180s --values test/node/values.yaml "$@" >/dev/null; }
now() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
agent_pid() { local n p; n=$(readlink "/proc/$HOLDER/ns/net")
  for p in $(pgrep -f '/usr/local/bin/imdsgate serve'); do [ "$(readlink "/proc/$p/ns/net")" = "$n" ] && echo "$p"; done | head -n 1; }
mem() { local p; p=$(agent_pid); printf '%s %s' "$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$p/status")" \
  "$(awk '{printf "%.1f", $1/1048576}' "/sys/fs/cgroup/memory$(awk -F: '$2 ~ /memory/ {print $3}' "/proc/$p/cgroup")/memory.usage_in_bytes")"; }

install
k create ns bench-node --dry-run=client -o yaml | k apply -f - >/dev/null
k -n bench-node create sa app --dry-run=client -o yaml | k apply -f - >/dev/null
k -n bench-node annotate sa app --overwrite eks.amazonaws.com/role-arn=arn:aws:iam::123456789012:role/bench >/dev/null
cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: { name: asker, namespace: bench-node }
spec:
  serviceAccountName: app
  terminationGracePeriodSeconds: 1
  containers:
    - name: c
      image: $CLIENT_IMAGE
      imagePullPolicy: Never
      command: ["sh", "-c", "while :; do if curl -sf -m 1 http://$IMDS_IP/latest/meta-data/iam/security-credentials/bench >/dev/null; then echo ok \$(date +%s%3N); fi; sleep 0.1; done"]
YAML
k -n bench-node wait --for=condition=Ready pod/asker --timeout=60s >/dev/null
log() { cat "$RUN"/pod-logs/bench-node_asker_*/c/*.log | sed -n 's/.* ok \([0-9]*\)$/\1/p'; }

gaps=()
for r in $(seq 1 "$ROUNDS"); do
  t0=$(now); install --set podAnnotations.bench="r$t0"
  sleep 3
  gap=$(log | awk -v t="$t0" '$1 >= t - 1000 { if (p) { d = $1 - p; if (d > m) m = d } p = $1 } END { print m + 0 }')
  gaps+=("$gap"); echo "[bench] rolling update $r: longest gap ${gap} ms" >&2
done

readies=()
for r in $(seq 1 "$ROUNDS"); do
  bash test/node/runtime.sh reboot >/dev/null; t0=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  bash test/node/runtime.sh start >/dev/null; tn=$(now)
  until k -n imdsgate get pods -l app.kubernetes.io/name=imdsgate -o json | jq -e --arg t "$t0" \
    '.items[0].status.containerStatuses[0] | .ready and (.state.running.startedAt >= $t)' >/dev/null; do sleep 0.1; done
  readies+=("$(( $(now) - tn ))"); echo "[bench] node Ready -> agent Ready $r: ${readies[-1]} ms" >&2
done

sleep 15; idle=$(mem)
cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: { name: burst, namespace: bench-node }
spec:
  serviceAccountName: app
  restartPolicy: Never
  containers:
    - name: c
      image: $CLIENT_IMAGE
      imagePullPolicy: Never
      command: ["sh", "-c", "end=\$((\$(date +%s) + 20)); n=0; while [ \$(date +%s) -lt \$end ]; do curl -sf -m 1 -o /dev/null http://$IMDS_IP/latest/meta-data/iam/security-credentials/bench && n=\$((n+1)); done; echo served \$n"]
YAML
k -n bench-node wait --for=jsonpath='{.status.phase}'=Succeeded pod/burst --timeout=90s >/dev/null
served=$(cat "$RUN"/pod-logs/bench-node_burst_*/c/*.log | sed -n 's/.* served \([0-9]*\)$/\1/p')
after=$(mem)
k delete ns bench-node --wait=false >/dev/null

printf '\n| figure | median of %s | runs |\n|---|---|---|\n' "$ROUNDS"
printf '| rolling-update gap (pod asks every 100 ms) | %s ms | %s |\n' "$(printf '%s\n' "${gaps[@]}" | median)" "${gaps[*]}"
printf '| node Ready → agent Ready (after a reboot) | %s ms | %s |\n' "$(printf '%s\n' "${readies[@]}" | median)" "${readies[*]}"
printf '| agent RSS / pod cgroup memory, idle | %s MiB / %s MiB | limit 256 MiB |\n' ${idle}
printf '| the same after a 20 s burst (%s answers, one curl at a time) | %s MiB / %s MiB | limit 256 MiB |\n' "$served" ${after}
