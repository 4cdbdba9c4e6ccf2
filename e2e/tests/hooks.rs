//! Lifecycle hooks on a real control plane: a migration Job before a
//! revision gets any pod, a smoke-test Job after it has all the traffic.
use std::time::Instant;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use serin::api::{AnalysisPhase, AnalysisTemplate, Release};

use crate::canary::{create_route, gateway_canary};
use crate::support::bounds::BoundsSampler;
use crate::support::operator::{ControllerProcess, releases, setup, wait_condition};
use crate::support::rollout::{
    LIMIT, create_services, ready_on, replicas, roll_to_v2, set_image, wait_replicas, web_release,
};
use crate::support::traffic::{CANARY, STABLE, TrafficRecorder};
use crate::support::{from_json, wait_for};

/// An AnalysisTemplate of one Job metric (no count: a hook measures it once)
/// whose pod fails when `crash`, and starts after `run_for` (kwok's ready delay).
async fn job_template(client: &Client, ns: &str, name: &str, crash: bool, run_for: &str) {
    let fault = if crash { "crash" } else { "none" };
    let template: AnalysisTemplate = from_json(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": { "name": name },
        "spec": { "metrics": [{ "name": name, "provider": { "job": { "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {
                    "labels": { "serin.dev/fault": fault },
                    "annotations": { "serin.dev/ready-delay": run_for }
                },
                "spec": { "restartPolicy": "Never", "containers": [{ "name": name, "image": "example.com/tool:1" }] }
            }
        } } } }] }
    }));
    Api::<AnalysisTemplate>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &template)
        .await
        .unwrap();
}

fn with_hooks(mut release: Release, hooks: Value) -> Release {
    release.spec.hooks = Some(from_json(hooks));
    release
}

fn hook(template: &str) -> Value {
    json!({ "templates": [{ "templateName": template }] })
}

/// The hook Jobs of the namespace, by name.
async fn hook_jobs(client: &Client, ns: &str) -> Vec<Job> {
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels("serin.dev/hook"))
        .await
        .unwrap()
        .items
}

async fn replica_sets_of(client: &Client, ns: &str, revision: &str) -> usize {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let selector = format!("serin.dev/revision={revision}");
    api.list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items
        .len()
}

#[tokio::test]
async fn a_failing_migration_leaves_the_old_revision_serving_with_nothing_scaled() {
    let (client, ns, _controller) = setup("hook-pre-fail").await;
    job_template(&client, &ns.name, "migrate", true, "0s").await;
    let api = releases(&client, &ns.name);
    let release = web_release(3, json!({ "rolling": { "maxSurge": 1, "maxUnavailable": 0 } }));
    api.create(&PostParams::default(), &release).await.unwrap();
    let v1 = ready_on_current(&api).await;
    let patch = json!({ "spec": { "hooks": { "preRollout": hook("migrate") } } });
    api.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let v2 = set_image(&api, "example.com/web:2").await;

    let failed = wait_condition(&api, "web", "Degraded", "True", Some("PreRolloutHookFailed"), LIMIT).await;
    let status = failed.status.unwrap();
    assert_eq!(status.failed_revision.as_ref(), Some(&v2));
    let message = status.message.unwrap();
    assert!(message.contains("preRollout"), "{message}");
    assert_eq!(
        replica_sets_of(&client, &ns.name, &v2).await,
        0,
        "no ReplicaSet for the new revision"
    );
    assert_eq!(replicas(&client, &ns.name, &v1).await, 3);
    let jobs = hook_jobs(&client, &ns.name).await;
    assert_eq!(jobs.len(), 1, "one migration Job");
    let name = jobs[0].metadata.name.clone().unwrap();
    assert!(name.contains(&v2), "named by its revision: {name}");
    let hook = status.hooks.and_then(|h| h.pre_rollout).expect("the hook's status");
    assert_eq!(
        (hook.revision.as_str(), hook.phase),
        (v2.as_str(), AnalysisPhase::Failed)
    );
}

