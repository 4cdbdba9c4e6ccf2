//! The judge against the test bed's real Prometheus: a canary step whose
//! analysis runs baseline pods and compares the canary's errors and latency
//! with theirs. The source exports per-(revision, role) series the test sets,
//! labelled as Prometheus labels pods' series when it keeps their
//! `serin.dev/revision` and `serin.dev/role` labels: baseline pods' with
//! role="baseline", the canary's without a role.
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use serin::api::{AnalysisPhase, AnalysisStatus, AnalysisTemplate, MeasurementPhase, Release};

use crate::support::metrics::{MetricsSource, prometheus_url};
use crate::support::operator::{is_ready, releases, setup, wait_condition};
use crate::support::rollout::{create_services, web_release};
use crate::support::{from_json, poll_until, wait_for};

const BASELINE: &str = "serin.dev/role=baseline";

/// Series of one side: this namespace's, of the side's revision and role.
const SIDE: &str = "namespace=\"{{args.release.namespace}}\",revision=\"{{judge.revision}}\",role=\"{{judge.role}}\"";

/// A fixed threshold a template would set (errors under 5%), and the judge.
fn template() -> AnalysisTemplate {
    let canary = "namespace=\"{{args.release.namespace}}\",revision=\"{{args.revision.canary}}\",role=\"\"";
    from_json(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": { "name": "judge" },
        "spec": { "metrics": [
            {
                "name": "fixed-threshold",
                "interval": "2s", "count": 3, "initialDelay": "4s", "inconclusiveLimit": 3,
                "successCondition": "result[0] < 0.05",
                "provider": { "prometheus": { "address": prometheus_url(), "query": format!(
                    "sum(rate(judge_errors_total{{{canary}}}[5s])) / sum(rate(judge_requests_total{{{canary}}}[5s]))") } }
            },
            {
                "name": "judge",
                // A scrape late under load finds no data: Inconclusive, tolerated twice.
                "interval": "3s", "count": 3, "initialDelay": "6s", "inconclusiveLimit": 2,
                "provider": { "judge": {
                    "address": prometheus_url(),
                    "step": "2s",
                    "metrics": [
                        { "name": "errors", "critical": true, "sequential": {
                            "events": format!("sum(increase(judge_errors_total{{{SIDE}}}[{{{{judge.step}}}}]))"),
                            "total": format!("sum(increase(judge_requests_total{{{SIDE}}}[{{{{judge.step}}}}]))") } },
                        { "name": "latency", "query": format!("max(judge_latency_seconds{{{SIDE}}})") },
                    ]
                } }
            }
        ] }
    }))
}

fn canary_release() -> Release {
    web_release(
        2,
        json!({ "canary": { "steps": [
            { "setWeight": 50 },
            { "analysis": { "templates": [{ "templateName": "judge" }], "baselinePods": true } },
        ] } }),
    )
}

async fn baselines(client: &Client, ns: &str) -> Vec<ReplicaSet> {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels(BASELINE)).await.unwrap().items
}

/// Starts the rollout to v2 with the canary's error ratio at `canary_ratio`
/// against the baseline's 1%; returns (v1, v2) once the baseline is up,
/// having checked it is the stable template at the canary's size.
async fn roll_with_baseline(
    client: &Client,
    ns: &str,
    source: &MetricsSource,
    release: Release,
    canary_ratio: f64,
) -> (String, String) {
    let api = releases(client, ns);
    let templates: Api<AnalysisTemplate> = Api::namespaced(client.clone(), ns);
    templates.create(&PostParams::default(), &template()).await.unwrap();
    api.create(&PostParams::default(), &release).await.unwrap();
    let v1 = ready_on_any(&api).await;
    assert!(
        baselines(client, ns).await.is_empty(),
        "no baseline before the analysis"
    );
    let v2 = v2_revision(&release);
    // An empty label is no label: the canary's series carry none.
    source.set_side(&v2, "", canary_ratio);
    source.set_side(&v1, "baseline", 0.01);
    crate::support::rollout::set_image(&api, "example.com/web:2").await;

    let baseline = wait_for("the baseline ReplicaSet", Duration::from_secs(30), || async {
        baselines(client, ns).await.into_iter().next()
    })
    .await;
    let spec = baseline.spec.unwrap();
    let template = spec.template.unwrap();
    let labels = template.metadata.unwrap().labels.unwrap();
    assert_eq!(labels.get("serin.dev/revision"), Some(&v1), "the stable template");
    assert_eq!(labels.get("serin.dev/role").map(String::as_str), Some("baseline"));
    let image = template.spec.unwrap().containers[0].image.clone();
    assert_eq!(image.as_deref(), Some("example.com/web:1"));
    let canary = crate::support::rollout::replicas(client, ns, &v2).await;
    assert_eq!(spec.replicas, Some(canary), "the canary's size");
    assert_eq!(canary, 1);
    (v1, v2)
}

async fn ready_on_any(api: &Api<Release>) -> String {
    let ready = wait_condition(api, "web", "Ready", "True", None, Duration::from_secs(45)).await;
    ready.status.unwrap().current_revision.unwrap()
}

fn v2_revision(release: &Release) -> String {
    let mut template = release.spec.template.clone();
    template.spec.as_mut().unwrap().containers[0].image = Some("example.com/web:2".into());
    serin::plan::revision::revision_of(&template)
}

