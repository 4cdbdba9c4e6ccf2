//! `kubectl serin`, every command against the local cluster, as a person or a
//! pipeline runs it.
use std::process::Output;
use std::time::Duration;

use kube::api::PostParams;
use serde_json::json;
use serin::api::Release;

use crate::support::from_json;
use crate::support::operator::{releases, setup, wait_condition};
use crate::support::rollout::LIMIT;

async fn serin(namespace: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-serin"))
        .args(["-n", namespace])
        .args(args)
        .output()
        .await
        .expect("kubectl-serin runs")
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

#[track_caller]
fn succeeded(output: &Output) -> String {
    assert!(output.status.success(), "{:?}: {}", output.status, text(output));
    text(output)
}

fn canary() -> Release {
    from_json(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 4,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": "example.com/web:1" }] }
            },
            "strategy": { "canary": { "steps": [{ "setWeight": 25 }, { "pause": {} }, { "setWeight": 50 }, { "pause": {} }] } }
        }
    }))
}

async fn image(api: &kube::Api<Release>) -> String {
    let release = api.get("web").await.unwrap();
    release.spec.template.spec.unwrap().containers[0].image.clone().unwrap()
}

async fn wait_step(api: &kube::Api<Release>, step: i32) {
    crate::support::wait_for(&format!("a pause at step {step}"), LIMIT, || async {
        let status = api.get("web").await.ok()?.status?;
        let paused = status.conditions.iter().any(|c| c.reason == "CanaryPauseStep");
        (paused && status.current_step_index == Some(step)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn every_command_steers_a_canary_and_status_exits_by_outcome() {
    let (client, ns, _controller) = setup("plugin").await;
    let ns = ns.name.clone();
    let api = releases(&client, &ns);
    api.create(&PostParams::default(), &canary()).await.unwrap();

    // status: 0 once Ready.
    let ready = serin(&ns, &["status", "web", "--timeout", "30s"]).await;
    assert_eq!(ready.status.code(), Some(0), "{}", text(&ready));

    // set image starts a canary; status times out (2) at a pause for a person.
    succeeded(&serin(&ns, &["set", "image", "web", "web=example.com/web:2"]).await);
    assert_eq!(image(&api).await, "example.com/web:2");
    wait_step(&api, 1).await;
    let waiting = serin(&ns, &["status", "web", "--timeout", "1s"]).await;
    assert_eq!(waiting.status.code(), Some(2), "{}", text(&waiting));
    assert!(text(&waiting).contains("Paused: Canary revision"), "{}", text(&waiting));

    // get and list show where it stands.
    let tree = succeeded(&serin(&ns, &["get", "release", "web"]).await);
    assert!(
        tree.contains("Strategy: Canary   Phase: Paused (CanaryPauseStep)"),
        "{tree}"
    );
    assert!(
        tree.contains("Steps:    1 of 4 done   Traffic: 75% stable, 25% canary"),
        "{tree}"
    );
    assert!(tree.contains("(canary)") && tree.contains("(stable)"), "{tree}");
    let table = succeeded(&serin(&ns, &["list"]).await);
    assert!(
        table
            .lines()
            .any(|l| l.contains("web") && l.contains("Canary") && l.contains("1/4")),
        "{table}"
    );

    // promote moves one step; pause and resume write spec.paused.
    succeeded(&serin(&ns, &["promote", "web"]).await);
    wait_step(&api, 3).await;
    succeeded(&serin(&ns, &["pause", "web"]).await);
    wait_condition(&api, "web", "Progressing", "False", Some("Paused"), LIMIT).await;
    succeeded(&serin(&ns, &["resume", "web"]).await);
    wait_step(&api, 3).await;

    // abort: Degraded, and status exits 1; retry starts over; promote --full finishes.
    succeeded(&serin(&ns, &["abort", "web"]).await);
    wait_condition(&api, "web", "Degraded", "True", Some("Aborted"), LIMIT).await;
    let degraded = serin(&ns, &["status", "web", "--timeout", "10s"]).await;
    assert_eq!(degraded.status.code(), Some(1), "{}", text(&degraded));
    succeeded(&serin(&ns, &["retry", "web"]).await);
    wait_step(&api, 1).await;
    succeeded(&serin(&ns, &["promote", "web", "--full"]).await);
    let done = serin(&ns, &["status", "web", "--timeout", "30s"]).await;
    assert_eq!(done.status.code(), Some(0), "{}", text(&done));

    // undo: back to the revision before, or to one by number.
    succeeded(&serin(&ns, &["undo", "web"]).await);
    assert_eq!(image(&api).await, "example.com/web:1");
    succeeded(&serin(&ns, &["promote", "web", "--full"]).await);
    assert_eq!(
        serin(&ns, &["status", "web", "--timeout", "30s"]).await.status.code(),
        Some(0)
    );
    succeeded(&serin(&ns, &["undo", "web", "--to-revision", "2"]).await);
    assert_eq!(image(&api).await, "example.com/web:2");
    let missing = serin(&ns, &["undo", "web", "--to-revision", "9"]).await;
    assert!(
        !missing.status.success() && text(&missing).contains("has no revision 9"),
        "{}",
        text(&missing)
    );
}

#[tokio::test]
async fn get_watch_redraws_and_mistakes_say_what_is_wrong() {
    let (client, ns, _controller) = setup("plugin-watch").await;
    let ns = ns.name.clone();
    let api = releases(&client, &ns);
    api.create(&PostParams::default(), &canary()).await.unwrap();
    wait_condition(&api, "web", "Ready", "True", None, LIMIT).await;

    // Not a terminal: plain text, a frame a second, until stopped.
    let mut watching = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-serin"))
        .args(["-n", &ns, "get", "release", "web", "--watch"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let drawn = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut stdout = watching.stdout.take().unwrap();
    let sink = drawn.clone();
    let reading = tokio::spawn(async move {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = tokio::io::AsyncReadExt::read(&mut stdout, &mut chunk).await {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    let frames = |text: &str| text.matches("Release web (namespace").count();
    let three = crate::support::poll_until(Duration::from_secs(10), || async {
        (frames(&drawn.lock().unwrap()) >= 3).then_some(())
    })
    .await;
    watching.kill().await.unwrap();
    reading.abort();
    let screen = drawn.lock().unwrap().clone();
    assert!(three.is_some(), "fewer than 3 frames in 10 s: {screen}");
    assert!(!screen.contains('\x1b'), "no colour when not a terminal");

    let unknown = serin(&ns, &["promote", "nope"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown).contains("release \"nope\" not found"),
        "{}",
        text(&unknown)
    );
    let bad = serin(&ns, &["set", "image", "web", "db=example.com/db:2"]).await;
    assert!(
        text(&bad).contains("has no container \"db\" (it has: web)"),
        "{}",
        text(&bad)
    );
    let completion = serin(&ns, &["completion", "bash"]).await;
    assert!(succeeded(&completion).contains("kubectl-serin"));
}

#[tokio::test]
async fn lint_passes_the_readme_examples_and_names_each_problem() {
    let dir = std::env::temp_dir().join(format!("serin-lint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for marker in ["Save as `canary.yaml`", "Save as `bluegreen.yaml`"] {
        let file = dir.join("example.yaml");
        std::fs::write(&file, crate::support::readme_yaml(marker)).unwrap();
        let clean = serin("default", &["lint", "-f", file.to_str().unwrap()]).await;
        assert!(succeeded(&clean).contains("no problems"), "{marker}: {}", text(&clean));
    }
    let bad = dir.join("bad.yaml");
    let manifest = "apiVersion: serin.dev/v1alpha1\nkind: Release\nmetadata: {name: web}\nspec:\n  replicas: -1\n  selector: {matchLabels: {app: web}}\n  template: {metadata: {labels: {app: web}}}\n  strategy: {canary: {steps: [{setWeight: 10, pause: {}}]}}\n";
    std::fs::write(&bad, manifest).unwrap();
    let found = serin("default", &["lint", "-f", bad.to_str().unwrap()]).await;
    assert_eq!(found.status.code(), Some(1), "{}", text(&found));
    assert!(
        text(&found).contains("document 1: Release web: spec.replicas: should be greater than or equal to 0"),
        "{}",
        text(&found)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
