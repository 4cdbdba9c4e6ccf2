//! `spec.configSnapshots`: config that belongs to its revision.
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Copy the ConfigMaps (and, separately opted in, the Secrets) the pod
/// template refers to into immutable, content-hashed copies kept with each
/// revision. A change to one rolls out like a template change, and going
/// back to a revision brings back its config.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigSnapshots {
    /// Snapshot the ConfigMaps of env, envFrom, volumes and projected volumes.
    #[serde(default)]
    pub config_maps: bool,
    /// Snapshot the Secrets the same way. The controller needs access to
    /// Secrets for this (the chart's `configSnapshots.secrets`).
    #[serde(default)]
    pub secrets: bool,
}
