#!/usr/bin/env bash
# The main-job demo: on a fresh machine, as root, bring up the real test environment (kube-apiserver,
# etcd, moto; built and cached the first time, with progress), build imdsgate, then run the network
# namespace sandbox: one pod gets its role's credentials from 169.254.169.254, another is denied with the
# reason, and a metrics excerpt is printed. Everything the demo creates is removed on exit or Ctrl-C;
# the test environment is stopped again if the demo started it.
#
# Nothing here touches the machine's own network namespace: every address, route and iptables rule lives
# in namespaces the demo creates (link-local addresses only).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ "$(id -u)" != 0 ]; then
  echo "demo: run as root (it creates network namespaces and iptables rules inside them)" >&2
  exit 1
fi
for tool in node npm ip iptables-nft iptables-legacy conntrack curl go python3; do
  command -v "$tool" >/dev/null || { echo "demo: missing $tool (bash .ci/run installs the prerequisites)" >&2; exit 1; }
done

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

[ -d node_modules ] || { say "installing npm dependencies"; npm ci --no-audit --no-fund; }

started_env=0
if ! bash test/env/status >/dev/null 2>&1; then
  say "starting the test environment (first run builds kube-apiserver, etcd, AEMM; several minutes)"
  npm run --silent testenv:up
  started_env=1
fi
cleanup() {
  if [ "$started_env" = 1 ]; then
    say "stopping the test environment the demo started"
    npm run --silent testenv:down || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "building imdsgate"
npm run --silent build
npx tsc -p test/e2e/sandbox/tsconfig.demo.json

say "running the sandbox"
IMDSGATE_REPO_ROOT="$root/" node node_modules/.cache/imdsgate-demo/test/e2e/sandbox/demo.js
