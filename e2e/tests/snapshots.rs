//! Config snapshots on a real control plane: a ConfigMap edit rolls out like
//! a template change, each revision's pods read their own copy, an undo
//! brings the old value back, and trimmed revisions take their copies along.
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::json;
use serin::api::{Phase, Release};

use crate::support::operator::{releases, setup, wait_condition};
use crate::support::rollout::{LIMIT, ready_on};
use crate::support::{from_json, wait_for};

fn release() -> Release {
    from_json(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 3,
            "revisionHistoryLimit": 1,
            "configSnapshots": { "configMaps": true },
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" }, "annotations": { "serin.dev/ready-delay": "1s" } },
                "spec": {
                    "volumes": [{ "name": "config", "configMap": { "name": "web-config" } }],
                    "containers": [{ "name": "web", "image": "example.com/web:1",
                        "env": [{ "name": "GREETING", "valueFrom": { "configMapKeyRef": { "name": "web-config", "key": "greeting" } } }],
                        "volumeMounts": [{ "name": "config", "mountPath": "/etc/web" }] }]
                }
            },
            "strategy": { "rolling": { "maxSurge": 1, "maxUnavailable": 0 } }
        }
    }))
}

async fn set_greeting(api: &Api<ConfigMap>, greeting: &str) {
    let patch = json!({ "data": { "greeting": greeting } });
    api.patch("web-config", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// What each running pod reads, by its pod spec: revision -> the greeting in
/// the ConfigMap its env names (and its volume names the same one).
async fn greetings(client: &Client, ns: &str) -> Vec<(String, String)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut seen = Vec::new();
    for pod in pods.list(&ListParams::default().labels("app=web")).await.unwrap() {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let revision = pod.metadata.labels.as_ref().unwrap()["serin.dev/revision"].clone();
        let spec = pod.spec.unwrap();
        let env = spec.containers[0].env.as_ref().unwrap();
        let name = env[0]
            .value_from
            .as_ref()
            .unwrap()
            .config_map_key_ref
            .as_ref()
            .unwrap()
            .name
            .clone();
        let volume = spec.volumes.as_ref().unwrap()[0]
            .config_map
            .as_ref()
            .unwrap()
            .name
            .clone();
        assert_eq!(name, volume, "env and volume read the same copy");
        assert_ne!(name, "web-config", "pods read a copy, not the original");
        let copy = maps.get(&name).await.unwrap();
        assert_eq!(copy.immutable, Some(true), "{name} is immutable");
        seen.push((revision, copy.data.unwrap()["greeting"].clone()));
    }
    seen.sort();
    seen.dedup();
    seen
}

async fn copies(client: &Client, ns: &str) -> Vec<String> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let list = maps
        .list(&ListParams::default().labels("serin.dev/snapshot-of=web-config"))
        .await
        .unwrap();
    let mut names: Vec<_> = list.items.into_iter().filter_map(|c| c.metadata.name).collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_configmap_edit_rolls_out_each_revision_keeps_its_copy_and_undo_brings_it_back() {
    let (client, ns, _controller) = setup("snapshots").await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let config: ConfigMap = from_json(json!({ "metadata": { "name": "web-config" }, "data": { "greeting": "hello" } }));
    maps.create(&PostParams::default(), &config).await.unwrap();
    let api = releases(&client, &ns.name);
    api.create(&PostParams::default(), &release()).await.unwrap();
    let ready = wait_condition(&api, "web", "Ready", "True", None, LIMIT).await;
    let v1 = ready.status.unwrap().current_revision.unwrap();
    assert_eq!(
        greetings(&client, &ns.name).await,
        vec![(v1.clone(), "hello".to_string())]
    );
    let first_copies = copies(&client, &ns.name).await;
    assert_eq!(first_copies.len(), 1);

    // Edit the ConfigMap: a new revision rolls out, as for a template change.
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns.name);
    let v1_for_watch = v1.clone();
    let started = tokio::spawn(async move {
        let mut created = watcher(rs_api, watcher::Config::default()).applied_objects().boxed();
        while let Some(Ok(rs)) = created.next().await {
            let revision = rs
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("serin.dev/revision"))
                .cloned();
            if revision.is_some_and(|r| r != v1_for_watch) {
                return Instant::now();
            }
        }
        panic!("the watch ended");
    });
    let edited = Instant::now();
    set_greeting(&maps, "hola").await;
    let v2 = wait_for("a new revision for the edited ConfigMap", LIMIT, || async {
        let status = api.get("web").await.ok()?.status?;
        status.current_revision.filter(|r| *r != v1)
    })
    .await;
    let rollout_started = started.await.unwrap();
    println!(
        "configmap-edit-to-rollout: {} ms (the ConfigMap patch returning to the new revision's ReplicaSet, as a watch sees it)",
        (rollout_started - edited).as_millis()
    );
    // Mid-rollout, the new pods read the new value and the old pods the old one.
    let both = wait_for("pods of both revisions", LIMIT, || async {
        let seen = greetings(&client, &ns.name).await;
        (seen.len() == 2).then_some(seen)
    })
    .await;
    let mut want = vec![(v1.clone(), "hello".to_string()), (v2.clone(), "hola".to_string())];
    want.sort();
    assert_eq!(both, want);
    ready_on(&api, &v2).await;
    assert_eq!(copies(&client, &ns.name).await.len(), 2);

    // Undo: the old revision, and its old value, come back.
    let undo = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-serin"))
        .args(["-n", &ns.name, "undo", "web"])
        .output()
        .await
        .unwrap();
    assert!(undo.status.success(), "{}", String::from_utf8_lossy(&undo.stderr));
    // The undone template names v1's copy: its pods read hello again. (The
    // template comes back as the API server defaulted it, so the revision
    // is a new one with v1's pods and config.)
    let back = wait_for("the undo rolled out", LIMIT, || async {
        let status = api.get("web").await.ok()?.status?;
        let done = status.phase == Some(Phase::Healthy) && status.stable_revision.as_ref() != Some(&v2);
        done.then_some(status.stable_revision?)
    })
    .await;
    wait_for("only the undone revision's pods, reading hello", LIMIT, || async {
        (greetings(&client, &ns.name).await == vec![(back.clone(), "hello".to_string())]).then_some(())
    })
    .await;

    // Trimming: with revisionHistoryLimit 0 v2's ReplicaSet goes, and its copy with it.
    let patch = json!({ "spec": { "revisionHistoryLimit": 0 } });
    api.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_for("v2's copy to go with its ReplicaSet", LIMIT, || async {
        (copies(&client, &ns.name).await == first_copies).then_some(())
    })
    .await;
}