async fn baseline_gone(client: &Client, ns: &str) {
    let gone = poll_until(Duration::from_secs(20), || async {
        baselines(client, ns).await.is_empty().then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "the baseline outlived its analysis: {:?}",
        baselines(client, ns).await
    );
}

fn judge_metric(analysis: &AnalysisStatus) -> &serin::api::MetricStatus {
    analysis
        .metrics
        .iter()
        .find(|m| m.name == "judge")
        .expect("judge metric status")
}

#[tokio::test]
async fn a_canary_with_half_again_the_baselines_errors_is_rolled_back_though_under_the_fixed_threshold() {
    let (client, ns, _controller) = setup("judge-worse").await;
    let source = MetricsSource::start(&ns.name).await;
    let (_v1, v2) = roll_with_baseline(&client, &ns.name, &source, canary_release(), 0.015).await;
    let api = releases(&client, &ns.name);

    let release = wait_condition(
        &api,
        "web",
        "Degraded",
        "True",
        Some("AnalysisFailed"),
        Duration::from_secs(60),
    )
    .await;
    let status = release.status.unwrap();
    assert_eq!(status.failed_revision.as_ref(), Some(&v2));
    let message = status.message.clone().unwrap_or_default();
    println!("rolled back: {message}");
    assert!(message.contains("\"judge\""), "names the analysis metric: {message}");
    assert!(
        message.contains("\"errors\" High: rate ratio 1."),
        "names the metric and effect: {message}"
    );
    assert!(message.contains(" in ["), "names the interval: {message}");
    let analysis = status.canary.unwrap().step_analysis.unwrap();
    assert_eq!(analysis.phase, AnalysisPhase::Failed);
    let fixed = analysis.metrics.iter().find(|m| m.name == "fixed-threshold").unwrap();
    assert_eq!(fixed.failed, 0, "the fixed threshold alone would pass it: {fixed:?}");
    let result = judge_metric(&analysis)
        .judge
        .clone()
        .expect("the judge's result in status");
    assert_eq!(result.verdict, "Fail");
    let errors = result.metrics.iter().find(|m| m.name == "errors").unwrap();
    assert_eq!(
        (errors.classification.as_str(), errors.failed),
        ("High", true),
        "{errors:?}"
    );
    let interval = errors.interval.clone().unwrap();
    assert!(
        interval[0] > 1.0 && interval[0] < 1.5 && interval[1] > 1.5,
        "{interval:?}"
    );
    let failing = judge_metric(&analysis).measurements.last().unwrap();
    assert_eq!(failing.phase, MeasurementPhase::Failed);
    println!("judge measurement: {}", failing.value.as_deref().unwrap_or_default());
    baseline_gone(&client, &ns.name).await;
}

#[tokio::test]
async fn a_canary_like_its_baseline_passes_and_the_baseline_goes_with_the_analysis() {
    let (client, ns, _controller) = setup("judge-same").await;
    let source = MetricsSource::start(&ns.name).await;
    let (_v1, v2) = roll_with_baseline(&client, &ns.name, &source, canary_release(), 0.01).await;
    let analysis = promoted_after_passing(&client, &ns.name, &v2, |s| s.canary.as_ref()?.step_analysis.clone()).await;
    assert_passed(&analysis);
}

#[tokio::test]
async fn a_blue_green_preview_is_judged_against_baseline_pods_at_its_size_before_the_switch() {
    let (client, ns, _controller) = setup("judge-bluegreen").await;
    create_services(&client, &ns.name, &["web", "web-preview"]).await;
    let source = MetricsSource::start(&ns.name).await;
    let release = web_release(
        2,
        json!({ "blueGreen": {
            "activeService": "web", "previewService": "web-preview", "previewReplicaCount": 1,
            "scaleDownDelaySeconds": 2,
            "prePromotionAnalysis": { "templates": [{ "templateName": "judge" }], "baselinePods": true },
        } }),
    );
    let (_v1, v2) = roll_with_baseline(&client, &ns.name, &source, release, 0.01).await;
    let analysis = promoted_after_passing(&client, &ns.name, &v2, |s| {
        s.blue_green.as_ref()?.pre_promotion_analysis.clone()
    })
    .await;
    assert_passed(&analysis);
}

/// Waits for `v2` to be Ready and stable, keeping the last analysis that
/// `of` finds in status (it may leave status as the rollout moves on).
async fn promoted_after_passing(
    client: &Client,
    ns: &str,
    v2: &str,
    of: impl Fn(&serin::api::ReleaseStatus) -> Option<AnalysisStatus>,
) -> AnalysisStatus {
    let api = releases(client, ns);
    let seen: std::sync::Mutex<Option<AnalysisStatus>> = Default::default();
    let completed = poll_until(Duration::from_secs(60), || async {
        let status = api.get("web").await.ok()?.status?;
        if let Some(analysis) = of(&status) {
            *seen.lock().unwrap() = Some(analysis);
        }
        (is_ready(&status) && status.stable_revision.as_deref() == Some(v2)).then_some(())
    })
    .await;
    let seen = seen.into_inner().unwrap();
    assert!(completed.is_some(), "v2 promoted; last analysis seen: {seen:#?}");
    baseline_gone(client, ns).await;
    seen.expect("the analysis was seen running")
}

fn assert_passed(analysis: &AnalysisStatus) {
    let judge = judge_metric(analysis);
    assert_eq!(judge.failed, 0, "{judge:?}");
    assert!(judge.successful >= 2, "{judge:?}");
    for measurement in &judge.measurements {
        let value = measurement.value.as_deref().unwrap_or_default();
        println!("judge measurement: {:?} {value}", measurement.phase);
        match measurement.phase {
            MeasurementPhase::Successful => assert!(value.starts_with("Pass, score 100"), "{value}"),
            phase => assert_eq!(phase, MeasurementPhase::Inconclusive, "{value}"),
        }
    }
}
