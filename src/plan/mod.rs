//! Pure decision logic: observed state in, plan out. No IO, no async.
//!
//! The controller observes a Release and its ReplicaSets, calls [`plan`], and
//! executes the returned actions; every rollout decision is made here, where a
//! unit test reaches it in microseconds.
mod acceptance;
mod adoption;
mod analyses;
mod baseline;
mod bluegreen;
mod canary;
mod canary_traffic;
pub mod conditions;
mod deadline;
mod hooks;
mod judgement;
mod reason;
pub mod revision;
mod rollback;
mod rolling;
mod round;
pub mod routes;
mod selector;
pub mod snapshot;
mod steering;
pub mod surge;
#[cfg(test)]
mod tests;
mod validate;

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::api::{AnalysisPhase, AnalysisStatus, Release, ReleaseStatus};

/// Lives in `api`, which `analysis` reports it from too.
pub use crate::api::Invalid;
pub use analyses::{AnalysisRequest, AnalysisSlot, analyses_due};
pub use baseline::{BaselineState, baseline_name, baseline_pods};
pub use hooks::pre_rollout_pending;
pub use reason::Reason;
pub use selector::selector_string;
pub use validate::validate;

use round::Round;
use validate::{Validated, validated};

/// Decides what to do for a Release, given its ReplicaSets and analysis.
pub fn plan(observed: &Observed) -> Plan {
    let release = observed.release;
    let previous = release.status.clone().unwrap_or_default();
    // Without the template (its Deployment or a ConfigMap it reads is not
    // there) the revision is the one recorded: what status keeps for it stays.
    let recorded = observed
        .template_problem
        .as_ref()
        .and(previous.current_revision.clone());
    let mut round = Round::new(release, observed.replica_sets, &previous, observed.now, recorded);
    round.analysis = observed.analysis.as_ref();
    round.gate_analysis = observed.gate_analysis.as_ref();
    round.traffic = &observed.traffic;
    round.hook = observed.hook.as_ref();
    let valid = match (&observed.refused, &observed.template_problem) {
        (Some(refusal), _) => Err(Invalid::new(
            "spec.template",
            format!("the API server refuses its ReplicaSet: {refusal}"),
        )),
        (None, Some(problem)) => Err(problem.clone()),
        (None, None) => validated(&release.spec),
    };
    match valid {
        Err(invalid) => {
            // Nothing is scaled for a spec that cannot run: the baseline waits too.
            round.invalid(invalid.to_string());
            if observed.template_problem.is_some() && previous.current_revision.is_none() {
                round.status.current_revision = None; // No template: no revision to name.
            }
            return round.finish();
        }
        Ok(valid) => {
            // While adopting, no revision of the Release is stable yet.
            round.adopting = round.adopting(observed.workload.as_ref());
            let retry = round.begin();
            let adoption_bounds = match &valid {
                Validated::Rolling { bounds } | Validated::Canary { bounds, .. } => *bounds,
                Validated::BlueGreen { .. } => {
                    surge::bounds(&crate::api::RollingStrategy::default(), release.spec.replicas).unwrap_or((1, 0))
                }
            };
            // The first revision's preRollout hook comes before any pod, adopted ones too.
            let held = round.pre_rollout_holds()
                || observed
                    .workload
                    .as_ref()
                    .is_some_and(|w| round.adopt_progressively(w, adoption_bounds));
            if !held {
                match valid {
                    Validated::Rolling { bounds } => round.decide_rolling(bounds, retry),
                    Validated::Canary { strategy, bounds } => round.decide_canary(strategy, bounds, retry),
                    Validated::BlueGreen { strategy } => round.decide_blue_green(strategy, retry),
                }
                if let Some(workload) = &observed.workload {
                    round.keep_workload_down(workload);
                }
            }
        }
    }
    round.steer_baseline(observed.baseline.as_ref());
    round.hold_unaccepted_scale_downs();
    round.finish()
}

/// One ReplicaSet of a Release, as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionState {
    pub name: String,
    /// The pod template hash (`serin.dev/revision`).
    pub revision: String,
    /// Increasing per Release (`serin.dev/revision-number`); orders revisions.
    pub number: i64,
    /// spec.replicas
    pub replicas: i32,
    pub status_replicas: i32,
    pub ready: i32,
    pub available: i32,
    /// The ReplicaSet controller has observed the latest spec, so the counts are current.
    pub synced: bool,
}

