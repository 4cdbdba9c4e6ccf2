//! Lifecycle hooks: analyses run once per revision, before it gets any pod
//! (`preRollout`, a migration) and once it has every pod and all traffic,
//! before the previous revision goes (`postRollout`, a smoke test).
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::analysis::{AnalysisStatus, Arg, RolloutAnalysis, TemplateRef};

/// `spec.hooks`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hooks {
    /// Runs once per new revision, before it gets any pod or traffic. A
    /// failure rolls the revision back (`PreRolloutHookFailed`) with nothing
    /// scaled; a retry runs it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_rollout: Option<Hook>,
    /// Runs once the new revision has every pod available and all traffic,
    /// before the previous revision scales away. A failure rolls back to the
    /// previous revision (`PostRolloutHookFailed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_rollout: Option<Hook>,
}

/// A hook: templates with args, like a canary analysis step. A template with
/// one Job metric is the usual migration or smoke test. A metric without
/// `count` is measured once.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    /// AnalysisTemplates (or ClusterAnalysisTemplates) whose metrics make up the hook.
    #[schemars(length(min = 1, max = 8))]
    pub templates: Vec<TemplateRef>,
    /// Values for the templates' args.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Arg>,
}

impl Hook {
    /// The hook in the shape every analysis is measured in.
    pub fn to_rollout_analysis(&self) -> RolloutAnalysis {
        RolloutAnalysis {
            templates: self.templates.clone(),
            args: self.args.clone(),
            metrics: Vec::new(),
        }
    }
}

/// `status.hooks`: the hooks of the revisions they ran for.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HooksStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_rollout: Option<AnalysisStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_rollout: Option<AnalysisStatus>,
}

/// Which hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookKind {
    PreRollout,
    PostRollout,
}

impl HookKind {
    /// The field's name, as in `spec.hooks.preRollout`.
    pub fn field(self) -> &'static str {
        match self {
            HookKind::PreRollout => "preRollout",
            HookKind::PostRollout => "postRollout",
        }
    }

    /// The value of [`super::HOOK_LABEL`] on its Jobs.
    pub fn label(self) -> &'static str {
        match self {
            HookKind::PreRollout => "pre-rollout",
            HookKind::PostRollout => "post-rollout",
        }
    }

    pub fn spec(self, hooks: &Hooks) -> Option<&Hook> {
        match self {
            HookKind::PreRollout => hooks.pre_rollout.as_ref(),
            HookKind::PostRollout => hooks.post_rollout.as_ref(),
        }
    }

    pub fn status(self, hooks: &HooksStatus) -> Option<&AnalysisStatus> {
        match self {
            HookKind::PreRollout => hooks.pre_rollout.as_ref(),
            HookKind::PostRollout => hooks.post_rollout.as_ref(),
        }
    }

    pub fn status_mut(self, hooks: &mut HooksStatus) -> &mut Option<AnalysisStatus> {
        match self {
            HookKind::PreRollout => &mut hooks.pre_rollout,
            HookKind::PostRollout => &mut hooks.post_rollout,
        }
    }
}
