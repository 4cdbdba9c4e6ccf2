//! serin: a Kubernetes operator for progressive delivery.
pub mod analysis;
pub mod api;
pub mod cli;
pub mod controller;
pub mod plan;
pub mod telemetry;
pub mod traffic;
