//! The canary step machine, round by round against the simulated cluster, with
//! its traffic invariants checked after every single action.
use proptest::prelude::*;

use super::super::canary::target;
use super::super::canary_traffic::{WeightInputs, next_weight};
use super::super::conditions::DEGRADED;
use super::{Cluster, analysis, condition_reason, release, revision};
use crate::api::{CanaryStrategy, Control, Phase, Release};
use crate::plan::{Action, AnalysisSlot, Plan, Traffic, Verdict};

const STABLE: &str = "web";
const CANARY: &str = "web-canary";

pub(super) fn canary(replicas: i32, steps: serde_json::Value, routed: bool) -> Release {
    let mut strategy = serde_json::json!({
        "stableService": STABLE, "canaryService": CANARY, "steps": steps, "scaleDownDelaySeconds": 30,
    });
    if routed {
        strategy["trafficRouting"] = serde_json::json!({ "gatewayAPI": { "httpRoutes": [{ "name": "web" }] } });
    }
    release(replicas, "web:1", serde_json::json!({ "canary": strategy }))
}

fn strategy(r: &Release) -> &CanaryStrategy {
    r.spec.strategy.canary.as_ref().unwrap()
}

pub(super) fn set_image(r: &mut Release, image: &str) -> String {
    r.spec.template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
    revision(r)
}

pub(super) fn control(r: &mut Release, control: Control) {
    r.status.as_mut().unwrap().control = Some(control);
}

/// A cluster whose route exists and sends everything to the stable Service.
pub(super) fn routed_cluster() -> Cluster {
    let mut cluster = Cluster::new();
    cluster.traffic = Traffic {
        canary_weight: Some(0),
        routes: Some(Vec::new()),
        ..Traffic::default()
    };
    cluster
}

/// Applies a plan one action at a time, checking the traffic invariants after each.
fn apply_checked(cluster: &mut Cluster, r: &Release, plan: &Plan) {
    for action in &plan.actions {
        let failed = r.status.as_ref().and_then(|s| s.failed_revision.clone());
        if let (Action::Scale { name, replicas }, Some(failed)) = (action, &failed) {
            let rs = cluster.replica_sets.iter().find(|rs| &rs.name == name).unwrap();
            if rs.revision == *failed && *replicas < rs.replicas {
                assert!(
                    cluster.traffic.canary_weight.unwrap_or(0) == 0
                        && cluster.traffic.canary_service.as_ref() != Some(failed),
                    "aborted canary scaled down while it still takes traffic: {:?}",
                    cluster.traffic
                );
            }
        }
        if let (Action::Scale { name, replicas }, Some(why)) = (action, &cluster.traffic.unaccepted) {
            let rs = cluster.replica_sets.iter().find(|rs| &rs.name == name).unwrap();
            assert!(
                *replicas >= rs.replicas,
                "{name} scaled down while the route is unaccepted ({why})"
            );
        }
        cluster.apply_one(action);
        check_traffic(cluster, action);
    }
    // The canary weight never exceeds the current step's weight.
    let status = r.status.as_ref().unwrap();
    if let Some(index) = status.current_step_index {
        let cap = target(&strategy(r).steps, index as usize, r.spec.replicas).weight;
        let routed = cluster.traffic.canary_weight.unwrap_or(0);
        assert!(routed <= cap, "route sends {routed}% at step {index} capped at {cap}%");
        assert!(
            status.canary_weight.unwrap_or(0) <= cap,
            "status weight above step {index}"
        );
    }
}

fn check_traffic(cluster: &Cluster, after: &Action) {
    let traffic = &cluster.traffic;
    if let Some(weight) = traffic.canary_weight {
        assert!((0..=100).contains(&weight), "weight {weight} after {after:?}");
    }
    let available = |revision: &str| {
        cluster
            .replica_sets
            .iter()
            .filter(|rs| rs.revision == revision)
            .map(|rs| rs.available)
            .sum::<i32>()
    };
    // Traffic never reaches a revision with no available pods.
    if let Some(stable) = &traffic.stable_service {
        assert!(
            available(stable) > 0,
            "stable Service selects {stable} with no pods after {after:?}"
        );
    }
    if let Some(canary) = &traffic.canary_service {
        assert!(
            available(canary) > 0,
            "canary Service selects {canary} with no pods after {after:?}"
        );
    }
}

