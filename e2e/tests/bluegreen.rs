//! Blue-green releases on a real control plane: preview, switch, automatic and
//! manual promotion, checks before and after the switch, and zero downtime
//! checked over every write (including the active Service's EndpointSlices).
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Service;
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::{Value, json};
use serin::api::{AnalysisTemplate, Release};

use crate::support::TestNamespace;
use crate::support::operator::{ControllerProcess, releases, setup, wait_condition};
use crate::support::rollout::{
    LIMIT, control, create_services, ready_on, replicas, roll_to_v2, set_image, wait_replicas, web_release,
};
use crate::support::traffic::{STABLE, TrafficRecorder};
use crate::support::{from_json, kubectl_apply, readme_yaml, wait_for};

const PREVIEW: &str = "web-preview";

fn release(replicas: i32, extra: Value) -> Release {
    let mut strategy = json!({
        "activeService": STABLE, "previewService": PREVIEW,
        "scaleDownDelaySeconds": 2, "abortScaleDownDelaySeconds": 2,
    });
    if let (Some(strategy), Some(extra)) = (strategy.as_object_mut(), extra.as_object()) {
        strategy.extend(extra.clone());
    }
    web_release(replicas, json!({ "blueGreen": strategy }))
}

/// The revision a Service selects now.
async fn selects(client: &Client, ns: &str, service: &str) -> Option<String> {
    let service = Api::<Service>::namespaced(client.clone(), ns).get(service).await.ok()?;
    service.spec?.selector?.get("serin.dev/revision").cloned()
}

async fn wait_selects(client: &Client, ns: &str, service: &str, revision: &str) {
    wait_for(&format!("{service} to select {revision}"), LIMIT, || async {
        (selects(client, ns, service).await.as_deref() == Some(revision)).then_some(())
    })
    .await;
}

/// An AnalysisTemplate whose one Job check passes, or fails when `crash`,
/// taken `initial_delay` after the analysis starts.
async fn smoke_template(client: &Client, ns: &str, name: &str, crash: bool, initial_delay: &str) {
    let fault = if crash { "crash" } else { "none" };
    let template: AnalysisTemplate = from_json(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": { "name": name },
        "spec": { "metrics": [{ "name": "smoke", "count": 1, "initialDelay": initial_delay, "provider": { "job": { "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": { "labels": { "serin.dev/fault": fault } },
                "spec": { "restartPolicy": "Never", "containers": [{ "name": "smoke", "image": "example.com/smoke:1" }] }
            }
        } } } }] }
    }));
    Api::<AnalysisTemplate>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &template)
        .await
        .unwrap();
}

/// A namespace with the active and preview Services, a controller, and a recorder.
async fn start(test: &str) -> (Client, TestNamespace, ControllerProcess, TrafficRecorder) {
    let (client, ns, controller) = setup(test).await;
    create_services(&client, &ns.name, &[STABLE, PREVIEW]).await;
    let recorder = TrafficRecorder::start(&client, &ns.name).await;
    (client, ns, controller, recorder)
}

#[tokio::test]
async fn a_preview_switches_by_itself_after_auto_promotion_seconds() {
    let (client, ns, _controller, recorder) = start("bg-auto").await;
    let api = releases(&client, &ns.name);
    let extra = json!({ "previewReplicaCount": 2, "autoPromotionSeconds": 3 });
    let (v1, v2) = roll_to_v2(&api, &release(6, extra)).await;

    wait_selects(&client, &ns.name, PREVIEW, &v2).await;
    wait_replicas(&client, &ns.name, &v2, 2).await;
    assert_eq!(
        selects(&client, &ns.name, STABLE).await,
        Some(v1.clone()),
        "preview first"
    );
    let ready_at = Instant::now();
    wait_selects(&client, &ns.name, STABLE, &v2).await;
    assert!(
        ready_at.elapsed() >= Duration::from_secs(2),
        "switched after autoPromotionSeconds"
    );
    ready_on(&api, &v2).await;
    wait_replicas(&client, &ns.name, &v1, 0).await;

    let states = recorder.finish().await;
    // The preview ran 2 pods beside all 6 of the old revision before the switch.
    assert!(states.iter().any(|w| w.replicas(&v2) == 2 && w.replicas(&v1) == 6));
    let last = states.last().unwrap();
    assert!(last.ready_endpoints(STABLE) >= 6, "{:?}", last.endpoints);
}

#[tokio::test]
async fn without_auto_promotion_a_person_promotes() {
    let (client, ns, _controller, recorder) = start("bg-manual").await;
    let api = releases(&client, &ns.name);
    let (v1, v2) = roll_to_v2(&api, &release(4, json!({ "autoPromotionEnabled": false }))).await;
    let waiting = wait_condition(&api, "web", "Progressing", "True", Some("AwaitingPromotion"), LIMIT).await;
    assert_eq!(
        waiting.status.unwrap().phase.map(|p| p.to_string()),
        Some("Paused".into())
    );
    assert_eq!(selects(&client, &ns.name, PREVIEW).await, Some(v2.clone()));
    assert_eq!(selects(&client, &ns.name, STABLE).await, Some(v1.clone()));

    control(&ns.name, "promote").await;
    ready_on(&api, &v2).await;
    assert_eq!(selects(&client, &ns.name, STABLE).await, Some(v2));
    wait_replicas(&client, &ns.name, &v1, 0).await;
    recorder.finish().await;
}

