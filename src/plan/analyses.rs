//! Which analyses run in this round, and the recorded state each carries on from.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::bluegreen::Stage;
use super::canary;
use super::revision::revision_of;
use crate::api::{
    AnalysisPhase, AnalysisStatus, BlueGreenStrategy, CanaryStrategy, Control, HookKind, Release, ReleaseStatus,
    RolloutAnalysis,
};

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
    /// A lifecycle hook (`spec.hooks`).
    Hook(HookKind),
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
    if release.spec.paused || control.abort || (rolled_back && !control.retry) {
        return Vec::new();
    }
    let mut due = hooks_due(release, status, &revision, control.retry);
    let in_flight = status.stable_revision.as_ref().is_some_and(|s| *s != revision);
    if !in_flight {
        return due;
    }
    let carry = Carry {
        revision: &revision,
        retry: control.retry,
        now,
    };
    let strategy = &release.spec.strategy;
    if let Some(spec) = strategy.rolling.as_ref().and_then(|r| r.analysis.as_ref()) {
        due.push(AnalysisRequest {
            slot: AnalysisSlot::Background,
            spec: spec.clone(),
            status: carry.status(status.analysis.as_ref(), None),
        });
    }
    if let Some(strategy) = &strategy.blue_green {
        due.extend(blue_green_due(strategy, status, &control, &carry));
    }
    if let Some(strategy) = &strategy.canary {
        due.extend(canary_due(release, strategy, status, &control, &carry));
    }
    due
}

/// The hooks the plan started for `revision` (recorded Running), to measure
/// until they end. A retry waits for the plan to start them again.
fn hooks_due(release: &Release, status: &ReleaseStatus, revision: &str, retry: bool) -> Vec<AnalysisRequest> {
    let (Some(spec), Some(recorded)) = (&release.spec.hooks, &status.hooks) else {
        return Vec::new();
    };
    if retry {
        return Vec::new();
    }
    [HookKind::PreRollout, HookKind::PostRollout]
        .into_iter()
        .filter_map(|kind| {
            let hook = kind.spec(spec)?;
            let status = kind
                .status(recorded)
                .filter(|a| a.revision == revision && a.phase == AnalysisPhase::Running)?;
            Some(AnalysisRequest {
                slot: AnalysisSlot::Hook(kind),
                spec: hook.to_rollout_analysis(),
                status: status.clone(),
            })
        })
        .collect()
}

/// Where an analysis carries on from: what is recorded for this revision and
/// step, or a fresh start. A retry starts every analysis over.
struct Carry<'a> {
    revision: &'a str,
    retry: bool,
    now: Timestamp,
}

impl Carry<'_> {
    fn status(&self, recorded: Option<&AnalysisStatus>, step: Option<i32>) -> AnalysisStatus {
        recorded
            .filter(|a| a.revision == self.revision && a.step == step && !self.retry)
            .cloned()
            .unwrap_or_else(|| AnalysisStatus {
                revision: self.revision.to_string(),
                step,
                phase: AnalysisPhase::Running,
                message: None,
                started_at: Time(self.now),
                metrics: Vec::new(),
            })
    }
}

/// Blue-green: the pre-promotion analysis of a ready preview, until promotion
/// is decided (which ends it); the post-promotion analysis once switched.
fn blue_green_due(
    strategy: &BlueGreenStrategy,
    status: &ReleaseStatus,
    control: &Control,
    carry: &Carry,
) -> Vec<AnalysisRequest> {
    let recorded = Stage::recorded(status.blue_green.as_ref(), carry.revision, carry.retry);
    let stage = Stage::in_flight(status.blue_green.as_ref(), carry.revision, carry.retry);
    let ready = recorded.is_some_and(|b| b.preview_ready_at.is_some());
    let mut due = Vec::new();
    if let Some(spec) = &strategy.pre_promotion_analysis
        && stage == Stage::Preview
        && ready
        && !control.promote_full
    {
        let recorded = recorded.and_then(|b| b.pre_promotion_analysis.as_ref());
        due.push(AnalysisRequest {
            slot: AnalysisSlot::PrePromotion,
            spec: spec.to_rollout_analysis(),
            status: carry.status(recorded, None),
        });
    }
    if let Some(spec) = &strategy.post_promotion_analysis
        && stage == Stage::Switched
    {
        let recorded = recorded.and_then(|b| b.post_promotion_analysis.as_ref());
        due.push(AnalysisRequest {
            slot: AnalysisSlot::PostPromotion,
            spec: spec.to_rollout_analysis(),
            status: carry.status(recorded, None),
        });
    }
    due
}

/// Canary: the background analysis from its starting step on, and the
/// analysis of the current step when it is an analysis step.
fn canary_due(
    release: &Release,
    strategy: &CanaryStrategy,
    status: &ReleaseStatus,
    control: &Control,
    carry: &Carry,
) -> Vec<AnalysisRequest> {
    if control.promote || control.promote_full {
        return Vec::new(); // The step moves on this round; its analysis would be stale.
    }
    let index = canary::resume_index(release, carry.revision);
    let mut due = Vec::new();
    if let Some(background) = &strategy.analysis
        && index >= usize::try_from(background.starting_step.unwrap_or(0)).unwrap_or(0)
    {
        due.push(AnalysisRequest {
            slot: AnalysisSlot::Background,
            spec: background.analysis.to_rollout_analysis(),
            status: carry.status(status.analysis.as_ref(), None),
        });
    }
    if let Some(spec) = strategy.steps.get(index).and_then(|s| s.analysis.as_ref()) {
        let step = i32::try_from(index).ok();
        let recorded = status.canary.as_ref().and_then(|c| c.step_analysis.as_ref());
        due.push(AnalysisRequest {
            slot: AnalysisSlot::Step(step.unwrap_or_default()),
            spec: spec.to_rollout_analysis(),
            status: carry.status(recorded, step),
        });
    }
    due
}