/// Plans and applies (checked). A weight is only raised once status records
/// the step allowing it: the route never exceeds the step recorded before.
fn plan_checked(cluster: &mut Cluster, r: &mut Release) -> Plan {
    let status = r.status.as_ref();
    let recorded = status.and_then(|s| s.canary.as_ref()).map(|c| c.revision.clone());
    let before = status
        .and_then(|s| s.current_step_index)
        .filter(|_| recorded == Some(revision(r)))
        .map(|index| target(&strategy(r).steps, index as usize, r.spec.replicas).weight);
    let routed_before = cluster.traffic.canary_weight.unwrap_or(0);
    let plan = cluster.plan(r);
    apply_checked(cluster, r, &plan);
    if let Some(cap) = before {
        let routed = cluster.traffic.canary_weight.unwrap_or(0);
        assert!(
            routed <= cap.max(routed_before),
            "route raised to {routed}% past the recorded step's {cap}%"
        );
    }
    plan
}

/// Plans, applies (checked) and lets a second pass; returns the plan.
pub(super) fn round(cluster: &mut Cluster, r: &mut Release) -> Plan {
    let plan = plan_checked(cluster, r);
    cluster.settle(1);
    plan
}

/// Runs rounds until `done` holds, at most `rounds`; returns every plan.
pub(super) fn run_until(
    cluster: &mut Cluster,
    r: &mut Release,
    rounds: usize,
    done: impl Fn(&Release) -> bool,
) -> Vec<Plan> {
    let mut plans = Vec::new();
    for _ in 0..rounds {
        plans.push(round(cluster, r));
        if done(r) {
            return plans;
        }
    }
    panic!("not done after {rounds} rounds: {:#?}", r.status);
}

pub(super) fn phase(r: &Release) -> Option<Phase> {
    r.status.as_ref().and_then(|s| s.phase)
}

pub(super) fn step(r: &Release) -> Option<i32> {
    r.status.as_ref().and_then(|s| s.current_step_index)
}

/// A Healthy v1, then the template changed to v2.
pub(super) fn rolled_out(r: &mut Release, cluster: &mut Cluster) -> (String, String) {
    run_until(cluster, r, 10, |r| phase(r) == Some(Phase::Healthy));
    let v1 = revision(r);
    let v2 = set_image(r, "web:2");
    (v1, v2)
}

fn walk_steps() -> serde_json::Value {
    serde_json::json!([
        { "setWeight": 20 }, { "pause": { "duration": "5s" } }, { "setWeight": 50 }, { "pause": {} }
    ])
}

#[test]
fn a_first_release_goes_straight_to_full_size_and_takes_all_traffic() {
    let mut r = canary(10, walk_steps(), true);
    let mut cluster = routed_cluster();
    run_until(&mut cluster, &mut r, 10, |r| phase(r) == Some(Phase::Healthy));
    let v1 = revision(&r);
    let status = r.status.as_ref().unwrap();
    assert_eq!(cluster.replicas_of(&v1), 10);
    assert_eq!((status.current_step_index, status.canary_weight), (Some(4), Some(100)));
    assert_eq!(status.stable_revision.as_ref(), Some(&v1));
    assert_eq!(cluster.traffic.stable_service.as_ref(), Some(&v1));
    assert_eq!(cluster.traffic.canary_service.as_ref(), Some(&v1));
    assert_eq!(
        cluster.traffic.canary_weight,
        Some(0),
        "all traffic through the stable Service"
    );
}

