//! Header and mirror routes: in force from the step that sets them to the
//! step that removes them or the end of the canary, never longer.
use serde_json::json;

use super::super::routes::active_routes;
use super::canary::{canary, control, phase, rolled_out, round, routed_cluster, run_until, set_image, step};
use super::{Cluster, release};
use crate::api::{CanaryStep, Control, Phase, Release};
use crate::plan::{Action, validate};

fn steps(json: serde_json::Value) -> Vec<CanaryStep> {
    serde_json::from_value(json).unwrap()
}

#[test]
fn a_route_is_in_force_from_its_step_until_removed_replaced_or_promoted() {
    let header = |name: &str| json!({ "setHeaderRoute": { "name": name, "match": [{ "headerName": "x", "headerValue": { "exact": "1" } }] } });
    let all = steps(json!([
        header("a"),                                   // 0
        { "setMirrorRoute": { "name": "m", "percentage": 10 } }, // 1
        { "pause": {} },                               // 2
        header("a"),                                   // 3: replaces step 0's "a"
        { "setHeaderRoute": { "name": "a" } },         // 4: removes "a"
        { "setMirrorRoute": { "name": "nothing" } },   // 5: removes what was never set
        { "setWeight": 50 },                           // 6
    ]));
    let cases: Vec<(usize, Vec<usize>)> = vec![
        (0, vec![0]),
        (1, vec![0, 1]),
        (2, vec![0, 1]),
        (3, vec![1, 3]),
        (4, vec![1]),
        (5, vec![1]),
        (6, vec![1]),
        (7, vec![]),
        (99, vec![]),
    ];
    for (index, want) in cases {
        assert_eq!(active_routes(&all, index), want, "at step {index}");
    }
}

fn routed(steps: serde_json::Value, routing: serde_json::Value) -> Release {
    release(
        4,
        "web:1",
        json!({ "canary": {
            "stableService": "web", "canaryService": "web-canary", "steps": steps,
            "trafficRouting": routing,
        } }),
    )
}

#[test]
fn routes_a_router_cannot_carry_are_invalid_with_the_field_named() {
    let nginx = json!({ "nginx": { "ingress": "web" } });
    let grpc = json!({ "gatewayAPI": { "grpcRoutes": [{ "name": "web" }] } });
    let http = json!({ "gatewayAPI": { "httpRoutes": [{ "name": "web" }] } });
    let header = |name: &str, m: serde_json::Value| json!({ "setHeaderRoute": { "name": name, "match": m } });
    let x = json!({ "headerName": "x", "headerValue": { "exact": "1" } });
    let query = json!({ "queryParamName": "canary", "queryParamValue": { "exact": "yes" } });
    let cookie = json!({ "cookieName": "canary" });
    let cases = vec![
        (
            nginx.clone(),
            json!([header("a", json!([x])), header("b", json!([cookie]))]),
            "spec.strategy.canary.steps[1].setHeaderRoute: 2 routes in force at once; trafficRouting.nginx carries at most 1",
        ),
        (
            nginx.clone(),
            json!([header("a", json!([x, cookie]))]),
            "spec.strategy.canary.steps[0].setHeaderRoute.match: trafficRouting.nginx routes on at most 1 condition(s), not 2",
        ),
        (
            nginx.clone(),
            json!([header("a", json!([query]))]),
            "spec.strategy.canary.steps[0].setHeaderRoute.match[0]: trafficRouting.nginx cannot match query parameters",
        ),
        (
            nginx.clone(),
            json!([header("a", json!([{ "cookieName": "c", "cookieValue": "yes" }]))]),
            "spec.strategy.canary.steps[0].setHeaderRoute.match[0]: trafficRouting.nginx routes a cookie only on the value \"always\": leave cookieValue out",
        ),
        (
            grpc.clone(),
            json!([header("a", json!([query]))]),
            "spec.strategy.canary.steps[0].setHeaderRoute.match[0]: trafficRouting.gatewayAPI with grpcRoutes cannot match query parameters",
        ),
        (
            http.clone(),
            json!([{ "setWeight": 5 }, { "setMirrorRoute": { "name": "m", "match": [{ "headerName": "x", "headerValue": { "regex": "(" } }] } }]),
            "spec.strategy.canary.steps[1].setMirrorRoute.match[0]: regex \"(\" does not compile",
        ),
        (
            http.clone(),
            json!([{ "setMirrorRoute": { "name": "m", "percentage": 10 } }]),
            "spec.strategy.canary.steps[0]: runs no canary pod while the mirror of step 0 is in force",
        ),
    ];
    for (routing, steps, want) in cases {
        let r = routed(steps.clone(), routing);
        let got = validate(&r.spec).expect_err(&steps.to_string()).to_string();
        assert!(got.starts_with(want), "{got}\nwant {want}");
    }
    // A mirror in force at a later step that drops the canary to no pods.
    let later =
        json!([{ "setWeight": 10 }, { "setMirrorRoute": { "name": "m", "percentage": 5 } }, { "setWeight": 0 }]);
    assert_eq!(
        validate(&routed(later, http.clone()).spec).unwrap_err().to_string(),
        "spec.strategy.canary.steps[2]: runs no canary pod while the mirror of step 1 is in force: set a weight or setCanaryScale first"
    );
    // Replacing nginx's one route, or removing it first, is fine.
    let ok = json!([header("a", json!([x])), header("a", json!([cookie])), { "setHeaderRoute": { "name": "a" } }, header("b", json!([x]))]);
    assert_eq!(validate(&routed(ok, nginx).spec), Ok(()));
}

