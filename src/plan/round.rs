//! One planning round: what every strategy reads (the Release, its
//! ReplicaSets, the previous status) and the plan it builds (actions, events,
//! status and conditions that never disagree).
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::conditions::{self, DEGRADED, PROGRESSING, READY, RECONCILING, STALLED};
use super::reason::Reason;
use super::revision::revision_of;
use super::selector::selector_string;
use super::{Action, AnalysisInput, Plan, RevisionState, Traffic, Transition, Verdict};
use crate::api::{AnalysisPhase, AnalysisStatus, HooksStatus, Phase, Release, ReleaseSpec, ReleaseStatus};

/// How soon an analysis, Service or route that refers to missing objects is looked at again.
pub(super) const INVALID_RECHECK: Duration = Duration::from_secs(10);

/// One planning round's inputs, and the plan it builds.
pub(super) struct Round<'a> {
    pub(super) spec: &'a ReleaseSpec,
    pub(super) name: String,
    pub(super) previous: &'a ReleaseStatus,
    pub(super) now: Timestamp,
    pub(super) revision: String,
    pub(super) new: Option<&'a RevisionState>,
    /// Every other ReplicaSet, oldest first.
    pub(super) old: Vec<&'a RevisionState>,
    pub(super) synced: bool,
    pub(super) analysis: Option<&'a AnalysisInput>,
    /// A canary analysis step, or blue-green's pre- or post-promotion analysis.
    pub(super) gate_analysis: Option<&'a AnalysisInput>,
    pub(super) traffic: &'a Traffic,
    pub(super) status: ReleaseStatus,
    pub(super) actions: Vec<Action>,
    pub(super) events: Vec<Transition>,
    pub(super) requeue_after: Option<Duration>,
    /// The lifecycle hook measured in this round, if any.
    pub(super) hook: Option<&'a AnalysisInput>,
    /// A person asked for an abort in this round.
    pub(super) aborted_now: bool,
    /// Why the current revision was marked failed in this round (a hook).
    pub(super) failed_now: Option<Reason>,
    /// Adopting a Deployment (`workloadRef`, progressively): no stable revision yet.
    pub(super) adopting: bool,
    /// The current revision became stable in this round.
    pub(super) promoted: bool,
    pub(super) keep_control: bool,
}

static NO_TRAFFIC: Traffic = Traffic {
    stable_service: None,
    canary_service: None,
    canary_weight: None,
    routes: None,
    reports_acceptance: false,
    unaccepted: None,
    route_problems: Vec::new(),
    route_capacity: None,
    problem: None,
};

impl<'a> Round<'a> {
    /// `revision`: the current template's, or None for [`revision_of`] it.
    pub(super) fn new(
        release: &'a Release,
        replica_sets: &'a [RevisionState],
        previous: &'a ReleaseStatus,
        now: Timestamp,
        revision: Option<String>,
    ) -> Self {
        let spec = &release.spec;
        let revision = revision.unwrap_or_else(|| revision_of(&spec.template));
        let new = replica_sets.iter().find(|rs| rs.revision == revision);
        let mut old: Vec<_> = replica_sets.iter().filter(|rs| rs.revision != revision).collect();
        old.sort_by_key(|rs| (rs.number, rs.name.clone()));
        let status = carried_status(release, replica_sets, previous, &revision);
        Round {
            spec,
            name: release.metadata.name.clone().unwrap_or_default(),
            previous,
            now,
            revision,
            new,
            old,
            synced: replica_sets.iter().all(|rs| rs.synced),
            analysis: None,
            gate_analysis: None,
            traffic: &NO_TRAFFIC,
            hook: None,
            status,
            actions: Vec::new(),
            events: Vec::new(),
            requeue_after: None,
            aborted_now: false,
            failed_now: None,
            adopting: false,
            promoted: false,
            keep_control: false,
        }
    }

    pub(super) fn desired(&self) -> i32 {
        self.spec.replicas
    }

