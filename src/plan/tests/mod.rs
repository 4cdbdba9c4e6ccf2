//! Scenario tests of whole planning rounds, against a simulated cluster.
mod acceptance;
mod adoption;
mod baseline;
mod bluegreen;
mod canary;
mod hooks;
mod routes;

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::conditions::{DEGRADED, PROGRESSING, READY, RECONCILING, STALLED, get};
use super::revision::revision_of;
use super::{
    Action, AnalysisInput, AnalysisSlot, BaselineState, Observed, Plan, RevisionState, Traffic, Verdict, analyses_due,
    plan,
};
use crate::api::{AnalysisPhase, AnalysisStatus, Control, Phase, Release};

/// Every planned status reads one way to kstatus: exactly one of Ready,
/// Reconciling and Stalled is True; Stalled mirrors Degraded; Ready means Healthy.
fn assert_kstatus_consistent(status: &crate::api::ReleaseStatus) {
    let is_true = |t: &str| get(&status.conditions, t).map(|c| c.status.as_str());
    for t in [READY, PROGRESSING, DEGRADED, RECONCILING, STALLED] {
        assert!(is_true(t).is_some(), "condition {t} missing: {status:#?}");
    }
    let on: Vec<_> = [READY, RECONCILING, STALLED]
        .into_iter()
        .filter(|t| is_true(t) == Some("True"))
        .collect();
    assert_eq!(
        on.len(),
        1,
        "exactly one of Ready/Reconciling/Stalled must be True: {status:#?}"
    );
    assert_eq!(is_true(STALLED), is_true(DEGRADED), "{status:#?}");
    assert_eq!(
        is_true(READY) == Some("True"),
        status.phase == Some(Phase::Healthy),
        "{status:#?}"
    );
    assert_eq!(
        is_true(STALLED) == Some("True"),
        status.phase == Some(Phase::Degraded),
        "{status:#?}"
    );
}

pub(super) fn release(replicas: i32, image: &str, strategy: serde_json::Value) -> Release {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
        "metadata": { "name": "web", "namespace": "shop", "generation": 1 },
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": 60,
            "revisionHistoryLimit": 2,
            "selector": { "matchLabels": { "app": "web" } },
            "template": { "metadata": { "labels": { "app": "web" } },
                          "spec": { "containers": [{ "name": "web", "image": image }] } },
            "strategy": strategy
        }
    }))
    .unwrap()
}

pub(super) fn rolling(surge: serde_json::Value, unavailable: serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "rolling": { "maxSurge": surge, "maxUnavailable": unavailable } })
}

pub(super) fn revision(release: &Release) -> String {
    revision_of(&release.spec.template)
}

/// A cluster whose pods become available at a given rate; `healthy` revisions only.
/// Services named "web" (stable) and "web-canary" (canary) follow Select actions.
#[derive(Clone)]
pub(super) struct Cluster {
    pub(super) replica_sets: Vec<RevisionState>,
    pub(super) now: Timestamp,
    pub(super) unhealthy: Vec<String>,
    pub(super) traffic: Traffic,
    /// What the API server says when it refuses the current revision's ReplicaSet.
    pub(super) refused: Option<String>,
    pub(super) baseline: Option<BaselineState>,
    /// The hook measurement the next plan sees.
    pub(super) hook: Option<AnalysisInput>,
    /// An adopted Deployment (`spec.workloadRef`).
    pub(super) workload: Option<crate::plan::WorkloadState>,
}

impl Cluster {
    fn new() -> Self {
        Cluster {
            replica_sets: Vec::new(),
            now: Timestamp::from_second(1_000_000).unwrap(),
            unhealthy: Vec::new(),
            traffic: Traffic::default(),
            refused: None,
            baseline: None,
            hook: None,
            workload: None,
        }
    }

    pub(super) fn plan(&self, release: &mut Release) -> Plan {
        self.plan_with(release, None)
    }

    pub(super) fn plan_with(&self, release: &mut Release, analysis: Option<AnalysisInput>) -> Plan {
        self.plan_analysed(release, analysis, None)
    }

