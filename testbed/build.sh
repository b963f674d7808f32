#!/usr/bin/env bash
# Builds the testbed's binaries from the pinned wrapper modules under testbed/modules/.
# Each binary is cached under $TESTBED_CACHE/<component>-<version>/ and rebuilt only when missing,
# so a warm machine pays nothing and a cold one pays each build once.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=testbed/versions.sh
source "$here/versions.sh"

start=$(date +%s)
log() { printf '[build %4ss] %-10s %s\n' "$(( $(date +%s) - start ))" "$1" "$2"; }

command -v go >/dev/null || { echo "build.sh: Go is not installed; install Go ${GO_MIN} or newer" >&2; exit 1; }
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false} -mod=readonly"

# build_one COMPONENT VERSION MODULE_DIR LDFLAGS PKG=NAME...
build_one() {
  local comp=$1 version=$2 moddir=$3 ldflags=$4; shift 4
  local out="$TESTBED_CACHE/$comp-$version"
  local missing=()
  for spec in "$@"; do [ -x "$out/${spec#*=}" ] || missing+=("$spec"); done
  if [ ${#missing[@]} -eq 0 ]; then log "$comp" "cached ($out)"; return; fi
  mkdir -p "$out"
  log "$comp" "downloading modules"
  (cd "$here/modules/$moddir" && go mod download) || { echo "build.sh: downloading modules for $comp $version failed (see above): the Go module proxy may not serve a pinned version" >&2; exit 1; }
  for spec in "${missing[@]}"; do
    local timer=""
    # GNU time records the largest process's peak RSS, the figure testbed/README.md reports.
    [ -x /usr/bin/time ] && timer="/usr/bin/time -f %M -o $out/${spec#*=}.stats"
    local pkg=${spec%=*} name=${spec#*=} t0
    t0=$(date +%s)
    log "$comp" "building $name"
    (cd "$here/modules/$moddir" && $timer go build -trimpath -ldflags "$ldflags" -o "$out/$name.tmp" "$pkg") \
      || { echo "build.sh: building $name ($pkg) for $comp $version failed" >&2; exit 1; }
    mv "$out/$name.tmp" "$out/$name"
    log "$comp" "built $name in $(( $(date +%s) - t0 ))s${timer:+ (largest process $(cat "$out/$name.stats") KiB)}"
  done
}

# copy_manifests COMPONENT VERSION MODULE_DIR MODULE PATH...: keep the upstream CRDs and webhook
# manifests next to the binary, so `up` needs neither the module cache nor the network.
copy_manifests() {
  local comp=$1 version=$2 moddir=$3 module=$4; shift 4
  local out="$TESTBED_CACHE/$comp-$version/manifests" src
  [ -d "$out" ] && return
  src=$(cd "$here/modules/$moddir" && go list -m -f '{{.Dir}}' "$module")
  mkdir -p "$out.tmp"
  for p in "$@"; do cp -r "$src/$p" "$out.tmp/"; done
  chmod -R u+w "$out.tmp" && mv "$out.tmp" "$out"
  log "$comp" "manifests copied to $out"
}

only="${1:-all}"
want() { [ "$only" = all ] || [[ ",$only," == *",$1,"* ]]; }

kube_ld="-s -w -X k8s.io/component-base/version.gitVersion=v${KUBE_VERSION} -X k8s.io/component-base/version.gitMajor=${KUBE_VERSION%%.*} -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2) -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
want kube && build_one kube "$KUBE_VERSION" kube "$kube_ld" \
  k8s.io/kubernetes/cmd/kube-apiserver=kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager=kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler=kube-scheduler
want etcd && build_one etcd "$ETCD_VERSION" etcd "-s -w" go.etcd.io/etcd/server/v3=etcd
want kwok && build_one kwok "$KWOK_VERSION" kwok "-s -w" sigs.k8s.io/kwok/cmd/kwok=kwok \
  && copy_manifests kwok "$KWOK_VERSION" kwok sigs.k8s.io/kwok kustomize/stage/node/fast/node-initialize.yaml \
    kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml kustomize/stage/pod/fast/pod-ready.yaml \
    kustomize/stage/pod/fast/pod-complete.yaml kustomize/stage/pod/fast/pod-delete.yaml
want kueue && build_one kueue "$KUEUE_VERSION" kueue "-s -w" sigs.k8s.io/kueue/cmd/kueue=kueue \
  && copy_manifests kueue "$KUEUE_VERSION" kueue sigs.k8s.io/kueue config/components/crd/bases config/components/webhook/manifests.yaml
want kserve && build_one kserve "$KSERVE_VERSION" kserve "-s -w" github.com/kserve/kserve/cmd/manager=kserve-manager \
  && copy_manifests kserve "$KSERVE_VERSION" kserve github.com/kserve/kserve config/crd/full config/webhook/manifests.yaml config/configmap/inferenceservice.yaml
want s3 && build_one seaweedfs "$SEAWEEDFS_VERSION" seaweedfs "-s -w" github.com/seaweedfs/seaweedfs/weed=weed
# the module root is the main package; its `proxy` command serves the REST API
want modelregistry && build_one modelregistry "$MODELREGISTRY_VERSION" modelregistry "-s -w" \
  github.com/kubeflow/model-registry=model-registry
log all "done"
