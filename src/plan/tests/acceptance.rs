//! Weights the data plane accepted: no scale-down on a route change the
//! gateway has not accepted, a loud hold after the timeout, and the
//! scale-down once it accepts.
use serde_json::json;

use super::canary::{canary, control, phase, rolled_out, round, routed_cluster, run_until, step};
use crate::api::{Control, Phase};
use crate::plan::Action;

/// (reason, message) of the Progressing condition.
fn progressing(r: &crate::api::Release) -> (String, String) {
    let conditions = &r.status.as_ref().unwrap().conditions;
    let c = super::super::conditions::get(conditions, "Progressing").unwrap();
    (c.reason.clone(), c.message.clone())
}

fn scale_downs(actions: &[Action]) -> Vec<&Action> {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Scale { replicas: 0, .. }))
        .collect()
}

#[test]
fn the_old_revision_waits_for_the_gateway_to_accept_the_promotion() {
    let mut r = canary(4, json!([{ "setWeight": 50 }, { "pause": {} }]), true);
    r.spec.strategy.canary.as_mut().unwrap().scale_down_delay_seconds = 0;
    r.spec.strategy.canary.as_mut().unwrap().acceptance_timeout_seconds = 10;
    let mut cluster = routed_cluster();
    cluster.traffic.reports_acceptance = true;
    let (v1, v2) = rolled_out(&mut r, &mut cluster);
    run_until(&mut cluster, &mut r, 20, |r| phase(r) == Some(Phase::Paused));
    control(
        &mut r,
        Control {
            promote: true,
            ..Default::default()
        },
    );

    // Every round the gateway has not accepted: the promotion's weight
    // change stands, and v1 keeps its pods.
    let mut waited = Vec::new();
    for _ in 0..20 {
        let before = cluster.traffic.canary_weight;
        let plan = round(&mut cluster, &mut r);
        assert!(scale_downs(&plan.actions).is_empty(), "{:?}", plan.actions);
        let told = plan.events.iter().filter(|e| e.note.starts_with("Scaled down")).count();
        assert_eq!(told, 0, "no Event for a scale-down held back: {:?}", plan.events);
        if cluster.traffic.canary_weight != before {
            cluster.traffic.unaccepted = Some("HTTPRoute \"web\" is at generation 9".into());
        }
        if cluster.traffic.unaccepted.is_some() && r.status.as_ref().unwrap().stable_revision.as_ref() == Some(&v2) {
            waited.push(progressing(&r));
            if waited.len() == 2 {
                break;
            }
        }
    }
    assert_eq!(
        cluster.replicas_of(&v1),
        4,
        "nothing scaled down on an unaccepted route"
    );
    let (reason, message) = &waited[1];
    assert_eq!(reason, "TrafficNotAccepted");
    assert!(
        message.starts_with("Waiting for the route to be accepted before scaling down ReplicaSet"),
        "{message}"
    );
    assert!(message.ends_with("HTTPRoute \"web\" is at generation 9"), "{message}");

    // Past the timeout: still held, now said with one Warning.
    cluster.settle(11);
    let plan = round(&mut cluster, &mut r);
    assert!(scale_downs(&plan.actions).is_empty());
    let warnings: Vec<_> = plan
        .events
        .iter()
        .filter(|e| e.warning && e.reason == "TrafficNotAccepted")
        .collect();
    assert_eq!(warnings.len(), 1, "{:?}", plan.events);
    let (_, message) = progressing(&r);
    assert!(
        message.starts_with("Holding: the route was not accepted within 10s"),
        "{message}"
    );
    let again = round(&mut cluster, &mut r);
    assert!(
        again.events.iter().all(|e| e.reason != "TrafficNotAccepted"),
        "one Warning per hold"
    );

    // Accepted: v1 goes, and the Release is Healthy.
    cluster.traffic.unaccepted = None;
    let plan = round(&mut cluster, &mut r);
    assert_eq!(scale_downs(&plan.actions).len(), 1, "{:?}", plan.actions);
    run_until(&mut cluster, &mut r, 10, |r| phase(r) == Some(Phase::Healthy));
    assert_eq!(cluster.replicas_of(&v1), 0);
    assert_eq!(r.status.as_ref().unwrap().traffic_unaccepted_since, None);
    assert_eq!(step(&r), Some(2));
}

#[test]
fn a_round_that_lowers_the_weight_scales_the_canary_down_only_in_a_later_round() {
    let mut r = canary(
        4,
        json!([{ "setWeight": 50 }, { "pause": { "duration": "1s" } }, { "setWeight": 25 }, { "pause": {} }]),
        true,
    );
    let mut cluster = routed_cluster();
    cluster.traffic.reports_acceptance = true;
    let (_, v2) = rolled_out(&mut r, &mut cluster);
    for _ in 0..30 {
        let plan = round(&mut cluster, &mut r);
        let lowers = plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::SetWeight { canary: 25 }));
        if lowers {
            let shrink = plan
                .actions
                .iter()
                .any(|a| matches!(a, Action::Scale { replicas: 1, .. }));
            assert!(
                !shrink,
                "the canary shrank in the round that lowered its weight: {:?}",
                plan.actions
            );
        }
        if phase(&r) == Some(Phase::Paused) {
            break;
        }
    }
    assert_eq!(cluster.traffic.canary_weight, Some(25));
    assert_eq!(cluster.replicas_of(&v2), 1, "shrunk once the lowered weight stood");
}