    pub(super) fn plan_analysed(
        &self,
        release: &mut Release,
        analysis: Option<AnalysisInput>,
        gate_analysis: Option<AnalysisInput>,
    ) -> Plan {
        let observed = Observed {
            release,
            replica_sets: &self.replica_sets,
            baseline: self.baseline.clone(),
            analysis,
            gate_analysis,
            hook: self.hook.clone(),
            traffic: self.traffic.clone(),
            refused: self.refused.clone(),
            template_problem: None,
            workload: self.workload.clone(),
            now: self.now,
        };
        let plan = plan(&observed);
        assert_kstatus_consistent(&plan.status);
        let control = release.status.as_ref().and_then(|s| s.control.clone());
        // Through JSON, as the API server stores it: times keep whole seconds only.
        let stored = serde_json::to_value(&plan.status).unwrap();
        let mut status: crate::api::ReleaseStatus = serde_json::from_value(stored).unwrap();
        // The controller clears a request once acted on, unless the plan keeps it.
        status.control = control.filter(|_| plan.keep_control);
        release.status = Some(status);
        plan
    }

    pub(super) fn apply(&mut self, plan: &Plan) {
        for action in &plan.actions {
            self.apply_one(action);
        }
    }

    pub(super) fn apply_one(&mut self, action: &Action) {
        {
            match action {
                Action::Create {
                    revision,
                    number,
                    replicas,
                } => self.replica_sets.push(RevisionState {
                    name: format!("web-{revision}"),
                    revision: revision.clone(),
                    number: *number,
                    replicas: *replicas,
                    status_replicas: 0,
                    ready: 0,
                    available: 0,
                    synced: true,
                }),
                Action::CreateBaseline {
                    stable,
                    revision,
                    canary,
                    replicas,
                } => {
                    assert!(self.replica_sets.iter().any(|rs| &rs.name == stable), "{stable} exists");
                    assert!(self.baseline.is_none(), "one baseline at a time");
                    self.baseline = Some(BaselineState {
                        name: super::baseline_name("web", revision),
                        stable_revision: revision.clone(),
                        canary_revision: canary.clone(),
                        replicas: *replicas,
                        deleting: false,
                    });
                }
                Action::Scale { name, replicas } if self.baseline.as_ref().is_some_and(|b| &b.name == name) => {
                    if let Some(b) = self.baseline.as_mut() {
                        b.replicas = *replicas;
                    }
                }
                Action::Delete { name } if self.baseline.as_ref().is_some_and(|b| &b.name == name) => {
                    self.baseline = None;
                }
                Action::Scale { name, replicas } => {
                    let rs = self.replica_sets.iter_mut().find(|rs| &rs.name == name).unwrap();
                    rs.replicas = *replicas;
                    // Scaling down removes pods at once, available ones last.
                    rs.status_replicas = rs.status_replicas.min(*replicas);
                    rs.ready = rs.ready.min(*replicas);
                    rs.available = rs.available.min(*replicas);
                }
                Action::Delete { name } => self.replica_sets.retain(|rs| &rs.name != name),
                Action::Select { service, revision } => match service.as_str() {
                    "web" => self.traffic.stable_service = Some(revision.clone()),
                    "web-canary" | "web-preview" => self.traffic.canary_service = Some(revision.clone()),
                    other => panic!("no Service {other}"),
                },
                Action::SetWeight { canary } => self.traffic.canary_weight = Some(*canary),
                Action::SetRoutes { steps } => self.traffic.routes = Some(steps.clone()),
                Action::ScaleWorkload { replicas } => {
                    let workload = self.workload.as_mut().expect("a Deployment to scale");
                    workload.replicas = *replicas;
                    workload.pods = *replicas;
                    workload.available = workload.available.min(*replicas);
                }
            }
        }
    }

