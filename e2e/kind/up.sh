#!/usr/bin/env bash
# Creates a kind cluster, builds serin's two images (the controller from
# Dockerfile, the demo app from Dockerfile.demo), loads them into the nodes and
# installs serin from charts/serin: the path for hosts with Docker. It cannot
# run on machines without a container engine (see docs/testbed.md, "Testing on kind").
#   KIND_NODE_IMAGE=kindest/node:v1.36.x e2e/kind/up.sh
# SERIN_KIND_KUBECONFIG: where kind writes its context (default ~/.kube/config).
# SERIN_KIND_BUILD=0: use serin:dev and serin-demo:dev as already built.
# Then, e.g.: kubectl apply -f tilt/release.yaml (a canary of serin-demo:dev).
set -euo pipefail
cd "$(dirname "$0")/../.."
source e2e/lib.sh
command -v kind >/dev/null || die "kind is not installed: go install sigs.k8s.io/kind@latest"
{ command -v docker && docker info; } >/dev/null 2>&1 || die "kind needs a running Docker engine"
[ -f Dockerfile ] && [ -f Dockerfile.demo ] && [ -d charts/serin ] ||
  die "Dockerfile, Dockerfile.demo and charts/serin are needed"

# kind's context goes to ~/.kube/config (kind's default), not to the local test
# bed's kubeconfig that the Makefile exports, which `make cluster-down` deletes.
export KUBECONFIG=${SERIN_KIND_KUBECONFIG:-$HOME/.kube/config}
name=serin
namespace=serin-system
controller_image=serin:dev
demo_image=serin-demo:dev
kind get clusters | grep -qx "$name" ||
  kind create cluster --config e2e/kind/cluster.yaml ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
kubectl config use-context "kind-$name"

# SERIN_KIND_BUILD=0: the two images are already in Docker under these names
# (CI builds them with its layer cache first).
if [ "${SERIN_KIND_BUILD:-1}" != 0 ]; then
  # BuildKit for the Dockerfiles' cache mounts (the default builder since Docker 23).
  export DOCKER_BUILDKIT=1
  log "building $controller_image"
  docker build -t "$controller_image" .
  log "building $demo_image"
  docker build -f Dockerfile.demo -t "$demo_image" .
fi
kind load docker-image "$controller_image" "$demo_image" --name "$name"

"$SERIN_REPO/e2e/build-tools.sh" helm gateway-api istio  # the same pins as the local cluster
kubectl apply --server-side -f "$SERIN_CACHE/gateway-api-$GATEWAY_API_VERSION"
kubectl apply --server-side -f "$SERIN_CACHE/istio-$ISTIO_API_VERSION"

# The tag stays `dev` from build to build, so the image's ID goes into a pod
# annotation: the controller's pods are replaced exactly when the image changed.
image_id=$(docker image inspect --format '{{.Id}}' "$controller_image")
"$SERIN_BIN/helm" upgrade --install serin charts/serin --namespace "$namespace" --create-namespace \
  --set image.repository=serin --set image.tag=dev --set image.pullPolicy=Never \
  --set-string "podAnnotations.serin\.dev/image-id=$image_id"
# The chart names the Deployment after the Helm release (serin).
if ! kubectl -n "$namespace" rollout status deployment/serin --timeout=180s; then
  kubectl -n "$namespace" get pods -o wide >&2 || true
  kubectl -n "$namespace" describe deployment/serin >&2 || true
  kubectl -n "$namespace" logs deployment/serin --all-containers --tail=50 >&2 || true
  die "the serin controller did not roll out in $namespace"
fi
log "kind cluster '$name' is ready (KUBECONFIG=$KUBECONFIG): serin runs in $namespace; $demo_image is loaded for tilt/release.yaml"
