//! Releases with the rolling strategy, on a real control plane.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use serin::api::{Phase, Release};

use crate::support::bounds::{BoundsSampler, counts};
use crate::support::operator::{ControllerProcess, install_crds, is_ready, releases, setup, wait_condition};
use crate::support::{TestNamespace, client, from_json, wait_for};

fn manifest(replicas: i32, image: &str, rolling: Value, extra_spec: Value) -> Release {
    let mut release = json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
        "metadata": { "name": "web" },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": image }] }
            },
            "strategy": { "rolling": rolling }
        }
    });
    if let (Some(spec), Some(extra)) = (release["spec"].as_object_mut(), extra_spec.as_object()) {
        spec.extend(extra.clone());
    }
    from_json(release)
}

async fn set_template(api: &Api<Release>, template: Value) {
    let patch = json!({ "spec": { "template": template } });
    api.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

fn replica_sets(client: &Client, ns: &str) -> Api<ReplicaSet> {
    Api::namespaced(client.clone(), ns)
}

/// (name, spec replicas, available) of every ReplicaSet in the namespace.
async fn replica_set_counts(api: &Api<ReplicaSet>) -> BTreeMap<String, (i32, i32)> {
    let list = api.list(&ListParams::default()).await.unwrap();
    list.items
        .iter()
        .map(|rs| (rs.metadata.name.clone().unwrap(), counts(rs)))
        .collect()
}

async fn kubectl(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new("kubectl")
        .args(args)
        .output()
        .await
        .expect("kubectl on PATH")
}

#[tokio::test]
async fn a_rolling_update_keeps_its_bounds_and_trims_history() {
    let (client, ns, _controller) = setup("rolling").await;
    let api = releases(&client, &ns.name);
    let rolling = json!({ "maxSurge": "25%", "maxUnavailable": "25%" });
    let release = manifest(10, "example.com/web:1", rolling, json!({ "revisionHistoryLimit": 1 }));
    api.create(&PostParams::default(), &release).await.unwrap();

    let out = kubectl(&[
        "wait",
        "--for=condition=Ready",
        "release/web",
        "--timeout=30s",
        "-n",
        &ns.name,
    ])
    .await;
    assert!(
        out.status.success(),
        "kubectl wait: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let rs_api = replica_sets(&client, &ns.name);
    // 25% of 10: surge rounds up to 3, unavailable down to 2.
    let sampler = BoundsSampler::start(rs_api.clone(), 13, 8).await;
    for version in 2..=3 {
        let image = format!("example.com/web:{version}");
        set_template(
            &api,
            json!({ "spec": { "containers": [{ "name": "web", "image": image }] } }),
        )
        .await;
        let generation = api.get("web").await.unwrap().metadata.generation;
        wait_for(
            &format!("v{version} to be stable and Ready"),
            Duration::from_secs(60),
            || async {
                let release = api.get("web").await.ok()?;
                let status = release.status?;
                (is_ready(&status)
                    && status.observed_generation == generation
                    && status.stable_revision == status.current_revision)
                    .then_some(())
            },
        )
        .await;
    }
    let samples = sampler.finish();
    assert!(samples > 10, "the sampler saw the rollout ({samples} samples)");

    let release = api.get("web").await.unwrap();
    let status = release.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Healthy));
    assert_eq!((status.updated_replicas, status.available_replicas), (10, 10));
    let current = format!("web-{}", status.current_revision.unwrap());
    let sets = wait_for(
        "history trimmed to 1 idle ReplicaSet",
        Duration::from_secs(10),
        || async {
            let sets = replica_set_counts(&rs_api).await;
            (sets.len() == 2).then_some(sets)
        },
    )
    .await;
    for (name, (spec, available)) in sets {
        if name == current {
            assert_eq!((spec, available), (10, 10), "{name}");
        } else {
            assert_eq!(spec, 0, "old ReplicaSet {name} is scaled to 0");
        }
    }
}