    /// The stable ReplicaSet, if it still exists and is not the current one.
    pub(super) fn stable(&self) -> Option<&'a RevisionState> {
        let stable = self.status.stable_revision.as_ref()?;
        self.old.iter().copied().find(|rs| &rs.revision == stable)
    }

    /// The new revision runs `replicas` available pods.
    pub(super) fn new_available(&self) -> bool {
        let desired = self.desired();
        self.new
            .is_some_and(|n| n.replicas == desired && n.available >= desired)
    }

    pub(super) fn analysis_passed(&self) -> bool {
        self.analysis.is_none_or(|a| a.verdict == Verdict::Successful)
    }

    pub(super) fn complete(&self) -> bool {
        self.synced
            && self.new_available()
            && self.old.iter().all(|rs| rs.replicas == 0 && rs.status_replicas == 0)
            && self.analysis_passed()
    }

    /// What every strategy does first: adopt a stable revision when status was
    /// lost, act on retry and abort requests, and note a new rollout. Returns
    /// whether this round retries.
    pub(super) fn begin(&mut self) -> bool {
        if self.status.stable_revision.is_none() && !self.adopting {
            // Status lost or never written: the newest running old revision is stable.
            self.status.stable_revision = self
                .old
                .iter()
                .rev()
                .find(|rs| rs.replicas > 0)
                .map(|rs| rs.revision.clone());
        }
        let retry = self.previous.control.as_ref().is_some_and(|c| c.retry);
        if retry {
            self.event(
                false,
                Reason::Retried,
                format!("Retrying revision {} as requested", self.revision),
            );
            self.status.failed_revision = None;
        }
        if self.previous.current_revision.as_ref() != Some(&self.revision) {
            let from = self.previous.current_revision.as_deref().unwrap_or("none");
            self.event(
                false,
                Reason::RolloutStarted,
                format!("Rolling out revision {} (from {from})", self.revision),
            );
        }
        let abort = self.previous.control.as_ref().is_some_and(|c| c.abort);
        let in_flight = self
            .status
            .stable_revision
            .as_ref()
            .is_some_and(|s| *s != self.revision);
        if abort && in_flight && self.status.failed_revision.is_none() {
            self.status.failed_revision = Some(self.revision.clone());
            let stable = self.status.stable_revision.as_deref().unwrap_or_default();
            let note = format!(
                "Revision {} aborted by request; rolling back to revision {stable}",
                self.revision
            );
            self.event(true, Reason::Aborted, note);
            self.aborted_now = true;
        }
        retry
    }

    pub(super) fn invalid(&mut self, message: String) {
        let changed = conditions::get(&self.previous.conditions, DEGRADED)
            .is_none_or(|c| c.reason != Reason::InvalidSpec.as_str() || c.message != message);
        if changed {
            self.event(true, Reason::InvalidSpec, message.clone());
        }
        self.status.rollout_start_time = self.previous.rollout_start_time.clone();
        self.set_conditions(
            Phase::Degraded,
            Reason::InvalidSpec,
            message,
            false,
            Some(Reason::InvalidSpec),
        );
    }

    /// The current revision is stable from now on.
    pub(super) fn promote(&mut self) {
        if self.status.stable_revision.as_ref() != Some(&self.revision) {
            self.event(
                false,
                Reason::Promoted,
                format!("Revision {} is now stable", self.revision),
            );
            self.promoted = true;
        }
        self.status.stable_revision = Some(self.revision.clone());
    }

    pub(super) fn completed(&mut self) {
        self.promote();
        // A scale change with the same template still goes through the rolling step.
        let message = format!("Revision {}: all {} replicas available", self.revision, self.desired());
        self.set_conditions(Phase::Healthy, Reason::Available, message, false, None);
        self.trim_history();
    }

    pub(super) fn paused(&mut self) {
        if self.previous.phase != Some(Phase::Paused) {
            self.event(
                false,
                Reason::Paused,
                format!("Rollout of revision {} paused by spec.paused", self.revision),
            );
        }
        let message = format!(
            "Rollout of revision {} is paused (spec.paused); set it to false to resume",
            self.revision
        );
        self.set_conditions(Phase::Paused, Reason::Paused, message, false, None);
    }

    pub(super) fn requeue_at(&mut self, after: Duration) {
        self.requeue_after = Some(self.requeue_after.map_or(after, |r| r.min(after)));
    }

    /// Scales the current revision's ReplicaSet, creating it first if needed.
    pub(super) fn scale_new(&mut self, replicas: i32) {
        if let Some(new) = self.new {
            return self.scale(new, replicas);
        }
        let number = self.old.iter().map(|rs| rs.number).max().unwrap_or(0) + 1;
        self.event(
            false,
            Reason::ScalingReplicaSet,
            format!(
                "Created replica set {}-{} with {replicas} replicas",
                self.name, self.revision
            ),
        );
        self.actions.push(Action::Create {
            revision: self.revision.clone(),
            number,
            replicas,
        });
    }

    pub(super) fn scale(&mut self, rs: &RevisionState, replicas: i32) {
        if rs.replicas == replicas {
            return;
        }
        let direction = if replicas > rs.replicas { "up" } else { "down" };
        self.event(
            false,
            Reason::ScalingReplicaSet,
            format!(
                "Scaled {direction} replica set {} from {} to {replicas}",
                rs.name, rs.replicas
            ),
        );
        self.actions.push(Action::Scale {
            name: rs.name.clone(),
            replicas,
        });
    }

    /// Deletes the oldest idle ReplicaSets beyond revisionHistoryLimit.
    pub(super) fn trim_history(&mut self) {
        let idle: Vec<_> = self
            .old
            .iter()
            .filter(|rs| rs.replicas == 0 && rs.status_replicas == 0)
            .map(|rs| rs.name.clone())
            .collect();
        let keep = usize::try_from(self.spec.revision_history_limit).unwrap_or(0);
        let excess = idle.len().saturating_sub(keep);
        self.actions
            .extend(idle.into_iter().take(excess).map(|name| Action::Delete { name }));
    }

    pub(super) fn event(&mut self, warning: bool, reason: Reason, note: String) {
        self.events.push(Transition { warning, reason, note });
    }

    /// Sets phase, message and the five conditions together so they never disagree.
    pub(super) fn set_conditions(
        &mut self,
        phase: Phase,
        why: Reason,
        message: String,
        progressing: bool,
        degraded: Option<Reason>,
    ) {
        let generation = self.status.observed_generation;
        let now = Time(self.now);
        let list = &mut self.status.conditions;
        let mut set = |type_: &str, status: bool, reason: Reason, message: String| {
            conditions::set(list, type_, status, reason.as_str(), message, generation, &now);
        };
        let ready = phase == Phase::Healthy;
        set(READY, ready, why, message.clone());
        let progressing_reason = if ready { Reason::RolloutComplete } else { why };
        set(PROGRESSING, progressing, progressing_reason, message.clone());
        let (failed, failure_reason, failure) = match degraded {
            Some(r) => (true, r, message.clone()),
            None => (false, Reason::AsExpected, "No failure".to_string()),
        };
        set(DEGRADED, failed, failure_reason, failure.clone());
        set(STALLED, failed, failure_reason, failure);
        // Not ready and not failed: in flight, paused, or waiting for a person.
        let (reconciling, reconciling_reason) = if ready || failed {
            (false, Reason::AsExpected)
        } else {
            (true, why)
        };
        set(RECONCILING, reconciling, reconciling_reason, message.clone());
        self.status.phase = Some(phase);
        self.status.message = Some(message);
    }

    pub(super) fn finish(self) -> Plan {
        Plan {
            actions: self.actions,
            status: self.status,
            events: self.events,
            requeue_after: self.requeue_after,
            promoted: self.promoted,
            keep_control: self.keep_control,
        }
    }
}

