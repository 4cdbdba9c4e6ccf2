//! serin's Argo CD health check and actions, run by Argo CD's own runtime
//! (gopher-lua set up as argo-cd's util/lua does, e2e/tools/argocd-lua) on
//! live Releases: each action's requests are sent as Argo CD's API server
//! sends them, and serin must act on them.
use serde_json::{Value, json};
use serin::api::Release;

use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

use crate::canary::{paused_at, release};
use crate::support::TestNamespace;
use crate::support::argocd::{
    argocd_action, argocd_enabled_actions, argocd_health, argocd_requests, capture, send_argocd_requests,
};
use crate::support::operator::{releases, setup, wait_condition};
use crate::support::rollout::{LIMIT, create_services, ready_on, roll_to_v2, set_image, wait_replicas, web_release};
use crate::support::traffic::{CANARY, STABLE};
use crate::support::wait_for;

/// The Release as the API server returns it, which is what Argo CD hands
/// its scripts (its server reads it with a dynamic client: managedFields too).
async fn live(ns: &str) -> Value {
    live_named(ns, "web").await
}

async fn live_named(ns: &str, name: &str) -> Value {
    let output = tokio::process::Command::new("kubectl")
        .args(["-n", ns, "get", "release", name, "-o", "json", "--show-managed-fields"])
        .output()
        .await
        .expect("kubectl on PATH");
    assert!(
        output.status.success(),
        "kubectl get: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("kubectl prints JSON")
}

/// Runs action `name` as Argo CD does on the live Release: it must ask for
/// exactly `want` (nothing else of the object may change on the way through
/// Lua), which is then sent.
async fn act(api: &Api<Release>, ns: &str, name: &str, want: Value) {
    let obj = live(ns).await;
    let requests = argocd_requests(&obj, name);
    assert_eq!(Value::Array(requests.clone()), want, "{name} on {obj}");
    send_argocd_requests(api, "web", &requests).await;
}

fn control(field: &str) -> Value {
    json!([{ "verb": "patch", "subresource": "status", "patch": { "status": { "control": { field: true } } } }])
}

fn paused(value: bool) -> Value {
    json!([{ "verb": "patch", "patch": { "spec": { "paused": value } } }])
}

/// Waits until Argo CD reads the live Release `web` as `status`; returns it.
async fn health_is(ns: &str, status: &str) -> Value {
    health_of_is(ns, "web", status).await
}

async fn health_of_is(ns: &str, name: &str, status: &str) -> Value {
    let found = crate::support::poll_until(LIMIT, || async {
        let obj = live_named(ns, name).await;
        (argocd_health(&obj).0 == status).then_some(obj)
    })
    .await;
    match found {
        Some(obj) => obj,
        None => {
            let obj = live_named(ns, name).await;
            panic!(
                "Argo CD's health never became {status}: {:?} for {obj}",
                argocd_health(&obj)
            )
        }
    }
}

#[tokio::test]
async fn argo_cds_runtime_reads_and_drives_a_live_canary() {
    let (client, ns, _controller) = setup("argocd").await;
    create_services(&client, &ns.name, &[STABLE, CANARY]).await;
    let api = releases(&client, &ns.name);
    let canary = json!({
        "stableService": STABLE, "canaryService": CANARY,
        "steps": [{ "setWeight": 50 }, { "pause": {} }]
    });
    let (v1, v2) = roll_to_v2(&api, &release(4, canary)).await;

    // Paused at the `pause: {}` step: Suspended, with serin's message.
    let at_pause = paused_at(&api, 1).await;
    let obj = health_is(&ns.name, "Suspended").await;
    assert_eq!(
        argocd_health(&obj).1,
        at_pause.status.as_ref().unwrap().message.clone().unwrap_or_default()
    );
    assert_eq!(
        argocd_enabled_actions(&obj),
        ["abort", "pause", "promote", "promote-full"]
    );
    capture("canary-pause-step", &obj);
    // The object comes back from Lua as it went in, but for the one change:
    // the empty objects gopher-json turns into [] are put back, and no JSON
    // null or number changes on the way.
    let mut expected = obj.clone();
    expected["status"]["control"]["abort"] = json!(true);
    assert_eq!(argocd_action(&obj, "abort"), expected);

    // Pause and resume edit the spec.
    act(&api, &ns.name, "pause", paused(true)).await;
    wait_condition(&api, "web", "Progressing", "False", Some("Paused"), LIMIT).await;
    let obj = health_is(&ns.name, "Suspended").await;
    assert_eq!(
        argocd_enabled_actions(&obj),
        ["abort", "promote", "promote-full", "resume"]
    );
    capture("spec-paused", &obj);
    act(&api, &ns.name, "resume", paused(false)).await;
    paused_at(&api, 1).await;

    // Abort, then retry, through the status subresource.
    act(&api, &ns.name, "abort", control("abort")).await;
    wait_condition(&api, "web", "Degraded", "True", Some("Aborted"), LIMIT).await;
    wait_replicas(&client, &ns.name, &v2, 0).await;
    let obj = health_is(&ns.name, "Degraded").await;
    assert_eq!(argocd_enabled_actions(&obj), ["pause", "retry"]);
    capture("aborted", &obj);
    act(&api, &ns.name, "retry", control("retry")).await;
    paused_at(&api, 1).await;

    // Promote finishes the pause step: the last one, so v2 becomes stable.
    act(&api, &ns.name, "promote", control("promote")).await;
    ready_on(&api, &v2).await;
    let obj = health_is(&ns.name, "Healthy").await;
    assert_eq!(argocd_enabled_actions(&obj), ["pause"]);
    capture("healthy", &obj);
    wait_replicas(&client, &ns.name, &v1, 0).await;

    // A new template: Progressing until observed and rolling, then Promote Full.
    let v3 = set_image(&api, "example.com/web:3").await;
    paused_at(&api, 1).await;
    act(&api, &ns.name, "promote-full", control("promoteFull")).await;
    ready_on(&api, &v3).await;
    health_is(&ns.name, "Healthy").await;
    wait_for("serin to consume the request", LIMIT, || async {
        let obj = live(&ns.name).await;
        obj["status"]["control"].is_null().then_some(())
    })
    .await;
}

/// A merge patch moving the template to example.com/web:N.
fn image(n: u32) -> Value {
    json!({ "spec": { "template": { "spec": { "containers": [{ "name": "web", "image": format!("example.com/web:{n}") }] } } } })
}

const WAITING: &str = "Waiting for the controller to observe the spec";

#[tokio::test]
async fn argo_cds_runtime_reads_blue_green_invalid_and_unobserved_releases() {
    let (client, ns, controller) = setup("argocd-phases").await;
    create_services(&client, &ns.name, &[STABLE, "web-preview"]).await;
    let api = releases(&client, &ns.name);
    let blue_green = json!({ "blueGreen": {
        "activeService": STABLE, "previewService": "web-preview",
        "autoPromotionEnabled": false, "scaleDownDelaySeconds": 2
    } });
    let (_, v2) = roll_to_v2(&api, &web_release(2, blue_green)).await;

    // The preview is up, waiting for a person: Suspended; Promote switches.
    wait_condition(&api, "web", "Progressing", "True", Some("AwaitingPromotion"), LIMIT).await;
    let obj = health_is(&ns.name, "Suspended").await;
    assert_eq!(
        argocd_enabled_actions(&obj),
        ["abort", "pause", "promote", "promote-full"]
    );
    capture("bluegreen-awaiting-promotion", &obj);
    act(&api, &ns.name, "promote", control("promote")).await;
    ready_on(&api, &v2).await;
    health_is(&ns.name, "Healthy").await;

    // A spec serin refuses: Degraded, and only a new spec helps (no retry).
    let analysis = json!({ "templates": [{ "templateName": "missing" }] });
    let mut invalid = web_release(2, json!({ "rolling": { "analysis": analysis } }));
    invalid.metadata.name = Some("invalid".into());
    api.create(&PostParams::default(), &invalid).await.unwrap();
    // The first revision has nothing to compare against, so no analysis: the
    // second one's is where the missing template counts.
    wait_condition(&api, "invalid", "Ready", "True", None, LIMIT).await;
    api.patch("invalid", &PatchParams::default(), &Patch::Merge(&image(2)))
        .await
        .unwrap();
    wait_condition(&api, "invalid", "Degraded", "True", Some("InvalidSpec"), LIMIT).await;
    let obj = health_of_is(&ns.name, "invalid", "Degraded").await;
    assert_eq!(argocd_enabled_actions(&obj), ["pause"]);
    capture("invalid-spec", &obj);

    // A template the controller has not seen yet: Progressing, whatever the
    // old status says.
    controller.kill().await;
    api.patch("web", &PatchParams::default(), &Patch::Merge(&image(3)))
        .await
        .unwrap();
    let obj = live(&ns.name).await;
    assert!(obj["metadata"]["generation"].as_i64() > obj["status"]["observedGeneration"].as_i64());
    assert_eq!(argocd_health(&obj), ("Progressing".to_string(), WAITING.to_string()));
    capture("generation-not-observed", &obj);

    // No controller yet at all: only the CRD's status default, written by no one.
    let quiet = TestNamespace::new(&client, "argocd-nostatus").await;
    let api = releases(&client, &quiet.name);
    api.create(&PostParams::default(), &web_release(1, json!({ "rolling": {} })))
        .await
        .unwrap();
    let obj = live(&quiet.name).await;
    let writers: Vec<&Value> = obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["subresource"] == "status")
        .map(|m| &m["manager"])
        .collect();
    assert!(
        writers.is_empty() && obj["status"]["observedGeneration"] == 0 && obj["status"]["conditions"].is_null(),
        "no controller of this test watches {}, yet {writers:?} wrote a status (a controller watching every namespace?): {}",
        quiet.name,
        obj["status"]
    );
    assert_eq!(argocd_health(&obj), ("Progressing".to_string(), WAITING.to_string()));
    assert_eq!(argocd_enabled_actions(&obj), ["pause"]);
    capture("no-status", &obj);
}
