#!/usr/bin/env bash
# The fleet bench (docs/benchmarks.md): N workloads of REPLICAS pods, created at
# once and then all given a new image at once, rolled by serin, Argo Rollouts
# and a Deployment, one controller at a time, on a cluster of its own; one
# table per scenario, also written to $FLEET_OUT (target/bench-fleet).
#
#   N=1000 REPLICAS=2 SCENARIO="rolling canary" CONTROLLERS="serin argo deployment" \
#     e2e/bench-fleet.sh [--check]
#
# --check: fail unless every run completed and every figure is in the tables.
set -euo pipefail

# Its own cluster: another data dir and other ports than the shared one
# (which the Makefile's exports name), so both can run at once.
export SERIN_CLUSTER_DIR=${FLEET_CLUSTER_DIR:-${SERIN_CACHE:-$HOME/.cache/serin}/bench-cluster}
export SERIN_ETCD_PORT=22379 SERIN_APISERVER_PORT=26443 SERIN_PROMETHEUS_PORT=29090 \
  SERIN_KCM_PORT=20257 SERIN_SCHEDULER_PORT=20259 SERIN_KWOK_PORT=20247
source "$(dirname "$0")/lib.sh"

N=${N:-1000}
REPLICAS=${REPLICAS:-2}
SCENARIO=${SCENARIO:-rolling}
CONTROLLERS=${CONTROLLERS:-serin argo deployment}
# Each workload's progressDeadlineSeconds; empty: each kind's default (600 s).
PROGRESS_DEADLINE=${PROGRESS_DEADLINE:-}
OUT=${FLEET_OUT:-$SERIN_REPO/target/bench-fleet}
# The measuring program's cargo profile: release for figures, dev for the
# check's small runs (it reuses the dependencies `make unit` built).
FLEET_BENCH_PROFILE=${FLEET_BENCH_PROFILE:-release}
# Which serin: "image", built as its image builds it (for figures), or
# "bench", the one cargo builds beside the measuring program (for the check).
FLEET_SERIN=${FLEET_SERIN:-image}
CHECK=false
case "${1:-}" in
  --check) CHECK=true ;;
  "") ;;
  *) die "usage: $0 [--check]" ;;
esac
[[ $N =~ ^[1-9][0-9]*$ && $REPLICAS =~ ^[1-9][0-9]*$ ]] || die "N and REPLICAS must be positive integers"
[[ -z $PROGRESS_DEADLINE || $PROGRESS_DEADLINE =~ ^[1-9][0-9]*$ ]] || die "PROGRESS_DEADLINE must be a positive integer (seconds)"
for s in $SCENARIO; do [[ $s = rolling || $s = canary ]] || die "SCENARIO: rolling and/or canary, not '$s'"; done
for c in $CONTROLLERS; do [[ $c =~ ^(serin|argo|deployment)$ ]] || die "CONTROLLERS: serin argo deployment, not '$c'"; done

# kwok nodes hold 250 pods: every workload's replicas, its surge pod and a
# quarter more for pods still terminating.
NODES=$(( (N * (REPLICAS + 1) * 5 / 4 + 249) / 250 + 1 ))
export SERIN_NODES=$(( NODES < 3 ? 3 : NODES ))
# Not throttled by kube-controller-manager's client defaults (QPS 20, burst 30).
export SERIN_KCM_FLAGS="--kube-api-qps=200 --kube-api-burst=400"
export KUBECONFIG=$SERIN_CLUSTER_DIR/kubeconfig
kubectl() { "$SERIN_BIN/kubectl" "$@"; }

# Ports of the controllers' endpoints, free of the shared cluster's and the e2e suite's.
SERIN_METRICS=127.0.0.1:28080 SERIN_HEALTH=127.0.0.1:28081
ARGO_METRICS_PORT=28090 ARGO_HEALTHZ_PORT=28091

# One fleet bench at a time per machine: they share the cluster's dir and ports.
mkdir -p "$(dirname "$SERIN_CLUSTER_DIR")"
exec 9> "$SERIN_CLUSTER_DIR.lock"
if ! flock -n 9; then
  log "waiting for another fleet bench to finish ($SERIN_CLUSTER_DIR.lock)"
  flock 9
