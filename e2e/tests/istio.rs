//! Istio on a real control plane (Istio's CRDs, no istiod): a VirtualService
//! driven to the two Services with header and mirror routes, and one driven to
//! DestinationRule subsets that follow the Services. The traffic recorder
//! checks every write, through the subsets where there are some.
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::canary::{paused_at, release};
use crate::support::operator::{releases, setup};
use crate::support::rollout::{control, create_services, ready_on, roll_to_v2, wait_replicas};
use crate::support::traffic::{CANARY, STABLE, TrafficRecorder};
use crate::support::{assert_quiet, from_json};

fn istio(client: &Client, ns: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("networking.istio.io", "v1", kind), plural);
    Api::namespaced_with(client.clone(), ns, &resource)
}

async fn create(api: &Api<DynamicObject>, object: Value) {
    api.create(&PostParams::default(), &from_json(object)).await.unwrap();
}

async fn http(api: &Api<DynamicObject>) -> Vec<Value> {
    api.get("web").await.unwrap().data["spec"]["http"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn names(http: &[Value]) -> Vec<&str> {
    http.iter().map(|r| r["name"].as_str().unwrap_or("")).collect()
}

fn weights(route: &Value) -> (i64, i64) {
    (
        route["route"][0]["weight"].as_i64().unwrap_or(0),
        route["route"][1]["weight"].as_i64().unwrap_or(0),
    )
}

#[tokio::test]
async fn a_virtual_service_carries_weights_header_and_mirror_routes() {
    let (client, ns, _controller) = setup("istio-vs").await;
    create_services(&client, &ns.name, &[STABLE, CANARY]).await;
    let services = istio(&client, &ns.name, "VirtualService", "virtualservices");
    create(
        &services,
        json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": { "name": "web" },
            "spec": { "hosts": ["web.example.com"], "http": [{ "name": "primary", "route": [
                { "destination": { "host": STABLE }, "weight": 100 },
                { "destination": { "host": CANARY }, "weight": 0 },
            ] }] },
        }),
    )
    .await;
    let recorder = TrafficRecorder::start(&client, &ns.name).await;
    let api = releases(&client, &ns.name);
    let canary = json!({
        "stableService": STABLE, "canaryService": CANARY, "scaleDownDelaySeconds": 2,
        "steps": [
            { "setCanaryScale": { "replicas": 1 } },
            { "setHeaderRoute": { "name": "testers", "match": [
                { "headerName": "X-Canary", "headerValue": { "exact": "yes" } }, { "cookieName": "beta" },
            ] } },
            { "setMirrorRoute": { "name": "shadow", "percentage": 10 } },
            { "pause": {} },
            { "setWeight": 50 },
            { "pause": {} },
        ],
        "trafficRouting": { "istio": { "virtualService": { "name": "web", "routes": ["primary"] } } },
    });
    let (_, v2) = roll_to_v2(&api, &release(4, canary)).await;
    paused_at(&api, 3).await;
    assert_quiet(&services, "web").await;
    let at_pause = http(&services).await;
    assert_eq!(
        names(&at_pause),
        ["serin-step2-testers", "serin-step3-shadow", "primary"]
    );
    assert_eq!(
        at_pause[0]["match"],
        json!([{ "headers": { "x-canary": { "exact": "yes" }, "cookie": { "regex": r"(^|.*;\s*)beta=always(;.*|$)" } } }])
    );
    assert_eq!(at_pause[0]["route"], json!([{ "destination": { "host": CANARY } }]));
    assert_eq!(at_pause[1]["mirror"], json!({ "host": CANARY }));
    assert_eq!(at_pause[1]["mirrorPercentage"], json!({ "value": 10 }));

    control(&ns.name, "promote").await;
    paused_at(&api, 5).await;
    let at_half = http(&services).await;
    assert_eq!(
        names(&at_half),
        ["serin-step2-testers", "serin-step3-shadow", "primary"]
    );
    assert_eq!(weights(&at_half[2]), (50, 50));
    assert_eq!(
        weights(&at_half[1]),
        (50, 50),
        "the mirror route carries the weight too"
    );
    control(&ns.name, "promote").await;
    ready_on(&api, &v2).await;
    let after = http(&services).await;
    assert_eq!(names(&after), ["primary"], "no route outlives the canary");
    assert_eq!(weights(&after[0]), (100, 0));
    let states = recorder.finish().await;
    assert!(states.iter().any(|w| w.routes == [2, 3]));
}

#[tokio::test]
async fn destination_rule_subsets_follow_the_services() {
    let (client, ns, _controller) = setup("istio-subsets").await;
    create_services(&client, &ns.name, &[STABLE, CANARY]).await;
    let services = istio(&client, &ns.name, "VirtualService", "virtualservices");
    let rules = istio(&client, &ns.name, "DestinationRule", "destinationrules");
    create(
        &rules,
        json!({
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": { "name": "web" },
            "spec": { "host": STABLE, "subsets": [
                { "name": "stable", "labels": { "app": "web" } }, { "name": "canary", "labels": { "app": "web" } },
            ] },
        }),
    )
    .await;
    create(
        &services,
        json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": { "name": "web" },
            "spec": { "hosts": [STABLE], "http": [{ "route": [
                { "destination": { "host": STABLE, "subset": "stable" }, "weight": 100 },
                { "destination": { "host": STABLE, "subset": "canary" }, "weight": 0 },
            ] }] },
        }),
    )
    .await;
    let recorder = TrafficRecorder::start(&client, &ns.name).await;
    let api = releases(&client, &ns.name);
    let canary = json!({
        "stableService": STABLE, "canaryService": CANARY, "scaleDownDelaySeconds": 2,
        "steps": [{ "setWeight": 30 }, { "pause": {} }],
        "trafficRouting": { "istio": {
            "virtualService": { "name": "web" },
            "destinationRule": { "name": "web", "stableSubsetName": "stable", "canarySubsetName": "canary" },
        } },
    });
    let (v1, v2) = roll_to_v2(&api, &release(4, canary)).await;
    paused_at(&api, 1).await;
    assert_quiet(&services, "web").await;
    assert_quiet(&rules, "web").await;
    let subset_revisions = || async {
        let dr = rules.get("web").await.unwrap();
        let subsets = dr.data["spec"]["subsets"].as_array().cloned().unwrap_or_default();
        subsets
            .iter()
            .map(|s| s["labels"]["serin.dev/revision"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(subset_revisions().await, [v1.clone(), v2.clone()]);
    assert_eq!(weights(&http(&services).await[0]), (70, 30));
    control(&ns.name, "promote").await;
    ready_on(&api, &v2).await;
    wait_replicas(&client, &ns.name, &v1, 0).await;
    assert_eq!(subset_revisions().await, [v2.clone(), v2.clone()]);
    assert_eq!(weights(&http(&services).await[0]), (100, 0));
    let states = recorder.finish().await;
    assert!(
        states
            .iter()
            .any(|w| w.subsets == Some((Some(v1.clone()), Some(v2.clone()))))
    );
}
