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

/// Checks what can be checked of a metric before its args are known: its
/// conditions compile and its durations parse.
pub fn check_metric(metric: &crate::api::Metric) -> Result<(), String> {
    for expression in metric.success_condition.iter().chain(&metric.failure_condition) {
        condition::check(expression).map_err(|e| format!("condition {expression:?}: {e}"))?;
    }
    run::interval(metric)?;
    run::initial_delay(metric)?;
    run::timeout(metric)?;
    Ok(())
}