fi

WORK=$OUT/work
mkdir -p "$OUT" "$WORK" "$OUT/logs"
rm -f "$OUT"/*.json "$OUT"/*.md

# --- builds ---------------------------------------------------------------
# serin "image": as e2e/chart.sh dockerfile-build replays the Dockerfile
# (release, locked, the bin alone), in that replay's target dir, whose
# dependencies are built.
# artifact NAME KIND: the executable cargo's JSON messages on stdin name.
artifact() {
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    t = m.get("target", {})
    if m.get("reason") == "compiler-artifact" and t.get("name") == sys.argv[1] and sys.argv[2] in t.get("kind", []) and m.get("executable"):
        print(m["executable"])' "$1" "$2"
}
[[ $FLEET_BENCH_PROFILE =~ ^(release|dev)$ ]] || die "FLEET_BENCH_PROFILE: release or dev"
[[ $FLEET_SERIN =~ ^(image|bench)$ ]] || die "FLEET_SERIN: image or bench"
log "building the measuring program (bench fleet, profile $FLEET_BENCH_PROFILE)"
messages=$(cargo build --profile "$FLEET_BENCH_PROFILE" --features e2e --bench fleet --message-format=json-render-diagnostics)
FLEET=$(artifact fleet bench <<< "$messages")
if [ "$FLEET_SERIN" = image ]; then
  log "building serin (release, as the image builds it)"
  messages=$(CARGO_TARGET_DIR=$SERIN_CACHE/docker-target cargo build --release --locked --bin serin --message-format=json-render-diagnostics)
fi
# A copy: another build may replace the file in the shared target dir.
cp "$(artifact serin bin <<< "$messages")" "$WORK/serin"
[ -x "$FLEET" ] && "$WORK/serin" --version >/dev/null || die "the builds did not produce the bench and serin"
ARGO_VERSION=""
if [[ " $CONTROLLERS " = *" argo "* ]]; then
  "$SERIN_REPO/e2e/build-tools.sh" argo-rollouts
  ARGO_VERSION=$(GOTOOLCHAIN=go1.27.3 module_version "$SERIN_REPO/e2e/tools/argo-rollouts" github.com/argoproj/argo-rollouts)
fi

# --- the cluster ----------------------------------------------------------
CONTROLLER_PID=""
stop_controller() {
  [ -n "$CONTROLLER_PID" ] || return 0
  kill -TERM "$CONTROLLER_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$CONTROLLER_PID" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$CONTROLLER_PID" 2>/dev/null || true
  wait "$CONTROLLER_PID" 2>/dev/null || true
  CONTROLLER_PID=""
}
cleanup() {
  stop_controller
  if [ "${FLEET_KEEP_CLUSTER:-}" = 1 ]; then
    log "keeping the bench cluster (FLEET_KEEP_CLUSTER=1): KUBECONFIG=$KUBECONFIG;" \
      "stop it with SERIN_CLUSTER_DIR=$SERIN_CLUSTER_DIR e2e/cluster.sh down"
  else
    cp "$SERIN_CLUSTER_DIR"/logs/*.log "$OUT/logs/" 2>/dev/null || true
    "$SERIN_REPO/e2e/cluster.sh" down
  fi
}
trap cleanup EXIT

# A fresh cluster every time: nothing left from an earlier run, nodes sized for N.
[ -d "$SERIN_CLUSTER_DIR" ] && "$SERIN_REPO/e2e/cluster.sh" down
log "starting the bench cluster in $SERIN_CLUSTER_DIR: $SERIN_NODES kwok nodes, kube-controller-manager $SERIN_KCM_FLAGS"
"$SERIN_REPO/e2e/cluster.sh" up

"$WORK/serin" crd | kubectl apply --server-side -f - >/dev/null
if [ -n "$ARGO_VERSION" ]; then
  kubectl apply --server-side -f "$SERIN_CACHE/argo-rollouts-$ARGO_VERSION" >/dev/null
  # Its Lease lives in its own namespace (POD_NAMESPACE, else argo-rollouts).
  kubectl create namespace argo-rollouts >/dev/null
fi
kubectl wait --for=condition=Established --timeout=60s crd --all >/dev/null

# --- the runs -------------------------------------------------------------
# start_controller NAME LOG: the controller at its defaults, but for its
# endpoints' ports; sets CONTROLLER_PID, METRICS_URL and LEASE.
start_controller() {
  CONTROLLER_PID="" METRICS_URL="" LEASE=""
  case $1 in
    serin) LEASE=default/serin-controller METRICS_URL=http://$SERIN_METRICS/metrics ;;
    argo) LEASE=argo-rollouts/argo-rollouts-controller-lock METRICS_URL=http://127.0.0.1:$ARGO_METRICS_PORT/metrics ;;
    deployment) return 0 ;; # kube-controller-manager runs all along
  esac
  # Argo does not release its Lease on SIGTERM: a new process would wait it out.
  kubectl -n "${LEASE%/*}" delete lease "${LEASE#*/}" --ignore-not-found >/dev/null
  case $1 in
    serin) SERIN_METRICS_ADDR=$SERIN_METRICS SERIN_HEALTH_ADDR=$SERIN_HEALTH \
      "$WORK/serin" controller > "$2" 2>&1 & ;;
    argo) "$SERIN_BIN/rollouts-controller" --kubeconfig "$KUBECONFIG" \
      --metricsPort "$ARGO_METRICS_PORT" --healthzPort "$ARGO_HEALTHZ_PORT" > "$2" 2>&1 & ;;
  esac
  CONTROLLER_PID=$!
}