#[test]
fn a_routed_canary_walks_its_steps_and_the_old_revision_drains_after_promotion() {
    let mut r = canary(10, walk_steps(), true);
    let mut cluster = routed_cluster();
    let (v1, v2) = rolled_out(&mut r, &mut cluster);

    // (route weight, canary pods, stable pods) at each round until the manual pause.
    let mut seen = Vec::new();
    for _ in 0..30 {
        round(&mut cluster, &mut r);
        let state = (
            cluster.traffic.canary_weight.unwrap(),
            cluster.replicas_of(&v2),
            cluster.replicas_of(&v1),
        );
        if seen.last() != Some(&state) {
            seen.push(state);
        }
        if phase(&r) == Some(Phase::Paused) {
            break;
        }
    }
    assert_eq!(seen, vec![(0, 2, 10), (20, 2, 10), (20, 5, 10), (50, 5, 10)]);
    assert_eq!(step(&r), Some(3), "waiting at the manual pause");
    assert_eq!(condition_reason(&r, "Progressing").1, "CanaryPauseStep");

    // Nothing moves until a person promotes.
    cluster.settle(600);
    let held = cluster.plan(&mut r);
    assert!(held.actions.is_empty(), "{:?}", held.actions);

    control(
        &mut r,
        Control {
            promote: true,
            ..Default::default()
        },
    );
    let plans = run_until(&mut cluster, &mut r, 10, |r| phase(r) == Some(Phase::Healthy));
    assert!(plans[0].events.iter().any(|e| e.reason == "StepPromoted"));
    assert_eq!(cluster.replicas_of(&v2), 10);
    assert_eq!(
        cluster.traffic.stable_service.as_ref(),
        Some(&v2),
        "stable Service moved"
    );
    assert_eq!(
        cluster.traffic.canary_weight,
        Some(0),
        "100% through the stable Service"
    );
    let status = r.status.as_ref().unwrap();
    assert_eq!(status.stable_revision.as_ref(), Some(&v2));
    assert_eq!((status.current_step_index, status.canary_weight), (Some(4), Some(100)));
    assert_eq!(cluster.replicas_of(&v1), 10, "the old revision drains first");

    let draining = cluster.plan(&mut r);
    assert!(draining.actions.is_empty());
    assert!(draining.requeue_after.unwrap().as_secs() <= 30);
    cluster.settle(30);
    run_until(&mut cluster, &mut r, 5, |_| true);
    assert_eq!(cluster.replicas_of(&v1), 0, "scaled down after scaleDownDelaySeconds");
}

#[test]
fn without_a_router_the_replica_ratio_carries_the_weight() {
    let mut r = canary(10, walk_steps(), false);
    let mut cluster = Cluster::new();
    let (v1, v2) = rolled_out(&mut r, &mut cluster);
    let mut seen = Vec::new();
    for _ in 0..40 {
        round(&mut cluster, &mut r);
        let state = (cluster.replicas_of(&v2), cluster.replicas_of(&v1));
        if seen.last() != Some(&state) {
            seen.push(state);
        }
        if phase(&r) == Some(Phase::Paused) {
            break;
        }
    }
    // 20%, then 50%, moving within maxSurge and maxUnavailable (25%: 3 and 2).
    assert_eq!(seen.first(), Some(&(2, 8)));
    assert_eq!(seen.last(), Some(&(5, 5)));
    assert!(seen.iter().all(|(c, s)| c + s <= 13 && c + s >= 8), "{seen:?}");
    assert_eq!(r.status.as_ref().unwrap().canary_weight, Some(50));
    control(
        &mut r,
        Control {
            promote: true,
            ..Default::default()
        },
    );
    run_until(&mut cluster, &mut r, 20, |r| phase(r) == Some(Phase::Healthy));
    assert_eq!((cluster.replicas_of(&v2), cluster.replicas_of(&v1)), (10, 0));
    assert_eq!(cluster.traffic.stable_service.as_ref(), Some(&v2));
}

/// Runs a routed canary up to the manual pause at 50%.
fn at_half(routed: bool) -> (Release, Cluster, String, String) {
    let mut r = canary(10, walk_steps(), routed);
    let mut cluster = if routed { routed_cluster() } else { Cluster::new() };
    let (v1, v2) = rolled_out(&mut r, &mut cluster);
    run_until(&mut cluster, &mut r, 30, |r| phase(r) == Some(Phase::Paused));
    (r, cluster, v1, v2)
}

