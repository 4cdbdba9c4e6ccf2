//! The `Release` custom resource: a pod template rolled out by a strategy.
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::analysis::{AnalysisStatus, RolloutAnalysis};
use super::bluegreen::BlueGreenStrategy;
use super::canary::CanaryStrategy;
use super::int_or_percent::{IntOrPercent, MAX_UNAVAILABLE_MESSAGE, MAX_UNAVAILABLE_RULE};
use super::schema::{stripped_label_selector, stripped_pod_template};

/// A workload rolled out progressively. It takes the place of a Deployment.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
// kube-derive repeats `type_ = ...` across printcolumns, which clippy mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "serin.dev",
    version = "v1alpha1",
    kind = "Release",
    namespaced,
    shortname = "rls",
    category = "serin",
    status = "ReleaseStatus",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Strategy", type_ = "string", json_path = ".status.strategy"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Step", type_ = "integer", json_path = ".status.currentStepIndex"),
    printcolumn(name = "Weight", type_ = "integer", json_path = ".status.canaryWeight"),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Current", type_ = "integer", json_path = ".status.replicas"),
    printcolumn(name = "Up-to-date", type_ = "integer", json_path = ".status.updatedReplicas"),
    printcolumn(name = "Available", type_ = "integer", json_path = ".status.availableReplicas"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    // `kubectl get rls -o wide` only (priority 1): which revisions and why.
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas", priority = 1),
    printcolumn(
        name = "Current-Revision",
        type_ = "string",
        json_path = ".status.currentRevision",
        priority = 1
    ),
    printcolumn(
        name = "Stable-Revision",
        type_ = "string",
        json_path = ".status.stableRevision",
        priority = 1
    ),
    printcolumn(
        name = "Preview-Revision",
        type_ = "string",
        json_path = ".status.blueGreen.previewRevision",
        priority = 1
    ),
    printcolumn(
        name = "Failed-Revision",
        type_ = "string",
        json_path = ".status.failedRevision",
        priority = 1
    ),
    printcolumn(name = "Message", type_ = "string", json_path = ".status.message", priority = 1)
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(
        "!has(self.template) || !has(self.selector.matchLabels) || self.selector.matchLabels.all(k, \
         has(self.template.metadata) && has(self.template.metadata.labels) && \
         k in self.template.metadata.labels && \
         self.template.metadata.labels[k] == self.selector.matchLabels[k])"
    ).message("spec.selector.matchLabels must match spec.template.metadata.labels"),
    validation = Rule::new("has(self.template) != has(self.workloadRef)")
        .message("set exactly one of spec.template and spec.workloadRef")
        .field_path(".workloadRef"),
    validation = Rule::new("self.progressDeadlineSeconds > self.minReadySeconds")
        .message("spec.progressDeadlineSeconds must be greater than spec.minReadySeconds"),
)]
pub struct ReleaseSpec {
    /// Desired number of pods.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// Selects the pods of every revision. Must match the template's labels.
    #[schemars(schema_with = "stripped_label_selector")]
    pub selector: LabelSelector,
    /// The pods to run. A change here starts a new revision. Not with workloadRef.
    #[serde(default, skip_serializing_if = "is_unset")]
    #[schemars(schema_with = "stripped_pod_template")]
    pub template: PodTemplateSpec,
    /// Take the pod template from this Deployment instead of `template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_ref: Option<super::workload::WorkloadRef>,
    /// Seconds a new pod must be Ready before it counts as available.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub min_ready_seconds: i32,
    /// Seconds the new revision has to become available before serin rolls back.
    #[serde(default = "default_progress_deadline_seconds")]
    #[schemars(range(min = 1))]
    pub progress_deadline_seconds: i32,
    /// Old ReplicaSets kept at zero replicas, for undo.
    #[serde(default = "default_revision_history_limit")]
    #[schemars(range(min = 0))]
    pub revision_history_limit: i32,
    /// Freezes the rollout where it stands.
    #[serde(default)]
    pub paused: bool,
    /// How a new revision replaces the old one.
    pub strategy: Strategy,
    /// Analyses run once per revision: before its first pod, and after it has
    /// every pod and all traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<super::hooks::Hooks>,
    /// Keep the ConfigMaps (and Secrets) the pods read with each revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_snapshots: Option<super::snapshots::ConfigSnapshots>,
}

fn is_unset(template: &PodTemplateSpec) -> bool {
    *template == PodTemplateSpec::default()
}

fn default_replicas() -> i32 {
    1
}
fn default_progress_deadline_seconds() -> i32 {
    600
}
fn default_revision_history_limit() -> i32 {
    10
}

