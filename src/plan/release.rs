//! One planning round for a Release: validate, pick the revisions, decide the
//! scale of each ReplicaSet, roll back past the progress deadline, and derive status.
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::conditions::{self, DEGRADED, PROGRESSING, READY, RECONCILING, STALLED};
use super::revision::revision_of;
use super::rolling::{self, Pods, RollingInput};
use super::selector::{matches, selector_string};
use super::{Action, AnalysisInput, AnalysisSlot, Observed, Plan, RevisionState, Traffic, Transition, Verdict};
use crate::api::{
    AnalysisPhase, AnalysisStatus, BlueGreenStrategy, CanaryStrategy, MeasurementPhase, Phase, Release, ReleaseSpec,
    ReleaseStatus, RollingStrategy,
};

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
    pub const ANALYSIS_FAILED: &str = "AnalysisFailed";
    pub const INCONCLUSIVE_ANALYSIS: &str = "InconclusiveAnalysis";
    pub const WAITING_FOR_ANALYSIS: &str = "WaitingForAnalysis";
    pub const ABORTED: &str = "Aborted";
    pub const CANARY_PAUSE_STEP: &str = "CanaryPauseStep";
    pub const CANARY_STEP: &str = "CanaryStep";
    pub const PREVIEW: &str = "Preview";
    pub const PROMOTING: &str = "Promoting";
    pub const AWAITING_PROMOTION: &str = "AwaitingPromotion";
    pub const POST_PROMOTION_ANALYSIS: &str = "PostPromotionAnalysis";
}

/// How soon an analysis, Service or route that refers to missing objects is looked at again.
pub(super) const INVALID_RECHECK: Duration = Duration::from_secs(10);

/// Decides what to do for a Release, given its ReplicaSets and analysis.
pub fn plan(observed: &Observed) -> Plan {
    let release = observed.release;
    let previous = release.status.clone().unwrap_or_default();
    let mut round = Round::new(release, observed.replica_sets, &previous, observed.now);
    round.analysis = observed.analysis.as_ref();
    round.gate_analysis = observed.gate_analysis.as_ref();
    round.traffic = &observed.traffic;
    let valid = match &observed.refused {
        Some(refusal) => Err(Invalid::new(
            "spec.template",
            format!("the API server refuses its ReplicaSet: {refusal}"),
        )),
        None => validated(&release.spec),
    };
    match valid {
        Err(invalid) => round.invalid(invalid.to_string()),
        Ok(Validated::Rolling { bounds }) => round.decide(bounds),
        Ok(Validated::Canary { strategy, bounds }) => round.decide_canary(strategy, bounds),
        Ok(Validated::BlueGreen { strategy }) => round.decide_blue_green(strategy),
    }
    round.finish()
}

/// A spec that passed validation, with what validation resolved.
enum Validated<'a> {
    Rolling {
        bounds: (i32, i32),
    },
    Canary {
        strategy: &'a CanaryStrategy,
        bounds: (i32, i32),
    },
    BlueGreen {
        strategy: &'a BlueGreenStrategy,
    },
}

/// Lives in `api`, which `analysis` reports it from too.
pub use crate::api::Invalid;

/// Checks what the CRD schema cannot: the part of the InvalidSpec check that
/// needs nothing but the spec. `controller::check` adds the analyses (templates,
/// args, Secrets) and is what the controller and `kubectl serin lint` call.
pub fn validate(spec: &ReleaseSpec) -> Result<(), Invalid> {
    validated(spec).map(|_| ())
}

/// [`validate`], with what validation resolved.
fn validated(spec: &ReleaseSpec) -> Result<Validated<'_>, Invalid> {
    validate_selector(spec)?;
    if let Some(rolling) = &spec.strategy.rolling {
        let bounds = rolling::bounds(rolling, spec.replicas).map_err(|e| Invalid::new("spec.strategy.rolling", e))?;
        return Ok(Validated::Rolling { bounds });
    }
    if let Some(canary) = &spec.strategy.canary {
        let surge = RollingStrategy {
            max_surge: canary.max_surge.clone(),
            max_unavailable: canary.max_unavailable.clone(),
            analysis: None,
        };
        let bounds = rolling::bounds(&surge, spec.replicas).map_err(|e| Invalid::new("spec.strategy.canary", e))?;
        super::canary::validate(canary)?;
        return Ok(Validated::Canary {
            strategy: canary,
            bounds,
        });
    }
    match &spec.strategy.blue_green {
        Some(strategy) => Ok(Validated::BlueGreen { strategy }),
        None => Err(Invalid::new(
            "spec.strategy",
            "must set exactly one of rolling, blueGreen or canary",
        )),
    }
}

