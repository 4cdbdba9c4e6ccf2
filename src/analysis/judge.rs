//! The judge provider: each metric's samples (or counts) for the canary and
//! the baseline from Prometheus range queries over the analysis so far,
//! judged by the rank test or the sequential test, classified and scored
//! (`judgement`). Fetching is here; [`verdict`] is pure.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};
use statrs::distribution::{Beta, ContinuousCDF};

use super::ProviderError;
use super::judgement::{self, Classification, Group, MetricJudgement, Rule, Verdict};
use super::prometheus::{self, Series, Server};
use super::provider::{Env, Outcome, Provider, SecretKey, Secrets};
use super::sequential_test::{self, Interval};
use super::template::{self, Args};
use super::web::headers;
use crate::api::{
    self, JUDGE_SAMPLES_MAX, JudgeDirection, JudgeMetric, JudgeProvider, JudgeResult, JudgedMetric, MeasurementPhase,
};

impl Provider for JudgeProvider {
    fn name(&self) -> &'static str {
        "judge"
    }

    fn render(&self, args: &Args, hidden: &BTreeSet<String>) -> Result<api::Provider, String> {
        let mut p = self.clone();
        p.address = template::url(&p.address, args)?;
        for h in &mut p.headers {
            h.value = template::header_value(&h.value, args)?;
        }
        for m in &mut p.metrics {
            let queries = [&mut m.query, &mut m.canary_query, &mut m.baseline_query];
            for query in queries.into_iter().flatten() {
                *query = template::promql(query, args, hidden)?;
            }
            if let Some(counts) = &mut m.sequential {
                counts.events = template::promql(&counts.events, args, hidden)?;
                counts.total = template::promql(&counts.total, args, hidden)?;
            }
        }
        Ok(api::Provider {
            judge: Some(p),
            ..Default::default()
        })
    }

    fn check(&self) -> Result<(), String> {
        step(self)?;
        lookback(self)?;
        Ok(())
    }

    fn secret_keys(&self) -> Vec<SecretKey> {
        prometheus::auth_secret_keys(self.authentication.as_ref())
    }

    fn check_secrets(&self, secrets: &Secrets) -> Result<(), String> {
        prometheus::check_auth_secrets(self.authentication.as_ref(), secrets)
    }

    fn timeout(&self) -> Option<&str> {
        self.timeout.as_deref()
    }

    fn measure<'a>(&'a self, env: &'a Env<'a>) -> BoxFuture<'a, Result<Outcome, kube::Error>> {
        Box::pin(async move {
            let credentials = prometheus::credentials(self.authentication.as_ref(), env.secrets);
            let headers = headers(&self.headers);
            let server = Server {
                http: env.http,
                address: &self.address,
                timeout: env.timeout,
                headers: &headers,
                credentials: &credentials,
            };
            let data = match fetch(self, &server, env).await {
                Ok(data) => data,
                Err(error) => return Ok(Outcome::Error(error)),
            };
            // Hodges-Lehmann sorts up to 600 x 600 differences per metric: off
            // the reconcile's thread, so other Releases' rounds go on.
            let spec = self.clone();
            Ok(match tokio::task::spawn_blocking(move || verdict(&spec, &data)).await {
                Ok(judged) => Outcome::Scored {
                    value: judged.value,
                    shown: judged.shown,
                    phase: judged.phase,
                    result: Box::new(judged.result),
                },
                Err(error) => Outcome::Error(ProviderError(format!("the judge's computation failed: {error}"))),
            })
        })
    }
}

/// What was fetched for one metric.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricData {
    /// Rank test: each side's samples.
    Samples { canary: Vec<f64>, baseline: Vec<f64> },
    /// Sequential test: the counts of each interval both sides have.
    Counts(Vec<Interval>),
}

/// The judge's answer: the value its conditions see, the text shown, and the
/// phase it means when the metric sets no conditions.
#[derive(Clone, Debug, PartialEq)]
pub struct Judged {
    pub value: Value,
    pub shown: String,
    pub phase: MeasurementPhase,
    /// What status keeps of it.
    pub result: JudgeResult,
}