#[test]
fn an_abort_sends_all_traffic_to_stable_before_any_canary_pod_goes() {
    let (mut r, mut cluster, v1, v2) = at_half(true);
    control(
        &mut r,
        Control {
            abort: true,
            ..Default::default()
        },
    );
    let plan = round(&mut cluster, &mut r);
    let weight_at = plan.actions.iter().position(|a| *a == Action::SetWeight { canary: 0 });
    let scale_at = plan
        .actions
        .iter()
        .position(|a| matches!(a, Action::Scale { name, replicas: 0 } if name.ends_with(&v2)));
    assert!(weight_at.unwrap() < scale_at.unwrap(), "{:?}", plan.actions);
    assert!(plan.events.iter().any(|e| e.reason == "Aborted" && e.warning));
    assert_eq!(phase(&r), Some(Phase::Degraded));
    assert_eq!(condition_reason(&r, DEGRADED), ("True".into(), "Aborted".into()));
    assert_eq!((cluster.replicas_of(&v1), cluster.replicas_of(&v2)), (10, 0));
    assert_eq!(cluster.traffic.canary_service.as_ref(), Some(&v1));
    assert_eq!(r.status.as_ref().unwrap().canary_weight, Some(0));

    // It stays aborted, then a retry starts again from the first step.
    cluster.settle(120);
    assert!(cluster.plan(&mut r).actions.is_empty());
    control(
        &mut r,
        Control {
            retry: true,
            ..Default::default()
        },
    );
    round(&mut cluster, &mut r);
    assert_eq!(step(&r), Some(0));
    run_until(&mut cluster, &mut r, 30, |r| phase(r) == Some(Phase::Paused));
    assert_eq!(cluster.traffic.canary_weight, Some(50));
}

#[test]
fn promote_full_skips_the_remaining_steps() {
    let mut r = canary(10, walk_steps(), true);
    let mut cluster = routed_cluster();
    let (_, v2) = rolled_out(&mut r, &mut cluster);
    run_until(&mut cluster, &mut r, 10, |r| step(r) == Some(1));
    control(
        &mut r,
        Control {
            promote_full: true,
            ..Default::default()
        },
    );
    let plans = run_until(&mut cluster, &mut r, 10, |r| phase(r) == Some(Phase::Healthy));
    assert!(plans[0].events.iter().any(|e| e.reason == "PromotedFull"));
    assert_eq!(r.status.as_ref().unwrap().stable_revision.as_ref(), Some(&v2));
}

#[test]
fn a_new_template_mid_canary_supersedes_it_and_starts_from_step_zero() {
    let (mut r, mut cluster, v1, v2) = at_half(true);
    let v3 = set_image(&mut r, "web:3");
    let plan = round(&mut cluster, &mut r);
    assert_eq!(step(&r), Some(0));
    assert_eq!(
        plan.actions.first(),
        Some(&Action::SetWeight { canary: 0 }),
        "{:?}",
        plan.actions
    );
    assert_eq!(cluster.replicas_of(&v2), 0, "the superseded canary is scaled down");
    assert_eq!(cluster.replicas_of(&v1), 10);
    run_until(&mut cluster, &mut r, 30, |r| phase(r) == Some(Phase::Paused));
    assert_eq!((cluster.replicas_of(&v3), cluster.traffic.canary_weight), (5, Some(50)));
    assert_eq!(cluster.traffic.canary_service.as_ref(), Some(&v3));
}

#[test]
fn a_failing_analysis_step_aborts_and_a_passing_one_moves_on() {
    let steps = serde_json::json!([
        { "setWeight": 20 }, { "analysis": { "templates": [{ "templateName": "errors" }] } }, { "setWeight": 50 }
    ]);
    let mut r = canary(10, steps, true);
    let mut cluster = routed_cluster();
    let (v1, v2) = rolled_out(&mut r, &mut cluster);
    run_until(&mut cluster, &mut r, 10, |r| step(r) == Some(1));
    let mut passed = analysis(&v2, Verdict::Successful, None);
    passed.status.step = Some(1);
    passed.slot = AnalysisSlot::Step(1);
    let plan = cluster.plan_analysed(&mut r, None, Some(passed));
    assert_eq!(step(&r), Some(2), "{:?}", plan.status.message);

    // Start over, and fail the analysis this time.
    let mut r2 = canary(
        10,
        r.spec
            .strategy
            .canary
            .as_ref()
            .map(|c| serde_json::to_value(&c.steps).unwrap())
            .unwrap(),
        true,
    );
    let mut cluster = routed_cluster();
    rolled_out(&mut r2, &mut cluster);
    run_until(&mut cluster, &mut r2, 10, |r| step(r) == Some(1));
    let mut failed = analysis(
        &v2,
        Verdict::Failed("metric \"errors\" failed".into()),
        Some("metric \"errors\" failed"),
    );
    failed.status.step = Some(1);
    failed.slot = AnalysisSlot::Step(1);
    let plan = cluster.plan_analysed(&mut r2, None, Some(failed));
    apply_checked(&mut cluster, &r2, &plan);
    assert_eq!(
        condition_reason(&r2, DEGRADED),
        ("True".into(), "AnalysisFailed".into())
    );
    assert!(r2.status.as_ref().unwrap().message.as_ref().unwrap().contains("errors"));
    assert_eq!(cluster.traffic.canary_weight, Some(0));
    assert_eq!((cluster.replicas_of(&v1), cluster.replicas_of(&v2)), (10, 0));
}

