//! Steps every progressive rollout test takes: Services, template changes,
//! human controls through the status subresource, and waits on ReplicaSets.
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use serin::api::Release;

use super::operator::{is_ready, wait_condition};
use super::{from_json, wait_for};

pub const LIMIT: Duration = Duration::from_secs(45);

/// A Release `web` of `replicas` pods of example.com/web:1 with `strategy`
/// (`{"canary": {...}}`, say), rolled back if not available within 60 s.
pub fn web_release(replicas: i32, strategy: serde_json::Value) -> Release {
    from_json(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
        "metadata": { "name": "web" },
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": 60,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": "example.com/web:1" }] }
            },
            "strategy": strategy
        }
    }))
}

/// Services selecting `app: web`, for serin to point at revisions.
pub async fn create_services(client: &Client, ns: &str, names: &[&str]) {
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    for name in names {
        let service: Service = from_json(json!({
            "metadata": { "name": name },
            "spec": { "selector": { "app": "web" }, "ports": [{ "port": 80, "targetPort": 8080 }] }
        }));
        api.create(&PostParams::default(), &service).await.unwrap();
    }
}

/// Creates the Release at v1, waits for it to be Ready, then moves the template
/// to v2. Returns the two revisions.
pub async fn roll_to_v2(api: &Api<Release>, release: &Release) -> (String, String) {
    api.create(&PostParams::default(), release).await.unwrap();
    let ready = wait_condition(api, "web", "Ready", "True", None, LIMIT).await;
    let v1 = ready.status.unwrap().current_revision.unwrap();
    let v2 = set_image(api, "example.com/web:2").await;
    assert_ne!(v1, v2);
    (v1, v2)
}

/// Changes the image; returns the new revision once the controller has seen it.
pub async fn set_image(api: &Api<Release>, image: &str) -> String {
    let patch = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "web", "image": image }] } } } });
    let patched = api
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let generation = patched.metadata.generation;
    wait_for("the new template to be observed", LIMIT, || async {
        let release = api.get("web").await.ok()?;
        let status = release.status?;
        (status.observed_generation == generation).then_some(status.current_revision?)
    })
    .await
}

/// The documented status-subresource command for a human control.
pub async fn control(ns: &str, field: &str) {
    let patch = format!(r#"{{"status":{{"control":{{"{field}":true}}}}}}"#);
    let output = tokio::process::Command::new("kubectl")
        .args([
            "-n",
            ns,
            "patch",
            "release",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ])
        .output()
        .await
        .expect("kubectl on PATH");
    assert!(
        output.status.success(),
        "kubectl patch: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

pub async fn ready_on(api: &Api<Release>, revision: &str) -> Release {
    wait_for(&format!("revision {revision} Ready and stable"), LIMIT, || async {
        let release = api.get("web").await.ok()?;
        let status = release.status.as_ref()?;
        (is_ready(status) && status.stable_revision.as_deref() == Some(revision)).then_some(release)
    })
    .await
}

/// Spec replicas of each revision's ReplicaSet.
pub async fn replicas(client: &Client, ns: &str, revision: &str) -> i32 {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(&format!("serin.dev/revision={revision}")))
        .await
        .unwrap();
    list.items.iter().filter_map(|rs| rs.spec.as_ref()?.replicas).sum()
}

pub async fn wait_replicas(client: &Client, ns: &str, revision: &str, want: i32) {
    wait_for(&format!("revision {revision} at {want} replicas"), LIMIT, || async {
        (replicas(client, ns, revision).await == want).then_some(())
    })
    .await;
}
