//! Runs the analysis of a revision in two steps: fetch the templates and
//! Secrets it refers to (IO, here), then resolve it with the shared check
//! (pure, `check` and `analysis::resolve`); then take the measurements that are
//! due, through the provider seam, and sum them up for the planner. What a
//! result means and when a metric is due are decided by the pure `analysis`
//! modules.
use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, ResourceExt};

use super::check::{self, Inputs, Rendered, Template, Which};
use super::{Context, Error};
use crate::analysis::{self, Compared, Env, HookRun, Outcome, condition, run};
use crate::api::{
    AnalysisStatus, AnalysisTemplate, ClusterAnalysisTemplate, Measurement, MeasurementPhase, Metric, MetricStatus,
    Release,
};
use crate::plan::{self, AnalysisInput, AnalysisRequest, AnalysisSlot, Verdict};

/// Takes the measurements of an analysis that are due at `now`.
pub async fn advance(
    ctx: &Context,
    release: &Release,
    request: &AnalysisRequest,
    now: Timestamp,
) -> Result<AnalysisInput, Error> {
    let mut analysis = request.status.clone();
    let which = Which::Slot(request.slot);
    let inputs = fetch(ctx, release, which).await?;
    let metrics = match check::check(release, &inputs, which).first_problem() {
        Ok(mut metrics) => {
            if let AnalysisSlot::Hook(_) = request.slot {
                // A hook runs once: a metric without a count is measured once.
                for rendered in &mut metrics {
                    rendered.metric.count.get_or_insert(1);
                }
            }
            metrics
        }
        Err(invalid) => {
            let verdict = Verdict::Invalid(invalid.to_string());
            return Ok(input(request.slot, analysis, verdict, None));
        }
    };

    // Keep the statuses of configured metrics only, in spec order.
    let mut statuses: Vec<MetricStatus> = metrics
        .iter()
        .map(|r| {
            analysis
                .metrics
                .iter()
                .find(|s| s.name == r.metric.name)
                .cloned()
                .unwrap_or_else(|| run::new_status(&r.metric))
        })
        .collect();
    let started_at = analysis.started_at.0;
    let compared = Compared {
        since: started_at,
        canary_revision: plan::revision::revision_of(&release.spec.template),
        stable_revision: release
            .status
            .as_ref()
            .and_then(|s| s.stable_revision.clone())
            .unwrap_or_default(),
        baseline_pods: plan::baseline_pods(&release.spec, request.slot),
    };
    let compared = &compared;
    let schedule: Vec<_> = metrics
        .iter()
        .zip(&statuses)
        .map(|(r, s)| {
            let measured_before = !s.measurements.is_empty();
            (
                &r.metric,
                run::next_due(&r.metric, Some(s), started_at),
                measured_before,
            )
        })
        .collect();
    let due_now = run::measured_together(&schedule, now);
    let measuring = metrics
        .iter()
        .zip(statuses.iter_mut())
        .zip(due_now)
        .map(|((resolved, status), due)| async move {
            let Some(provider) = analysis::provider(&resolved.metric.provider) else {
                return Ok(());
            };
            let taking = Taking {
                slot: request.slot,
                now,
                compared,
                due,
            };
            if let Some(measurement) = measure(ctx, release, provider, resolved, status, taking).await? {
                ctx.metrics
                    .measured(provider.name(), &format!("{:?}", measurement.phase));
                run::record(&resolved.metric, status, measurement);
            }
            Ok::<_, Error>(())
        });
    for result in futures::future::join_all(measuring).await {
        result?;
    }

    let plain: Vec<Metric> = metrics.iter().map(|r| r.metric.clone()).collect();
    let (phase, message) = run::overall(&plain, &statuses);
    let next_due = metrics
        .iter()
        .zip(&statuses)
        .filter(|(_, s)| s.job.is_none()) // a measurement in flight reports back through its watch
        .filter_map(|(r, s)| run::next_due(&r.metric, Some(s), started_at))
        .map(|due| Duration::try_from(due.duration_since(now)).unwrap_or(Duration::ZERO))
        .min();
    analysis.metrics = statuses;
    analysis.phase = phase;
    analysis.message = message.clone();
    Ok(input(request.slot, analysis, Verdict::of(phase, message), next_due))
}

