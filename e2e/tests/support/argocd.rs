//! Argo CD's own Lua runtime on live objects: serin's health check and actions
//! (argocd/) run by `argocd-lua` (e2e/tools/argocd-lua), which sets gopher-lua
//! up as Argo CD does and reads results as Argo CD does. It lives in
//! `$SERIN_CACHE/bin` (default `~/.cache/serin/bin`); the first call in a test
//! process runs `e2e/build-tools.sh argocd-lua`, which builds it only when it is
//! missing or its sources changed.
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::Value;
use serin::api::Release;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The argocd-lua binary, built if needed (once per test process).
pub fn argocd_lua() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cache = std::env::var_os("SERIN_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/serin"));
        let build = Command::new(repo().join("e2e/build-tools.sh"))
            .arg("argocd-lua")
            .env("SERIN_CACHE", &cache)
            .output()
            .expect("run e2e/build-tools.sh");
        assert!(
            build.status.success(),
            "e2e/build-tools.sh argocd-lua: {}",
            String::from_utf8_lossy(&build.stderr)
        );
        cache.join("bin/argocd-lua")
    })
    .clone()
}

/// Runs `argocd-lua ARGS` with `obj` on stdin; its JSON output. Panics with
/// the Lua (or Argo CD) error when the script fails.
fn run(args: &[&str], obj: &Value) -> Value {
    let mut child = Command::new(argocd_lua())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start argocd-lua");
    child
        .stdin
        .take()
        .expect("argocd-lua's stdin")
        .write_all(obj.to_string().as_bytes())
        .expect("write the object to argocd-lua");
    let output = child.wait_with_output().expect("argocd-lua runs");
    assert!(
        output.status.success(),
        "argocd-lua {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("argocd-lua prints JSON")
}

fn path(relative: &str) -> String {
    repo().join("argocd").join(relative).display().to_string()
}

/// Argo CD's health of a Release (its JSON as the API server returns it):
/// status (Healthy, Progressing, Suspended, Degraded, ...) and message.
pub fn argocd_health(obj: &Value) -> (String, String) {
    let health = run(&["health", &path("health.lua")], obj);
    let field = |k: &str| health[k].as_str().unwrap_or_default().to_string();
    (field("status"), field("message"))
}

/// The actions Argo CD offers for the Release, enabled ones only, sorted.
pub fn argocd_enabled_actions(obj: &Value) -> Vec<String> {
    let actions = run(&["discovery", &path("actions")], obj);
    actions
        .as_array()
        .expect("discovery prints a list")
        .iter()
        .filter(|a| a["disabled"] != true)
        .map(|a| a["name"].as_str().expect("an action has a name").to_string())
        .collect()
}

/// What action `name` returns for the Release: the object as Argo CD reads
/// it back (empty objects of the live object kept as objects).
pub fn argocd_action(obj: &Value, name: &str) -> Value {
    run(&["action", &path("actions"), name], obj)
}

/// The requests Argo CD's API server sends for action `name` on the Release:
/// `{"verb": "patch", "subresource": "status"?, "patch": {...}}` each, JSON
/// merge patches from the live object to the action's result.
pub fn argocd_requests(obj: &Value, name: &str) -> Vec<Value> {
    let requests = run(&["requests", &path("actions"), name], obj);
    requests.as_array().expect("requests prints a list").clone()
}

/// Sends requests from [`argocd_requests`] for Release `name` as Argo CD
/// does: merge patches, to the status subresource where it says so.
pub async fn send_argocd_requests(api: &Api<Release>, name: &str, requests: &[Value]) {
    for request in requests {
        assert_eq!(request["verb"], "patch", "serin's actions only patch: {request}");
        let patch = Patch::Merge(&request["patch"]);
        let sent = if request["subresource"] == "status" {
            api.patch_status(name, &PatchParams::default(), &patch).await
        } else {
            api.patch(name, &PatchParams::default(), &patch).await
        };
        sent.unwrap_or_else(|e| panic!("Argo CD's request {request}: {e}"));
    }
}

/// With `SERIN_ARGOCD_CAPTURE=DIR`, writes the live Release `obj` and what
/// Argo CD's runtime made of it (already asserted by the caller) to
/// `DIR/<name>.json`, the format of argocd/test/captured/ that `make argocd`
/// checks offline. Does nothing otherwise.
pub fn capture(name: &str, obj: &Value) {
    let Some(dir) = std::env::var_os("SERIN_ARGOCD_CAPTURE") else {
        return;
    };
    let (status, message) = argocd_health(obj);
    let record = serde_json::json!({
        "name": name,
        "health": [status, message],
        "enabled": argocd_enabled_actions(obj),
        "obj": obj,
    });
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("create the capture directory");
    let text = serde_json::to_string_pretty(&record).expect("a Release serializes") + "\n";
    std::fs::write(dir.join(format!("{name}.json")), text).expect("write the capture");
}