/// The routes in force after each round, and the step status records.
fn walk(cluster: &mut Cluster, r: &mut Release, rounds: usize) -> Vec<(Option<i32>, Vec<usize>)> {
    let mut seen = Vec::new();
    for _ in 0..rounds {
        let recorded = step(r).unwrap_or(0) as usize;
        round(cluster, r);
        let shown = cluster.traffic.routes.clone().unwrap_or_default();
        assert!(
            shown.iter().all(|s| *s <= recorded),
            "route of a step past the recorded step {recorded}: {shown:?}"
        );
        let state = (step(r), cluster.traffic.routes.clone().unwrap_or_default());
        if seen.last() != Some(&state) {
            seen.push(state);
        }
        if phase(r) == Some(Phase::Paused) || phase(r) == Some(Phase::Healthy) {
            break;
        }
    }
    seen
}

fn route_steps() -> serde_json::Value {
    json!([
        { "setCanaryScale": { "replicas": 1 } },
        { "setHeaderRoute": { "name": "testers", "match": [{ "headerName": "x-canary", "headerValue": { "exact": "yes" } }] } },
        { "setMirrorRoute": { "name": "shadow", "percentage": 20 } },
        { "pause": {} },
        { "setHeaderRoute": { "name": "testers" } },
        { "setWeight": 50 },
        { "pause": {} },
    ])
}

#[test]
fn routes_follow_the_steps_and_go_at_promotion() {
    let mut r = canary(4, route_steps(), true);
    let mut cluster = routed_cluster();
    rolled_out(&mut r, &mut cluster);
    let seen = walk(&mut cluster, &mut r, 30);
    assert_eq!(seen.last(), Some(&(Some(3), vec![1, 2])), "{seen:?}");
    // Never a route before its step is recorded.
    for (recorded, routes) in &seen {
        let index = recorded.unwrap_or(0) as usize;
        assert!(routes.iter().all(|s| *s <= index), "{seen:?}");
    }
    control(
        &mut r,
        Control {
            promote: true,
            ..Default::default()
        },
    );
    let seen = walk(&mut cluster, &mut r, 30);
    assert_eq!(
        seen.last(),
        Some(&(Some(6), vec![2])),
        "the header route removed at step 4: {seen:?}"
    );
    control(
        &mut r,
        Control {
            promote: true,
            ..Default::default()
        },
    );
    let plans = run_until(&mut cluster, &mut r, 20, |r| phase(r) == Some(Phase::Healthy));
    assert_eq!(cluster.traffic.routes, Some(vec![]), "no route outlives the canary");
    // The routes went before the stable Service moved onto the canary.
    let actions: Vec<&Action> = plans.iter().flat_map(|p| &p.actions).collect();
    let removed = actions
        .iter()
        .position(|a| matches!(a, Action::SetRoutes { steps } if steps.is_empty()));
    let switched = actions
        .iter()
        .position(|a| matches!(a, Action::Select { service, .. } if service == "web"));
    assert!(removed < switched, "{actions:?}");
}

