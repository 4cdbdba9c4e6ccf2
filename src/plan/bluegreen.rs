//! The blue-green state machine. The new revision comes up beside the stable
//! one as a preview; once it is available and its checks pass it is promoted:
//! scaled to full size, then the active Service switches to it in one write.
//! After the switch the old revision keeps every pod until the post-promotion
//! checks pass and the scale-down delay is over, so a failure can switch back
//! at once. The active Service only ever moves onto a revision with `replicas`
//! available pods.
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::conditions::{self, PROGRESSING};
use super::deadline::Deadline;
use super::judgement::Judgement;
use super::reason;
use super::round::{INVALID_RECHECK, Round};
use super::{AnalysisSlot, Verdict};
use crate::api::{BlueGreenStatus, BlueGreenStrategy, Phase};

impl Round<'_> {
    pub(super) fn decide_blue_green(&mut self, strategy: &BlueGreenStrategy) {
        let retry = self.begin();
        if let Some(problem) = self.traffic.problem.clone() {
            // The Service watch wakes the controller when it appears; look again anyway.
            self.requeue_at(INVALID_RECHECK);
            return self.invalid(problem);
        }
        let stable = self.status.stable_revision.clone();
        let Some(stable) = stable.filter(|s| *s != self.revision) else {
            return self.blue_green_steady(strategy);
        };
        self.note_rollout_start(retry);
        let previous = self.previous.blue_green.clone().unwrap_or_default();
        let recorded = Some(&previous)
            .filter(|b| b.preview_revision.as_ref() == Some(&self.revision) && !retry)
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

        if self.status.failed_revision.is_some() {
            let why = self.rollback_reason();
            return self.blue_green_abort(strategy, &stable, why, rolled_back_before);
        }
        match self.judge_analyses() {
            Judgement::Go => {}
            Judgement::Held => return,
            Judgement::Failed(cause) => {
                self.mark_failed(reason::ANALYSIS_FAILED, cause);
                return self.blue_green_abort(strategy, &stable, reason::ANALYSIS_FAILED, false);
            }
        }
        let control = self.previous.control.clone().unwrap_or_default();
        if self.spec.paused {
            // A promotion asked for now applies once the rollout resumes.
            self.keep_control = control.promote || control.promote_full;
            return self.paused();
        }
        // Resuming restarts the clocks: time paused counts toward neither
        // autoPromotionSeconds nor the deadline.
        let resumed =
            conditions::get(&self.previous.conditions, PROGRESSING).is_some_and(|c| c.reason == reason::PAUSED);
        if resumed {
            self.event(
                false,
                "Resumed",
                format!("Rollout of revision {} resumed", self.revision),
            );
            let stamp = Time(self.stamp());
            if let Some(state) = self.status.blue_green.as_mut() {
                state.preview_ready_at = state.preview_ready_at.as_ref().map(|_| stamp.clone());
                state.unavailable_since = None;
            }
        }
        self.blue_green_toward(strategy, &stable);
    }

    /// The pre-switch preview, the promotion and the switch, and the checks after it.
    fn blue_green_toward(&mut self, strategy: &BlueGreenStrategy, stable: &str) {
        let desired = self.desired();
        let preview_pods = strategy.preview_replica_count.unwrap_or(desired).clamp(0, desired);
        let control = self.previous.control.clone().unwrap_or_default();
        let mut state = self.status.blue_green.clone().unwrap_or_default();
        let new = self.new.filter(|n| n.synced);
        let ready = new.is_some_and(|n| n.replicas >= preview_pods && n.available >= preview_pods);
        let full = new.is_some_and(|n| n.replicas == desired && n.available >= desired);
        if ready && state.preview_ready_at.is_none() {
            state.preview_ready_at = Some(Time(self.stamp()));
            self.event(
                false,
                "PreviewReady",
                format!("Preview of revision {}: {preview_pods} pods available", self.revision),
            );
        }
        let switched = state.switched_at.is_some();
        let pre_passed = strategy.pre_promotion_analysis.is_none()
            || control.promote_full
            || self.gate_passed(AnalysisSlot::PrePromotion)
            || state
                .pre_promotion_analysis
                .as_ref()
                .is_some_and(|a| a.phase == crate::api::AnalysisPhase::Successful);

        // Decide the switch: once ready and checked, by the clock or by a person.
        let mut waiting_for_person = false;
        if !switched && !state.promoting && ready {
            let wait = Duration::from_secs(strategy.auto_promotion_seconds.unwrap_or(0).max(0) as u64);
            let ready_for = state
                .preview_ready_at
                .as_ref()
                .map_or(Duration::ZERO, |t| self.elapsed_since(t.0));
            let by_clock = strategy.auto_promotion_enabled && pre_passed && ready_for >= wait;
            let by_person = (control.promote && pre_passed) || control.promote_full;
            if by_clock || by_person {
                state.promoting = true;
                let how = if by_person { "as requested" } else { "automatically" };
                let note = format!(
                    "Promoting revision {} {how}: scaling to {desired} before the switch",
                    self.revision
                );
                self.event(false, "Promoting", note);
            } else if strategy.auto_promotion_enabled && pre_passed {
                self.requeue_at(wait - ready_for);
            } else if pre_passed {
                waiting_for_person = true;
            }
        }

        // A promotion asked for before the preview is ready and checked waits for it.
        self.keep_control = (control.promote || control.promote_full) && !switched && !state.promoting;

        // The new revision runs the preview, or everything once promoting; the
        // stable one keeps every pod until the new one is stable.
        let selects_new_after_switch = switched || (state.promoting && full);
        let switch_now = selects_new_after_switch && !switched;
        let active = if selects_new_after_switch {
            self.revision.clone()
        } else {
            stable.to_string()
        };
        let preview = if self.available_pods(&self.revision) > 0 {
            self.revision.clone()
        } else {
            stable.to_string()
        };
        let traffic = self.traffic;
        let selected = self.switch_services([
            (
                Some(strategy.active_service.as_str()),
                &traffic.stable_service,
                &active,
                desired,
            ),
            (
                strategy.preview_service.as_deref(),
                &traffic.canary_service,
                &preview,
                1,
            ),
        ]);
        if switch_now && selected.first() == Some(&self.revision) {
            state.switched_at = Some(Time(self.stamp()));
            let note = format!(
                "Active Service {} switched to revision {}",
                strategy.active_service, self.revision
            );
            self.event(false, "Switched", note);
        }
        state.active_revision = selected.first().cloned();
        let switched = state.switched_at.is_some();
        let new_pods = if state.promoting || switched {
            desired
        } else {
            preview_pods
        };
        if self.synced {
            self.scale_guarded(self.new.map(|n| n.name.as_str()), new_pods, &selected);
            let draining = state.scale_down_at.is_some();
            for rs in self.old.clone() {
                if rs.revision == stable {
                    self.scale(rs, desired);
                } else if !draining {
                    self.scale_guarded(Some(&rs.name), 0, &selected);
                }
            }
        }
        if let Some(at) = &state.scale_down_at {
            self.requeue_at(self.until(at.0));
        }

        // The progress deadline counts from when the new revision last lacked pods.
        let pending = !(if state.promoting || switched { full } else { ready });
        let since = state.unavailable_since.as_ref().map_or(self.stamp(), |t| t.0);
        state.unavailable_since = pending.then_some(Time(since));
        self.status.blue_green = Some(state.clone());
        match self.check_deadline(pending.then(|| self.elapsed_since(since))) {
            Deadline::Exceeded => {
                return self.blue_green_abort(strategy, stable, reason::PROGRESS_DEADLINE_EXCEEDED, false);
            }
            // Kept as it was: with no stable ReplicaSet, ask to look again at once.
            Deadline::Stranded => self.requeue_at(Duration::ZERO),
            Deadline::Met => {}
        }
        if let Some(due) = self.gate_analysis.and_then(|a| a.next_due) {
            self.requeue_at(due);
        }

        if switched {
            let post_passed =
                strategy.post_promotion_analysis.is_none() || self.gate_passed(AnalysisSlot::PostPromotion);
            if post_passed && full {
                return self.blue_green_promoted(strategy, &state);
            }
            let message = format!(
                "Revision {} is active; revision {stable} stands by until the post-promotion analysis passes",
                self.revision
            );
            return self.set_conditions(Phase::Progressing, reason::POST_PROMOTION_ANALYSIS, message, true, None);
        }
        let available = self.available_pods(&self.revision);
        let (phase, why, message) = if state.promoting {
            (
                Phase::Progressing,
                reason::PROMOTING,
                format!(
                    "Promoting revision {}: {available} of {desired} pods available before the switch",
                    self.revision
                ),
            )
        } else if !ready {
            (
                Phase::Progressing,
                reason::PREVIEW,
                format!(
                    "Preview of revision {}: {available} of {preview_pods} pods available",
                    self.revision
                ),
            )
        } else if !pre_passed {
            (
                Phase::Progressing,
                reason::WAITING_FOR_ANALYSIS,
                format!(
                    "Preview of revision {} is ready; waiting for the pre-promotion analysis",
                    self.revision
                ),
            )
        } else if waiting_for_person {
            (
                Phase::Paused,
                reason::AWAITING_PROMOTION,
                format!(
                    "Preview of revision {} is ready and checked; promote to switch",
                    self.revision
                ),
            )
        } else {
            (
                Phase::Progressing,
                reason::PREVIEW,
                format!(
                    "Preview of revision {} is ready; switching automatically",
                    self.revision
                ),
            )
        };
        if phase == Phase::Paused && self.previous.phase != Some(Phase::Paused) {
            self.event(false, reason::AWAITING_PROMOTION, message.clone());
        }
        self.set_conditions(phase, why, message, true, None);
    }

    /// This round's gate analysis for `slot` passed.
    fn gate_passed(&self, slot: AnalysisSlot) -> bool {
        self.gate_analysis
            .is_some_and(|a| a.slot == slot && a.verdict == Verdict::Successful)
    }

    /// The switched revision passed its checks: it is stable, and the old one
    /// drains until the scale-down delay after the switch is over.
    fn blue_green_promoted(&mut self, strategy: &BlueGreenStrategy, state: &BlueGreenStatus) {
        self.event(false, "Promoted", format!("Revision {} is now stable", self.revision));
        self.status.stable_revision = Some(self.revision.clone());
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
    fn blue_green_abort(&mut self, strategy: &BlueGreenStrategy, stable: &str, why: &'static str, before: bool) {
        let desired = self.desired();
        let mut state = self.status.blue_green.clone().unwrap_or_default();
        if !before {
            let delay = Duration::from_secs(strategy.abort_scale_down_delay_seconds.max(0) as u64);
            state.scale_down_at = Some(Time(self.stamp().checked_add(delay).unwrap_or(self.now)));
        }
        state.promoting = false;
        state.switched_at = None;
        state.unavailable_since = None;
        let traffic = self.traffic;
        let stable_owned = stable.to_string();
        let selected = self.switch_services([
            (
                Some(strategy.active_service.as_str()),
                &traffic.stable_service,
                &stable_owned,
                desired,
            ),
            (
                strategy.preview_service.as_deref(),
                &traffic.canary_service,
                &stable_owned,
                1,
            ),
        ]);
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
        let desired = self.desired();
        let previous = self.previous.blue_green.clone().unwrap_or_default();
        let scale_down_at = previous.scale_down_at.clone().filter(|at| at.0 > self.now);
        let traffic = self.traffic;
        let current = self.revision.clone();
        let selected = self.switch_services([
            (
                Some(strategy.active_service.as_str()),
                &traffic.stable_service,
                &current,
                desired,
            ),
            (
                strategy.preview_service.as_deref(),
                &traffic.canary_service,
                &current,
                1,
            ),
        ]);
        self.status.blue_green = Some(BlueGreenStatus {
            active_revision: selected.first().cloned(),
            scale_down_at: scale_down_at.clone(),
            pre_promotion_analysis: previous.pre_promotion_analysis,
            post_promotion_analysis: previous.post_promotion_analysis,
            ..Default::default()
        });
        self.settle_on_current(&selected, scale_down_at.as_ref(), reason::PREVIEW);
    }
}
