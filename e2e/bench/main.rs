//! Measurements on the cluster KUBECONFIG points at (`make bench`):
//! 1. a 10-replica rolling update by serin, against a Deployment with the same
//!    maxSurge/maxUnavailable on the same cluster, as a time ratio;
//! 2. the controller's resident memory with 100 Releases;
//! 3. the controller's CPU and memory with 100 analyses measuring every second.
//!
//! Figures, not pass/fail: they are printed, one per line.
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use serin::api::{Phase, Release};

const REPLICAS: i32 = 10;
const ROUNDS: usize = 3;

fn template(image: &str) -> Value {
    json!({
        "metadata": { "labels": { "app": "web" }, "annotations": { "serin.dev/ready-delay": "1s" } },
        "spec": { "containers": [{ "name": "web", "image": image }] }
    })
}

async fn namespace(client: &Client, name: &str) -> Api<Namespace> {
    let api: Api<Namespace> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::default()).await;
    while api.get_opt(name).await.ok().flatten().is_some() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
    api.create(&PostParams::default(), &ns).await.unwrap();
    api
}

async fn poll<F, Fut>(limit: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates `object`, waits until it is done with generation 1, then changes its
/// template ROUNDS times and returns the mean time until `done` holds again.
async fn mean_rollout<K>(api: Api<K>, object: &K, done: fn(&K, i64) -> bool) -> Duration
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    api.create(&PostParams::default(), object).await.unwrap();
    let complete = |generation: i64| {
        let api = api.clone();
        move || {
            let api = api.clone();
            async move { api.get("web").await.is_ok_and(|o| done(&o, generation)) }
        }
    };
    poll(Duration::from_secs(60), complete(1)).await;
    let mut total = Duration::ZERO;
    for round in 1..=ROUNDS {
        let started = Instant::now();
        let patch = json!({ "spec": { "template": template(&format!("web:{round}")) } });
        let changed = api
            .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        poll(Duration::from_secs(120), complete(changed.meta().generation.unwrap())).await;
        total += started.elapsed();
    }
    total / ROUNDS as u32
}

async fn deployment_rollout(client: &Client, ns: &str) -> Duration {
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": REPLICAS, "selector": { "matchLabels": { "app": "web" } }, "template": template("web:0"),
            "strategy": { "rollingUpdate": { "maxSurge": "25%", "maxUnavailable": "25%" } }
        }
    }))
    .unwrap();
    mean_rollout(Api::namespaced(client.clone(), ns), &deployment, |d, generation| {
        let s = d.status.clone().unwrap_or_default();
        s.observed_generation == Some(generation)
            && s.updated_replicas == Some(REPLICAS)
            && s.available_replicas == Some(REPLICAS)
            && s.replicas == Some(REPLICAS)
    })
    .await
}

async fn release_rollout(client: &Client, ns: &str) -> Duration {
    let release: Release = serde_json::from_value(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Release", "metadata": { "name": "web" },
        "spec": {
            "replicas": REPLICAS, "selector": { "matchLabels": { "app": "web" } }, "template": template("web:0"),
            "strategy": { "rolling": { "maxSurge": "25%", "maxUnavailable": "25%" } }
        }
    }))
    .unwrap();
    mean_rollout(Api::namespaced(client.clone(), ns), &release, |r, generation| {
        let s = r.status.clone().unwrap_or_default();
        s.observed_generation == Some(generation) && s.phase == Some(Phase::Healthy)
    })
    .await
}

/// CPU seconds (user + system) the process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields
        .get(11..13)
        .into_iter()
        .flatten()
        .filter_map(|f| f.parse::<f64>().ok())
        .sum();
    ticks / 100.0 // USER_HZ
}