    /// Time passes: pods start, and healthy ones become available.
    pub(super) fn settle(&mut self, seconds: i64) {
        self.now = self.now.checked_add(SignedDuration::from_secs(seconds)).unwrap();
        if let Some(workload) = self.workload.as_mut() {
            workload.available = workload.replicas;
        }
        for rs in &mut self.replica_sets {
            rs.status_replicas = rs.replicas;
            if !self.unhealthy.contains(&rs.revision) {
                rs.ready = rs.replicas;
                rs.available = rs.replicas;
            }
        }
    }

    pub(super) fn replicas_of(&self, revision: &str) -> i32 {
        self.replica_sets
            .iter()
            .find(|rs| rs.revision == revision)
            .map_or(0, |rs| rs.replicas)
    }

    pub(super) fn total(&self) -> i32 {
        self.replica_sets.iter().map(|rs| rs.replicas).sum()
    }

    pub(super) fn available(&self) -> i32 {
        self.replica_sets.iter().map(|rs| rs.available).sum()
    }

    /// Plans, applies and settles until nothing changes; returns every plan made.
    pub(super) fn run(&mut self, release: &mut Release, rounds: usize) -> Vec<Plan> {
        let mut plans = Vec::new();
        for _ in 0..rounds {
            let plan = self.plan(release);
            let idle = plan.actions.is_empty();
            self.apply(&plan);
            plans.push(plan);
            if idle {
                break;
            }
            self.settle(1);
        }
        plans
    }
}

pub(super) fn condition_reason(release: &Release, type_: &str) -> (String, String) {
    let c = get(&release.status.as_ref().unwrap().conditions, type_).unwrap();
    (c.status.clone(), c.reason.clone())
}

#[test]
fn a_new_release_creates_its_first_revision_at_full_size_and_becomes_ready() {
    let mut r = release(10, "web:1", rolling(serde_json::json!("25%"), serde_json::json!("25%")));
    let mut cluster = Cluster::new();
    let first = cluster.plan(&mut r);
    assert_eq!(
        first.actions,
        vec![Action::Create {
            revision: revision(&r),
            number: 1,
            replicas: 10
        }]
    );
    assert_eq!(first.status.phase, Some(Phase::Progressing));
    assert!(first.events.iter().any(|e| e.reason == "RolloutStarted"));
    cluster.apply(&first);
    cluster.settle(1);
    let plans = cluster.run(&mut r, 5);
    let status = r.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(Phase::Healthy));
    assert_eq!(status.stable_revision, Some(revision(&r)));
    assert_eq!(condition_reason(&r, READY), ("True".into(), "Available".into()));
    assert_eq!(status.available_replicas, 10);
    assert!(plans.iter().flat_map(|p| &p.events).any(|e| e.reason == "Promoted"));
}

#[test]
fn a_rolling_update_stays_within_surge_and_unavailability_and_ends_on_the_new_revision() {
    let cases = [
        (10, serde_json::json!("25%"), serde_json::json!("25%"), 13, 8),
        (10, serde_json::json!(0), serde_json::json!(1), 10, 9),
        (10, serde_json::json!(1), serde_json::json!(0), 11, 10),
        (3, serde_json::json!("50%"), serde_json::json!(0), 5, 3),
    ];
    for (replicas, surge, unavailable, max_total, min_available) in cases {
        let mut r = release(replicas, "web:1", rolling(surge.clone(), unavailable.clone()));
        let mut cluster = Cluster::new();
        cluster.run(&mut r, 10);
        let v1 = revision(&r);
        r.spec.template.spec.as_mut().unwrap().containers[0].image = Some("web:2".into());
        let v2 = revision(&r);
        for _ in 0..50 {
            let plan = cluster.plan(&mut r);
            cluster.apply(&plan);
            assert!(
                cluster.total() <= max_total,
                "{surge}/{unavailable}: {} pods > {max_total}",
                cluster.total()
            );
            assert!(
                cluster.available() >= min_available,
                "{surge}/{unavailable}: {} available",
                cluster.available()
            );
            if plan.actions.is_empty() {
                break;
            }
            cluster.settle(1);
        }
        let status = r.status.as_ref().unwrap();
        assert_eq!(status.phase, Some(Phase::Healthy), "{surge}/{unavailable}");
        assert_eq!(status.stable_revision.as_ref(), Some(&v2));
        assert_eq!((cluster.replicas_of(&v1), cluster.replicas_of(&v2)), (0, replicas));
    }
}

