#!/usr/bin/env bash
# Builds the test bed's binaries into $SERIN_CACHE/bin, each only when missing
# or built from another version. Versions are pinned by the wrapper modules in
# e2e/tools/*/go.mod (and go.sum), so a version bump is a reviewed diff.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$SERIN_BIN"
tools=$SERIN_REPO/e2e/tools

# build NAME MODULE_DIR PACKAGE VERSION [LDFLAGS]
build() {
  local name=$1 dir=$2 pkg=$3 version=$4 ldflags=${5:-}
  local stamp=$SERIN_BIN/.$name.version
  if [ -x "$SERIN_BIN/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$pkg@$version" ]; then
    return 0
  fi
  log "building $name $version"
  local start=$SECONDS
  (cd "$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$SERIN_BIN/$name.tmp" "$pkg")
  mv "$SERIN_BIN/$name.tmp" "$SERIN_BIN/$name"
  echo "$pkg@$version" > "$stamp"
  log "built $name in $((SECONDS - start))s"
}

build_kube() {
  local kube minor ldflags="" p cmd
  kube=$(module_version "$tools/kube" k8s.io/kubernetes)
  minor=${kube#v1.}; minor=${minor%%.*}
  # Stamped like upstream builds, so `kubectl version` reports the real release.
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$kube -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    build "$cmd" "$tools/kube" "k8s.io/kubernetes/cmd/$cmd" "$kube" "$ldflags"
  done
}

build_etcd() {
  build etcd "$tools/etcd" go.etcd.io/etcd/server/v3 "$(module_version "$tools/etcd" go.etcd.io/etcd/server/v3)"
}

build_kwok() {
  build kwok "$tools/kwok" sigs.k8s.io/kwok/cmd/kwok "$(module_version "$tools/kwok" sigs.k8s.io/kwok)"
}

build_helm() {
  local helm
  helm=$(module_version "$tools/helm" helm.sh/helm/v3)
  build helm "$tools/helm" helm.sh/helm/v3/cmd/helm "$helm" "-X helm.sh/helm/v3/internal/version.version=$helm"
}

# A tool of serin's own (a main package in its wrapper module), versioned by the
# hash of its sources, so an edit rebuilds it.
sources_version() { cat "$1"/go.mod "$1"/go.sum "$1"/*.go | sha256sum | cut -c1-16; }

# kstatus from sigs.k8s.io/cli-utils, as Flux and kpt compute it, for the e2e suite.
build_kstatus() {
  build kstatus "$tools/kstatus" . "$(sources_version "$tools/kstatus")"
}

# serin's own wrapper around gopher-lua, set up as Argo CD sets it up.
build_argocd-lua() {
  build argocd-lua "$tools/argocd-lua" . "$(sources_version "$tools/argocd-lua")"
}

# Gateway API CRDs: plain YAML from the module zip, verified against the
# checksum database like any module download.
build_gateway-api() {
  local crds=$SERIN_CACHE/gateway-api-$GATEWAY_API_VERSION dir
  [ -d "$crds" ] && return 0
  dir=$(cd "$SERIN_CACHE" && GOFLAGS= go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" |
    sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir/config/crd/standard" ] || die "gateway-api $GATEWAY_API_VERSION has no config/crd/standard"
  rm -rf "$crds.tmp" && mkdir -p "$crds.tmp" && cp "$dir"/config/crd/standard/*.yaml "$crds.tmp/" && mv "$crds.tmp" "$crds"
}

# Istio's VirtualService and DestinationRule CRDs (no istiod: serin writes the
# objects, and the e2e suite plays the part of the data plane), cut out of the
# module's generated file of every Istio CRD.
build_istio() {
  local crds=$SERIN_CACHE/istio-$ISTIO_API_VERSION dir file
  [ -d "$crds" ] && return 0
  dir=$(cd "$SERIN_CACHE" && GOFLAGS= go mod download -json "istio.io/api@$ISTIO_API_VERSION" |
    sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  file=$dir/kubernetes/customresourcedefinitions.gen.yaml
  [ -f "$file" ] || die "istio.io/api $ISTIO_API_VERSION has no kubernetes/customresourcedefinitions.gen.yaml"
  rm -rf "$crds.tmp" && mkdir -p "$crds.tmp"
  awk -v dir="$crds.tmp" '
    function flush() {
      if (doc ~ /\n  name: (virtualservices|destinationrules)\.networking\.istio\.io\n/) {
        n++; f = dir "/" n ".yaml"; printf "%s", doc > f; close(f)
      }
      doc = ""
    }
    /^---$/ { flush(); next }
    { doc = doc $0 "\n" }
    END { flush() }' "$file"
  [ "$(ls "$crds.tmp" | wc -l)" = 2 ] || die "istio.io/api $ISTIO_API_VERSION: VirtualService and DestinationRule CRDs not found"
  mv "$crds.tmp" "$crds"
}

# Argo Rollouts' controller and CRDs, for the fleet bench only (not in the
# default list: a ~7 min build, a ~130 MB binary). v1.10.2 needs a newer Go than
# the machine's, so this one build lets the module proxy fetch the toolchain.
build_argo-rollouts() {
  local version crds dir toolchain=go1.27.3
  version=$(GOTOOLCHAIN=$toolchain module_version "$tools/argo-rollouts" github.com/argoproj/argo-rollouts)
  # Stamped like upstream's Makefile, so its logs and metrics name the release.
  GOTOOLCHAIN=$toolchain build rollouts-controller "$tools/argo-rollouts" \
    github.com/argoproj/argo-rollouts/cmd/rollouts-controller "$version" \
    "-X github.com/argoproj/argo-rollouts/utils/version.version=${version#v}"
  crds=$SERIN_CACHE/argo-rollouts-$version
  [ -d "$crds" ] && return 0
  dir=$(cd "$tools/argo-rollouts" && GOTOOLCHAIN=$toolchain go list -m -f '{{.Dir}}' github.com/argoproj/argo-rollouts)
  [ -d "$dir/manifests/crds" ] || die "argo-rollouts $version has no manifests/crds"
  rm -rf "$crds.tmp" && mkdir -p "$crds.tmp" && cp "$dir"/manifests/crds/*-crd.yaml "$crds.tmp/" && mv "$crds.tmp" "$crds"
}

# Usage: build-tools.sh [kube etcd kwok helm kstatus argocd-lua gateway-api istio argo-rollouts];
# default: all but argo-rollouts.
for tool in "${@:-kube etcd kwok helm kstatus argocd-lua gateway-api istio}"; do
  for t in $tool; do "build_$t"; done
done
