//! Runs the analysis of a revision: resolves templates and args, takes the
//! measurements that are due, and sums them up for the planner. What a result
//! means and when a metric is due are decided by the pure `analysis` modules.
use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Resource, ResourceExt};

use super::check::{self, Inputs, Rendered, Template, Which};
use super::{Context, Error, FIELD_MANAGER, replicaset::RELEASE_LABEL};
use crate::analysis::{condition, prometheus, run, web};
use crate::api::{
    AnalysisStatus, AnalysisTemplate, ClusterAnalysisTemplate, MANAGED_BY_LABEL, MANAGED_BY_VALUE, Measurement,
    MeasurementPhase, Metric, MetricStatus, Release,
};
use crate::plan::{AnalysisInput, AnalysisRequest, AnalysisSlot, Invalid, Verdict};

/// Takes the measurements of an analysis that are due at `now`.
pub async fn advance(
    ctx: &Context,
    release: &Release,
    request: &AnalysisRequest,
    now: Timestamp,
) -> Result<AnalysisInput, Error> {
    let mut analysis = request.status.clone();
    let metrics = match resolve(ctx, release, request.slot).await? {
        Ok(metrics) => metrics,
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
    let measuring = metrics
        .iter()
        .zip(statuses.iter_mut())
        .map(|(resolved, status)| async move {
            if let Some(measurement) =
                measure_if_due(ctx, release, request.slot, resolved, status, started_at, now).await?
            {
                ctx.metrics
                    .measured(provider_name(&resolved.metric), &format!("{:?}", measurement.phase));
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
        .filter(|(_, s)| s.job.is_none()) // a running Job reports back through its watch
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

/// Fetches the templates and Secrets an analysis reads, then runs the shared
/// check on them. The outer Err is an API failure (retried); the inner Err is a
/// spec problem, shown as InvalidSpec.
async fn resolve(
    ctx: &Context,
    release: &Release,
    slot: AnalysisSlot,
) -> Result<Result<Vec<Rendered>, Invalid>, Error> {
    let which = Which::Slot(slot);
    let inputs = fetch(ctx, release, which).await?;
    let checked = check::check(release, &inputs, which);
    Ok(match checked.problems.into_iter().next() {
        Some(invalid) => Err(invalid),
        None => Ok(checked.rendered),
    })
}

/// What [`check::check`] reads for `which`, from the cluster.
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
            inputs.cluster_templates.insert(name, found);
        } else {
            let found = Api::<AnalysisTemplate>::namespaced(ctx.client.clone(), &namespace)
                .get_opt(&name)
                .await?
                .map(|t| Template {
                    args: t.spec.args,
                    metrics: t.spec.metrics,
                });
            inputs.templates.insert(name, found);
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
        inputs.secrets.insert((name, key), value);
    }
    Ok(inputs)
}

fn headers(list: &[crate::api::Header]) -> Vec<(String, String)> {
    list.iter().map(|h| (h.name.clone(), h.value.clone())).collect()
}

/// Measures a metric when it is due (or reads back its running Job).
async fn measure_if_due(
    ctx: &Context,
    release: &Release,
    slot: AnalysisSlot,
    resolved: &Rendered,
    status: &mut MetricStatus,
    started_at: Timestamp,
    now: Timestamp,
) -> Result<Option<Measurement>, Error> {
    let metric = &resolved.metric;
    if let Some(job) = status.job.clone() {
        return job_outcome(ctx, release, status, &job).await;
    }
    if run::next_due(metric, Some(status), started_at).is_none_or(|due| due > now) {
        return Ok(None);
    }
    let provider = &metric.provider;
    let timeout = run::timeout(metric).unwrap_or(run::DEFAULT_TIMEOUT);
    let result = if let Some(p) = &provider.prometheus {
        let headers = headers(&p.headers);
        prometheus::query(
            &ctx.http,
            &p.address,
            &p.query,
            timeout,
            &headers,
            &resolved.credentials,
        )
        .await
    } else if let Some(w) = &provider.web {
        let method = w.method.as_deref().unwrap_or("GET");
        let headers = headers(&w.headers);
        web::request(
            &ctx.http,
            method,
            &w.url,
            &headers,
            w.body.as_deref(),
            w.json_path.as_deref(),
            timeout,
        )
        .await
    } else if let Some(job) = &provider.job {
        let key = match slot {
            AnalysisSlot::Background => metric.name.clone(),
            AnalysisSlot::Step(index) => format!("step{index}-{}", metric.name),
            AnalysisSlot::PrePromotion => format!("pre-{}", metric.name),
            AnalysisSlot::PostPromotion => format!("post-{}", metric.name),
        };
        status.job = Some(start_job(ctx, release, &key, status.count + 1, &job.spec).await?);
        return Ok(None);
    } else {
        return Ok(None);
    };
    let mut measured = match result {
        Ok(value) => judged(metric, &value),
        Err(error) => measurement(MeasurementPhase::Error, Some(error.0)),
    };
    measured.value = measured.value.map(|v| redact(v, &resolved.secrets));
    Ok(Some(measured))
}

fn provider_name(metric: &Metric) -> &'static str {
    let provider = &metric.provider;
    if provider.prometheus.is_some() {
        "prometheus"
    } else if provider.web.is_some() {
        "web"
    } else {
        "job"
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

fn measurement(phase: MeasurementPhase, value: Option<String>) -> Measurement {
    Measurement {
        phase,
        value,
        finished_at: Time(Timestamp::now()),
    }
}

/// Starts a Job for one measurement, owned by the Release so it never outlives it.
async fn start_job(
    ctx: &Context,
    release: &Release,
    key: &str,
    number: i32,
    spec: &k8s_openapi::api::batch::v1::JobSpec,
) -> Result<String, Error> {
    let release_name = release.name_any();
    let name = job_name(&release_name, key, number);
    let job = Job {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: release.namespace(),
            labels: Some(BTreeMap::from([
                (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
                (RELEASE_LABEL.to_string(), release_name),
            ])),
            owner_references: release.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        spec: Some(spec.clone()),
        status: None,
    };
    let api = Api::<Job>::namespaced(ctx.client.clone(), &release.namespace().unwrap_or_default());
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.create(&params, &job).await {
        Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(name),
        other => other.map(|_| name).map_err(Error::from),
    }
}

/// `<release>-<metric>-<n>`, cut to the 63 characters a Job name may have.
fn job_name(release: &str, metric: &str, number: i32) -> String {
    let suffix = format!("-{number}");
    let mut base: String = format!("{release}-{metric}").chars().take(63 - suffix.len()).collect();
    while base.ends_with('-') {
        base.pop();
    }
    format!("{}{suffix}", base.to_lowercase())
}

/// Reads a measurement Job: Successful when complete, Failed when failed; the Job
/// is deleted once read so runs do not pile up.
async fn job_outcome(
    ctx: &Context,
    release: &Release,
    status: &mut MetricStatus,
    name: &str,
) -> Result<Option<Measurement>, Error> {
    let api = Api::<Job>::namespaced(ctx.client.clone(), &release.namespace().unwrap_or_default());
    let Some(job) = api.get_opt(name).await? else {
        status.job = None;
        return Ok(Some(measurement(
            MeasurementPhase::Error,
            Some(format!("Job {name} disappeared")),
        )));
    };
    let conditions = job.status.and_then(|s| s.conditions).unwrap_or_default();
    let finished = conditions
        .iter()
        .find(|c| c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed"));
    let Some(finished) = finished else { return Ok(None) };
    let phase = if finished.type_ == "Complete" {
        MeasurementPhase::Successful
    } else {
        MeasurementPhase::Failed
    };
    let value = match &finished.reason {
        Some(reason) => format!("Job {}: {reason}", finished.type_),
        None => format!("Job {}", finished.type_),
    };
    status.job = None;
    match api.delete(name, &DeleteParams::background()).await {
        Err(kube::Error::Api(s)) if s.is_not_found() => {}
        other => {
            other?;
        }
    }
    Ok(Some(measurement(phase, Some(value))))
}

#[cfg(test)]
mod tests {
    use super::job_name;

    #[test]
    fn secret_values_are_scrubbed_from_what_is_shown() {
        let shown = super::redact(
            "parse error near \"s3cr3t\" in query".into(),
            &["s3cr3t".into(), String::new()],
        );
        assert_eq!(shown, "parse error near \"<redacted>\" in query");
    }

    #[test]
    fn job_names_fit_63_characters() {
        assert_eq!(job_name("web", "smoke", 1), "web-smoke-1");
        let long = job_name(&"a".repeat(50), &"b".repeat(50), 12);
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("-12"));
    }
}
