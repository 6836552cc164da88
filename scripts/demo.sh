#!/usr/bin/env bash
# The main-job demo: on a fresh machine, as root, bring up the real test environment (kube-apiserver,
# etcd, moto; built and cached the first time, with progress), build imdsgate, then run the network
# namespace sandbox: one pod gets its role's credentials from 169.254.169.254, another is denied with the
# reason, and a metrics excerpt is printed. Everything the demo creates is removed on exit or Ctrl-C;
# the test environment stays up for the next run (`npm run testenv:down` stops it).
#
# Nothing here touches the machine's own network namespace: every address, route and iptables rule lives
# in namespaces the demo creates (link-local addresses only).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Everything a fresh machine lacks (Debian packages, npm ci) and the real test environment: the first
# run builds kube-apiserver, etcd and AEMM (several minutes, with progress); later runs take seconds.
# The environment is shared with test runs, so the demo never stops it: `npm run testenv:down` does.
say "set-up: packages, npm dependencies, test environment"
bash scripts/setup.sh
trap 'exit 130' INT TERM

say "building imdsgate"
npm run --silent build
npx tsc -p test/e2e/sandbox/tsconfig.demo.json

say "running the sandbox"
IMDSGATE_REPO_ROOT="$root/" node node_modules/.cache/imdsgate-demo/test/e2e/sandbox/demo.js
echo "(test environment left running for the next run; npm run testenv:down stops it)"
