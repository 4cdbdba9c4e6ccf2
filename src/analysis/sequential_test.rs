//! The judge's sequential test for counts: is the canary's rate of events
//! (errors out of requests) higher than the baseline's, checked at every
//! measurement interval without raising the false-alarm rate above alpha.
//!
//! Per interval, given how many events both sides had together (s), the
//! canary's share of them is Binomial(s, θ) with θ = ρ·c / (ρ·c + b), where c
//! and b are the two sides' requests and ρ the ratio of their rates (Poisson
//! events; for rare errors out of many requests the binomial is close). Under
//! "no regression" ρ = 1. The test martingale is a mixture, over a fixed grid
//! of ρ, of the likelihood ratios against ρ = 1 multiplied over the intervals;
//! its expectation is 1 under the null, so by Ville's inequality it exceeds
//! 1/alpha at any interval with probability at most alpha. Stateless: the
//! whole record is recomputed from the per-interval counts at each check, and
//! the test fails once the running maximum has crossed.

/// One interval's counts on each side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub canary_events: f64,
    pub canary_total: f64,
    pub baseline_events: f64,
    pub baseline_total: f64,
}

/// Which ratios of the canary's rate to the baseline's are a regression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The canary's rate is higher (errors).
    Increase,
    /// The canary's rate is lower (successes, throughput).
    Decrease,
    Both,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sequential {
    /// The mixture martingale after the last interval, as a natural log.
    pub log_evidence: f64,
    /// The first interval (0-based) at which the evidence reached 1/alpha, if any.
    pub crossed_at: Option<usize>,
    /// The canary's rate over the baseline's, all intervals pooled (NaN when
    /// the baseline had no events).
    pub rate_ratio: f64,
    /// Intervals with requests on both sides; the others carry no evidence.
    pub intervals_used: usize,
}

/// The ratios the mixture puts weight on, each alike. Regressions from about
/// +15% to 4x; a narrower grid detects its own ratios sooner and others later.
const INCREASES: [f64; 8] = [1.15, 1.3, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0];

/// `None` when alpha is outside (0, 1) or a count is negative or not finite.
pub fn sequential(intervals: &[Interval], alpha: f64, direction: Direction) -> Option<Sequential> {
    let valid = |v: f64| v.is_finite() && v >= 0.0;
    if !(alpha > 0.0 && alpha < 1.0)
        || intervals.iter().any(|i| {
            ![i.canary_events, i.canary_total, i.baseline_events, i.baseline_total]
                .into_iter()
                .all(valid)
        })
    {
        return None;
    }
    let ratios: Vec<f64> = match direction {
        Direction::Increase => INCREASES.to_vec(),
        Direction::Decrease => INCREASES.iter().map(|r| 1.0 / r).collect(),
        Direction::Both => INCREASES.iter().flat_map(|r| [*r, 1.0 / r]).collect(),
    };
    let threshold = (1.0 / alpha).ln();
    let log_weight = -(ratios.len() as f64).ln();
    // Per ratio, the log-likelihood ratio so far.
    let mut log_ratios = vec![0.0; ratios.len()];
    let mut crossed_at = None;
    let mut intervals_used = 0;
    // The intervals used, added up, for the pooled rates.
    let mut pooled = [0.0; 4];
    for (index, interval) in intervals.iter().enumerate() {
        let (c, b) = (interval.canary_total, interval.baseline_total);
        if c <= 0.0 || b <= 0.0 {
            continue;
        }
        intervals_used += 1;
        let counts = [interval.canary_events, c, interval.baseline_events, b];
        pooled.iter_mut().zip(counts).for_each(|(sum, count)| *sum += count);
        let (a, s) = (
            interval.canary_events,
            interval.canary_events + interval.baseline_events,
        );
        let null = c / (c + b);
        for (log_ratio, rho) in log_ratios.iter_mut().zip(&ratios) {
            let theta = rho * c / (rho * c + b);
            *log_ratio += a * (theta / null).ln() + (s - a) * ((1.0 - theta) / (1.0 - null)).ln();
        }
        if crossed_at.is_none() && log_sum_exp(&log_ratios) + log_weight >= threshold {
            crossed_at = Some(index);
        }
    }
    let canary_rate = pooled[0] / pooled[1];
    let baseline_rate = pooled[2] / pooled[3];
    Some(Sequential {
        log_evidence: log_sum_exp(&log_ratios) + log_weight,
        crossed_at,
        rate_ratio: if baseline_rate > 0.0 {
            canary_rate / baseline_rate
        } else {
            f64::NAN
        },
        intervals_used,
    })
}

