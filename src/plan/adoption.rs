//! Adopting a Deployment (`spec.workloadRef`): the Release rolls out the
//! Deployment's pod template, and `scaleDown` says what becomes of the
//! Deployment's own pods.
//!
//! - `never`: serin never writes the Deployment.
//! - `onsuccess`: once the Release's revision is stable and fully available,
//!   the Deployment is scaled to 0, and kept there.
//! - `progressively`: the Release's first revision replaces the Deployment's
//!   pods as a rolling update does, within maxSurge and maxUnavailable, the
//!   Deployment standing for the old revision; then it is kept at 0.
//!
//! The Deployment's pods and the Release's never share a ReplicaSet: each
//! ReplicaSet's selector has its own hash label, and the Release's
//! `status.selector` requires `serin.dev/revision`, which only its pods carry.
use super::reason::Reason;
use super::round::Round;
use super::surge::{self, Pods, RollingInput};
use super::{Action, WorkloadState};
use crate::api::{Phase, ScaleDown};

impl Round<'_> {
    /// `progressively`, before the Release has a stable revision: one
    /// rolling step from the Deployment's pods to the first revision's.
    /// True when it decided the round.
    pub(super) fn adopt_progressively(&mut self, workload: &WorkloadState, bounds: (i32, i32)) -> bool {
        let mode = self.spec.workload_ref.as_ref().map(|w| w.scale_down);
        let adopting = mode == Some(ScaleDown::Progressively)
            && workload.replicas > 0
            && self.status.stable_revision.is_none()
            && self.old.is_empty();
        if !adopting || self.spec.paused {
            return false;
        }
        if self.synced && workload.synced {
            let new = self.new.map_or(
                Pods {
                    replicas: 0,
                    available: 0,
                },
                |n| Pods {
                    replicas: n.replicas,
                    available: n.available,
                },
            );
            let output = surge::step(&RollingInput {
                desired: self.desired(),
                max_surge: bounds.0,
                max_unavailable: bounds.1,
                new,
                old: vec![Pods {
                    replicas: workload.replicas,
                    available: workload.available,
                }],
                old_floor: 0,
            });
            if output.new_replicas != new.replicas || self.new.is_none() {
                self.scale_new(output.new_replicas);
            }
            let to = output.old_replicas.first().copied().unwrap_or(0);
            self.scale_workload(workload, to);
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

    /// `onsuccess` and `progressively`, once the Release has a stable
    /// revision fully available: the Deployment stays at 0.
    pub(super) fn keep_workload_down(&mut self, workload: &WorkloadState) {
        let mode = self
            .spec
            .workload_ref
            .as_ref()
            .map_or(ScaleDown::Never, |w| w.scale_down);
        let stable_up = self.status.stable_revision.is_some()
            && self
                .stable_or_new()
                .is_some_and(|rs| rs.available >= self.desired() && rs.replicas == self.desired());
        if mode != ScaleDown::Never && stable_up && workload.replicas > 0 {
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

    /// The stable revision's ReplicaSet, which may be the current one.
    fn stable_or_new(&self) -> Option<&super::RevisionState> {
        let stable = self.status.stable_revision.as_ref()?;
        self.new
            .filter(|n| &n.revision == stable)
            .or_else(|| self.old.iter().copied().find(|rs| &rs.revision == stable))
    }
}