#[tokio::test]
async fn a_failing_pre_promotion_analysis_blocks_the_switch_and_scales_the_preview_down() {
    let (client, ns, _controller, recorder) = start("bg-pre").await;
    smoke_template(&client, &ns.name, "smoke", true, "0s").await;
    let api = releases(&client, &ns.name);
    let extra = json!({ "prePromotionAnalysis": { "templates": [{ "templateName": "smoke" }] } });
    let (v1, v2) = roll_to_v2(&api, &release(4, extra)).await;

    let failed = wait_condition(&api, "web", "Degraded", "True", Some("AnalysisFailed"), LIMIT).await;
    assert!(failed.status.unwrap().message.unwrap().contains("smoke"));
    assert_eq!(
        selects(&client, &ns.name, STABLE).await,
        Some(v1.clone()),
        "never switched"
    );
    wait_selects(&client, &ns.name, PREVIEW, &v1).await;
    wait_replicas(&client, &ns.name, &v2, 0).await;
    assert_eq!(replicas(&client, &ns.name, &v1).await, 4);
    let states = recorder.finish().await;
    assert!(states.iter().all(|w| w.services.get(STABLE) != Some(&Some(v2.clone()))));
}

#[tokio::test]
async fn a_failing_post_promotion_analysis_switches_back_within_ten_seconds() {
    let (client, ns, _controller, recorder) = start("bg-post").await;
    smoke_template(&client, &ns.name, "smoke", true, "0s").await;
    let api = releases(&client, &ns.name);
    // Time from the failing measurement (its Job failing, seen on a watch) to the switch back.
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    let failed_at = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = failed_at.clone();
    let watching = tokio::spawn(async move {
        let mut events = watcher(jobs, watcher::Config::default()).applied_objects().boxed();
        while let Some(Ok(job)) = events.next().await {
            let failed = job
                .status
                .and_then(|s| s.conditions)
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Failed" && c.status == "True"));
            if failed {
                seen.lock().unwrap().get_or_insert(Instant::now());
            }
        }
    });
    let extra = json!({ "postPromotionAnalysis": { "templates": [{ "templateName": "smoke" }] } });
    let (v1, v2) = roll_to_v2(&api, &release(4, extra)).await;
    wait_selects(&client, &ns.name, STABLE, &v2).await;

    let switched_back = wait_for("the active Service to switch back", LIMIT, || async {
        (selects(&client, &ns.name, STABLE).await.as_deref() == Some(v1.as_str())).then(Instant::now)
    })
    .await;
    watching.abort();
    let measured_at = failed_at.lock().unwrap().expect("the failing Job was seen");
    let took = switched_back.saturating_duration_since(measured_at);
    assert!(
        took <= Duration::from_secs(10),
        "switched back {took:?} after the failing measurement"
    );
    println!("switched back {took:?} after the failing measurement was seen");

    wait_condition(&api, "web", "Degraded", "True", Some("AnalysisFailed"), LIMIT).await;
    wait_replicas(&client, &ns.name, &v2, 0).await;
    assert_eq!(replicas(&client, &ns.name, &v1).await, 4);
    recorder.finish().await;
}

#[tokio::test]
async fn a_person_aborts_and_the_active_service_goes_back() {
    let (client, ns, _controller, recorder) = start("bg-abort").await;
    // A check taken 60s after the switch keeps the new revision on probation,
    // so there is time to abort after the switch.
    smoke_template(&client, &ns.name, "slow", false, "60s").await;
    let api = releases(&client, &ns.name);
    let extra = json!({ "postPromotionAnalysis": { "templates": [{ "templateName": "slow" }] } });
    let (v1, v2) = roll_to_v2(&api, &release(4, extra)).await;
    wait_selects(&client, &ns.name, STABLE, &v2).await;

    control(&ns.name, "abort").await;
    wait_condition(&api, "web", "Degraded", "True", Some("Aborted"), LIMIT).await;
    assert_eq!(selects(&client, &ns.name, STABLE).await, Some(v1.clone()));
    wait_replicas(&client, &ns.name, &v2, 0).await;
    assert_eq!(replicas(&client, &ns.name, &v1).await, 4);
    recorder.finish().await;
}

#[tokio::test]
async fn a_new_template_during_preview_supersedes_it() {
    let (client, ns, _controller, recorder) = start("bg-supersede").await;
    let api = releases(&client, &ns.name);
    let extra = json!({ "autoPromotionEnabled": false, "previewReplicaCount": 2 });
    let (v1, v2) = roll_to_v2(&api, &release(4, extra)).await;
    wait_condition(&api, "web", "Progressing", "True", Some("AwaitingPromotion"), LIMIT).await;

    let v3 = set_image(&api, "example.com/web:3").await;
    wait_selects(&client, &ns.name, PREVIEW, &v3).await;
    wait_replicas(&client, &ns.name, &v2, 0).await;
    let waiting = wait_condition(&api, "web", "Progressing", "True", Some("AwaitingPromotion"), LIMIT).await;
    let blue_green = waiting.status.unwrap().blue_green.unwrap();
    assert_eq!(blue_green.preview_revision, Some(v3.clone()));
    assert_eq!(blue_green.active_revision, Some(v1.clone()));
    assert_eq!(replicas(&client, &ns.name, &v3).await, 2);

    control(&ns.name, "promote").await;
    ready_on(&api, &v3).await;
    wait_replicas(&client, &ns.name, &v1, 0).await;
    recorder.finish().await;
}

#[tokio::test]
async fn the_readme_blue_green_example_applies_and_becomes_ready() {
    let (client, ns, _controller) = setup("bg-readme").await;
    kubectl_apply(&ns.name, &readme_yaml("Save as `bluegreen.yaml`")).await;

    let api = releases(&client, &ns.name);
    let ready = wait_condition(&api, "web", "Ready", "True", None, LIMIT).await;
    let revision = ready.status.unwrap().current_revision.unwrap();
    assert_eq!(selects(&client, &ns.name, STABLE).await, Some(revision.clone()));
    assert_eq!(selects(&client, &ns.name, PREVIEW).await, Some(revision));
}
