//! Lifecycle hooks, round by round against the simulated cluster: the plan
//! starts a hook by recording it, `analyses_due` hands it to the "controller"
//! (here: a verdict per round), and the strategy waits, goes on or rolls back.
use super::super::conditions::{DEGRADED, PROGRESSING};
use super::{Cluster, condition_reason, release, revision};
use crate::api::{AnalysisPhase, Control, HookKind, Phase, Release};
use crate::plan::{AnalysisInput, AnalysisSlot, Plan, Traffic, Verdict, analyses_due};

fn hook(name: &str) -> serde_json::Value {
    serde_json::json!({ "templates": [{ "templateName": name }] })
}

fn with_hooks(mut r: Release, pre: bool, post: bool) -> Release {
    let mut hooks = serde_json::json!({});
    if pre {
        hooks["preRollout"] = hook("migrate");
    }
    if post {
        hooks["postRollout"] = hook("smoke");
    }
    r.spec.hooks = Some(serde_json::from_value(hooks).unwrap());
    r
}

fn set_image(r: &mut Release, image: &str) -> String {
    r.spec.template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
    revision(r)
}

/// The controller's part for one round: the hook `analyses_due` asks for,
/// measured to `verdict(kind)`. Returns the kind measured.
fn measure_hook(cluster: &mut Cluster, r: &Release, verdict: &dyn Fn(HookKind) -> Verdict) -> Option<HookKind> {
    cluster.hook = None;
    let request = analyses_due(r, cluster.now)
        .into_iter()
        .find(|a| matches!(a.slot, AnalysisSlot::Hook(_)))?;
    let AnalysisSlot::Hook(kind) = request.slot else {
        unreachable!()
    };
    let verdict = verdict(kind);
    let mut status = request.status;
    status.phase = match &verdict {
        Verdict::Successful => AnalysisPhase::Successful,
        Verdict::Failed(_) => AnalysisPhase::Failed,
        Verdict::Inconclusive(_) => AnalysisPhase::Inconclusive,
        _ => AnalysisPhase::Running,
    };
    if let Verdict::Failed(m) = &verdict {
        status.message = Some(m.clone());
    }
    cluster.hook = Some(AnalysisInput {
        slot: request.slot,
        status,
        verdict,
        next_due: None,
    });
    Some(kind)
}

/// One round: measure the hook that is due, plan, apply, let a second pass.
fn round(cluster: &mut Cluster, r: &mut Release, verdict: &dyn Fn(HookKind) -> Verdict) -> (Plan, Option<HookKind>) {
    let measured = measure_hook(cluster, r, verdict);
    let plan = cluster.plan(r);
    cluster.apply(&plan);
    cluster.settle(1);
    (plan, measured)
}

fn reason(r: &Release, type_: &str) -> String {
    condition_reason(r, type_).1
}

fn healthy_v1(r: &mut Release, cluster: &mut Cluster) -> String {
    let pass = |_: HookKind| Verdict::Successful;
    for _ in 0..20 {
        round(cluster, r, &pass);
    }
    assert_eq!(r.status.as_ref().unwrap().phase, Some(Phase::Healthy));
    revision(r)
}

