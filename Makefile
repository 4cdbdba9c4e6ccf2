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

.PHONY: test fmt lint unit argocd argocd-cm e2e bench crds cluster-up cluster-down cluster-env tools kind-up demo

test: fmt lint unit argocd e2e

fmt:
	cargo fmt --all -- --check

lint:
	cargo clippy --all-targets --all-features -- -D warnings

unit:
	cargo test --lib --bins --tests

# Argo CD health check and actions (argocd/): their tests under Debian's lua5.1,
# and argocd-cm.yaml up to date with the scripts.
argocd:
	@command -v lua5.1 >/dev/null || { apt-get update -qq && apt-get install -y -qq lua5.1 >/dev/null; }
	lua5.1 argocd/test/run.lua
	argocd/build-cm.sh --check

# Regenerate argocd/argocd-cm.yaml after editing argocd/*.lua.
argocd-cm:
	argocd/build-cm.sh

e2e:
	cargo test --features e2e --test e2e -- --test-threads=4

# Figures on the current cluster: rollout time against a Deployment, controller RSS.
bench:
	kubectl apply --server-side -f crds/ >/dev/null
	kubectl wait --for=condition=Established --timeout=30s -f crds/ >/dev/null
	cargo bench --features e2e --bench cluster

crds:
	cargo run -q -- crd --write crds/

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

demo:
	e2e/demo.sh
