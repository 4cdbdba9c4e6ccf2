//! What a round's analyses mean for it: their events, their place in status,
//! and whether the rollout goes on, holds or rolls back.
use super::reason::Reason;
use super::round::{INVALID_RECHECK, Round};
use super::{AnalysisInput, AnalysisSlot, Verdict};
use crate::api::{AnalysisPhase, AnalysisStatus, MeasurementPhase, Phase};

/// What a round's analyses mean for it.
pub(super) enum Judgement {
    /// Carry on with the rollout.
    Go,
    /// A verdict decided the round (invalid or inconclusive analysis); nothing moves.
    Held,
    /// The analysis failed with this message: roll back.
    Failed(String),
}

impl Round<'_> {
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
            AnalysisSlot::Hook(_) => {} // kept by `hooks`
        }
    }

    /// Events for measurements that did not succeed, and for a passed analysis.
    pub(super) fn measurement_events(&mut self, analysis: &AnalysisInput) {
        let previous = self.previous.analysis.as_ref();
        let before = self.measurement_events_since(analysis, previous);
        let passed_before = before.is_some_and(|b| b.phase == AnalysisPhase::Successful);
        if analysis.verdict == Verdict::Successful && !passed_before {
            self.event(
                false,
                Reason::AnalysisSuccessful,
                format!("Analysis of revision {} passed", self.revision),
            );
        }
    }

    /// Events for the measurements taken since `previous` (if it is of the
    /// same revision) that did not succeed. Returns `previous` when it is.
    pub(super) fn measurement_events_since<'p>(
        &mut self,
        analysis: &AnalysisInput,
        previous: Option<&'p AnalysisStatus>,
    ) -> Option<&'p AnalysisStatus> {
        let before = previous.filter(|a| a.revision == analysis.status.revision);
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
                self.event(true, Reason::AnalysisMeasurement, note);
            }
        }
        before
    }

    /// An inconclusive analysis holds the rollout where it stands for a person.
    pub(super) fn inconclusive(&mut self, cause: String) {
        if self.previous.phase != Some(Phase::Paused) {
            self.event(true, Reason::InconclusiveAnalysis, cause.clone());
        }
        let message = format!(
            "Rollout of revision {} paused: {cause}. Retry, or change the template, to go on",
            self.revision
        );
        self.set_conditions(Phase::Paused, Reason::InconclusiveAnalysis, message, false, None);
    }
}
