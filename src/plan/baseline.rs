//! Baseline pods: a ReplicaSet of the stable template at the canary's size,
//! run while an analysis that asks for them (`baselinePods: true`) runs, so a
//! judge compares the canary with pods as young as its own rather than with
//! stable pods that have been warm for days. Removed as soon as that analysis
//! ends, whatever its outcome.
use super::round::Round;
use super::{Action, AnalysisInput, AnalysisSlot, Verdict};
use crate::api::ReleaseSpec;

/// The baseline ReplicaSet, as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaselineState {
    pub name: String,
    /// The stable revision whose template it runs (`serin.dev/baseline-of`).
    pub stable_revision: String,
    /// The canary revision it stands beside (`serin.dev/baseline-for`): a
    /// new canary restarts its analysis, and gets baseline pods of its age.
    pub canary_revision: String,
    pub replicas: i32,
    /// Being deleted already.
    pub deleting: bool,
}

/// The name of the baseline ReplicaSet of `stable_revision`.
pub fn baseline_name(release: &str, stable_revision: &str) -> String {
    format!("{release}-{stable_revision}-baseline")
}

/// Whether the analysis in `slot` asks for baseline pods. Post-promotion
/// never does (the schema refuses it): the canary is the stable revision then.
pub fn baseline_pods(spec: &ReleaseSpec, slot: AnalysisSlot) -> bool {
    let strategy = &spec.strategy;
    let canary = strategy.canary.as_ref();
    match slot {
        AnalysisSlot::Background => canary
            .and_then(|c| c.analysis.as_ref())
            .is_some_and(|a| a.analysis.baseline_pods),
        AnalysisSlot::Step(index) => usize::try_from(index)
            .ok()
            .and_then(|i| canary?.steps.get(i)?.analysis.as_ref())
            .is_some_and(|a| a.baseline_pods),
        AnalysisSlot::PrePromotion => strategy
            .blue_green
            .as_ref()
            .and_then(|b| b.pre_promotion_analysis.as_ref())
            .is_some_and(|a| a.baseline_pods),
        AnalysisSlot::PostPromotion | AnalysisSlot::Hook(_) => false,
    }
}

impl Round<'_> {
    /// Adds what makes the baseline match this round's decisions: created,
    /// sized like the canary, or deleted. Runs last, so it sees the canary's
    /// size as this round leaves it.
    pub(super) fn steer_baseline(&mut self, observed: Option<&BaselineState>) {
        // Nothing moves while paused: the analysis waits, and resumes
        // with the baseline it had.
        if self.held_invalid() || self.spec.paused {
            return;
        }
        let wanted = self.baseline_wanted();
        match (wanted, observed) {
            (Some((stable, revision, replicas)), None) => self.actions.push(Action::CreateBaseline {
                stable,
                revision,
                canary: self.revision.clone(),
                replicas,
            }),
            (Some((_, revision, replicas)), Some(b))
                if b.stable_revision == revision && b.canary_revision == self.revision && !b.deleting =>
            {
                let resize = (b.replicas != replicas).then(|| Action::Scale {
                    name: b.name.clone(),
                    replicas,
                });
                self.actions.extend(resize);
            }
            // Of another stable or canary revision, or not wanted: it goes
            // (and the right one is created once it has gone).
            (_, Some(b)) if !b.deleting => self.actions.push(Action::Delete { name: b.name.clone() }),
            _ => {}
        }
    }

    /// The round is held as InvalidSpec after validation passed: by a Service
    /// or route that cannot be driven, or by an analysis that cannot run as
    /// written (a missing template or Secret, looked for again shortly). Such
    /// a round changes nothing, the baseline included: the analysis is not
    /// over, it carries on from its measurements once fixed, and a baseline
    /// removed and created again would be younger than the canary it is for.
    fn held_invalid(&self) -> bool {
        self.traffic.problem.is_some()
            || [self.analysis, self.gate_analysis]
                .into_iter()
                .flatten()
                .any(|a| matches!(a.verdict, Verdict::Invalid(_)))
    }

    /// (stable ReplicaSet, stable revision, replicas) while a running analysis
    /// asks for baseline pods and the stable revision still has its ReplicaSet.
    fn baseline_wanted(&self) -> Option<(String, String, i32)> {
        let running = |input: Option<&AnalysisInput>| {
            input.is_some_and(|a| a.verdict == Verdict::Running && baseline_pods(self.spec, a.slot))
        };
        // A round that rolls back (the deadline, another analysis) ends this one too.
        let rolled_back = self.status.failed_revision.as_deref() == Some(self.revision.as_str());
        if !(running(self.analysis) || running(self.gate_analysis)) || self.aborted_now || rolled_back {
            return None;
        }
        let stable = self.stable()?;
        Some((
            stable.name.clone(),
            stable.revision.clone(),
            self.canary_replicas_after(),
        ))
    }

    /// The current revision's replicas once this round's actions are taken.
    fn canary_replicas_after(&self) -> i32 {
        let planned = self.actions.iter().rev().find_map(|action| match action {
            Action::Create { revision, replicas, .. } if *revision == self.revision => Some(*replicas),
            Action::Scale { name, replicas } if self.new.is_some_and(|n| n.name == *name) => Some(*replicas),
            _ => None,
        });
        planned.or(self.new.map(|n| n.replicas)).unwrap_or(0)
    }
}