fn validate_selector(spec: &ReleaseSpec) -> Result<(), Invalid> {
    let selector = &spec.selector;
    if selector.match_labels.as_ref().is_none_or(|l| l.is_empty())
        && selector.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    {
        return Err(Invalid::new(
            "spec.selector",
            "must not be empty; it must select the labels of spec.template",
        ));
    }
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    if !matches(selector, &labels) {
        return Err(Invalid::new(
            "spec.selector",
            "does not match spec.template.metadata.labels",
        ));
    }
    Ok(())
}

/// What a round's analyses mean for it.
pub(super) enum Judgement {
    /// Carry on with the rollout.
    Go,
    /// A verdict decided the round (invalid or inconclusive analysis); nothing moves.
    Held,
    /// The analysis failed with this message: roll back.
    Failed(String),
}

/// One planning round's inputs, and the plan it builds.
pub(super) struct Round<'a> {
    pub(super) spec: &'a ReleaseSpec,
    pub(super) name: String,
    pub(super) previous: &'a ReleaseStatus,
    pub(super) now: Timestamp,
    pub(super) revision: String,
    pub(super) new: Option<&'a RevisionState>,
    /// Every other ReplicaSet, oldest first.
    pub(super) old: Vec<&'a RevisionState>,
    pub(super) synced: bool,
    pub(super) analysis: Option<&'a AnalysisInput>,
    /// A canary analysis step, or blue-green's pre- or post-promotion analysis.
    pub(super) gate_analysis: Option<&'a AnalysisInput>,
    pub(super) traffic: &'a Traffic,
    pub(super) status: ReleaseStatus,
    pub(super) actions: Vec<Action>,
    pub(super) events: Vec<Transition>,
    pub(super) requeue_after: Option<Duration>,
    /// A person asked for an abort in this round.
    pub(super) aborted_now: bool,
    pub(super) keep_control: bool,
}

