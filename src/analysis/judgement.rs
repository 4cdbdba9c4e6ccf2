//! The judge's verdict from its measurements: each metric classified (Pass,
//! High, Low or NoData) from the rank test, the Hodges-Lehmann interval and
//! the ratio of means, then metric groups scored 0-100 by weight. Pure.
use std::cmp::Ordering;

use super::rank_test::{Alternative, hodges_lehmann, mann_whitney};

/// What a regression is for one metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub direction: Direction,
    /// The canary's mean over the baseline's above which a higher canary counts
    /// (1.1: 10% more). A smaller difference is a Pass however sure the test is.
    pub allowed_increase: f64,
    /// Below which a lower canary counts (0.9: 10% less).
    pub allowed_decrease: f64,
    /// A failing High past `critical_increase`, or any failing Low (there is
    /// no critical decrease), fails the whole analysis.
    pub critical: bool,
    pub critical_increase: f64,
    pub nan_strategy: NanStrategy,
    /// NoData fails this metric instead of leaving it out of the score.
    pub must_have_data: bool,
    /// Two-sided confidence of the interval (0.95).
    pub confidence: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Only a higher canary is a regression (latency, errors).
    Increase,
    /// Only a lower one (throughput, success ratio).
    Decrease,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NanStrategy {
    /// Leave NaN samples out.
    Remove,
    /// Count them as 0 (a rate with no events in a step).
    Replace,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classification {
    Pass,
    High,
    Low,
    NoData,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MetricJudgement {
    pub classification: Classification,
    /// The classification counts against the canary (a High when increases
    /// matter, a Low when decreases do, a NoData that must have data).
    pub failed: bool,
    /// Failed, critical, and past `critical_increase`: the analysis fails.
    pub critical_failure: bool,
    /// The canary's mean over the baseline's (NaN without data or when both
    /// means are 0). A ratio: for metrics that are never negative (latencies,
    /// rates, counts).
    pub ratio: f64,
    pub shift: Option<f64>,
    pub interval: Option<(f64, f64)>,
    pub p_value: Option<f64>,
}

pub fn classify(canary: &[f64], baseline: &[f64], rule: &Rule) -> MetricJudgement {
    let clean = |samples: &[f64]| -> Vec<f64> {
        match rule.nan_strategy {
            NanStrategy::Remove => samples.iter().copied().filter(|v| !v.is_nan()).collect(),
            NanStrategy::Replace => samples.iter().map(|v| if v.is_nan() { 0.0 } else { *v }).collect(),
        }
    };
    let (x, y) = (clean(canary), clean(baseline));
    let test = mann_whitney(&x, &y, Alternative::TwoSided);
    let shift = hodges_lehmann(&x, &y, rule.confidence);
    let (Some(test), Some(shift)) = (test, shift) else {
        return MetricJudgement::no_data(rule);
    };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let ratio = mean(&x) / mean(&y);
    // The interval decides whether there is a difference, the ratio whether it matters.
    let classification = match shift.interval {
        Some((low, _)) if low > 0.0 && above(ratio, rule.allowed_increase) => Classification::High,
        Some((_, high)) if high < 0.0 && below(ratio, rule.allowed_decrease) => Classification::Low,
        _ => Classification::Pass,
    };
    MetricJudgement {
        shift: Some(shift.estimate),
        interval: shift.interval,
        p_value: Some(test.p_value),
        ..MetricJudgement::classified(classification, ratio, rule)
    }
}

impl MetricJudgement {
    /// No data: a failure only when the metric must have data.
    pub fn no_data(rule: &Rule) -> Self {
        MetricJudgement {
            classification: Classification::NoData,
            failed: rule.must_have_data,
            critical_failure: rule.must_have_data && rule.critical,
            ratio: f64::NAN,
            shift: None,
            interval: None,
            p_value: None,
        }
    }

    /// A High, Low or Pass with its ratio: failed when the rule's direction
    /// counts it, critical when the metric is and the failure is past
    /// `critical_increase` (a failing Low always is).
    pub fn classified(classification: Classification, ratio: f64, rule: &Rule) -> Self {
        let failed = matches!(
            (classification, rule.direction),
            (Classification::High, Direction::Increase | Direction::Both)
                | (Classification::Low, Direction::Decrease | Direction::Both)
        );
        let critical_failure =
            rule.critical && failed && (classification == Classification::Low || above(ratio, rule.critical_increase));
        MetricJudgement {
            classification,
            failed,
            critical_failure,
            ratio,
            shift: None,
            interval: None,
            p_value: None,
        }
    }
}

/// The ratio is past the limit, or undefined (both means 0): not within it.
pub(super) fn above(ratio: f64, limit: f64) -> bool {
    !matches!(ratio.partial_cmp(&limit), Some(Ordering::Less | Ordering::Equal))
}

pub(super) fn below(ratio: f64, limit: f64) -> bool {
    !matches!(ratio.partial_cmp(&limit), Some(Ordering::Greater | Ordering::Equal))
}

/// One group's metrics and its weight in the score.
pub struct Group<'a> {
    pub weight: f64,
    pub metrics: &'a [MetricJudgement],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Marginal,
    Fail,
    /// Most metrics had no data: neither a pass nor a fail.
    Inconclusive,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    /// 0-100: per group, the share of its metrics with data that did not
    /// fail (a NoData that must have data counts as failed), weighted by the
    /// groups' weights among the groups with data.
    pub score: f64,
    pub verdict: Verdict,
}

pub fn score(groups: &[Group], pass: f64, marginal: f64) -> Score {
    let metrics: Vec<&MetricJudgement> = groups.iter().flat_map(|g| g.metrics).collect();
    let counted = |m: &&MetricJudgement| m.classification != Classification::NoData || m.failed;
    let with_data = metrics.iter().copied().filter(counted).count();
    let (mut weighted, mut weights) = (0.0, 0.0);
    for group in groups {
        let counted: Vec<_> = group.metrics.iter().filter(counted).collect();
        if counted.is_empty() || group.weight <= 0.0 {
            continue;
        }
        let passed = counted.iter().filter(|m| !m.failed).count();
        weighted += group.weight * passed as f64 / counted.len() as f64;
        weights += group.weight;
    }
    let score = if weights > 0.0 { 100.0 * weighted / weights } else { 0.0 };
    let verdict = if metrics.iter().any(|m| m.critical_failure) {
        Verdict::Fail
    } else if with_data == 0 || 2 * with_data < metrics.len() {
        // No data is never a pass.
        Verdict::Inconclusive
    } else if score >= pass {
        Verdict::Pass
    } else if score >= marginal {
        Verdict::Marginal
    } else {
        Verdict::Fail
    };
    Score { score, verdict }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::simulation::Rng;

    fn rule() -> Rule {
        Rule {
            direction: Direction::Increase,
            allowed_increase: 1.1,
            allowed_decrease: 0.9,
            critical: false,
            critical_increase: 1.5,
            nan_strategy: NanStrategy::Remove,
            must_have_data: false,
            confidence: 0.95,
        }
    }

    fn latencies(seed: u64, scale: f64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        (0..60).map(|_| 100.0 * scale * rng.lognormal(0.3)).collect()
    }

    /// 2,000 seeded A/A canaries judged as the judge judges a rank-test metric
    /// (the interval excludes 0 and the ratio passes allowedIncrease, here 1:
    /// any difference the test is sure of): how often the canary fails.
    #[test]
    fn aa_canaries_fail_the_fixed_test_at_most_alpha_as_the_judge_decides() {
        const ALPHA: f64 = 0.05;
        let allowed = Rule {
            allowed_increase: 1.0,
            allowed_decrease: 1.0,
            confidence: 1.0 - ALPHA,
            ..rule()
        };
        for (size, direction) in [
            (10, Direction::Increase),
            (30, Direction::Increase),
            (30, Direction::Both),
            (120, Direction::Both),
        ] {
            let rule = Rule {
                direction,
                ..allowed.clone()
            };
            let mut rng = Rng::new(31);
            let mut sample = || (0..size).map(|_| 100.0 * rng.lognormal(0.5)).collect::<Vec<_>>();
            let failed = (0..2000)
                .filter(|_| {
                    let (canary, baseline) = (sample(), sample());
                    classify(&canary, &baseline, &rule).failed
                })
                .count();
            let false_alarms = failed as f64 / 2000.0;
            println!("A/A, {size} samples a side, {direction:?}, judged: false alarms {false_alarms:.4}");
            // Increase fails on one side of a two-sided interval: about alpha/2.
            // Both is a test of size alpha, which measures above alpha in
            // about half of all seeds: allow the simulation's own error.
            let simulation_error = (ALPHA * (1.0 - ALPHA) / 2000.0f64).sqrt();
            let limit = match direction {
                Direction::Both => ALPHA + 2.0 * simulation_error,
                _ => ALPHA,
            };
            assert!(false_alarms <= limit, "{false_alarms}");
        }
    }

    #[test]
    fn metrics_are_classified_by_interval_ratio_and_direction() {
        let base = latencies(1, 1.0);
        let cases = [
            // (canary scale, rule change, classification, failed)
            (1.0, rule(), Classification::Pass, false),
            (1.5, rule(), Classification::High, true),
            (0.6, rule(), Classification::Low, false),
            (
                0.6,
                Rule {
                    direction: Direction::Decrease,
                    ..rule()
                },
                Classification::Low,
                true,
            ),
            (
                0.6,
                Rule {
                    direction: Direction::Both,
                    ..rule()
                },
                Classification::Low,
                true,
            ),
            // Sure of the difference, but within what is allowed.
            (
                1.5,
                Rule {
                    allowed_increase: 1.8,
                    ..rule()
                },
                Classification::Pass,
                false,
            ),
        ];
        for (scale, rule, classification, failed) in cases {
            let judged = classify(&latencies(2, scale), &base, &rule);
            assert_eq!(
                (judged.classification, judged.failed),
                (classification, failed),
                "{scale} {rule:?}: {judged:?}"
            );
        }
    }

    #[test]
    fn a_critical_metric_past_its_critical_increase_fails_the_analysis() {
        let base = latencies(1, 1.0);
        let critical = Rule {
            critical: true,
            ..rule()
        };
        assert!(classify(&latencies(2, 2.0), &base, &critical).critical_failure);
        assert!(
            !classify(&latencies(2, 1.3), &base, &critical).critical_failure,
            "High, but below 1.5x"
        );
        let passing = classify(&latencies(2, 1.0), &base, &rule());
        let over = classify(&latencies(2, 2.0), &base, &critical);
        let metrics = [passing.clone(), passing.clone(), passing, over];
        let verdict = score(
            &[Group {
                weight: 1.0,
                metrics: &metrics,
            }],
            50.0,
            25.0,
        );
        assert_eq!(
            verdict,
            Score {
                score: 75.0,
                verdict: Verdict::Fail
            }
        );
    }

    #[test]
    fn missing_data_is_never_a_pass() {
        let none = classify(&[], &[1.0, 2.0], &rule());
        assert_eq!((none.classification, none.failed), (Classification::NoData, false));
        let all_nan = classify(&[f64::NAN; 5], &[1.0; 5], &rule());
        assert_eq!(all_nan.classification, Classification::NoData);
        let replaced = classify(
            &[f64::NAN; 5],
            &[1.0; 5],
            &Rule {
                nan_strategy: NanStrategy::Replace,
                ..rule()
            },
        );
        // Replaced by 0: every canary sample below every baseline one.
        assert_eq!((replaced.classification, replaced.failed), (Classification::Low, false));
        let must = classify(
            &[],
            &[1.0],
            &Rule {
                must_have_data: true,
                ..rule()
            },
        );
        assert!(must.failed);
        // Most metrics without data: inconclusive, whatever the rest say.
        let pass = classify(&latencies(2, 1.0), &latencies(1, 1.0), &rule());
        let metrics = [pass, none.clone(), none];
        assert_eq!(
            score(
                &[Group {
                    weight: 1.0,
                    metrics: &metrics
                }],
                90.0,
                50.0
            )
            .verdict,
            Verdict::Inconclusive
        );
        assert_eq!(score(&[], 90.0, 50.0).verdict, Verdict::Inconclusive);
    }

    #[test]
    fn groups_are_weighted_and_scored_against_the_thresholds() {
        let base = latencies(1, 1.0);
        let pass = classify(&latencies(2, 1.0), &base, &rule());
        let high = classify(&latencies(2, 1.5), &base, &rule());
        let latency = [pass.clone(), high.clone()];
        let errors = [pass.clone()];
        let groups = [
            Group {
                weight: 3.0,
                metrics: &latency,
            },
            Group {
                weight: 1.0,
                metrics: &errors,
            },
        ];
        // (3 x 50% + 1 x 100%) / 4
        let cases = [
            (60.0, 50.0, Verdict::Pass),
            (70.0, 60.0, Verdict::Marginal),
            (90.0, 70.0, Verdict::Fail),
        ];
        for (pass_at, marginal_at, verdict) in cases {
            assert_eq!(score(&groups, pass_at, marginal_at), Score { score: 62.5, verdict });
        }
        // A group with no data is left out of the weights.
        let none = [classify(&[], &[], &rule())];
        let groups = [
            Group {
                weight: 3.0,
                metrics: &errors,
            },
            Group {
                weight: 1.0,
                metrics: &none,
            },
            Group {
                weight: 1.0,
                metrics: &errors,
            },
        ];
        assert_eq!(score(&groups, 90.0, 50.0).score, 100.0);
    }
}