/// Classifies every metric from `data` (in spec order) and scores them.
pub fn verdict(spec: &JudgeProvider, data: &[MetricData]) -> Judged {
    let judgements: Vec<MetricJudgement> = spec
        .metrics
        .iter()
        .zip(data)
        .map(|(metric, data)| judge_metric(metric, data, spec.alpha))
        .collect();
    let groups: Vec<(f64, Vec<MetricJudgement>)> = match &spec.groups {
        Some(groups) => groups
            .iter()
            .map(|g| {
                let members = spec
                    .metrics
                    .iter()
                    .zip(&judgements)
                    .filter(|(m, _)| m.group.as_deref() == Some(g.name.as_str()))
                    .map(|(_, j)| j.clone())
                    .collect();
                (g.weight, members)
            })
            .collect(),
        None => judgements.iter().map(|j| (1.0, vec![j.clone()])).collect(),
    };
    let groups: Vec<Group> = groups
        .iter()
        .map(|(weight, metrics)| Group {
            weight: *weight,
            metrics,
        })
        .collect();
    let score = judgement::score(&groups, spec.pass_score, spec.marginal_score);
    let score_value = (score.score * 100.0).round() / 100.0;

    let judged: Vec<JudgedMetric> = spec
        .metrics
        .iter()
        .zip(data)
        .zip(&judgements)
        .map(|((metric, data), judgement)| judged_metric(metric, data, judgement))
        .collect();
    let metrics: serde_json::Map<String, Value> = judged.iter().map(|m| (m.name.clone(), metric_value(m))).collect();
    let verdict_name = match score.verdict {
        Verdict::Pass => "Pass",
        Verdict::Marginal => "Marginal",
        Verdict::Fail => "Fail",
        Verdict::Inconclusive => "Inconclusive",
    };
    let phase = match score.verdict {
        Verdict::Pass => MeasurementPhase::Successful,
        Verdict::Fail => MeasurementPhase::Failed,
        Verdict::Marginal | Verdict::Inconclusive => MeasurementPhase::Inconclusive,
    };
    // Failed metrics first: the analysis message keeps only the start.
    let mut order: Vec<usize> = (0..judgements.len()).collect();
    order.sort_by_key(|&i| !judgements[i].failed);
    let described: Vec<String> = order
        .iter()
        .map(|&i| describe(&spec.metrics[i], &data[i], &judgements[i]))
        .collect();
    Judged {
        value: json!({ "score": score_value, "verdict": verdict_name, "metrics": metrics }),
        shown: format!(
            "{verdict_name}, score {}: {}",
            number(score.score),
            described.join("; ")
        ),
        phase,
        result: JudgeResult {
            score: score_value,
            verdict: verdict_name.to_string(),
            metrics: judged,
        },
    }
}

fn judge_metric(metric: &JudgeMetric, data: &MetricData, alpha: f64) -> MetricJudgement {
    let rule = Rule {
        direction: match metric.direction {
            JudgeDirection::Increase => judgement::Direction::Increase,
            JudgeDirection::Decrease => judgement::Direction::Decrease,
            JudgeDirection::Both => judgement::Direction::Both,
        },
        allowed_increase: metric.allowed_increase,
        allowed_decrease: metric.allowed_decrease,
        critical: metric.critical,
        critical_increase: metric.critical_increase.unwrap_or(metric.allowed_increase),
        nan_strategy: match metric.nan_strategy {
            api::NanStrategy::Remove => judgement::NanStrategy::Remove,
            api::NanStrategy::Replace => judgement::NanStrategy::Replace,
        },
        must_have_data: metric.must_have_data,
        confidence: 1.0 - alpha,
    };
    match data {
        MetricData::Samples { canary, baseline } => judgement::classify(canary, baseline, &rule),
        MetricData::Counts(intervals) => judge_counts(intervals, &rule, alpha),
    }
}

/// The sequential test as a classification: High (Low) once the evidence
/// crossed 1/alpha with the canary's pooled rate above (below) the baseline's
/// by more than allowed, NoData without an interval of requests on both sides.
fn judge_counts(intervals: &[Interval], rule: &Rule, alpha: f64) -> MetricJudgement {
    let direction = match rule.direction {
        judgement::Direction::Increase => sequential_test::Direction::Increase,
        judgement::Direction::Decrease => sequential_test::Direction::Decrease,
        judgement::Direction::Both => sequential_test::Direction::Both,
    };
    let test = sequential_test::sequential(intervals, alpha, direction).filter(|t| t.intervals_used > 0);
    let Some(test) = test else {
        return MetricJudgement::no_data(rule);
    };
    let ratio = test.rate_ratio;
    // NaN (a baseline without events) counts as above any limit.
    let classification = match test.crossed_at {
        Some(_) if judgement::above(ratio, rule.allowed_increase) => Classification::High,
        Some(_) if judgement::below(ratio, rule.allowed_decrease) => Classification::Low,
        _ => Classification::Pass,
    };
    MetricJudgement {
        interval: rate_ratio_interval(intervals, 1.0 - alpha),
        ..MetricJudgement::classified(classification, ratio, rule)
    }
}

