//! The fleet bench's measuring program (driven by e2e/bench-fleet.sh, `make bench-fleet`).
//!
//! `fleet run` measures one controller, already running, on one scenario: N
//! workloads created at once, then all given a new image at once, each timed
//! from its write to its completion as a watch reports it. Around each phase it
//! reads CPU time from /proc, and request counters from the API server's,
//! the controller's and kube-controller-manager's /metrics. One JSON file per run.
//!
//! `fleet report` turns a scenario's runs into one table with ratios.
mod metrics;
mod procfs;
mod record;
mod report;
mod tracker;
mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::json;

use record::{PhaseRecord, Run};
use tracker::Tracker;
use workload::{Controller, Scenario};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser)]
#[command(name = "fleet", about = "serin's fleet bench: see docs/benchmarks.md")]
enum Cli {
    /// Measure one running controller on one scenario; writes OUT/SCENARIO-CONTROLLER.json.
    Run(RunArgs),
    /// Print a scenario's table from its runs in OUT; writes OUT/SCENARIO.md and .json.
    Report(report::Args),
}

#[derive(clap::Args)]
struct RunArgs {
    #[arg(long, value_enum)]
    controller: Controller,
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Workloads.
    #[arg(long)]
    n: usize,
    /// Replicas of each workload.
    #[arg(long, default_value_t = 2)]
    replicas: i32,
    /// The controller's process (kube-controller-manager's for Deployments).
    #[arg(long)]
    pid: u32,
    /// The controller's own /metrics over plain HTTP (none for Deployments).
    #[arg(long)]
    metrics_url: Option<String>,
    /// NAMESPACE/NAME of the controller's Lease: measuring starts once it is held.
    #[arg(long)]
    lease: Option<String>,
    /// The cluster's data dir (pids/*.pid, pki/admin.*).
    #[arg(long, env = "SERIN_CLUSTER_DIR")]
    cluster_dir: PathBuf,
    /// kube-controller-manager's secure port, for its /metrics.
    #[arg(long, env = "SERIN_KCM_PORT", default_value_t = 10257)]
    kcm_port: u16,
    /// Where the run's JSON goes.
    #[arg(long)]
    out: PathBuf,
    /// Writes (creates, then patches) in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Each workload's progressDeadlineSeconds (the kinds' default, 600, when not given).
    #[arg(long)]
    progress_deadline_seconds: Option<i32>,
    /// Limit on each phase (default 300 s + 0.3 s per workload).
    #[arg(long)]
    timeout_seconds: Option<u64>,
}

/// The processes whose CPU time each phase records, besides the controller.
const CLUSTER_PROCESSES: [&str; 5] = [
    "kube-apiserver",
    "kube-controller-manager",
    "etcd",
    "kube-scheduler",
    "kwok",
];

struct Probes {
    client: Client,
    controller: Controller,
    controller_pid: u32,
    cluster_pids: BTreeMap<&'static str, u32>,
    metrics_url: Option<String>,
    kcm_url: String,
    kcm_http: reqwest::Client,
    http: reqwest::Client,
}

/// What the counters and CPU clocks said at one moment.
struct Snapshot {
    at: Instant,
    cpu: BTreeMap<String, f64>,
    apiserver: BTreeMap<String, f64>,
    controller: Option<BTreeMap<String, f64>>,
    kcm: Option<f64>,
}

