//! The blue-green state machine against the simulated cluster, with the
//! zero-downtime invariant checked after every single action.
use proptest::prelude::*;

use super::super::bluegreen::Stage;
use super::super::conditions::{DEGRADED, PROGRESSING};
use super::{Cluster, analysis, condition_reason, release, revision};
use crate::api::{BlueGreenStatus, Control, Phase, Release, ReleaseStatus};
use crate::plan::{Action, AnalysisInput, AnalysisSlot, Plan, Verdict};

const ACTIVE: &str = "web";
const PREVIEW: &str = "web-preview";

fn blue_green(replicas: i32, extra: serde_json::Value) -> Release {
    let mut strategy = serde_json::json!({
        "activeService": ACTIVE, "previewService": PREVIEW,
        "scaleDownDelaySeconds": 30, "abortScaleDownDelaySeconds": 20,
    });
    if let (Some(strategy), Some(extra)) = (strategy.as_object_mut(), extra.as_object()) {
        strategy.extend(extra.clone());
    }
    release(replicas, "web:1", serde_json::json!({ "blueGreen": strategy }))
}

fn set_image(r: &mut Release, image: &str) -> String {
    r.spec.template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
    revision(r)
}

fn control(r: &mut Release, control: Control) {
    r.status.as_mut().unwrap().control = Some(control);
}

fn phase(r: &Release) -> Option<Phase> {
    r.status.as_ref().and_then(|s| s.phase)
}

fn reason_of(r: &Release) -> String {
    condition_reason(r, PROGRESSING).1
}

/// Applies a plan one action at a time: the active Service never selects a
/// revision with fewer than `replicas` available pods.
fn apply_checked(cluster: &mut Cluster, r: &Release, plan: &Plan) {
    for action in &plan.actions {
        cluster.apply_one(action);
        if let Some(active) = &cluster.traffic.stable_service {
            let available: i32 = cluster
                .replica_sets
                .iter()
                .filter(|rs| &rs.revision == active)
                .map(|rs| rs.available)
                .sum();
            assert!(
                available >= r.spec.replicas,
                "active Service on {active} with {available} of {} available after {action:?}",
                r.spec.replicas
            );
        }
    }
}

fn round_with(cluster: &mut Cluster, r: &mut Release, gate: Option<AnalysisInput>) -> Plan {
    let plan = cluster.plan_analysed(r, None, gate);
    apply_checked(cluster, r, &plan);
    cluster.settle(1);
    plan
}

fn run_until(cluster: &mut Cluster, r: &mut Release, rounds: usize, done: impl Fn(&Release) -> bool) -> Vec<Plan> {
    let mut plans = Vec::new();
    for _ in 0..rounds {
        plans.push(round_with(cluster, r, None));
        if done(r) {
            return plans;
        }
    }
    panic!("not done after {rounds} rounds: {:#?}", r.status);
}

fn rolled_out(r: &mut Release, cluster: &mut Cluster) -> (String, String) {
    run_until(cluster, r, 10, |r| phase(r) == Some(Phase::Healthy));
    let v1 = revision(r);
    let v2 = set_image(r, "web:2");
    (v1, v2)
}

fn gate(revision: &str, slot: AnalysisSlot, verdict: Verdict) -> AnalysisInput {
    let message = match &verdict {
        Verdict::Failed(m) => Some(m.clone()),
        _ => None,
    };
    let mut input = analysis(revision, verdict, message.as_deref());
    input.slot = slot;
    input
}

fn switched(r: &Release) -> bool {
    r.status
        .as_ref()
        .and_then(|s| s.blue_green.as_ref())
        .is_some_and(|b| b.switched_at.is_some())
}

