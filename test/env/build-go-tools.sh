#!/usr/bin/env bash
# Builds the pinned Go tools of the test environment from the Go module proxy into the cache:
# kube-apiserver, etcd, helm, ec2-metadata-mock, the small aws-sdk-go-v2 IMDS client, and the node test
# bed's kubelet, kube-controller-manager, kube-scheduler and pause binary.
# Each tool is built in a throwaway wrapper module keyed by its version, so a rebuild only
# happens when versions.env changes. Idempotent; prints progress.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
CACHE=${IMDSGATE_TESTENV_CACHE:-$HOME/.cache/imdsgate-testenv}
BIN=$CACHE/bin
mkdir -p "$BIN" "$CACHE/build"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

log() { printf '[testenv] %s\n' "$*"; }

# wrapper NAME VERSION-STAMP: makes an empty module dir; echoes its path.
wrapper() {
  local dir=$CACHE/build/$1-$2
  mkdir -p "$dir"
  [ -f "$dir/go.mod" ] || (cd "$dir" && go mod init "imdsgate.local/testenv/$1" >/dev/null 2>&1)
  echo "$dir"
}

# build NAME STAMP PKG [go get args...]: skip when $BIN/NAME.STAMP exists. $LDX: extra -ldflags.
# The stamps end in -ld1 because version strings are set with -X (a plain `go build` leaves
# kube-apiserver reporting v0.0.0-master, which fails charts' kubeVersion gates, and helm "v3.19").
build() {
  local name=$1 stamp=$2 pkg=$3; shift 3
  if [ -x "$BIN/$name" ] && [ -f "$BIN/.$name.$stamp" ]; then log "$name $stamp: cached"; return; fi
  local dir start=$SECONDS; dir=$(wrapper "$name" "$stamp")
  log "$name $stamp: resolving modules"
  (cd "$dir" && go get "$@" >/dev/null)
  log "$name $stamp: compiling (first time takes minutes on 2 cores)"
  (cd "$dir" && go build -trimpath -ldflags="-s -w ${LDX:-}" -o "$BIN/$name.tmp" "$pkg")
  mv "$BIN/$name.tmp" "$BIN/$name"; rm -f "$BIN/.$name".*; touch "$BIN/.$name.$stamp"
  log "$name $stamp: built in $((SECONDS - start))s"
}

kube_replaces() {
  # k8s.io/kubernetes points its staging modules at ./staging; a consumer must
  # replace each with the published v0.x.y of the same release.
  local mod
  mod=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$KUBE_VERSION.mod
  [ -f "$mod" ] || (cd "$1" && go mod download k8s.io/kubernetes@"$KUBE_VERSION")
  grep -oE '^\s*k8s.io/[a-z0-9-]+ => \./staging' "$mod" | awk '{print $1}' | while read -r m; do
    (cd "$1" && go mod edit -replace "$m=$m@$KUBE_STAGING_VERSION")
  done
}

kube_ldflags() {
  local v=k8s.io/component-base/version c=k8s.io/client-go/pkg/version minor
  minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
  for p in $v $c; do
    printf -- '-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean ' \
      "$p" "$KUBE_VERSION" "$p" "$p" "$minor" "$p"
  done
}

build_kube() {
  local stamp=$KUBE_VERSION-ld1
  if [ -x "$BIN/kube-apiserver" ] && [ -f "$BIN/.kube-apiserver.$stamp" ]; then log "kube-apiserver $stamp: cached"; return; fi
  local dir; dir=$(wrapper kube-apiserver "$stamp")
  kube_replaces "$dir"
  LDX=$(kube_ldflags) build kube-apiserver "$stamp" k8s.io/kubernetes/cmd/kube-apiserver "k8s.io/kubernetes@$KUBE_VERSION"
}