/// A `confidence` interval for the canary's rate over the baseline's, all
/// intervals pooled: Clopper-Pearson for the canary's share of the events,
/// mapped to the ratio through the two sides' totals. For the message; the
/// decision is the sequential test's.
fn rate_ratio_interval(intervals: &[Interval], confidence: f64) -> Option<(f64, f64)> {
    let used = intervals
        .iter()
        .filter(|i| i.canary_total > 0.0 && i.baseline_total > 0.0);
    let (mut a, mut s, mut c, mut b) = (0.0, 0.0, 0.0, 0.0);
    for i in used {
        a += i.canary_events;
        s += i.canary_events + i.baseline_events;
        c += i.canary_total;
        b += i.baseline_total;
    }
    if s <= 0.0 || c <= 0.0 || b <= 0.0 || !s.is_finite() {
        return None;
    }
    let tail = (1.0 - confidence) / 2.0;
    let ratio = |share: f64| share / (1.0 - share) * b / c;
    if s > EXACT_INTERVAL_EVENTS_MAX {
        // statrs' Beta quantile does not return for lopsided shapes past
        // ~1e7 (Beta(1e7, 1)); Wilson's interval is as good at these counts.
        let z = statrs::distribution::Normal::standard().inverse_cdf(1.0 - tail);
        let p = a / s;
        let scale = 1.0 + z * z / s;
        let center = (p + z * z / (2.0 * s)) / scale;
        let half = z * (p * (1.0 - p) / s + z * z / (4.0 * s * s)).sqrt() / scale;
        return Some((ratio((center - half).max(0.0)), ratio((center + half).min(1.0))));
    }
    let share_low = if a <= 0.0 {
        0.0
    } else {
        Beta::new(a, s - a + 1.0).ok()?.inverse_cdf(tail)
    };
    let share_high = if a >= s {
        1.0
    } else {
        Beta::new(a + 1.0, s - a).ok()?.inverse_cdf(1.0 - tail)
    };
    Some((ratio(share_low), ratio(share_high)))
}

fn judged_metric(metric: &JudgeMetric, data: &MetricData, j: &MetricJudgement) -> JudgedMetric {
    let finite = |v: f64| v.is_finite().then_some(v);
    let (test, samples) = match data {
        MetricData::Samples { canary, baseline } => ("rank", canary.len().min(baseline.len())),
        MetricData::Counts(intervals) => ("sequential", intervals.len()),
    };
    JudgedMetric {
        name: metric.name.clone(),
        test: test.into(),
        classification: format!("{:?}", j.classification),
        failed: j.failed,
        critical: j.critical_failure,
        ratio: finite(j.ratio),
        shift: j.shift.and_then(finite),
        interval: j
            .interval
            .filter(|(low, high)| low.is_finite() && high.is_finite())
            .map(|(low, high)| vec![low, high]),
        p_value: j.p_value.and_then(finite),
        samples: i32::try_from(samples).unwrap_or(i32::MAX),
    }
}

/// A metric as conditions see it: every field there, null when unknown, so
/// `result.metrics.errors.ratio` never fails on a missing key.
fn metric_value(m: &JudgedMetric) -> Value {
    json!({
        "test": m.test,
        "classification": m.classification,
        "failed": m.failed,
        "critical": m.critical,
        "ratio": m.ratio,
        "shift": m.shift,
        "interval": m.interval,
        "pValue": m.p_value,
        "samples": m.samples,
    })
}

/// `"errors" High: rate ratio 1.50 in [1.18, 1.91]` (the interval at 1 - alpha), or
/// `"latency" Pass: ratio 1.00, shift 0 in [-0.0400, 0.0400], p 1.00`.
fn describe(metric: &JudgeMetric, data: &MetricData, j: &MetricJudgement) -> String {
    let mut text = format!("{:?} {:?}", metric.name, j.classification);
    if j.classification == Classification::NoData {
        return text;
    }
    let what = match data {
        MetricData::Samples { .. } => "ratio",
        MetricData::Counts(_) => "rate ratio",
    };
    text += &format!(": {what} {}", number(j.ratio));
    match (data, j.interval) {
        (MetricData::Counts(_), Some((low, high))) => text += &format!(" in [{}, {}]", number(low), number(high)),
        (MetricData::Samples { .. }, interval) => {
            if let Some(shift) = j.shift {
                text += &format!(", shift {}", number(shift));
            }
            if let Some((low, high)) = interval {
                text += &format!(" in [{}, {}]", number(low), number(high));
            }
        }
        _ => {}
    }
    if let Some(p) = j.p_value {
        text += &format!(", p {}", number(p));
    }
    text
}

