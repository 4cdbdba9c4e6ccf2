//! The reasons serin gives on Events and conditions. Their strings are part of
//! the product's interface (kubectl, kstatus, alerts and dashboards match on
//! them): a variant may be renamed, its string never.
use std::fmt;

/// The `reason` of an Event or a condition the planner writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    // On conditions, and on Events where noted.
    /// The spec, or an analysis, Service or route it names, cannot be acted on (also an Event).
    InvalidSpec,
    /// The new pods were not available in time: rolled back.
    ProgressDeadlineExceeded,
    /// Rolling: the new revision replaces the old one.
    RollingUpdate,
    /// `spec.paused` (also an Event).
    Paused,
    /// Ready: every pod of the current revision is available.
    Available,
    /// Progressing=False once ready.
    RolloutComplete,
    /// Degraded, Stalled and Reconciling when nothing is wrong or in flight.
    AsExpected,
    /// An analysis failed: rolled back.
    AnalysisFailed,
    /// An analysis could not decide: held for a person (also an Event).
    InconclusiveAnalysis,
    /// Available, but an analysis has not passed yet.
    WaitingForAnalysis,
    /// A person aborted the rollout (also an Event).
    Aborted,
    /// Canary: at a pause without a duration, until promoted (also an Event).
    CanaryPauseStep,
    /// Canary: stepping.
    CanaryStep,
    /// Blue-green: the preview comes up, or waits for the clock.
    Preview,
    /// Blue-green: scaling to full size before the switch (also an Event).
    Promoting,
    /// Blue-green: ready and checked, until a person promotes (also an Event).
    AwaitingPromotion,
    /// Blue-green: switched; the old revision stands by for the post-promotion analysis.
    PostPromotionAnalysis,
    /// The preRollout hook runs; the new revision has no pod yet.
    PreRolloutHook,
    /// The preRollout hook failed: rolled back with nothing scaled.
    PreRolloutHookFailed,
    /// The postRollout hook runs; the previous revision stands by.
    PostRolloutHook,
    /// The postRollout hook failed: rolled back to the previous revision.
    PostRolloutHookFailed,
    /// workloadRef with scaleDown progressively: the Deployment's pods are replaced.
    Adopting,
    /// The router's controller has not accepted the route's latest change:
    /// nothing is scaled down until it does (also an Event, at the timeout).
    TrafficNotAccepted,
    // On Events only.
    /// The current revision was marked failed.
    RolledBack,
    /// A person asked for a retry.
    Retried,
    /// The template changed: a new revision rolls out.
    RolloutStarted,
    /// A measurement did not succeed.
    AnalysisMeasurement,
    /// An analysis passed.
    AnalysisSuccessful,
    /// The current revision became stable.
    Promoted,
    /// `spec.paused` was lifted.
    Resumed,
    /// A ReplicaSet was created or scaled.
    ScalingReplicaSet,
    /// Canary: a person skipped the remaining steps.
    PromotedFull,
    /// Canary: a person finished the current step.
    StepPromoted,
    /// Canary: a step was done.
    StepCompleted,
    /// Canary: the route's weights changed.
    TrafficShifted,
    /// Blue-green: the preview's pods became available.
    PreviewReady,
    /// Blue-green: the active Service moved to the new revision.
    Switched,
    /// A Service now selects another revision.
    ServiceSwitched,
    /// A hook passed.
    HookSucceeded,
}