/// Everything one planning round looks at.
pub struct Observed<'a> {
    pub release: &'a Release,
    pub replica_sets: &'a [RevisionState],
    /// The baseline ReplicaSet, if there is one ([`baseline_pods`]).
    pub baseline: Option<BaselineState>,
    /// The background analysis of the current revision, when [`analyses_due`] asked for one.
    pub analysis: Option<AnalysisInput>,
    /// The analysis that gates the next move, when [`analyses_due`] asked for
    /// one: a canary analysis step, or blue-green's pre- or post-promotion analysis.
    pub gate_analysis: Option<AnalysisInput>,
    /// The lifecycle hook of the current revision, when [`analyses_due`] asked for one.
    pub hook: Option<AnalysisInput>,
    /// The canary's Services and router, as observed; default for other strategies.
    pub traffic: Traffic,
    /// The API server refused the current revision's ReplicaSet, with this
    /// message (a pod template the CRD schema let through).
    pub refused: Option<String>,
    /// Why the pod template cannot be had: a Deployment (workloadRef) or a
    /// ConfigMap to snapshot that is not there.
    pub template_problem: Option<Invalid>,
    /// The Deployment of `spec.workloadRef`, as observed.
    pub workload: Option<WorkloadState>,
    pub now: Timestamp,
}

/// The Deployment a Release adopts (`spec.workloadRef`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadState {
    pub name: String,
    /// spec.replicas
    pub replicas: i32,
    /// Its pods now, surge pods of its own rollout included (at least `replicas`).
    pub pods: i32,
    pub available: i32,
    /// The Deployment controller has observed the latest spec.
    pub synced: bool,
}

/// What a canary's or blue-green's Services and traffic router show now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// The revision the stable (blue-green: active) Service selects, by its
    /// `serin.dev/revision` selector.
    pub stable_service: Option<String>,
    /// The revision the canary (blue-green: preview) Service selects.
    pub canary_service: Option<String>,
    /// Percent the router sends to the canary Service. None without a router,
    /// or when its objects are not set up yet.
    pub canary_weight: Option<i32>,
    /// The steps whose header and mirror routes the router shows (see
    /// [`routes::active_routes`]), ascending, each as its step sets it. None
    /// without a router, or when a route drifted and must be written again.
    pub routes: Option<Vec<usize>>,
    /// A controller reports on the router's objects (Gateway API
    /// `status.parents`), so a route change counts once it accepts it.
    pub reports_acceptance: bool,
    /// The reporting controller does not accept the objects' latest
    /// generation: why. None when accepted, or when none reports.
    pub unaccepted: Option<String>,
    /// Route steps whose routes the router cannot write onto its objects, and
    /// why: InvalidSpec once the canary reaches such a step.
    pub route_problems: Vec<(usize, String)>,
    /// How many header and mirror routes the router's objects hold at once;
    /// None: no bound.
    pub route_capacity: Option<usize>,
    /// Why the Services or routes cannot be driven; nothing is switched until fixed.
    pub problem: Option<String>,
}

/// The analysis of the current revision after this round's measurements.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisInput {
    pub slot: AnalysisSlot,
    pub status: AnalysisStatus,
    pub verdict: Verdict,
    /// When the next measurement falls due.
    pub next_due: Option<Duration>,
}

/// What the analysis says about the rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Running,
    Successful,
    Failed(String),
    Inconclusive(String),
    /// The analysis cannot run as written (unknown template, missing arg, bad CEL).
    Invalid(String),
}

impl Verdict {
    /// The verdict of an analysis phase and its message.
    pub fn of(phase: AnalysisPhase, message: Option<String>) -> Self {
        match phase {
            AnalysisPhase::Running => Verdict::Running,
            AnalysisPhase::Successful => Verdict::Successful,
            AnalysisPhase::Failed => Verdict::Failed(message.unwrap_or_default()),
            AnalysisPhase::Inconclusive => Verdict::Inconclusive(message.unwrap_or_default()),
        }
    }
}

/// What the controller must do to move the Release along.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create the ReplicaSet of the current template.
    Create {
        revision: String,
        number: i64,
        replicas: i32,
    },
    Scale {
        name: String,
        replicas: i32,
    },
    /// Create the baseline ReplicaSet: the template of `stable` (a
    /// ReplicaSet, of `revision`), labelled as the baseline of the `canary`
    /// revision.
    CreateBaseline {
        stable: String,
        revision: String,
        canary: String,
        replicas: i32,
    },
    /// Trim revision history; remove the baseline.
    Delete {
        name: String,
    },
    /// Point a Service's `serin.dev/revision` selector at a revision.
    Select {
        service: String,
        revision: String,
    },
    /// Send `canary` percent of traffic to the canary Service, the rest to the stable one.
    SetWeight {
        canary: i32,
    },
    /// Put in place the header and mirror routes of these steps, and no others.
    SetRoutes {
        steps: Vec<usize>,
    },
    /// Scale the Deployment of `spec.workloadRef` (never with `scaleDown: never`).
    ScaleWorkload {
        replicas: i32,
    },
}

/// A Kubernetes Event to record on the Release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub warning: bool,
    pub reason: Reason,
    pub note: String,
}

/// The outcome of one planning round.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub status: ReleaseStatus,
    pub events: Vec<Transition>,
    /// When a timer (the progress deadline) falls due; None means wait for a change.
    pub requeue_after: Option<Duration>,
    /// The current revision became stable in this round (a `Promoted` Event).
    pub promoted: bool,
    /// Leave `status.control` in place: a request that applies later (a promote
    /// while `spec.paused`). Otherwise the controller clears it after the round.
    pub keep_control: bool,
}