static NO_TRAFFIC: Traffic = Traffic {
    stable_service: None,
    canary_service: None,
    canary_weight: None,
    problem: None,
};

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
            analysis: previous.analysis.clone(),
            ..Default::default()
        };
        let status = if spec.strategy.canary.is_some() {
            ReleaseStatus {
                current_step_index: previous.current_step_index,
                canary_weight: previous.canary_weight,
                canary: previous.canary.clone(),
                ..status
            }
        } else if spec.strategy.blue_green.is_some() {
            ReleaseStatus {
                blue_green: previous.blue_green.clone(),
                ..status
            }
        } else {
            status
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
            analysis: None,
            gate_analysis: None,
            traffic: &NO_TRAFFIC,
            status,
            actions: Vec::new(),
            events: Vec::new(),
            requeue_after: None,
            aborted_now: false,
            keep_control: false,
        }
    }

    pub(super) fn desired(&self) -> i32 {
        self.spec.replicas
    }

    /// The stable ReplicaSet, if it still exists and is not the current one.
    pub(super) fn stable(&self) -> Option<&'a RevisionState> {
        let stable = self.status.stable_revision.as_ref()?;
        self.old.iter().copied().find(|rs| &rs.revision == stable)
    }

    /// The new revision runs `replicas` available pods.
    fn new_available(&self) -> bool {
        let desired = self.desired();
        self.new
            .is_some_and(|n| n.replicas == desired && n.available >= desired)
    }

    fn analysis_passed(&self) -> bool {
        self.analysis.is_none_or(|a| a.verdict == Verdict::Successful)
    }

    fn complete(&self) -> bool {
        self.synced
            && self.new_available()
            && self.old.iter().all(|rs| rs.replicas == 0 && rs.status_replicas == 0)
            && self.analysis_passed()
    }

    pub(super) fn invalid(&mut self, message: String) {
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

    /// What every strategy does first: adopt a stable revision when status was
    /// lost, act on retry and abort requests, and note a new rollout. Returns
    /// whether this round retries.
    pub(super) fn begin(&mut self) -> bool {
        if self.status.stable_revision.is_none() {
            // Status lost or never written: the newest running old revision is stable.
            self.status.stable_revision = self
                .old
                .iter()
                .rev()
                .find(|rs| rs.replicas > 0)
                .map(|rs| rs.revision.clone());
        }
        let retry = self.previous.control.as_ref().is_some_and(|c| c.retry);
        if retry {
            self.event(
                false,
                "Retried",
                format!("Retrying revision {} as requested", self.revision),
            );
            self.status.failed_revision = None;
        }
        if self.previous.current_revision.as_ref() != Some(&self.revision) {
            let from = self.previous.current_revision.as_deref().unwrap_or("none");
            self.event(
                false,
                "RolloutStarted",
                format!("Rolling out revision {} (from {from})", self.revision),
            );
        }
        let abort = self.previous.control.as_ref().is_some_and(|c| c.abort);
        let in_flight = self
            .status
            .stable_revision
            .as_ref()
            .is_some_and(|s| *s != self.revision);
        if abort && in_flight && self.status.failed_revision.is_none() {
            self.status.failed_revision = Some(self.revision.clone());
            let stable = self.status.stable_revision.as_deref().unwrap_or_default();
            let note = format!(
                "Revision {} aborted by request; rolling back to revision {stable}",
                self.revision
            );
            self.event(true, reason::ABORTED, note);
            self.aborted_now = true;
        }
        retry
    }

    /// Keeps a gate analysis in the status of what it gates.
    fn record_gate(&mut self, slot: AnalysisSlot, analysis: AnalysisStatus) {
        match slot {
            AnalysisSlot::Background => self.status.analysis = Some(analysis),
            AnalysisSlot::Step(_) => {
                if let Some(canary) = self.status.canary.as_mut() {
                    canary.step_analysis = Some(analysis);
                }
            }
            AnalysisSlot::PrePromotion => {
                if let Some(blue_green) = self.status.blue_green.as_mut() {
                    blue_green.pre_promotion_analysis = Some(analysis);
                }
            }
            AnalysisSlot::PostPromotion => {
                if let Some(blue_green) = self.status.blue_green.as_mut() {
                    blue_green.post_promotion_analysis = Some(analysis);
                }
            }
        }
    }

    /// Records this round's analyses, and what their verdicts mean for the round.
    pub(super) fn judge_analyses(&mut self) -> Judgement {
        if let Some(analysis) = self.analysis {
            self.measurement_events(analysis);
            self.status.analysis = Some(analysis.status.clone());
        }
        if let Some(analysis) = self.gate_analysis {
            self.measurement_events(analysis);
            self.record_gate(analysis.slot, analysis.status.clone());
        }
        for analysis in [self.analysis, self.gate_analysis].into_iter().flatten() {
            match &analysis.verdict {
                Verdict::Invalid(message) => {
                    // Templates and Secrets are not watched: look again in a while.
                    self.requeue_at(INVALID_RECHECK);
                    self.invalid(message.clone());
                    return Judgement::Held;
                }
                Verdict::Failed(message) => return Judgement::Failed(message.clone()),
                Verdict::Inconclusive(message) => {
                    self.inconclusive(message.clone());
                    return Judgement::Held;
                }
                Verdict::Running | Verdict::Successful => {}
            }
        }
        Judgement::Go
    }

    fn decide(&mut self, (max_surge, max_unavailable): (i32, i32)) {
        let retry = self.begin();
        if self.status.failed_revision.is_some() {
            return self.roll_back(self.rollback_reason());
        }
        match self.judge_analyses() {
            Judgement::Go => {}
            Judgement::Held => return,
            Judgement::Failed(cause) => return self.start_roll_back(reason::ANALYSIS_FAILED, cause),
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
        let deadline = Duration::from_secs(self.spec.progress_deadline_seconds.max(0) as u64);
        let elapsed = self.now.duration_since(started).unsigned_abs();
        let pending = rollout && !self.new_available();
        let expired = pending && elapsed >= deadline;
        if rollout {
            self.status.rollout_start_time = Some(Time(started));
        }
        if expired && self.stable().is_some() {
            let message = format!("not available within progressDeadlineSeconds ({}s)", deadline.as_secs());
            return self.start_roll_back(reason::PROGRESS_DEADLINE_EXCEEDED, message);
        }
        if pending && !expired {
            self.requeue_at(deadline - elapsed);
        }
        if let Some(due) = self.analysis.and_then(|a| a.next_due) {
            self.requeue_at(due);
        }
        self.roll(max_surge, max_unavailable);
        if expired {
            // First revision: there is nothing to roll back to.
            let message = format!(
                "Revision {} was not available within progressDeadlineSeconds ({}s) and there is no stable revision to roll back to",
                self.revision,
                deadline.as_secs()
            );
            let why = reason::PROGRESS_DEADLINE_EXCEEDED;
            self.set_conditions(Phase::Degraded, why, message, true, Some(why));
        } else if self.new_available() && !self.analysis_passed() {
            let message = format!(
                "Revision {}: all {} replicas available; waiting for analysis to pass",
                self.revision,
                self.desired()
            );
            self.set_conditions(Phase::Progressing, reason::WAITING_FOR_ANALYSIS, message, true, None);
        } else {
            let (updated, available) = self.new.map_or((0, 0), |n| (n.replicas, n.available));
            let old: i32 = self.old.iter().map(|rs| rs.replicas).sum();
            let message = format!(
                "Rolling out revision {}: {available} of {} updated replicas available, {old} old replicas remain",
                self.revision,
                self.desired().max(updated)
            );
            self.set_conditions(Phase::Progressing, reason::ROLLING_UPDATE, message, true, None);
        }
    }

    /// Events for measurements that did not succeed, and for a passed analysis.
    pub(super) fn measurement_events(&mut self, analysis: &AnalysisInput) {
        let before = self
            .previous
            .analysis
            .as_ref()
            .filter(|a| a.revision == analysis.status.revision);
        for metric in &analysis.status.metrics {
            let seen = before
                .and_then(|b| b.metrics.iter().find(|m| m.name == metric.name))
                .map_or(0, |m| m.count);
            let Some(last) = metric.measurements.last().filter(|_| metric.count > seen) else {
                continue;
            };
            if last.phase != MeasurementPhase::Successful {
                let value = last.value.as_deref().unwrap_or("no value");
                let note = format!("Metric {:?} measured {:?}: {value}", metric.name, last.phase);
                self.event(true, "AnalysisMeasurement", note);
            }
        }
        let passed_before = before.is_some_and(|b| b.phase == AnalysisPhase::Successful);
        if analysis.verdict == Verdict::Successful && !passed_before {
            self.event(
                false,
                "AnalysisSuccessful",
                format!("Analysis of revision {} passed", self.revision),
            );
        }
    }

    pub(super) fn requeue_at(&mut self, after: Duration) {
        self.requeue_after = Some(self.requeue_after.map_or(after, |r| r.min(after)));
    }

    /// Marks the current revision failed and starts restoring the stable one.
    pub(super) fn start_roll_back(&mut self, why: &'static str, cause: String) {
        self.mark_failed(why, cause);
        self.roll_back(why);
    }

    /// Marks the current revision failed: it is not tried again until the
    /// template changes or a person retries.
    pub(super) fn mark_failed(&mut self, why: &'static str, cause: String) {
        self.status.failed_revision = Some(self.revision.clone());
        let stable = self.status.stable_revision.as_deref().unwrap_or_default();
        let note = format!(
            "Revision {} {why}: {cause}; rolling back to revision {stable}",
            self.revision
        );
        self.event(true, reason::ROLLED_BACK, note);
    }

    /// An inconclusive analysis holds the rollout where it stands for a person.
    pub(super) fn inconclusive(&mut self, cause: String) {
        if self.previous.phase != Some(Phase::Paused) {
            self.event(true, reason::INCONCLUSIVE_ANALYSIS, cause.clone());
        }
        let message = format!(
            "Rollout of revision {} paused: {cause}. Retry, or change the template, to go on",
            self.revision
        );
        self.set_conditions(Phase::Paused, reason::INCONCLUSIVE_ANALYSIS, message, false, None);
    }

    pub(super) fn rollback_reason(&self) -> &'static str {
        if self.aborted_now {
            return reason::ABORTED;
        }
        // Keep the reason recorded when the rollback started.
        const ROLLBACK_REASONS: [&str; 3] = [
            reason::PROGRESS_DEADLINE_EXCEEDED,
            reason::ANALYSIS_FAILED,
            reason::ABORTED,
        ];
        conditions::get(&self.previous.conditions, DEGRADED)
            .filter(|c| c.status == "True")
            .and_then(|c| ROLLBACK_REASONS.into_iter().find(|r| *r == c.reason))
            .unwrap_or(reason::PROGRESS_DEADLINE_EXCEEDED)
    }

    /// Restore the stable revision to full size first, then scale everything else to 0.
    pub(super) fn roll_back(&mut self, why: &'static str) {
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
        let cause = self.rollback_cause(why);
        let message = format!(
            "Rolled back revision {} ({why}: {cause}); {state}. Change the template, or retry, to roll out again",
            self.revision
        );
        self.set_conditions(Phase::Degraded, why, message, false, Some(why));
    }

    /// What made the rollout roll back, for its message.
    pub(super) fn rollback_cause(&self, why: &str) -> String {
        let blue_green = self.status.blue_green.as_ref();
        let gates = [
            self.status.canary.as_ref().and_then(|c| c.step_analysis.as_ref()),
            blue_green.and_then(|b| b.pre_promotion_analysis.as_ref()),
            blue_green.and_then(|b| b.post_promotion_analysis.as_ref()),
        ];
        match why {
            reason::ANALYSIS_FAILED => std::iter::once(self.status.analysis.as_ref())
                .chain(gates)
                .flatten()
                .find(|a| a.phase == AnalysisPhase::Failed)
                .and_then(|a| a.message.clone())
                .unwrap_or_else(|| "analysis failed".into()),
            reason::ABORTED => "aborted by request".into(),
            _ => format!(
                "not available within progressDeadlineSeconds ({}s)",
                self.spec.progress_deadline_seconds
            ),
        }
    }

    pub(super) fn completed(&mut self) {
        if self.status.stable_revision.as_ref() != Some(&self.revision) {
            self.event(false, "Promoted", format!("Revision {} is now stable", self.revision));
        }
        self.status.stable_revision = Some(self.revision.clone());
        // A scale change with the same template still goes through the rolling step.
        let message = format!("Revision {}: all {} replicas available", self.revision, self.desired());
        self.set_conditions(Phase::Healthy, reason::AVAILABLE, message, false, None);
        self.trim_history();
    }

    pub(super) fn paused(&mut self) {
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
            old_floor: 0,
        };
        let output = rolling::step(&input);
        self.scale_new(output.new_replicas);
        let old = self.old.clone();
        for (rs, replicas) in old.into_iter().zip(output.old_replicas) {
            self.scale(rs, replicas);
        }
    }

    /// Scales the current revision's ReplicaSet, creating it first if needed.
    pub(super) fn scale_new(&mut self, replicas: i32) {
        if let Some(new) = self.new {
            return self.scale(new, replicas);
        }
        let number = self.old.iter().map(|rs| rs.number).max().unwrap_or(0) + 1;
        self.event(
            false,
            "ScalingReplicaSet",
            format!(
                "Created replica set {}-{} with {replicas} replicas",
                self.name, self.revision
            ),
        );
        self.actions.push(Action::Create {
            revision: self.revision.clone(),
            number,
            replicas,
        });
    }

    pub(super) fn scale(&mut self, rs: &RevisionState, replicas: i32) {
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
    pub(super) fn trim_history(&mut self) {
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

    pub(super) fn event(&mut self, warning: bool, reason: &'static str, note: String) {
        self.events.push(Transition { warning, reason, note });
    }

    /// Sets phase, message and the five conditions together so they never disagree.
    pub(super) fn set_conditions(
        &mut self,
        phase: Phase,
        why: &str,
        message: String,
        progressing: bool,
        degraded: Option<&str>,
    ) {
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
        let (failed, failure_reason, failure) = match degraded {
            Some(r) => (true, r, message.clone()),
            None => (false, reason::AS_EXPECTED, "No failure".to_string()),
        };
        conditions::set(
            list,
            DEGRADED,
            failed,
            failure_reason,
            failure.clone(),
            generation,
            &now,
        );
        conditions::set(list, STALLED, failed, failure_reason, failure, generation, &now);
        // Not ready and not failed: in flight, paused, or waiting for a person.
        let (reconciling, reconciling_reason) = if ready || failed {
            (false, reason::AS_EXPECTED)
        } else {
            (true, why)
        };
        conditions::set(
            list,
            RECONCILING,
            reconciling,
            reconciling_reason,
            message.clone(),
            generation,
            &now,
        );
        self.status.phase = Some(phase);
        self.status.message = Some(message);
    }

    fn finish(self) -> Plan {
        Plan {
            actions: self.actions,
            status: self.status,
            events: self.events,
            requeue_after: self.requeue_after,
            keep_control: self.keep_control,
        }
    }
}