fn input(slot: AnalysisSlot, status: AnalysisStatus, verdict: Verdict, next_due: Option<Duration>) -> AnalysisInput {
    AnalysisInput {
        slot,
        status,
        verdict,
        next_due,
    }
}

/// What [`check::check`] reads for `which`, from the cluster. Err is an API
/// failure (retried); what is missing is recorded as missing, for the check
/// to report.
pub(super) async fn fetch(ctx: &Context, release: &Release, which: Which) -> Result<Inputs, Error> {
    let namespace = release.namespace().unwrap_or_default();
    let status = release.status.clone().unwrap_or_default();
    let mut inputs = Inputs {
        stable_revision: Some(status.stable_revision.unwrap_or_default()),
        ..Inputs::default()
    };
    for reference in check::templates_wanted(release, which) {
        let name = reference.template_name;
        if reference.cluster_scope {
            let found = Api::<ClusterAnalysisTemplate>::all(ctx.client.clone())
                .get_opt(&name)
                .await?
                .map(|t| Template {
                    args: t.spec.args,
                    metrics: t.spec.metrics,
                });
            inputs.found.cluster_templates.insert(name, found);
        } else {
            let found = Api::<AnalysisTemplate>::namespaced(ctx.client.clone(), &namespace)
                .get_opt(&name)
                .await?
                .map(|t| Template {
                    args: t.spec.args,
                    metrics: t.spec.metrics,
                });
            inputs.found.templates.insert(name, found);
        }
    }
    let wanted = check::secrets_wanted(release, &inputs, which);
    let api = Api::<Secret>::namespaced(ctx.client.clone(), &namespace);
    let mut read: BTreeMap<String, Option<Secret>> = BTreeMap::new();
    for (name, key) in wanted {
        if !read.contains_key(&name) {
            read.insert(name.clone(), api.get_opt(&name).await?);
        }
        let value = read
            .get(&name)
            .and_then(|s| s.as_ref()?.data.as_ref()?.get(&key))
            .and_then(|b| String::from_utf8(b.0.clone()).ok());
        inputs.found.secrets.insert((name, key), value);
    }
    Ok(inputs)
}

/// What a round's measurement of one metric is taken with.
struct Taking<'a> {
    slot: AnalysisSlot,
    now: Timestamp,
    compared: &'a Compared,
    /// The metric is due: measure it (a measurement in flight is read back either way).
    due: bool,
}

/// Reads back a metric's measurement in flight, or else measures it when it
/// is `due`.
async fn measure(
    ctx: &Context,
    release: &Release,
    provider: &dyn analysis::Provider,
    resolved: &Rendered,
    status: &mut MetricStatus,
    taking: Taking<'_>,
) -> Result<Option<Measurement>, Error> {
    let metric = &resolved.metric;
    let key = measurement_key(taking.slot, &metric.name);
    let env = Env {
        http: &ctx.http,
        kube: &ctx.client,
        release,
        key: &key,
        number: status.count + 1,
        timeout: run::timeout(metric).unwrap_or(run::DEFAULT_TIMEOUT),
        secrets: &resolved.credentials,
        now: taking.now,
        compared: taking.compared,
        hook: match taking.slot {
            AnalysisSlot::Hook(kind) => Some(HookRun {
                kind,
                revision: &taking.compared.canary_revision,
                attempt: taking.compared.since.as_second(),
            }),
            _ => None,
        },
    };
    let read_back = status.job.is_some();
    let outcome = match &status.job {
        Some(handle) => provider.read_back(&env, handle).await?,
        None if taking.due => provider.measure(&env).await?,
        None => return Ok(None),
    };
    let mut measured = match outcome {
        Outcome::Started(handle) => {
            status.job = Some(handle);
            return Ok(None);
        }
        Outcome::Running => return Ok(None),
        Outcome::Value(value) => judged(metric, &value),
        Outcome::Error(error) => measurement(MeasurementPhase::Error, Some(error.0)),
        Outcome::Judged(phase, value) => measurement(phase, Some(value)),
        Outcome::Scored {
            value,
            shown,
            phase,
            result,
        } => {
            status.judge = Some(*result);
            scored(metric, &value, shown, phase)
        }
    };
    status.job = None;
    // What a measurement in flight reports back (a Job's condition) is shown as is.
    if !read_back {
        measured.value = measured.value.map(|v| redact(v, &resolved.secrets));
    }
    Ok(Some(measured))
}