#[test]
fn a_revision_not_available_by_the_deadline_is_rolled_back_and_not_retried() {
    let mut r = release(4, "web:1", rolling(serde_json::json!(1), serde_json::json!(0)));
    let mut cluster = Cluster::new();
    cluster.run(&mut r, 10);
    let v1 = revision(&r);
    r.spec.template.spec.as_mut().unwrap().containers[0].image = Some("web:bad".into());
    let bad = revision(&r);
    cluster.unhealthy.push(bad.clone());

    let plan = cluster.plan(&mut r);
    assert_eq!(
        plan.requeue_after,
        Some(Duration::from_secs(60)),
        "requeue exactly at the deadline"
    );
    cluster.apply(&plan);
    cluster.settle(59);
    let plan = cluster.plan(&mut r);
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(1)));
    assert_eq!(r.status.as_ref().unwrap().phase, Some(Phase::Progressing));
    cluster.apply(&plan);
    cluster.settle(1);

    let plans = cluster.run(&mut r, 10);
    assert!(plans[0].events.iter().any(|e| e.reason == "RolledBack" && e.warning));
    let status = r.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(Phase::Degraded));
    assert_eq!(status.failed_revision.as_ref(), Some(&bad));
    assert_eq!(status.stable_revision.as_ref(), Some(&v1));
    assert_eq!(
        condition_reason(&r, DEGRADED),
        ("True".into(), "ProgressDeadlineExceeded".into())
    );
    assert_eq!(condition_reason(&r, READY).0, "False");
    assert_eq!((cluster.replicas_of(&v1), cluster.replicas_of(&bad)), (4, 0));
    assert_eq!(cluster.available(), 4);

    // Held: later rounds neither retry the bad revision nor change status.
    cluster.settle(600);
    let held = cluster.plan(&mut r);
    assert!(held.actions.is_empty() && held.events.is_empty(), "{held:?}");
    assert_eq!(Some(&held.status), r.status.as_ref());

    // A new template is tried, and recovers.
    r.spec.template.spec.as_mut().unwrap().containers[0].image = Some("web:3".into());
    cluster.run(&mut r, 20);
    let status = r.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(Phase::Healthy));
    assert_eq!(status.failed_revision, None);
    assert_eq!(cluster.replicas_of(&revision(&r)), 4);
}

#[test]
fn a_paused_rollout_freezes_and_its_deadline_restarts_on_resume() {
    let mut r = release(4, "web:1", rolling(serde_json::json!(1), serde_json::json!(0)));
    let mut cluster = Cluster::new();
    cluster.run(&mut r, 10);
    r.spec.template.spec.as_mut().unwrap().containers[0].image = Some("web:2".into());
    let first = cluster.plan(&mut r);
    cluster.apply(&first);
    cluster.settle(1);
    r.spec.paused = true;
    let frozen = cluster.run(&mut r, 3);
    assert!(frozen.iter().all(|p| p.actions.is_empty()));
    assert_eq!(r.status.as_ref().unwrap().phase, Some(Phase::Paused));
    assert_eq!(r.status.as_ref().unwrap().rollout_start_time, None);

    cluster.settle(3600); // far beyond the deadline
    r.spec.paused = false;
    let resumed = cluster.plan(&mut r);
    assert!(resumed.events.iter().any(|e| e.reason == "Resumed"));
    assert_eq!(
        resumed.requeue_after,
        Some(Duration::from_secs(60)),
        "deadline counts from the resume"
    );
    cluster.apply(&resumed);
    cluster.settle(1);
    cluster.run(&mut r, 20);
    assert_eq!(r.status.as_ref().unwrap().phase, Some(Phase::Healthy));
}

