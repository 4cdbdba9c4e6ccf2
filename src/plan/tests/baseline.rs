//! Baseline pods against the simulated cluster: created while an analysis that
//! asks for them runs, at the canary's (preview's) size, and gone once it ends.
use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;

use super::super::conditions::DEGRADED;
use super::{Cluster, condition_reason, release, revision};
use crate::api::{AnalysisPhase, Phase, Release};
use crate::plan::{Action, AnalysisInput, AnalysisSlot, BaselineState, Plan, Verdict, analyses_due, baseline_name};

/// A 4-replica canary: setWeight 50, then an analysis of template "judge".
fn canary(baseline_pods: bool) -> Release {
    let analysis = json!({ "templates": [{ "templateName": "judge" }], "baselinePods": baseline_pods });
    let steps = json!([{ "setWeight": 50 }, { "analysis": analysis }]);
    release(4, "web:1", json!({ "canary": { "steps": steps } }))
}

/// A 4-replica blue-green with a 2-pod preview and a pre-promotion analysis with baseline pods.
fn blue_green() -> Release {
    let analysis = json!({ "templates": [{ "templateName": "judge" }], "baselinePods": true });
    let strategy = json!({
        "activeService": "web", "previewService": "web-preview", "previewReplicaCount": 2,
        "prePromotionAnalysis": analysis,
    });
    release(4, "web:1", json!({ "blueGreen": strategy }))
}

/// The gate analysis due now (a canary step or pre-promotion), as `verdict` has it.
fn gate(r: &Release, cluster: &Cluster, verdict: &Verdict) -> Option<AnalysisInput> {
    let request = analyses_due(r, cluster.now)
        .into_iter()
        .find(|a| a.slot != AnalysisSlot::Background)?;
    let mut status = request.status;
    status.phase = match verdict {
        Verdict::Successful => AnalysisPhase::Successful,
        Verdict::Failed(_) => AnalysisPhase::Failed,
        Verdict::Inconclusive(_) => AnalysisPhase::Inconclusive,
        Verdict::Running | Verdict::Invalid(_) => AnalysisPhase::Running,
    };
    if let Verdict::Failed(why) | Verdict::Inconclusive(why) = verdict {
        status.message = Some(why.clone());
    }
    Some(AnalysisInput {
        slot: request.slot,
        status,
        verdict: verdict.clone(),
        next_due: Some(Duration::from_secs(5)),
    })
}

/// Plans with the gate analysis due (if any) at `verdict`, applies and settles.
fn round(cluster: &mut Cluster, r: &mut Release, verdict: Option<Verdict>) -> Plan {
    let gate = verdict.and_then(|v| gate(r, cluster, &v));
    let plan = cluster.plan_analysed(r, None, gate);
    cluster.apply(&plan);
    cluster.settle(1);
    plan
}

/// The actions of `plan` on a baseline ReplicaSet.
fn baseline_actions(plan: &Plan) -> Vec<Action> {
    plan.actions
        .iter()
        .filter(|a| match a {
            Action::CreateBaseline { .. } => true,
            Action::Scale { name, .. } | Action::Delete { name } => name.ends_with("-baseline"),
            _ => false,
        })
        .cloned()
        .collect()
}

fn phase(r: &Release) -> Option<Phase> {
    r.status.as_ref().and_then(|s| s.phase)
}

/// A healthy v1, then v2 rolled out until its gate analysis is due (no verdict
/// given yet). Returns (v1, v2).
fn at_gate(r: &mut Release, cluster: &mut Cluster) -> (String, String) {
    cluster.run(r, 10);
    assert_eq!(phase(r), Some(Phase::Healthy));
    let v1 = revision(r);
    r.spec.template.spec.as_mut().unwrap().containers[0].image = Some("web:2".into());
    let v2 = revision(r);
    for _ in 0..20 {
        if gate(r, cluster, &Verdict::Running).is_some() {
            assert_eq!(cluster.baseline, None, "no baseline before the analysis");
            return (v1, v2);
        }
        let plan = round(cluster, r, None);
        assert_eq!(baseline_actions(&plan), vec![], "no baseline before the analysis");
    }
    panic!("the gate analysis never fell due: {:#?}", r.status);
}