/// The status a round starts from: the counts observed now, and what the
/// previous status recorded for the current revision and its strategy.
fn carried_status(
    release: &Release,
    replica_sets: &[RevisionState],
    previous: &ReleaseStatus,
    revision: &str,
) -> ReleaseStatus {
    let spec = &release.spec;
    let new = replica_sets.iter().find(|rs| rs.revision == revision);
    // A rolled-back revision is retried once the template changes.
    let failed_revision = previous.failed_revision.clone().filter(|f| *f == revision);
    let status = ReleaseStatus {
        observed_generation: release.metadata.generation,
        strategy: Some(spec.strategy.name().to_string()),
        conditions: previous.conditions.clone(),
        current_revision: Some(revision.to_string()),
        stable_revision: previous.stable_revision.clone(),
        failed_revision,
        replicas: replica_sets.iter().map(|rs| rs.status_replicas).sum(),
        updated_replicas: new.map_or(0, |rs| rs.status_replicas),
        ready_replicas: replica_sets.iter().map(|rs| rs.ready).sum(),
        available_replicas: replica_sets.iter().map(|rs| rs.available).sum(),
        selector: Some(status_selector(spec)),
        analysis: previous.analysis.clone(),
        hooks: carried_hooks(previous, revision),
        ..Default::default()
    };
    if spec.strategy.canary.is_some() {
        ReleaseStatus {
            current_step_index: previous.current_step_index,
            canary_weight: previous.canary_weight,
            canary: previous.canary.clone(),
            ..status
        }
    } else if spec.strategy.blue_green.is_some() {
        ReleaseStatus {
            blue_green: previous.blue_green.clone(),
            ..status
        }
    } else {
        status
    }
}

/// The hooks recorded for `revision`; a retry starts those that did not pass afresh.
fn carried_hooks(previous: &ReleaseStatus, revision: &str) -> Option<HooksStatus> {
    let retry = previous.control.as_ref().is_some_and(|c| c.retry);
    let keep = |a: &Option<AnalysisStatus>| {
        a.clone()
            .filter(|a| a.revision == revision && (!retry || a.phase == AnalysisPhase::Successful))
    };
    let hooks = previous.hooks.as_ref()?;
    let carried = HooksStatus {
        pre_rollout: keep(&hooks.pre_rollout),
        post_rollout: keep(&hooks.post_rollout),
    };
    (carried != HooksStatus::default()).then_some(carried)
}

/// The selector of the Release's pods, for HPAs and `kubectl scale`. An
/// adopted Deployment's pods match `spec.selector` too; only the Release's
/// carry `serin.dev/revision`.
fn status_selector(spec: &ReleaseSpec) -> String {
    let selector = selector_string(&spec.selector);
    match &spec.workload_ref {
        Some(_) if selector.is_empty() => crate::api::REVISION_LABEL.to_string(),
        Some(_) => format!("{selector},{}", crate::api::REVISION_LABEL),
        None => selector,
    }
}