#[test]
fn invalid_specs_change_nothing_and_say_why() {
    let cases = [
        (
            serde_json::json!({}),
            "spec.strategy: must set exactly one of rolling, blueGreen or canary",
        ),
        (
            serde_json::json!({ "canary": { "steps": [{ "pause": { "duration": "9999999999s" } }] } }),
            "steps[0].pause.duration",
        ),
        (
            serde_json::json!({ "canary": { "steps": [{ "setWeight": 5 }], "analysis": { "templates": [{ "templateName": "t" }], "startingStep": 2 } } }),
            "startingStep: 2 is past the last of 1 steps",
        ),
        (
            serde_json::json!({ "canary": { "maxSurge": "x" } }),
            "spec.strategy.canary: maxSurge",
        ),
        (
            rolling(serde_json::json!("x"), serde_json::json!(1)),
            "spec.strategy.rolling",
        ),
        (
            rolling(serde_json::json!(1), serde_json::json!("150%")),
            "spec.strategy.rolling: maxUnavailable must not exceed 100%",
        ),
    ];
    for (strategy, needle) in cases {
        let mut r = release(3, "web:1", strategy);
        let plan = Cluster::new().plan(&mut r);
        assert!(plan.actions.is_empty());
        assert_eq!(plan.status.phase, Some(Phase::Degraded));
        assert_eq!(condition_reason(&r, DEGRADED), ("True".into(), "InvalidSpec".into()));
        assert!(
            plan.status.message.as_ref().unwrap().contains(needle),
            "{:?}",
            plan.status.message
        );
        assert!(plan.events.iter().any(|e| e.reason == "InvalidSpec" && e.warning));
    }
    let mut r = release(3, "web:1", serde_json::json!({ "rolling": {} }));
    r.spec.selector.match_labels = Some([("app".to_string(), "api".to_string())].into());
    let plan = Cluster::new().plan(&mut r);
    assert!(plan.actions.is_empty());
    assert!(plan.status.message.unwrap().contains("does not match"));
}

#[test]
fn a_template_the_api_server_refuses_is_invalid_and_changes_nothing() {
    let mut r = release(3, "web:1", rolling(serde_json::json!(1), serde_json::json!(1)));
    let mut cluster = Cluster::new();
    cluster.run(&mut r, 10);
    let v1 = revision(&r);
    r.spec.template.spec.as_mut().unwrap().containers[0].name = "UPPER_case".into();
    let refusal =
        r#"ReplicaSet.apps "web-x" is invalid: spec.template.spec.containers[0].name: Invalid value: "UPPER_case""#;
    cluster.refused = Some(refusal.into());
    for round in 0..2 {
        let plan = cluster.plan(&mut r);
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert_eq!(plan.status.phase, Some(Phase::Degraded));
        assert_eq!(condition_reason(&r, DEGRADED), ("True".into(), "InvalidSpec".into()));
        let message = plan.status.message.clone().unwrap();
        assert!(
            message.contains("containers[0].name") && message.starts_with("spec.template"),
            "{message}"
        );
        assert_eq!(r.status.as_ref().unwrap().stable_revision.as_ref(), Some(&v1));
        // The Event is recorded once, not at every reconcile.
        assert_eq!(
            plan.events.iter().filter(|e| e.reason == "InvalidSpec").count(),
            1 - round
        );
    }
    assert_eq!(cluster.replicas_of(&v1), 3);
}

#[test]
fn nothing_is_scaled_while_a_replica_set_status_is_stale() {
    let mut r = release(4, "web:1", serde_json::json!({ "rolling": {} }));
    let mut cluster = Cluster::new();
    cluster.run(&mut r, 10);
    r.spec.template.spec.as_mut().unwrap().containers[0].image = Some("web:2".into());
    cluster.replica_sets[0].synced = false;
    assert!(cluster.plan(&mut r).actions.is_empty());
}

#[test]
fn scaling_a_healthy_release_scales_its_stable_revision() {
    let mut r = release(4, "web:1", serde_json::json!({ "rolling": {} }));
    let mut cluster = Cluster::new();
    cluster.run(&mut r, 10);
    for replicas in [7, 2, 0] {
        r.spec.replicas = replicas;
        cluster.run(&mut r, 10);
        assert_eq!(cluster.replicas_of(&revision(&r)), replicas);
        assert_eq!(r.status.as_ref().unwrap().phase, Some(Phase::Healthy));
    }
}

