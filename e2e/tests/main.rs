//! End-to-end tests against the cluster KUBECONFIG points at (`make e2e`).
//! Each test works in a namespace of its own and removes it when done.
mod acceptance;
mod analysis;
mod argocd;
mod bluegreen;
mod canary;
mod cost;
mod fuzz;
mod generic;
mod health;
mod hooks;
mod istio;
mod judge;
mod plugin;
mod process;
mod release;
mod resilience;
mod routes;
mod sharding;
mod snapshots;
mod support;
mod terminal;
mod testbed;
mod workload;