/// The baseline of `v1`, for canary `v2`, as the cluster shows it.
fn baseline_of(v1: &str, v2: &str, replicas: i32) -> BaselineState {
    BaselineState {
        name: baseline_name("web", v1),
        stable_revision: v1.into(),
        canary_revision: v2.into(),
        replicas,
        deleting: false,
    }
}

fn create(v1: &str, v2: &str, replicas: i32) -> Action {
    Action::CreateBaseline {
        stable: format!("web-{v1}"),
        revision: v1.into(),
        canary: v2.into(),
        replicas,
    }
}

fn delete(v1: &str) -> Action {
    Action::Delete {
        name: baseline_name("web", v1),
    }
}

#[test]
fn a_canary_analysis_step_runs_one_baseline_at_the_canary_size_until_its_verdict() {
    let cases = [
        (Verdict::Successful, Phase::Progressing),
        (Verdict::Failed("metric \"judge\" failed".into()), Phase::Degraded),
    ];
    for (verdict, ends) in cases {
        let mut r = canary(true);
        let mut cluster = Cluster::new();
        let (v1, v2) = at_gate(&mut r, &mut cluster);
        assert_eq!((cluster.replicas_of(&v1), cluster.replicas_of(&v2)), (2, 2));

        let first = round(&mut cluster, &mut r, Some(Verdict::Running));
        assert_eq!(baseline_actions(&first), vec![create(&v1, &v2, 2)], "{verdict:?}");
        let second = round(&mut cluster, &mut r, Some(Verdict::Running));
        assert_eq!(baseline_actions(&second), vec![], "{verdict:?}: created once");
        assert_eq!(cluster.baseline, Some(baseline_of(&v1, &v2, 2)));

        let last = round(&mut cluster, &mut r, Some(verdict.clone()));
        assert_eq!(baseline_actions(&last), vec![delete(&v1)], "{verdict:?}");
        assert_eq!(cluster.baseline, None);
        assert_eq!(phase(&r), Some(ends), "{verdict:?}");
        // Promoted or rolled back: no baseline comes back.
        let rest = cluster.run(&mut r, 20);
        assert!(rest.iter().all(|p| baseline_actions(p).is_empty()), "{verdict:?}");
        assert_eq!(cluster.baseline, None);
    }
}

#[test]
fn an_analysis_without_baseline_pods_never_creates_a_baseline() {
    for verdict in [Verdict::Successful, Verdict::Failed("bad".into())] {
        let mut r = canary(false);
        let mut cluster = Cluster::new();
        at_gate(&mut r, &mut cluster);
        let mut plans: Vec<_> = [Verdict::Running, Verdict::Running, verdict]
            .into_iter()
            .map(|v| round(&mut cluster, &mut r, Some(v)))
            .collect();
        plans.extend(cluster.run(&mut r, 20));
        assert!(plans.iter().all(|p| baseline_actions(p).is_empty()));
        assert_eq!(cluster.baseline, None);
    }
}