#[test]
fn history_beyond_the_limit_is_trimmed_oldest_first() {
    let mut r = release(2, "web:0", serde_json::json!({ "rolling": {} }));
    let mut cluster = Cluster::new();
    cluster.run(&mut r, 10);
    let mut revisions = vec![revision(&r)];
    for i in 1..=4 {
        r.spec.template.spec.as_mut().unwrap().containers[0].image = Some(format!("web:{i}"));
        revisions.push(revision(&r));
        cluster.run(&mut r, 20);
    }
    let left: Vec<_> = cluster.replica_sets.iter().map(|rs| rs.revision.clone()).collect();
    // The current revision plus revisionHistoryLimit (2) idle ones.
    assert_eq!(left, revisions[2..].to_vec());
}

#[test]
fn a_settled_release_plans_nothing_and_keeps_its_status() {
    let mut r = release(3, "web:1", serde_json::json!({ "rolling": {} }));
    let mut cluster = Cluster::new();
    cluster.run(&mut r, 10);
    let before = r.status.clone();
    cluster.settle(30);
    let again = cluster.plan(&mut r);
    assert!(again.actions.is_empty() && again.events.is_empty() && again.requeue_after.is_none());
    assert_eq!(Some(again.status), before, "unchanged status means no write");
}

pub(super) fn analysis(revision: &str, verdict: Verdict, message: Option<&str>) -> AnalysisInput {
    let phase = match &verdict {
        Verdict::Successful => AnalysisPhase::Successful,
        Verdict::Failed(_) => AnalysisPhase::Failed,
        Verdict::Inconclusive(_) => AnalysisPhase::Inconclusive,
        _ => AnalysisPhase::Running,
    };
    AnalysisInput {
        slot: AnalysisSlot::Background,
        status: AnalysisStatus {
            revision: revision.into(),
            step: None,
            phase,
            message: message.map(Into::into),
            started_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::from_second(0).unwrap()),
            metrics: Vec::new(),
        },
        verdict,
        next_due: Some(Duration::from_secs(5)),
    }
}

/// A healthy v1 with analysis configured, and the template changed to v2.
fn analysed_rollout() -> (Release, Cluster, String, String) {
    let metrics = serde_json::json!([{ "name": "errors", "provider": { "web": { "url": "http://x" } } }]);
    let strategy =
        serde_json::json!({ "rolling": { "maxSurge": 1, "maxUnavailable": 0, "analysis": { "metrics": metrics } } });
    let mut r = release(3, "web:1", strategy);
    let mut cluster = Cluster::new();
    cluster.run(&mut r, 10);
    let v1 = revision(&r);
    r.spec.template.spec.as_mut().unwrap().containers[0].image = Some("web:2".into());
    let v2 = revision(&r);
    (r, cluster, v1, v2)
}

/// The revision and slot of each analysis due now.
fn analysis_target(r: &Release) -> Vec<(String, AnalysisSlot)> {
    let now = Timestamp::from_second(0).unwrap();
    analyses_due(r, now)
        .into_iter()
        .map(|a| (a.status.revision, a.slot))
        .collect()
}

/// The recorded state the analysis of the current revision carries on from.
fn analysis_to_continue(r: &Release, now: Timestamp) -> AnalysisStatus {
    analyses_due(r, now).remove(0).status
}