#[test]
fn a_canary_that_never_becomes_available_is_aborted_at_the_deadline() {
    let mut r = canary(4, walk_steps(), true);
    let mut cluster = routed_cluster();
    let (v1, v2) = rolled_out(&mut r, &mut cluster);
    cluster.unhealthy.push(v2.clone());
    let first = round(&mut cluster, &mut r);
    assert_eq!(
        first.requeue_after.map(|d| d.as_secs()),
        Some(60),
        "deadline timer armed"
    );
    cluster.settle(60);
    run_until(&mut cluster, &mut r, 3, |r| phase(r) == Some(Phase::Degraded));
    assert_eq!(condition_reason(&r, DEGRADED).1, "ProgressDeadlineExceeded");
    assert_eq!((cluster.replicas_of(&v1), cluster.replicas_of(&v2)), (4, 0));
    assert_eq!(cluster.traffic.canary_weight, Some(0));
}

#[test]
fn set_canary_scale_sizes_the_canary_apart_from_its_weight() {
    let steps = serde_json::json!([
        { "setCanaryScale": { "replicas": 3 } }, { "setWeight": 10 }, { "pause": {} },
        { "setCanaryScale": { "matchTrafficWeight": true } }, { "pause": {} }
    ]);
    let mut r = canary(10, steps, true);
    let mut cluster = routed_cluster();
    let (_, v2) = rolled_out(&mut r, &mut cluster);
    run_until(&mut cluster, &mut r, 20, |r| phase(r) == Some(Phase::Paused));
    assert_eq!((cluster.replicas_of(&v2), cluster.traffic.canary_weight), (3, Some(10)));
    control(
        &mut r,
        Control {
            promote: true,
            ..Default::default()
        },
    );
    run_until(&mut cluster, &mut r, 20, |r| {
        phase(r) == Some(Phase::Paused) && step(r) == Some(4)
    });
    assert_eq!((cluster.replicas_of(&v2), cluster.traffic.canary_weight), (1, Some(10)));
}

#[test]
fn a_paused_spec_freezes_the_canary() {
    let (mut r, cluster, _, _) = at_half(true);
    r.spec.paused = true;
    control(
        &mut r,
        Control {
            promote: true,
            ..Default::default()
        },
    );
    let plan = cluster.plan(&mut r);
    assert!(plan.actions.is_empty());
    assert_eq!(condition_reason(&r, "Progressing").1, "Paused");
}

#[test]
fn a_missing_service_is_shown_and_nothing_is_switched() {
    let (mut r, mut cluster, _, _) = at_half(true);
    cluster.traffic.problem = Some("spec.strategy.canary.canaryService: Service \"web-canary\" not found".into());
    let plan = cluster.plan(&mut r);
    assert!(plan.actions.is_empty());
    assert_eq!(condition_reason(&r, DEGRADED), ("True".into(), "InvalidSpec".into()));
    assert!(plan.requeue_after.is_some(), "looked at again");
}

#[test]
fn targets_round_the_canary_up_and_stop_at_the_replicas() {
    let steps: Vec<crate::api::CanaryStep> = serde_json::from_value(serde_json::json!([
        { "setWeight": 1 }, { "setCanaryScale": { "weight": 33 } }, { "setWeight": 40 },
        { "setCanaryScale": { "replicas": 50 } }, { "setCanaryScale": { "matchTrafficWeight": true } }
    ]))
    .unwrap();
    let cases = [
        (0, 1, 1),
        (1, 1, 4),
        (2, 40, 4),
        (3, 40, 10),
        (4, 40, 4),
        (5, 100, 10),
        (9, 100, 10),
    ];
    for (index, weight, pods) in cases {
        let t = target(&steps, index, 10);
        assert_eq!((t.weight, t.canary_pods), (weight, pods), "step {index}");
    }
}

