//! Analysis: measuring metrics and judging them.
//!
//! Pure parts (no IO): `condition` (CEL over a result), `template` (args into
//! queries, URLs, headers, bodies and Job specs, escaped for each), `run`
//! (when each metric is due, and what its measurements add up to) and
//! `resolve` (a strategy's analysis, with its templates and Secrets, to the
//! metrics to measure), `rank_test` (the judge's Mann-Whitney U and
//! Hodges-Lehmann shift, as scipy computes them), `sequential_test` (its
//! anytime-valid test of two rates) and `judgement` (its metrics classified
//! and scored). The seam: `provider`, which the IO parts implement,
//! one file each: `prometheus`, `web`, `job` and `judge`.
pub mod condition;
pub mod job;
pub mod judge;
pub mod judgement;
pub mod prometheus;
pub mod provider;
pub mod rank_test;
pub mod resolve;
pub mod run;
pub mod sequential_test;
#[cfg(test)]
mod simulation;
pub mod template;
pub mod web;

pub use provider::{Compared, Env, HookRun, Outcome, Provider, SecretKey, SecretValues, Secrets};

use crate::api;

/// The provider a metric sets. The one place that names every provider: a new
/// one is its file above and one entry here (the destructuring has no `..`, so
/// a field added to `api::Provider` does not compile until it has its entry).
pub fn provider(spec: &api::Provider) -> Option<&dyn Provider> {
    let api::Provider {
        prometheus,
        web,
        job,
        judge,
    } = spec;
    [set(prometheus), set(web), set(job), set(judge)]
        .into_iter()
        .flatten()
        .next()
}

fn set<P: Provider>(field: &Option<P>) -> Option<&dyn Provider> {
    field.as_ref().map(|p| p as &dyn Provider)
}

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
    if let Some(provider) = provider(&metric.provider) {
        provider.check()?;
    }
    Ok(())
}
