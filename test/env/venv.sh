#!/usr/bin/env bash
# Creates the Python venv of the test environment (moto server, boto3/botocore, awscli) from
# requirements.txt. Keyed on the file's hash, so a second run is a no-op. Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${IMDSGATE_TESTENV_CACHE:-$HOME/.cache/imdsgate-testenv}
VENV=$CACHE/venv
stamp=$(sha256sum "$here/requirements.txt" | cut -c1-16)
log() { printf '[testenv] %s\n' "$*"; }

if [ -f "$VENV/.stamp.$stamp" ] && [ -x "$VENV/bin/moto_server" ] && [ -x "$VENV/bin/aws" ]; then
  log "python venv $stamp: cached"
  exit 0
fi
start=$SECONDS
log "python venv $stamp: creating $VENV"
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$here/requirements.txt"
touch "$VENV/.stamp.$stamp"
log "python venv $stamp: ready in $((SECONDS - start))s"
