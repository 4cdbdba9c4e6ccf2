//! Adopting a Deployment (`spec.workloadRef`), round by round: the
//! Deployment's pods are the old revision of the first rollout.
use super::{Cluster, release, revision};
use crate::api::{Phase, Release};
use crate::plan::{Action, WorkloadState};

fn adopting(mode: &str, strategy: serde_json::Value) -> Release {
    let mut r = release(6, "web:1", strategy);
    r.spec.workload_ref = Some(
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "scaleDown": mode
        }))
        .unwrap(),
    );
    r
}

fn cluster_with_deployment(replicas: i32) -> Cluster {
    let mut cluster = Cluster::new();
    cluster.workload = Some(WorkloadState {
        name: "web".into(),
        replicas,
        pods: replicas,
        available: replicas,
        synced: true,
    });
    cluster
}

fn deployment(cluster: &Cluster) -> i32 {
    cluster.workload.as_ref().unwrap().replicas
}

/// Runs rounds; after each plan is applied (before pods settle) checks the
/// pods of the Deployment and the Release together.
fn run_checked(cluster: &mut Cluster, r: &mut Release, max_total: i32, min_available: i32) -> Vec<Action> {
    let mut actions = Vec::new();
    for _ in 0..40 {
        let plan = cluster.plan(r);
        cluster.apply(&plan);
        let workload = cluster.workload.as_ref().unwrap();
        let total = cluster.total() + workload.replicas;
        let available = cluster.available() + workload.available;
        assert!(total <= max_total, "{total} pods > {max_total}");
        assert!(available >= min_available, "{available} available < {min_available}");
        actions.extend(plan.actions.clone());
        if plan.actions.is_empty() {
            break;
        }
        cluster.settle(1);
    }
    actions
}

#[test]
fn progressively_replaces_the_deployments_pods_within_the_bounds() {
    let strategies = [
        serde_json::json!({ "rolling": {} }),
        serde_json::json!({ "rolling": { "maxSurge": 1, "maxUnavailable": 0 } }),
        serde_json::json!({ "blueGreen": { "activeService": "web" } }),
    ];
    for strategy in strategies {
        let mut r = adopting("progressively", strategy.clone());
        let mut cluster = cluster_with_deployment(6);
        let (surge, unavailable) = if strategy["rolling"]["maxSurge"] == 1 {
            (1, 0)
        } else {
            (2, 1)
        };
        let actions = run_checked(&mut cluster, &mut r, 6 + surge, 6 - unavailable);
        let scaled: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::ScaleWorkload { replicas } => Some(*replicas),
                _ => None,
            })
            .collect();
        assert!(scaled.len() > 1, "{strategy}: step by step: {scaled:?}");
        assert_eq!(deployment(&cluster), 0, "{strategy}");
        assert_eq!(cluster.replicas_of(&revision(&r)), 6, "{strategy}");
        let status = r.status.as_ref().unwrap();
        assert_eq!(status.phase, Some(Phase::Healthy), "{strategy}: {:?}", status.message);
        assert_eq!(status.selector.as_deref(), Some("app=web,serin.dev/revision"));
    }
}

#[test]
fn never_leaves_the_deployment_alone_and_onsuccess_scales_it_once_healthy() {
    let mut r = adopting("never", serde_json::json!({ "rolling": {} }));
    let mut cluster = cluster_with_deployment(6);
    let actions = run_checked(&mut cluster, &mut r, 12, 6);
    assert!(
        !actions.iter().any(|a| matches!(a, Action::ScaleWorkload { .. })),
        "{actions:?}"
    );
    assert_eq!((deployment(&cluster), cluster.replicas_of(&revision(&r))), (6, 6));

    let mut r = adopting("onsuccess", serde_json::json!({ "rolling": {} }));
    let mut cluster = cluster_with_deployment(6);
    for _ in 0..20 {
        let healthy_before = r.status.as_ref().is_some_and(|s| s.phase == Some(Phase::Healthy));
        let plan = cluster.plan(&mut r);
        if plan.actions.contains(&Action::ScaleWorkload { replicas: 0 }) {
            assert!(
                healthy_before || r.status.as_ref().unwrap().phase == Some(Phase::Healthy),
                "scaled down before the Release was available"
            );
        }
        cluster.apply(&plan);
        cluster.settle(1);
    }
    assert_eq!((deployment(&cluster), cluster.replicas_of(&revision(&r))), (0, 6));
}