#[test]
fn a_pre_rollout_hook_runs_before_the_revision_has_any_pod() {
    let mut r = with_hooks(release(4, "web:1", super::rolling(1.into(), 0.into())), true, false);
    let mut cluster = Cluster::new();
    // The first revision waits for its hook too: a migration comes before the first pod.
    let (first, _) = round(&mut cluster, &mut r, &|_| Verdict::Running);
    assert!(first.actions.is_empty(), "{:?}", first.actions);
    assert_eq!(reason(&r, PROGRESSING), "PreRolloutHook");
    let v1 = healthy_v1(&mut r, &mut cluster);

    let v2 = set_image(&mut r, "web:2");
    let mut measured = 0;
    for _ in 0..5 {
        let (plan, kind) = round(&mut cluster, &mut r, &|_| Verdict::Running);
        measured += usize::from(kind == Some(HookKind::PreRollout));
        assert!(
            plan.actions.is_empty(),
            "nothing moves while the hook runs: {:?}",
            plan.actions
        );
        assert_eq!(cluster.replicas_of(&v2), 0);
        assert_eq!(cluster.replicas_of(&v1), 4);
        assert_eq!(r.status.as_ref().unwrap().phase, Some(Phase::Progressing));
        assert_eq!(reason(&r, PROGRESSING), "PreRolloutHook");
    }
    assert_eq!(
        measured, 4,
        "the round that starts it records it; the later ones measure it"
    );
    let (plan, _) = round(&mut cluster, &mut r, &|_| Verdict::Successful);
    assert!(plan.events.iter().any(|e| e.reason == "HookSucceeded"));
    assert!(
        cluster.replicas_of(&v2) > 0,
        "the revision starts in the round its hook passes"
    );
    for _ in 0..20 {
        let (_, kind) = round(&mut cluster, &mut r, &|_| panic!("the hook ran again"));
        assert_eq!(kind, None);
    }
    let status = r.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(Phase::Healthy));
    assert_eq!(status.stable_revision.as_ref(), Some(&v2));
}

#[test]
fn a_failed_pre_rollout_hook_scales_nothing_and_a_retry_runs_it_again() {
    let strategies = [
        super::rolling(1.into(), 0.into()),
        serde_json::json!({ "canary": { "stableService": "web", "canaryService": "web-canary",
            "steps": [{ "setWeight": 50 }],
            "trafficRouting": { "gatewayAPI": { "httpRoutes": [{ "name": "web" }] } } } }),
        serde_json::json!({ "blueGreen": { "activeService": "web" } }),
    ];
    for strategy in strategies {
        let mut r = with_hooks(release(4, "web:1", strategy.clone()), true, false);
        let mut cluster = Cluster::new();
        cluster.traffic = Traffic {
            canary_weight: Some(0),
            routes: Some(Vec::new()),
            ..Traffic::default()
        };
        let v1 = healthy_v1(&mut r, &mut cluster);
        let traffic = cluster.traffic.clone();
        let v2 = set_image(&mut r, "web:2");
        let fail = |_: HookKind| Verdict::Failed("Job web-pre-rollout-migrate-x-1: BackoffLimitExceeded".into());
        for _ in 0..6 {
            let (plan, _) = round(&mut cluster, &mut r, &fail);
            assert!(
                plan.actions.is_empty(),
                "{strategy}: nothing is scaled or switched: {:?}",
                plan.actions
            );
        }
        let status = r.status.as_ref().unwrap();
        assert_eq!(status.failed_revision.as_ref(), Some(&v2), "{strategy}");
        assert_eq!(reason(&r, DEGRADED), "PreRolloutHookFailed", "{strategy}");
        assert!(
            status.message.as_deref().unwrap().contains("BackoffLimitExceeded"),
            "{strategy}: {:?}",
            status.message
        );
        assert_eq!(
            (cluster.replicas_of(&v1), cluster.replicas_of(&v2)),
            (4, 0),
            "{strategy}"
        );
        assert_eq!(cluster.traffic, traffic, "{strategy}: no traffic moved");

        r.status.as_mut().unwrap().control = Some(Control {
            retry: true,
            ..Control::default()
        });
        let (plan, _) = round(&mut cluster, &mut r, &fail);
        assert!(plan.actions.is_empty(), "{strategy}: the retry starts the hook first");
        assert_eq!(reason(&r, PROGRESSING), "PreRolloutHook", "{strategy}");
        let (_, kind) = round(&mut cluster, &mut r, &|_| Verdict::Successful);
        assert_eq!(kind, Some(HookKind::PreRollout), "{strategy}: the retry ran it again");
        for _ in 0..30 {
            round(&mut cluster, &mut r, &|_| Verdict::Successful);
            cluster.traffic.canary_weight = cluster.traffic.canary_weight.or(Some(0));
        }
        assert_eq!(cluster.replicas_of(&v2), 4, "{strategy}");
    }
}