#[tokio::test]
async fn a_never_ready_revision_is_rolled_back_after_the_deadline_and_a_good_one_recovers() {
    let (client, ns, _controller) = setup("rollback").await;
    let api = releases(&client, &ns.name);
    let rolling = json!({ "maxSurge": 1, "maxUnavailable": 0 });
    let release = manifest(
        4,
        "example.com/web:1",
        rolling,
        json!({ "progressDeadlineSeconds": 20 }),
    );
    api.create(&PostParams::default(), &release).await.unwrap();
    let stable = wait_condition(&api, "web", "Ready", "True", None, Duration::from_secs(30)).await;
    let stable_revision = stable.status.unwrap().stable_revision.unwrap();

    set_template(
        &api,
        json!({
            "metadata": { "labels": { "app": "web", "serin.dev/fault": "never-ready" } },
            "spec": { "containers": [{ "name": "web", "image": "example.com/web:bad" }] }
        }),
    )
    .await;
    let changed = Instant::now();
    let degraded = wait_condition(
        &api,
        "web",
        "Degraded",
        "True",
        Some("ProgressDeadlineExceeded"),
        Duration::from_secs(30),
    )
    .await;
    let took = changed.elapsed();
    assert!(
        took <= Duration::from_secs(30),
        "Degraded after {took:?}, want <= deadline + 10 s"
    );
    let status = degraded.status.unwrap();
    let bad = status.current_revision.clone().unwrap();
    assert_eq!(status.failed_revision.as_ref(), Some(&bad));
    assert_eq!(status.stable_revision.as_ref(), Some(&stable_revision));
    assert!(
        status.message.unwrap().contains("Rolled back"),
        "message says what happened"
    );

    let rs_api = replica_sets(&client, &ns.name);
    let sets = wait_for(
        "old revision fully available, bad one at 0",
        Duration::from_secs(10),
        || async {
            let sets = replica_set_counts(&rs_api).await;
            (sets.get(&format!("web-{stable_revision}")) == Some(&(4, 4))
                && sets.get(&format!("web-{bad}")).is_some_and(|c| c.0 == 0))
            .then_some(sets)
        },
    )
    .await;
    assert_eq!(sets.len(), 2);

    set_template(
        &api,
        json!({
            "metadata": { "labels": { "app": "web", "serin.dev/fault": null } },
            "spec": { "containers": [{ "name": "web", "image": "example.com/web:3" }] }
        }),
    )
    .await;
    let recovered = wait_for(
        "recovery to Ready on the new revision",
        Duration::from_secs(30),
        || async {
            let release = api.get("web").await.ok()?;
            let status = release.status?;
            (is_ready(&status)
                && status.current_revision != Some(bad.clone())
                && status.current_revision != Some(stable_revision.clone()))
            .then_some(status)
        },
    )
    .await;
    assert_eq!(recovered.failed_revision, None);
    assert_eq!(recovered.phase, Some(Phase::Healthy));
}

#[tokio::test]
async fn kubectl_scale_resizes_a_release_and_paused_freezes_a_rollout() {
    let (client, ns, _controller) = setup("scale").await;
    let api = releases(&client, &ns.name);
    let release = manifest(2, "example.com/web:1", json!({}), json!({}));
    api.create(&PostParams::default(), &release).await.unwrap();
    wait_condition(&api, "web", "Ready", "True", None, Duration::from_secs(30)).await;

    let out = kubectl(&["scale", "release/web", "--replicas=5", "-n", &ns.name]).await;
    assert!(
        out.status.success(),
        "kubectl scale: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = wait_for("5 available replicas", Duration::from_secs(30), || async {
        let status = api.get("web").await.ok()?.status?;
        (status.available_replicas == 5 && status.phase == Some(Phase::Healthy)).then_some(status)
    })
    .await;
    let v1 = status.current_revision.unwrap();
    // The scale subresource reports the selector an HPA needs.
    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.status.and_then(|s| s.selector).as_deref(), Some("app=web"));

    let patch = json!({ "spec": { "paused": true, "template": { "spec": { "containers": [{ "name": "web", "image": "example.com/web:2" }] } } } });
    api.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_for("phase Paused", Duration::from_secs(20), || async {
        (api.get("web").await.ok()?.status?.phase == Some(Phase::Paused)).then_some(())
    })
    .await;
    // While paused, over several observations, nothing moves.
    let rs_api = replica_sets(&client, &ns.name);
    let frozen = replica_set_counts(&rs_api).await;
    assert_eq!(frozen.get(&format!("web-{v1}")), Some(&(5, 5)));
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(replica_set_counts(&rs_api).await, frozen, "paused rollout moved");
    }

    let resume = json!({ "spec": { "paused": false } });
    api.patch("web", &PatchParams::default(), &Patch::Merge(&resume))
        .await
        .unwrap();
    let status = wait_for("resumed rollout to finish", Duration::from_secs(30), || async {
        let status = api.get("web").await.ok()?.status?;
        (status.phase == Some(Phase::Healthy) && status.stable_revision != Some(v1.clone())).then_some(status)
    })
    .await;
    assert_eq!(status.available_replicas, 5);
}