#[test]
fn analysis_runs_only_for_a_rollout_away_from_a_stable_revision() {
    let (mut r, _, _, v2) = analysed_rollout();
    let background = vec![(v2.clone(), AnalysisSlot::Background)];
    assert_eq!(analysis_target(&r), background);
    r.spec.paused = true;
    assert_eq!(analysis_target(&r), vec![], "not while paused");
    r.spec.paused = false;
    r.status.as_mut().unwrap().failed_revision = Some(v2.clone());
    assert_eq!(analysis_target(&r), vec![], "not for a rolled-back revision");
    r.status.as_mut().unwrap().control = Some(Control {
        retry: true,
        ..Default::default()
    });
    assert_eq!(analysis_target(&r), background, "unless a person retries");
    r.status.as_mut().unwrap().control = Some(Control {
        abort: true,
        ..Default::default()
    });
    r.status.as_mut().unwrap().failed_revision = None;
    assert_eq!(analysis_target(&r), vec![], "nor once a person aborts");
    let no_analysis = release(3, "web:1", serde_json::json!({ "rolling": {} }));
    assert_eq!(analysis_target(&no_analysis), vec![]);
}

#[test]
fn an_analysis_carries_on_for_its_revision_and_restarts_on_a_new_one_or_a_retry() {
    let (mut r, cluster, _, v2) = analysed_rollout();
    let mut recorded = analysis(&v2, Verdict::Running, None).status;
    recorded
        .metrics
        .push(serde_json::from_value(serde_json::json!({ "name": "errors", "phase": "Running", "count": 0 })).unwrap());
    r.status.as_mut().unwrap().analysis = Some(recorded.clone());
    assert_eq!(
        analysis_to_continue(&r, cluster.now),
        recorded,
        "same revision: carry on"
    );

    let mut other = r.clone();
    other.spec.template.spec.as_mut().unwrap().containers[0].image = Some("web:3".into());
    let fresh = analysis_to_continue(&other, cluster.now);
    assert_eq!(
        (fresh.revision, fresh.metrics.len()),
        (revision(&other), 0),
        "new revision: start over"
    );
    assert_eq!(fresh.started_at.0, cluster.now);

    r.status.as_mut().unwrap().control = Some(Control {
        retry: true,
        ..Default::default()
    });
    let retried = analysis_to_continue(&r, cluster.now);
    assert!(
        retried.metrics.is_empty() && retried.started_at.0 == cluster.now,
        "retry: start over"
    );
}

#[test]
fn a_rollout_waits_for_its_analysis_and_completes_when_it_passes() {
    let (mut r, mut cluster, v1, v2) = analysed_rollout();
    for _ in 0..20 {
        let plan = cluster.plan_with(&mut r, Some(analysis(&v2, Verdict::Running, None)));
        cluster.apply(&plan);
        cluster.settle(1);
    }
    let plan = cluster.plan_with(&mut r, Some(analysis(&v2, Verdict::Running, None)));
    let status = r.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(Phase::Progressing));
    assert_eq!(
        condition_reason(&r, READY),
        ("False".into(), "WaitingForAnalysis".into())
    );
    assert_eq!(
        status.stable_revision.as_ref(),
        Some(&v1),
        "not promoted before the analysis passes"
    );
    assert_eq!(
        plan.requeue_after,
        Some(Duration::from_secs(5)),
        "requeue when the next measurement is due"
    );
    assert_eq!((cluster.replicas_of(&v1), cluster.replicas_of(&v2)), (0, 3));

    let plan = cluster.plan_with(&mut r, Some(analysis(&v2, Verdict::Successful, None)));
    assert!(plan.events.iter().any(|e| e.reason == "AnalysisSuccessful"));
    assert_eq!(r.status.as_ref().unwrap().phase, Some(Phase::Healthy));
    assert_eq!(r.status.as_ref().unwrap().stable_revision.as_ref(), Some(&v2));
}

