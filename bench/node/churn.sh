#!/usr/bin/env bash
# Pod churn through the real IPAM on the node test bed (test/node/7-churn.test.ts, test/node/churn.ts),
# once per arm: the agent at --sandbox-binding=auto and =off, pods leaving by deletion (grace 1 s) and by
# a sandbox crash (pause process killed). Per arm: the handovers of an address to another role, the answers
# that named another pod's role, the new pods' first-credential latency (container start → first answer
# traced to its own role with STS), and the agent's waits and refusals. Bounded: REUSES (25) cross-role
# handovers per arm, about 2.5 minutes each on a loaded machine. Keeps a bed that is up (starts one
# otherwise; IMDSGATE_NODE_CNI=ptp for the per-pod-route bed, test/node/up); leaves it up.
# Prints a Markdown table; bench/node/RESULTS-churn.md keeps the runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
REUSES=${REUSES:-25}
ARMS=${ARMS:-"auto/delete off/delete auto/crash off/crash"}
OUT=$(mktemp -d /tmp/imdsgate-churn-bench.XXXXXX)
echo "[bench] reports and logs in $OUT" >&2
bash test/node/up >/dev/null
load=$(cut -d' ' -f1-3 /proc/loadavg)
for arm in $ARMS; do
  echo "[bench] $arm" >&2
  IMDSGATE_NODE_REUSE=1 IMDSGATE_TESTENV_KEEP=1 IMDSGATE_CHURN_BINDING=${arm%/*} IMDSGATE_CHURN_RETIRE=${arm#*/} \
    IMDSGATE_CHURN_REUSES=$REUSES IMDSGATE_CHURN_REPORT="$OUT/${arm/\//-}.json" \
    bash scripts/pinned-node.sh run npx vitest run --project node test/node/7-churn.test.ts >"$OUT/${arm/\//-}.log" 2>&1 ||
    { tail -n 40 "$OUT/${arm/\//-}.log" >&2; exit 1; }
done
printf '\nload average at start %s; %s cross-role handovers wanted per arm\n\n' "$load" "$REUSES"
echo '| CNI / binding / pods leave by | pods | cross-role handovers | answers | answers naming another pod'"'"'s role (pods) | refused / timed out | first credential p50 / p90 / p99 / max (ms) | agent: binding waits bound / refused, unknown-pod waits found / timeout |'
echo '|---|---|---|---|---|---|---|---|'
for arm in $ARMS; do
  jq -r --arg arm "$arm" '"| \(.cni) / \($arm) | \(.pods) | \(.crossRoleReuses) | \(.served) | \(.wrong | length) (\(.wrongPods)) | \(.refused) / \(.timedOut) | \(.firstCredentialMs | "\(.p50) / \(.p90) / \(.p99) / \(.max)") | \(.agent["sandbox_binding_waits bound"] // 0) / \(.agent["sandbox_binding_waits refused"] // 0), \(.agent["unknown_pod_waits found"] // 0) / \(.agent["unknown_pod_waits timeout"] // 0) |"' \
    "$OUT/${arm/\//-}.json"
done