impl Probes {
    async fn new(args: &RunArgs, client: Client) -> Result<Self, Error> {
        let mut cluster_pids = BTreeMap::new();
        for name in CLUSTER_PROCESSES {
            let file = args.cluster_dir.join("pids").join(format!("{name}.pid"));
            let pid = std::fs::read_to_string(&file)
                .map_err(|e| format!("{}: {e}", file.display()))?
                .trim()
                .parse()?;
            cluster_pids.insert(name, pid);
        }
        // kube-controller-manager serves /metrics on its secure port to an
        // authorized client: the admin certificate; its serving cert is self-signed.
        let pki = args.cluster_dir.join("pki");
        let mut pem = std::fs::read(pki.join("admin.crt"))?;
        pem.extend(std::fs::read(pki.join("admin.key"))?);
        let kcm_http = reqwest::Client::builder()
            .identity(reqwest::Identity::from_pem(&pem)?)
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            client,
            controller: args.controller,
            controller_pid: args.pid,
            cluster_pids,
            metrics_url: args.metrics_url.clone(),
            kcm_url: format!("https://127.0.0.1:{}/metrics", args.kcm_port),
            kcm_http,
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?,
        })
    }

    fn cpu(&self) -> BTreeMap<String, f64> {
        let mut cpu = BTreeMap::new();
        let own = (self.controller != Controller::Deployment).then_some(("controller", self.controller_pid));
        let bench = ("bench", std::process::id());
        for (name, pid) in self
            .cluster_pids
            .iter()
            .map(|(n, p)| (*n, *p))
            .chain(own)
            .chain([bench])
        {
            if let Some(seconds) = procfs::cpu_seconds(pid) {
                cpu.insert(name.to_string(), seconds);
            }
        }
        if self.controller == Controller::Deployment
            && let Some(kcm) = cpu.get("kube-controller-manager").copied()
        {
            cpu.insert("controller".into(), kcm);
        }
        cpu
    }

    async fn text(&self, http: &reqwest::Client, url: &str) -> Option<String> {
        let response = http.get(url).send().await.ok()?.error_for_status().ok()?;
        response.text().await.ok()
    }

    /// The controller's own request counter, by verb (and kind, for Argo).
    async fn controller_requests(&self) -> Option<BTreeMap<String, f64>> {
        let text = match (self.controller, &self.metrics_url) {
            (Controller::Deployment, _) => return self.kcm_requests_by_method().await,
            (_, Some(url)) => self.text(&self.http, url).await?,
            (_, None) => return None,
        };
        Some(match self.controller {
            Controller::Serin => metrics::requests_by(&text, "serin_kube_requests_total", &["verb"]),
            _ => metrics::requests_by(&text, "controller_clientset_k8s_request_total", &["verb", "kind"]),
        })
    }

    async fn kcm_requests_by_method(&self) -> Option<BTreeMap<String, f64>> {
        let text = self.text(&self.kcm_http, &self.kcm_url).await?;
        Some(metrics::requests_by(&text, "rest_client_requests_total", &["method"]))
    }

    async fn apiserver(&self) -> Result<BTreeMap<String, f64>, Error> {
        let request = http::Request::get("/metrics").body(Vec::new())?;
        Ok(metrics::apiserver_requests(&self.client.request_text(request).await?))
    }

    /// At a phase's start: counters first, then the clocks, so that reading
    /// /metrics is not charged to the phase; at its end, the other way round.
    async fn start(&self) -> Result<Snapshot, Error> {
        let (apiserver, controller, kcm) = self.counters().await?;
        Ok(Snapshot {
            at: Instant::now(),
            cpu: self.cpu(),
            apiserver,
            controller,
            kcm,
        })
    }

    async fn end(&self) -> Result<Snapshot, Error> {
        let (at, cpu) = (Instant::now(), self.cpu());
        let (apiserver, controller, kcm) = self.counters().await?;
        Ok(Snapshot {
            at,
            cpu,
            apiserver,
            controller,
            kcm,
        })
    }

    #[allow(clippy::type_complexity)]
    async fn counters(&self) -> Result<(BTreeMap<String, f64>, Option<BTreeMap<String, f64>>, Option<f64>), Error> {
        let apiserver = self.apiserver().await?;
        let controller = self.controller_requests().await;
        let kcm = self.kcm_requests_by_method().await.map(|m| m.values().sum());
        Ok((apiserver, controller, kcm))
    }
}

/// Blocks until the controller's /metrics answers, up to a minute.
async fn wait_for_metrics(probes: &Probes) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while probes.controller_requests().await.is_none() {
        if Instant::now() > deadline {
            return Err(format!("{}'s /metrics did not answer within 60 s", probes.controller.name()).into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

/// Blocks until the Lease has a holder, up to a minute.
async fn wait_for_lease(client: &Client, lease: &str) -> Result<(), Error> {
    let (ns, name) = lease.split_once('/').ok_or("--lease is NAMESPACE/NAME")?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let held = leases.get_opt(name).await?.and_then(|l| l.spec?.holder_identity);
        if held.is_some_and(|h| !h.is_empty()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("nobody holds the Lease {lease} after 60 s").into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn fresh_namespace(client: &Client, name: &str, limit: Duration) -> Result<(), Error> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    delete_namespace(client, name, limit).await?;
    let namespace: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } }))?;
    namespaces.create(&PostParams::default(), &namespace).await?;
    Ok(())
}

/// Deletes the namespace and waits until it is gone (one GET a second).
async fn delete_namespace(client: &Client, name: &str, limit: Duration) -> Result<(), Error> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let deadline = Instant::now() + limit;
    let _ = namespaces.delete(name, &DeleteParams::background()).await;
    while namespaces.get_opt(name).await?.is_some() {
        if Instant::now() > deadline {
            return Err(format!("namespace {name} still there after {limit:?}").into());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}

/// Watches the namespace's workloads into the tracker until dropped.
async fn watch(controller: Controller, api: Api<DynamicObject>, tracker: Arc<Mutex<Tracker>>) -> Result<(), Error> {
    let mut events = watcher(api, watcher::Config::default()).default_backoff().boxed();
    while let Some(event) = events.next().await {
        let object = match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o,
            Ok(watcher::Event::InitDone) => {
                lock(&tracker).watching = true;
                continue;
            }
            Ok(_) => continue,
            Err(error) => {
                eprintln!("fleet: watch error (retrying): {error}");
                continue;
            }
        };
        let (Some(name), Some(generation)) = (object.metadata.name.clone(), object.metadata.generation) else {
            continue;
        };
        let complete = workload::complete(controller, &object);
        lock(&tracker).observed(&name, generation, complete, Instant::now());
    }
    Ok(())
}