#[test]
fn a_baseline_of_another_stable_revision_goes_and_one_being_deleted_is_left_alone() {
    let mut r = canary(true);
    let mut cluster = Cluster::new();
    let (v1, v2) = at_gate(&mut r, &mut cluster);
    let deleting = |b: BaselineState| BaselineState { deleting: true, ..b };
    // (observed baseline, gate verdict, baseline actions planned)
    let cases = [
        (baseline_of("old", &v2, 2), Some(Verdict::Running), vec![delete("old")]),
        (deleting(baseline_of("old", &v2, 2)), Some(Verdict::Running), vec![]),
        (deleting(baseline_of(&v1, &v2, 2)), Some(Verdict::Running), vec![]),
        (deleting(baseline_of(&v1, &v2, 2)), Some(Verdict::Successful), vec![]),
        (deleting(baseline_of(&v1, &v2, 2)), None, vec![]),
        (baseline_of(&v1, &v2, 2), None, vec![delete(&v1)]),
        (baseline_of(&v1, &v2, 2), Some(Verdict::Running), vec![]),
        // One that stood beside an earlier canary: as old as that one.
        (
            baseline_of(&v1, "earlier", 2),
            Some(Verdict::Running),
            vec![delete(&v1)],
        ),
    ];
    for (observed, verdict, want) in cases {
        cluster.baseline = Some(observed.clone());
        let mut r = r.clone();
        let gate = verdict.as_ref().and_then(|v| gate(&r, &cluster, v));
        let plan = cluster.plan_analysed(&mut r, None, gate);
        assert_eq!(baseline_actions(&plan), want, "{observed:?} at {verdict:?}");
    }
    // Once the other revision's baseline has gone, the right one is created.
    cluster.baseline = Some(baseline_of("old", &v2, 2));
    let plan = round(&mut cluster, &mut r, Some(Verdict::Running));
    assert_eq!(baseline_actions(&plan), vec![delete("old")]);
    let plan = round(&mut cluster, &mut r, Some(Verdict::Running));
    assert_eq!(baseline_actions(&plan), vec![create(&v1, &v2, 2)]);
}

#[test]
fn the_baseline_follows_the_canary_size_during_the_analysis() {
    let mut r = canary(true);
    let mut cluster = Cluster::new();
    let (v1, v2) = at_gate(&mut r, &mut cluster);
    round(&mut cluster, &mut r, Some(Verdict::Running));
    assert_eq!(cluster.baseline, Some(baseline_of(&v1, &v2, 2)));
    // (spec.replicas, the canary's size at 50%)
    for (replicas, canary) in [(8, 4), (2, 1), (5, 3)] {
        r.spec.replicas = replicas;
        let mut resized = false;
        for _ in 0..20 {
            let before = cluster.replicas_of(&v2);
            let plan = round(&mut cluster, &mut r, Some(Verdict::Running));
            let size = cluster.replicas_of(&v2);
            let want = if size == before {
                vec![]
            } else {
                vec![Action::Scale {
                    name: baseline_name("web", &v1),
                    replicas: size,
                }]
            };
            assert_eq!(baseline_actions(&plan), want, "canary {before} -> {size}");
            assert_eq!(cluster.baseline, Some(baseline_of(&v1, &v2, size)));
            resized |= !want.is_empty();
            if size == canary && plan.actions.is_empty() {
                break;
            }
        }
        assert!(resized, "replicas {replicas}: the canary was resized");
        assert_eq!(cluster.replicas_of(&v2), canary, "replicas {replicas}");
        assert_eq!(cluster.baseline.as_ref().map(|b| b.replicas), Some(canary));
    }
}

#[test]
fn a_blue_green_pre_promotion_analysis_runs_a_baseline_at_the_preview_size() {
    for verdict in [Verdict::Successful, Verdict::Failed("metric \"judge\" failed".into())] {
        let mut r = blue_green();
        let mut cluster = Cluster::new();
        let (v1, v2) = at_gate(&mut r, &mut cluster);
        assert_eq!(cluster.replicas_of(&v2), 2, "the preview at its size");

        let first = round(&mut cluster, &mut r, Some(Verdict::Running));
        assert_eq!(baseline_actions(&first), vec![create(&v1, &v2, 2)], "{verdict:?}");
        let second = round(&mut cluster, &mut r, Some(Verdict::Running));
        assert_eq!(baseline_actions(&second), vec![], "{verdict:?}");
        assert_eq!(cluster.baseline, Some(baseline_of(&v1, &v2, 2)));

        let last = round(&mut cluster, &mut r, Some(verdict.clone()));
        assert_eq!(baseline_actions(&last), vec![delete(&v1)], "{verdict:?}");
        assert_eq!(cluster.baseline, None);
        let rest = cluster.run(&mut r, 20);
        assert!(rest.iter().all(|p| baseline_actions(p).is_empty()), "{verdict:?}");
        assert_eq!(cluster.baseline, None);
        let healthy = matches!(verdict, Verdict::Successful);
        assert_eq!(phase(&r) == Some(Phase::Healthy), healthy, "{verdict:?}");
    }
}