#[test]
fn the_weight_goes_up_only_onto_a_ready_selected_canary_and_never_past_its_step() {
    let stepping = WeightInputs {
        promoting: false,
        switch_stable: false,
        may_raise: true,
        selects_canary: true,
        canary_ready: true,
        observed: Some(10),
        target: 50,
    };
    let promoting = WeightInputs {
        promoting: true,
        target: 100,
        observed: Some(100),
        ..stepping
    };
    let cases = [
        ("raised to the step", stepping, 50),
        (
            "lowered to the step",
            WeightInputs {
                observed: Some(80),
                ..stepping
            },
            50,
        ),
        (
            "held until status records the step",
            WeightInputs {
                may_raise: false,
                ..stepping
            },
            10,
        ),
        (
            "held while the canary is short of pods",
            WeightInputs {
                canary_ready: false,
                ..stepping
            },
            10,
        ),
        (
            "lowered to the step while short of pods",
            WeightInputs {
                canary_ready: false,
                observed: Some(80),
                ..stepping
            },
            50,
        ),
        (
            "0 while the canary Service selects another revision",
            WeightInputs {
                selects_canary: false,
                ..stepping
            },
            0,
        ),
        (
            "0 before the route shows a weight",
            WeightInputs {
                may_raise: false,
                observed: None,
                ..stepping
            },
            0,
        ),
        (
            "raised before the route shows a weight",
            WeightInputs {
                observed: None,
                ..stepping
            },
            50,
        ),
        ("kept while promoting", promoting, 100),
        (
            "kept while promoting, whatever the step",
            WeightInputs {
                observed: Some(30),
                selects_canary: false,
                ..promoting
            },
            30,
        ),
        (
            "0 while promoting before the route shows a weight",
            WeightInputs {
                observed: None,
                ..promoting
            },
            0,
        ),
        (
            "0 once stable takes the canary over",
            WeightInputs {
                switch_stable: true,
                ..promoting
            },
            0,
        ),
    ];
    for (name, inputs, want) in cases {
        assert_eq!(next_weight(&inputs), want, "{name}: {inputs:?}");
    }
}

/// One disturbance between rounds of a random canary.
#[derive(Clone, Debug)]
enum Nudge {
    Settle,
    Promote,
    PromoteFull,
    Abort,
    Retry,
    NewTemplate,
    BreakCanary,
    Wait(i64),
    /// The gateway stops accepting route changes, or catches up.
    GatewayLags,
    GatewayCatchesUp,
}

fn nudge() -> impl Strategy<Value = Nudge> {
    prop_oneof![
        8 => Just(Nudge::Settle),
        3 => Just(Nudge::Promote),
        1 => Just(Nudge::PromoteFull),
        1 => Just(Nudge::Abort),
        1 => Just(Nudge::Retry),
        1 => Just(Nudge::NewTemplate),
        1 => Just(Nudge::BreakCanary),
        2 => (1..90i64).prop_map(Nudge::Wait),
        1 => Just(Nudge::GatewayLags),
        1 => Just(Nudge::GatewayCatchesUp),
    ]
}

