#!/usr/bin/env bash
# Makes the test cluster's PKI with openssl: a CA, a serving cert for 127.0.0.1 and the service IP, an
# admin client cert (O=system:masters), the node test bed's kubelet client cert and the service-account signing key pair. Kept in the cache and reused:
# nothing here is secret outside this machine's throwaway cluster. Idempotent.
set -euo pipefail
CACHE=${IMDSGATE_TESTENV_CACHE:-$HOME/.cache/imdsgate-testenv}
PKI=$CACHE/pki
log() { printf '[testenv] %s\n' "$*"; }
# .complete2: v2 adds the service IP 169.254.240.1 to the serving cert and the kubelet client cert.
if [ -f "$PKI/.complete2" ]; then log "pki: cached"; exit 0; fi
log "pki: generating in $PKI"
rm -rf "$PKI"; mkdir -p "$PKI"; cd "$PKI"
umask 077
ossl() { openssl "$@" 2>/dev/null; }

ossl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca.key -out ca.crt \
  -subj "/CN=imdsgate-testenv-ca" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign"

# sign NAME SUBJ EXT: key + CSR + cert signed by the CA.
sign() {
  ossl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
  printf '%s\n' "$3" >"$1.ext"
  ossl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile "$1.ext" -out "$1.crt"
  rm -f "$1.csr" "$1.ext"
}
sign apiserver "/CN=kube-apiserver" "$(printf '%s\n' \
  'subjectAltName=IP:127.0.0.1,IP:169.254.240.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc' \
  'extendedKeyUsage=serverAuth' 'keyUsage=critical,digitalSignature,keyEncipherment')"
sign admin "/O=system:masters/CN=imdsgate-testenv-admin" "$(printf '%s\n' \
  'extendedKeyUsage=clientAuth' 'keyUsage=critical,digitalSignature,keyEncipherment')"
# The node test bed's kubelet (test/node): the Node authorizer knows it by this name and group.
sign kubelet "/O=system:nodes/CN=system:node:imdsgate-node" "$(printf '%s\n' \
  'extendedKeyUsage=clientAuth' 'keyUsage=critical,digitalSignature,keyEncipherment')"

ossl genrsa -out sa.key 2048
ossl rsa -in sa.key -pubout -out sa.pub
chmod 0644 ./*.crt sa.pub
touch .complete2
log "pki: done"