failed=()
for scenario in $SCENARIO; do
  for controller in $CONTROLLERS; do
    if [ "$scenario" = canary ] && [ "$controller" = deployment ]; then
      continue # a Deployment has no canary steps
    fi
    log "run: $controller, $scenario, N=$N x $REPLICAS replicas"
    start_controller "$controller" "$OUT/logs/$scenario-$controller.log"
    pid=${CONTROLLER_PID:-$(cat "$SERIN_CLUSTER_DIR/pids/kube-controller-manager.pid")}
    args=(run --controller "$controller" --scenario "$scenario" --n "$N" --replicas "$REPLICAS"
      --pid "$pid" --cluster-dir "$SERIN_CLUSTER_DIR" --kcm-port "$SERIN_KCM_PORT" --out "$OUT")
    [ -n "$METRICS_URL" ] && args+=(--metrics-url "$METRICS_URL")
    [ -n "$LEASE" ] && args+=(--lease "$LEASE")
    [ -n "$PROGRESS_DEADLINE" ] && args+=(--progress-deadline-seconds "$PROGRESS_DEADLINE")
    "$FLEET" "${args[@]}" || failed+=("$scenario/$controller")
    stop_controller
  done
done

if [ "$FLEET_SERIN" = image ]; then
  note="serin $("$WORK/serin" --version | cut -d' ' -f2), release, built as its image builds it"
else
  note="serin $("$WORK/serin" --version | cut -d' ' -f2), the bench's $FLEET_BENCH_PROFILE build (FLEET_SERIN=bench): a harness check, not figures to quote"
fi
[ -n "$ARGO_VERSION" ] && note+="; Argo Rollouts $ARGO_VERSION"
note+="; $(nproc) CPUs, $SERIN_NODES kwok nodes"
[ -n "$PROGRESS_DEADLINE" ] && note+="; progressDeadlineSeconds $PROGRESS_DEADLINE"
report=(report --out "$OUT" --note "$note")
$CHECK && report+=(--check)
for scenario in $SCENARIO; do
  echo
  "$FLEET" "${report[@]}" --scenario "$scenario" || failed+=("report $scenario")
done
echo
log "tables and runs in $OUT (SCENARIO.md, SCENARIO.json, SCENARIO-CONTROLLER.json, logs/)"
[ ${#failed[@]} -eq 0 ] || die "failed: ${failed[*]}"