fn steps() -> impl Strategy<Value = serde_json::Value> {
    let step = prop_oneof![
        (0..=100i32).prop_map(|w| serde_json::json!({ "setWeight": w })),
        (0..10i32).prop_map(|s| serde_json::json!({ "pause": { "duration": format!("{s}s") } })),
        Just(serde_json::json!({ "pause": {} })),
        Just(
            serde_json::json!({ "setHeaderRoute": { "name": "t", "match": [{ "headerName": "x", "headerValue": { "exact": "1" } }] } })
        ),
        Just(serde_json::json!({ "setHeaderRoute": { "name": "t" } })),
        (0..=100i32).prop_map(|p| serde_json::json!({ "setMirrorRoute": { "name": "m", "percentage": p } })),
    ];
    prop::collection::vec(step, 0..6).prop_map(serde_json::Value::from)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn canary_invariants_hold_whatever_happens(
        steps in steps(),
        routed in any::<bool>(),
        replicas in 1..12i32,
        nudges in prop::collection::vec(nudge(), 1..40),
    ) {
        // Route steps need a router (the schema says so).
        let steps: Vec<serde_json::Value> = steps.as_array().unwrap().iter()
            .filter(|s| routed || (s.get("setHeaderRoute").is_none() && s.get("setMirrorRoute").is_none()))
            .cloned().collect();
        // A mirror needs canary pods to mirror to (validation says so).
        let mut steps = steps;
        if steps.iter().any(|s| s.get("setMirrorRoute").is_some()) {
            steps.insert(0, serde_json::json!({ "setCanaryScale": { "replicas": 1 } }));
        }
        let mut r = canary(replicas, steps.into(), routed);
        let mut cluster = if routed { routed_cluster() } else { Cluster::new() };
        cluster.traffic.reports_acceptance = routed;
        rolled_out(&mut r, &mut cluster);
        let mut images = 3;
        for nudge in nudges {
            match nudge {
                Nudge::Settle => {}
                Nudge::Promote => control(&mut r, Control { promote: true, ..Default::default() }),
                Nudge::PromoteFull => control(&mut r, Control { promote_full: true, ..Default::default() }),
                Nudge::Abort => control(&mut r, Control { abort: true, ..Default::default() }),
                Nudge::Retry => control(&mut r, Control { retry: true, ..Default::default() }),
                Nudge::NewTemplate => {
                    set_image(&mut r, &format!("web:{images}"));
                    images += 1;
                }
                Nudge::BreakCanary => cluster.unhealthy.push(revision(&r)),
                Nudge::Wait(seconds) => cluster.settle(seconds),
                Nudge::GatewayLags => cluster.traffic.unaccepted = routed.then(|| "lagging".to_string()),
                Nudge::GatewayCatchesUp => cluster.traffic.unaccepted = None,
            }
            plan_checked(&mut cluster, &mut r);
            // The controller consumes a control request after one round.
            r.status.as_mut().unwrap().control = None;
            cluster.settle(1);
        }
        // Left alone with a healthy template and promoted, it converges.
        cluster.unhealthy.clear();
        cluster.traffic.unaccepted = None;
        set_image(&mut r, "web:final");
        for _ in 0..200 {
            control(&mut r, Control { promote_full: true, ..Default::default() });
            plan_checked(&mut cluster, &mut r);
            r.status.as_mut().unwrap().control = None;
            cluster.settle(10);
            if phase(&r) == Some(Phase::Healthy) && cluster.replica_sets.iter().filter(|rs| rs.replicas > 0).count() == 1 {
                break;
            }
        }
        prop_assert_eq!(phase(&r), Some(Phase::Healthy), "{:#?}", r.status);
        let running: Vec<_> = cluster.replica_sets.iter().filter(|rs| rs.replicas > 0).collect();
        prop_assert_eq!(running.len(), 1, "{:?}", cluster.replica_sets);
        prop_assert_eq!(running[0].revision.clone(), revision(&r));
        prop_assert_eq!(running[0].replicas, replicas);
        prop_assert_eq!(cluster.traffic.routes.clone().filter(|r| !r.is_empty()), None, "no route outlives the canary");
    }
}

#[test]
fn a_promote_while_paused_waits_for_the_resume_and_the_step_clock_restarts() {
    let steps = serde_json::json!([{ "setWeight": 20 }, { "pause": { "duration": "10s" } }, { "pause": {} }]);
    let mut r = canary(10, steps, true);
    let mut cluster = routed_cluster();
    rolled_out(&mut r, &mut cluster);
    run_until(&mut cluster, &mut r, 10, |r| step(r) == Some(1));
    r.spec.paused = true;
    round(&mut cluster, &mut r);
    cluster.settle(300);
    control(
        &mut r,
        Control {
            promote: true,
            ..Default::default()
        },
    );
    let held = cluster.plan(&mut r);
    assert!(held.keep_control, "the promote is kept for later");
    assert_eq!(step(&r), Some(1));

    r.spec.paused = false;
    r.status.as_mut().unwrap().control = None;
    let resumed = cluster.plan(&mut r);
    assert!(resumed.events.iter().any(|e| e.reason == "Resumed"));
    assert_eq!(
        step(&r),
        Some(1),
        "the 10s pause restarts rather than counting the paused 300s"
    );
    assert_eq!(resumed.requeue_after.map(|d| d.as_secs()), Some(10));
    assert!(!resumed.keep_control);
}