#[test]
fn a_first_release_comes_up_and_both_services_select_it() {
    let mut r = blue_green(4, serde_json::json!({}));
    let mut cluster = Cluster::new();
    run_until(&mut cluster, &mut r, 10, |r| phase(r) == Some(Phase::Healthy));
    let v1 = revision(&r);
    assert_eq!(cluster.replicas_of(&v1), 4);
    assert_eq!(cluster.traffic.stable_service.as_ref(), Some(&v1));
    assert_eq!(cluster.traffic.canary_service.as_ref(), Some(&v1));
    let status = r.status.as_ref().unwrap();
    assert_eq!(status.blue_green.as_ref().unwrap().active_revision.as_ref(), Some(&v1));
}

#[test]
fn a_preview_switches_by_itself_after_auto_promotion_seconds() {
    let mut r = blue_green(
        10,
        serde_json::json!({ "previewReplicaCount": 2, "autoPromotionSeconds": 10 }),
    );
    let mut cluster = Cluster::new();
    let (v1, v2) = rolled_out(&mut r, &mut cluster);

    run_until(&mut cluster, &mut r, 5, |r| {
        r.status
            .as_ref()
            .unwrap()
            .blue_green
            .as_ref()
            .unwrap()
            .preview_ready_at
            .is_some()
    });
    assert_eq!(
        (cluster.replicas_of(&v2), cluster.replicas_of(&v1)),
        (2, 10),
        "preview at its own size"
    );
    assert_eq!(
        cluster.traffic.canary_service.as_ref(),
        Some(&v2),
        "preview Service on the new revision"
    );
    assert_eq!(cluster.traffic.stable_service.as_ref(), Some(&v1));
    let waiting = cluster.plan(&mut r);
    assert!(waiting.requeue_after.is_some_and(|d| d.as_secs() <= 10), "{waiting:?}");

    let plans = run_until(&mut cluster, &mut r, 20, |r| phase(r) == Some(Phase::Healthy));
    assert!(plans.iter().any(|p| p.events.iter().any(|e| e.reason == "Promoting")));
    assert!(plans.iter().any(|p| p.events.iter().any(|e| e.reason == "Switched")));
    assert_eq!(cluster.traffic.stable_service.as_ref(), Some(&v2));
    assert_eq!(cluster.replicas_of(&v2), 10);
    assert_eq!(
        cluster.replicas_of(&v1),
        10,
        "the old revision stands by for scaleDownDelaySeconds"
    );
    cluster.settle(30);
    run_until(&mut cluster, &mut r, 3, |_| true);
    assert_eq!(cluster.replicas_of(&v1), 0);
}

#[test]
fn without_auto_promotion_a_person_promotes() {
    let mut r = blue_green(4, serde_json::json!({ "autoPromotionEnabled": false }));
    let mut cluster = Cluster::new();
    let (v1, v2) = rolled_out(&mut r, &mut cluster);
    run_until(&mut cluster, &mut r, 10, |r| phase(r) == Some(Phase::Paused));
    assert_eq!(reason_of(&r), "AwaitingPromotion");
    cluster.settle(3600);
    assert!(
        cluster.plan(&mut r).actions.is_empty(),
        "nothing moves without a person"
    );
    assert_eq!(cluster.traffic.stable_service.as_ref(), Some(&v1));

    control(
        &mut r,
        Control {
            promote: true,
            ..Default::default()
        },
    );
    run_until(&mut cluster, &mut r, 10, |r| phase(r) == Some(Phase::Healthy));
    assert_eq!(cluster.traffic.stable_service.as_ref(), Some(&v2));
}

