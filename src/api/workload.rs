//! `spec.workloadRef`: a Release that takes its pod template from an existing
//! Deployment, and adopts its pods.
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The Deployment whose pod template the Release rolls out, in place of
/// `spec.template`. serin follows its template's changes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.apiVersion == 'apps/v1' && self.kind == 'Deployment'")
        .message("spec.workloadRef must refer to an apps/v1 Deployment"),
)]
pub struct WorkloadRef {
    pub api_version: String,
    pub kind: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// What serin does with the Deployment's own pods: `never` touches it;
    /// `onsuccess` scales it to 0 once the Release is fully available;
    /// `progressively` scales it down as the Release's pods become available,
    /// within maxSurge and maxUnavailable. Default never.
    #[serde(default)]
    pub scale_down: ScaleDown,
}

/// `spec.workloadRef.scaleDown`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ScaleDown {
    #[default]
    #[serde(rename = "never")]
    Never,
    #[serde(rename = "onsuccess")]
    OnSuccess,
    #[serde(rename = "progressively")]
    Progressively,
}
