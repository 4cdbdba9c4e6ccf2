#!/usr/bin/env bash
# `make demo`: local cluster, serin's controller, and a Release rolled from v1
# to v2 with a live readout, until it is Ready on v2.
set -euo pipefail
cd "$(dirname "$0")/.."
source e2e/lib.sh
e2e/cluster.sh up
eval "$(e2e/cluster.sh env)"
cargo build -q --bin serin
ns=serin-demo
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply --server-side -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/releases.serin.dev --timeout=30s >/dev/null
log=$SERIN_CLUSTER_DIR/logs/serin-demo.log
target/debug/serin controller --namespace "$ns" > "$log" 2>&1 &
controller=$!
trap 'kill $controller 2>/dev/null || true' EXIT
log "controller running (pid $controller, log $log)"

kubectl -n "$ns" delete release web --ignore-not-found --wait >/dev/null
kubectl -n "$ns" delete events --all >/dev/null
kubectl -n "$ns" apply -f examples/release.yaml >/dev/null

readout() {
  [ -t 1 ] && printf '\033[H\033[J'
  echo "serin demo: $1    (namespace $ns)"
  echo
  kubectl -n "$ns" get release web
  echo
  kubectl -n "$ns" get rs -l serin.dev/release=web \
    -o custom-columns='REPLICASET:.metadata.name,REVISION:.metadata.annotations.serin\.dev/revision-number,DESIRED:.spec.replicas,READY:.status.readyReplicas,AVAILABLE:.status.availableReplicas'
  echo
  kubectl -n "$ns" get release web -o jsonpath='{.status.message}{"\n"}'
}

# follow STAGE: redraw every second until the Release is Ready on its current template.
follow() {
  local generation
  generation=$(kubectl -n "$ns" get release web -o jsonpath='{.metadata.generation}')
  for _ in $(seq 180); do
    if [ "$(kubectl -n "$ns" get release web -o jsonpath='{.status.observedGeneration}/{.status.conditions[?(@.type=="Ready")].status}')" = "$generation/True" ]; then
      readout "$1: done"
      return 0
    fi
    readout "$1"
    sleep 1
  done
  die "the Release did not become Ready; see $log"
}

follow "v1 comes up"
kubectl -n "$ns" patch release web --type=merge \
  -p '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"example.com/web:2"}]}}}}' >/dev/null
follow "rolling v1 -> v2 (maxSurge 2, maxUnavailable 1)"
echo
kubectl -n "$ns" get events --field-selector involvedObject.kind=Release --sort-by=.lastTimestamp \
  -o custom-columns='TYPE:.type,REASON:.reason,MESSAGE:.message' 2>/dev/null | tail -12
log "done; the cluster keeps running (make cluster-down stops it)"
