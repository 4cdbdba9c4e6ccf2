//! A metrics source the test controls: per-revision request and error counters
//! in the Prometheus text format, plus a JSON endpoint for the web provider.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Counters grow at 100 requests a second per revision; errors at `ratio` of that.
#[derive(Clone)]
pub struct MetricsSource {
    pub address: String,
    ratios: Arc<Mutex<BTreeMap<String, f64>>>,
    sides: Arc<Mutex<Sides>>,
    target_file: PathBuf,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl MetricsSource {
    /// Starts serving, and registers with the test bed's Prometheus (file_sd)
    /// under the label `namespace=<namespace>`.
    pub async fn start(namespace: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let ratios: Arc<Mutex<BTreeMap<String, f64>>> = Arc::default();
        let sides: Arc<Mutex<Sides>> = Arc::default();
        let started = Instant::now();
        let state = ratios.clone();
        let side_state = sides.clone();
        let flaky = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let state = state.clone();
                let side_state = side_state.clone();
                let flaky = flaky.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 4096];
                    let n = socket.read(&mut buffer).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buffer[..n]);
                    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let seconds = started.elapsed().as_secs_f64();
                    let ratios = state.lock().unwrap().clone();
                    // Every other request to /flaky/<revision> fails with a 500.
                    let mut status = "200 OK";
                    let path = match path.strip_prefix("/flaky/") {
                        Some(revision) => {
                            if flaky.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 2 == 1 {
                                status = "500 Internal Server Error";
                            }
                            format!("/health/{revision}")
                        }
                        None => path,
                    };
                    let (content_type, body) = if let Some(revision) = path.strip_prefix("/health/") {
                        let ratio = ratios.get(revision).copied();
                        (
                            "application/json",
                            serde_json::json!({ "revision": revision, "errorRate": ratio }).to_string(),
                        )
                    } else {
                        let sides = side_state.lock().unwrap().clone();
                        let body = exposition(&ratios, seconds) + &side_exposition(&sides, seconds);
                        ("text/plain; version=0.0.4", body)
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        let targets =
            std::env::var("SERIN_PROMETHEUS_TARGETS").expect("SERIN_PROMETHEUS_TARGETS (run through make e2e)");
        let target_file = PathBuf::from(targets).join(format!("{namespace}.json"));
        let target = serde_json::json!([{ "targets": [address], "labels": { "namespace": namespace } }]);
        std::fs::write(&target_file, target.to_string()).unwrap();
        Self {
            address,
            ratios,
            sides,
            target_file,
            task: Arc::new(task),
        }
    }

    /// Sets the error ratio of a revision (and starts exporting it).
    pub fn set_error_ratio(&self, revision: &str, ratio: f64) {
        self.ratios.lock().unwrap().insert(revision.to_string(), ratio);
    }

    /// Exports `judge_*` series for `revision` labelled `role` (as a judge
    /// query tells canary from baseline): 2,000 requests a second, errors at
    /// `ratio` of them, and a latency gauge that moves alike on every side.
    pub fn set_side(&self, revision: &str, role: &str, ratio: f64) {
        self.sides
            .lock()
            .unwrap()
            .insert((revision.to_string(), role.to_string()), ratio);
    }

    /// The file_sd target, for a Prometheus of the test's own.
    pub fn target_file(&self) -> &PathBuf {
        &self.target_file
    }
}

impl Drop for MetricsSource {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
            let _ = std::fs::remove_file(&self.target_file);
        }
    }
}

fn exposition(ratios: &BTreeMap<String, f64>, seconds: f64) -> String {
    let mut out = String::from("# TYPE http_requests_total counter\n# TYPE http_errors_total counter\n");
    for (revision, ratio) in ratios {
        let requests = (seconds * 100.0).floor();
        out += &format!("http_requests_total{{revision=\"{revision}\"}} {requests}\n");
        out += &format!(
            "http_errors_total{{revision=\"{revision}\"}} {}\n",
            (requests * ratio).floor()
        );
    }
    out
}

/// Error ratios by (revision, role).
type Sides = BTreeMap<(String, String), f64>;

fn side_exposition(sides: &Sides, seconds: f64) -> String {
    let mut out = String::from(
        "# TYPE judge_requests_total counter\n# TYPE judge_errors_total counter\n# TYPE judge_latency_seconds gauge\n",
    );
    let requests = (seconds * 2000.0).floor();
    let latency = 0.1 + 0.01 * (seconds.floor() % 5.0);
    for ((revision, role), ratio) in sides {
        let labels = format!("revision=\"{revision}\",role=\"{role}\"");
        out += &format!("judge_requests_total{{{labels}}} {requests}\n");
        out += &format!("judge_errors_total{{{labels}}} {}\n", (requests * ratio).floor());
        out += &format!("judge_latency_seconds{{{labels}}} {latency}\n");
    }
    out
}

/// The error ratio of the canary revision over the last 5 s, from one test's source.
pub const ERROR_RATIO_QUERY: &str = "sum(rate(http_errors_total{namespace=\"{{args.release.namespace}}\",revision=\"{{args.revision.canary}}\"}[5s])) / sum(rate(http_requests_total{namespace=\"{{args.release.namespace}}\",revision=\"{{args.revision.canary}}\"}[5s]))";

/// The test bed's Prometheus, as `make e2e` passes it.
pub fn prometheus_url() -> String {
    std::env::var("SERIN_PROMETHEUS_URL").expect("SERIN_PROMETHEUS_URL (run through make e2e)")
}

/// The first sample of an instant query to the test bed's Prometheus.
pub async fn prometheus_value(query: &str) -> Option<f64> {
    let url = prometheus_url();
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!("{url}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}
