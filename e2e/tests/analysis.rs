//! Rolling updates gated on analysis: the test bed's real Prometheus scraping a
//! metrics source the test controls, the web provider, and Job checks.
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use serin::api::{AnalysisPhase, AnalysisTemplate, Phase, Release};

use crate::support::metrics::{ERROR_RATIO_QUERY, MetricsSource, prometheus_url, prometheus_value};
use crate::support::operator::{releases, setup, wait_condition};
use crate::support::{from_json, wait_for};

fn release_with_analysis(analysis: Value) -> Release {
    from_json(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 3,
            "progressDeadlineSeconds": 120,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": "example.com/web:1" }] }
            },
            "strategy": { "rolling": { "maxSurge": 1, "maxUnavailable": 0, "analysis": analysis } }
        }
    }))
}

fn prometheus_metric(address: &str, interval: &str, failure_limit: i32, count: Option<i32>) -> Value {
    json!({
        "name": "error-ratio",
        "interval": interval,
        // Time for the new series to be scraped twice, so rate() has data.
        "initialDelay": "4s",
        "count": count,
        "successCondition": "result[0] < 0.05",
        "failureLimit": failure_limit,
        "inconclusiveLimit": 10,
        "provider": { "prometheus": { "address": address, "query": ERROR_RATIO_QUERY, "timeout": "2s" } }
    })
}

fn v2_template() -> Value {
    json!({ "spec": { "containers": [{ "name": "web", "image": "example.com/web:2" }] } })
}

/// The revision serin will give `release` once its template moves to v2, so a
/// test can export metrics for it before the analysis starts.
fn v2_revision(release: &Release) -> String {
    let mut template = serde_json::to_value(&release.spec.template).unwrap();
    json_patch_merge(&mut template, &v2_template());
    serin::plan::revision::revision_of(&serde_json::from_value(template).unwrap())
}

fn json_patch_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                json_patch_merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Creates the Release at v1, waits for Ready, moves the template to v2 and
/// returns v2's revision once serin reports it.
async fn roll_to_v2(api: &Api<Release>, release: &Release) -> String {
    api.create(&PostParams::default(), release).await.unwrap();
    wait_condition(api, "web", "Ready", "True", None, Duration::from_secs(30)).await;
    let patch = json!({ "spec": { "template": v2_template() } });
    let v1 = api.get("web").await.unwrap().status.unwrap().current_revision.unwrap();
    api.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let v2 = wait_for("serin to see v2", Duration::from_secs(10), || async {
        let current = api.get("web").await.ok()?.status?.current_revision?;
        (current != v1).then_some(current)
    })
    .await;
    assert_eq!(v2, v2_revision(release), "tests predict the revision");
    v2
}

