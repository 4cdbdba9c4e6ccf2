//! The rolling strategy: the new revision replaces the old ones a few pods at
//! a time, within maxSurge and maxUnavailable, like a Deployment's RollingUpdate.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::deadline::Deadline;
use super::hooks::PostRollout;
use super::judgement::Judgement;
use super::reason::Reason;
use super::round::Round;
use super::surge::{self, Pods, RollingInput};
use crate::api::Phase;

impl Round<'_> {
    pub(super) fn decide_rolling(&mut self, (max_surge, max_unavailable): (i32, i32), retry: bool) {
        if self.status.failed_revision.is_some() {
            return self.roll_back_within(self.rollback_reason(), (max_surge, max_unavailable));
        }
        match self.judge_analyses() {
            Judgement::Go => {}
            Judgement::Held => return,
            Judgement::Failed(cause) => {
                self.mark_failed(Reason::AnalysisFailed, cause);
                return self.roll_back_within(Reason::AnalysisFailed, (max_surge, max_unavailable));
            }
        }
        let post = self.post_rollout(self.synced && self.new_available() && self.analysis_passed());
        match &post {
            PostRollout::Failed(cause) => {
                self.mark_failed(Reason::PostRolloutHookFailed, cause.clone());
                return self.roll_back_within(Reason::PostRolloutHookFailed, (max_surge, max_unavailable));
            }
            PostRollout::Decided => return,
            PostRollout::Passed | PostRollout::Pending => {}
        }
        let post_pending = post == PostRollout::Pending;
        if self.complete() && !post_pending {
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
            return self.roll_back_within(Reason::ProgressDeadlineExceeded, (max_surge, max_unavailable));
        }
        if let Some(due) = self.analysis.and_then(|a| a.next_due) {
            self.requeue_at(due);
        }
        // The previous revision keeps its last pod for the postRollout hook,
        // within maxSurge: with maxSurge 0 the new revision needs its room.
        let hold_last = post_pending && max_surge > 0;
        self.roll(max_surge, max_unavailable, hold_last);
        if post_pending && self.new_available() && self.analysis_passed() {
            return self.post_rollout_conditions();
        }
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

    /// One rolling step, within maxSurge and maxUnavailable; `hold_last`
    /// keeps one pod of the old revisions, if they still have one.
    pub(super) fn roll(&mut self, max_surge: i32, max_unavailable: i32, hold_last: bool) {
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
        let mut output = surge::step(&input);
        if hold_last {
            hold_last_pod(&input.old, &mut output.old_replicas);
        }
        self.scale_new(output.new_replicas);
        let old = self.old.clone();
        for (rs, replicas) in old.into_iter().zip(output.old_replicas) {
            self.scale(rs, replicas);
        }
    }
}

/// Keeps one pod of the old ReplicaSets when a step would take their last:
/// on the newest one that has a pod now.
pub(super) fn hold_last_pod(old: &[Pods], planned: &mut [i32]) {
    if planned.iter().any(|r| *r > 0) {
        return;
    }
    let newest_running = old.iter().rposition(|rs| rs.replicas > 0);
    if let Some(at) = newest_running
        && let Some(replicas) = planned.get_mut(at)
    {
        *replicas = 1;
    }
}
