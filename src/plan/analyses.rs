//! Which analyses run in this round, and the recorded state each carries on from.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::canary;
use super::revision::revision_of;
use crate::api::{AnalysisPhase, AnalysisStatus, Release, RolloutAnalysis};

/// Which of a Release's analyses a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnalysisSlot {
    /// Runs for the whole rollout (rolling), or from a starting step (canary).
    Background,
    /// A canary analysis step, by index.
    Step(i32),
    /// Blue-green: checks on the preview before the switch.
    PrePromotion,
    /// Blue-green: checks after the switch.
    PostPromotion,
}

/// An analysis to advance: what to measure, and the results so far.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisRequest {
    pub slot: AnalysisSlot,
    pub spec: RolloutAnalysis,
    pub status: AnalysisStatus,
}

/// The analyses of the current revision that should run now: a rollout away from
/// an existing stable revision, not paused, not rolled back or aborted (unless a
/// person asked for a retry).
pub fn analyses_due(release: &Release, now: Timestamp) -> Vec<AnalysisRequest> {
    let Some(status) = release.status.as_ref() else {
        return Vec::new();
    };
    let revision = revision_of(&release.spec.template);
    let control = status.control.clone().unwrap_or_default();
    let rolled_back = status.failed_revision.as_ref() == Some(&revision);
    let in_flight = status.stable_revision.as_ref().is_some_and(|s| *s != revision);
    if !in_flight || release.spec.paused || control.abort || (rolled_back && !control.retry) {
        return Vec::new();
    }
    let fresh = |step: Option<i32>| AnalysisStatus {
        revision: revision.clone(),
        step,
        phase: AnalysisPhase::Running,
        message: None,
        started_at: Time(now),
        metrics: Vec::new(),
    };
    // A retry starts every analysis over.
    let carried = |recorded: Option<&AnalysisStatus>, step: Option<i32>| {
        recorded
            .filter(|a| a.revision == revision && a.step == step && !control.retry)
            .cloned()
            .unwrap_or_else(|| fresh(step))
    };
    let mut due = Vec::new();
    if let Some(spec) = release.spec.strategy.rolling.as_ref().and_then(|r| r.analysis.as_ref()) {
        let status = carried(status.analysis.as_ref(), None);
        due.push(AnalysisRequest {
            slot: AnalysisSlot::Background,
            spec: spec.clone(),
            status,
        });
    }
    if let Some(strategy) = &release.spec.strategy.blue_green {
        let recorded = status
            .blue_green
            .as_ref()
            .filter(|b| b.preview_revision.as_ref() == Some(&revision) && !control.retry);
        let ready = recorded.is_some_and(|b| b.preview_ready_at.is_some());
        let switched = recorded.is_some_and(|b| b.switched_at.is_some());
        // The pre-promotion check gates the decision to promote; once taken, it is done.
        let promoting = recorded.is_some_and(|b| b.promoting);
        if let Some(spec) = &strategy.pre_promotion_analysis
            && ready
            && !switched
            && !promoting
            && !control.promote_full
        {
            let recorded = recorded.and_then(|b| b.pre_promotion_analysis.as_ref());
            due.push(AnalysisRequest {
                slot: AnalysisSlot::PrePromotion,
                spec: spec.to_rollout_analysis(),
                status: carried(recorded, None),
            });
        }
        if let Some(spec) = &strategy.post_promotion_analysis
            && switched
        {
            let recorded = recorded.and_then(|b| b.post_promotion_analysis.as_ref());
            due.push(AnalysisRequest {
                slot: AnalysisSlot::PostPromotion,
                spec: spec.to_rollout_analysis(),
                status: carried(recorded, None),
            });
        }
    }
    if let Some(strategy) = &release.spec.strategy.canary {
        if control.promote || control.promote_full {
            return due; // The step moves on this round; its analysis would be stale.
        }
        let index = canary::resume_index(release, &revision);
        if let Some(background) = &strategy.analysis
            && index >= usize::try_from(background.starting_step.unwrap_or(0)).unwrap_or(0)
        {
            due.push(AnalysisRequest {
                slot: AnalysisSlot::Background,
                spec: background.analysis.to_rollout_analysis(),
                status: carried(status.analysis.as_ref(), None),
            });
        }
        if let Some(spec) = strategy.steps.get(index).and_then(|s| s.analysis.as_ref()) {
            let step = i32::try_from(index).ok();
            let recorded = status.canary.as_ref().and_then(|c| c.step_analysis.as_ref());
            due.push(AnalysisRequest {
                slot: AnalysisSlot::Step(step.unwrap_or_default()),
                spec: spec.to_rollout_analysis(),
                status: carried(recorded, step),
            });
        }
    }
    due
}
