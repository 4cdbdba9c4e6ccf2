//! The declarative router on a kind this test defines, shaped like Traefik's
//! TraefikService (`spec.services[]` of name and weight): a full canary
//! driven by a merge-patch template and JSONPath filters, and a bad template
//! refused as InvalidSpec naming the field.
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::canary::{paused_at, release};
use crate::support::operator::{releases, setup, setup_with};
use crate::support::rollout::{LIMIT, control, create_services, ready_on, replicas, roll_to_v2};
use crate::support::traffic::{CANARY, STABLE, TrafficRecorder};
use crate::support::{assert_quiet, from_json, wait_for};

const GROUP: &str = "e2e.serin.dev";
const WATCH: &str = "--watch-generic=e2e.serin.dev/v1/weightedbackends";

fn kind() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, "v1", "WeightedBackend"),
        "weightedbackends",
    )
}

/// Installs the test's CRD (once per cluster; applying again changes nothing).
async fn install_crd(client: &Client) {
    let crd: CustomResourceDefinition = from_json(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("weightedbackends.{GROUP}") },
        "spec": {
            "group": GROUP, "scope": "Namespaced",
            "names": { "kind": "WeightedBackend", "plural": "weightedbackends", "singular": "weightedbackend" },
            "versions": [{ "name": "v1", "served": true, "storage": true, "schema": { "openAPIV3Schema": {
                "type": "object",
                "properties": { "spec": { "type": "object", "properties": { "services": {
                    "type": "array",
                    "items": { "type": "object", "required": ["name", "weight"], "properties": {
                        "name": { "type": "string" }, "weight": { "type": "integer", "minimum": 0 },
                    } },
                } } } },
            } } }],
        },
    }));
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        crd.metadata.name.as_deref().unwrap(),
        &PatchParams::apply("serin-e2e").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    wait_for("the test CRD to be served", LIMIT, || async {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind());
        api.list(&Default::default()).await.ok().map(|_| ())
    })
    .await;
}

fn generic(template: &str) -> Value {
    json!({
        "stableService": STABLE, "canaryService": CANARY, "scaleDownDelaySeconds": 2,
        "steps": [{ "setWeight": 20 }, { "pause": { "duration": "1s" } }, { "setWeight": 60 }, { "pause": {} }],
        "trafficRouting": { "generic": {
            "apiVersion": format!("{GROUP}/v1"), "kind": "WeightedBackend", "name": "web",
            "patch": { "type": "merge", "template": template },
            "weights": {
                "stable": format!("$.spec.services[?@.name=='{STABLE}'].weight"),
                "canary": format!("$.spec.services[?@.name=='{CANARY}'].weight"),
            },
        } },
    })
}

const TEMPLATE: &str =
    "spec:\n  services:\n  - {name: web, weight: {{stableWeight}}}\n  - {name: web-canary, weight: {{canaryWeight}}}\n";

async fn weights(api: &Api<DynamicObject>) -> Vec<(String, i64)> {
    let object = api.get("web").await.unwrap();
    let services = object.data["spec"]["services"].as_array().cloned().unwrap_or_default();
    services
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                s["weight"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_declared_router_drives_a_test_kind_through_a_full_canary() {
    // The CRD first: the controller watches the kind only if it is served at start.
    install_crd(&crate::support::client().await).await;
    let (client, ns, _controller) = setup_with("generic-router", &[WATCH]).await;
    create_services(&client, &ns.name, &[STABLE, CANARY]).await;
    let objects: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &kind());
    let object: DynamicObject = from_json(json!({
        "apiVersion": format!("{GROUP}/v1"), "kind": "WeightedBackend", "metadata": { "name": "web" },
        "spec": { "services": [{ "name": STABLE, "weight": 100 }, { "name": CANARY, "weight": 0 }] },
    }));
    objects.create(&PostParams::default(), &object).await.unwrap();
    let recorder = TrafficRecorder::start_generic(&client, &ns.name, &kind()).await;
    let api = releases(&client, &ns.name);
    let (v1, v2) = roll_to_v2(&api, &release(5, generic(TEMPLATE))).await;

    paused_at(&api, 3).await;
    assert_quiet(&objects, "web").await;
    let pair = |s: i64, c: i64| vec![(STABLE.to_string(), s), (CANARY.to_string(), c)];
    assert_eq!(weights(&objects).await, pair(40, 60));
    assert_eq!(replicas(&client, &ns.name, &v2).await, 3, "60% of 5, rounded up");
    control(&ns.name, "promote").await;
    ready_on(&api, &v2).await;
    assert_eq!(weights(&objects).await, pair(100, 0));
    wait_for("the old revision scaled down", LIMIT, || async {
        (replicas(&client, &ns.name, &v1).await == 0).then_some(())
    })
    .await;
    let states = recorder.finish().await;
    let mut seen: Vec<(i64, i64)> = Vec::new();
    for w in states.iter().filter_map(|w| w.weights) {
        if seen.last() != Some(&w) {
            seen.push(w);
        }
    }
    assert_eq!(seen, [(100, 0), (80, 20), (40, 60), (100, 0)]);

    // Watched, a hand edit of the weights is put back at once.
    let edit = json!({ "spec": { "services": [{ "name": STABLE, "weight": 0 }, { "name": CANARY, "weight": 100 }] } });
    objects
        .patch("web", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    wait_for("the weights put back", std::time::Duration::from_secs(5), || async {
        (weights(&objects).await == pair(100, 0)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_bad_patch_template_is_invalid_spec_naming_the_field_and_nothing_moves() {
    let (client, ns, _controller) = setup("generic-invalid").await;
    create_services(&client, &ns.name, &[STABLE, CANARY]).await;
    let api = releases(&client, &ns.name);
    let bad = release(3, generic("spec: {services: [{name: web, weight: 100}]}"));
    api.create(&PostParams::default(), &bad).await.unwrap();
    let field = "spec.strategy.canary.trafficRouting.generic.patch.template";
    let message = wait_for("InvalidSpec naming the template", LIMIT, || async {
        let release = api.get("web").await.ok()?;
        let status = release.status?;
        let degraded = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Degraded" && c.reason == "InvalidSpec")?;
        degraded.message.contains(field).then(|| degraded.message.clone())
    })
    .await;
    eprintln!("InvalidSpec: {message}");
    assert!(message.contains("lacks {{stableWeight}}"), "{message}");
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns.name);
    assert!(
        replica_sets.list(&Default::default()).await.unwrap().items.is_empty(),
        "nothing scaled"
    );
}
