//! What a rollout costs the API server: a mass update of a small fleet, counted
//! by the controller's own request metrics. Each rollout creates its
//! ReplicaSet once, scales through `/scale`, records each transition as one
//! Event, and never reads the Release (rounds decide on the watch caches).
use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use serin::api::Release;

use crate::support::operator::{ControllerProcess, install_crds, is_ready, releases};
use crate::support::{TestNamespace, client, from_json, wait_for};

const FLEET: usize = 20;
const LIMIT: Duration = Duration::from_secs(90);

fn release(name: &str, image: &str) -> Release {
    from_json(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
        "metadata": { "name": name },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "web", "image": image }] }
            },
            "strategy": { "rolling": { "maxSurge": 1, "maxUnavailable": 0 } }
        }
    }))
}

/// serin_kube_requests_total by (verb, resource), Lease renewals left out.
async fn requests(port: u16) -> Option<BTreeMap<(String, String), f64>> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let label = |line: &str, name: &str| {
        let start = line.find(&format!("{name}=\""))? + name.len() + 2;
        Some(line[start..start + line[start..].find('"')?].to_string())
    };
    let mut counts = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("serin_kube_requests_total{")) {
        let (verb, resource) = (label(line, "verb")?, label(line, "resource")?);
        if resource != "leases" {
            counts.insert((verb, resource), line.rsplit(' ').next()?.parse().ok()?);
        }
    }
    Some(counts)
}

/// All Releases Ready on `image`, their status current.
async fn all_rolled_out(api: &kube::Api<Release>, image: &str) -> Option<()> {
    let list = api.list(&ListParams::default()).await.ok()?;
    let done = list.items.iter().filter(|r| {
        let image_now = r
            .spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.containers[0].image.as_deref());
        r.status.as_ref().is_some_and(|s| {
            is_ready(s)
                && s.observed_generation == r.metadata.generation
                && s.stable_revision == s.current_revision
                && s.replicas == 2
                && s.updated_replicas == 2
        }) && image_now == Some(image)
    });
    (done.count() == FLEET).then_some(())
}

#[tokio::test]
async fn a_mass_update_costs_each_rollout_one_create_its_scales_and_one_event_per_transition() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "cost").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let address = format!("127.0.0.1:{port}");
    let _controller = ControllerProcess::start_with(&ns.name, "", &["--metrics-addr", &address]).await;
    let api = releases(&client, &ns.name);
    for i in 0..FLEET {
        api.create(&PostParams::default(), &release(&format!("app-{i}"), "web:1"))
            .await
            .unwrap();
    }
    wait_for("the fleet Ready on web:1", LIMIT, || all_rolled_out(&api, "web:1")).await;
    let before = wait_for("the controller's metrics", LIMIT, || requests(port)).await;

    let patch = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "web", "image": "web:2" }] } } } });
    for i in 0..FLEET {
        api.patch(&format!("app-{i}"), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    wait_for("the fleet Ready on web:2", LIMIT, || all_rolled_out(&api, "web:2")).await;
    // The last round's Events and status go out after the status says Ready.
    let after = wait_for("the last requests counted", LIMIT, || async {
        let now = requests(port).await?;
        let events = |m: &BTreeMap<_, f64>| m.get(&("create".into(), "events".into())).copied().unwrap_or(0.0);
        (events(&now) - events(&before) >= (FLEET * 6) as f64).then_some(now)
    })
    .await;
    let per_rollout: BTreeMap<(String, String), f64> = after
        .iter()
        .map(|(key, n)| {
            (
                key.clone(),
                (n - before.get(key).copied().unwrap_or(0.0)) / FLEET as f64,
            )
        })
        .filter(|(_, n)| *n > 0.0)
        .collect();
    println!("requests per rollout: {per_rollout:?}");
    let of = |verb: &str, resource: &str| {
        per_rollout
            .get(&(verb.to_string(), resource.to_string()))
            .copied()
            .unwrap_or(0.0)
    };
    assert_eq!(
        of("get", "releases"),
        0.0,
        "no round reads the Release: {per_rollout:?}"
    );
    assert_eq!(
        of("create", "replicasets"),
        1.0,
        "one create per revision, never answered AlreadyExists: {per_rollout:?}"
    );
    // 2 replicas, maxSurge 1: created at 1, then old to 1, new to 2, old to 0.
    assert_eq!(of("patch", "replicasets/scale"), 3.0, "{per_rollout:?}");
    // RolloutStarted, ScalingReplicaSet for the create and each of the 3 scales, Promoted.
    assert_eq!(of("create", "events"), 6.0, "one Event per transition: {per_rollout:?}");
    assert_eq!(
        of("patch", "events"),
        0.0,
        "no Event repeated into a series: {per_rollout:?}"
    );
    // The status follows the ReplicaSets' counts, written only when it changed:
    // at most once per ReplicaSet status change (3 per ReplicaSet here) and the start.
    assert!(of("patch", "releases/status") <= 8.0, "{per_rollout:?}");
    let total: f64 = per_rollout.values().sum();
    assert!(total <= 19.0, "{total} requests per rollout: {per_rollout:?}");
}