#[test]
fn an_adopted_deployment_scaled_back_up_by_a_resync_goes_back_to_zero() {
    let mut r = adopting("progressively", serde_json::json!({ "rolling": {} }));
    let mut cluster = cluster_with_deployment(6);
    run_checked(&mut cluster, &mut r, 8, 5);
    cluster.workload.as_mut().unwrap().replicas = 6; // a GitOps sync of replicas: 6
    let plan = cluster.plan(&mut r);
    assert!(
        plan.actions.contains(&Action::ScaleWorkload { replicas: 0 }),
        "{:?}",
        plan.actions
    );
    // A new template (the Deployment's) rolls out by the strategy; the Deployment stays at 0.
    cluster.apply(&plan);
    r.spec.template.spec.as_mut().unwrap().containers[0].image = Some("web:2".into());
    let actions = run_checked(&mut cluster, &mut r, 8, 5);
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::ScaleWorkload { replicas } if *replicas > 0))
    );
    assert_eq!(cluster.replicas_of(&revision(&r)), 6);
}

#[test]
fn a_template_change_mid_adoption_stays_within_the_bounds() {
    let mut r = adopting("progressively", serde_json::json!({ "rolling": {} }));
    let mut cluster = cluster_with_deployment(6);
    for _ in 0..2 {
        let plan = cluster.plan(&mut r);
        cluster.apply(&plan);
        cluster.settle(1);
    }
    assert!(deployment(&cluster) > 0 && deployment(&cluster) < 6, "midway");
    r.spec.template.spec.as_mut().unwrap().containers[0].image = Some("web:2".into());
    run_checked(&mut cluster, &mut r, 8, 5);
    let status = r.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(Phase::Healthy), "{:?}", status.message);
    assert_eq!(status.stable_revision.as_ref(), Some(&revision(&r)));
    assert_eq!((deployment(&cluster), cluster.total()), (0, 6));
}

#[test]
fn an_adoption_past_its_deadline_gives_the_deployment_its_pods_back() {
    let mut r = adopting("progressively", serde_json::json!({ "rolling": {} }));
    let mut cluster = cluster_with_deployment(6);
    cluster.unhealthy.push(revision(&r));
    for _ in 0..80 {
        let plan = cluster.plan(&mut r);
        cluster.apply(&plan);
        cluster.settle(1);
    }
    let status = r.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(Phase::Degraded), "{:?}", status.message);
    assert_eq!(status.failed_revision.as_ref(), Some(&revision(&r)));
    assert!(
        status.message.as_deref().unwrap().contains("Deployment web"),
        "{:?}",
        status.message
    );
    assert_eq!(
        (deployment(&cluster), cluster.total()),
        (6, 0),
        "the Deployment serves again"
    );
}

#[test]
fn a_paused_adoption_leaves_the_deployment_where_it_is() {
    let mut r = adopting("progressively", serde_json::json!({ "rolling": {} }));
    let mut cluster = cluster_with_deployment(6);
    let plan = cluster.plan(&mut r);
    cluster.apply(&plan);
    cluster.settle(1);
    r.spec.paused = true;
    let before = deployment(&cluster);
    for _ in 0..10 {
        let plan = cluster.plan(&mut r);
        assert!(
            !plan.actions.iter().any(|a| matches!(a, Action::ScaleWorkload { .. })),
            "{:?}",
            plan.actions
        );
        cluster.apply(&plan);
        cluster.settle(1);
    }
    assert_eq!(deployment(&cluster), before);
}

#[test]
fn a_deployment_the_selector_does_not_select_is_invalid_and_nothing_moves() {
    let mut r = adopting("progressively", serde_json::json!({ "rolling": {} }));
    // The Deployment's template, as the controller puts it in.
    r.spec.template.metadata.as_mut().unwrap().labels = Some([("app".to_string(), "other".to_string())].into());
    let mut cluster = cluster_with_deployment(6);
    let plan = cluster.plan(&mut r);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    let status = r.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(Phase::Degraded));
    let message = status.message.as_deref().unwrap();
    assert!(
        message.contains("spec.selector") && message.contains("Deployment \"web\""),
        "{message}"
    );
    cluster.apply(&plan);
    assert_eq!(deployment(&cluster), 6);
}
