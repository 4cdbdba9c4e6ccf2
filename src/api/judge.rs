//! The `judge` analysis provider: the canary's metrics against the
//! baseline's, from Prometheus, judged by a rank test or a sequential test of
//! rates, classified and scored.
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::credentials::{Authentication, Header};

/// Metrics judged per side, at most; groups, at most.
pub const JUDGE_METRICS_MAX: u64 = 16;
pub const JUDGE_GROUPS_MAX: u64 = 8;
/// Samples per side a rank-test metric keeps (the most recent ones): the
/// Hodges-Lehmann shift holds canary x baseline differences in memory.
pub const JUDGE_SAMPLES_MAX: usize = 600;

/// Queries are PromQL, run once per side. `{{judge.revision}}` becomes the
/// side's pod template hash (the `serin.dev/revision` label), `{{judge.role}}`
/// its pods' `serin.dev/role` label (`baseline` on baseline pods, else ""),
/// `{{judge.side}}` the side (`canary` or `baseline`), and `{{judge.step}}`
/// is `step`, for `increase(x[{{judge.step}}])`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.groups) || self.metrics.all(m, has(m.group) && self.groups.exists(g, g.name == m.group))")
        .message("with groups, every metric names one of them in group"),
    validation = Rule::new("has(self.groups) || self.metrics.all(m, !has(m.group))")
        .message("a metric names a group, but there are no groups"),
    validation = Rule::new("self.metrics.all(m, self.metrics.exists_one(n, n.name == m.name))")
        .message("judge metric names must be unique"),
    validation = Rule::new("!has(self.groups) || self.groups.all(g, self.groups.exists_one(h, h.name == g.name))")
        .message("group names must be unique"),
    validation = Rule::new("self.marginalScore <= self.passScore")
        .message("marginalScore must not exceed passScore"),
)]
pub struct JudgeProvider {
    /// Prometheus base URL, e.g. http://prometheus.monitoring:9090
    pub address: String,
    /// Per-request timeout, e.g. "10s". Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
    /// Spacing of the samples, and the length of each interval of counts, in
    /// whole seconds. Default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Judge rank-test metrics over only the most recent `lookback` of the
    /// analysis, e.g. "10m". Default: everything since the analysis started.
    /// Sequential metrics always count from the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookback: Option<String>,
    /// Per metric, the chance of calling an unchanged canary a regression: the
    /// rank test's interval is at 1 - alpha, and the sequential test keeps
    /// its false alarms under alpha however often it is checked. Default 0.05.
    #[serde(default = "default_alpha")]
    #[schemars(range(min = 0.0001, max = 0.5))]
    pub alpha: f64,
    /// Score (0-100) at or above which the canary passes. Default 95.
    #[serde(default = "default_pass")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub pass_score: f64,
    /// Score at or above which a canary that does not pass is marginal
    /// (Inconclusive) rather than failed. Default 75.
    #[serde(default = "default_marginal")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub marginal_score: f64,
    /// Weighted groups of metrics. Without groups every metric weighs the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = JUDGE_GROUPS_MAX))]
    pub groups: Option<Vec<JudgeGroup>>,
    #[schemars(length(min = 1, max = JUDGE_METRICS_MAX))]
    pub metrics: Vec<JudgeMetric>,
}

fn default_alpha() -> f64 {
    0.05
}

fn default_pass() -> f64 {
    95.0
}

fn default_marginal() -> f64 {
    75.0
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JudgeGroup {
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Its share of the score, relative to the other groups' weights.
    #[schemars(range(min = 0.0))]
    pub weight: f64,
}

/// One judged metric: a rank test of samples (`query`, or `canaryQuery` and
/// `baselineQuery`), or a sequential test of counts (`sequential`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("[has(self.query), has(self.canaryQuery) || has(self.baselineQuery), has(self.sequential)].filter(x, x).size() == 1")
        .message("a judge metric sets exactly one of query, canaryQuery with baselineQuery, or sequential"),
    validation = Rule::new("has(self.canaryQuery) == has(self.baselineQuery)")
        .message("canaryQuery and baselineQuery go together"),
    validation = Rule::new("!has(self.criticalIncrease) || self.criticalIncrease >= self.allowedIncrease")
        .message("criticalIncrease must be at least allowedIncrease"),
)]
pub struct JudgeMetric {
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// The group it counts in (one of `groups`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// One query for both sides, told apart by `{{judge.revision}}` or
    /// `{{judge.role}}`: its values over the window are the samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_query: Option<String>,
    /// Counts per `step` for the sequential test of the two sides' rates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<SequentialCounts>,
    /// Which change is a regression. Default increase.
    #[serde(default)]
    pub direction: JudgeDirection,
    /// The canary's mean over the baseline's that a higher canary must pass to
    /// count (1.1: 10% higher). Default 1: any difference the test is sure of.
    #[serde(default = "default_ratio")]
    #[schemars(range(min = 1.0))]
    pub allowed_increase: f64,
    /// The ratio a lower canary must go under to count (0.9). Default 1.
    #[serde(default = "default_ratio")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub allowed_decrease: f64,
    /// A failure of this metric fails the whole analysis, whatever the score
    /// (for an increase, only past `criticalIncrease`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub critical: bool,
    /// The ratio past which a failing increase of a critical metric fails
    /// the analysis. Default: every failing increase does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0))]
    pub critical_increase: Option<f64>,
    /// NaN samples (0/0 rates): left out (`remove`, default) or counted as 0 (`replace`).
    #[serde(default)]
    pub nan_strategy: NanStrategy,
    /// No data fails the metric, instead of leaving it out of the score.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub must_have_data: bool,
}

fn default_ratio() -> f64 {
    1.0
}

/// Two queries per side, each counted over `[{{judge.step}}]`: events (errors)
/// and the total they are out of (requests).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SequentialCounts {
    /// e.g. sum(increase(http_errors_total{revision="{{judge.revision}}"}[{{judge.step}}]))
    pub events: String,
    /// e.g. sum(increase(http_requests_total{revision="{{judge.revision}}"}[{{judge.step}}]))
    pub total: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum JudgeDirection {
    /// Higher is worse (latency, errors).
    #[default]
    Increase,
    /// Lower is worse (throughput, success ratio).
    Decrease,
    /// Any change is.
    Both,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NanStrategy {
    #[default]
    Remove,
    Replace,
}

/// The judge's last result, kept in its metric's status for people and tools:
/// what `kubectl serin get` shows.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JudgeResult {
    /// 0-100.
    pub score: f64,
    /// Pass, Marginal, Fail or Inconclusive.
    pub verdict: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<JudgedMetric>,
}

/// One judged metric's classification and effect.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JudgedMetric {
    pub name: String,
    /// `rank` or `sequential`.
    pub test: String,
    /// Pass, High, Low or NoData.
    pub classification: String,
    /// The classification counts against the canary.
    #[serde(default)]
    pub failed: bool,
    /// It fails the analysis whatever the score.
    #[serde(default)]
    pub critical: bool,
    /// The canary's mean (sequential: rate) over the baseline's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Rank test: the Hodges-Lehmann shift, canary minus baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<f64>,
    /// At 1 - alpha: of the shift (rank test) or of the rate ratio (sequential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// Samples per side (rank test) or intervals (sequential test) judged.
    #[serde(default)]
    pub samples: i32,
}