#[test]
fn a_pre_rollout_hook_waits_while_paused() {
    let mut r = with_hooks(release(2, "web:1", super::rolling(1.into(), 0.into())), true, false);
    let mut cluster = Cluster::new();
    healthy_v1(&mut r, &mut cluster);
    r.spec.paused = true;
    let v2 = set_image(&mut r, "web:2");
    for _ in 0..3 {
        let (plan, kind) = round(&mut cluster, &mut r, &|_| panic!("measured while paused"));
        assert_eq!(kind, None);
        assert!(plan.actions.is_empty());
    }
    assert_eq!(r.status.as_ref().unwrap().phase, Some(Phase::Paused));
    assert!(r.status.as_ref().unwrap().hooks.is_none(), "not started while paused");
    assert_eq!(cluster.replicas_of(&v2), 0);
}

/// Rolling, canary with a router, canary by replica ratio, blue-green.
fn post_strategies() -> Vec<serde_json::Value> {
    let canary = |routed: bool| {
        let mut c = serde_json::json!({ "stableService": "web", "canaryService": "web-canary",
            "steps": [{ "setWeight": 50 }], "scaleDownDelaySeconds": 30, "maxSurge": 1, "maxUnavailable": 0 });
        if routed {
            c["trafficRouting"] = serde_json::json!({ "gatewayAPI": { "httpRoutes": [{ "name": "web" }] } });
        }
        serde_json::json!({ "canary": c })
    };
    vec![
        super::rolling(1.into(), 0.into()),
        canary(true),
        canary(false),
        serde_json::json!({ "blueGreen": { "activeService": "web", "scaleDownDelaySeconds": 30 } }),
    ]
}

/// The new revision runs every pod and takes all traffic, and the old one
/// still has a pod: where a postRollout hook may run.
fn at_hold_point(cluster: &Cluster, r: &Release, old: &str, new: &str) -> bool {
    let strategy = &r.spec.strategy;
    let all_traffic =
        if strategy.rolling.is_some() || strategy.canary.as_ref().is_some_and(|c| c.traffic_routing.is_none()) {
            true
        } else {
            cluster.traffic.stable_service.as_deref() == Some(new) && cluster.traffic.canary_weight.unwrap_or(0) == 0
        };
    let new_rs = cluster.replica_sets.iter().find(|rs| rs.revision == new);
    let full = new_rs.is_some_and(|rs| rs.replicas == 4 && rs.available >= 4);
    full && all_traffic && cluster.replicas_of(old) > 0
}

