//! Lifecycle hooks in a round. A hook starts when the plan records it in
//! `status.hooks` (Running, for the current revision); the controller then
//! measures it like any analysis until it passes or fails. Recording first
//! keeps the decision of *when* here, where the ReplicaSets are seen.
//!
//! - `preRollout` holds the revision before its ReplicaSet exists: no pod,
//!   no traffic. It runs for every new revision, the first one too.
//! - `postRollout` runs when a strategy reaches the point where the new
//!   revision has every pod and all traffic and the previous one still runs
//!   ([`Round::post_rollout`]); it runs only when there is a previous one.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::reason::Reason;
use super::revision::revision_of;
use super::round::{INVALID_RECHECK, Round};
use super::{AnalysisInput, AnalysisSlot, RevisionState, Verdict};
use crate::api::{AnalysisPhase, AnalysisStatus, HookKind, HooksStatus, Phase, Release};

/// The current revision has a preRollout hook and no ReplicaSet yet: only
/// that hook is measured (no analysis of a revision without pods).
pub fn pre_rollout_pending(release: &Release, replica_sets: &[RevisionState]) -> bool {
    let hooked = release.spec.hooks.as_ref().is_some_and(|h| h.pre_rollout.is_some());
    let revision = revision_of(&release.spec.template);
    hooked && !replica_sets.iter().any(|rs| rs.revision == revision)
}

/// What the postRollout hook means for a strategy's round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum PostRollout {
    /// No hook, no previous revision, or the hook passed: carry on.
    Passed,
    /// Not passed yet (not started, or running): do not finish the rollout.
    Pending,
    /// Held with its conditions set (invalid or inconclusive): nothing moves.
    Decided,
    /// It failed with this message: roll back.
    Failed(String),
}