#[test]
fn a_failing_pre_promotion_analysis_blocks_the_switch_and_scales_the_preview_down() {
    let checks = serde_json::json!({ "templateName": "smoke" });
    let mut r = blue_green(
        4,
        serde_json::json!({ "prePromotionAnalysis": { "templates": [checks] } }),
    );
    let mut cluster = Cluster::new();
    let (v1, v2) = rolled_out(&mut r, &mut cluster);
    run_until(&mut cluster, &mut r, 10, |r| reason_of(r) == "WaitingForAnalysis");
    assert!(!switched(&r));

    let failed = gate(
        &v2,
        AnalysisSlot::PrePromotion,
        Verdict::Failed("metric \"smoke\" failed".into()),
    );
    round_with(&mut cluster, &mut r, Some(failed));
    assert_eq!(condition_reason(&r, DEGRADED), ("True".into(), "AnalysisFailed".into()));
    assert!(r.status.as_ref().unwrap().message.as_ref().unwrap().contains("smoke"));
    assert_eq!(cluster.traffic.stable_service.as_ref(), Some(&v1), "never switched");
    assert_eq!(
        cluster.traffic.canary_service.as_ref(),
        Some(&v1),
        "preview back on stable"
    );
    assert_eq!(cluster.replicas_of(&v2), 4, "kept for abortScaleDownDelaySeconds");
    cluster.settle(20);
    run_until(&mut cluster, &mut r, 3, |_| true);
    assert_eq!(cluster.replicas_of(&v2), 0);
    assert_eq!(cluster.replicas_of(&v1), 4);
}

/// A 4-replica blue-green with a post-promotion analysis, switched from v1 to v2.
fn switched_with_post_promotion_analysis() -> (Release, Cluster, String, String) {
    let checks = serde_json::json!({ "templateName": "smoke" });
    let mut r = blue_green(
        4,
        serde_json::json!({ "postPromotionAnalysis": { "templates": [checks] } }),
    );
    let mut cluster = Cluster::new();
    let (v1, v2) = rolled_out(&mut r, &mut cluster);
    run_until(&mut cluster, &mut r, 10, switched);
    (r, cluster, v1, v2)
}

#[test]
fn a_failing_post_promotion_analysis_switches_back_in_the_same_round() {
    let (mut r, mut cluster, v1, v2) = switched_with_post_promotion_analysis();
    assert_eq!(cluster.traffic.stable_service.as_ref(), Some(&v2));
    assert_eq!(reason_of(&r), "PostPromotionAnalysis");
    assert_eq!(cluster.replicas_of(&v1), 4, "stands by");

    let failed = gate(
        &v2,
        AnalysisSlot::PostPromotion,
        Verdict::Failed("metric \"smoke\" failed".into()),
    );
    let plan = round_with(&mut cluster, &mut r, Some(failed));
    assert_eq!(
        plan.actions.first(),
        Some(&Action::Select {
            service: ACTIVE.into(),
            revision: v1.clone()
        })
    );
    assert_eq!(cluster.traffic.stable_service.as_ref(), Some(&v1));
    assert_eq!(condition_reason(&r, DEGRADED), ("True".into(), "AnalysisFailed".into()));
    assert_eq!(r.status.as_ref().unwrap().stable_revision.as_ref(), Some(&v1));
}

#[test]
fn a_passing_post_promotion_analysis_makes_the_new_revision_stable() {
    let (mut r, mut cluster, v1, v2) = switched_with_post_promotion_analysis();
    cluster.settle(40);
    round_with(
        &mut cluster,
        &mut r,
        Some(gate(&v2, AnalysisSlot::PostPromotion, Verdict::Successful)),
    );
    assert_eq!(phase(&r), Some(Phase::Healthy));
    assert_eq!(r.status.as_ref().unwrap().stable_revision.as_ref(), Some(&v2));
    assert_eq!(
        cluster.replicas_of(&v1),
        0,
        "the delay already passed while the analysis ran"
    );
}