fn lock(tracker: &Mutex<Tracker>) -> std::sync::MutexGuard<'_, Tracker> {
    tracker.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `write` for every workload, CONCURRENCY at a time, telling the tracker
/// the generation each write produced; then waits until all are complete.
async fn phase<F, Fut>(
    probes: &Probes,
    tracker: &Arc<Mutex<Tracker>>,
    names: &[String],
    concurrency: usize,
    limit: Duration,
    peak: &procfs::PeakRss,
    write: F,
) -> Result<PhaseRecord, Error>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<DynamicObject, kube::Error>>,
{
    lock(tracker).begin();
    peak.take(probes.controller_pid);
    let before = probes.start().await?;
    futures::stream::iter(names.iter().cloned())
        .map(|name| {
            let write = &write;
            async move {
                let object = retried(|| write(name.clone())).await?;
                let generation = object.metadata.generation.unwrap_or(1);
                lock(tracker).written(&name, generation, Instant::now());
                Ok::<_, kube::Error>(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    let writes_done = before.at.elapsed();
    let deadline = before.at + limit;
    while lock(tracker).done() < names.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = probes.end().await?;
    let completions = lock(tracker).completions();
    Ok(record::phase(
        names.len(),
        &completions,
        &before,
        &after,
        writes_done,
        peak.take(probes.controller_pid),
    ))
}

fn after(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| " (timed out)".into(), |s| format!(" after {s:.1} s"))
}

/// A write, retried a few times: one refused write among thousands (a
/// timeout, a 429) should not end a long run.
async fn retried<F, Fut>(write: F) -> Result<DynamicObject, kube::Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<DynamicObject, kube::Error>>,
{
    const ATTEMPTS: u32 = 5;
    let mut attempt = 1;
    loop {
        match write().await {
            Ok(object) => return Ok(object),
            Err(error) if attempt < ATTEMPTS => {
                eprintln!("fleet: write failed (attempt {attempt} of {ATTEMPTS}): {error}");
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

async fn run(args: RunArgs) -> Result<bool, Error> {
    let client = Client::try_default().await?;
    let probes = Probes::new(&args, client.clone()).await?;
    let limit = Duration::from_secs(args.timeout_seconds.unwrap_or(300 + args.n as u64 * 3 / 10));
    let (controller, scenario) = (args.controller, args.scenario);
    let ns = format!("fleet-{}-{}", controller.name(), scenario.name());
    eprintln!(
        "fleet: {} {} N={} replicas={} in namespace {ns}",
        controller.name(),
        scenario.name(),
        args.n,
        args.replicas
    );

    wait_for_metrics(&probes).await?;
    if let Some(lease) = &args.lease {
        wait_for_lease(&client, lease).await?;
    }
    procfs::settle(args.pid).await;
    let idle_rss_kib = procfs::resting_rss_kib(args.pid).await;
    let peak = procfs::PeakRss::start(args.pid);

    fresh_namespace(&client, &ns, limit).await?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &controller.resource());
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let watching = tokio::spawn(watch(controller, api.clone(), tracker.clone()));
    while !lock(&tracker).watching {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let names: Vec<String> = (0..args.n).map(|i| format!("app-{i}")).collect();
    let create = phase(&probes, &tracker, &names, args.concurrency, limit, &peak, |name| {
        let api = api.clone();
        async move {
            let object = workload::manifest(
                controller,
                scenario,
                &name,
                args.replicas,
                args.progress_deadline_seconds,
            )
            .map_err(kube::Error::SerdeError)?;
            match api.create(&PostParams::default(), &object).await {
                // A retry of a create that went through after all.
                Err(kube::Error::Api(status)) if status.code == 409 => api.get(&name).await,
                result => result,
            }
        }
    })
    .await?;
    eprintln!(
        "fleet: created; {} of {} complete{}",
        create.completed,
        args.n,
        after(create.seconds)
    );

    procfs::settle(args.pid).await;
    let steady_rss_kib = procfs::resting_rss_kib(args.pid).await;

    let patch = workload::new_image_patch();
    let update = phase(&probes, &tracker, &names, args.concurrency, limit, &peak, |name| {
        let (api, patch) = (api.clone(), patch.clone());
        async move { api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await }
    })
    .await?;
    eprintln!(
        "fleet: updated; {} of {} complete{}",
        update.completed,
        args.n,
        after(update.seconds)
    );
    watching.abort();

    let run = Run {
        controller,
        scenario,
        n: args.n,
        replicas: args.replicas,
        idle_rss_kib,
        steady_rss_kib,
        create,
        update,
    };
    let complete = run.create.completed == args.n && run.update.completed == args.n;
    std::fs::create_dir_all(&args.out)?;
    let file = args.out.join(format!("{}-{}.json", scenario.name(), controller.name()));
    std::fs::write(&file, serde_json::to_string_pretty(&run)?)?;
    eprintln!("fleet: wrote {}", file.display());

    delete_namespace(&client, &ns, limit).await?;
    Ok(complete)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let result = match Cli::parse() {
        Cli::Run(args) => run(args).await,
        Cli::Report(args) => report::run(&args),
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(error) => {
            eprintln!("fleet: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