#[tokio::test]
async fn a_rollout_finishes_correctly_when_the_controller_is_killed_midway() {
    let (client, ns, controller) = setup("restart").await;
    let api = releases(&client, &ns.name);
    let rolling = json!({ "maxSurge": 2, "maxUnavailable": 0 });
    let release = manifest(10, "example.com/web:1", rolling, json!({}));
    api.create(&PostParams::default(), &release).await.unwrap();
    wait_condition(&api, "web", "Ready", "True", None, Duration::from_secs(30)).await;

    let rs_api = replica_sets(&client, &ns.name);
    let sampler = BoundsSampler::start(rs_api.clone(), 12, 10).await;
    // Slow pods (1 s to Ready) keep the rollout in flight long enough to interrupt it.
    set_template(
        &api,
        json!({
            "metadata": { "annotations": { "serin.dev/ready-delay": "1s" } },
            "spec": { "containers": [{ "name": "web", "image": "example.com/web:2" }] }
        }),
    )
    .await;
    let v1 = api.get("web").await.unwrap().status.unwrap().stable_revision.unwrap();
    wait_for("the rollout to be midway", Duration::from_secs(30), || async {
        let sets = replica_set_counts(&rs_api).await;
        let old = sets.get(&format!("web-{v1}"))?.0;
        (old < 10 && old > 0).then_some(())
    })
    .await;
    controller.kill().await;
    let midway = replica_set_counts(&rs_api).await;
    let _restarted = ControllerProcess::start(&ns.name).await;

    let status = wait_for(
        "the rollout to finish after the restart",
        Duration::from_secs(60),
        || async {
            let status = api.get("web").await.ok()?.status?;
            (status.phase == Some(Phase::Healthy) && status.stable_revision != Some(v1.clone())).then_some(status)
        },
    )
    .await;
    sampler.finish();
    assert!(
        midway.len() == 2,
        "killed mid-rollout with both revisions up: {midway:?}"
    );
    let sets = replica_set_counts(&rs_api).await;
    let current = format!("web-{}", status.current_revision.unwrap());
    assert_eq!(sets.get(&current), Some(&(10, 10)));
    assert_eq!(sets.get(&format!("web-{v1}")).map(|c| c.0), Some(0));
}

#[tokio::test]
async fn the_api_server_rejects_bad_releases_with_clear_messages() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "invalid").await;
    let api = releases(&client, &ns.name);
    let good = serde_json::to_value(manifest(3, "example.com/web:1", json!({}), json!({}))).unwrap();
    let with = |pointer: &str, value: Value| {
        let mut v = good.clone();
        *v.pointer_mut(pointer).unwrap() = value;
        v
    };
    let cases = [
        (
            with("/spec/replicas", json!(-1)),
            "should be greater than or equal to 0",
        ),
        (
            with(
                "/spec/strategy",
                json!({ "rolling": { "maxSurge": 0, "maxUnavailable": "0%" } }),
            ),
            "maxSurge and maxUnavailable may not both be 0",
        ),
        (
            with("/spec/selector", json!({ "matchLabels": { "app": "api" } })),
            "must match spec.template.metadata.labels",
        ),
        (
            with("/spec/strategy", json!({})),
            "exactly one of rolling, blueGreen or canary",
        ),
        (
            with("/spec/strategy", json!({ "rolling": {}, "canary": {} })),
            "exactly one of rolling, blueGreen or canary",
        ),
    ];
    for (manifest, expected) in cases {
        let release: Release = from_json(manifest.clone());
        let error = api
            .create(&PostParams::default(), &release)
            .await
            .expect_err(&format!("rejected: {manifest}"));
        assert!(error.to_string().contains(expected), "want {expected:?} in {error}");
    }
    // The good one is accepted, so the rejections above are about their one change.
    api.create(&PostParams::default(), &from_json(good)).await.unwrap();
}
