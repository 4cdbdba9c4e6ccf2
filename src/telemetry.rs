//! Metrics and logs. Every metric has bounded labels, except the per-Release
//! phase gauge, whose series are removed when their Release goes.
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::api::Phase;

/// serin's metrics, registered in their own registry.
pub struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    reconcile_errors: IntCounterVec,
    reconcile_duration: Histogram,
    release_phase: IntGaugeVec,
    rollout_duration: HistogramVec,
    measurements: IntCounterVec,
    api_requests: IntCounterVec,
    cache_behind: IntCounter,
    shard_info: IntGaugeVec,
    shard_releases: IntGauge,
}

const PHASES: [Phase; 4] = [Phase::Progressing, Phase::Paused, Phase::Healthy, Phase::Degraded];

/// How one reconcile ended, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconciled {
    Ok,
    /// `kind` names the error variant (a fixed set: the label stays bounded).
    Failed {
        kind: &'static str,
    },
    /// The Lease moved during the round, which wrote nothing: not a failure.
    NotLeader,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new("serin_reconcile_total", "Reconciles of Releases, by result"),
            &["result"],
        )
        .expect("valid metric");
        let reconcile_errors = IntCounterVec::new(
            Opts::new(
                "serin_reconcile_errors_total",
                "Failed reconciles of Releases, by kind of error",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let reconcile_duration = Histogram::with_opts(
            HistogramOpts::new("serin_reconcile_duration_seconds", "Time one reconcile takes")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        )
        .expect("valid metric");
        let release_phase = IntGaugeVec::new(
            Opts::new(
                "serin_release_phase",
                "1 for the phase each Release is in, 0 for the others",
            ),
            &["namespace", "release", "phase"],
        )
        .expect("valid metric");
        let rollout_duration = HistogramVec::new(
            HistogramOpts::new(
                "serin_rollout_duration_seconds",
                "From a rollout's start to its revision becoming stable, by strategy",
            )
            .buckets(vec![5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0]),
            &["strategy"],
        )
        .expect("valid metric");
        let measurements = IntCounterVec::new(
            Opts::new(
                "serin_analysis_measurements_total",
                "Analysis measurements, by provider and result",
            ),
            &["provider", "result"],
        )
        .expect("valid metric");
        let api_requests = IntCounterVec::new(
            Opts::new(
                "serin_kube_requests_total",
                "Requests to the Kubernetes API, by verb and resource",
            ),
            &["verb", "resource"],
        )
        .expect("valid metric");
        let cache_behind = IntCounter::new(
            "serin_reconcile_cache_behind_total",
            "Rounds that planned nothing because the watch caches did not show this controller's own last write yet",
        )
        .expect("valid metric");
        let shard_info = IntGaugeVec::new(
            Opts::new(
                "serin_shard_info",
                "1, labelled with this controller's shard and the number of shards (0 of 1 unsharded)",
            ),
            &["shard", "shards"],
        )
        .expect("valid metric");
        let shard_releases = IntGauge::new(
            "serin_shard_releases",
            "Releases of this controller's shard it holds now: 0 while standing by",
        )
        .expect("valid metric");
        for collector in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reconcile_errors.clone()),
            Box::new(reconcile_duration.clone()),
            Box::new(release_phase.clone()),
            Box::new(rollout_duration.clone()),
            Box::new(measurements.clone()),
            Box::new(api_requests.clone()),
            Box::new(cache_behind.clone()),
            Box::new(shard_info.clone()),
            Box::new(shard_releases.clone()),
        ] {
            registry.register(collector).expect("metric names are unique");
        }
        Metrics {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            release_phase,
            rollout_duration,
            measurements,
            api_requests,
            cache_behind,
            shard_info,
            shard_releases,
        }
    }

    pub fn cache_behind(&self) {
        self.cache_behind.inc();
    }

    pub fn reconciled(&self, outcome: Reconciled, took: Duration) {
        let result = match outcome {
            Reconciled::Ok => "ok",
            Reconciled::Failed { kind } => {
                self.reconcile_errors.with_label_values(&[kind]).inc();
                "error"
            }
            Reconciled::NotLeader => "not_leader",
        };
        self.reconciles.with_label_values(&[result]).inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// One series per Release, for its current phase: series at 0 for the
    /// other phases would cost 1.6 kB of memory per Release and say nothing.
    pub fn phase(&self, namespace: &str, release: &str, phase: Phase) {
        for each in PHASES.into_iter().filter(|each| *each != phase) {
            let _ = self
                .release_phase
                .remove_label_values(&[namespace, release, &each.to_string()]);
        }
        self.release_phase
            .with_label_values(&[namespace, release, &phase.to_string()])
            .set(1);
    }

    /// The Release is gone: drop its series.
    pub fn forget(&self, namespace: &str, release: &str) {
        for each in PHASES {
            let _ = self
                .release_phase
                .remove_label_values(&[namespace, release, &each.to_string()]);
        }
    }

    pub fn rollout_completed(&self, strategy: &str, took: Duration) {
        self.rollout_duration
            .with_label_values(&[strategy])
            .observe(took.as_secs_f64());
    }

    pub fn measured(&self, provider: &str, result: &str) {
        self.measurements.with_label_values(&[provider, result]).inc();
    }

    /// This controller is shard `index` of `count`.
    pub fn shard(&self, index: u32, count: u32) {
        self.shard_info.reset();
        self.shard_info
            .with_label_values(&[&index.to_string(), &count.to_string()])
            .set(1);
    }

    /// The Releases this controller's shard has now (in its cache).
    pub fn shard_releases(&self, releases: usize) {
        self.shard_releases.set(i64::try_from(releases).unwrap_or(i64::MAX));
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(error) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(%error, "could not encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }

    /// A client middleware that counts API requests by verb.
    pub fn count_requests(&self) -> CountRequests {
        CountRequests {
            counter: self.api_requests.clone(),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts each request a kube client sends, by verb.
#[derive(Clone)]
pub struct CountRequests {
    counter: IntCounterVec,
}

impl<S> tower::Layer<S> for CountRequests {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Counted {
            inner,
            counter: self.counter.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    counter: IntCounterVec,
}

impl<S, B> tower::Service<http::Request<B>> for Counted<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (verb, resource) = verb_and_resource(&request);
        self.counter.with_label_values(&[verb, &resource]).inc();
        Box::pin(self.inner.call(request))
    }
}

/// The Kubernetes verb and resource of a request to the API server, e.g.
/// ("patch", "releases/status"); the resource is "" for other paths (/version).
fn verb_and_resource<B>(request: &http::Request<B>) -> (&'static str, String) {
    let uri = request.uri();
    let watching = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let (resource, named) = resource_of(uri.path());
    let verb = match *request.method() {
        http::Method::GET if watching => "watch",
        http::Method::GET if named || resource.is_empty() => "get",
        http::Method::GET => "list",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "other",
    };
    (verb, resource)
}

/// The resource (with its subresource) a path names, and whether it names one object.
fn resource_of(path: &str) -> (String, bool) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] | ["apis", _, _version, rest @ ..] => rest,
        _ => return (String::new(), false),
    };
    let rest = match rest {
        ["namespaces", _namespace, resource, rest @ ..] => [&[*resource], rest].concat(),
        rest => rest.to_vec(),
    };
    match rest.as_slice() {
        [] => (String::new(), false),
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, sub, ..] => (format!("{resource}/{sub}"), true),
    }
}

