//! Analysis: metrics that gate a rollout. Templates hold reusable metrics; a
//! strategy references them with args, or holds metrics inline.
use k8s_openapi::api::batch::v1::JobSpec;
use kube::core::Rule;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::credentials::{Authentication, Header, SecretKeyRef};
use super::schema::{METRICS_MAX, exactly_one_of};

/// Reusable metrics, in one namespace.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "serin.dev",
    version = "v1alpha1",
    kind = "AnalysisTemplate",
    namespaced,
    shortname = "at",
    category = "serin"
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateSpec {
    /// Values the metrics refer to as `{{args.NAME}}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Arg>,
    #[schemars(length(min = 1, max = METRICS_MAX))]
    pub metrics: Vec<Metric>,
}

/// Reusable metrics for every namespace. Secret args are read from the
/// namespace of the Release that uses the template.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "serin.dev",
    version = "v1alpha1",
    kind = "ClusterAnalysisTemplate",
    shortname = "cat",
    category = "serin"
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAnalysisTemplateSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Arg>,
    #[schemars(length(min = 1, max = METRICS_MAX))]
    pub metrics: Vec<Metric>,
}

/// A template argument: a default value, a value from a Secret key, or neither
/// (then the Release must supply it).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.value) && has(self.valueFrom))").message("set value or valueFrom, not both"))]
pub struct Arg {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ArgValueFrom>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArgValueFrom {
    pub secret_key_ref: SecretKeyRef,
}

/// One metric, measured `count` times (or until the rollout ends) every `interval`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    pub name: String,
    /// Time between measurements, e.g. "30s", "1m". Default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Measurements to take; absent means until the rollout ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub count: Option<i32>,
    /// Wait before the first measurement, e.g. "10s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay: Option<String>,
    /// CEL over `result`; true means Successful. Example: `result[0] >= 0.99`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    /// CEL over `result`; true means Failed. Checked before successCondition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<String>,
    /// Failed measurements tolerated; one more fails the analysis.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub failure_limit: i32,
    /// Inconclusive measurements tolerated; one more pauses the rollout.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub inconclusive_limit: i32,
    /// Consecutive errors tolerated; one more fails the analysis.
    #[serde(default = "default_consecutive_error_limit")]
    #[schemars(range(min = 0))]
    pub consecutive_error_limit: i32,
    /// Measure and report, but never fail or pause the rollout.
    #[serde(default)]
    pub dry_run: bool,
    pub provider: Provider,
}

fn default_consecutive_error_limit() -> i32 {
    4
}

/// The JSON name of each field of `Provider`, one per provider. A test
/// checks it against the struct.
const PROVIDER_FIELDS: [&str; 4] = ["prometheus", "web", "job", "judge"];

/// Exactly one provider: `provider must set exactly one of prometheus, web, job or judge`.
fn exactly_one_provider() -> Rule {
    exactly_one_of(&PROVIDER_FIELDS, "provider must set")
}

// Each field's type implements `analysis::Provider`; `analysis::provider`
// picks the one that is set. (Not a doc comment: that is the CRD's description.)
/// Where a measurement comes from: exactly one.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = exactly_one_provider())]
pub struct Provider {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<super::judge::JudgeProvider>,
}

/// An instant PromQL query. `result` is a number for a scalar, a list of
/// numbers for a vector.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusProvider {
    /// Base URL, e.g. http://prometheus.monitoring:9090
    pub address: String,
    pub query: String,
    /// Per-request timeout, e.g. "10s". Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
}

/// An HTTP request; `result` is the JSON response, or the value at `jsonPath`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebProvider {
    pub url: String,
    /// GET (default), POST or PUT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// A JSONPath into the response, e.g. `$.data.errorRate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// A Job: Successful when it completes, Failed when it fails.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobProvider {
    #[schemars(schema_with = "super::schema::stripped_job_spec")]
    pub spec: JobSpec,
}

/// Analysis attached to a strategy: templates with args, and/or inline metrics.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysis {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<TemplateRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Arg>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = METRICS_MAX))]
    pub metrics: Vec<Metric>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRef {
    pub template_name: String,
    /// Refer to a ClusterAnalysisTemplate instead of an AnalysisTemplate.
    #[serde(default)]
    pub cluster_scope: bool,
}

/// One measurement's outcome.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MeasurementPhase {
    Successful,
    Failed,
    Inconclusive,
    Error,
}

/// A measurement kept in status (the last few per metric).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    pub phase: MeasurementPhase,
    /// The value, as text (or the error message for Error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub finished_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
}

/// Where an analysis stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AnalysisPhase {
    Running,
    Successful,
    Failed,
    Inconclusive,
}

/// Counts and recent measurements of one metric, for the current revision.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricStatus {
    pub name: String,
    pub phase: AnalysisPhase,
    #[serde(default)]
    pub count: i32,
    #[serde(default)]
    pub successful: i32,
    #[serde(default)]
    pub failed: i32,
    #[serde(default)]
    pub inconclusive: i32,
    #[serde(default)]
    pub error: i32,
    #[serde(default)]
    pub consecutive_error: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// The last few measurements, newest last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
    /// A Job measurement in flight: the Job's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// A judge's last result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<super::judge::JudgeResult>,
}

/// The analysis of one revision.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisStatus {
    /// The revision analysed; results reset when it changes.
    pub revision: String,
    /// For a canary analysis step: the step's index; results reset when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i32>,
    pub phase: AnalysisPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub started_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_provider_rule_names_every_provider_field() {
        let mut fields = PROVIDER_FIELDS.to_vec();
        fields.sort_unstable();
        assert_eq!(
            super::super::schema::property_names::<Provider>(),
            fields,
            "PROVIDER_FIELDS lists Provider's fields"
        );
    }
}
