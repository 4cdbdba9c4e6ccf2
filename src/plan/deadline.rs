//! The progress deadline: what a rollout waits for must become available within
//! `spec.progressDeadlineSeconds`, or the rollout rolls back. Each strategy says
//! how long it has been waiting; the judgement is the same for all three.
use std::time::Duration;

use super::reason::Reason;
use super::round::Round;

/// What the progress deadline says about this round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Deadline {
    /// Nothing is pending, or it is within the deadline and the round looks
    /// again when the deadline falls due.
    Met,
    /// Past the deadline: the current revision is marked failed, and the
    /// strategy rolls back to the stable revision.
    Exceeded,
    /// Past the deadline, with no stable ReplicaSet to roll back to.
    Stranded,
}

impl Round<'_> {
    /// `spec.progressDeadlineSeconds`.
    pub(super) fn progress_deadline(&self) -> Duration {
        Duration::from_secs(self.spec.progress_deadline_seconds.max(0) as u64)
    }

    /// Judges what has been pending for `pending_for` (None: nothing is) against
    /// the progress deadline.
    pub(super) fn check_deadline(&mut self, pending_for: Option<Duration>) -> Deadline {
        let Some(elapsed) = pending_for else {
            return Deadline::Met;
        };
        let deadline = self.progress_deadline();
        if elapsed < deadline {
            self.requeue_at(deadline - elapsed);
            return Deadline::Met;
        }
        if self.stable().is_none() {
            return Deadline::Stranded;
        }
        let cause = format!("not available within progressDeadlineSeconds ({}s)", deadline.as_secs());
        self.mark_failed(Reason::ProgressDeadlineExceeded, cause);
        Deadline::Exceeded
    }
}