#[test]
fn a_post_rollout_hook_runs_with_all_traffic_on_the_new_revision_before_the_old_one_goes() {
    for strategy in post_strategies() {
        let mut r = with_hooks(release(4, "web:1", strategy.clone()), false, true);
        let mut cluster = Cluster::new();
        cluster.traffic.canary_weight = strategy["canary"]["trafficRouting"].is_object().then_some(0);
        let v1 = healthy_v1(&mut r, &mut cluster);
        let v2 = set_image(&mut r, "web:2");
        let mut measured = 0;
        for _ in 0..40 {
            let before_ok = at_hold_point(&cluster, &r, &v1, &v2);
            let (_, kind) = round(&mut cluster, &mut r, &|_| Verdict::Running);
            if kind.is_some() {
                assert!(
                    before_ok,
                    "{strategy}: measured before the hold point: {:?}",
                    cluster.replica_sets
                );
                measured += 1;
            }
            // Within maxSurge where the strategy surges (a router's canary and
            // blue-green run both revisions at full size by design).
            let surging = strategy["rolling"].is_object()
                || (strategy["canary"].is_object() && strategy["canary"]["trafficRouting"].is_null());
            assert!(!surging || cluster.total() <= 5, "{strategy}: {} pods", cluster.total());
        }
        assert!(measured > 10, "{strategy}: held at the hook ({measured} rounds)");
        assert!(
            at_hold_point(&cluster, &r, &v1, &v2),
            "{strategy}: {:?}",
            cluster.replica_sets
        );
        assert_eq!(reason(&r, PROGRESSING), "PostRolloutHook", "{strategy}");
        assert_eq!(
            r.status.as_ref().unwrap().stable_revision.as_ref(),
            Some(&v1),
            "{strategy}"
        );

        let mut other = r.clone();
        let mut other_cluster = cluster.clone();
        // It fails: back to the previous revision.
        let fail = |_: HookKind| Verdict::Failed("Job smoke: BackoffLimitExceeded".into());
        for _ in 0..40 {
            round(&mut cluster, &mut r, &fail);
            let rolling = strategy["rolling"].is_object();
            assert!(
                !rolling || cluster.total() <= 5,
                "{strategy}: the rollback surged to {} pods",
                cluster.total()
            );
            assert!(
                !rolling || cluster.available() >= 4,
                "{strategy}: {} available",
                cluster.available()
            );
        }
        let status = r.status.as_ref().unwrap();
        assert_eq!(status.failed_revision.as_ref(), Some(&v2), "{strategy}");
        assert_eq!(reason(&r, DEGRADED), "PostRolloutHookFailed", "{strategy}");
        assert_eq!(
            (cluster.replicas_of(&v1), cluster.replicas_of(&v2)),
            (4, 0),
            "{strategy}"
        );
        let services = strategy["canary"]["trafficRouting"].is_object() || strategy["blueGreen"].is_object();
        if services {
            assert_eq!(cluster.traffic.stable_service.as_ref(), Some(&v1), "{strategy}");
        }

        // It passes: the rollout finishes, and the hook never runs again.
        round(&mut other_cluster, &mut other, &|_| Verdict::Successful);
        for _ in 0..60 {
            other_cluster.settle(5);
            let (_, kind) = round(&mut other_cluster, &mut other, &|_| panic!("ran twice"));
            assert_eq!(kind, None);
        }
        let status = other.status.as_ref().unwrap();
        assert_eq!(status.phase, Some(Phase::Healthy), "{strategy}: {:?}", status.message);
        assert_eq!(status.stable_revision.as_ref(), Some(&v2), "{strategy}");
        assert_eq!(other_cluster.replicas_of(&v1), 0, "{strategy}");
    }
}

#[test]
fn a_post_rollout_hook_does_not_run_for_the_first_revision() {
    let mut r = with_hooks(release(2, "web:1", super::rolling(1.into(), 0.into())), false, true);
    let mut cluster = Cluster::new();
    for _ in 0..10 {
        let (_, kind) = round(&mut cluster, &mut r, &|_| {
            panic!("no previous revision to smoke-test against")
        });
        assert_eq!(kind, None);
    }
    assert_eq!(r.status.as_ref().unwrap().phase, Some(Phase::Healthy));
}

#[test]
fn only_a_revision_without_a_replica_set_waits_on_its_pre_rollout_hook() {
    use crate::plan::pre_rollout_pending;
    let mut r = with_hooks(release(2, "web:1", super::rolling(1.into(), 0.into())), true, false);
    let mut cluster = Cluster::new();
    assert!(pre_rollout_pending(&r, &cluster.replica_sets));
    healthy_v1(&mut r, &mut cluster);
    assert!(!pre_rollout_pending(&r, &cluster.replica_sets), "its ReplicaSet exists");
    set_image(&mut r, "web:2");
    assert!(pre_rollout_pending(&r, &cluster.replica_sets), "a new revision");
    let unhooked = release(2, "web:2", super::rolling(1.into(), 0.into()));
    assert!(!pre_rollout_pending(&unhooked, &[]), "no hook");
}
