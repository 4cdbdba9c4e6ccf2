#!/usr/bin/env bash
# `make demo`: local cluster, serin's controller, and a Release rolled from v1
# to v2 with a live readout, until it is Ready on v2.
set -euo pipefail
cd "$(dirname "$0")/.."
source e2e/lib.sh
e2e/cluster.sh up
eval "$(e2e/cluster.sh env)"
cargo build -q --bin serin --bin kubectl-serin
# kubectl finds plugins on PATH: `kubectl serin` is target/debug/kubectl-serin.
export PATH=$PWD/target/debug:$PATH
ns=serin-demo
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply --server-side -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/releases.serin.dev --timeout=30s >/dev/null
log=$SERIN_CLUSTER_DIR/logs/serin-demo.log
target/debug/serin controller --namespace "$ns" --metrics-addr 127.0.0.1:0 --health-addr 127.0.0.1:0 > "$log" 2>&1 &
controller=$!
watching=
trap 'kill $controller $watching 2>/dev/null || true' EXIT
log "controller running (pid $controller, log $log)"

kubectl -n "$ns" delete release web --ignore-not-found --wait >/dev/null
kubectl -n "$ns" delete events --all >/dev/null
kubectl -n "$ns" apply -f examples/release.yaml >/dev/null

# follow STAGE: the live tree (kubectl serin get --watch) until the rollout's
# outcome (kubectl serin status), then its last frame.
follow() {
  log "$1"
  kubectl serin -n "$ns" get release web --watch &
  watching=$!
  local code=0
  kubectl serin -n "$ns" status web --timeout 3m >/dev/null || code=$?
  kill "$watching" 2>/dev/null || true
  wait "$watching" 2>/dev/null || true
  watching=
  [ -t 1 ] && printf '\033[H\033[J'
  echo "serin demo: $1: done    (namespace $ns)"
  kubectl serin -n "$ns" get release web
  [ "$code" = 0 ] || die "the Release did not become Ready (kubectl serin status exited $code); see $log"
}

follow "v1 comes up"
kubectl serin -n "$ns" set image web web=example.com/web:2 >/dev/null
follow "rolling v1 -> v2 (maxSurge 2, maxUnavailable 1)"
echo
kubectl -n "$ns" get events --field-selector involvedObject.kind=Release --sort-by=.lastTimestamp \
  -o custom-columns='TYPE:.type,REASON:.reason,MESSAGE:.message' 2>/dev/null | tail -12
log "done; the cluster keeps running (make cluster-down stops it)"
