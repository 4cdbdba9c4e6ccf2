//! Test support for the IO layer, after kube-rs's controller-rs fixtures: a
//! [`Context`] whose client talks to a scripted API server. A scenario lists
//! the requests expected, in order; each is checked (method, path and query,
//! content type, body) and answered. An unexpected request, a missing one or a
//! scenario that outlasts [`TIMEOUT`] fails the test.
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use kube::client::Body;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio::sync::watch;
use tower_test::mock;

use super::trim::{CachedRelease, CachedReplicaSet};
use super::{Context, replicaset};
use crate::api::{FIELD_MANAGER, Release, ReleaseStatus};
use crate::plan::{self, Observed};
use crate::telemetry::Metrics;

/// Longest a scenario may take; every exchange is answered at once, so only a
/// hung client comes near it.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What the Release cache holds of `release`, as a reconcile receives it.
pub fn cached(release: &Release) -> Arc<CachedRelease> {
    Arc::new(CachedRelease::of(release))
}

/// A Context on a scripted API server, with the handles that steer it.
pub struct Fixture {
    pub ctx: Arc<Context>,
    pub server: ApiServer,
    leader: watch::Sender<bool>,
    synced: watch::Sender<bool>,
    replica_sets: Writer<CachedReplicaSet>,
}

impl Fixture {
    /// A leader whose ReplicaSet cache has synced, empty.
    pub fn new() -> Self {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let (store, replica_sets) = reflector::store();
        let (synced, synced_rx) = watch::channel(true);
        let (leader, leader_rx) = watch::channel(true);
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: None,
        };
        let ctx = Arc::new(Context {
            reporter,
            client,
            replica_sets: store,
            synced: synced_rx,
            http: reqwest::Client::new(),
            metrics: Arc::new(Metrics::new()),
            leader: leader_rx,
            expectations: Default::default(),
        });
        Fixture {
            ctx,
            server: ApiServer { handle },
            leader,
            synced,
            replica_sets,
        }
    }

    /// Puts a ReplicaSet in the cache, as the watch would.
    pub fn cache(&mut self, rs: ReplicaSet) {
        self.replica_sets
            .apply_watcher_event(&watcher::Event::Apply(CachedReplicaSet::of(&rs)));
    }

    /// This process loses the Lease.
    pub fn stand_by(&self) {
        self.leader.send_replace(false);
    }

    /// The ReplicaSet watch ends before its first list.
    pub fn lose_cache(self) -> (Arc<Context>, ApiServer) {
        self.synced.send_replace(false);
        (self.ctx, self.server)
    }

    /// The plan `reconcile` makes from the cached ReplicaSets, for a Release
    /// that needs no analysis and steers no Service.
    pub fn plan(&self, release: &Release) -> plan::Plan {
        let observed: Vec<_> = self
            .ctx
            .replica_sets
            .state()
            .iter()
            .filter_map(|rs| replicaset::observe_cached(rs))
            .collect();
        plan::plan(&Observed {
            release,
            replica_sets: &observed,
            baseline: None,
            analysis: None,
            gate_analysis: None,
            hook: None,
            traffic: plan::Traffic::default(),
            refused: None,
            template_problem: None,
            workload: None,
            now: k8s_openapi::jiff::Timestamp::now(),
        })
    }

    /// `release` with the status the planner settles on for the cached
    /// ReplicaSets: the state in which a round has nothing to write.
    /// `status.control` is kept as given.
    pub fn settled(&self, mut release: Release) -> Release {
        for _ in 0..5 {
            let control = release.status.as_ref().and_then(|s| s.control.clone());
            let status = ReleaseStatus {
                control,
                ..self.plan(&release).status
            };
            if release.status.as_ref() == Some(&status) {
                return release;
            }
            release.status = Some(status);
        }
        panic!("the planner does not settle on a status for {release:?}");
    }
}

/// The scripted API server.
pub struct ApiServer {
    handle: mock::Handle<Request<Body>, Response<Body>>,
}

impl ApiServer {
    /// Drives `work` while answering `scenario` in order; returns what `work` returned.
    pub async fn serve<T>(&mut self, scenario: Vec<Exchange>, work: impl Future<Output = T>) -> T {
        let run = async {
            let mut work = std::pin::pin!(work);
            let mut expected = scenario.into_iter();
            let mut seen = String::new();
            let output = loop {
                tokio::select! {
                    output = &mut work => break output,
                    request = self.handle.next_request() => {
                        let (request, respond) = request.expect("the client is gone");
                        let line = format!("{} {}", request.method(), path_and_query(&request));
                        let Some(exchange) = expected.next() else {
                            panic!("unexpected request {line}\nafter:\n{seen}");
                        };
                        let _ = writeln!(seen, "  {line}");
                        exchange.respond_to(request, respond).await;
                    }
                }
            };
            let missing: Vec<String> = expected.map(|e| format!("{} {}", e.method, e.uri)).collect();
            assert!(missing.is_empty(), "requests never sent: {missing:?}\nafter:\n{seen}");
            output
        };
        tokio::time::timeout(TIMEOUT, run)
            .await
            .expect("the scenario did not finish in time")
    }
}

fn path_and_query(request: &Request<Body>) -> String {
    request
        .uri()
        .path_and_query()
        .map(ToString::to_string)
        .unwrap_or_default()
}

type BodyCheck = Box<dyn FnOnce(&Value) + Send>;

/// One request expected, and its answer.
pub struct Exchange {
    method: Method,
    uri: String,
    content_type: Option<&'static str>,
    check: Option<BodyCheck>,
    status: StatusCode,
    answer: Answer,
}

