//! Header and mirror routes on a real control plane: Gateway API HTTPRoute and
//! GRPCRoute rules, the ingress-nginx canary Ingress, each checked by the
//! traffic recorder, which also holds every route to the steps that allow it.
use std::time::Duration;

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::canary::{paused_at, release};
use crate::support::operator::{releases, setup, wait_condition};
use crate::support::rollout::{LIMIT, control, create_services, ready_on, roll_to_v2};
use crate::support::traffic::{CANARY, STABLE, TrafficRecorder};
use crate::support::{assert_quiet, from_json, wait_for};

fn gateway(kind: &str, plural: &str, client: &Client, ns: &str) -> Api<DynamicObject> {
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind), plural);
    Api::namespaced_with(client.clone(), ns, &resource)
}

/// Creates a route of `kind` named web with one rule of `matches`, all to stable.
async fn create(api: &Api<DynamicObject>, kind: &str, matches: Value) {
    let route: DynamicObject = from_json(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": kind,
        "metadata": { "name": "web" },
        "spec": { "rules": [{ "matches": matches, "backendRefs": [
            { "name": STABLE, "port": 80, "weight": 100 },
            { "name": CANARY, "port": 80, "weight": 0 }
        ] }] }
    }));
    api.create(&PostParams::default(), &route).await.unwrap();
}

async fn rules(api: &Api<DynamicObject>) -> Vec<Value> {
    let route = api.get("web").await.unwrap();
    route.data["spec"]["rules"].as_array().cloned().unwrap_or_default()
}

fn names(rules: &[Value]) -> Vec<&str> {
    rules.iter().map(|r| r["name"].as_str().unwrap_or("")).collect()
}

fn header_route(name: &str, matches: Value) -> Value {
    json!({ "setHeaderRoute": { "name": name, "match": matches } })
}

#[tokio::test]
async fn http_route_header_and_mirror_rules_live_only_between_their_steps() {
    let (client, ns, _controller) = setup("routes-http").await;
    create_services(&client, &ns.name, &[STABLE, CANARY]).await;
    let routes = gateway("HTTPRoute", "httproutes", &client, &ns.name);
    create(
        &routes,
        "HTTPRoute",
        json!([{ "path": { "type": "PathPrefix", "value": "/shop" } }]),
    )
    .await;
    let recorder = TrafficRecorder::start(&client, &ns.name).await;
    let api = releases(&client, &ns.name);
    let steps = json!([
        { "setCanaryScale": { "replicas": 1 } },
        header_route("testers", json!([
            { "headerName": "X-Canary", "headerValue": { "exact": "yes" } },
            { "queryParamName": "beta", "queryParamValue": { "prefix": "on" } },
        ])),
        { "setMirrorRoute": { "name": "shadow", "percentage": 20 } },
        { "pause": {} },
        { "setHeaderRoute": { "name": "testers" } },
        { "setWeight": 50 },
        { "pause": {} },
    ]);
    let canary = json!({
        "stableService": STABLE, "canaryService": CANARY, "steps": steps, "scaleDownDelaySeconds": 2,
        "trafficRouting": { "gatewayAPI": { "httpRoutes": [{ "name": "web" }] } }
    });
    let (_, v2) = roll_to_v2(&api, &release(4, canary)).await;

    paused_at(&api, 3).await;
    assert_quiet(&routes, "web").await;
    let at_pause = rules(&routes).await;
    assert_eq!(names(&at_pause), ["serin-step2-testers", "serin-step3-shadow", ""]);
    let header = &at_pause[0];
    assert_eq!(
        header["backendRefs"],
        json!([{ "group": "", "kind": "Service", "name": CANARY, "port": 80, "weight": 1 }])
    );
    assert_eq!(
        header["matches"][0]["headers"],
        json!([{ "name": "X-Canary", "type": "Exact", "value": "yes" }])
    );
    assert_eq!(
        header["matches"][0]["queryParams"],
        json!([{ "name": "beta", "type": "RegularExpression", "value": "^on.*" }])
    );
    assert_eq!(
        header["matches"][0]["path"],
        json!({ "type": "PathPrefix", "value": "/shop" })
    );
    let mirror = &at_pause[1]["filters"][0];
    assert_eq!(mirror["type"], "RequestMirror");
    assert_eq!(mirror["requestMirror"]["percent"], 20);
    assert_eq!(mirror["requestMirror"]["backendRef"]["name"], CANARY);

    // A hand edit dropping serin's rules is put back by the route watch.
    let users_only = json!({ "spec": { "rules": [at_pause[2].clone()] } });
    routes
        .patch("web", &PatchParams::default(), &Patch::Merge(&users_only))
        .await
        .unwrap();
    wait_for("serin's rules put back", Duration::from_secs(5), || async {
        (names(&rules(&routes).await) == ["serin-step2-testers", "serin-step3-shadow", ""]).then_some(())
    })
    .await;

    control(&ns.name, "promote").await;
    paused_at(&api, 6).await;
    let at_half = rules(&routes).await;
    assert_eq!(names(&at_half), ["serin-step3-shadow", ""], "testers removed at step 5");
    assert_eq!(
        at_half[0]["backendRefs"][1]["weight"], 50,
        "the mirror rule carries the weight too"
    );

    control(&ns.name, "promote").await;
    ready_on(&api, &v2).await;
    let after = rules(&routes).await;
    assert_eq!(names(&after), [""], "no route outlives the canary");
    assert_eq!(after[0]["backendRefs"][0]["weight"], 100);

    let states = recorder.finish().await;
    let carried: Vec<Vec<usize>> = states.iter().map(|w| w.routes.clone()).fold(Vec::new(), |mut seen, r| {
        if seen.last() != Some(&r) {
            seen.push(r);
        }
        seen
    });
    assert_eq!(
        carried,
        [vec![], vec![2], vec![2, 3], vec![], vec![2, 3], vec![3], vec![]],
        "{carried:?}"
    );
}