async fn ready_on_current(api: &Api<Release>) -> String {
    let ready = wait_condition(api, "web", "Ready", "True", None, LIMIT).await;
    ready.status.unwrap().current_revision.unwrap()
}

#[tokio::test]
async fn a_migration_runs_exactly_once_across_a_controller_kill() {
    let (client, ns, controller) = setup("hook-pre-once").await;
    job_template(&client, &ns.name, "migrate", false, "6s").await;
    let api = releases(&client, &ns.name);
    let release = with_hooks(
        web_release(3, json!({ "rolling": { "maxSurge": 1, "maxUnavailable": 0 } })),
        json!({ "preRollout": hook("migrate") }),
    );
    api.create(&PostParams::default(), &release).await.unwrap();
    ready_on_current(&api).await;
    // Counted before v2 starts: a new revision's round deletes older revisions' hook Jobs.
    let v1_jobs = hook_jobs(&client, &ns.name).await;
    assert_eq!(v1_jobs.len(), 1, "the first revision ran its migration");
    let v2 = set_image(&api, "example.com/web:2").await;

    // Kill the controller while v2's migration Job runs.
    let job = wait_for("v2's migration Job", LIMIT, || async {
        hook_jobs(&client, &ns.name)
            .await
            .into_iter()
            .find(|j| j.metadata.name.as_deref().is_some_and(|n| n.contains(&v2)))
    })
    .await;
    assert!(
        job.status.as_ref().and_then(|s| s.completion_time.as_ref()).is_none(),
        "still running"
    );

    // The hook-to-first-pod delay: from the Job's completion to v2's
    // ReplicaSet, as watches deliver them.
    let name = job.metadata.name.clone().unwrap();
    let job_done = {
        let name = name.clone();
        first_seen(Api::<Job>::namespaced(client.clone(), &ns.name), move |j: &Job| {
            j.metadata.name.as_deref() == Some(name.as_str())
                && j.status.as_ref().is_some_and(|s| s.completion_time.is_some())
        })
    };
    let v2_created = {
        let v2 = v2.clone();
        first_seen(
            Api::<ReplicaSet>::namespaced(client.clone(), &ns.name),
            move |rs: &ReplicaSet| rs.metadata.labels.as_ref().and_then(|l| l.get("serin.dev/revision")) == Some(&v2),
        )
    };
    controller.kill().await;
    let _restarted = ControllerProcess::start(&ns.name).await;
    let (completed, created) =
        tokio::time::timeout(LIMIT, async { (job_done.await.unwrap(), v2_created.await.unwrap()) })
            .await
            .expect("the migration completes and v2 gets its ReplicaSet");
    assert!(created >= completed, "v2's ReplicaSet only after its migration");
    println!(
        "hook-to-first-pod: {} ms (the migration Job's completion to v2's ReplicaSet, as watches see them; after a controller kill -9)",
        (created - completed).as_millis()
    );
    ready_on(&api, &v2).await;
    let v2_jobs: Vec<_> = hook_jobs(&client, &ns.name)
        .await
        .into_iter()
        .filter_map(|j| j.metadata.name)
        .collect();
    assert_eq!(v2_jobs, vec![name], "exactly one migration for v2; v1's went with it");
}

/// A smoke test that fails, after a rolling update: back on v1, within the bounds.
#[tokio::test]
async fn a_failing_smoke_test_after_a_rolling_update_ends_on_the_previous_revision() {
    let (client, ns, _controller) = setup("hook-post-rolling").await;
    job_template(&client, &ns.name, "smoke", true, "1s").await;
    let api = releases(&client, &ns.name);
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns.name);
    let release = with_hooks(
        web_release(4, json!({ "rolling": { "maxSurge": 1, "maxUnavailable": 0 } })),
        json!({ "postRollout": hook("smoke") }),
    );
    api.create(&PostParams::default(), &release).await.unwrap();
    let v1 = ready_on_current(&api).await;
    let sampler = BoundsSampler::start(rs_api, 5, 4).await;
    let v2 = set_image(&api, "example.com/web:2").await;
    let failed = wait_condition(&api, "web", "Degraded", "True", Some("PostRolloutHookFailed"), LIMIT).await;
    assert_eq!(failed.status.unwrap().failed_revision.as_ref(), Some(&v2));
    wait_replicas(&client, &ns.name, &v1, 4).await;
    wait_replicas(&client, &ns.name, &v2, 0).await;
    let samples = sampler.finish();
    assert!(samples > 5, "the sampler saw the rollout ({samples} samples)");
}

