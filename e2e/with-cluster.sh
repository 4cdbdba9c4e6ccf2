#!/usr/bin/env bash
# with-cluster.sh COMMAND...: runs COMMAND against a cluster, starting one only
# when needed. When KUBECONFIG is the local test bed's and that cluster is not
# up, it starts it (e2e/cluster.sh up) and stops it again when COMMAND ends,
# pass or fail. A running local cluster, or a KUBECONFIG pointing anywhere
# else (kind, a real cluster), is used as it is and left running.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

local_kubeconfig=$SERIN_CLUSTER_DIR/kubeconfig
kubeconfig=${KUBECONFIG:-$local_kubeconfig}
if [ "$(realpath -m "$kubeconfig")" = "$(realpath -m "$local_kubeconfig")" ]; then
  healthy() { "$SERIN_REPO/e2e/cluster.sh" status >/dev/null 2>&1; }
  # Some process of a local cluster is alive: it is someone's, never ours to replace.
  running() {
    local pidfile
    for pidfile in "$SERIN_CLUSTER_DIR"/pids/*.pid; do
      [ -f "$pidfile" ] && [ -d "/proc/$(cat "$pidfile")" ] && return 0
    done
    return 1
  }
  if ! healthy; then
    if running; then
      log "the local cluster is running but not healthy yet; waiting up to 60s"
      deadline=$((SECONDS + 60))
      until healthy; do
        [ "$SECONDS" -lt "$deadline" ] ||
          die "the local cluster in $SERIN_CLUSTER_DIR runs but is not healthy; 'make cluster-down' replaces it"
        sleep 1
      done
    else
      log "no local cluster running: starting one for this run (stopped at the end)"
      trap '"$SERIN_REPO/e2e/cluster.sh" down' EXIT
      "$SERIN_REPO/e2e/cluster.sh" up
    fi
  fi
  eval "$("$SERIN_REPO/e2e/cluster.sh" env)"
else
  kubectl=$SERIN_BIN/kubectl
  [ -x "$kubectl" ] || kubectl=kubectl
  "$kubectl" get --raw /readyz >/dev/null 2>&1 ||
    die "KUBECONFIG=$kubeconfig: no cluster answers; start it, or unset KUBECONFIG to use the local test bed"
fi
# Not exec: the trap above has to run after COMMAND.
"$@"
