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
  if ! "$SERIN_REPO/e2e/cluster.sh" status >/dev/null 2>&1; then
    log "no local cluster running: starting one for this run (stopped at the end)"
    trap '"$SERIN_REPO/e2e/cluster.sh" down' EXIT
    "$SERIN_REPO/e2e/cluster.sh" up
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