/// Names a measurement among the Release's: the metric, prefixed by the
/// analysis it belongs to.
fn measurement_key(slot: AnalysisSlot, metric: &str) -> String {
    match slot {
        AnalysisSlot::Background => metric.to_string(),
        AnalysisSlot::Step(index) => format!("step{index}-{metric}"),
        AnalysisSlot::PrePromotion => format!("pre-{metric}"),
        AnalysisSlot::PostPromotion => format!("post-{metric}"),
        AnalysisSlot::Hook(kind) => format!("{}-{metric}", kind.label()),
    }
}

fn redact(mut text: String, secrets: &[String]) -> String {
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret.as_str(), "<redacted>");
    }
    text
}

fn judged(metric: &Metric, value: &serde_json::Value) -> Measurement {
    match condition::judge(metric, value) {
        Ok(phase) => measurement(phase, Some(value.to_string())),
        Err(error) => measurement(MeasurementPhase::Error, Some(error)),
    }
}

/// The metric's conditions over `value` when it sets any, else the
/// provider's `phase`; shown as `shown` either way.
fn scored(metric: &Metric, value: &serde_json::Value, shown: String, phase: MeasurementPhase) -> Measurement {
    if metric.success_condition.is_none() && metric.failure_condition.is_none() {
        return measurement(phase, Some(shown));
    }
    match condition::judge(metric, value) {
        Ok(phase) => measurement(phase, Some(shown)),
        Err(error) => measurement(MeasurementPhase::Error, Some(error)),
    }
}

fn measurement(phase: MeasurementPhase, value: Option<String>) -> Measurement {
    Measurement {
        phase,
        value,
        finished_at: Time(Timestamp::now()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scored_value_is_judged_by_the_metrics_conditions_else_by_the_providers_phase() {
        let value = serde_json::json!({ "score": 60.0, "verdict": "Marginal", "metrics": {} });
        let metric = |success: Option<&str>| Metric {
            name: "judge".into(),
            success_condition: success.map(str::to_string),
            ..Metric::default()
        };
        let cases = [
            (None, MeasurementPhase::Inconclusive),
            (Some("result.score >= 50"), MeasurementPhase::Successful),
            (Some("result.score >= 90"), MeasurementPhase::Failed),
            (Some("result.nope > 1"), MeasurementPhase::Error),
        ];
        for (success, phase) in cases {
            let shown = "Marginal, score 60.0: ...".to_string();
            let measured = scored(&metric(success), &value, shown.clone(), MeasurementPhase::Inconclusive);
            assert_eq!(measured.phase, phase, "{success:?}");
            if phase != MeasurementPhase::Error {
                assert_eq!(measured.value, Some(shown), "the summary is shown, not the JSON");
            }
        }
    }

    #[test]
    fn secret_values_are_scrubbed_from_what_is_shown() {
        let shown = super::redact(
            "parse error near \"s3cr3t\" in query".into(),
            &["s3cr3t".into(), String::new()],
        );
        assert_eq!(shown, "parse error near \"<redacted>\" in query");
    }
}
