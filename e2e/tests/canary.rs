//! Canary releases on a real control plane: Gateway API, NGINX and replica-ratio
//! traffic, human controls, and the traffic invariants checked over every write.
use k8s_openapi::api::networking::v1::Ingress;
use std::time::Duration;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use serin::api::{AnalysisTemplate, Release};

use crate::support::operator::{releases, setup, wait_condition};
use crate::support::rollout::{
    LIMIT, control, create_services, ready_on, replicas, roll_to_v2, set_image, wait_replicas, web_release,
};
use crate::support::traffic::{CANARY, STABLE, TrafficRecorder, World};
use crate::support::{from_json, kubectl_apply, readme_yaml, wait_for};

pub(crate) fn release(replicas: i32, canary: Value) -> Release {
    web_release(replicas, json!({ "canary": canary }))
}

pub(crate) fn gateway_canary(steps: Value) -> Value {
    json!({
        "stableService": STABLE, "canaryService": CANARY, "steps": steps, "scaleDownDelaySeconds": 2,
        "trafficRouting": { "gatewayAPI": { "httpRoutes": [{ "name": "web" }] } }
    })
}

pub(crate) fn routes(client: &Client, ns: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    );
    Api::namespaced_with(client.clone(), ns, &resource)
}

pub(crate) async fn create_route(client: &Client, ns: &str) {
    let route: DynamicObject = from_json(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": { "name": "web" },
        "spec": { "parentRefs": [{ "name": "gw" }], "rules": [{ "backendRefs": [
            { "name": STABLE, "port": 80, "weight": 100 },
            { "name": CANARY, "port": 80, "weight": 0 }
        ] }] }
    }));
    routes(client, ns).create(&PostParams::default(), &route).await.unwrap();
}