enum Answer {
    /// The request's body, as a create returns the object created.
    Echo,
    Json(Value),
}

impl Exchange {
    fn new(method: Method, uri: &str) -> Self {
        Exchange {
            method,
            uri: uri.to_string(),
            content_type: None,
            check: None,
            status: StatusCode::OK,
            answer: Answer::Json(json!({})),
        }
    }

    pub fn get(uri: &str) -> Self {
        Self::new(Method::GET, uri)
    }

    /// Answered with its own body, status 201.
    pub fn post(uri: &str) -> Self {
        Self {
            status: StatusCode::CREATED,
            answer: Answer::Echo,
            ..Self::new(Method::POST, uri)
        }
    }

    /// A merge patch (`application/merge-patch+json`).
    pub fn merge_patch(uri: &str) -> Self {
        Self {
            content_type: Some("application/merge-patch+json"),
            ..Self::new(Method::PATCH, uri)
        }
    }

    /// A server-side apply (`application/apply-patch+yaml`).
    pub fn apply(uri: &str) -> Self {
        Self {
            content_type: Some("application/apply-patch+yaml"),
            ..Self::new(Method::PATCH, uri)
        }
    }

    pub fn delete(uri: &str) -> Self {
        Self::new(Method::DELETE, uri)
    }

    /// Asserts on the request's body, as JSON.
    pub fn body(mut self, check: impl FnOnce(&Value) + Send + 'static) -> Self {
        self.check = Some(Box::new(check));
        self
    }

    /// Answers 200 with `object`.
    pub fn answer(mut self, object: impl serde::Serialize) -> Self {
        self.status = StatusCode::OK;
        self.answer = Answer::Json(serde_json::to_value(object).expect("serializable"));
        self
    }

    /// Answers with a failure Status, its message "`reason` (`code`)".
    pub fn fail(mut self, code: u16, reason: &str) -> Self {
        self.status = StatusCode::from_u16(code).expect("a status code");
        self.answer = Answer::Json(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("{reason} ({code})"), "reason": reason, "code": code,
        }));
        self
    }

    /// The failure names the object, as the API server does for a missing
    /// object (not for a resource type it does not serve).
    pub fn about(self, name: &str) -> Self {
        self.set("details", json!({ "name": name }))
    }

    /// The failure's message.
    pub fn saying(self, message: &str) -> Self {
        self.set("message", json!(message))
    }

    fn set(mut self, key: &str, value: Value) -> Self {
        match &mut self.answer {
            Answer::Json(answer) => answer[key] = value,
            Answer::Echo => panic!("set {key} on a failure, not on an echo"),
        }
        self
    }

    async fn respond_to(self, request: Request<Body>, respond: mock::SendResponse<Response<Body>>) {
        let line = format!("{} {}", request.method(), path_and_query(&request));
        assert_eq!(
            (request.method(), path_and_query(&request).as_str()),
            (&self.method, self.uri.as_str()),
            "expected {} {}, got {line}",
            self.method,
            self.uri
        );
        if let Some(wanted) = self.content_type {
            let got = request.headers().get(http::header::CONTENT_TYPE);
            assert_eq!(
                got.and_then(|v| v.to_str().ok()),
                Some(wanted),
                "content type of {line}"
            );
        }
        let bytes = request.into_body().collect().await.expect("a request body").to_bytes();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{line}: body is not JSON: {e}"))
        };
        if let Some(check) = self.check {
            check(&body);
        }
        let answer = match self.answer {
            Answer::Echo => body,
            Answer::Json(value) => value,
        };
        let response = Response::builder()
            .status(self.status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&answer).expect("serializable")))
            .expect("a response");
        respond.send_response(response);
    }
}

/// The Release "web" in namespace "shop": 3 replicas of `web:1`, under `strategy`.
pub fn release(strategy: Value) -> Release {
    serde_json::from_value(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
        "metadata": { "name": "web", "namespace": "shop", "uid": "u-1", "generation": 1 },
        "spec": {
            "replicas": 3,
            "selector": { "matchLabels": { "app": "web" } },
            "template": { "metadata": { "labels": { "app": "web" } },
                          "spec": { "containers": [{ "name": "web", "image": "web:1" }] } },
            "strategy": strategy,
        }
    }))
    .expect("a valid Release")
}

/// The ReplicaSet serin builds for the Release's current template, `ready` of
/// its `replicas` pods ready and available.
pub fn replica_set(release: &Release, number: i64, replicas: i32, ready: i32) -> ReplicaSet {
    let revision = plan::revision::revision_of(&release.spec.template);
    let mut rs = replicaset::build(release, &revision, number, replicas);
    rs.status = Some(ReplicaSetStatus {
        replicas,
        ready_replicas: Some(ready),
        available_replicas: Some(ready),
        ..Default::default()
    });
    rs
}

pub const RELEASE: &str = "/apis/serin.dev/v1alpha1/namespaces/shop/releases/web";
pub const REPLICA_SETS: &str = "/apis/apps/v1/namespaces/shop/replicasets";
pub const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/shop/events";

/// The read of the Release at the start of every round (issue 15 drops it:
/// then only this helper and its callers change).
pub fn get_release(release: &Release) -> Exchange {
    Exchange::get(RELEASE).answer(release)
}

/// An Event recorded on the Release, with `reason`.
pub fn event(reason: &'static str) -> Exchange {
    Exchange::post(&format!("{EVENTS}?")).body(move |event| assert_eq!(event["reason"], reason, "{event}"))
}
