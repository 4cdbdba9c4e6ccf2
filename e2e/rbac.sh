#!/usr/bin/env bash
# Proves the Helm chart's RBAC: installs the chart, then runs serin out of the
# cluster as the chart's ServiceAccount (a token from `kubectl create token`)
# through the rolling, canary and blue-green e2e scenarios.
#   e2e/rbac.sh          install, check, run the scenarios, uninstall
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$SERIN_REPO"

NAMESPACE=serin-rbac
RELEASE=serin
SA=system:serviceaccount:$NAMESPACE:$RELEASE
work=$SERIN_CACHE/rbac
mkdir -p "$work"
kubeconfig=$work/kubeconfig

cleanup() {
  helm uninstall "$RELEASE" -n "$NAMESPACE" >/dev/null 2>&1 || true
  kubectl delete namespace "$NAMESPACE" --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

log "installing charts/serin into $NAMESPACE"
# A namespace left terminating by an earlier run refuses new objects.
kubectl wait --for=delete "namespace/$NAMESPACE" --timeout=60s >/dev/null 2>&1 || true
kubectl create namespace "$NAMESPACE" >/dev/null
# The generic router's test kind, as a user would grant theirs.
helm upgrade --install "$RELEASE" charts/serin -n "$NAMESPACE" \
  --set 'trafficRouting.generic[0].apiGroup=e2e.serin.dev' --set 'trafficRouting.generic[0].version=v1' \
  --set 'trafficRouting.generic[0].resources={weightedbackends}' >/dev/null

# The chart's roles: no wildcards anywhere.
rendered=$(helm template "$RELEASE" charts/serin -n "$NAMESPACE")
if grep -nE "^\s*-?\s*(verbs|resources|apiGroups): .*['\"]?\*['\"]?" <<<"$rendered"; then
  die "a wildcard in the chart's RBAC"
fi

can() { kubectl auth can-i "$@" --as "$SA" 2>/dev/null || true; }
expect() {
  local want=$1; shift
  local got; got=$(can "$@")
  [[ $got == "$want" ]] || die "can-i $* as the chart's ServiceAccount: $got, want $want"
  log "can-i $*: $got"
}
expect no list secrets --all-namespaces
expect no get secrets -n default
expect no get secrets -n "$NAMESPACE"
expect no create pods -n default
expect no delete services -n default
expect no update releases.serin.dev -n default
expect yes patch releases.serin.dev --subresource=status -n default
expect yes patch replicasets.apps --subresource=scale -n default
# Config snapshots copy ConfigMaps; Secrets only with configSnapshots.secrets.
expect yes create configmaps -n default
expect no create secrets -n default
# workloadRef: Deployments are read and scaled, never edited.
expect yes patch deployments.apps --subresource=scale -n default
expect no patch deployments.apps -n default
expect yes get leases.coordination.k8s.io/serin-controller -n "$NAMESPACE"
expect no get leases.coordination.k8s.io -n default
expect yes patch grpcroutes.gateway.networking.k8s.io -n default
expect yes patch virtualservices.networking.istio.io -n default
expect yes patch destinationrules.networking.istio.io -n default
expect no delete virtualservices.networking.istio.io -n default
expect yes patch weightedbackends.e2e.serin.dev -n default
expect no delete weightedbackends.e2e.serin.dev -n default

log "a kubeconfig holding a token of the chart's ServiceAccount"
token_kubeconfig "$NAMESPACE" "$RELEASE" "$kubeconfig"

cargo build -q --bin serin
log "the ServiceAccount takes the chart's Lease"
KUBECONFIG=$kubeconfig target/debug/serin controller --lease-namespace "$NAMESPACE" --identity rbac-check \
  --metrics-addr 127.0.0.1:0 --health-addr 127.0.0.1:0 >"$work/lease.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  holder=$(kubectl -n "$NAMESPACE" get lease serin-controller -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)
  [[ $holder == rbac-check ]] && break
  sleep 0.2
done
[[ ${holder:-} == rbac-check ]] || { cat "$work/lease.log" >&2; kill "$pid"; die "the ServiceAccount could not take the Lease"; }
kill -TERM "$pid"
wait "$pid" || die "the controller did not stop cleanly on SIGTERM"
log "Lease taken and released as $SA"

log "rolling, canary, blue-green, hook and config-snapshot scenarios with the controller as the ServiceAccount"
SERIN_E2E_CONTROLLER_KUBECONFIG=$kubeconfig \
  cargo test --features e2e --test e2e -- --test-threads=4 release:: canary:: bluegreen:: hooks:: snapshots::a_configmap workload:: routes:: istio:: generic:: acceptance::