/// (stable, canary) weights of the route's first rule, as stored.
pub(crate) async fn route_weights(client: &Client, ns: &str) -> (i64, i64) {
    let route = routes(client, ns).get("web").await.unwrap();
    let refs = route.data["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .unwrap()
        .clone();
    let weight = |name: &str| {
        refs.iter().find(|r| r["name"] == name).unwrap()["weight"]
            .as_i64()
            .unwrap()
    };
    (weight(STABLE), weight(CANARY))
}

/// Waits until the Release is paused at `step`, waiting for a person.
pub(crate) async fn paused_at(api: &Api<Release>, step: i32) -> Release {
    wait_for(&format!("a pause at step {step}"), LIMIT, || async {
        let release = api.get("web").await.ok()?;
        let status = release.status.as_ref()?;
        let paused = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Progressing" && c.reason == "CanaryPauseStep");
        (paused && status.current_step_index == Some(step)).then_some(release)
    })
    .await
}

/// The first state at which the route first sends `weights`.
fn first_at(states: &[World], weights: (i64, i64)) -> &World {
    states
        .iter()
        .find(|w| w.weights == Some(weights))
        .unwrap_or_else(|| panic!("the route never sent {weights:?}"))
}

/// Consecutive distinct route weights over the states.
fn weight_steps(states: &[World]) -> Vec<(i64, i64)> {
    let mut steps: Vec<(i64, i64)> = Vec::new();
    for weights in states.iter().filter_map(|w| w.weights) {
        if steps.last() != Some(&weights) {
            steps.push(weights);
        }
    }
    steps
}

#[tokio::test]
async fn a_gateway_api_canary_walks_its_steps_then_promotes() {
    let (client, ns, _controller) = setup("canary-gateway").await;
    create_services(&client, &ns.name, &[STABLE, CANARY]).await;
    create_route(&client, &ns.name).await;
    let recorder = TrafficRecorder::start(&client, &ns.name).await;
    let api = releases(&client, &ns.name);
    let steps = json!([{ "setWeight": 20 }, { "pause": { "duration": "5s" } }, { "setWeight": 50 }, { "pause": {} }]);
    let (v1, v2) = roll_to_v2(&api, &release(10, gateway_canary(steps))).await;

    let paused = paused_at(&api, 3).await;
    assert_eq!(paused.status.unwrap().canary_weight, Some(50));
    assert_eq!(route_weights(&client, &ns.name).await, (50, 50));
    assert_eq!(
        (
            replicas(&client, &ns.name, &v2).await,
            replicas(&client, &ns.name, &v1).await
        ),
        (5, 10)
    );

    control(&ns.name, "promote").await;
    ready_on(&api, &v2).await;
    assert_eq!(route_weights(&client, &ns.name).await, (100, 0));
    wait_replicas(&client, &ns.name, &v1, 0).await;

    let states = recorder.finish().await;
    assert_eq!(weight_steps(&states), vec![(100, 0), (80, 20), (50, 50), (100, 0)]);
    // The ReplicaSets when each weight took effect: stable keeps every pod.
    let at_20 = first_at(&states, (80, 20));
    assert_eq!((at_20.replicas(&v2), at_20.replicas(&v1)), (2, 10));
    let at_50 = first_at(&states, (50, 50));
    assert_eq!((at_50.replicas(&v2), at_50.replicas(&v1)), (5, 10));
    let last = states.last().unwrap();
    assert_eq!(
        last.services.get(STABLE),
        Some(&Some(v2.clone())),
        "100% to the new stable"
    );
    assert_eq!((last.replicas(&v2), last.replicas(&v1)), (10, 0));
}

#[tokio::test]
async fn an_abort_midway_restores_all_traffic_then_retry_and_promote_full_finish() {
    let (client, ns, _controller) = setup("canary-abort").await;
    create_services(&client, &ns.name, &[STABLE, CANARY]).await;
    create_route(&client, &ns.name).await;
    let recorder = TrafficRecorder::start(&client, &ns.name).await;
    let api = releases(&client, &ns.name);
    let steps = json!([{ "setWeight": 20 }, { "pause": {} }, { "setWeight": 60 }]);
    let (v1, v2) = roll_to_v2(&api, &release(5, gateway_canary(steps))).await;
    paused_at(&api, 1).await;
    assert_eq!(route_weights(&client, &ns.name).await, (80, 20));

    control(&ns.name, "abort").await;
    let aborted = wait_condition(&api, "web", "Degraded", "True", Some("Aborted"), LIMIT).await;
    assert_eq!(aborted.status.unwrap().canary_weight, Some(0));
    assert_eq!(route_weights(&client, &ns.name).await, (100, 0));
    wait_replicas(&client, &ns.name, &v2, 0).await;
    assert_eq!(replicas(&client, &ns.name, &v1).await, 5);

    control(&ns.name, "retry").await;
    paused_at(&api, 1).await;
    assert_eq!(route_weights(&client, &ns.name).await, (80, 20));
    control(&ns.name, "promoteFull").await;
    ready_on(&api, &v2).await;
    assert_eq!(route_weights(&client, &ns.name).await, (100, 0));

    let states = recorder.finish().await;
    assert_eq!(
        weight_steps(&states),
        vec![(100, 0), (80, 20), (100, 0), (80, 20), (100, 0)]
    );
}

#[tokio::test]
async fn a_new_template_mid_canary_supersedes_it_from_step_zero() {
    let (client, ns, _controller) = setup("canary-supersede").await;
    create_services(&client, &ns.name, &[STABLE, CANARY]).await;
    create_route(&client, &ns.name).await;
    let recorder = TrafficRecorder::start(&client, &ns.name).await;
    let api = releases(&client, &ns.name);
    let steps = json!([{ "setWeight": 50 }, { "pause": {} }]);
    let (v1, v2) = roll_to_v2(&api, &release(4, gateway_canary(steps))).await;
    paused_at(&api, 1).await;

    let v3 = set_image(&api, "example.com/web:3").await;
    let paused = paused_at(&api, 1).await;
    let status = paused.status.unwrap();
    assert_eq!(status.canary.unwrap().revision, v3);
    wait_replicas(&client, &ns.name, &v2, 0).await;
    assert_eq!(replicas(&client, &ns.name, &v3).await, 2);
    assert_eq!(replicas(&client, &ns.name, &v1).await, 4);
    assert_eq!(route_weights(&client, &ns.name).await, (50, 50));

    let states = recorder.finish().await;
    // Back to stable before the new canary takes its share.
    assert_eq!(weight_steps(&states), vec![(100, 0), (50, 50), (100, 0), (50, 50)]);
    let last = states.last().unwrap();
    assert_eq!(last.services.get(CANARY), Some(&Some(v3)));
}

#[tokio::test]
async fn a_failing_analysis_step_aborts_the_canary() {
    let (client, ns, _controller) = setup("canary-analysis").await;
    create_services(&client, &ns.name, &[STABLE, CANARY]).await;
    create_route(&client, &ns.name).await;
    let template: AnalysisTemplate = from_json(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": { "name": "smoke" },
        "spec": { "metrics": [{ "name": "smoke", "count": 1, "provider": { "job": { "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": { "labels": { "serin.dev/fault": "crash" } },
                "spec": { "restartPolicy": "Never", "containers": [{ "name": "smoke", "image": "example.com/smoke:1" }] }
            }
        } } } }] }
    }));
    Api::<AnalysisTemplate>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &template)
        .await
        .unwrap();
    let recorder = TrafficRecorder::start(&client, &ns.name).await;
    let api = releases(&client, &ns.name);
    let steps = json!([
        { "setWeight": 25 }, { "analysis": { "templates": [{ "templateName": "smoke" }] } }, { "setWeight": 50 }
    ]);
    let (v1, v2) = roll_to_v2(&api, &release(4, gateway_canary(steps))).await;

    let failed = wait_condition(&api, "web", "Degraded", "True", Some("AnalysisFailed"), LIMIT).await;
    let status = failed.status.unwrap();
    assert_eq!(status.current_step_index, Some(1), "failed at the analysis step");
    assert!(status.message.unwrap().contains("smoke"));
    assert_eq!(route_weights(&client, &ns.name).await, (100, 0));
    wait_replicas(&client, &ns.name, &v2, 0).await;
    assert_eq!(replicas(&client, &ns.name, &v1).await, 4);

    let states = recorder.finish().await;
    assert_eq!(weight_steps(&states), vec![(100, 0), (75, 25), (100, 0)]);
}