# The node test bed (test/node): kubelet, kube-controller-manager and kube-scheduler from the same
# k8s.io/kubernetes release as kube-apiserver, built in its wrapper module (same go.mod, replaces and version
# stamp) in one `go build`, so the packages they share with kube-apiserver come from the build cache.
build_kube_node() {
  local stamp=$KUBE_VERSION-ld1 n missing=0
  for n in kubelet kube-controller-manager kube-scheduler kubectl; do
    [ -x "$BIN/$n" ] && [ -f "$BIN/.$n.$stamp" ] || missing=1
  done
  if [ $missing = 0 ]; then log "kubelet, kube-controller-manager, kube-scheduler, kubectl $stamp: cached"; return; fi
  build_kube
  local dir=$CACHE/build/kube-apiserver-$stamp start=$SECONDS out=$BIN/.kube-node.tmp
  log "kubelet, kube-controller-manager, kube-scheduler, kubectl $stamp: compiling (first time takes minutes)"
  rm -rf "$out"; mkdir -p "$out"
  (cd "$dir" && go build -trimpath -ldflags="-s -w $(kube_ldflags)" -o "$out/" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl)
  for n in kubelet kube-controller-manager kube-scheduler kubectl; do
    mv "$out/$n" "$BIN/$n"; rm -f "$BIN/.$n".*; touch "$BIN/.$n.$stamp"
  done
  rmdir "$out"
  log "kubelet, kube-controller-manager, kube-scheduler, kubectl: built in $((SECONDS - start))s"
}

# A pause binary for the node test bed's sandbox image: static, no libc, so the image is FROM scratch.
build_pause() {
  local src=$here/../node/pause/main.go stamp
  stamp=go-$(sha256sum "$src" | cut -c1-12)
  if [ -x "$BIN/pause" ] && [ -f "$BIN/.pause.$stamp" ]; then log "pause $stamp: cached"; return; fi
  local dir; dir=$(wrapper pause "$stamp")
  cp "$src" "$dir/main.go"
  (cd "$dir" && go build -trimpath -ldflags="-s -w" -o "$BIN/pause.tmp" .)
  mv "$BIN/pause.tmp" "$BIN/pause"; rm -f "$BIN"/.pause.*; touch "$BIN/.pause.$stamp"
  log "pause: built"
}

imds_client() {
  local stamp=$AWS_SDK_GO_V2_IMDS_VERSION-$AWS_SDK_GO_V2_CONFIG_VERSION
  local dir; dir=$(wrapper goimds "$stamp")
  cp "$here/goimds/main.go" "$dir/main.go"
  # The source is ours and may change without a version bump: key the stamp on its hash too.
  stamp=$stamp-$(sha256sum "$here/goimds/main.go" | cut -c1-12)
  rm -f "$CACHE/build/goimds-$stamp" 2>/dev/null || true
  if [ -x "$BIN/goimds" ] && [ -f "$BIN/.goimds.$stamp" ]; then log "goimds $stamp: cached"; return; fi
  local start=$SECONDS
  log "goimds: resolving modules"
  (cd "$dir" && go get "github.com/aws/aws-sdk-go-v2/feature/ec2/imds@$AWS_SDK_GO_V2_IMDS_VERSION" \
    "github.com/aws/aws-sdk-go-v2/config@$AWS_SDK_GO_V2_CONFIG_VERSION" >/dev/null && go mod tidy >/dev/null)
  log "goimds: compiling"
  (cd "$dir" && go build -trimpath -o "$BIN/goimds.tmp" .)
  mv "$BIN/goimds.tmp" "$BIN/goimds"; rm -f "$BIN"/.goimds.*; touch "$BIN/.goimds.$stamp"
  log "goimds: built in $((SECONDS - start))s"
}

want=${*:-kube etcd helm aemm goimds kubenode pause}
for t in $want; do
  case $t in
    kube) build_kube ;;
    etcd) build etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 "go.etcd.io/etcd/server/v3@$ETCD_VERSION" ;;
    helm) LDX="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
          build helm "$HELM_VERSION-ld1" helm.sh/helm/v3/cmd/helm "helm.sh/helm/v3@$HELM_VERSION" ;;
    aemm) build ec2-metadata-mock "$AEMM_VERSION" github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock \
            "github.com/aws/amazon-ec2-metadata-mock@$AEMM_VERSION" ;;
    kubenode) build_kube_node ;;
    pause) build_pause ;;
    goimds) [ -f "$here/goimds/main.go" ] && imds_client || log "goimds: no source yet" ;;
    *) echo "unknown tool $t" >&2; exit 2 ;;
  esac
done
