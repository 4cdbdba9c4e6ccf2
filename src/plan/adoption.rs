//! Adopting a Deployment (`spec.workloadRef`): the Release rolls out the
//! Deployment's pod template, and `scaleDown` says what becomes of the
//! Deployment's own pods.
//!
//! - `never`: serin never writes the Deployment.
//! - `onsuccess`: once the Release has a stable revision, fully available,
//!   the Deployment is scaled to 0, and kept there.
//! - `progressively`: until the Release has a stable revision, its pods
//!   replace the Deployment's as a rolling update does, within maxSurge and
//!   maxUnavailable: the Deployment (and any earlier revision of the
//!   Release) is the old side. Past the progress deadline, or on an abort,
//!   the Deployment is scaled back up to `replicas` and the Release's pods go.
//!   Once adopted, the Deployment is kept at 0.
//!
//! The Deployment's pods and the Release's never share a ReplicaSet: each
//! ReplicaSet's selector has its own hash label, and the Release's
//! `status.selector` requires `serin.dev/revision`, which only its pods carry.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::deadline::Deadline;
use super::reason::Reason;
use super::round::Round;
use super::surge::{self, Pods, RollingInput};
use super::{Action, WorkloadState};
use crate::api::{Phase, ScaleDown};

impl Round<'_> {
    fn scale_down_mode(&self) -> ScaleDown {
        self.spec
            .workload_ref
            .as_ref()
            .map_or(ScaleDown::Never, |w| w.scale_down)
    }

    /// `progressively` with pods left on the Deployment and no stable
    /// revision recorded: the round adopts (and `begin` must not take an
    /// earlier revision of the Release for stable).
    pub(super) fn adopting(&self, workload: Option<&WorkloadState>) -> bool {
        self.scale_down_mode() == ScaleDown::Progressively
            && workload.is_some_and(|w| w.replicas > 0)
            && self.previous.stable_revision.is_none()
    }

    /// One rolling step from the Deployment's pods to the current
    /// revision's, or the way back after a failure. True when it decided the round.
    pub(super) fn adopt_progressively(&mut self, workload: &WorkloadState, bounds: (i32, i32)) -> bool {
        if !self.adopting(Some(workload)) || self.spec.paused {
            return false;
        }
        let control = self.previous.control.clone().unwrap_or_default();
        if control.abort && self.status.failed_revision.is_none() {
            self.aborted_now = true;
            self.mark_failed(Reason::Aborted, "aborted by request".into());
        }
        if self.status.failed_revision.is_some() {
            return self.adoption_rolled_back(workload);
        }
        let started = match &self.previous.rollout_start_time {
            Some(t) if self.previous.current_revision.as_ref() == Some(&self.revision) => t.0,
            _ => self.now,
        };
        self.status.rollout_start_time = Some(Time(started));
        let full = self.new.is_some_and(|n| n.available >= self.desired());
        let pending = (!full).then(|| self.elapsed_since(started));
        if self.check_deadline(pending) == Deadline::Stranded {
            // No stable revision to go back to: the Deployment is the way back.
            let cause = format!(
                "not available within progressDeadlineSeconds ({}s)",
                self.progress_deadline().as_secs()
            );
            self.failed_now = Some(Reason::ProgressDeadlineExceeded);
            self.mark_failed(Reason::ProgressDeadlineExceeded, cause);
            return self.adoption_rolled_back(workload);
        }
        if self.synced && workload.synced {
            self.adoption_step(workload, bounds);
        }
        let available = self.new.map_or(0, |n| n.available);
        let message = format!(
            "Adopting Deployment {}: {available} of {} pods of revision {} available, {} left on the Deployment",
            workload.name,
            self.desired(),
            self.revision,
            workload.replicas
        );
        self.set_conditions(Phase::Progressing, Reason::Adopting, message, true, None);
        true
    }

    fn adoption_step(&mut self, workload: &WorkloadState, bounds: (i32, i32)) {
        let pods = |replicas: i32, available: i32| Pods { replicas, available };
        let new = self.new.map_or(pods(0, 0), |n| pods(n.replicas, n.available));
        // Earlier revisions of the Release first, then the Deployment.
        let mut old: Vec<Pods> = self.old.iter().map(|rs| pods(rs.replicas, rs.available)).collect();
        old.push(pods(workload.pods, workload.available));
        let output = surge::step(&RollingInput {
            desired: self.desired(),
            max_surge: bounds.0,
            max_unavailable: bounds.1,
            new,
            old,
            old_floor: 0,
        });
        if output.new_replicas != new.replicas || self.new.is_none() {
            self.scale_new(output.new_replicas);
        }
        let earlier = self.old.clone();
        for (rs, replicas) in earlier.into_iter().zip(&output.old_replicas) {
            self.scale(rs, *replicas);
        }
        let deployment = output.old_replicas.last().copied().unwrap_or(0);
        // Its spec, not its pods: a Deployment with surge pods of its own
        // is never scaled up by this.
        self.scale_workload(workload, deployment.min(workload.replicas));
    }

    /// The adoption failed (deadline, abort): the Deployment back to
    /// `replicas`, then the Release's pods down.
    fn adoption_rolled_back(&mut self, workload: &WorkloadState) -> bool {
        let desired = self.desired();
        self.scale_workload(workload, desired.max(workload.replicas));
        let restored = workload.synced && workload.available >= desired;
        if restored && self.synced {
            for rs in self.new.into_iter().chain(self.old.iter().copied()).collect::<Vec<_>>() {
                self.scale(rs, 0);
            }
        }
        let why = self.rollback_reason();
        let message = format!(
            "Adoption of Deployment {} rolled back ({why}: {}); the Deployment runs {desired} pods again. Change the template, or retry, to adopt again",
            workload.name,
            self.rollback_cause(why)
        );
        self.set_conditions(Phase::Degraded, why, message, false, Some(why));
        true
    }

    /// `onsuccess` and `progressively`, once the Release has a stable
    /// revision: the Deployment stays at 0 (a sync that scales it up is
    /// undone). `onsuccess` waits for that revision to be fully available.
    pub(super) fn keep_workload_down(&mut self, workload: &WorkloadState) {
        let mode = self.scale_down_mode();
        if mode == ScaleDown::Never || self.spec.paused || workload.replicas == 0 {
            return;
        }
        let Some(stable) = self.status.stable_revision.clone() else {
            return;
        };
        let desired = self.desired();
        let stable_up = self
            .new
            .filter(|n| n.revision == stable)
            .or_else(|| self.old.iter().copied().find(|rs| rs.revision == stable))
            .is_some_and(|rs| rs.available >= desired && rs.replicas == desired);
        if mode == ScaleDown::Progressively || stable_up {
            self.scale_workload(workload, 0);
        }
    }

    fn scale_workload(&mut self, workload: &WorkloadState, replicas: i32) {
        if workload.replicas == replicas {
            return;
        }
        let direction = if replicas > workload.replicas { "up" } else { "down" };
        self.event(
            false,
            Reason::ScalingReplicaSet,
            format!(
                "Scaled {direction} Deployment {} from {} to {replicas}",
                workload.name, workload.replicas
            ),
        );
        self.actions.push(Action::ScaleWorkload { replicas });
    }
}