#[tokio::test]
async fn an_nginx_canary_ingress_follows_the_steps() {
    let (client, ns, _controller) = setup("canary-nginx").await;
    create_services(&client, &ns.name, &[STABLE, CANARY]).await;
    let ingress: Ingress = from_json(json!({
        "metadata": { "name": "web", "annotations": { "nginx.ingress.kubernetes.io/proxy-body-size": "8m" } },
        "spec": { "ingressClassName": "nginx", "rules": [{ "host": "web.example.com", "http": { "paths": [
            { "path": "/", "pathType": "Prefix", "backend": { "service": { "name": STABLE, "port": { "number": 80 } } } }
        ] } }] }
    }));
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &ns.name);
    ingresses.create(&PostParams::default(), &ingress).await.unwrap();
    let recorder = TrafficRecorder::start(&client, &ns.name).await;
    let api = releases(&client, &ns.name);
    let canary = json!({
        "stableService": STABLE, "canaryService": CANARY, "scaleDownDelaySeconds": 2,
        "steps": [{ "setWeight": 30 }, { "pause": {} }],
        "trafficRouting": { "nginx": { "ingress": "web" } }
    });
    let (_, v2) = roll_to_v2(&api, &release(4, canary)).await;
    paused_at(&api, 1).await;

    let twin = ingresses.get("web-web-canary").await.unwrap();
    let annotations = twin.metadata.annotations.clone().unwrap();
    assert_eq!(annotations["nginx.ingress.kubernetes.io/canary"], "true");
    assert_eq!(annotations["nginx.ingress.kubernetes.io/canary-weight"], "30");
    assert_eq!(annotations["nginx.ingress.kubernetes.io/proxy-body-size"], "8m");
    let rules = twin.spec.unwrap().rules.unwrap();
    let backend = &rules[0].http.as_ref().unwrap().paths[0].backend;
    assert_eq!(backend.service.as_ref().unwrap().name, CANARY);
    let owner = &twin.metadata.owner_references.unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Release", "web"));

    control(&ns.name, "promote").await;
    ready_on(&api, &v2).await;
    let twin = ingresses.get("web-web-canary").await.unwrap();
    assert_eq!(
        twin.metadata.annotations.unwrap()["nginx.ingress.kubernetes.io/canary-weight"],
        "0"
    );

    let states = recorder.finish().await;
    assert_eq!(weight_steps(&states), vec![(100, 0), (70, 30), (100, 0)]);

    // After the canary (the traffic recorder is done): a hand edit of the
    // canary Ingress's weight is put back.
    tokio::time::sleep(crate::resilience::QUIET).await; // only the watch can put it back
    let edit = json!({ "metadata": { "annotations": { "nginx.ingress.kubernetes.io/canary-weight": "100" } } });
    ingresses
        .patch("web-web-canary", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    wait_for("the canary weight to be put back", Duration::from_secs(2), || async {
        let twin = ingresses.get("web-web-canary").await.ok()?;
        (twin
            .metadata
            .annotations?
            .get("nginx.ingress.kubernetes.io/canary-weight")?
            == "0")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn without_a_router_the_pod_counts_follow_the_steps() {
    let (client, ns, _controller) = setup("canary-ratio").await;
    create_services(&client, &ns.name, &[STABLE, CANARY]).await;
    let recorder = TrafficRecorder::start(&client, &ns.name).await;
    let api = releases(&client, &ns.name);
    let canary = json!({
        "stableService": STABLE, "canaryService": CANARY,
        "steps": [{ "setWeight": 20 }, { "pause": {} }, { "setWeight": 50 }, { "pause": {} }]
    });
    let (v1, v2) = roll_to_v2(&api, &release(10, canary)).await;
    let counts = || async {
        (
            replicas(&client, &ns.name, &v2).await,
            replicas(&client, &ns.name, &v1).await,
        )
    };

    let paused = paused_at(&api, 1).await;
    assert_eq!(paused.status.unwrap().canary_weight, Some(20));
    assert_eq!(counts().await, (2, 8));
    control(&ns.name, "promote").await;
    let paused = paused_at(&api, 3).await;
    assert_eq!(paused.status.unwrap().canary_weight, Some(50));
    assert_eq!(counts().await, (5, 5));
    control(&ns.name, "promote").await;
    ready_on(&api, &v2).await;
    assert_eq!(counts().await, (10, 0));

    let states = recorder.finish().await;
    // Within maxSurge and maxUnavailable (25% of 10: 3 and 2) throughout.
    for state in &states {
        let total: i32 = state.replica_sets.values().map(|(_, spec, _)| spec).sum();
        assert!(total <= 13, "{total} pods: {:?}", state.replica_sets);
    }
    let last = states.last().unwrap();
    assert_eq!(last.services.get(STABLE), Some(&Some(v2.clone())));
    assert_eq!(last.services.get(CANARY), Some(&Some(v2)));
}

#[tokio::test]
async fn the_readme_canary_example_applies_and_becomes_ready() {
    let (client, ns, _controller) = setup("canary-readme").await;
    kubectl_apply(&ns.name, &readme_yaml("Save as `canary.yaml`")).await;

    let api = releases(&client, &ns.name);
    let ready = wait_condition(&api, "web", "Ready", "True", None, LIMIT).await;
    let status = ready.status.unwrap();
    assert_eq!((status.current_step_index, status.canary_weight), (Some(4), Some(100)));
    assert_eq!(route_weights(&client, &ns.name).await, (100, 0));
}
