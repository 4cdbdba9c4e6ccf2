#!/usr/bin/env bash
# Creates a kind cluster, builds serin's image, loads it into the nodes and
# installs serin: the path for hosts with Docker. It cannot run on machines
# without a container engine (see README, "Testing on kind").
#   KIND_NODE_IMAGE=kindest/node:v1.36.x e2e/kind/up.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source e2e/lib.sh
command -v kind >/dev/null || die "kind is not installed: go install sigs.k8s.io/kind@latest"
command -v docker >/dev/null && docker info >/dev/null 2>&1 || die "kind needs a running Docker engine"

name=serin
image=serin:dev
kind get clusters | grep -qx "$name" ||
  kind create cluster --config e2e/kind/cluster.yaml ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
kubectl config use-context "kind-$name"

if [ -f Dockerfile ]; then
  docker build -t "$image" .
  kind load docker-image "$image" --name "$name"
fi

"$SERIN_REPO/e2e/build-tools.sh" helm gateway-api  # the same pins as the local cluster
kubectl apply --server-side -f "$SERIN_CACHE/gateway-api-$GATEWAY_API_VERSION"
if [ -d charts/serin ] && [ -f Dockerfile ]; then
  "$SERIN_BIN/helm" upgrade --install serin charts/serin --namespace serin-system --create-namespace \
    --set image.repository=serin --set image.tag=dev --set image.pullPolicy=Never --wait
else
  # Before the image and chart exist, the e2e tests run the controller from the host.
  kubectl apply --server-side -f crds/
fi
log "kind cluster '$name' is ready: make e2e runs against it (KUBECONFIG=${KUBECONFIG:-~/.kube/config})"