#[test]
fn a_person_can_abort_before_or_after_the_switch() {
    for after_switch in [false, true] {
        let mut r = blue_green(
            4,
            serde_json::json!({ "autoPromotionEnabled": after_switch,
            "postPromotionAnalysis": { "templates": [{ "templateName": "smoke" }] } }),
        );
        let mut cluster = Cluster::new();
        let (v1, v2) = rolled_out(&mut r, &mut cluster);
        if after_switch {
            run_until(&mut cluster, &mut r, 10, switched);
        } else {
            run_until(&mut cluster, &mut r, 10, |r| phase(r) == Some(Phase::Paused));
        }
        control(
            &mut r,
            Control {
                abort: true,
                ..Default::default()
            },
        );
        let plan = round_with(&mut cluster, &mut r, None);
        assert!(plan.events.iter().any(|e| e.reason == "Aborted"));
        assert_eq!(condition_reason(&r, DEGRADED), ("True".into(), "Aborted".into()));
        assert_eq!(cluster.traffic.stable_service.as_ref(), Some(&v1));
        assert_eq!(cluster.replicas_of(&v2), 4, "kept for abortScaleDownDelaySeconds");
        cluster.settle(20);
        run_until(&mut cluster, &mut r, 3, |_| true);
        assert_eq!((cluster.replicas_of(&v1), cluster.replicas_of(&v2)), (4, 0));
    }
}

#[test]
fn a_new_template_during_preview_supersedes_it() {
    let mut r = blue_green(
        4,
        serde_json::json!({ "autoPromotionEnabled": false, "previewReplicaCount": 1 }),
    );
    let mut cluster = Cluster::new();
    let (v1, v2) = rolled_out(&mut r, &mut cluster);
    run_until(&mut cluster, &mut r, 10, |r| phase(r) == Some(Phase::Paused));
    let v3 = set_image(&mut r, "web:3");
    run_until(&mut cluster, &mut r, 10, |r| phase(r) == Some(Phase::Paused));
    assert_eq!(cluster.replicas_of(&v2), 0);
    assert_eq!(cluster.replicas_of(&v3), 1);
    assert_eq!(cluster.traffic.canary_service.as_ref(), Some(&v3));
    assert_eq!(cluster.traffic.stable_service.as_ref(), Some(&v1));
    let status = r.status.as_ref().unwrap();
    assert_eq!(status.blue_green.as_ref().unwrap().preview_revision.as_ref(), Some(&v3));
}

#[test]
fn a_preview_that_never_becomes_available_is_rolled_back_at_the_deadline() {
    let mut r = blue_green(4, serde_json::json!({ "abortScaleDownDelaySeconds": 0 }));
    let mut cluster = Cluster::new();
    let (v1, v2) = rolled_out(&mut r, &mut cluster);
    cluster.unhealthy.push(v2.clone());
    round_with(&mut cluster, &mut r, None);
    cluster.settle(60);
    run_until(&mut cluster, &mut r, 3, |r| phase(r) == Some(Phase::Degraded));
    assert_eq!(condition_reason(&r, DEGRADED).1, "ProgressDeadlineExceeded");
    run_until(&mut cluster, &mut r, 3, |_| true);
    assert_eq!((cluster.replicas_of(&v1), cluster.replicas_of(&v2)), (4, 0));
}

#[derive(Clone, Debug)]
enum Nudge {
    Settle,
    Promote,
    Abort,
    Retry,
    NewTemplate,
    BreakNew,
    Wait(i64),
    Gate(bool),
}