#[test]
fn a_failed_analysis_rolls_back_naming_the_metric_and_a_retry_tries_again() {
    let (mut r, mut cluster, v1, v2) = analysed_rollout();
    let first = cluster.plan_with(&mut r, Some(analysis(&v2, Verdict::Running, None)));
    cluster.apply(&first);
    cluster.settle(1);
    let why = "metric \"errors\" failed: 1 of 1 measurements failed (limit 0); last value 0.42";
    let plan = cluster.plan_with(&mut r, Some(analysis(&v2, Verdict::Failed(why.into()), Some(why))));
    cluster.apply(&plan);
    assert!(
        plan.events
            .iter()
            .any(|e| e.reason == "RolledBack" && e.note.contains("0.42"))
    );
    cluster.settle(1);
    cluster.run(&mut r, 5);
    let status = r.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(Phase::Degraded));
    assert_eq!(condition_reason(&r, DEGRADED), ("True".into(), "AnalysisFailed".into()));
    assert!(
        status.message.as_ref().unwrap().contains("last value 0.42"),
        "{:?}",
        status.message
    );
    assert_eq!(status.failed_revision.as_ref(), Some(&v2));
    assert_eq!((cluster.replicas_of(&v1), cluster.replicas_of(&v2)), (3, 0));

    r.status.as_mut().unwrap().control = Some(Control {
        retry: true,
        ..Default::default()
    });
    let retried = cluster.plan_with(&mut r, Some(analysis(&v2, Verdict::Running, None)));
    assert!(retried.events.iter().any(|e| e.reason == "Retried"));
    assert_eq!(retried.status.failed_revision, None);
    assert_eq!(retried.status.phase, Some(Phase::Progressing));
    assert!(!retried.actions.is_empty(), "the rollout moves again");
}

#[test]
fn an_inconclusive_analysis_holds_the_rollout_for_a_person() {
    let (mut r, mut cluster, _, v2) = analysed_rollout();
    let why = "metric \"errors\" inconclusive: 2 of 1 allowed";
    let plan = cluster.plan_with(
        &mut r,
        Some(analysis(&v2, Verdict::Inconclusive(why.into()), Some(why))),
    );
    assert!(plan.actions.is_empty());
    assert_eq!(plan.status.phase, Some(Phase::Paused));
    assert_eq!(
        condition_reason(&r, READY),
        ("False".into(), "InconclusiveAnalysis".into())
    );
    cluster.apply(&plan);
    let again = cluster.plan_with(
        &mut r,
        Some(analysis(&v2, Verdict::Inconclusive(why.into()), Some(why))),
    );
    assert!(again.events.is_empty(), "no repeated events while held");
}

#[test]
fn an_invalid_analysis_starts_nothing() {
    let (mut r, cluster, _, v2) = analysed_rollout();
    let plan = cluster.plan_with(
        &mut r,
        Some(analysis(
            &v2,
            Verdict::Invalid("AnalysisTemplate \"x\" not found".into()),
            None,
        )),
    );
    assert!(plan.actions.is_empty());
    assert_eq!(condition_reason(&r, DEGRADED), ("True".into(), "InvalidSpec".into()));
    assert!(plan.status.message.unwrap().contains("not found"));
    assert_eq!(
        plan.requeue_after,
        Some(Duration::from_secs(10)),
        "missing objects are looked for again"
    );
}

proptest! {
    /// From any mix of revisions, planning converges on the current one at full size.
    #[test]
    fn planning_converges_from_any_state(
        replicas in 0..20i32,
        surge in 0..5i32,
        unavailable in 0..5i32,
        existing in proptest::collection::vec((0..25i32, 0..25i32), 0..4),
    ) {
        prop_assume!(surge + unavailable > 0);
        let mut r = release(replicas, "web:new", rolling(surge.into(), unavailable.into()));
        let mut cluster = Cluster::new();
        for (i, (spec, available)) in existing.iter().enumerate() {
            cluster.replica_sets.push(RevisionState {
                name: format!("web-old{i}"), revision: format!("old{i}"), number: i as i64 + 1,
                replicas: *spec, status_replicas: *spec, ready: (*available).min(*spec),
                available: (*available).min(*spec), synced: true,
            });
        }
        cluster.run(&mut r, 200);
        let status = r.status.as_ref().unwrap();
        prop_assert_eq!(status.phase, Some(Phase::Healthy));
        prop_assert_eq!(cluster.replicas_of(&revision(&r)), replicas);
        prop_assert!(cluster.replica_sets.iter().filter(|rs| rs.revision != revision(&r)).all(|rs| rs.replicas == 0));
    }
}
