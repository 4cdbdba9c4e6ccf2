//! What outside clients read from live Releases in every phase: kstatus
//! (sigs.k8s.io/cli-utils, as Flux and kpt compute it) through the test bed's
//! `kstatus` binary, Argo CD's health check in its own runtime (`argocd-lua`),
//! and `kubectl wait`.
use std::path::PathBuf;
use std::time::Duration;

use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use serin::api::Release;

use crate::support::argocd::{argocd_health, capture};
use crate::support::operator::{ControllerProcess, install_crds, releases, wait_condition};
use crate::support::rollout::create_services;
use crate::support::{TestNamespace, client, from_json, wait_for};

const LIMIT: Duration = Duration::from_secs(60);

/// A Release `name` of 2 pods of `image` with `strategy`; `labels` go on the pod
/// template (a `serin.dev/fault` label makes kwok keep the pods unready).
fn release(name: &str, image: &str, strategy: Value) -> Release {
    from_json(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
        "metadata": { "name": name },
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 600,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "web", "image": image }] }
            },
            "strategy": strategy
        }
    }))
}

fn kstatus_bin() -> PathBuf {
    let cache = std::env::var_os("SERIN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/serin"));
    cache.join("bin/kstatus")
}

/// kstatus's verdict and message for `object`, from cli-utils itself.
pub async fn kstatus(object: &Value) -> (String, String) {
    use tokio::io::AsyncWriteExt;
    let bin = kstatus_bin();
    let mut child = tokio::process::Command::new(&bin)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} (built by `make tools`): {e}", bin.display()));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(object.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "kstatus: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line: Value = serde_json::from_slice(&output.stdout).unwrap();
    (
        line["status"].as_str().unwrap_or_default().to_string(),
        line["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// The live object as JSON, as a client reading the API gets it.
async fn live(api: &Api<Release>, name: &str) -> Value {
    serde_json::to_value(api.get(name).await.unwrap()).unwrap()
}

/// Waits until kstatus reads `want` for `name`; returns its message and the object it read.
async fn wait_kstatus(api: &Api<Release>, name: &str, want: &str) -> (String, Value) {
    wait_for(&format!("kstatus {want} for {name}"), LIMIT, || async {
        let object = live(api, name).await;
        let (status, message) = kstatus(&object).await;
        (status == want).then_some((message, object))
    })
    .await
}

/// One row of the phase table: kstatus and Argo CD's health on one live object.
struct Row {
    phase: &'static str,
    kstatus: String,
    argocd: String,
    message: String,
}

/// Waits for kstatus to read `want` for `name`, then asserts what Argo CD's own
/// runtime (gopher-lua, argocd/health.lua) makes of the same object.
async fn read(api: &Api<Release>, name: &str, phase: &'static str, want: &str, argocd: &str) -> Row {
    let (message, object) = wait_kstatus(api, name, want).await;
    let (health, _) = argocd_health(&object);
    assert_eq!(health, argocd, "Argo CD health of {name} ({phase})");
    capture(
        &format!("kstatus-{}", phase.replace([' ', ','], "-").replace("--", "-")),
        &object,
    );
    Row {
        phase,
        kstatus: want.into(),
        argocd: health,
        message,
    }
}

/// `kubectl wait --for=condition=COND` on the Release returns success within `seconds`.
async fn kubectl_waits_for(ns: &str, name: &str, condition: &str, seconds: u32) -> bool {
    tokio::process::Command::new("kubectl")
        .args([
            "-n",
            ns,
            "wait",
            &format!("--for=condition={condition}"),
            &format!("--timeout={seconds}s"),
        ])
        .arg(format!("release/{name}"))
        .output()
        .await
        .expect("kubectl on PATH")
        .status
        .success()
}

async fn patch_spec(api: &Api<Release>, name: &str, spec: Value) {
    api.patch(name, &PatchParams::default(), &Patch::Merge(&json!({ "spec": spec })))
        .await
        .unwrap();
}

fn image(tag: &str, fault: Option<&str>) -> Value {
    let labels = match fault {
        Some(fault) => json!({ "serin.dev/fault": fault }),
        None => json!({}),
    };
    json!({ "template": {
        "metadata": { "labels": labels },
        "spec": { "containers": [{ "name": "web", "image": format!("example.com/web:{tag}") }] }
    } })
}

/// One namespace, one Release per phase, each read by kstatus while it is in
/// that phase. The table printed at the end is the one docs/health.md shows.
#[tokio::test]
async fn kstatus_reads_every_phase_as_flux_should() {
    let client: Client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "kstatus").await;
    let api = releases(&client, &ns.name);
    let mut table: Vec<Row> = Vec::new();

    // Before any controller has seen it: the status default (observedGeneration 0).
    let rolling = json!({ "rolling": { "maxSurge": 1, "maxUnavailable": 0 } });
    api.create(
        &PostParams::default(),
        &release("healthy", "example.com/web:1", rolling.clone()),
    )
    .await
    .unwrap();
    let row = read(
        &api,
        "healthy",
        "created, not yet reconciled",
        "InProgress",
        "Progressing",
    )
    .await;
    assert!(row.message.contains("observed generation is 0"), "{}", row.message);
    table.push(row);

    assert!(!kubectl_waits_for(&ns.name, "healthy", "Ready", 1).await);
    let controller = ControllerProcess::start(&ns.name).await;
    table.push(read(&api, "healthy", "Healthy", "Current", "Healthy").await);
    assert!(kubectl_waits_for(&ns.name, "healthy", "Ready", 5).await);

    // A spec change the controller has not observed (it is stopped).
    controller.kill().await;
    patch_spec(&api, "healthy", json!({ "replicas": 3 })).await;
    let row = read(
        &api,
        "healthy",
        "spec changed, not yet observed",
        "InProgress",
        "Progressing",
    )
    .await;
    assert!(row.message.contains("generation is 2"), "{}", row.message);
    // kubectl wait compares the condition's observedGeneration with the object's.
    assert!(
        !kubectl_waits_for(&ns.name, "healthy", "Ready", 1).await,
        "kubectl wait took a Ready condition of generation 1 for generation 2"
    );
    table.push(row);
    let _controller = ControllerProcess::start(&ns.name).await;
    wait_kstatus(&api, "healthy", "Current").await;

    create_services(&client, &ns.name, &["bg-active", "bg-preview"]).await;
    let canary = json!({ "canary": { "steps": [{ "setWeight": 50 }, { "pause": {} }] } });
    let blue_green = json!({ "blueGreen": {
        "activeService": "bg-active", "previewService": "bg-preview", "autoPromotionEnabled": false,
    } });
    let short_deadline = json!({ "rolling": { "maxSurge": 1, "maxUnavailable": 0 } });
    for (name, strategy) in [
        ("rolling", rolling.clone()),
        ("canary", canary.clone()),
        ("aborted", canary),
        ("bluegreen", blue_green),
        ("rolledback", short_deadline),
        ("invalid", rolling),
    ] {
        api.create(&PostParams::default(), &release(name, "example.com/web:1", strategy))
            .await
            .unwrap();
    }
    for name in ["rolling", "canary", "aborted", "bluegreen", "rolledback", "invalid"] {
        wait_condition(&api, name, "Ready", "True", None, LIMIT).await;
    }
    // New revisions: one never ready (in flight), one rolled back by its deadline.
    patch_spec(&api, "rolling", image("2", Some("never-ready"))).await;
    patch_spec(&api, "canary", image("2", None)).await;
    patch_spec(&api, "aborted", image("2", None)).await;
    patch_spec(&api, "bluegreen", image("2", None)).await;
    let mut rolled_back = image("2", Some("never-ready"));
    rolled_back["progressDeadlineSeconds"] = json!(5);
    patch_spec(&api, "rolledback", rolled_back).await;
    let mut refused = image("2", None);
    refused["template"]["spec"]["containers"][0]["ports"] = json!([{ "containerPort": 70000 }]);
    patch_spec(&api, "invalid", refused).await;

    // (name, phase, condition True, its reason, kstatus, Argo CD)
    let expect = [
        (
            "rolling",
            "rolling update in flight",
            "Reconciling",
            "RollingUpdate",
            "InProgress",
            "Progressing",
        ),
        (
            "canary",
            "canary paused at a step",
            "Reconciling",
            "CanaryPauseStep",
            "InProgress",
            "Suspended",
        ),
        (
            "bluegreen",
            "blue-green awaiting promotion",
            "Reconciling",
            "AwaitingPromotion",
            "InProgress",
            "Suspended",
        ),
        (
            "rolledback",
            "rolled back, deadline",
            "Stalled",
            "ProgressDeadlineExceeded",
            "Failed",
            "Degraded",
        ),
        ("invalid", "InvalidSpec", "Stalled", "InvalidSpec", "Failed", "Degraded"),
    ];
    for (name, phase, condition, reason, want, argocd) in expect {
        wait_condition(&api, name, condition, "True", Some(reason), LIMIT).await;
        table.push(read(&api, name, phase, want, argocd).await);
        let failed = want == "Failed";
        assert_eq!(kubectl_waits_for(&ns.name, name, "Stalled", 1).await, failed, "{name}");
        assert!(!kubectl_waits_for(&ns.name, name, "Ready", 1).await, "{name}");
    }
    wait_condition(&api, "aborted", "Reconciling", "True", Some("CanaryPauseStep"), LIMIT).await;
    let patch = json!({ "status": { "control": { "abort": true } } });
    api.patch_status("aborted", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_condition(&api, "aborted", "Stalled", "True", Some("Aborted"), LIMIT).await;
    table.push(read(&api, "aborted", "aborted", "Failed", "Degraded").await);

    // A healthy Release being deleted reads as Terminating only while a finalizer holds it;
    // serin adds none, so deletion is immediate and not a phase to check.
    println!("| phase | kstatus | Argo CD | kstatus message |\n|---|---|---|---|");
    for row in &table {
        println!("| {} | {} | {} | {} |", row.phase, row.kstatus, row.argocd, row.message);
    }
    assert_eq!(table.len(), 9, "every phase was read");
}
