# serin: `make test` is everything CI runs; `make demo` shows a rollout live.
SHELL := bash
SERIN_CACHE ?= $(HOME)/.cache/serin
SERIN_CLUSTER_DIR ?= $(SERIN_CACHE)/cluster
export SERIN_CACHE SERIN_CLUSTER_DIR
# e2e tests run against whatever KUBECONFIG points at; the local cluster by default.
KUBECONFIG ?= $(SERIN_CLUSTER_DIR)/kubeconfig
export KUBECONFIG
# The local cluster's Prometheus (e2e/lib.sh reads the same port variable).
SERIN_PROMETHEUS_PORT ?= 19090
SERIN_PROMETHEUS_URL ?= http://127.0.0.1:$(SERIN_PROMETHEUS_PORT)
SERIN_PROMETHEUS_TARGETS ?= $(SERIN_CLUSTER_DIR)/prometheus/targets
export SERIN_PROMETHEUS_PORT SERIN_PROMETHEUS_URL SERIN_PROMETHEUS_TARGETS
export PATH := $(SERIN_CACHE)/bin:$(PATH)

.PHONY: test test-steps fmt lint docs unit argocd argocd-cm chart chart-crds image-check image e2e e2e-rbac bench bench-fleet bench-fleet-check crds cluster-up cluster-down cluster-env tools kind-up demo demo-check demo-app

# Starts the local cluster when KUBECONFIG is the local one and none is running,
# and stops what it started (e2e/with-cluster.sh); any other cluster is used as is.
test:
	e2e/with-cluster.sh $(MAKE) --no-print-directory test-steps

test-steps: fmt lint docs unit argocd chart e2e e2e-rbac demo-check image-check bench-fleet-check

fmt:
	cargo fmt --all -- --check

# Relative links and #anchors in README.md and docs/ resolve.
docs:
	python3 e2e/check-links.py

lint:
	cargo clippy --all-targets --all-features -- -D warnings

unit:
	cargo test --lib --bins --tests

# Argo CD health check and actions (argocd/): their tests in gopher-lua, set up as
# Argo CD sets it up (e2e/tools/argocd-lua, built once into $(SERIN_CACHE)/bin),
# and argocd-cm.yaml up to date with the scripts.
ARGOCD_LUA_GO := GOMODCACHE=$(SERIN_CACHE)/go/mod GOCACHE=$(SERIN_CACHE)/go/build GOFLAGS=-mod=readonly GOTOOLCHAIN=local CGO_ENABLED=0
argocd:
	e2e/build-tools.sh argocd-lua
	cd e2e/tools/argocd-lua && $(ARGOCD_LUA_GO) go vet ./...
	argocd-lua test argocd
	argocd/build-cm.sh --check

# Regenerate argocd/argocd-cm.yaml after editing argocd/*.lua.
argocd-cm:
	argocd/build-cm.sh

# The Helm chart: CRD copies in sync, helm lint + hadolint + checkov, server dry-run,
# and install / upgrade (CRDs applied by the controller) / helm test / uninstall on the cluster.
chart:
	e2e/with-cluster.sh e2e/chart.sh all

# Copy crds/ into the chart (make crds does it too).
chart-crds:
	e2e/chart.sh sync-crds

# The Dockerfile's builder stage, replayed without Docker (a release build).
image-check:
	e2e/chart.sh dockerfile-build

# Both images; needs Docker with BuildKit (not on the machines serin is developed on).
image:
	docker build -t serin:dev --build-arg VERSION=$$(cargo pkgid | sed 's/.*[#@]//') .
	docker build -f Dockerfile.demo -t serin-demo:dev .

e2e:
	e2e/build-tools.sh kstatus argocd-lua
	e2e/with-cluster.sh cargo test --features e2e --test e2e -- --test-threads=4

# The chart's RBAC: the rolling, canary and blue-green scenarios with the
# controller running as the chart's ServiceAccount.
e2e-rbac:
	e2e/with-cluster.sh e2e/rbac.sh

# The demo app on the host; VERSION, ERROR_RATE, LATENCY_MS, PORT, READY_DELAY_SECONDS.
demo-app:
	cargo run --example demo_app

# Figures on the current cluster: rollout time against a Deployment, controller RSS.
bench:
	kubectl apply --server-side -f crds/ >/dev/null
	kubectl wait --for=condition=Established --timeout=30s -f crds/ >/dev/null
	cargo bench --features e2e --bench cluster

# The fleet bench (docs/benchmarks.md): N workloads of REPLICAS pods each, created
# and then all given a new image at once, rolled by serin, Argo Rollouts and a
# Deployment, one at a time, on a cluster of its own; one table per scenario
# (SCENARIO: rolling, canary or both). Long: not in CI. The 10,000 run: N=10000 REPLICAS=1.
N ?= 1000
REPLICAS ?= 2
SCENARIO ?= rolling
CONTROLLERS ?= serin argo deployment
PROGRESS_DEADLINE ?=
bench-fleet:
	N=$(N) REPLICAS=$(REPLICAS) SCENARIO="$(SCENARIO)" CONTROLLERS="$(CONTROLLERS)" PROGRESS_DEADLINE=$(PROGRESS_DEADLINE) e2e/bench-fleet.sh

# The fleet bench's harness, small: N = 10, every controller, both scenarios;
# fails unless every workload completed and every figure is in the tables.
bench-fleet-check:
	N=10 REPLICAS=2 SCENARIO="rolling canary" CONTROLLERS="serin argo deployment" FLEET_SERIN=bench FLEET_BENCH_PROFILE=dev \
	  e2e/bench-fleet.sh --check

crds:
	cargo run -q -- crd --write crds/
	e2e/chart.sh sync-crds

tools:
	e2e/build-tools.sh

cluster-up:
	e2e/cluster.sh up

cluster-down:
	e2e/cluster.sh down

cluster-env:
	@e2e/cluster.sh env

kind-up:
	e2e/kind/up.sh

# The local cluster, serin's controller, and a rolling update, a canary on an
# HTTPRoute and a blue-green switch, live through kubectl serin; then a summary.
demo:
	e2e/demo.sh

# make demo with its output in a file, as CI logs see it; checks the summary.
demo-check:
	e2e/demo.sh --check
