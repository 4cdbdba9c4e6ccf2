//! Analysis: measuring metrics and judging them.
//!
//! Pure parts (no IO): `condition` (CEL over a result), `template` (args into
//! queries, URLs, headers, bodies and Job specs, escaped for each), and `run`
//! (when each metric is due, and what its measurements add up to).
//! IO parts: the providers `prometheus` and `web`.
pub mod condition;
pub mod prometheus;
pub mod run;
pub mod template;
pub mod web;

/// Why a provider call produced no value. The message is safe to show: it never
/// contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProviderError(pub String);
