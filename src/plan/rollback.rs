//! Rolling back: marking the current revision failed, restoring the stable
//! one, and saying why.
use super::RevisionState;
use super::conditions::{self, DEGRADED};
use super::reason::Reason;
use super::round::Round;
use super::surge::{self, Pods, RollingInput};
use crate::api::{AnalysisPhase, HookKind, Phase};

impl Round<'_> {
    /// Marks the current revision failed: it is not tried again until the
    /// template changes or a person retries.
    pub(super) fn mark_failed(&mut self, why: Reason, cause: String) {
        self.status.failed_revision = Some(self.revision.clone());
        let stable = self.status.stable_revision.as_deref().unwrap_or_default();
        let note = format!(
            "Revision {} {why}: {cause}; rolling back to revision {stable}",
            self.revision
        );
        self.event(true, Reason::RolledBack, note);
    }

    pub(super) fn rollback_reason(&self) -> Reason {
        if self.aborted_now {
            return Reason::Aborted;
        }
        if let Some(why) = self.failed_now {
            return why;
        }
        // Keep the reason recorded when the rollback started.
        const ROLLBACK_REASONS: [Reason; 5] = [
            Reason::ProgressDeadlineExceeded,
            Reason::AnalysisFailed,
            Reason::Aborted,
            Reason::PreRolloutHookFailed,
            Reason::PostRolloutHookFailed,
        ];
        conditions::get(&self.previous.conditions, DEGRADED)
            .filter(|c| c.status == "True")
            .and_then(|c| ROLLBACK_REASONS.into_iter().find(|r| *r == c.reason))
            .unwrap_or(Reason::ProgressDeadlineExceeded)
    }

    /// Rolling: back to the stable revision as a rolling update is, within
    /// maxSurge and maxUnavailable; the failed revision's pods go first.
    pub(super) fn roll_back_within(&mut self, why: Reason, (max_surge, max_unavailable): (i32, i32)) {
        let Some(stable) = self.stable() else {
            return self.roll_back(why);
        };
        if self.synced {
            let others: Vec<_> = self
                .new
                .into_iter()
                .chain(self.old.iter().copied().filter(|rs| *rs != stable))
                .collect();
            let pods = |rs: &RevisionState| Pods {
                replicas: rs.replicas,
                available: rs.available,
            };
            let output = surge::step(&RollingInput {
                desired: self.desired(),
                max_surge,
                max_unavailable,
                new: pods(stable),
                old: others.iter().map(|rs| pods(rs)).collect(),
                old_floor: 0,
            });
            self.scale(stable, output.new_replicas);
            for (rs, replicas) in others.into_iter().zip(output.old_replicas) {
                self.scale(rs, replicas);
            }
        }
        self.rolled_back_conditions(why);
    }

    /// Restore the stable revision to full size first, then scale everything else to 0.
    pub(super) fn roll_back(&mut self, why: Reason) {
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
        self.rolled_back_conditions(why);
    }

    fn rolled_back_conditions(&mut self, why: Reason) {
        let desired = self.desired();
        let stable_available = self.stable().is_some_and(|s| s.available >= desired);
        let to = self.status.stable_revision.clone().unwrap_or_default();
        let state = if stable_available {
            format!("revision {to} has all {desired} replicas available")
        } else {
            format!("restoring revision {to} to {desired} available replicas")
        };
        let cause = self.rollback_cause(why);
        let message = format!(
            "Rolled back revision {} ({why}: {cause}); {state}. Change the template, or retry, to roll out again",
            self.revision
        );
        self.set_conditions(Phase::Degraded, why, message, false, Some(why));
    }

    /// What made the rollout roll back, for its message.
    pub(super) fn rollback_cause(&self, why: Reason) -> String {
        let blue_green = self.status.blue_green.as_ref();
        let gates = [
            self.status.canary.as_ref().and_then(|c| c.step_analysis.as_ref()),
            blue_green.and_then(|b| b.pre_promotion_analysis.as_ref()),
            blue_green.and_then(|b| b.post_promotion_analysis.as_ref()),
        ];
        match why {
            Reason::AnalysisFailed => std::iter::once(self.status.analysis.as_ref())
                .chain(gates)
                .flatten()
                .find(|a| a.phase == AnalysisPhase::Failed)
                .and_then(|a| a.message.clone())
                .unwrap_or_else(|| "analysis failed".into()),
            Reason::Aborted => "aborted by request".into(),
            Reason::PreRolloutHookFailed | Reason::PostRolloutHookFailed => {
                let kind = if why == Reason::PreRolloutHookFailed {
                    HookKind::PreRollout
                } else {
                    HookKind::PostRollout
                };
                let message = self.hook_status(kind).and_then(|a| a.message.clone());
                format!(
                    "the {} hook failed: {}",
                    kind.field(),
                    message.unwrap_or_else(|| "no message".into())
                )
            }
            _ => format!(
                "not available within progressDeadlineSeconds ({}s)",
                self.spec.progress_deadline_seconds
            ),
        }
    }
}
