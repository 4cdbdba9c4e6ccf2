//! The rolling strategy: the new revision replaces the old ones a few pods at
//! a time, within maxSurge and maxUnavailable, like a Deployment's RollingUpdate.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::deadline::Deadline;
use super::judgement::Judgement;
use super::reason::Reason;
use super::round::Round;
use super::surge::{self, Pods, RollingInput};
use crate::api::Phase;

impl Round<'_> {
    pub(super) fn decide_rolling(&mut self, (max_surge, max_unavailable): (i32, i32)) {
        let retry = self.begin();
        if self.status.failed_revision.is_some() {
            return self.roll_back(self.rollback_reason());
        }
        match self.judge_analyses() {
            Judgement::Go => {}
            Judgement::Held => return,
            Judgement::Failed(cause) => return self.start_roll_back(Reason::AnalysisFailed, cause),
        }
        if self.complete() {
            return self.completed();
        }
        let rollout = self.status.stable_revision.as_ref() != Some(&self.revision);
        if self.spec.paused && rollout {
            return self.paused();
        }
        // Progress deadline: the new revision must be available within it, counted
        // from the start (or resumption, or retry) of this rollout.
        let started = match &self.previous.rollout_start_time {
            Some(t) if self.previous.current_revision.as_ref() == Some(&self.revision) && !retry => t.0,
            _ => self.now,
        };
        if rollout {
            self.status.rollout_start_time = Some(Time(started));
        }
        let pending = rollout && !self.new_available();
        let deadline = self.check_deadline(pending.then(|| self.now.duration_since(started).unsigned_abs()));
        if deadline == Deadline::Exceeded {
            return self.roll_back(Reason::ProgressDeadlineExceeded);
        }
        if let Some(due) = self.analysis.and_then(|a| a.next_due) {
            self.requeue_at(due);
        }
        self.roll(max_surge, max_unavailable);
        self.rolling_conditions(deadline == Deadline::Stranded);
    }

    /// Where the rollout stands; `stranded`: past the deadline with nothing to roll back to.
    fn rolling_conditions(&mut self, stranded: bool) {
        if stranded {
            // First revision: there is nothing to roll back to.
            let message = format!(
                "Revision {} was not available within progressDeadlineSeconds ({}s) and there is no stable revision to roll back to",
                self.revision,
                self.progress_deadline().as_secs()
            );
            let why = Reason::ProgressDeadlineExceeded;
            self.set_conditions(Phase::Degraded, why, message, true, Some(why));
        } else if self.new_available() && !self.analysis_passed() {
            let message = format!(
                "Revision {}: all {} replicas available; waiting for analysis to pass",
                self.revision,
                self.desired()
            );
            self.set_conditions(Phase::Progressing, Reason::WaitingForAnalysis, message, true, None);
        } else {
            let (updated, available) = self.new.map_or((0, 0), |n| (n.replicas, n.available));
            let old: i32 = self.old.iter().map(|rs| rs.replicas).sum();
            let message = format!(
                "Rolling out revision {}: {available} of {} updated replicas available, {old} old replicas remain",
                self.revision,
                self.desired().max(updated)
            );
            self.set_conditions(Phase::Progressing, Reason::RollingUpdate, message, true, None);
        }
    }

    /// One rolling step, within maxSurge and maxUnavailable.
    pub(super) fn roll(&mut self, max_surge: i32, max_unavailable: i32) {
        if self.previous.phase == Some(Phase::Paused) {
            self.event(
                false,
                Reason::Resumed,
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
            old_floor: 0,
        };
        let output = surge::step(&input);
        self.scale_new(output.new_replicas);
        let old = self.old.clone();
        for (rs, replicas) in old.into_iter().zip(output.old_replicas) {
            self.scale(rs, replicas);
        }
    }
}