#[test]
fn an_abort_removes_the_routes_before_the_services_switch_back() {
    let mut r = canary(4, route_steps(), true);
    let mut cluster = routed_cluster();
    rolled_out(&mut r, &mut cluster);
    walk(&mut cluster, &mut r, 30);
    assert_eq!(cluster.traffic.routes, Some(vec![1, 2]));
    control(
        &mut r,
        Control {
            abort: true,
            ..Default::default()
        },
    );
    let plan = round(&mut cluster, &mut r);
    let first = plan.actions.first();
    assert_eq!(first, Some(&Action::SetRoutes { steps: vec![] }), "{:?}", plan.actions);
    assert_eq!(cluster.traffic.routes, Some(vec![]));
}

#[test]
fn a_new_revision_starts_its_routes_afresh_and_a_hand_edit_is_put_back() {
    let mut r = canary(4, route_steps(), true);
    let mut cluster = routed_cluster();
    rolled_out(&mut r, &mut cluster);
    walk(&mut cluster, &mut r, 30);
    assert_eq!(cluster.traffic.routes, Some(vec![1, 2]));
    // A person edits the route: the router reads it as drifted.
    cluster.traffic.routes = None;
    let plan = round(&mut cluster, &mut r);
    assert!(
        plan.actions.contains(&Action::SetRoutes { steps: vec![1, 2] }),
        "{:?}",
        plan.actions
    );
    // A third template supersedes the canary: back to step 0, no routes.
    set_image(&mut r, "web:3");
    let plan = round(&mut cluster, &mut r);
    assert!(
        plan.actions.contains(&Action::SetRoutes { steps: vec![] }),
        "{:?}",
        plan.actions
    );
    assert_eq!(step(&r), Some(0));
}

#[test]
fn a_generic_router_with_a_bad_template_or_path_is_invalid_naming_the_field() {
    let generic = |template: &str, canary: &str| {
        json!({ "generic": {
            "apiVersion": "e2e.serin.dev/v1", "kind": "WeightedBackend", "name": "web",
            "patch": { "template": template },
            "weights": { "stable": "$.spec.stable", "canary": canary },
        } })
    };
    let weights = json!([{ "setWeight": 10 }]);
    let cases = [
        (
            generic("{spec: {stable: 90}}", "$.spec.canary"),
            "spec.strategy.canary.trafficRouting.generic.patch.template: lacks {{stableWeight}}",
        ),
        (
            generic(
                "{spec: {canary: {{canaryWeight}}, stable: {{stableWeight}}}",
                "$.spec.canary",
            ),
            "spec.strategy.canary.trafficRouting.generic.patch.template: is not JSON or YAML",
        ),
        (
            generic(
                "{spec: {canary: {{canaryWeight}}, stable: {{stableWeight}}}}",
                "spec.canary",
            ),
            "spec.strategy.canary.trafficRouting.generic.weights.canary: \"spec.canary\" is not a JSONPath",
        ),
    ];
    for (routing, want) in cases {
        let got = validate(&routed(weights.clone(), routing).spec)
            .unwrap_err()
            .to_string();
        assert!(got.starts_with(want), "{got}\nwant {want}");
    }
    let ok = generic(
        "{spec: {stable: {{stableWeight}}, canary: {{canaryWeight}}}}",
        "$.spec.canary",
    );
    assert_eq!(validate(&routed(weights, ok.clone()).spec), Ok(()));
    let header = json!([{ "setHeaderRoute": { "name": "t", "match": [{ "headerName": "x", "headerValue": { "exact": "1" } }] } }]);
    assert_eq!(
        validate(&routed(header, ok).spec).unwrap_err().to_string(),
        "spec.strategy.canary.steps[0].setHeaderRoute: trafficRouting.generic carries weights only"
    );
}