impl Reason {
    /// The string Events and conditions carry.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidSpec => "InvalidSpec",
            Reason::ProgressDeadlineExceeded => "ProgressDeadlineExceeded",
            Reason::RollingUpdate => "RollingUpdate",
            Reason::Paused => "Paused",
            Reason::Available => "Available",
            Reason::RolloutComplete => "RolloutComplete",
            Reason::AsExpected => "AsExpected",
            Reason::AnalysisFailed => "AnalysisFailed",
            Reason::InconclusiveAnalysis => "InconclusiveAnalysis",
            Reason::WaitingForAnalysis => "WaitingForAnalysis",
            Reason::Aborted => "Aborted",
            Reason::CanaryPauseStep => "CanaryPauseStep",
            Reason::CanaryStep => "CanaryStep",
            Reason::Preview => "Preview",
            Reason::Promoting => "Promoting",
            Reason::AwaitingPromotion => "AwaitingPromotion",
            Reason::PostPromotionAnalysis => "PostPromotionAnalysis",
            Reason::PreRolloutHook => "PreRolloutHook",
            Reason::PreRolloutHookFailed => "PreRolloutHookFailed",
            Reason::PostRolloutHook => "PostRolloutHook",
            Reason::PostRolloutHookFailed => "PostRolloutHookFailed",
            Reason::HookSucceeded => "HookSucceeded",
            Reason::Adopting => "Adopting",
            Reason::TrafficNotAccepted => "TrafficNotAccepted",
            Reason::RolledBack => "RolledBack",
            Reason::Retried => "Retried",
            Reason::RolloutStarted => "RolloutStarted",
            Reason::AnalysisMeasurement => "AnalysisMeasurement",
            Reason::AnalysisSuccessful => "AnalysisSuccessful",
            Reason::Promoted => "Promoted",
            Reason::Resumed => "Resumed",
            Reason::ScalingReplicaSet => "ScalingReplicaSet",
            Reason::PromotedFull => "PromotedFull",
            Reason::StepPromoted => "StepPromoted",
            Reason::StepCompleted => "StepCompleted",
            Reason::TrafficShifted => "TrafficShifted",
            Reason::PreviewReady => "PreviewReady",
            Reason::Switched => "Switched",
            Reason::ServiceSwitched => "ServiceSwitched",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Reason> for String {
    fn from(reason: Reason) -> Self {
        reason.as_str().to_string()
    }
}

/// A reason read back from a condition or an Event is a string.
impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Reason {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

#[cfg(test)]
mod tests {
    use super::Reason;

    /// The strings are the interface: this table changes only with a deliberate
    /// (breaking) rename. Every variant must be listed; the match makes sure.
    #[test]
    fn every_reason_keeps_its_string() {
        use Reason::*;
        let pinned = [
            (InvalidSpec, "InvalidSpec"),
            (ProgressDeadlineExceeded, "ProgressDeadlineExceeded"),
            (RollingUpdate, "RollingUpdate"),
            (Paused, "Paused"),
            (Available, "Available"),
            (RolloutComplete, "RolloutComplete"),
            (AsExpected, "AsExpected"),
            (AnalysisFailed, "AnalysisFailed"),
            (InconclusiveAnalysis, "InconclusiveAnalysis"),
            (WaitingForAnalysis, "WaitingForAnalysis"),
            (Aborted, "Aborted"),
            (CanaryPauseStep, "CanaryPauseStep"),
            (CanaryStep, "CanaryStep"),
            (Preview, "Preview"),
            (Promoting, "Promoting"),
            (AwaitingPromotion, "AwaitingPromotion"),
            (PostPromotionAnalysis, "PostPromotionAnalysis"),
            (PreRolloutHook, "PreRolloutHook"),
            (PreRolloutHookFailed, "PreRolloutHookFailed"),
            (PostRolloutHook, "PostRolloutHook"),
            (PostRolloutHookFailed, "PostRolloutHookFailed"),
            (HookSucceeded, "HookSucceeded"),
            (Adopting, "Adopting"),
            (TrafficNotAccepted, "TrafficNotAccepted"),
            (RolledBack, "RolledBack"),
            (Retried, "Retried"),
            (RolloutStarted, "RolloutStarted"),
            (AnalysisMeasurement, "AnalysisMeasurement"),
            (AnalysisSuccessful, "AnalysisSuccessful"),
            (Promoted, "Promoted"),
            (Resumed, "Resumed"),
            (ScalingReplicaSet, "ScalingReplicaSet"),
            (PromotedFull, "PromotedFull"),
            (StepPromoted, "StepPromoted"),
            (StepCompleted, "StepCompleted"),
            (TrafficShifted, "TrafficShifted"),
            (PreviewReady, "PreviewReady"),
            (Switched, "Switched"),
            (ServiceSwitched, "ServiceSwitched"),
        ];
        for (reason, text) in pinned {
            // Adding a variant fails to compile here until it is pinned above too.
            match reason {
                InvalidSpec
                | ProgressDeadlineExceeded
                | RollingUpdate
                | Paused
                | Available
                | RolloutComplete
                | AsExpected
                | AnalysisFailed
                | InconclusiveAnalysis
                | WaitingForAnalysis
                | Aborted
                | CanaryPauseStep
                | CanaryStep
                | Preview
                | Promoting
                | AwaitingPromotion
                | PostPromotionAnalysis
                | PreRolloutHook
                | PreRolloutHookFailed
                | PostRolloutHook
                | PostRolloutHookFailed
                | HookSucceeded
                | Adopting
                | TrafficNotAccepted
                | RolledBack
                | Retried
                | RolloutStarted
                | AnalysisMeasurement
                | AnalysisSuccessful
                | Promoted
                | Resumed
                | ScalingReplicaSet
                | PromotedFull
                | StepPromoted
                | StepCompleted
                | TrafficShifted
                | PreviewReady
                | Switched
                | ServiceSwitched => {}
            }
            assert_eq!(reason.as_str(), text);
            assert_eq!(reason.to_string(), text);
            assert_eq!(String::from(reason), text);
        }
        assert_eq!(pinned.len(), 39, "one row per variant");
    }
}