#[tokio::test]
async fn secrets_are_snapshotted_where_the_controller_watches_them() {
    let client = crate::support::client().await;
    crate::support::operator::install_crds(&client).await;
    let ns = crate::support::TestNamespace::new(&client, "snapshots-secret").await;
    let flag = format!("--snapshot-secrets-in={}", ns.name);
    let _controller = crate::support::operator::ControllerProcess::start_with(&ns.name, "", &[&flag]).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let secret: Secret = from_json(json!({ "metadata": { "name": "db" }, "stringData": { "password": "one" } }));
    secrets.create(&PostParams::default(), &secret).await.unwrap();
    let mut release = release();
    release.spec.config_snapshots = Some(from_json(json!({ "configMaps": false, "secrets": true })));
    let spec = release.spec.template.spec.as_mut().unwrap();
    spec.volumes = None;
    spec.containers[0].volume_mounts = None;
    spec.containers[0].env = None;
    spec.containers[0].env_from = Some(vec![from_json(json!({ "secretRef": { "name": "db" } }))]);
    let api = releases(&client, &ns.name);
    api.create(&PostParams::default(), &release).await.unwrap();
    let ready = wait_condition(&api, "web", "Ready", "True", None, LIMIT).await;
    let v1 = ready.status.unwrap().current_revision.unwrap();
    let copy_of = |revision: String| {
        let client = client.clone();
        let ns = ns.name.clone();
        async move {
            let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
            let rs = sets.get(&format!("web-{revision}")).await.ok()?;
            let spec = rs.spec?.template?.spec?;
            let name = spec.containers[0].env_from.as_ref()?[0]
                .secret_ref
                .as_ref()?
                .name
                .clone();
            let copy = Api::<Secret>::namespaced(client, &ns).get(&name).await.ok()?;
            let password = copy.data?.get("password")?.0.clone();
            Some((name, copy.immutable, String::from_utf8(password).ok()?))
        }
    };
    let (name, immutable, password) = copy_of(v1.clone()).await.expect("v1 reads a copy of the Secret");
    assert_ne!(name, "db");
    assert_eq!((immutable, password.as_str()), (Some(true), "one"));

    let patch = json!({ "stringData": { "password": "two" } });
    secrets
        .patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let v2 = wait_for("a new revision for the edited Secret", LIMIT, || async {
        let status = api.get("web").await.ok()?.status?;
        status.current_revision.filter(|r| *r != v1)
    })
    .await;
    ready_on(&api, &v2).await;
    let (_, _, password) = copy_of(v2).await.expect("v2 reads a copy of the Secret");
    assert_eq!(password, "two");
}