/// Exactly one strategy is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("[has(self.rolling), has(self.blueGreen), has(self.canary)].filter(x, x).size() == 1")
        .message("spec.strategy must set exactly one of rolling, blueGreen or canary"),
)]
pub struct Strategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling: Option<RollingStrategy>,
    /// Bring the new revision up beside the old one, then switch all traffic at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStrategy>,
    /// Shift traffic to the new revision step by step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
}

impl Strategy {
    /// The strategy's name as shown in status and printer columns.
    pub fn name(&self) -> &'static str {
        if self.blue_green.is_some() {
            "BlueGreen"
        } else if self.canary.is_some() {
            "Canary"
        } else {
            "Rolling"
        }
    }
}

/// Replace pods a few at a time, like a Deployment's RollingUpdate.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(
        "!(has(self.maxSurge) && has(self.maxUnavailable) && \
         (self.maxSurge == 0 || self.maxSurge == '0%') && \
         (self.maxUnavailable == 0 || self.maxUnavailable == '0%'))"
    ).message("maxSurge and maxUnavailable may not both be 0"),
    validation = Rule::new(MAX_UNAVAILABLE_RULE).message(MAX_UNAVAILABLE_MESSAGE).field_path(".maxUnavailable"),
)]
pub struct RollingStrategy {
    /// Pods above `replicas` during a rollout: an int or a percent, rounded up. Default 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrPercent>,
    /// Pods below `replicas` during a rollout: an int or a percent, rounded down. Default 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrPercent>,
    /// Metrics measured in the background for the whole rollout; a failure rolls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysis>,
}

/// What the controller last observed and decided.
///
/// Defaults to `{observedGeneration: 0}` when read, so a Release serin has not
/// reconciled yet reads as in progress to kstatus (generation 1 is not observed).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("default" = {"observedGeneration": 0}))]
pub struct ReleaseStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The strategy in use, for printer columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Ready, Progressing, Degraded, Reconciling and Stalled (the kstatus convention).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::schema::conditions")]
    pub conditions: Vec<Condition>,
    /// Revision (pod template hash) of the current spec.template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    /// The last revision that was fully rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// A revision that was rolled back. It is not tried again until the
    /// template changes or a person asks for a retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_revision: Option<String>,
    /// When the rollout of currentRevision started (or resumed), for the progress deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_start_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// Since when a scale-down has waited for the router's controller to
    /// accept the route's latest change (Gateway API `status.parents`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_unaccepted_since: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub updated_replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    #[serde(default)]
    pub available_replicas: i32,
    /// Label selector of all pods, for the scale subresource and HPAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The analysis of the revision being rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisStatus>,
    /// Canary: index of the step being carried out; the number of steps once promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<i32>,
    /// Canary: percent of traffic the canary revision receives now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<i32>,
    /// Canary: where the steps stand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStatus>,
    /// Blue-green: the preview, the switch and their checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStatus>,
    /// The hooks of the current revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<super::hooks::HooksStatus>,
    /// Requests from a person, written through the status subresource so GitOps
    /// tools never see the spec change. The controller acts on them and clears them:
    /// `kubectl patch release NAME --subresource=status --type=merge -p '{"status":{"control":{"retry":true}}}'`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<Control>,
}

/// Human controls, consumed by the controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Control {
    /// Try the current revision again after a rollback, an abort or an inconclusive analysis.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retry: bool,
    /// Canary: finish the current step now (a pause without duration waits for this).
    /// Blue-green: switch to the preview now (without auto-promotion, the switch waits for this).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub promote: bool,
    /// Canary: skip the remaining steps and promote the canary to stable.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub promote_full: bool,
    /// Send all traffic back to the stable revision and scale the canary down.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub abort: bool,
}

/// Where a blue-green rollout stands. Times are rounded up to the second.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStatus {
    /// The revision the active Service selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_revision: Option<String>,
    /// The revision being previewed (and then switched to); absent between rollouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_revision: Option<String>,
    /// When the preview first ran its pods, available; auto-promotion counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_ready_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// The switch was decided: the preview scales to full size, then takes the active Service.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub promoting: bool,
    /// When the active Service moved to the preview revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switched_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// Since when the new revision has lacked available pods; the progress deadline counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable_since: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// When revisions that no longer take traffic scale down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<AnalysisStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis: Option<AnalysisStatus>,
}

/// Where a canary's steps stand.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// The revision these steps belong to.
    pub revision: String,
    /// When the current step started: pause durations and the progress deadline count from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// Since when the canary has lacked available pods; the progress deadline counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable_since: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// The analysis of the current step, when it is an analysis step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_analysis: Option<AnalysisStatus>,
    /// After a promotion, when the previous stable revision scales down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// Where a Release stands, at a glance.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    Progressing,
    Paused,
    Healthy,
    Degraded,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}