#[tokio::test]
async fn grpc_route_header_rule_goes_on_abort() {
    let (client, ns, _controller) = setup("routes-grpc").await;
    create_services(&client, &ns.name, &[STABLE, CANARY]).await;
    let routes = gateway("GRPCRoute", "grpcroutes", &client, &ns.name);
    create(&routes, "GRPCRoute", json!([{ "method": { "service": "shop.Cart" } }])).await;
    let recorder = TrafficRecorder::start(&client, &ns.name).await;
    let api = releases(&client, &ns.name);
    let steps = json!([
        { "setWeight": 25 },
        header_route("testers", json!([{ "headerName": "x-canary", "headerValue": { "regex": "^(yes|1)$" } }])),
        { "pause": {} },
    ]);
    let canary = json!({
        "stableService": STABLE, "canaryService": CANARY, "steps": steps, "scaleDownDelaySeconds": 2,
        "trafficRouting": { "gatewayAPI": { "grpcRoutes": [{ "name": "web" }] } }
    });
    let (v1, _) = roll_to_v2(&api, &release(4, canary)).await;
    paused_at(&api, 2).await;
    assert_quiet(&routes, "web").await;
    let at_pause = rules(&routes).await;
    assert_eq!(names(&at_pause), ["serin-step2-testers", ""]);
    assert_eq!(
        at_pause[0]["matches"][0],
        json!({ "method": { "service": "shop.Cart", "type": "Exact" },
                "headers": [{ "name": "x-canary", "type": "RegularExpression", "value": "^(yes|1)$" }] })
    );
    assert_eq!(at_pause[1]["backendRefs"][1]["weight"], 25);

    control(&ns.name, "abort").await;
    wait_condition(&api, "web", "Degraded", "True", None, LIMIT).await;
    wait_for("the header rule removed and all traffic on stable", LIMIT, || async {
        let now = rules(&routes).await;
        (names(&now) == [""] && now[0]["backendRefs"][0]["weight"] == 100).then_some(())
    })
    .await;
    let states = recorder.finish().await;
    let last = states.last().unwrap();
    assert_eq!(
        last.services.get(CANARY),
        Some(&Some(v1)),
        "the canary Service back on stable"
    );
    assert!(states.iter().any(|w| w.routes == [2]), "the route was carried");
}