fn nudge() -> impl Strategy<Value = Nudge> {
    prop_oneof![
        8 => Just(Nudge::Settle),
        3 => Just(Nudge::Promote),
        1 => Just(Nudge::Abort),
        1 => Just(Nudge::Retry),
        1 => Just(Nudge::NewTemplate),
        1 => Just(Nudge::BreakNew),
        2 => (1..90i64).prop_map(Nudge::Wait),
        2 => any::<bool>().prop_map(Nudge::Gate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn the_active_service_never_selects_a_revision_short_of_pods(
        replicas in 1..8i32,
        preview in prop::option::of(0..8i32),
        auto in any::<bool>(),
        checks in any::<bool>(),
        nudges in prop::collection::vec(nudge(), 1..40),
    ) {
        let mut extra = serde_json::json!({ "autoPromotionEnabled": auto });
        if let Some(preview) = preview {
            extra["previewReplicaCount"] = preview.into();
        }
        if checks {
            extra["prePromotionAnalysis"] = serde_json::json!({ "templates": [{ "templateName": "pre" }] });
            extra["postPromotionAnalysis"] = serde_json::json!({ "templates": [{ "templateName": "post" }] });
        }
        let mut r = blue_green(replicas, extra);
        let mut cluster = Cluster::new();
        rolled_out(&mut r, &mut cluster);
        let mut images = 3;
        for nudge in nudges {
            let mut gate_input = None;
            match nudge {
                Nudge::Settle => {}
                Nudge::Promote => control(&mut r, Control { promote: true, ..Default::default() }),
                Nudge::Abort => control(&mut r, Control { abort: true, ..Default::default() }),
                Nudge::Retry => control(&mut r, Control { retry: true, ..Default::default() }),
                Nudge::NewTemplate => {
                    set_image(&mut r, &format!("web:{images}"));
                    images += 1;
                }
                Nudge::BreakNew => cluster.unhealthy.push(revision(&r)),
                Nudge::Wait(seconds) => cluster.settle(seconds),
                Nudge::Gate(pass) => {
                    let slot = if switched(&r) { AnalysisSlot::PostPromotion } else { AnalysisSlot::PrePromotion };
                    let verdict = if pass { Verdict::Successful } else { Verdict::Failed("bad".into()) };
                    gate_input = Some(gate(&revision(&r), slot, verdict));
                }
            }
            round_with(&mut cluster, &mut r, gate_input);
        }
        // Left alone with a healthy template, checks passing and promoted, it converges.
        cluster.unhealthy.clear();
        set_image(&mut r, "web:final");
        for _ in 0..100 {
            control(&mut r, Control { promote_full: true, ..Default::default() });
            let slot = if switched(&r) { AnalysisSlot::PostPromotion } else { AnalysisSlot::PrePromotion };
            let passed = checks.then(|| gate(&revision(&r), slot, Verdict::Successful));
            round_with(&mut cluster, &mut r, passed);
            cluster.settle(10);
            let running = cluster.replica_sets.iter().filter(|rs| rs.replicas > 0).count();
            if phase(&r) == Some(Phase::Healthy) && running == 1 {
                break;
            }
        }
        prop_assert_eq!(phase(&r), Some(Phase::Healthy), "{:#?}", r.status);
        let running: Vec<_> = cluster.replica_sets.iter().filter(|rs| rs.replicas > 0).collect();
        prop_assert_eq!(running.len(), 1, "{:?}", cluster.replica_sets);
        prop_assert_eq!(running[0].revision.clone(), revision(&r));
        prop_assert_eq!(cluster.traffic.stable_service.clone(), Some(revision(&r)));
    }
}

#[test]
fn a_promote_sent_before_the_preview_is_ready_waits_for_it() {
    let mut r = blue_green(4, serde_json::json!({ "autoPromotionEnabled": false }));
    let mut cluster = Cluster::new();
    let (_, v2) = rolled_out(&mut r, &mut cluster);
    control(
        &mut r,
        Control {
            promote: true,
            ..Default::default()
        },
    );
    let early = cluster.plan(&mut r);
    assert!(early.keep_control, "kept until the preview can be promoted");
    cluster.apply(&early);
    cluster.settle(1);
    run_until(&mut cluster, &mut r, 10, |r| phase(r) == Some(Phase::Healthy));
    assert_eq!(cluster.traffic.stable_service.as_ref(), Some(&v2));
}

#[test]
fn resuming_restarts_the_auto_promotion_clock() {
    let mut r = blue_green(4, serde_json::json!({ "autoPromotionSeconds": 60 }));
    let mut cluster = Cluster::new();
    rolled_out(&mut r, &mut cluster);
    run_until(&mut cluster, &mut r, 10, |r| {
        r.status
            .as_ref()
            .unwrap()
            .blue_green
            .as_ref()
            .unwrap()
            .preview_ready_at
            .is_some()
    });
    r.spec.paused = true;
    round_with(&mut cluster, &mut r, None);
    cluster.settle(300);
    r.spec.paused = false;
    let resumed = round_with(&mut cluster, &mut r, None);
    assert!(resumed.events.iter().any(|e| e.reason == "Resumed"));
    assert!(!switched(&r) && !r.status.as_ref().unwrap().blue_green.as_ref().unwrap().promoting);
    assert!(
        resumed.requeue_after.is_some_and(|d| d.as_secs() > 50),
        "{:?}",
        resumed.requeue_after
    );
}

#[test]
fn the_stage_is_read_from_status_once() {
    fn at() -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time> {
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ))
    }
    let preview = |f: fn(&mut BlueGreenStatus)| {
        let mut state = BlueGreenStatus {
            preview_revision: Some("new".into()),
            ..Default::default()
        };
        f(&mut state);
        Some(state)
    };
    let status = |stable: Option<&str>, failed: bool, blue_green: Option<BlueGreenStatus>| ReleaseStatus {
        stable_revision: stable.map(Into::into),
        failed_revision: failed.then(|| "new".into()),
        blue_green,
        ..Default::default()
    };
    let switched = preview(|b| {
        b.preview_ready_at = at();
        b.promoting = true;
        b.switched_at = at();
    });
    let cases = [
        ("first revision", status(None, false, None), false, Stage::Steady),
        (
            "current is stable",
            status(Some("new"), false, switched.clone()),
            false,
            Stage::Steady,
        ),
        (
            "current is stable, though once failed",
            status(Some("new"), true, None),
            false,
            Stage::Steady,
        ),
        ("rolled back", status(Some("old"), true, None), false, Stage::RolledBack),
        (
            "rolled back after the switch",
            status(Some("old"), true, switched.clone()),
            false,
            Stage::RolledBack,
        ),
        (
            "nothing recorded",
            status(Some("old"), false, None),
            false,
            Stage::Preview,
        ),
        (
            "recorded for another revision",
            status(
                Some("old"),
                false,
                preview(|b| {
                    b.preview_revision = Some("older".into());
                    b.promoting = true;
                    b.switched_at = at();
                }),
            ),
            false,
            Stage::Preview,
        ),
        (
            "preview ready",
            status(Some("old"), false, preview(|b| b.preview_ready_at = at())),
            false,
            Stage::Preview,
        ),
        (
            "scaleDownAt is no stage",
            status(Some("old"), false, preview(|b| b.scale_down_at = at())),
            false,
            Stage::Preview,
        ),
        (
            "promoting",
            status(
                Some("old"),
                false,
                preview(|b| {
                    b.preview_ready_at = at();
                    b.promoting = true;
                }),
            ),
            false,
            Stage::Promoting,
        ),
        (
            "switched",
            status(Some("old"), false, switched.clone()),
            false,
            Stage::Switched,
        ),
        (
            "switched, promoting not recorded",
            status(Some("old"), false, preview(|b| b.switched_at = at())),
            false,
            Stage::Switched,
        ),
        (
            "a retry starts from the preview",
            status(Some("old"), false, switched.clone()),
            true,
            Stage::Preview,
        ),
    ];
    for (name, status, retry, want) in cases {
        assert_eq!(Stage::of(&status, "new", retry), want, "{name}");
    }
}

#[test]
fn a_preview_past_its_deadline_with_its_stable_revision_gone_waits_for_a_change() {
    let mut r = blue_green(3, serde_json::json!({}));
    let mut cluster = Cluster::new();
    let (v1, v2) = rolled_out(&mut r, &mut cluster);
    cluster.unhealthy.push(v2.clone());
    round_with(&mut cluster, &mut r, None);
    cluster.replica_sets.retain(|rs| rs.revision != v1);
    cluster.settle(601);
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