fn log_sum_exp(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + values.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::simulation::Rng;

    const ALPHA: f64 = 0.05;
    const CANARIES: usize = 2000;
    const REQUESTS: u64 = 2000;
    /// How long one simulated analysis runs, checked at every interval.
    const INTERVALS: usize = 20;

    fn interval(rng: &mut Rng, canary_rate: f64, baseline_rate: f64) -> Interval {
        Interval {
            canary_events: rng.binomial(REQUESTS, canary_rate) as f64,
            canary_total: REQUESTS as f64,
            baseline_events: rng.binomial(REQUESTS, baseline_rate) as f64,
            baseline_total: REQUESTS as f64,
        }
    }

    /// Over many seeded canaries: the share that failed, and the median
    /// interval (1-based) of those that did.
    fn simulate(seed: u64, base_rate: f64, regression: f64, direction: Direction) -> (f64, Option<usize>) {
        let mut rng = Rng::new(seed);
        let mut failed_at: Vec<usize> = (0..CANARIES)
            .filter_map(|_| {
                let intervals: Vec<Interval> = (0..INTERVALS)
                    .map(|_| interval(&mut rng, base_rate * regression, base_rate))
                    .collect();
                sequential(&intervals, ALPHA, direction)
                    .unwrap()
                    .crossed_at
                    .map(|i| i + 1)
            })
            .collect();
        failed_at.sort_unstable();
        let rate = failed_at.len() as f64 / CANARIES as f64;
        (rate, failed_at.get(failed_at.len() / 2).copied())
    }

    #[test]
    fn checked_at_every_interval_aa_canaries_fail_at_most_alpha() {
        for (base_rate, direction) in [
            (0.02, Direction::Increase),
            (0.02, Direction::Both),
            (0.01, Direction::Increase),
            (0.05, Direction::Increase),
        ] {
            let (false_alarms, _) = simulate(11, base_rate, 1.0, direction);
            println!(
                "A/A, base error rate {base_rate}, {direction:?}, {INTERVALS} checks: false alarms {false_alarms:.4}"
            );
            assert!(false_alarms <= ALPHA, "{false_alarms} at {base_rate} {direction:?}");
        }
    }

    #[test]
    fn a_fifty_percent_regression_fails_within_a_few_intervals() {
        // 2% errors at 2,000 requests an interval: about 40 errors a side.
        let (power, median) = simulate(12, 0.02, 1.5, Direction::Increase);
        println!("A/B +50%, base 0.02: power {power:.4}, median interval to fail {median:?}");
        assert!(power >= 0.9, "{power}");
        assert!(median.is_some_and(|m| m <= 3), "{median:?}");
        // The same regression on rarer and commoner errors, for the record.
        for base_rate in [0.01, 0.05] {
            let (power, median) = simulate(13, base_rate, 1.5, Direction::Increase);
            println!("A/B +50%, base {base_rate}: power {power:.4}, median interval to fail {median:?}");
        }
    }

    #[test]
    fn the_direction_decides_which_way_counts() {
        let worse = vec![
            Interval {
                canary_events: 90.0,
                canary_total: 2000.0,
                baseline_events: 40.0,
                baseline_total: 2000.0
            };
            3
        ];
        let increase = sequential(&worse, ALPHA, Direction::Increase).unwrap();
        assert_eq!(increase.crossed_at, Some(0), "{increase:?}");
        assert!((increase.rate_ratio - 2.25).abs() < 1e-12);
        assert_eq!(sequential(&worse, ALPHA, Direction::Decrease).unwrap().crossed_at, None);
        assert!(sequential(&worse, ALPHA, Direction::Both).unwrap().crossed_at.is_some());
    }

    #[test]
    fn intervals_without_requests_carry_no_evidence() {
        let empty = Interval {
            canary_events: 0.0,
            canary_total: 0.0,
            baseline_events: 0.0,
            baseline_total: 0.0,
        };
        let result = sequential(&[empty; 5], ALPHA, Direction::Both).unwrap();
        assert_eq!((result.intervals_used, result.crossed_at), (0, None));
        assert!(result.log_evidence.abs() < 1e-12, "{result:?}");
        assert!(result.rate_ratio.is_nan());
    }

    #[test]
    fn bad_counts_or_alpha_have_no_test() {
        let bad = Interval {
            canary_events: -1.0,
            canary_total: 10.0,
            baseline_events: 0.0,
            baseline_total: 10.0,
        };
        assert_eq!(sequential(&[bad], ALPHA, Direction::Increase), None);
        let nan = Interval {
            canary_events: 0.0,
            canary_total: f64::NAN,
            ..bad
        };
        assert_eq!(sequential(&[nan], ALPHA, Direction::Increase), None);
        assert_eq!(sequential(&[], 0.0, Direction::Increase), None);
        assert_eq!(sequential(&[], 1.0, Direction::Increase), None);
    }
}
