//! serin's demo app: a small HTTP service to roll out on kind, under Tilt and in the docs.
//!
//! ```text
//! GET /         200 "serin-demo <VERSION> on <hostname>", or 500 for the ERROR_RATE share of requests
//! GET /healthz  200 while the process runs
//! GET /readyz   503 for the first READY_DELAY_SECONDS, then 200
//! GET /metrics  Prometheus text format:
//!                 http_requests_total{code}                     requests to `/` by status code
//!                 http_request_duration_seconds{code}           their duration (histogram)
//!                 serin_demo_info{version}                      always 1
//! ```
//!
//! Only `/` is counted in the request metrics, so probes and scrapes never dilute an error ratio
//! such as `sum(rate(http_requests_total{code="500"}[1m])) / sum(rate(http_requests_total[1m]))`.
//!
//! Settings come from the environment, or from flags that win over it (`--app-version`,
//! `--error-rate`, `--latency-ms`, `--port`, `--ready-delay-seconds`):
//!
//! | variable              | default | meaning                                                    |
//! |-----------------------|---------|------------------------------------------------------------|
//! | `VERSION`             | `v1`    | the version `/` reports                                    |
//! | `ERROR_RATE`          | `0`     | fraction of `/` requests answered 500, 0.0 to 1.0          |
//! | `LATENCY_MS`          | `0`     | delay added to every `/` request                           |
//! | `PORT`                | `8080`  | listening port, on all IPv4 addresses                      |
//! | `READY_DELAY_SECONDS` | `0`     | `/readyz` answers 503 until this long after the start      |
//!
//! Errors are not random: request n (counting from 1 since the start) fails when
//! `floor(n * ERROR_RATE)` grows at n, so after any n requests exactly `floor(n * ERROR_RATE)`
//! have failed, spread evenly (0.25 fails the 4th, 8th, 12th... request).
//!
//! SIGTERM or Ctrl-C stops accepting connections, lets requests in flight finish (for up to
//! 20 s), then exits 0.
//!
//! ```sh
//! VERSION=v2 ERROR_RATE=0.1 LATENCY_MS=20 cargo run --example demo_app
//! curl localhost:8080/ ; curl -s localhost:8080/metrics | grep http_requests_total
//! ```
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long requests in flight may take to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// The header that carries the version on every `/` answer, for scripts that count versions.
const VERSION_HEADER: &str = "x-serin-demo-version";

#[derive(Parser, Clone, Debug)]
#[command(name = "demo_app", about = "serin's demo HTTP service")]
struct Config {
    /// The version `/` reports.
    #[arg(long = "app-version", env = "VERSION", default_value = "v1")]
    version: String,
    /// Fraction of `/` requests answered 500, from 0.0 to 1.0.
    #[arg(long, env = "ERROR_RATE", default_value_t = 0.0, value_parser = parse_fraction)]
    error_rate: f64,
    /// Milliseconds added to every `/` request.
    #[arg(long, env = "LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,
    /// Listening port.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    port: u16,
    /// Seconds after the start during which `/readyz` answers 503.
    #[arg(long, env = "READY_DELAY_SECONDS", default_value_t = 0)]
    ready_delay_seconds: u64,
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|e| format!("{text:?} is not a number: {e}"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{text} is not between 0.0 and 1.0"))
    }
}

/// Which requests to `/` fail. The rate is kept in millionths (integer arithmetic, no drift).
#[derive(Clone, Copy, Debug)]
struct ErrorSchedule {
    per_million: u128,
}

impl ErrorSchedule {
    const SCALE: u128 = 1_000_000;

    fn new(rate: f64) -> Self {
        let per_million = (rate.clamp(0.0, 1.0) * Self::SCALE as f64).round() as u128;
        Self { per_million }
    }

    /// Whether request `n` (counting from 1) fails: it does when `floor(n * rate)` grows at n.
    fn fails(self, n: u64) -> bool {
        let n = u128::from(n);
        n > 0 && n * self.per_million / Self::SCALE > (n - 1) * self.per_million / Self::SCALE
    }
}

struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl Metrics {
    fn new(version: &str) -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "Requests to / by status code."),
            &["code"],
        )
        .expect("a valid counter");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Duration of requests to / by status code.",
            ),
            &["code"],
        )
        .expect("a valid histogram");
        let info = IntGauge::with_opts(
            Opts::new("serin_demo_info", "The demo app's version, as a label; always 1.")
                .const_label("version", version),
        )
        .expect("a valid gauge");
        info.set(1);
        // Both codes exist from the start, so a rate() over them is 0 rather than missing.
        for code in ["200", "500"] {
            requests.with_label_values(&[code]);
            duration.with_label_values(&[code]);
        }
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(info),
        ] {
            registry.register(collector).expect("distinct metric names");
        }
        Self {
            registry,
            requests,
            duration,
        }
    }

    fn render(&self) -> Vec<u8> {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("the text format encodes every metric");
        buffer
    }
}

/// The state shared by every connection.
struct App {
    config: Config,
    hostname: String,
    schedule: ErrorSchedule,
    started: Instant,
    served: AtomicU64,
    metrics: Metrics,
}

impl App {
    fn new(config: Config) -> Self {
        Self {
            hostname: hostname(),
            schedule: ErrorSchedule::new(config.error_rate),
            started: Instant::now(),
            served: AtomicU64::new(0),
            metrics: Metrics::new(&config.version),
            config,
        }
    }

    fn ready(&self) -> bool {
        self.started.elapsed() >= Duration::from_secs(self.config.ready_delay_seconds)
    }

    async fn root(&self) -> Response<Full<Bytes>> {
        let start = Instant::now();
        let n = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        if self.config.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.config.latency_ms)).await;
        }
        let (version, host) = (&self.config.version, &self.hostname);
        let (status, body) = if self.schedule.fails(n) {
            let rate = self.config.error_rate;
            let body = format!("serin-demo {version} on {host}: injected error (ERROR_RATE={rate})\n");
            (StatusCode::INTERNAL_SERVER_ERROR, body)
        } else {
            (StatusCode::OK, format!("serin-demo {version} on {host}\n"))
        };
        let code = status.as_str();
        self.metrics.requests.with_label_values(&[code]).inc();
        self.metrics
            .duration
            .with_label_values(&[code])
            .observe(start.elapsed().as_secs_f64());
        let mut response = text(status, body);
        if let Ok(value) = HeaderValue::from_str(version) {
            response.headers_mut().insert(VERSION_HEADER, value);
        }
        response
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        match request.uri().path() {
            "/" => self.root().await,
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" if self.ready() => text(StatusCode::OK, "ready\n"),
            "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready yet\n"),
            "/metrics" => {
                let mut response = Response::new(Full::new(Bytes::from(self.metrics.render())));
                let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
                response.headers_mut().insert(CONTENT_TYPE, content_type);
                response
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let content_type = HeaderValue::from_static("text/plain; charset=utf-8");
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response
}

/// The pod's name in Kubernetes (the runtime sets HOSTNAME), else the kernel's host name.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Serves HTTP/1 on `listener` until `shutdown` completes, then closes the listener and lets
/// requests in flight finish (idle keep-alive connections close at once) for up to DRAIN_TIMEOUT.
async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let (drain, draining) = watch::channel(());
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let app = app.clone();
                let mut draining = draining.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(app.handle(request).await) }
                    });
                    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(connection);
                    let result = tokio::select! {
                        result = connection.as_mut() => result,
                        _ = draining.changed() => {
                            connection.as_mut().graceful_shutdown();
                            connection.as_mut().await
                        }
                    };
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    let in_flight = connections.len();
    tracing::info!(
        in_flight,
        "shutting down: no new connections, letting requests in flight finish"
    );
    drain.send_replace(());
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            remaining = connections.len(),
            "drain timeout: dropping the remaining connections"
        );
        connections.shutdown().await;
    }
}