/// Three significant digits, or "n/a".
fn number(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let digits = (2 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
    format!("{v:.digits$}")
}

fn step(spec: &JudgeProvider) -> Result<Duration, String> {
    let step = match &spec.step {
        Some(text) => api::validation::duration(text).map_err(|e| format!("judge step: {e}"))?,
        None => DEFAULT_STEP,
    };
    if step < Duration::from_secs(1) {
        return Err(format!(
            "judge step must be at least 1s, got {:?}",
            spec.step.as_deref().unwrap_or_default()
        ));
    }
    Ok(step)
}

fn lookback(spec: &JudgeProvider) -> Result<Option<Duration>, String> {
    spec.lookback
        .as_deref()
        .map(|text| api::validation::duration(text).map_err(|e| format!("judge lookback: {e}")))
        .transpose()
}

/// The times to sample, in Unix seconds: every `step` from the start of the
/// analysis (or `lookback` before now) to now, at most
/// [`JUDGE_SAMPLES_MAX`] of them, the most recent. Counts start one step in
/// (each point counts the step before it) and always cover the whole
/// analysis, for the sequential test to stay anytime-valid, up to
/// [`COUNTS_MAX`] steps. None before the first point.
fn window(since: i64, now: i64, step: i64, lookback: Option<i64>, counts: bool) -> Option<(i64, i64)> {
    let first = since + if counts { step } else { 0 };
    let mut start = first;
    if let Some(lookback) = lookback.filter(|_| !counts) {
        start = start.max(now - lookback);
    }
    let most = if counts { COUNTS_MAX } else { JUDGE_SAMPLES_MAX as i64 };
    start = start.max(now - (most - 1) * step);
    // Aligned to the analysis' own steps, so every count covers one whole step.
    let start = first + (start - first + step - 1).div_euclid(step) * step;
    let end = first + (now - first).div_euclid(step) * step;
    (start <= end).then_some((start, end))
}

/// Each metric's data, from Prometheus.
async fn fetch(spec: &JudgeProvider, server: &Server<'_>, env: &Env<'_>) -> Result<Vec<MetricData>, ProviderError> {
    let step = step(spec).map_err(ProviderError)?;
    let lookback = lookback(spec).map_err(ProviderError)?;
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let (since, now) = (env.compared.since.as_second(), env.now.as_second());
    let sides = [Side::Canary, Side::Baseline].map(|side| placeholders(env, side, step));
    let fetching = spec.metrics.iter().map(|metric| {
        let sides = &sides;
        async move {
            let counts = metric.sequential.is_some();
            let Some((start, end)) = window(since, now, secs(step), lookback.map(secs), counts) else {
                return Ok(match counts {
                    true => MetricData::Counts(Vec::new()),
                    false => MetricData::Samples {
                        canary: Vec::new(),
                        baseline: Vec::new(),
                    },
                });
            };
            let range = |query: String| async move { server.query_range(&query, start, end, step).await };
            let render = |query: &str, side: usize| {
                template::judge_promql(query, &sides[side])
                    .map_err(|e| ProviderError(format!("metric {:?}: {e}", metric.name)))
            };
            if let Some(counts) = &metric.sequential {
                let mut per_side = Vec::new();
                for side in 0..2 {
                    let events = range(render(&counts.events, side)?).await?;
                    let total = range(render(&counts.total, side)?).await?;
                    per_side.push((summed(&events), summed(&total)));
                }
                return Ok(MetricData::Counts(intervals(&per_side[0], &per_side[1])));
            }
            let query_of = |side: usize| match (&metric.query, side) {
                (Some(query), _) => query.as_str(),
                (None, 0) => metric.canary_query.as_deref().unwrap_or_default(),
                (None, _) => metric.baseline_query.as_deref().unwrap_or_default(),
            };
            let canary = samples(range(render(query_of(0), 0)?).await?);
            let baseline = samples(range(render(query_of(1), 1)?).await?);
            Ok(MetricData::Samples { canary, baseline })
        }
    });
    futures::future::try_join_all(fetching).await
}

#[derive(Clone, Copy)]
enum Side {
    Canary,
    Baseline,
}

/// The placeholders of one side. `role` is the value of the side's pods'
/// `serin.dev/role` label (`baseline`, or none: ""), so `role="{{judge.role}}"`
/// selects the side's series where Prometheus keeps pod labels, as PromQL's
/// `role=""` matches a series without the label. `side` names the side.
fn placeholders(env: &Env<'_>, side: Side, step: Duration) -> Args {
    let compared = &env.compared;
    let (revision, role, name) = match side {
        Side::Canary => (compared.canary_revision.as_str(), "", "canary"),
        Side::Baseline if compared.baseline_pods => (compared.stable_revision.as_str(), api::BASELINE_ROLE, "baseline"),
        Side::Baseline => (compared.stable_revision.as_str(), "", "baseline"),
    };
    Args::from([
        ("revision".into(), revision.into()),
        ("role".into(), role.into()),
        ("side".into(), name.into()),
        ("step".into(), format!("{}s", step.as_secs())),
    ])
}

/// Every series' values, pooled, the most recent [`JUDGE_SAMPLES_MAX`].
fn samples(series: Vec<Series>) -> Vec<f64> {
    let mut points: Vec<(f64, f64)> = series.into_iter().flatten().collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let skip = points.len().saturating_sub(JUDGE_SAMPLES_MAX);
    points.into_iter().skip(skip).map(|(_, v)| v).collect()
}

/// The series added up per time (a count split by label), in time order.
/// Times are whole seconds: the range query's points are.
fn summed(series: &[Series]) -> BTreeMap<i64, f64> {
    let mut sums = BTreeMap::new();
    for (time, value) in series.iter().flatten() {
        *sums.entry(time.round() as i64).or_insert(0.0) += value;
    }
    sums
}

/// The intervals both sides have a total for, with finite counts. Events
/// missing where the total is not count 0: an error counter that has never
/// been incremented is often not exported at all.
fn intervals(
    canary: &(BTreeMap<i64, f64>, BTreeMap<i64, f64>),
    baseline: &(BTreeMap<i64, f64>, BTreeMap<i64, f64>),
) -> Vec<Interval> {
    canary
        .1
        .iter()
        .filter_map(|(time, total)| {
            let interval = Interval {
                canary_events: canary.0.get(time).copied().unwrap_or(0.0),
                canary_total: *total,
                baseline_events: baseline.0.get(time).copied().unwrap_or(0.0),
                baseline_total: *baseline.1.get(time)?,
            };
            let counts = [
                interval.canary_events,
                interval.canary_total,
                interval.baseline_events,
                interval.baseline_total,
            ];
            counts.iter().all(|v| v.is_finite() && *v >= 0.0).then_some(interval)
        })
        .collect()
}

const DEFAULT_STEP: Duration = Duration::from_secs(30);
/// Events pooled over both sides up to which the rate ratio's interval is
/// Clopper-Pearson's; Wilson's above.
const EXACT_INTERVAL_EVENTS_MAX: f64 = 1e6;
/// Steps of counts per query, at most: under Prometheus's 11,000 points.
const COUNTS_MAX: i64 = 10_000;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::analysis::condition;
    use crate::analysis::provider::test_env::TestEnv;
    use crate::analysis::web::test_server::{self, serve};
    use crate::analysis::{Compared, SecretValues};
    use crate::api::Metric;

    fn spec(value: Value) -> JudgeProvider {
        let mut spec =
            json!({ "address": "http://prometheus:9090", "alpha": 0.05, "passScore": 95.0, "marginalScore": 75.0 });
        spec.as_object_mut().unwrap().extend(value.as_object().unwrap().clone());
        // The API server fills in the schema's defaults; serde does the same.
        serde_json::from_value(spec).unwrap()
    }

    fn errors_metric() -> Value {
        json!({ "name": "errors", "sequential": { "events": "e", "total": "t" } })
    }

    fn latency_metric() -> Value {
        json!({ "name": "latency", "query": "q" })
    }

    /// `n` intervals of 2,000 requests a side, at these error rates.
    fn counts(n: usize, canary_rate: f64, baseline_rate: f64) -> MetricData {
        let interval = Interval {
            canary_events: 2000.0 * canary_rate,
            canary_total: 2000.0,
            baseline_events: 2000.0 * baseline_rate,
            baseline_total: 2000.0,
        };
        MetricData::Counts(vec![interval; n])
    }

    fn samples(canary: &[f64], baseline: &[f64]) -> MetricData {
        MetricData::Samples {
            canary: canary.to_vec(),
            baseline: baseline.to_vec(),
        }
    }

    fn latencies(center: f64) -> Vec<f64> {
        (0..30).map(|i| center + (i % 10) as f64).collect()
    }

    #[test]
    fn verdicts_table() {
        struct Case {
            name: &'static str,
            spec: Value,
            data: Vec<MetricData>,
            verdict: &'static str,
            score: f64,
            phase: MeasurementPhase,
        }
        let two = json!({ "metrics": [errors_metric(), latency_metric()] });
        let grouped = json!({
            "groups": [{ "name": "errors", "weight": 40.0 }, { "name": "latency", "weight": 60.0 }],
            "metrics": [
                { "name": "errors", "group": "errors", "sequential": { "events": "e", "total": "t" } },
                { "name": "latency", "group": "latency", "query": "q" },
            ],
        });
        let critical = json!({ "metrics": [
            { "name": "errors", "critical": true, "sequential": { "events": "e", "total": "t" } },
            latency_metric(), { "name": "cpu", "query": "q" }, { "name": "memory", "query": "q" },
        ] });
        let same = || samples(&latencies(100.0), &latencies(100.0));
        let cases = [
            Case {
                name: "1.5x the errors fails the sequential metric, and half the score",
                spec: two.clone(),
                data: vec![counts(8, 0.03, 0.02), same()],
                verdict: "Fail",
                score: 50.0,
                phase: MeasurementPhase::Failed,
            },
            Case {
                name: "an identical canary passes",
                spec: two.clone(),
                data: vec![counts(8, 0.02, 0.02), same()],
                verdict: "Pass",
                score: 100.0,
                phase: MeasurementPhase::Successful,
            },
            Case {
                name: "slower by 30 ms of ~105 fails the rank metric",
                spec: two.clone(),
                data: vec![counts(8, 0.02, 0.02), samples(&latencies(130.0), &latencies(100.0))],
                verdict: "Fail",
                score: 50.0,
                phase: MeasurementPhase::Failed,
            },
            Case {
                name: "no data at all is inconclusive, never a pass",
                spec: two.clone(),
                data: vec![MetricData::Counts(Vec::new()), samples(&[], &[])],
                verdict: "Inconclusive",
                score: 0.0,
                phase: MeasurementPhase::Inconclusive,
            },
            Case {
                name: "weights: failing the 40% group scores 60, under marginal 75",
                spec: grouped.clone(),
                data: vec![counts(8, 0.03, 0.02), same()],
                verdict: "Fail",
                score: 60.0,
                phase: MeasurementPhase::Failed,
            },
            Case {
                name: "weights: failing the 40% group with marginal 50 is marginal",
                spec: {
                    let mut s = grouped.clone();
                    s["marginalScore"] = json!(50.0);
                    s
                },
                data: vec![counts(8, 0.03, 0.02), same()],
                verdict: "Marginal",
                score: 60.0,
                phase: MeasurementPhase::Inconclusive,
            },
            Case {
                name: "a critical failure fails at a score of 75",
                spec: {
                    let mut s = critical.clone();
                    s["marginalScore"] = json!(50.0);
                    s
                },
                data: vec![counts(8, 0.03, 0.02), same(), same(), same()],
                verdict: "Fail",
                score: 75.0,
                phase: MeasurementPhase::Failed,
            },
        ];
        for case in cases {
            let judged = verdict(&spec(case.spec), &case.data);
            assert_eq!(judged.value["verdict"], case.verdict, "{}: {}", case.name, judged.shown);
            assert_eq!(judged.value["score"], case.score, "{}: {}", case.name, judged.shown);
            assert_eq!(judged.phase, case.phase, "{}", case.name);
        }
    }

    #[test]
    fn the_text_shown_names_the_failing_metric_first_with_its_effect_and_interval() {
        let spec = spec(json!({ "metrics": [latency_metric(), errors_metric()] }));
        let judged = verdict(
            &spec,
            &[samples(&latencies(100.0), &latencies(100.0)), counts(8, 0.03, 0.02)],
        );
        assert!(
            judged
                .shown
                .starts_with("Fail, score 50.0: \"errors\" High: rate ratio 1.50 in ["),
            "{}",
            judged.shown
        );
        assert!(
            judged.shown.contains("; \"latency\" Pass: ratio 1.00"),
            "{}",
            judged.shown
        );
        let errors = &judged.value["metrics"]["errors"];
        assert_eq!(errors["classification"], "High");
        assert_eq!(errors["test"], "sequential");
        let (low, high) = (
            errors["interval"][0].as_f64().unwrap(),
            errors["interval"][1].as_f64().unwrap(),
        );
        assert!(1.2 < low && low < 1.5 && 1.5 < high && high < 1.8, "{low} {high}");
        let latency = &judged.value["metrics"]["latency"];
        assert_eq!(latency["samples"], 30);
        assert_eq!(judged.result.metrics[1].name, "errors");
        assert_eq!(judged.result.metrics[1].interval.as_ref().map(Vec::len), Some(2));
        assert!(latency["pValue"].as_f64().unwrap() > 0.9, "{latency}");
    }

    #[test]
    fn conditions_see_the_result_as_documented() {
        let spec = spec(json!({ "metrics": [errors_metric(), latency_metric()] }));
        let judged = verdict(
            &spec,
            &[counts(8, 0.03, 0.02), samples(&latencies(100.0), &latencies(100.0))],
        );
        let metric = |success: &str| Metric {
            name: "judge".into(),
            success_condition: Some(success.into()),
            ..Metric::default()
        };
        let cases = [
            ("result.score >= 90", MeasurementPhase::Failed),
            ("result.score >= 50", MeasurementPhase::Successful),
            (
                "result.metrics.errors.classification != 'High'",
                MeasurementPhase::Failed,
            ),
            (
                "result.metrics.latency.classification == 'Pass'",
                MeasurementPhase::Successful,
            ),
            ("result.metrics.errors.ratio < 1.4", MeasurementPhase::Failed),
            ("result.verdict == 'Fail'", MeasurementPhase::Successful),
        ];
        for (condition, phase) in cases {
            assert_eq!(
                condition::judge(&metric(condition), &judged.value),
                Ok(phase),
                "{condition}"
            );
        }
    }

    #[test]
    fn a_lower_rate_fails_only_where_decreases_matter() {
        for (direction, verdict_name) in [("increase", "Pass"), ("decrease", "Fail"), ("both", "Fail")] {
            let spec = spec(json!({ "metrics": [
                { "name": "ok", "direction": direction, "sequential": { "events": "e", "total": "t" } }
            ] }));
            let judged = verdict(&spec, &[counts(8, 0.5, 0.8)]);
            assert_eq!(judged.value["verdict"], verdict_name, "{direction}: {}", judged.shown);
        }
    }

    #[test]
    fn an_effect_within_allowed_increase_passes_however_sure_the_test_is() {
        let spec = spec(json!({ "metrics": [
            { "name": "errors", "allowedIncrease": 1.6, "sequential": { "events": "e", "total": "t" } }
        ] }));
        let judged = verdict(&spec, &[counts(30, 0.03, 0.02)]);
        assert_eq!(judged.value["verdict"], "Pass", "{}", judged.shown);
    }

    #[test]
    fn the_rate_ratio_interval_is_computed_at_any_count() {
        let one = |canary_events: f64, baseline_events: f64| {
            let interval = Interval {
                canary_events,
                canary_total: 1e9,
                baseline_events,
                baseline_total: 1e9,
            };
            rate_ratio_interval(&[interval], 0.95).unwrap()
        };
        // Past Clopper-Pearson's range: Wilson's, around the ratio.
        let (low, high) = one(1.5e7, 1e7);
        assert!(1.49 < low && low < 1.5 && 1.5 < high && high < 1.51, "{low} {high}");
        // Lopsided shapes that statrs' Beta quantile never returns for.
        let (low, _) = one(1e7, 0.0);
        assert!(low > 1e3, "{low}");
        let (low, high) = one(0.0, 1e7);
        assert!(low == 0.0 && high < 1e-3, "{high}");
    }

    #[test]
    fn windows_table() {
        // (since, now, step, lookback, counts) -> (start, end)
        type Case = ((i64, i64, i64, Option<i64>, bool), Option<(i64, i64)>);
        let cases: &[Case] = &[
            ((1000, 1000, 30, None, false), Some((1000, 1000))),
            ((1000, 1000, 30, None, true), None),
            ((1000, 1029, 30, None, true), None),
            ((1000, 1030, 30, None, true), Some((1030, 1030))),
            ((1000, 1100, 30, None, true), Some((1030, 1090))),
            ((1000, 1100, 30, None, false), Some((1000, 1090))),
            // lookback: the last 60 s, on the analysis' own steps
            ((1000, 1200, 30, Some(60), false), Some((1150, 1180))),
            // counts always cover the whole analysis
            ((1000, 1200, 30, Some(60), true), Some((1030, 1180))),
            (
                (0, 1_000_000, 1, None, true),
                Some((1_000_000 - COUNTS_MAX + 1, 1_000_000)),
            ),
            // at most JUDGE_SAMPLES_MAX points, the most recent
            (
                (0, 100_000, 1, None, false),
                Some((100_000 - JUDGE_SAMPLES_MAX as i64 + 1, 100_000)),
            ),
        ];
        for &((since, now, step, lookback, counts), want) in cases {
            let got = window(since, now, step, lookback, counts);
            assert_eq!(got, want, "{since} {now} {step} {lookback:?} {counts}");
            if let Some((start, end)) = got {
                assert_eq!((start - since - if counts { step } else { 0 }) % step, 0);
                let most = if counts { COUNTS_MAX } else { JUDGE_SAMPLES_MAX as i64 };
                assert!((end - start) / step < most);
            }
        }
    }

    #[test]
    fn counts_are_joined_on_time_and_unusable_points_left_out() {
        let map = |pairs: &[(i64, f64)]| pairs.iter().copied().collect::<BTreeMap<_, _>>();
        let canary = (
            map(&[(10, 1.0), (20, 2.0), (30, f64::NAN)]),
            map(&[(10, 100.0), (20, 100.0), (30, 100.0)]),
        );
        let baseline = (
            map(&[(10, 1.0), (20, 1.0), (30, 1.0)]),
            map(&[(20, 100.0), (30, 100.0)]),
        );
        let joined = intervals(&canary, &baseline);
        assert_eq!(
            joined,
            vec![Interval {
                canary_events: 2.0,
                canary_total: 100.0,
                baseline_events: 1.0,
                baseline_total: 100.0
            }]
        );
        let series: Vec<Series> = vec![vec![(10.0, 1.0), (20.0, 2.0)], vec![(10.2, 3.0)]];
        assert_eq!(summed(&series), map(&[(10, 4.0), (20, 2.0)]));
    }

    #[test]
    fn samples_pool_every_series_and_keep_the_most_recent() {
        let many: Series = (0..JUDGE_SAMPLES_MAX + 10).map(|i| (i as f64, i as f64)).collect();
        let kept = super::samples(vec![many, vec![(5.5, f64::NAN)]]);
        assert_eq!(kept.len(), JUDGE_SAMPLES_MAX);
        // 611 points by time, the NaN at 5.5 among the 11 oldest left out.
        assert_eq!(kept[0], 10.0);
        assert!(kept.iter().all(|v| !v.is_nan()));
        assert_eq!(*kept.last().unwrap(), (JUDGE_SAMPLES_MAX + 9) as f64);
    }

    #[test]
    fn durations_are_checked_before_measuring() {
        let bad = [
            json!({ "step": "0s" }),
            json!({ "step": "soon" }),
            json!({ "lookback": "-1m" }),
        ];
        for extra in bad {
            let mut s = json!({ "metrics": [latency_metric()] });
            s.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            let err = Provider::check(&spec(s)).unwrap_err();
            assert!(
                err.starts_with("judge step") || err.starts_with("judge lookback"),
                "{err}"
            );
        }
        assert_eq!(Provider::check(&spec(json!({ "metrics": [latency_metric()] }))), Ok(()));
    }

    #[tokio::test]
    async fn measures_each_side_with_its_own_revision_over_the_analysis_so_far() {
        let matrix = json!({ "status": "success", "data": { "resultType": "matrix", "result": [
            { "metric": {}, "values": [[1030, "100"], [1060, "2"], [1090, "NaN"]] },
        ] } });
        let (base, mut requests) = serve(test_server::json(200, matrix)).await;
        let mut env = TestEnv::new(SecretValues::default());
        env.compared = Compared {
            since: k8s_openapi::jiff::Timestamp::from_second(1000).unwrap(),
            canary_revision: "new1".into(),
            stable_revision: "old1".into(),
            baseline_pods: true,
        };
        let provider = spec(json!({ "address": base, "metrics": [
            { "name": "latency", "query": "lat{rev=\"{{judge.revision}}\",role=\"{{judge.role}}\"}" },
            { "name": "errors", "sequential": {
                "events": "sum(increase(e{rev=\"{{judge.revision}}\"}[{{judge.step}}]))",
                "total": "sum(increase(t{rev=\"{{judge.revision}}\"}[{{judge.step}}]))" } },
        ] }));
        let mut env = env.env();
        env.now = k8s_openapi::jiff::Timestamp::from_second(1100).unwrap();
        let outcome = provider.measure(&env).await.unwrap();
        let Outcome::Scored {
            value, phase, shown, ..
        } = outcome
        else {
            panic!("{outcome:?}")
        };
        assert_eq!(phase, MeasurementPhase::Successful, "{shown}");
        assert_eq!(value["metrics"]["latency"]["samples"], 3);
        let mut targets = Vec::new();
        while let Ok(received) = requests.try_recv() {
            targets.push(received.target);
        }
        let decoded: Vec<String> = targets
            .iter()
            .map(|t| {
                percent_encoding::percent_decode_str(&t.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(decoded.len(), 6, "{decoded:#?}");
        let has = |needle: &str| decoded.iter().any(|t| t.contains(needle));
        assert!(
            has("lat{rev=\"new1\",role=\"\"}&start=1000&end=1090&step=30s"),
            "{decoded:#?}"
        );
        assert!(
            has("lat{rev=\"old1\",role=\"baseline\"}&start=1000&end=1090&step=30s"),
            "{decoded:#?}"
        );
        assert!(
            has("increase(e{rev=\"new1\"}[30s]))&start=1030&end=1090"),
            "{decoded:#?}"
        );
        assert!(
            has("increase(t{rev=\"old1\"}[30s]))&start=1030&end=1090"),
            "{decoded:#?}"
        );
        assert!(
            decoded.iter().all(|t| t.starts_with("/api/v1/query_range?")),
            "{decoded:#?}"
        );
    }

    #[tokio::test]
    async fn a_prometheus_error_is_an_error_measurement() {
        let answer = json!({ "status": "error", "errorType": "bad_data", "error": "parse error" });
        let (base, _) = serve(test_server::json(400, answer)).await;
        let env = TestEnv::new(SecretValues::default());
        let provider = spec(json!({ "address": base, "metrics": [latency_metric()] }));
        let outcome = provider.measure(&env.env()).await.unwrap();
        let Outcome::Error(error) = outcome else {
            panic!("{outcome:?}")
        };
        assert!(
            error.0.contains("HTTP 400") && error.0.contains("parse error"),
            "{error}"
        );
    }

    fn any_count() -> impl proptest::strategy::Strategy<Value = f64> {
        use proptest::prelude::*;
        prop_oneof![
            Just(0.0),
            0.0..1e6f64,
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(-1.0),
            Just(1e300)
        ]
    }

    proptest::proptest! {
        /// Whatever Prometheus answers, the judge gives a verdict: no panic,
        /// a score in 0-100, a phase that follows the verdict, JSON for CEL.
        #[test]
        fn any_data_gets_a_verdict(
            counts in proptest::collection::vec((any_count(), any_count(), any_count(), any_count()), 0..12),
            canary in proptest::collection::vec(proptest::prelude::prop_oneof![-1e9f64..1e9, proptest::prelude::Just(f64::NAN)], 0..40),
            baseline in proptest::collection::vec(proptest::prelude::prop_oneof![-1e9f64..1e9, proptest::prelude::Just(f64::NAN)], 0..40),
            direction in proptest::sample::select(vec!["increase", "decrease", "both"]),
            replace in proptest::bool::ANY,
        ) {
            let nan = if replace { "replace" } else { "remove" };
            let spec = spec(json!({ "metrics": [
                { "name": "errors", "direction": direction, "critical": true, "sequential": { "events": "e", "total": "t" } },
                { "name": "latency", "direction": direction, "nanStrategy": nan, "mustHaveData": true, "query": "q" },
            ] }));
            let intervals = counts
                .into_iter()
                .map(|(a, b, c, d)| Interval { canary_events: a, canary_total: b, baseline_events: c, baseline_total: d })
                .collect();
            let judged = verdict(&spec, &[MetricData::Counts(intervals), MetricData::Samples { canary, baseline }]);
            let score = judged.value["score"].as_f64().unwrap();
            proptest::prop_assert!((0.0..=100.0).contains(&score), "{}", judged.shown);
            let phase = match judged.result.verdict.as_str() {
                "Pass" => MeasurementPhase::Successful,
                "Fail" => MeasurementPhase::Failed,
                _ => MeasurementPhase::Inconclusive,
            };
            proptest::prop_assert_eq!(judged.phase, phase);
            proptest::prop_assert!(serde_json::to_string(&judged.result).is_ok());
        }
    }
}
