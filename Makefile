# serin: `make test` is everything CI runs; `make demo` shows a rollout live.
SHELL := bash
SERIN_CACHE ?= $(HOME)/.cache/serin
SERIN_CLUSTER_DIR ?= $(SERIN_CACHE)/cluster
export SERIN_CACHE SERIN_CLUSTER_DIR
# e2e tests run against whatever KUBECONFIG points at; the local cluster by default.
KUBECONFIG ?= $(SERIN_CLUSTER_DIR)/kubeconfig
export KUBECONFIG
export PATH := $(SERIN_CACHE)/bin:$(PATH)

.PHONY: test fmt lint unit e2e crds cluster-up cluster-down cluster-env tools kind-up demo

test: fmt lint unit e2e

fmt:
	cargo fmt --all -- --check

lint:
	cargo clippy --all-targets --all-features -- -D warnings

unit:
	cargo test --lib --bins --tests

e2e:
	cargo test --features e2e --test e2e -- --test-threads=4

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