#[test]
fn an_invalid_round_plans_no_baseline_action() {
    let mut r = canary(true);
    let mut cluster = Cluster::new();
    let (v1, v2) = at_gate(&mut r, &mut cluster);
    let not_found = Verdict::Invalid("AnalysisTemplate \"judge\" not found".into());
    type Break = fn(&mut Release, &mut Cluster);
    let cases: [(&str, Break, Verdict); 4] = [
        ("an invalid analysis", |_, _| {}, not_found),
        (
            "a selector that does not match the template",
            |r, _| r.spec.selector.match_labels = Some([("app".into(), "api".into())].into()),
            Verdict::Running,
        ),
        (
            "a template the API server refuses",
            |_, c| c.refused = Some("spec.template: Invalid value".into()),
            Verdict::Running,
        ),
        (
            "a Service that cannot be driven",
            |_, c| c.traffic.problem = Some("Service \"web\" not found".into()),
            Verdict::Running,
        ),
    ];
    for (name, break_it, verdict) in cases {
        for observed in [None, Some(baseline_of(&v1, &v2, 2))] {
            let mut r = r.clone();
            let mut cluster = Cluster {
                replica_sets: cluster.replica_sets.clone(),
                baseline: observed.clone(),
                now: cluster.now,
                ..Cluster::new()
            };
            break_it(&mut r, &mut cluster);
            let gate = gate(&r, &cluster, &verdict);
            assert!(gate.is_some(), "{name}: the analysis is due");
            let plan = cluster.plan_analysed(&mut r, None, gate);
            assert_eq!(plan.actions, vec![], "{name}, baseline {observed:?}");
            assert_eq!(
                condition_reason(&r, DEGRADED),
                ("True".into(), "InvalidSpec".into()),
                "{name}"
            );
        }
    }
}

fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![
        4 => Just(Verdict::Running),
        1 => Just(Verdict::Successful),
        1 => Just(Verdict::Failed("metric \"judge\" failed".into())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn one_baseline_at_most_and_only_after_a_round_whose_gate_analysis_runs(
        blue_green_strategy in any::<bool>(),
        verdicts in prop::collection::vec(verdict(), 1..16),
    ) {
        let mut r = if blue_green_strategy { blue_green() } else { canary(true) };
        let mut cluster = Cluster::new();
        let (v1, v2) = at_gate(&mut r, &mut cluster);
        for verdict in verdicts {
            let gate = gate(&r, &cluster, &verdict);
            let running = gate.as_ref().is_some_and(|g| g.verdict == Verdict::Running);
            let observed = cluster.baseline.is_some();
            let plan = cluster.plan_analysed(&mut r, None, gate);
            let creates = plan.actions.iter().filter(|a| matches!(a, Action::CreateBaseline { .. })).count();
            prop_assert!(creates <= usize::from(!observed), "{:?} with baseline {:?}", plan.actions, cluster.baseline);
            cluster.apply(&plan); // The cluster refuses a second baseline.
            prop_assert_eq!(cluster.baseline.is_some(), running, "{:?} after {:?}", cluster.baseline, verdict);
            if let Some(b) = &cluster.baseline {
                prop_assert_eq!(b, &baseline_of(&v1, &v2, cluster.replicas_of(&v2)));
            }
            cluster.settle(1);
        }
    }
}

#[test]
fn a_paused_release_keeps_its_baseline_as_it_is() {
    let mut r = canary(true);
    let mut cluster = Cluster::new();
    let (v1, v2) = at_gate(&mut r, &mut cluster);
    for observed in [None, Some(baseline_of(&v1, &v2, 2)), Some(baseline_of("old", &v2, 2))] {
        cluster.baseline = observed.clone();
        let mut paused = r.clone();
        paused.spec.paused = true;
        // Paused, no analysis is due: nothing measured, nothing to decide on.
        let plan = cluster.plan_analysed(&mut paused, None, None);
        assert_eq!(baseline_actions(&plan), vec![], "{observed:?}");
    }
}