/// Completes on SIGTERM (what the kubelet sends) or SIGINT (Ctrl-C).
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install a SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // Plain text in containers and files, colours on a terminal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).init();
    let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], config.port))).await?;
    tracing::info!(
        address = %listener.local_addr()?,
        version = %config.version,
        error_rate = config.error_rate,
        latency_ms = config.latency_ms,
        ready_delay_seconds = config.ready_delay_seconds,
        "serin-demo listening"
    );
    serve(listener, Arc::new(App::new(config)), terminated()).await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    fn config() -> Config {
        Config {
            version: "v7".to_string(),
            error_rate: 0.0,
            latency_ms: 0,
            port: 0,
            ready_delay_seconds: 0,
        }
    }

    /// A server on 127.0.0.1 with an ephemeral port, stopped by `stop`.
    struct Server {
        base: String,
        app: Arc<App>,
        stop: Option<oneshot::Sender<()>>,
        task: JoinHandle<()>,
        http: reqwest::Client,
    }

    impl Server {
        async fn start(config: Config) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let (stop, stopped) = oneshot::channel::<()>();
            let app = Arc::new(App::new(config));
            let task = tokio::spawn(serve(listener, app.clone(), async {
                let _ = stopped.await;
            }));
            // No proxy from the environment may stand between the test and 127.0.0.1.
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            Self {
                base,
                app,
                stop: Some(stop),
                task,
                http,
            }
        }

        async fn get(&self, path: &str) -> (u16, String) {
            let response = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }

        /// Sends the shutdown signal and waits for `serve` to return.
        async fn stop(mut self) {
            self.stop.take().unwrap().send(()).unwrap();
            tokio::time::timeout(Duration::from_secs(5), &mut self.task)
                .await
                .expect("serve returns after the shutdown signal")
                .unwrap();
        }
    }

    /// The value of one sample line of the text format, e.g. `http_requests_total{code="500"}`.
    fn sample(metrics: &str, series: &str) -> Option<f64> {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    }

    #[test]
    fn errors_after_n_requests_are_exactly_the_floor_of_n_times_the_rate() {
        for (numerator, denominator) in [
            (0u64, 1u64),
            (1, 1000),
            (1, 20),
            (1, 10),
            (1, 4),
            (1, 2),
            (9, 10),
            (1, 1),
        ] {
            let schedule = ErrorSchedule::new(numerator as f64 / denominator as f64);
            let mut failed = 0;
            for n in 1..=2000u64 {
                failed += u64::from(schedule.fails(n));
                assert_eq!(
                    failed,
                    n * numerator / denominator,
                    "rate {numerator}/{denominator} after {n}"
                );
            }
        }
    }

    #[test]
    fn errors_are_spread_evenly() {
        let failing = |rate: f64| {
            let schedule = ErrorSchedule::new(rate);
            (1..=12).filter(|&n| schedule.fails(n)).collect::<Vec<_>>()
        };
        assert_eq!(failing(0.0), Vec::<u64>::new());
        assert_eq!(failing(0.25), [4, 8, 12]);
        assert_eq!(failing(0.5), [2, 4, 6, 8, 10, 12]);
        assert_eq!(failing(1.0), (1..=12).collect::<Vec<_>>());
        assert!(!ErrorSchedule::new(1.0).fails(0), "there is no request 0");
    }

    #[test]
    fn error_rate_must_be_a_fraction() {
        assert_eq!(parse_fraction("0.3"), Ok(0.3));
        assert_eq!(parse_fraction(" 1 "), Ok(1.0));
        for bad in ["1.5", "-0.1", "NaN", "ten", ""] {
            assert!(parse_fraction(bad).is_err(), "{bad:?} is accepted");
        }
        let flags = |args: &[&str]| Config::try_parse_from([&["demo_app"], args].concat());
        let parsed = flags(&[
            "--app-version",
            "v3",
            "--error-rate",
            "0.2",
            "--latency-ms",
            "5",
            "--port",
            "9000",
        ]);
        let parsed = parsed.unwrap();
        assert_eq!(
            (
                parsed.version.as_str(),
                parsed.error_rate,
                parsed.latency_ms,
                parsed.port
            ),
            ("v3", 0.2, 5, 9000)
        );
        assert!(flags(&["--error-rate", "2"]).is_err());
    }

    #[tokio::test]
    async fn root_reports_its_version_and_host() {
        let server = Server::start(config()).await;
        let response = server.http.get(format!("{}/", server.base)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[VERSION_HEADER], "v7");
        assert_eq!(
            response.text().await.unwrap(),
            format!("serin-demo v7 on {}\n", hostname())
        );
        assert_eq!(server.get("/nope").await.0, 404);
        server.stop().await;
    }

    #[tokio::test]
    async fn root_fails_on_schedule_and_metrics_count_by_code() {
        let server = Server::start(Config {
            error_rate: 0.5,
            ..config()
        })
        .await;
        let mut codes = Vec::new();
        for _ in 0..10 {
            codes.push(server.get("/").await.0);
        }
        assert_eq!(codes, [200, 500, 200, 500, 200, 500, 200, 500, 200, 500]);
        // Probes and scrapes are not counted.
        server.get("/healthz").await;
        server.get("/metrics").await;
        let (status, metrics) = server.get("/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(
            sample(&metrics, r#"http_requests_total{code="200"}"#),
            Some(5.0),
            "{metrics}"
        );
        assert_eq!(
            sample(&metrics, r#"http_requests_total{code="500"}"#),
            Some(5.0),
            "{metrics}"
        );
        assert_eq!(
            sample(&metrics, r#"http_request_duration_seconds_count{code="500"}"#),
            Some(5.0)
        );
        assert_eq!(sample(&metrics, r#"serin_demo_info{version="v7"}"#), Some(1.0));
        server.stop().await;
    }

    #[tokio::test]
    async fn metrics_start_at_zero_for_both_codes() {
        let server = Server::start(config()).await;
        let (_, metrics) = server.get("/metrics").await;
        assert_eq!(
            sample(&metrics, r#"http_requests_total{code="200"}"#),
            Some(0.0),
            "{metrics}"
        );
        assert_eq!(
            sample(&metrics, r#"http_requests_total{code="500"}"#),
            Some(0.0),
            "{metrics}"
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn probes() {
        let server = Server::start(config()).await;
        assert_eq!(server.get("/healthz").await, (200, "ok\n".to_string()));
        assert_eq!(server.get("/readyz").await.0, 200);
        server.stop().await;

        let slow = Server::start(Config {
            ready_delay_seconds: 2,
            ..config()
        })
        .await;
        assert_eq!(slow.get("/healthz").await.0, 200, "alive while not ready");
        assert_eq!(slow.get("/readyz").await.0, 503);
        let ready_at = slow.app.started + Duration::from_secs(2);
        tokio::time::sleep_until(tokio::time::Instant::from_std(ready_at)).await;
        assert_eq!(slow.get("/readyz").await.0, 200);
        slow.stop().await;
    }

    #[tokio::test]
    async fn latency_is_added_to_root() {
        let server = Server::start(Config {
            latency_ms: 150,
            ..config()
        })
        .await;
        let start = Instant::now();
        assert_eq!(server.get("/").await.0, 200);
        assert!(
            start.elapsed() >= Duration::from_millis(150),
            "took {:?}",
            start.elapsed()
        );
        let (_, metrics) = server.get("/metrics").await;
        let sum = sample(&metrics, r#"http_request_duration_seconds_sum{code="200"}"#).unwrap();
        assert!(sum >= 0.15, "duration sum {sum}");
        server.stop().await;
    }

    #[tokio::test]
    async fn shutdown_finishes_requests_in_flight_and_refuses_new_ones() {
        let server = Server::start(Config {
            latency_ms: 500,
            ..config()
        })
        .await;
        let (http, url) = (server.http.clone(), format!("{}/", server.base));
        let in_flight = tokio::spawn(async move { http.get(url).send().await.map(|r| r.status().as_u16()) });
        // Stop once the server is inside the request (its 500 ms of latency).
        while server.app.served.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let base = server.base.clone();
        let http = server.http.clone();
        server.stop().await;
        assert_eq!(
            in_flight.await.unwrap().unwrap(),
            200,
            "the request in flight completes"
        );
        assert!(
            http.get(format!("{base}/healthz")).send().await.is_err(),
            "the listener is closed"
        );
    }
}