/// Waits until Prometheus has scraped `revision`'s series in `namespace` often
/// enough for the 5 s rate() of the error-ratio query, so that a test with a
/// short `count` does not spend its measurements on a busy scraper's lag.
async fn scraped(namespace: &str, revision: &str) {
    let query =
        format!("count_over_time(http_requests_total{{namespace=\"{namespace}\",revision=\"{revision}\"}}[5s])");
    wait_for(
        "Prometheus to scrape the new revision twice",
        Duration::from_secs(30),
        || async { (prometheus_value(&query).await? >= 2.0).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn good_metrics_let_the_rollout_complete() {
    let (client, ns, _controller) = setup("analysis-good").await;
    let source = MetricsSource::start(&ns.name).await;
    let api = releases(&client, &ns.name);
    let metric = prometheus_metric(&prometheus_url(), "1s", 0, Some(3));
    let release = release_with_analysis(json!({ "metrics": [metric] }));
    source.set_error_ratio(&v2_revision(&release), 0.01);
    scraped(&ns.name, &v2_revision(&release)).await;
    let v2 = roll_to_v2(&api, &release).await;

    let release = wait_condition(&api, "web", "Ready", "True", None, Duration::from_secs(40)).await;
    let status = release.status.unwrap();
    assert_eq!(status.stable_revision.as_ref(), Some(&v2));
    let analysis = status.analysis.unwrap();
    assert_eq!(analysis.phase, AnalysisPhase::Successful);
    let metric = &analysis.metrics[0];
    // count: 3 measurements; the first may find no data yet (Inconclusive, within the limit).
    assert!(
        metric.count >= 3 && metric.successful >= 1 && metric.failed == 0,
        "{metric:?}"
    );
    assert!(metric.measurements.len() <= 10, "bounded history");
}

#[tokio::test]
async fn a_bad_error_ratio_rolls_back_within_the_failure_window() {
    let (client, ns, _controller) = setup("analysis-bad").await;
    let source = MetricsSource::start(&ns.name).await;
    let api = releases(&client, &ns.name);
    let (interval, failure_limit) = (2, 1);
    let metric = prometheus_metric(&prometheus_url(), &format!("{interval}s"), failure_limit, None);
    let release = release_with_analysis(json!({ "metrics": [metric] }));
    source.set_error_ratio(&v2_revision(&release), 0.5);
    let v2 = roll_to_v2(&api, &release).await;
    let bad_since = Instant::now();

    let release = wait_condition(
        &api,
        "web",
        "Degraded",
        "True",
        Some("AnalysisFailed"),
        Duration::from_secs(40),
    )
    .await;
    let took = bad_since.elapsed();
    let window = Duration::from_secs(interval * (failure_limit as u64 + 1) + 15);
    assert!(took <= window, "rolled back after {took:?}, window {window:?}");
    let status = release.status.unwrap();
    assert_eq!(status.failed_revision.as_ref(), Some(&v2));
    let message = status.message.unwrap();
    let last = status
        .analysis
        .as_ref()
        .and_then(|a| a.metrics[0].measurements.last().cloned())
        .unwrap();
    let value = last.value.unwrap();
    // rate() over integer counters gives about, not exactly, the exported 0.5.
    let ratio: Vec<f64> = serde_json::from_str(&value).unwrap();
    assert!(ratio[0] > 0.4, "the failing measurement shows the bad ratio: {value}");
    assert!(
        message.contains("error-ratio") && message.contains(&value),
        "message names metric and value: {message}"
    );
    let stable = status.stable_revision.unwrap();
    wait_for("stable back at full size, v2 at 0", Duration::from_secs(15), || async {
        let s = api.get("web").await.ok()?.status?;
        (s.available_replicas == 3 && s.updated_replicas == 0).then_some(())
    })
    .await;
    assert_ne!(stable, v2);
}

#[tokio::test]
async fn a_prometheus_outage_stops_promotion_degrades_and_a_retry_recovers() {
    let (client, ns, _controller) = setup("analysis-outage").await;
    let source = MetricsSource::start(&ns.name).await;
    // A Prometheus of this test's own, so stopping it leaves other tests alone.
    let mut prometheus = OwnPrometheus::start(&ns.name, source.target_file()).await;
    let api = releases(&client, &ns.name);
    // Enough measurements to still be running when Prometheus goes away.
    let mut metric = prometheus_metric(&prometheus.url, "1s", 0, Some(12));
    metric["consecutiveErrorLimit"] = json!(2);
    let release = release_with_analysis(json!({ "metrics": [metric] }));
    source.set_error_ratio(&v2_revision(&release), 0.0);
    let v2 = roll_to_v2(&api, &release).await;
    wait_for("a successful measurement", Duration::from_secs(20), || async {
        let analysis = api.get("web").await.ok()?.status?.analysis?;
        (analysis.metrics.first()?.successful > 0).then_some(())
    })
    .await;

    prometheus.stop().await;
    let release = wait_condition(
        &api,
        "web",
        "Degraded",
        "True",
        Some("AnalysisFailed"),
        Duration::from_secs(20),
    )
    .await;
    let status = release.status.unwrap();
    assert_ne!(
        status.stable_revision.as_ref(),
        Some(&v2),
        "no promotion while the provider is down"
    );
    let metric = &status.analysis.unwrap().metrics[0];
    assert!(metric.consecutive_error > 2, "{metric:?}");
    assert!(status.message.unwrap().contains("consecutive errors"));

    prometheus.restart().await;
    let retry = json!({ "status": { "control": { "retry": true } } });
    api.patch_status("web", &PatchParams::default(), &Patch::Merge(&retry))
        .await
        .unwrap();
    let release = wait_condition(&api, "web", "Ready", "True", None, Duration::from_secs(40)).await;
    let status = release.status.unwrap();
    assert_eq!(status.stable_revision.as_ref(), Some(&v2));
    assert!(status.control.is_none(), "the retry request is consumed");
}

#[tokio::test]
async fn the_web_provider_gates_a_rollout_on_a_json_endpoint() {
    let (client, ns, _controller) = setup("analysis-web").await;
    let source = MetricsSource::start(&ns.name).await;
    let api = releases(&client, &ns.name);
    let metric = json!({
        "name": "health",
        "interval": "1s",
        "initialDelay": "2s",
        "count": 2,
        "successCondition": "result < 0.05",
        "inconclusiveLimit": 10,
        "provider": { "web": {
            "url": format!("http://{}/health/{{{{args.revision.canary}}}}", source.address),
            "jsonPath": "$.errorRate",
            "timeout": "2s"
        } }
    });
    let release = release_with_analysis(json!({ "metrics": [metric] }));
    source.set_error_ratio(&v2_revision(&release), 0.0);
    let v2 = roll_to_v2(&api, &release).await;
    let release = wait_condition(&api, "web", "Ready", "True", None, Duration::from_secs(30)).await;
    let status = release.status.unwrap();
    assert_eq!(status.stable_revision, Some(v2));
    let metric = &status.analysis.unwrap().metrics[0];
    assert!(metric.successful >= 1 && metric.count >= 2, "{metric:?}");
}

/// Errors never make up a pass: `count: 3` against an endpoint that fails every
/// other request passes on three successful measurements, not on two and an error.
#[tokio::test]
async fn errors_do_not_count_toward_count() {
    let (client, ns, _controller) = setup("analysis-errors").await;
    let source = MetricsSource::start(&ns.name).await;
    let api = releases(&client, &ns.name);
    let metric = json!({
        "name": "health",
        "interval": "1s",
        "count": 3,
        "successCondition": "result < 0.05",
        "consecutiveErrorLimit": 2,
        "provider": { "web": {
            "url": format!("http://{}/flaky/{{{{args.revision.canary}}}}", source.address),
            "jsonPath": "$.errorRate",
            "timeout": "2s"
        } }
    });
    let release = release_with_analysis(json!({ "metrics": [metric] }));
    source.set_error_ratio(&v2_revision(&release), 0.0);
    let v2 = roll_to_v2(&api, &release).await;
    let release = wait_condition(&api, "web", "Ready", "True", None, Duration::from_secs(40)).await;
    let status = release.status.unwrap();
    assert_eq!(status.stable_revision, Some(v2));
    let metric = &status.analysis.unwrap().metrics[0];
    println!(
        "passed with {} successful and {} errored measurements",
        metric.successful, metric.error
    );
    assert_eq!(metric.successful, 3, "{metric:?}");
    assert!(metric.error >= 1, "the endpoint failed in between: {metric:?}");
}

#[tokio::test]
async fn job_checks_pass_when_the_job_completes_and_roll_back_when_it_fails() {
    let (client, ns, _controller) = setup("analysis-job").await;
    // One template, used twice: the label on the Job's pods decides its fate.
    let template: AnalysisTemplate = from_json(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": { "name": "smoke" },
        "spec": {
            "args": [{ "name": "fault", "value": "none" }],
            "metrics": [{ "name": "smoke", "count": 1, "provider": { "job": { "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": { "labels": { "serin.dev/fault": "{{args.fault}}" } },
                    "spec": { "restartPolicy": "Never", "containers": [{ "name": "smoke", "image": "example.com/smoke:1",
                        "args": ["--release={{args.release.name}}", "--revision={{args.revision.canary}}"] }] }
                }
            } } } }]
        }
    }));
    Api::<AnalysisTemplate>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &template)
        .await
        .unwrap();
    let api = releases(&client, &ns.name);
    let analysis = json!({ "templates": [{ "templateName": "smoke" }] });
    let v2 = roll_to_v2(&api, &release_with_analysis(analysis)).await;
    let release = wait_condition(&api, "web", "Ready", "True", None, Duration::from_secs(30)).await;
    assert_eq!(release.status.unwrap().stable_revision.as_ref(), Some(&v2));

    let crash = json!({ "spec": {
        "template": { "spec": { "containers": [{ "name": "web", "image": "example.com/web:3" }] } },
        "strategy": { "rolling": { "analysis": { "args": [{ "name": "fault", "value": "crash" }] } } }
    } });
    api.patch("web", &PatchParams::default(), &Patch::Merge(&crash))
        .await
        .unwrap();
    let release = wait_condition(
        &api,
        "web",
        "Degraded",
        "True",
        Some("AnalysisFailed"),
        Duration::from_secs(30),
    )
    .await;
    let status = release.status.unwrap();
    assert_eq!(status.stable_revision.as_ref(), Some(&v2));
    assert!(status.message.unwrap().contains("smoke"));
    // Measurement Jobs do not pile up.
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), &ns.name);
    wait_for("measurement Jobs to be cleaned up", Duration::from_secs(15), || async {
        jobs.list(&Default::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_unknown_template_is_invalid_and_nothing_is_scaled() {
    let (client, ns, _controller) = setup("analysis-invalid").await;
    let api = releases(&client, &ns.name);
    let analysis = json!({ "templates": [{ "templateName": "missing" }] });
    roll_to_v2(&api, &release_with_analysis(analysis)).await;
    let release = wait_condition(
        &api,
        "web",
        "Degraded",
        "True",
        Some("InvalidSpec"),
        Duration::from_secs(15),
    )
    .await;
    let status = release.status.unwrap();
    assert!(status.message.unwrap().contains("\"missing\" not found"));
    assert_eq!(status.phase, Some(Phase::Degraded));
    assert_eq!(status.updated_replicas, 0, "the new revision was not started");

    // The template appears, but one of its args has no value anywhere.
    let template: AnalysisTemplate = from_json(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": { "name": "missing" },
        "spec": {
            "args": [{ "name": "service" }],
            "metrics": [{ "name": "m", "provider": { "web": { "url": "http://127.0.0.1:1/{{args.service}}" } } }]
        }
    }));
    Api::<AnalysisTemplate>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &template)
        .await
        .unwrap();
    let message = wait_for("the missing arg to be reported", Duration::from_secs(20), || async {
        let message = api.get("web").await.ok()?.status?.message?;
        message.contains("arg \"service\"").then_some(message)
    })
    .await;
    assert!(message.contains("has no value"), "{message}");
    assert_eq!(api.get("web").await.unwrap().status.unwrap().updated_replicas, 0);
}