impl Round<'_> {
    /// The preRollout hook: true when it holds the round (running, waiting,
    /// or failed with nothing to roll back to), with the conditions set.
    pub(super) fn pre_rollout_holds(&mut self) -> bool {
        let kind = HookKind::PreRollout;
        if self.hook_spec(kind).is_none() {
            return false;
        }
        if self.new.is_some() {
            // A revision whose ReplicaSet exists ran its hook, or predates
            // it. A result read back after a crash between the ReplicaSet
            // and the status write is still recorded.
            if let Some(input) = self.hook.filter(|h| h.slot == AnalysisSlot::Hook(kind)) {
                self.record_hook(kind, input.status.clone());
            }
            return false;
        }
        if self.status.failed_revision.is_some() {
            if self.stable().is_some() {
                return false; // The strategy rolls back; nothing of this revision runs.
            }
            let why = self.rollback_reason();
            let message = format!(
                "Revision {} {why}: {}; there is no previous revision. Change the template, or retry, to roll out again",
                self.revision,
                self.rollback_cause(why)
            );
            self.set_conditions(Phase::Degraded, why, message, false, Some(why));
            return true;
        }
        if self.spec.paused {
            self.paused();
            return true;
        }
        match self.hook_round(kind) {
            HookRound::Passed => false,
            HookRound::Failed(cause) => {
                self.fail_hook(Reason::PreRolloutHookFailed, cause);
                self.pre_rollout_holds()
            }
            HookRound::Running => {
                let message = format!(
                    "Running the preRollout hook of revision {} before it gets any pod",
                    self.revision
                );
                self.set_conditions(Phase::Progressing, Reason::PreRolloutHook, message, true, None);
                true
            }
            HookRound::Decided => true,
        }
    }

    /// The postRollout hook, for a strategy at `at_hold_point`: the new
    /// revision has every pod available and all traffic, and the previous one
    /// has not scaled away.
    pub(super) fn post_rollout(&mut self, at_hold_point: bool) -> PostRollout {
        let kind = HookKind::PostRollout;
        if self.hook_spec(kind).is_none() || !self.has_previous() {
            return PostRollout::Passed;
        }
        let recorded = self.hook_status(kind).map(|a| a.phase);
        if recorded.is_none() && !at_hold_point {
            return PostRollout::Pending;
        }
        match self.hook_round(kind) {
            HookRound::Passed => PostRollout::Passed,
            HookRound::Running => PostRollout::Pending,
            HookRound::Decided => PostRollout::Decided,
            HookRound::Failed(cause) => {
                self.failed_now = Some(Reason::PostRolloutHookFailed);
                PostRollout::Failed(cause)
            }
        }
    }

    /// The postRollout hook is configured, there is a previous revision, and
    /// it has not passed for the current one.
    pub(super) fn post_rollout_pending(&self) -> bool {
        let kind = HookKind::PostRollout;
        self.hook_spec(kind).is_some()
            && self.has_previous()
            && self
                .hook_status(kind)
                .is_none_or(|a| a.phase != AnalysisPhase::Successful)
    }

    /// A stable revision other than the current one: where a failed
    /// postRollout hook goes back to.
    fn has_previous(&self) -> bool {
        self.status
            .stable_revision
            .as_ref()
            .is_some_and(|s| *s != self.revision)
    }

    /// The conditions of a round held for the postRollout hook.
    pub(super) fn post_rollout_conditions(&mut self) {
        let stable = self.status.stable_revision.clone().unwrap_or_default();
        let message = format!(
            "Revision {} has all {} replicas available and all traffic; revision {stable} stands by until the postRollout hook passes",
            self.revision,
            self.desired()
        );
        self.set_conditions(Phase::Progressing, Reason::PostRolloutHook, message, true, None);
    }

    fn hook_spec(&self, kind: HookKind) -> Option<&crate::api::Hook> {
        kind.spec(self.spec.hooks.as_ref()?)
    }

    /// The hook's status for the current revision, as carried into this round.
    pub(super) fn hook_status(&self, kind: HookKind) -> Option<&AnalysisStatus> {
        kind.status(self.status.hooks.as_ref()?)
    }

    fn record_hook(&mut self, kind: HookKind, status: AnalysisStatus) {
        let hooks = self.status.hooks.get_or_insert_with(HooksStatus::default);
        *kind.status_mut(hooks) = Some(status);
    }

    /// Where the hook stands after this round: started now when nothing is
    /// recorded, else as this round's measurement (or the record) says.
    fn hook_round(&mut self, kind: HookKind) -> HookRound {
        let input = self
            .hook
            .filter(|h| h.slot == AnalysisSlot::Hook(kind) && h.status.revision == self.revision);
        let Some(input) = input else {
            return match self.hook_status(kind).map(|a| (a.phase, a.message.clone())) {
                Some((AnalysisPhase::Successful, _)) => HookRound::Passed,
                Some((AnalysisPhase::Failed, message)) => HookRound::Failed(message.unwrap_or_default()),
                Some((AnalysisPhase::Inconclusive, message)) => {
                    self.inconclusive(message.unwrap_or_default());
                    HookRound::Decided
                }
                Some((AnalysisPhase::Running, _)) => HookRound::Running,
                None => {
                    self.start_hook(kind);
                    HookRound::Running
                }
            };
        };
        self.hook_events(kind, input);
        self.record_hook(kind, input.status.clone());
        if let Some(due) = input.next_due {
            self.requeue_at(due);
        }
        match &input.verdict {
            Verdict::Running => HookRound::Running,
            Verdict::Successful => HookRound::Passed,
            Verdict::Failed(message) => HookRound::Failed(message.clone()),
            Verdict::Inconclusive(message) => {
                self.inconclusive(message.clone());
                HookRound::Decided
            }
            Verdict::Invalid(message) => {
                self.requeue_at(INVALID_RECHECK);
                self.invalid(message.clone());
                HookRound::Decided
            }
        }
    }

    /// Records the hook as started; the controller runs it from the next round.
    fn start_hook(&mut self, kind: HookKind) {
        let why = match kind {
            HookKind::PreRollout => Reason::PreRolloutHook,
            HookKind::PostRollout => Reason::PostRolloutHook,
        };
        let note = format!("Starting the {} hook of revision {}", kind.field(), self.revision);
        self.event(false, why, note);
        let status = AnalysisStatus {
            revision: self.revision.clone(),
            step: None,
            phase: AnalysisPhase::Running,
            message: None,
            started_at: Time(self.stamp()),
            metrics: Vec::new(),
        };
        self.record_hook(kind, status);
    }

    fn hook_events(&mut self, kind: HookKind, input: &AnalysisInput) {
        let before = self.previous.hooks.as_ref().and_then(|h| kind.status(h));
        self.measurement_events_since(input, before);
        let passed_before = before.is_some_and(|b| b.revision == self.revision && b.phase == AnalysisPhase::Successful);
        if input.verdict == Verdict::Successful && !passed_before {
            let note = format!("The {} hook of revision {} passed", kind.field(), self.revision);
            self.event(false, Reason::HookSucceeded, note);
        }
    }

    /// Marks the current revision failed by a hook.
    fn fail_hook(&mut self, why: Reason, cause: String) {
        self.failed_now = Some(why);
        self.mark_failed(why, cause);
    }
}

/// A hook after this round.
enum HookRound {
    Passed,
    Running,
    /// Conditions set: held (invalid, inconclusive).
    Decided,
    Failed(String),
}
