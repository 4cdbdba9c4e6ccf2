//! One planning round for a Release: validate, pick the revisions, decide the
//! scale of each ReplicaSet, roll back past the progress deadline, and derive status.
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::conditions::{self, DEGRADED, PROGRESSING, READY};
use super::revision::revision_of;
use super::rolling::{self, Pods, RollingInput};
use super::selector::{matches, selector_string};
use super::{Action, Plan, RevisionState, Transition};
use crate::api::{Phase, Release, ReleaseSpec, ReleaseStatus};

/// Reasons shown on conditions and events; part of the product's interface.
pub mod reason {
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
    pub const ROLLING_UPDATE: &str = "RollingUpdate";
    pub const PAUSED: &str = "Paused";
    pub const AVAILABLE: &str = "Available";
    pub const ROLLED_BACK: &str = "RolledBack";
    pub const ROLLOUT_COMPLETE: &str = "RolloutComplete";
    pub const AS_EXPECTED: &str = "AsExpected";
}

/// Decides what to do for `release`, given its ReplicaSets, at time `now`.
pub fn plan(release: &Release, replica_sets: &[RevisionState], now: Timestamp) -> Plan {
    let previous = release.status.clone().unwrap_or_default();
    let mut round = Round::new(release, replica_sets, &previous, now);
    match validate(&release.spec) {
        Err(message) => round.invalid(message),
        Ok((max_surge, max_unavailable)) => round.decide(max_surge, max_unavailable),
    }
    round.finish()
}

/// Checks what the CRD schema cannot, and resolves the rolling bounds.
fn validate(spec: &ReleaseSpec) -> Result<(i32, i32), String> {
    let Some(rolling) = &spec.strategy.rolling else {
        return Err(format!(
            "spec.strategy.{} is not supported by this version of serin; use spec.strategy.rolling",
            if spec.strategy.canary.is_some() {
                "canary"
            } else {
                "blueGreen"
            }
        ));
    };
    let selector = &spec.selector;
    if selector.match_labels.as_ref().is_none_or(|l| l.is_empty())
        && selector.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    {
        return Err("spec.selector is empty; it must select the template's labels".into());
    }
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    if !matches(selector, &labels) {
        return Err("spec.selector does not match spec.template.metadata.labels".into());
    }
    rolling::bounds(rolling, spec.replicas).map_err(|e| format!("spec.strategy.rolling: {e}"))
}

struct Round<'a> {
    spec: &'a ReleaseSpec,
    name: String,
    previous: &'a ReleaseStatus,
    now: Timestamp,
    revision: String,
    new: Option<&'a RevisionState>,
    /// Every other ReplicaSet, oldest first.
    old: Vec<&'a RevisionState>,
    synced: bool,
    status: ReleaseStatus,
    actions: Vec<Action>,
    events: Vec<Transition>,
    requeue_after: Option<Duration>,
}

impl<'a> Round<'a> {
    fn new(
        release: &'a Release,
        replica_sets: &'a [RevisionState],
        previous: &'a ReleaseStatus,
        now: Timestamp,
    ) -> Self {
        let spec = &release.spec;
        let revision = revision_of(&spec.template);
        let new = replica_sets.iter().find(|rs| rs.revision == revision);
        let mut old: Vec<_> = replica_sets.iter().filter(|rs| rs.revision != revision).collect();
        old.sort_by_key(|rs| (rs.number, rs.name.clone()));
        // A rolled-back revision is retried once the template changes.
        let failed_revision = previous.failed_revision.clone().filter(|f| *f == revision);
        let status = ReleaseStatus {
            observed_generation: release.metadata.generation,
            strategy: Some(spec.strategy.name().to_string()),
            conditions: previous.conditions.clone(),
            current_revision: Some(revision.clone()),
            stable_revision: previous.stable_revision.clone(),
            failed_revision,
            replicas: replica_sets.iter().map(|rs| rs.status_replicas).sum(),
            updated_replicas: new.map_or(0, |rs| rs.status_replicas),
            ready_replicas: replica_sets.iter().map(|rs| rs.ready).sum(),
            available_replicas: replica_sets.iter().map(|rs| rs.available).sum(),
            selector: Some(selector_string(&spec.selector)),
            ..Default::default()
        };
        Round {
            spec,
            name: release.metadata.name.clone().unwrap_or_default(),
            previous,
            now,
            revision,
            new,
            old,
            synced: replica_sets.iter().all(|rs| rs.synced),
            status,
            actions: Vec::new(),
            events: Vec::new(),
            requeue_after: None,
        }
    }

    fn desired(&self) -> i32 {
        self.spec.replicas
    }