#[tokio::test]
async fn nginx_cookie_then_header_route_on_the_canary_ingress() {
    let (client, ns, _controller) = setup("routes-nginx").await;
    create_services(&client, &ns.name, &[STABLE, CANARY]).await;
    let ingress: Ingress = from_json(json!({
        "metadata": { "name": "web" },
        "spec": { "ingressClassName": "nginx", "rules": [{ "http": { "paths": [
            { "path": "/", "pathType": "Prefix", "backend": { "service": { "name": STABLE, "port": { "number": 80 } } } }
        ] } }] }
    }));
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &ns.name);
    ingresses.create(&PostParams::default(), &ingress).await.unwrap();
    let recorder = TrafficRecorder::start(&client, &ns.name).await;
    let api = releases(&client, &ns.name);
    let steps = json!([
        { "setCanaryScale": { "replicas": 1 } },
        header_route("beta", json!([{ "cookieName": "beta" }])),
        { "pause": {} },
        header_route("beta", json!([{ "headerName": "X-Canary", "headerValue": { "prefix": "v2" } }])),
        { "pause": {} },
    ]);
    let canary = json!({
        "stableService": STABLE, "canaryService": CANARY, "steps": steps, "scaleDownDelaySeconds": 2,
        "trafficRouting": { "nginx": { "ingress": "web" } }
    });
    let (_, v2) = roll_to_v2(&api, &release(4, canary)).await;
    let by = || async {
        let twin = ingresses.get("web-web-canary").await.unwrap();
        let mut by: Vec<(String, String)> = twin
            .metadata
            .annotations
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k.contains("canary-by-"))
            .map(|(k, v)| (k.trim_start_matches("nginx.ingress.kubernetes.io/").to_string(), v))
            .collect();
        by.sort();
        by
    };
    let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    paused_at(&api, 2).await;
    assert_quiet(&ingresses, "web-web-canary").await;
    assert_eq!(by().await, pairs(&[("canary-by-cookie", "beta")]));
    control(&ns.name, "promote").await;
    paused_at(&api, 4).await;
    assert_eq!(
        by().await,
        pairs(&[("canary-by-header", "X-Canary"), ("canary-by-header-pattern", "^v2.*")]),
        "step 4 replaced the cookie route"
    );
    control(&ns.name, "promote").await;
    ready_on(&api, &v2).await;
    assert_eq!(by().await, pairs(&[]), "no route outlives the canary");
    let states = recorder.finish().await;
    assert!(states.iter().any(|w| w.routes == [2]) && states.iter().any(|w| w.routes == [4]));
}

#[tokio::test]
async fn a_route_that_clashes_with_the_users_match_is_invalid_spec_naming_the_step() {
    let (client, ns, _controller) = setup("routes-clash").await;
    create_services(&client, &ns.name, &[STABLE, CANARY]).await;
    let routes = gateway("HTTPRoute", "httproutes", &client, &ns.name);
    create(
        &routes,
        "HTTPRoute",
        json!([{ "headers": [{ "name": "X-Canary", "value": "no" }] }]),
    )
    .await;
    let api = releases(&client, &ns.name);
    let canary = json!({
        "stableService": STABLE, "canaryService": CANARY, "scaleDownDelaySeconds": 2,
        "steps": [
            { "setCanaryScale": { "replicas": 1 } },
            header_route("testers", json!([{ "headerName": "x-canary", "headerValue": { "exact": "yes" } }])),
            { "pause": {} },
        ],
        "trafficRouting": { "gatewayAPI": { "httpRoutes": [{ "name": "web" }] } }
    });
    roll_to_v2(&api, &release(2, canary)).await;
    let message = wait_for("InvalidSpec naming the step", LIMIT, || async {
        let status = api.get("web").await.ok()?.status?;
        let degraded = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Degraded" && c.reason == "InvalidSpec")?;
        Some(degraded.message.clone())
    })
    .await;
    assert_eq!(
        message,
        r#"spec.strategy.canary.steps[1].setHeaderRoute: a HTTPRoute match already tests header "x-canary"; a route cannot add a second condition on it"#
    );
    assert_eq!(
        names(&rules(&routes).await),
        [""],
        "nothing written into the user's route"
    );
}