/// An Argo Rollouts-style template: a numeric arg and a duration arg outside
/// PromQL string literals (one written `{{ args.window }}`, with spaces).
fn argo_style_template(namespace: &str) -> AnalysisTemplate {
    let ratio = "sum(rate(http_errors_total{namespace=\"{{args.release.namespace}}\",revision=\"{{args.revision.canary}}\"}[{{args.window}}])) \
         / sum(rate(http_requests_total{namespace=\"{{args.release.namespace}}\",revision=\"{{args.revision.canary}}\"}[{{ args.window }}]))";
    from_json(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": { "name": "error-ratio", "namespace": namespace },
        "spec": {
            "args": [{ "name": "window", "value": "5s" }, { "name": "error-threshold" }],
            "metrics": [{
                "name": "error-ratio",
                "interval": "1s",
                "initialDelay": "4s",
                "count": 3,
                "successCondition": "result[0] == 1.0",
                "inconclusiveLimit": 10,
                "provider": { "prometheus": {
                    "address": prometheus_url(),
                    "query": format!("({ratio}) < bool {{{{args.error-threshold}}}}"),
                    "timeout": "2s"
                } }
            }]
        }
    }))
}

/// Argo-style numeric and duration args reach the real Prometheus as numbers
/// and durations; a value that is neither is InvalidSpec naming the arg, and
/// `kubectl serin lint --complete` on the same manifests says the same.
#[tokio::test]
async fn numeric_and_duration_args_outside_literals_gate_the_rollout_and_bad_ones_are_named() {
    let (client, ns, _controller) = setup("analysis-argo-args").await;
    let source = MetricsSource::start(&ns.name).await;
    let api = releases(&client, &ns.name);
    let template = argo_style_template(&ns.name);
    Api::<AnalysisTemplate>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &template)
        .await
        .unwrap();
    let analysis = |threshold: &str| {
        json!({ "templates": [{ "templateName": "error-ratio" }],
                "args": [{ "name": "error-threshold", "value": threshold }] })
    };
    let release = release_with_analysis(analysis("0.05"));
    source.set_error_ratio(&v2_revision(&release), 0.01);
    scraped(&ns.name, &v2_revision(&release)).await;
    let v2 = roll_to_v2(&api, &release).await;
    let done = wait_condition(&api, "web", "Ready", "True", None, Duration::from_secs(40)).await;
    let status = done.status.unwrap();
    assert_eq!(status.stable_revision.as_ref(), Some(&v2));
    let metric = &status.analysis.unwrap().metrics[0];
    assert!(metric.successful >= 1 && metric.failed == 0, "{metric:?}");

    // A value that would add an operator: refused before anything is measured.
    let hostile = "0.05 or vector(1)";
    let patch = json!({ "spec": {
        "template": { "spec": { "containers": [{ "name": "web", "image": "example.com/web:3" }] } },
        "strategy": { "rolling": { "analysis": analysis(hostile) } }
    } });
    api.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let invalid = wait_condition(
        &api,
        "web",
        "Degraded",
        "True",
        Some("InvalidSpec"),
        Duration::from_secs(15),
    )
    .await;
    let message = invalid.status.unwrap().message.unwrap();
    let want = format!(
        "spec.strategy.rolling.analysis.args: AnalysisTemplate \"error-ratio\" metric \"error-ratio\": arg \"error-threshold\" \
         is used outside a string literal ({{{{args.error-threshold}}}}), so its value must be a number (like 0.05 or 1e3) or a \
         duration (like 5m or 1h30m); got {hostile:?}. To use text, quote the placeholder, e.g. label=\"{{{{args.error-threshold}}}}\""
    );
    assert_eq!(message, want);

    // The same manifests through the real kubectl-serin lint.
    let dir = std::env::temp_dir().join(format!("serin-argo-args-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let live = api.get("web").await.unwrap();
    let mut manifest = serde_json::to_value(&live).unwrap();
    manifest.as_object_mut().unwrap().remove("status");
    let files = [
        (dir.join("release.yaml"), serde_yaml::to_string(&manifest).unwrap()),
        (dir.join("template.yaml"), serde_yaml::to_string(&template).unwrap()),
    ];
    for (path, text) in &files {
        std::fs::write(path, text).unwrap();
    }
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-serin"))
        .args(["lint", "--complete", "-f"])
        .args(files.iter().map(|(path, _)| path))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let release_file = files[0].0.display();
    assert_eq!(
        stdout.trim_end(),
        format!("{release_file}: document 1: Release web: {message}"),
        "lint says what the controller says"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Prometheus process for one test: same binary and settings as the test bed's.
struct OwnPrometheus {
    url: String,
    args: Vec<String>,
    child: Option<tokio::process::Child>,
}

impl OwnPrometheus {
    async fn start(namespace: &str, target_file: &std::path::Path) -> Self {
        let dir = std::env::temp_dir().join(format!("serin-prometheus-{namespace}"));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n- job_name: e2e\n  file_sd_configs:\n  - files: [{:?}]\n    refresh_interval: 1s\n",
            target_file
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let args = vec![
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ];
        let mut own = Self {
            url: format!("http://127.0.0.1:{port}"),
            args,
            child: None,
        };
        own.restart().await;
        own
    }

    async fn restart(&mut self) {
        let child = tokio::process::Command::new("prometheus")
            .args(&self.args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus on PATH (make cluster-up installs it)");
        self.child = Some(child);
        let ready = format!("{}/-/ready", self.url);
        wait_for("own prometheus to be ready", Duration::from_secs(15), || async {
            reqwest::get(&ready).await.ok()?.status().is_success().then_some(())
        })
        .await;
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }
}
