//! The blue-green state machine. The new revision comes up beside the stable
//! one as a preview; once it is available and its checks pass it is promoted:
//! scaled to full size, then the active Service switches to it in one write.
//! After the switch the old revision keeps every pod until the post-promotion
//! checks pass and the scale-down delay is over, so a failure can switch back
//! at once. The active Service only ever moves onto a revision with `replicas`
//! available pods.
//!
//! The stage is read once from status ([`Stage::of`]); a round then carries the
//! rollout as far as it can: preview, promoting, switched, promoted.
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::conditions::{self, PROGRESSING};
use super::deadline::Deadline;
use super::hooks::PostRollout;
use super::judgement::Judgement;
use super::reason::Reason;
use super::round::Round;
use super::{AnalysisSlot, Verdict};
use crate::api::{AnalysisPhase, BlueGreenStatus, BlueGreenStrategy, Phase, ReleaseStatus};

/// Where a blue-green rollout stands, as its status records it. `scaleDownAt`
/// is no stage: in any of them it is when revisions that no longer take
/// traffic scale down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    /// No rollout in flight: the current revision is the stable one, or the first.
    Steady,
    /// The current revision was rolled back or aborted (`failedRevision`): both
    /// Services are back on the stable revision.
    RolledBack,
    /// The new revision runs its preview pods beside the stable one, until they
    /// are available (`previewReadyAt`), checked, and promoted by the clock or a person.
    Preview,
    /// Promotion is decided (`promoting`): the new revision scales to full size
    /// before the active Service switches to it.
    Promoting,
    /// The active Service selects the new revision (`switchedAt`); the stable one
    /// keeps every pod until the post-promotion analysis passes.
    Switched,
}

impl Stage {
    /// The stage of `revision` in the round's status, once `begin` has adopted a
    /// stable revision and taken in retry and abort requests. A retry, like a
    /// new revision, starts from the preview.
    pub(super) fn of(status: &ReleaseStatus, revision: &str, retry: bool) -> Stage {
        if status.stable_revision.as_deref().is_none_or(|s| s == revision) {
            return Stage::Steady;
        }
        if status.failed_revision.is_some() {
            return Stage::RolledBack;
        }
        Stage::in_flight(status.blue_green.as_ref(), revision, retry)
    }

    /// What `blueGreen` status records about `revision`: nothing for another
    /// revision, or for a retry, which starts it afresh.
    pub(super) fn recorded<'s>(
        recorded: Option<&'s BlueGreenStatus>,
        revision: &str,
        retry: bool,
    ) -> Option<&'s BlueGreenStatus> {
        recorded.filter(|b| b.preview_revision.as_deref() == Some(revision) && !retry)
    }

    /// The stage of a rollout of `revision` in flight and not rolled back, as
    /// `blueGreen` status records it.
    pub(super) fn in_flight(recorded: Option<&BlueGreenStatus>, revision: &str, retry: bool) -> Stage {
        match Stage::recorded(recorded, revision, retry) {
            Some(b) if b.switched_at.is_some() => Stage::Switched,
            Some(b) if b.promoting => Stage::Promoting,
            _ => Stage::Preview,
        }
    }
}

/// Why a preview is not promoted yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hold {
    /// Fewer than the preview's pods are available.
    Pods,
    /// The pre-promotion analysis has not passed.
    Analysis,
    /// Ready and checked; autoPromotionSeconds are not over.
    Clock,
    /// Ready and checked; without auto-promotion a person promotes.
    Person,
}

/// The new revision's pods, as this round observes them.
#[derive(Clone, Copy, Debug)]
struct NewPods {
    /// How many the preview runs before promotion.
    preview: i32,
    /// The preview's pods are available.
    ready: bool,
    /// All `replicas` pods are available.
    full: bool,
}