    /// The stable ReplicaSet, if it still exists and is not the current one.
    fn stable(&self) -> Option<&'a RevisionState> {
        let stable = self.status.stable_revision.as_ref()?;
        self.old.iter().copied().find(|rs| &rs.revision == stable)
    }

    fn complete(&self) -> bool {
        let desired = self.desired();
        self.synced
            && self
                .new
                .is_some_and(|n| n.replicas == desired && n.available >= desired)
            && self.old.iter().all(|rs| rs.replicas == 0 && rs.status_replicas == 0)
    }

    fn invalid(&mut self, message: String) {
        let changed = conditions::get(&self.previous.conditions, DEGRADED)
            .is_none_or(|c| c.reason != reason::INVALID_SPEC || c.message != message);
        if changed {
            self.event(true, reason::INVALID_SPEC, message.clone());
        }
        self.status.rollout_start_time = self.previous.rollout_start_time.clone();
        self.set_conditions(
            Phase::Degraded,
            reason::INVALID_SPEC,
            message,
            false,
            Some(reason::INVALID_SPEC),
        );
    }

    fn decide(&mut self, max_surge: i32, max_unavailable: i32) {
        if self.status.stable_revision.is_none() {
            // Status lost or never written: the newest running old revision is stable.
            self.status.stable_revision = self
                .old
                .iter()
                .rev()
                .find(|rs| rs.replicas > 0)
                .map(|rs| rs.revision.clone());
        }
        if self.previous.current_revision.as_ref() != Some(&self.revision) {
            let from = self.previous.current_revision.as_deref().unwrap_or("none");
            self.event(
                false,
                "RolloutStarted",
                format!("Rolling out revision {} (from {from})", self.revision),
            );
        }
        if self.status.failed_revision.is_some() {
            return self.roll_back(self.rollback_reason());
        }
        if self.complete() {
            return self.completed();
        }
        let rollout = self.status.stable_revision.as_ref() != Some(&self.revision);
        if self.spec.paused && rollout {
            return self.paused();
        }
        // Progress deadline, counted from the start (or resumption) of this rollout.
        let started = match &self.previous.rollout_start_time {
            Some(t) if self.previous.current_revision.as_ref() == Some(&self.revision) => t.0,
            _ => self.now,
        };
        let deadline = Duration::from_secs(self.spec.progress_deadline_seconds.max(0) as u64);
        let elapsed = self.now.duration_since(started).unsigned_abs();
        let expired = rollout && elapsed >= deadline;
        if rollout {
            self.status.rollout_start_time = Some(Time(started));
        }
        if expired && self.stable().is_some() {
            self.status.failed_revision = Some(self.revision.clone());
            self.event(
                true,
                reason::ROLLED_BACK,
                format!(
                    "Revision {} was not available within progressDeadlineSeconds ({}s); rolling back to revision {}",
                    self.revision,
                    deadline.as_secs(),
                    self.status.stable_revision.as_deref().unwrap_or_default()
                ),
            );
            return self.roll_back(reason::PROGRESS_DEADLINE_EXCEEDED);
        }
        if rollout && !expired {
            self.requeue_after = Some(deadline - elapsed);
        }
        self.roll(max_surge, max_unavailable);
        let (updated, available) = self.new.map_or((0, 0), |n| (n.replicas, n.available));
        let old: i32 = self.old.iter().map(|rs| rs.replicas).sum();
        let progress = format!(
            "Rolling out revision {}: {available} of {} updated replicas available, {old} old replicas remain",
            self.revision,
            self.desired().max(updated)
        );
        if expired {
            // First revision: there is nothing to roll back to.
            let message = format!(
                "Revision {} was not available within progressDeadlineSeconds ({}s) and there is no stable revision to roll back to",
                self.revision,
                deadline.as_secs()
            );
            self.set_conditions(
                Phase::Degraded,
                reason::PROGRESS_DEADLINE_EXCEEDED,
                message,
                true,
                Some(reason::PROGRESS_DEADLINE_EXCEEDED),
            );
        } else {
            self.set_conditions(Phase::Progressing, reason::ROLLING_UPDATE, progress, true, None);
        }
    }

    fn rollback_reason(&self) -> &'static str {
        // Keep the reason recorded when the rollback started.
        const ROLLBACK_REASONS: [&str; 1] = [reason::PROGRESS_DEADLINE_EXCEEDED];
        conditions::get(&self.previous.conditions, DEGRADED)
            .filter(|c| c.status == "True")
            .and_then(|c| ROLLBACK_REASONS.into_iter().find(|r| *r == c.reason))
            .unwrap_or(reason::PROGRESS_DEADLINE_EXCEEDED)
    }

    /// Restore the stable revision to full size first, then scale everything else to 0.
    fn roll_back(&mut self, why: &'static str) {
        let desired = self.desired();
        let stable = self.stable();
        let stable_available = stable.is_some_and(|s| s.available >= desired);
        if self.synced {
            if let Some(stable) = stable {
                self.scale(stable, desired);
            }
            let others = self
                .new
                .into_iter()
                .chain(self.old.iter().copied().filter(|rs| Some(*rs) != stable));
            let to_zero: Vec<_> = others.filter(|rs| stable_available || rs.available == 0).collect();
            for rs in to_zero {
                self.scale(rs, 0);
            }
        }
        let to = self.status.stable_revision.clone().unwrap_or_default();
        let state = if stable_available {
            format!("revision {to} has all {desired} replicas available")
        } else {
            format!("restoring revision {to} to {desired} available replicas")
        };
        let message = format!(
            "Rolled back revision {} ({why}); {state}. Change the template, or retry, to roll out again",
            self.revision
        );
        self.set_conditions(Phase::Degraded, why, message, false, Some(why));
    }

    fn completed(&mut self) {
        if self.status.stable_revision.as_ref() != Some(&self.revision) {
            self.event(false, "Promoted", format!("Revision {} is now stable", self.revision));
        }
        self.status.stable_revision = Some(self.revision.clone());
        // A scale change with the same template still goes through the rolling step.
        let message = format!("Revision {}: all {} replicas available", self.revision, self.desired());
        self.set_conditions(Phase::Healthy, reason::AVAILABLE, message, false, None);
        self.trim_history();
    }

    fn paused(&mut self) {
        if self.previous.phase != Some(Phase::Paused) {
            self.event(
                false,
                "Paused",
                format!("Rollout of revision {} paused by spec.paused", self.revision),
            );
        }
        let message = format!(
            "Rollout of revision {} is paused (spec.paused); set it to false to resume",
            self.revision
        );
        self.set_conditions(Phase::Paused, reason::PAUSED, message, false, None);
    }

    /// One rolling step, within maxSurge and maxUnavailable.
    fn roll(&mut self, max_surge: i32, max_unavailable: i32) {
        if self.previous.phase == Some(Phase::Paused) {
            self.event(
                false,
                "Resumed",
                format!("Rollout of revision {} resumed", self.revision),
            );
        }
        if !self.synced {
            return; // Counts are stale until the ReplicaSet controller catches up.
        }
        let input = RollingInput {
            desired: self.desired(),
            max_surge,
            max_unavailable,
            new: self.new.map_or(
                Pods {
                    replicas: 0,
                    available: 0,
                },
                |n| Pods {
                    replicas: n.replicas,
                    available: n.available,
                },
            ),
            old: self
                .old
                .iter()
                .map(|rs| Pods {
                    replicas: rs.replicas,
                    available: rs.available,
                })
                .collect(),
        };
        let output = rolling::step(&input);
        match self.new {
            Some(new) => self.scale(new, output.new_replicas),
            None => {
                let number = self.old.iter().map(|rs| rs.number).max().unwrap_or(0) + 1;
                self.event(
                    false,
                    "ScalingReplicaSet",
                    format!(
                        "Created replica set {}-{} with {} replicas",
                        self.name, self.revision, output.new_replicas
                    ),
                );
                self.actions.push(Action::Create {
                    revision: self.revision.clone(),
                    number,
                    replicas: output.new_replicas,
                });
            }
        }
        let old = self.old.clone();
        for (rs, replicas) in old.into_iter().zip(output.old_replicas) {
            self.scale(rs, replicas);
        }
    }

    fn scale(&mut self, rs: &RevisionState, replicas: i32) {
        if rs.replicas == replicas {
            return;
        }
        let direction = if replicas > rs.replicas { "up" } else { "down" };
        self.event(
            false,
            "ScalingReplicaSet",
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
    fn trim_history(&mut self) {
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

    fn event(&mut self, warning: bool, reason: &'static str, note: String) {
        self.events.push(Transition { warning, reason, note });
    }

    /// Sets phase, message and the three conditions together so they never disagree.
    fn set_conditions(&mut self, phase: Phase, why: &str, message: String, progressing: bool, degraded: Option<&str>) {
        let generation = self.status.observed_generation;
        let now = Time(self.now);
        let list = &mut self.status.conditions;
        let ready = phase == Phase::Healthy;
        conditions::set(list, READY, ready, why, message.clone(), generation, &now);
        let progressing_reason = if ready { reason::ROLLOUT_COMPLETE } else { why };
        conditions::set(
            list,
            PROGRESSING,
            progressing,
            progressing_reason,
            message.clone(),
            generation,
            &now,
        );
        match degraded {
            Some(r) => conditions::set(list, DEGRADED, true, r, message.clone(), generation, &now),
            None => conditions::set(
                list,
                DEGRADED,
                false,
                reason::AS_EXPECTED,
                "No failure".into(),
                generation,
                &now,
            ),
        }
        self.status.phase = Some(phase);
        self.status.message = Some(message);
    }

    fn finish(self) -> Plan {
        Plan {
            actions: self.actions,
            status: self.status,
            events: self.events,
            requeue_after: self.requeue_after,
        }
    }
}