#[test]
fn a_mirror_comes_off_before_the_canary_service_falls_back_to_stable() {
    let mut r = canary(4, route_steps(), true);
    let mut cluster = routed_cluster();
    let (_, v2) = rolled_out(&mut r, &mut cluster);
    walk(&mut cluster, &mut r, 30);
    assert_eq!(cluster.traffic.routes, Some(vec![1, 2]));
    // The canary's pods all fail: the canary Service goes back to stable,
    // and a mirror onto stable would serve each copied write twice.
    for rs in cluster.replica_sets.iter_mut().filter(|rs| rs.revision == v2) {
        (rs.ready, rs.available) = (0, 0);
    }
    let plan = cluster.plan(&mut r);
    let off = plan
        .actions
        .iter()
        .position(|a| *a == Action::SetRoutes { steps: vec![1] });
    let back = plan
        .actions
        .iter()
        .position(|a| matches!(a, Action::Select { service, .. } if service == "web-canary"));
    assert!(off.is_some() && off < back, "{:?}", plan.actions);
}

#[test]
fn a_route_the_router_cannot_write_is_invalid_only_once_the_canary_reaches_it() {
    let mut r = canary(4, route_steps(), true);
    let mut cluster = routed_cluster();
    rolled_out(&mut r, &mut cluster);
    let why = "a HTTPRoute match already tests header \"x-canary\"".to_string();
    cluster.traffic.route_problems = vec![(1, why)];
    // Step 0 (setCanaryScale) runs; step 1 is where it stops.
    let seen = walk(&mut cluster, &mut r, 30);
    assert_eq!(step(&r), Some(1), "{seen:?}");
    let conditions = &r.status.as_ref().unwrap().conditions;
    let degraded = super::super::conditions::get(conditions, "Degraded").unwrap();
    assert_eq!(degraded.reason, "InvalidSpec");
    assert_eq!(
        degraded.message,
        "spec.strategy.canary.steps[1].setHeaderRoute: a HTTPRoute match already tests header \"x-canary\""
    );
    assert_eq!(cluster.traffic.routes, Some(vec![]), "nothing written");
    // An abort still brings all traffic back.
    control(
        &mut r,
        Control {
            abort: true,
            ..Default::default()
        },
    );
    let (v1, v2) = (
        r.status.as_ref().unwrap().stable_revision.clone().unwrap(),
        super::revision(&r),
    );
    run_until(&mut cluster, &mut r, 10, |r| {
        r.status.as_ref().unwrap().failed_revision.as_ref() == Some(&v2)
    });
    for _ in 0..5 {
        round(&mut cluster, &mut r);
    }
    assert_eq!(
        (cluster.replicas_of(&v2), cluster.replicas_of(&v1)),
        (0, 4),
        "aborted to stable"
    );
}

#[test]
fn more_routes_than_the_route_has_room_for_is_invalid_at_that_step() {
    let mut r = canary(4, route_steps(), true);
    let mut cluster = routed_cluster();
    rolled_out(&mut r, &mut cluster);
    cluster.traffic.route_capacity = Some(1);
    walk(&mut cluster, &mut r, 30);
    assert_eq!(step(&r), Some(2), "the second route's step");
    let conditions = &r.status.as_ref().unwrap().conditions;
    let degraded = super::super::conditions::get(conditions, "Degraded").unwrap();
    assert_eq!(degraded.reason, "InvalidSpec");
    assert!(
        degraded.message.starts_with(
            "spec.strategy.canary.steps[2]: 2 header and mirror routes in force, but the route has room for 1"
        ),
        "{}",
        degraded.message
    );
    assert_eq!(
        cluster.traffic.routes,
        Some(vec![1]),
        "the first route stays; nothing more is written"
    );
}
