# Shared settings for the e2e scripts. Source it; do not run it.
# Every path the test bed uses lives outside the repo, under SERIN_CACHE (tools)
# and SERIN_CLUSTER_DIR (a running cluster's data, removed by cluster-down).
SERIN_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERIN_CACHE=${SERIN_CACHE:-$HOME/.cache/serin}
SERIN_BIN=$SERIN_CACHE/bin
SERIN_CLUSTER_DIR=${SERIN_CLUSTER_DIR:-$SERIN_CACHE/cluster}
export GOMODCACHE=$SERIN_CACHE/go/mod GOCACHE=$SERIN_CACHE/go/build
export GOFLAGS=-mod=readonly GOTOOLCHAIN=local CGO_ENABLED=0

# Loopback ports; override when they collide with something on the host.
ETCD_PORT=${SERIN_ETCD_PORT:-12379}
APISERVER_PORT=${SERIN_APISERVER_PORT:-16443}
PROMETHEUS_PORT=${SERIN_PROMETHEUS_PORT:-19090}
KCM_PORT=${SERIN_KCM_PORT:-10257}
SCHEDULER_PORT=${SERIN_SCHEDULER_PORT:-10259}
KWOK_PORT=${SERIN_KWOK_PORT:-10247}

# The Gateway API CRDs come from the module's config/crd/standard folder.
GATEWAY_API_VERSION=v1.5.1
# Istio's VirtualService and DestinationRule CRDs, from istio.io/api's generated file.
ISTIO_API_VERSION=v1.32.0

log() { printf '[serin-e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# module_version DIR MODULE: the version a wrapper module pins.
module_version() { (cd "$1" && go list -m -f '{{.Version}}' "$2"); }

# token_kubeconfig NAMESPACE SERVICEACCOUNT FILE: a kubeconfig for the current
# cluster that authenticates with a one-hour token of that ServiceAccount.
token_kubeconfig() {
  local token server ca
  token=$(kubectl -n "$1" create token "$2" --duration=1h)
  server=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
  ca=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
  if [[ -z $ca ]]; then
    ca=$(base64 -w0 <"$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority}')")
  fi
  cat >"$3" <<YAML
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "$server", certificate-authority-data: "$ca"}}]
users: [{name: sa, user: {token: "$token"}}]
contexts: [{name: sa, context: {cluster: local, user: sa}}]
current-context: sa
YAML
}