#[tokio::test]
async fn a_failing_smoke_test_after_a_canary_promotion_ends_on_the_previous_revision() {
    let (client, ns, _controller) = setup("hook-post-canary").await;
    create_services(&client, &ns.name, &[STABLE, CANARY]).await;
    create_route(&client, &ns.name).await;
    job_template(&client, &ns.name, "smoke", true, "1s").await;
    let recorder = TrafficRecorder::start(&client, &ns.name).await;
    let api = releases(&client, &ns.name);
    let release = with_hooks(
        crate::canary::release(3, gateway_canary(json!([{ "setWeight": 50 }]))),
        json!({ "postRollout": hook("smoke") }),
    );
    let (v1, v2) = roll_to_v2(&api, &release).await;
    let failed = wait_condition(&api, "web", "Degraded", "True", Some("PostRolloutHookFailed"), LIMIT).await;
    let status = failed.status.unwrap();
    assert_eq!(status.stable_revision.as_ref(), Some(&v1));
    wait_replicas(&client, &ns.name, &v2, 0).await;
    assert_eq!(replicas(&client, &ns.name, &v1).await, 3);
    let states = recorder.finish().await;
    let last = states.last().unwrap();
    assert_eq!(last.services.get(STABLE), Some(&Some(v1.clone())));
    assert!(
        states
            .iter()
            .any(|w| w.services.get(STABLE) == Some(&Some(v2.clone())) && w.replicas(&v1) == 3),
        "the smoke test ran with all traffic on v2 and v1 standing by"
    );
}

#[tokio::test]
async fn a_failing_smoke_test_after_a_blue_green_switch_ends_on_the_previous_revision() {
    let (client, ns, _controller) = setup("hook-post-bg").await;
    create_services(&client, &ns.name, &[STABLE]).await;
    job_template(&client, &ns.name, "smoke", true, "1s").await;
    let recorder = TrafficRecorder::start(&client, &ns.name).await;
    let api = releases(&client, &ns.name);
    let release = with_hooks(
        web_release(
            3,
            json!({ "blueGreen": { "activeService": STABLE, "scaleDownDelaySeconds": 2 } }),
        ),
        json!({ "postRollout": hook("smoke") }),
    );
    let (v1, v2) = roll_to_v2(&api, &release).await;
    let failed = wait_condition(&api, "web", "Degraded", "True", Some("PostRolloutHookFailed"), LIMIT).await;
    assert_eq!(failed.status.unwrap().stable_revision.as_ref(), Some(&v1));
    wait_replicas(&client, &ns.name, &v2, 0).await;
    let states = recorder.finish().await;
    assert_eq!(states.last().unwrap().services.get(STABLE), Some(&Some(v1.clone())));
    assert!(
        states.iter().any(|w| w.services.get(STABLE) == Some(&Some(v2.clone()))),
        "switched to v2 before the smoke test failed"
    );
}

/// When a watch of `api` first delivers an object for which `found` holds.
fn first_seen<K>(api: Api<K>, found: impl Fn(&K) -> bool + Send + 'static) -> tokio::task::JoinHandle<Instant>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    tokio::spawn(async move {
        let mut objects = watcher(api, watcher::Config::default()).applied_objects().boxed();
        while let Some(Ok(object)) = objects.next().await {
            if found(&object) {
                return Instant::now();
            }
        }
        panic!("the watch ended");
    })
}