impl Round<'_> {
    pub(super) fn decide_blue_green(&mut self, strategy: &BlueGreenStrategy, retry: bool) {
        if self.blocked_by_traffic() {
            return;
        }
        let stage = Stage::of(&self.status, &self.revision, retry);
        if stage == Stage::Steady {
            return self.blue_green_steady(strategy);
        }
        let stable = self.status.stable_revision.clone().unwrap_or_default();
        self.note_rollout_start(retry);
        let rolled_back_before = self.carry_blue_green(retry);
        if stage == Stage::RolledBack {
            let why = self.rollback_reason();
            return self.blue_green_abort(strategy, &stable, why, rolled_back_before);
        }
        match self.judge_analyses() {
            Judgement::Go => {}
            Judgement::Held => return,
            Judgement::Failed(cause) => {
                self.mark_failed(Reason::AnalysisFailed, cause);
                return self.blue_green_abort(strategy, &stable, Reason::AnalysisFailed, false);
            }
        }
        if self.spec.paused {
            // A promotion asked for now applies once the rollout resumes.
            let control = self.previous.control.clone().unwrap_or_default();
            self.keep_control = control.promote || control.promote_full;
            return self.paused();
        }
        self.resume_blue_green();
        let hold_point = stage == Stage::Switched && self.new_pods(strategy).full;
        match self.post_rollout(hold_point) {
            PostRollout::Failed(cause) => {
                self.mark_failed(Reason::PostRolloutHookFailed, cause);
                return self.blue_green_abort(strategy, &stable, Reason::PostRolloutHookFailed, false);
            }
            PostRollout::Decided => return,
            PostRollout::Passed | PostRollout::Pending => {}
        }
        self.blue_green_toward(strategy, &stable, stage);
    }

    /// Carries the recorded state of the current revision's rollout into status
    /// (none for a new revision or a retry). Returns whether the revision was
    /// rolled back before this round.
    fn carry_blue_green(&mut self, retry: bool) -> bool {
        let previous = self.previous.blue_green.clone().unwrap_or_default();
        let recorded = Stage::recorded(Some(&previous), &self.revision, retry)
            .cloned()
            .unwrap_or_default();
        // A revision already rolled back keeps the scale-down time it was given.
        let rolled_back_before = self.previous.failed_revision.as_ref() == Some(&self.revision) && !retry;
        self.status.blue_green = Some(BlueGreenStatus {
            active_revision: self.traffic.stable_service.clone(),
            preview_revision: Some(self.revision.clone()),
            scale_down_at: if rolled_back_before {
                previous.scale_down_at.clone()
            } else {
                previous.scale_down_at.clone().filter(|at| at.0 > self.now)
            },
            ..recorded
        });
        rolled_back_before
    }

    /// Resuming from spec.paused restarts the clocks: time paused counts toward
    /// neither autoPromotionSeconds nor the deadline.
    fn resume_blue_green(&mut self) {
        let resumed = conditions::get(&self.previous.conditions, PROGRESSING)
            .is_some_and(|c| c.reason == Reason::Paused.as_str());
        if !resumed {
            return;
        }
        self.event(
            false,
            Reason::Resumed,
            format!("Rollout of revision {} resumed", self.revision),
        );
        let stamp = Time(self.stamp());
        if let Some(state) = self.status.blue_green.as_mut() {
            state.preview_ready_at = state.preview_ready_at.as_ref().map(|_| stamp.clone());
            state.unavailable_since = None;
        }
    }

    /// The stages in flight, from `stage` on as far as this round gets: the
    /// promotion decision, the switch, the scaling and the deadline they share,
    /// and the conditions of the stage the round ends in.
    fn blue_green_toward(&mut self, strategy: &BlueGreenStrategy, stable: &str, stage: Stage) {
        let pods = self.new_pods(strategy);
        let mut state = self.status.blue_green.clone().unwrap_or_default();
        self.note_preview_ready(&mut state, pods);
        let decided = match stage {
            Stage::Preview => self.promote_preview(strategy, &mut state, pods),
            _ => Ok(()),
        };
        let stage = match (stage, decided) {
            (Stage::Preview, Ok(())) => Stage::Promoting,
            _ => stage,
        };
        // A promotion asked for before the preview is ready and checked waits for it.
        let control = self.previous.control.clone().unwrap_or_default();
        self.keep_control = (control.promote || control.promote_full) && stage == Stage::Preview;
        let (stage, selected) = self.switch_active(strategy, stable, &mut state, stage, pods);
        self.scale_blue_green(stable, &state, stage, pods, &selected);
        if self.blue_green_deadline(&mut state, stage, pods) == Deadline::Exceeded {
            return self.blue_green_abort(strategy, stable, Reason::ProgressDeadlineExceeded, false);
        }
        if let Some(due) = self.gate_analysis.and_then(|a| a.next_due) {
            self.requeue_at(due);
        }
        match (stage, decided) {
            (_, Err(hold)) => self.preview_conditions(hold, pods),
            (Stage::Switched, _) => self.after_switch(strategy, stable, &state, pods),
            _ => self.promoting_conditions(),
        }
    }

    fn new_pods(&self, strategy: &BlueGreenStrategy) -> NewPods {
        let desired = self.desired();
        let preview = strategy.preview_replica_count.unwrap_or(desired).clamp(0, desired);
        let new = self.new.filter(|n| n.synced);
        NewPods {
            preview,
            ready: new.is_some_and(|n| n.replicas >= preview && n.available >= preview),
            full: new.is_some_and(|n| n.replicas == desired && n.available >= desired),
        }
    }

    /// Records when the preview first ran its pods, available.
    fn note_preview_ready(&mut self, state: &mut BlueGreenStatus, pods: NewPods) {
        if pods.ready && state.preview_ready_at.is_none() {
            state.preview_ready_at = Some(Time(self.stamp()));
            self.event(
                false,
                Reason::PreviewReady,
                format!("Preview of revision {}: {} pods available", self.revision, pods.preview),
            );
        }
    }

    /// Preview: once the preview is ready and checked, the clock or a person
    /// promotes it. Ok once promoting; otherwise why not yet.
    fn promote_preview(
        &mut self,
        strategy: &BlueGreenStrategy,
        state: &mut BlueGreenStatus,
        pods: NewPods,
    ) -> Result<(), Hold> {
        if !pods.ready {
            return Err(Hold::Pods);
        }
        let control = self.previous.control.clone().unwrap_or_default();
        let checked = strategy.pre_promotion_analysis.is_none()
            || control.promote_full
            || self.gate_passed(AnalysisSlot::PrePromotion)
            || state
                .pre_promotion_analysis
                .as_ref()
                .is_some_and(|a| a.phase == AnalysisPhase::Successful);
        if !checked {
            return Err(Hold::Analysis);
        }
        let wait = Duration::from_secs(strategy.auto_promotion_seconds.unwrap_or(0).max(0) as u64);
        let ready_for = state
            .preview_ready_at
            .as_ref()
            .map_or(Duration::ZERO, |t| self.elapsed_since(t.0));
        let by_clock = strategy.auto_promotion_enabled && ready_for >= wait;
        let by_person = control.promote || control.promote_full;
        if by_clock || by_person {
            state.promoting = true;
            let how = if by_person { "as requested" } else { "automatically" };
            let note = format!(
                "Promoting revision {} {how}: scaling to {} before the switch",
                self.revision,
                self.desired()
            );
            self.event(false, Reason::Promoting, note);
            return Ok(());
        }
        if strategy.auto_promotion_enabled {
            self.requeue_at(wait - ready_for);
            return Err(Hold::Clock);
        }
        Err(Hold::Person)
    }

    /// Points the active Service at the new revision once it is switched, or
    /// promoting with every pod available (then it is switched from now on), and
    /// the preview Service at the new revision once it has a pod. Returns the
    /// stage and the revisions the Services select after this round.
    fn switch_active(
        &mut self,
        strategy: &BlueGreenStrategy,
        stable: &str,
        state: &mut BlueGreenStatus,
        stage: Stage,
        pods: NewPods,
    ) -> (Stage, Vec<String>) {
        let switch_now = stage == Stage::Promoting && pods.full;
        let active = if stage == Stage::Switched || switch_now {
            self.revision.clone()
        } else {
            stable.to_string()
        };
        let preview = if self.available_pods(&self.revision) > 0 {
            self.revision.clone()
        } else {
            stable.to_string()
        };
        let selected = self.point_services(strategy, &active, &preview);
        state.active_revision = selected.first().cloned();
        if !(switch_now && selected.first() == Some(&self.revision)) {
            return (stage, selected);
        }
        state.switched_at = Some(Time(self.stamp()));
        let note = format!(
            "Active Service {} switched to revision {}",
            strategy.active_service, self.revision
        );
        self.event(false, Reason::Switched, note);
        (Stage::Switched, selected)
    }

    /// The new revision runs the preview, or every pod once promoting; the
    /// stable one keeps every pod until the new one is stable; superseded
    /// revisions scale down once no longer draining.
    fn scale_blue_green(
        &mut self,
        stable: &str,
        state: &BlueGreenStatus,
        stage: Stage,
        pods: NewPods,
        selected: &[String],
    ) {
        let desired = self.desired();
        let new_pods = if stage == Stage::Preview { pods.preview } else { desired };
        if self.synced {
            self.scale_guarded(self.new.map(|n| n.name.as_str()), new_pods, selected);
            let draining = state.scale_down_at.is_some();
            for rs in self.old.clone() {
                if rs.revision == stable {
                    self.scale(rs, desired);
                } else if !draining {
                    self.scale_guarded(Some(&rs.name), 0, selected);
                }
            }
        }
        if let Some(at) = &state.scale_down_at {
            self.requeue_at(self.until(at.0));
        }
    }

    /// The progress deadline counts from when the new revision last lacked the
    /// pods of its stage; writes the state into status.
    fn blue_green_deadline(&mut self, state: &mut BlueGreenStatus, stage: Stage, pods: NewPods) -> Deadline {
        let pending = !(if stage == Stage::Preview { pods.ready } else { pods.full });
        let since = state.unavailable_since.as_ref().map_or(self.stamp(), |t| t.0);
        state.unavailable_since = pending.then_some(Time(since));
        self.status.blue_green = Some(state.clone());
        self.check_deadline(pending.then(|| self.elapsed_since(since)))
    }

    /// Switched: the new revision is stable once the post-promotion analysis passes.
    fn after_switch(&mut self, strategy: &BlueGreenStrategy, stable: &str, state: &BlueGreenStatus, pods: NewPods) {
        let checked = strategy.post_promotion_analysis.is_none() || self.gate_passed(AnalysisSlot::PostPromotion);
        let hook_pending = self.post_rollout_pending();
        if checked && pods.full && !hook_pending {
            return self.blue_green_promoted(strategy, state);
        }
        if checked && pods.full {
            return self.post_rollout_conditions();
        }
        let message = format!(
            "Revision {} is active; revision {stable} stands by until the post-promotion analysis passes",
            self.revision
        );
        self.set_conditions(Phase::Progressing, Reason::PostPromotionAnalysis, message, true, None);
    }

    fn promoting_conditions(&mut self) {
        let available = self.available_pods(&self.revision);
        let message = format!(
            "Promoting revision {}: {available} of {} pods available before the switch",
            self.revision,
            self.desired()
        );
        self.set_conditions(Phase::Progressing, Reason::Promoting, message, true, None);
    }

    /// A preview not promoted yet, and why; paused while it waits for a person.
    fn preview_conditions(&mut self, hold: Hold, pods: NewPods) {
        let revision = &self.revision;
        let (phase, why, message) = match hold {
            Hold::Pods => {
                let available = self.available_pods(revision);
                let message = format!(
                    "Preview of revision {revision}: {available} of {} pods available",
                    pods.preview
                );
                (Phase::Progressing, Reason::Preview, message)
            }
            Hold::Analysis => (
                Phase::Progressing,
                Reason::WaitingForAnalysis,
                format!("Preview of revision {revision} is ready; waiting for the pre-promotion analysis"),
            ),
            Hold::Person => (
                Phase::Paused,
                Reason::AwaitingPromotion,
                format!("Preview of revision {revision} is ready and checked; promote to switch"),
            ),
            Hold::Clock => (
                Phase::Progressing,
                Reason::Preview,
                format!("Preview of revision {revision} is ready; switching automatically"),
            ),
        };
        if phase == Phase::Paused && self.previous.phase != Some(Phase::Paused) {
            self.event(false, Reason::AwaitingPromotion, message.clone());
        }
        self.set_conditions(phase, why, message, true, None);
    }

    /// Points the active and the preview Service (if any) at revisions, the
    /// active one only onto a revision with every pod available. Returns the
    /// revisions they select after this round, the active one first.
    fn point_services(&mut self, strategy: &BlueGreenStrategy, active: &String, preview: &String) -> Vec<String> {
        let traffic = self.traffic;
        let desired = self.desired();
        self.switch_services([
            (
                Some(strategy.active_service.as_str()),
                &traffic.stable_service,
                active,
                desired,
            ),
            (strategy.preview_service.as_deref(), &traffic.canary_service, preview, 1),
        ])
    }

    /// This round's gate analysis for `slot` passed.
    fn gate_passed(&self, slot: AnalysisSlot) -> bool {
        self.gate_analysis
            .is_some_and(|a| a.slot == slot && a.verdict == Verdict::Successful)
    }

    /// The switched revision passed its checks: it is stable, and the old one
    /// drains until the scale-down delay after the switch is over.
    fn blue_green_promoted(&mut self, strategy: &BlueGreenStrategy, state: &BlueGreenStatus) {
        self.promote();
        let delay = Duration::from_secs(strategy.scale_down_delay_seconds.max(0) as u64);
        let switched_at = state.switched_at.as_ref().map_or(self.now, |t| t.0);
        let drain_end = switched_at.checked_add(delay).unwrap_or(self.now);
        let scale_down_at =
            (drain_end > self.now && self.old.iter().any(|rs| rs.replicas > 0)).then_some(Time(drain_end));
        if let Some(at) = &scale_down_at {
            self.requeue_at(self.until(at.0));
        }
        self.status.blue_green = Some(BlueGreenStatus {
            active_revision: Some(self.revision.clone()),
            scale_down_at: scale_down_at.clone(),
            pre_promotion_analysis: state.pre_promotion_analysis.clone(),
            post_promotion_analysis: state.post_promotion_analysis.clone(),
            ..Default::default()
        });
        if scale_down_at.is_none() && self.synced {
            for rs in self.old.clone() {
                self.scale(rs, 0);
            }
        }
        self.healthy(scale_down_at.as_ref());
    }

    /// Failure or abort: the active and preview Services go back to the stable
    /// revision at once; the failed revision scales down after the abort delay.
    fn blue_green_abort(&mut self, strategy: &BlueGreenStrategy, stable: &str, why: Reason, before: bool) {
        let desired = self.desired();
        let mut state = self.status.blue_green.clone().unwrap_or_default();
        if !before {
            let delay = Duration::from_secs(strategy.abort_scale_down_delay_seconds.max(0) as u64);
            state.scale_down_at = Some(Time(self.stamp().checked_add(delay).unwrap_or(self.now)));
        }
        state.promoting = false;
        state.switched_at = None;
        state.unavailable_since = None;
        let stable_owned = stable.to_string();
        let selected = self.point_services(strategy, &stable_owned, &stable_owned);
        state.active_revision = selected.first().cloned();
        let scale_down_at = state.scale_down_at.clone();
        self.status.blue_green = Some(state);
        if self.synced {
            if let Some(rs) = self.stable() {
                self.scale(rs, desired.max(rs.replicas));
            }
            let due = scale_down_at.as_ref().is_none_or(|at| at.0 <= self.now);
            if due {
                let others: Vec<_> = self
                    .new
                    .into_iter()
                    .chain(self.old.iter().copied())
                    .filter(|rs| rs.revision != stable)
                    .map(|rs| rs.name.clone())
                    .collect();
                for name in others {
                    self.scale_guarded(Some(&name), 0, &selected);
                }
            } else if let Some(at) = &scale_down_at {
                self.requeue_at(self.until(at.0));
            }
        }
        let cause = self.rollback_cause(why);
        let standby = match &scale_down_at {
            Some(at) if at.0 > self.now => format!("; it scales down at {}", at.0),
            _ => String::new(),
        };
        let message = format!(
            "Rolled back revision {} ({why}: {cause}); the active Service is back on revision {stable}{standby}. \
             Change the template, or retry, to roll out again",
            self.revision
        );
        self.set_conditions(Phase::Degraded, why, message, false, Some(why));
    }

    /// No rollout in flight: the current revision runs every pod and both
    /// Services select it; older revisions scale down once their drain is over.
    fn blue_green_steady(&mut self, strategy: &BlueGreenStrategy) {
        let previous = self.previous.blue_green.clone().unwrap_or_default();
        let scale_down_at = previous.scale_down_at.clone().filter(|at| at.0 > self.now);
        let current = self.revision.clone();
        let selected = self.point_services(strategy, &current, &current);
        self.status.blue_green = Some(BlueGreenStatus {
            active_revision: selected.first().cloned(),
            scale_down_at: scale_down_at.clone(),
            pre_promotion_analysis: previous.pre_promotion_analysis,
            post_promotion_analysis: previous.post_promotion_analysis,
            ..Default::default()
        });
        self.settle_on_current(&selected, scale_down_at.as_ref(), Reason::Preview);
    }
}