/// Logs to stderr as text or JSON, filtered by RUST_LOG (default info).
pub fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_verb_and_resource() {
        let request = |method: &str, uri: &str| http::Request::builder().method(method).uri(uri).body(()).unwrap();
        let cases = [
            (
                "GET",
                "/apis/apps/v1/replicasets?watch=true&resourceVersion=1",
                "watch",
                "replicasets",
            ),
            ("GET", "/apis/apps/v1/namespaces/a/replicasets/b", "get", "replicasets"),
            (
                "GET",
                "/apis/apps/v1/namespaces/a/replicasets?labelSelector=x",
                "list",
                "replicasets",
            ),
            ("POST", "/api/v1/namespaces/a/events", "create", "events"),
            (
                "PATCH",
                "/apis/serin.dev/v1alpha1/namespaces/a/releases/b/status",
                "patch",
                "releases/status",
            ),
            (
                "PATCH",
                "/apis/apps/v1/namespaces/a/replicasets/b/scale",
                "patch",
                "replicasets/scale",
            ),
            ("DELETE", "/apis/batch/v1/namespaces/a/jobs/b", "delete", "jobs"),
            ("GET", "/api/v1/namespaces/a", "get", "namespaces"),
            ("GET", "/api/v1/namespaces", "list", "namespaces"),
            (
                "GET",
                "/apis/coordination.k8s.io/v1/namespaces/a/leases/serin",
                "get",
                "leases",
            ),
            ("PUT", "/x", "update", ""),
            ("GET", "/version", "get", ""),
            ("OPTIONS", "/x", "other", ""),
        ];
        for (method, uri, verb, resource) in cases {
            assert_eq!(
                verb_and_resource(&request(method, uri)),
                (verb, resource.to_string()),
                "{method} {uri}"
            );
        }
    }

    #[test]
    fn reconciles_are_counted_by_result_and_failures_by_kind() {
        let metrics = Metrics::new();
        let took = Duration::from_millis(3);
        metrics.reconciled(Reconciled::Ok, took);
        metrics.reconciled(Reconciled::Failed { kind: "kube" }, took);
        metrics.reconciled(Reconciled::Failed { kind: "kube" }, took);
        metrics.reconciled(Reconciled::NotLeader, took);
        let text = metrics.render();
        for line in [
            r#"serin_reconcile_total{result="ok"} 1"#,
            r#"serin_reconcile_total{result="error"} 2"#,
            r#"serin_reconcile_total{result="not_leader"} 1"#,
            r#"serin_reconcile_errors_total{kind="kube"} 2"#,
            "serin_reconcile_duration_seconds_count 4",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(
            !text.contains(r#"kind="not_leader""#),
            "a standby round is no error:\n{text}"
        );
    }

    #[test]
    fn the_shard_and_its_releases_are_exposed() {
        let metrics = Metrics::new();
        metrics.shard(1, 2);
        metrics.shard_releases(97);
        let text = metrics.render();
        for line in [r#"serin_shard_info{shard="1",shards="2"} 1"#, "serin_shard_releases 97"] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        metrics.shard(0, 1);
        assert!(!metrics.render().contains(r#"shards="2""#), "one shard at a time");
    }

    #[test]
    fn phase_gauges_mark_one_phase_and_go_with_their_release() {
        let metrics = Metrics::new();
        metrics.phase("shop", "web", Phase::Healthy);
        let text = metrics.render();
        assert!(
            text.contains(r#"serin_release_phase{namespace="shop",phase="Healthy",release="web"} 1"#),
            "{text}"
        );
        assert_eq!(
            text.matches("serin_release_phase{").count(),
            1,
            "one series per Release: {text}"
        );
        metrics.phase("shop", "web", Phase::Degraded);
        let text = metrics.render();
        assert!(text.contains(r#"serin_release_phase{namespace="shop",phase="Degraded",release="web"} 1"#));
        assert_eq!(
            text.matches("serin_release_phase{").count(),
            1,
            "the old phase's series is gone: {text}"
        );
        metrics.forget("shop", "web");
        assert!(!metrics.render().contains(r#"release="web""#));
    }
}