#[test]
fn a_canary_that_loses_pods_late_in_a_pause_gets_the_whole_deadline() {
    let (mut r, mut cluster, v1, v2) = at_half(true);
    cluster.settle(3600);
    assert!(
        cluster.plan(&mut r).actions.is_empty(),
        "an hour of manual pause is fine"
    );
    // A canary pod dies: the deadline (60s) counts from now, not from the step's start.
    let canary = cluster.replica_sets.iter_mut().find(|rs| rs.revision == v2).unwrap();
    canary.available -= 1;
    let plan = cluster.plan(&mut r);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(plan.requeue_after.map(|d| d.as_secs()), Some(60));
    cluster.now = cluster
        .now
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(61))
        .unwrap();
    let plan = cluster.plan(&mut r);
    apply_checked(&mut cluster, &r, &plan);
    assert_eq!(condition_reason(&r, DEGRADED).1, "ProgressDeadlineExceeded");
    assert_eq!((cluster.replicas_of(&v1), cluster.replicas_of(&v2)), (10, 0));
}

#[test]
fn a_round_that_steers_traffic_looks_again_soon() {
    let mut r = canary(4, walk_steps(), true);
    let mut cluster = routed_cluster();
    rolled_out(&mut r, &mut cluster);
    let plans = run_until(&mut cluster, &mut r, 20, |r| step(r) == Some(1));
    let steering: Vec<_> = plans
        .iter()
        .filter(|p| {
            p.actions
                .iter()
                .any(|a| matches!(a, Action::Select { .. } | Action::SetWeight { .. }))
        })
        .collect();
    assert!(!steering.is_empty());
    for plan in steering {
        // A backstop to the watches of Services and routes.
        assert!(plan.requeue_after.is_some_and(|d| d.as_secs() <= 1), "{plan:?}");
    }
}

#[test]
fn a_timed_pause_never_ends_early_though_status_keeps_whole_seconds() {
    let steps = serde_json::json!([{ "setWeight": 20 }, { "pause": { "duration": "5s" } }, { "pause": {} }]);
    let mut r = canary(4, steps, true);
    let mut cluster = routed_cluster();
    rolled_out(&mut r, &mut cluster);
    cluster.now = cluster
        .now
        .checked_add(k8s_openapi::jiff::SignedDuration::from_millis(900))
        .unwrap();
    run_until(&mut cluster, &mut r, 10, |r| step(r) == Some(1));
    let entered = cluster
        .now
        .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(1))
        .unwrap();
    let mut ended = None;
    for tenth in 1..=80 {
        cluster.now = entered
            .checked_add(k8s_openapi::jiff::SignedDuration::from_millis(100 * tenth))
            .unwrap();
        cluster.plan(&mut r);
        if step(&r) == Some(2) {
            ended = Some(tenth);
            break;
        }
    }
    assert!(
        ended.is_some_and(|t| t >= 50),
        "the 5s pause ended after {ended:?} tenths"
    );
}

#[test]
fn a_canary_past_its_deadline_with_its_stable_revision_gone_waits_for_a_change() {
    let mut r = canary(4, walk_steps(), true);
    let mut cluster = routed_cluster();
    let (v1, v2) = rolled_out(&mut r, &mut cluster);
    cluster.unhealthy.push(v2.clone());
    round(&mut cluster, &mut r);
    // Someone deletes the stable ReplicaSet; the canary never becomes available.
    cluster.replica_sets.retain(|rs| rs.revision != v1);
    cluster.settle(61);
    for _ in 0..3 {
        let plan = cluster.plan(&mut r);
        assert_ne!(
            plan.requeue_after,
            Some(std::time::Duration::ZERO),
            "a round that can do nothing must not ask to run again at once: {plan:?}"
        );
        cluster.apply(&plan);
    }
}

#[test]
fn a_weight_back_to_zero_takes_the_canary_service_to_stable_and_the_canary_pods_go() {
    let steps = serde_json::json!([{ "setWeight": 50 }, { "pause": { "duration": "1s" } }, { "setWeight": 0 }, { "pause": {} }]);
    let mut r = canary(4, steps, true);
    let mut cluster = routed_cluster();
    let (v1, v2) = rolled_out(&mut r, &mut cluster);
    run_until(&mut cluster, &mut r, 40, |r| phase(r) == Some(Phase::Paused));
    assert_eq!(step(&r), Some(3), "the weight-0 step completed");
    assert_eq!(cluster.replicas_of(&v2), 0);
    assert_eq!(cluster.traffic.canary_weight, Some(0));
    assert_eq!(cluster.traffic.canary_service.as_ref(), Some(&v1));
}