/// Rolls all 100 Releases to a new template whose analysis never finishes
/// (a huge count) and measures the controller while the analyses run.
async fn analyses_cost(client: &Client, ns: &str, count: usize, pid: u32, prometheus: &str) -> (f64, u64) {
    let api: Api<Release> = Api::namespaced(client.clone(), ns);
    let analysis = json!({ "metrics": [{
        "name": "up", "interval": "1s", "count": 1_000_000, "successCondition": "result[0] < 0.05",
        "provider": { "prometheus": { "address": prometheus, "query": "sum(up{job=\"prometheus\"}) * 0" } }
    }] });
    for i in 0..count {
        let patch = json!({ "spec": {
            "template": { "spec": { "containers": [{ "name": "app", "image": "app:2" }] } },
            "strategy": { "rolling": { "analysis": analysis } }
        } });
        api.patch(&format!("app-{i}"), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    poll(Duration::from_secs(300), || {
        let api = api.clone();
        async move {
            let list = api
                .list(&ListParams::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            let measuring = list.iter().filter(|r| {
                let metrics = r
                    .status
                    .as_ref()
                    .and_then(|s| s.analysis.as_ref())
                    .map(|a| a.metrics.clone());
                metrics.and_then(|m| m.first().map(|m| m.count >= 3)).unwrap_or(false)
            });
            measuring.count() == count
        }
    })
    .await;
    let window = Duration::from_secs(30);
    let (cpu_before, started) = (cpu_seconds(pid), Instant::now());
    tokio::time::sleep(window).await;
    let cpu = (cpu_seconds(pid) - cpu_before) / started.elapsed().as_secs_f64();
    (cpu, rss_kib(pid))
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

async fn controller_rss_with_releases(client: &Client, ns: &str, count: usize, pid: u32) -> (u64, u64) {
    let api: Api<Release> = Api::namespaced(client.clone(), ns);
    let idle = rss_kib(pid);
    for i in 0..count {
        let release: Release = serde_json::from_value(json!({
            "apiVersion": "serin.dev/v1alpha1", "kind": "Release", "metadata": { "name": format!("app-{i}") },
            "spec": {
                "replicas": 2, "selector": { "matchLabels": { "app": format!("app-{i}") } },
                "template": {
                    "metadata": { "labels": { "app": format!("app-{i}") } },
                    "spec": { "containers": [{ "name": "app", "image": "app:1" }] }
                },
                "strategy": { "rolling": {} }
            }
        }))
        .unwrap();
        api.create(&PostParams::default(), &release).await.unwrap();
    }
    poll(Duration::from_secs(300), || {
        let api = api.clone();
        async move {
            let list = api
                .list(&ListParams::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            list.iter()
                .filter(|r| r.status.as_ref().and_then(|s| s.phase) == Some(Phase::Healthy))
                .count()
                == count
        }
    })
    .await;
    (idle, rss_kib(pid))
}

#[tokio::main]
async fn main() {
    let client = Client::try_default()
        .await
        .expect("a cluster: run `make cluster-up` first");
    let ns = "serin-bench";
    let namespaces = namespace(&client, ns).await;
    let mut controller = tokio::process::Command::new(env!("CARGO_BIN_EXE_serin"))
        .args(["controller", "--namespace", ns])
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("start serin controller");
    let pid = controller.id().unwrap_or(0);

    let deployment = deployment_rollout(&client, ns).await;
    Api::<Deployment>::namespaced(client.clone(), ns)
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    let release = release_rollout(&client, ns).await;
    Api::<Release>::namespaced(client.clone(), ns)
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    println!("rollout of {REPLICAS} replicas (25%/25%, pods Ready after 1 s), mean of {ROUNDS}:");
    println!("  Deployment: {:.1} s", deployment.as_secs_f64());
    println!("  Release:    {:.1} s", release.as_secs_f64());
    println!(
        "  ratio Release/Deployment: {:.2}",
        release.as_secs_f64() / deployment.as_secs_f64()
    );

    let (idle, loaded) = controller_rss_with_releases(&client, ns, 100, pid).await;
    println!("controller RSS: {idle} KiB with no Releases, {loaded} KiB with 100 Healthy Releases (200 pods)");

    let prometheus = std::env::var("SERIN_PROMETHEUS_URL").unwrap_or_else(|_| "http://127.0.0.1:19090".into());
    let (cpu, rss) = analyses_cost(&client, ns, 100, pid, &prometheus).await;
    println!(
        "100 analyses at a 1 s interval (Prometheus queries): controller CPU {:.1}% of one core, RSS {rss} KiB",
        cpu * 100.0
    );

    controller.kill().await.ok();
    namespaces.delete(ns, &DeleteParams::background()).await.ok();
}
