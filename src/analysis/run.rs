//! When each metric is due, and what its measurements add up to. Pure: the
//! caller measures, then records here and reads the phases back.
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::api::{AnalysisPhase, Measurement, MeasurementPhase, Metric, MetricStatus};

/// Measurements kept per metric in status; the counters keep the full tally.
pub const KEPT_MEASUREMENTS: usize = 10;
/// Time between measurements when a metric sets no interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// Longest measured value quoted in a message; a web result can be a whole
/// JSON document.
const MAX_VALUE_IN_MESSAGE: usize = 120;

/// The metric's interval, DEFAULT_INTERVAL when unset. Err for text that is
/// not a positive Go-style duration, naming the field.
pub fn interval(metric: &Metric) -> Result<Duration, String> {
    match &metric.interval {
        None => Ok(DEFAULT_INTERVAL),
        Some(text) => match parse_duration(&metric.name, "interval", text)? {
            // A zero interval would measure in a busy loop.
            d if d.is_zero() => Err(format!(
                "metric {:?}: interval {text:?} must be more than 0",
                metric.name
            )),
            d => Ok(d),
        },
    }
}

/// The metric's initial delay, zero when unset. Err for unparsable text,
/// naming the field.
pub fn initial_delay(metric: &Metric) -> Result<Duration, String> {
    match &metric.initial_delay {
        None => Ok(Duration::ZERO),
        Some(text) => parse_duration(&metric.name, "initialDelay", text),
    }
}

/// A provider call's timeout (`Provider::timeout`), DEFAULT_TIMEOUT when unset.
pub fn timeout(metric: &Metric) -> Result<Duration, String> {
    match super::provider(&metric.provider).and_then(|p| p.timeout()) {
        None => Ok(DEFAULT_TIMEOUT),
        Some(text) => parse_duration(&metric.name, "timeout", text),
    }
}

/// Provider calls that set no timeout give up after this long.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

fn parse_duration(metric: &str, field: &str, text: &str) -> Result<Duration, String> {
    duration(text).map_err(|e| format!("metric {metric:?}: {field} {e}"))
}

/// Lives in `api` so that `plan` (which may not use `analysis`) parses pause
/// durations with the same rules.
pub use crate::api::validation::duration;

/// When the metric should next be measured: `started_at` + initialDelay for
/// the first measurement, then the last measurement's finishedAt + interval.
/// None when the metric is done (count measurements taken) or its phase is no
/// longer Running. Unparsable durations fall back to the defaults here; the
/// spec is checked with `interval` and `initial_delay` before anything runs.
pub fn next_due(metric: &Metric, status: Option<&MetricStatus>, started_at: Timestamp) -> Option<Timestamp> {
    if let Some(status) = status {
        if status.phase != AnalysisPhase::Running {
            return None;
        }
        if count_limit(metric).is_some_and(|count| decisive(status) >= count) {
            return None;
        }
    }
    let last = status.and_then(|s| s.measurements.last());
    Some(match last {
        None => {
            let delay = initial_delay(metric).unwrap_or(Duration::ZERO);
            started_at.saturating_add(delay).unwrap_or(Timestamp::MAX)
        }
        Some(m) => {
            let every = interval(metric).unwrap_or(DEFAULT_INTERVAL);
            m.finished_at.0.saturating_add(every).unwrap_or(Timestamp::MAX)
        }
    })
}

/// Which metrics a round measures, given each metric's next due time (None:
/// done) and whether it has been measured before: every metric that is due,
/// and, once one is, every measured-before metric of the same interval due
/// within half that interval too. Metrics of one interval drift apart by the
/// milliseconds their queries take; measured together, they fall into step,
/// and the analysis status is written once per interval, not once per metric.
/// A metric of another interval keeps its own (measured early, a 60 s metric
/// beside a 10 s one would be measured every 30 s). A first measurement is
/// never taken early: it keeps its initialDelay.
pub fn measured_together(metrics: &[(&Metric, Option<Timestamp>, bool)], now: Timestamp) -> Vec<bool> {
    let every = |metric: &Metric| interval(metric).unwrap_or(DEFAULT_INTERVAL);
    let due_intervals: Vec<Duration> = metrics
        .iter()
        .filter(|(_, due, _)| due.is_some_and(|d| d <= now))
        .map(|(metric, _, _)| every(metric))
        .collect();
    metrics
        .iter()
        .map(|(metric, due, measured_before)| {
            let Some(due) = due else { return false };
            if *due <= now {
                return true;
            }
            let interval = every(metric);
            let soon = now.saturating_add(interval / 2).is_ok_and(|soon| *due <= soon);
            *measured_before && soon && due_intervals.contains(&interval)
        })
        .collect()
}

/// A fresh status for a metric: Running, no measurements.
pub fn new_status(metric: &Metric) -> MetricStatus {
    MetricStatus {
        name: metric.name.clone(),
        phase: AnalysisPhase::Running,
        count: 0,
        successful: 0,
        failed: 0,
        inconclusive: 0,
        error: 0,
        consecutive_error: 0,
        dry_run: metric.dry_run.then_some(true),
        measurements: Vec::new(),
        job: None,
        judge: None,
    }
}

/// Adds a measurement: bumps count and the per-phase counter, counts Errors
/// in a row (any other phase resets the run), keeps the last
/// KEPT_MEASUREMENTS, and recomputes the phase. A phase that is no longer
/// Running stays put: a later success must not revive a metric that already
/// failed on consecutive errors.
pub fn record(metric: &Metric, status: &mut MetricStatus, measurement: Measurement) {
    // Saturating: status is user-editable, and a panic would wedge the controller.
    status.count = status.count.saturating_add(1);
    match measurement.phase {
        MeasurementPhase::Successful => status.successful = status.successful.saturating_add(1),
        MeasurementPhase::Failed => status.failed = status.failed.saturating_add(1),
        MeasurementPhase::Inconclusive => status.inconclusive = status.inconclusive.saturating_add(1),
        MeasurementPhase::Error => status.error = status.error.saturating_add(1),
    }
    status.consecutive_error = match measurement.phase {
        MeasurementPhase::Error => status.consecutive_error.saturating_add(1),
        _ => 0,
    };
    status.measurements.push(measurement);
    if status.measurements.len() > KEPT_MEASUREMENTS {
        let excess = status.measurements.len() - KEPT_MEASUREMENTS;
        status.measurements.drain(..excess);
    }
    if status.phase == AnalysisPhase::Running {
        status.phase = metric_phase(metric, status);
    }
}

/// Failed when failed > failureLimit or consecutive_error >
/// consecutiveErrorLimit; else Inconclusive when inconclusive >
/// inconclusiveLimit; else Successful when count is set and reached by
/// measurements that are not errors (see [`decisive`]); else Running.
pub fn metric_phase(metric: &Metric, status: &MetricStatus) -> AnalysisPhase {
    // The schema keeps limits >= 0 and count >= 1; clamp anyway so a bad
    // object cannot fail (or pass) a metric before it is measured.
    if status.failed > metric.failure_limit.max(0) || status.consecutive_error > metric.consecutive_error_limit.max(0) {
        AnalysisPhase::Failed
    } else if status.inconclusive > metric.inconclusive_limit.max(0) {
        AnalysisPhase::Inconclusive
    } else if count_limit(metric).is_some_and(|count| decisive(status) >= count) {
        // All measurements taken: passing needs at least one success, so a
        // metric that only ever saw no data is never Successful.
        if status.successful > 0 {
            AnalysisPhase::Successful
        } else {
            AnalysisPhase::Inconclusive
        }
    } else {
        AnalysisPhase::Running
    }
}

/// Measurements that said something: every one but the errors. `count` counts
/// only these, so errors never make up a pass: an error is measured again
/// (at most `consecutiveErrorLimit` in a row), and a metric with `count: 10`
/// passes on ten measurements that are Successful, Failed (within
/// `failureLimit`) or Inconclusive (within `inconclusiveLimit`).
pub fn decisive(status: &MetricStatus) -> i32 {
    status.count.saturating_sub(status.error).max(0)
}

fn count_limit(metric: &Metric) -> Option<i32> {
    metric.count.map(|c| c.max(1))
}

/// The analysis as a whole, ignoring dry-run metrics: Failed if any metric
/// failed; else Inconclusive if any is; else Successful when every metric with
/// a count is Successful and every metric without one has at least one
/// Successful measurement; else Running. For Failed and Inconclusive the
/// message names the first such metric (in spec order), why, and its last
/// value. Metrics are matched to statuses by name; a metric without a status
/// counts as Running.
pub fn overall(metrics: &[Metric], statuses: &[MetricStatus]) -> (AnalysisPhase, Option<String>) {
    let judged: Vec<(&Metric, Option<&MetricStatus>)> = metrics
        .iter()
        .filter(|m| !m.dry_run)
        .map(|m| (m, statuses.iter().find(|s| s.name == m.name)))
        .collect();
    let phase_of = |status: Option<&MetricStatus>| status.map_or(AnalysisPhase::Running, |s| s.phase);
    for wanted in [AnalysisPhase::Failed, AnalysisPhase::Inconclusive] {
        if let Some((metric, Some(status))) = judged.iter().find(|(_, s)| phase_of(*s) == wanted) {
            return (wanted, Some(explain(metric, status)));
        }
    }
    let done = judged.iter().all(|(metric, status)| match (metric.count, status) {
        (_, None) => false,
        (Some(_), Some(s)) => s.phase == AnalysisPhase::Successful,
        (None, Some(s)) => s.successful > 0,
    });
    if done {
        (AnalysisPhase::Successful, None)
    } else {
        (AnalysisPhase::Running, None)
    }
}

/// Why a metric failed or is inconclusive, with its last relevant value.
fn explain(metric: &Metric, status: &MetricStatus) -> String {
    let name = &metric.name;
    let last_of = |phase: MeasurementPhase| {
        status
            .measurements
            .iter()
            .rev()
            .find(|m| m.phase == phase)
            .or(status.measurements.last())
            .and_then(|m| m.value.as_deref())
            .map(shorten)
    };
    let value_suffix = |label: &str, value: Option<String>| value.map(|v| format!("; {label} {v}")).unwrap_or_default();
    if status.phase == AnalysisPhase::Inconclusive {
        return format!(
            "metric {name:?} inconclusive: {} of {} measurements inconclusive (limit {}){}",
            status.inconclusive,
            status.count,
            metric.inconclusive_limit,
            value_suffix("last value", last_of(MeasurementPhase::Inconclusive)),
        );
    }
    if status.failed > metric.failure_limit.max(0) {
        format!(
            "metric {name:?} failed: {} of {} measurements failed (limit {}){}",
            status.failed,
            status.count,
            metric.failure_limit,
            value_suffix("last value", last_of(MeasurementPhase::Failed)),
        )
    } else if status.consecutive_error > metric.consecutive_error_limit.max(0) {
        format!(
            "metric {name:?} failed: {} consecutive errors (limit {}){}",
            status.consecutive_error,
            metric.consecutive_error_limit,
            value_suffix("last error:", last_of(MeasurementPhase::Error)),
        )
    } else {
        // Failed earlier on a run of errors that a later measurement reset.
        format!(
            "metric {name:?} failed: {} failed and {} errored of {} measurements{}",
            status.failed,
            status.error,
            status.count,
            value_suffix(
                "last value",
                status.measurements.last().and_then(|m| m.value.as_deref()).map(shorten)
            ),
        )
    }
}

fn shorten(value: &str) -> String {
    match value.char_indices().nth(MAX_VALUE_IN_MESSAGE) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AnalysisPhase as A;
    use MeasurementPhase::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use proptest::prelude::*;

    #[test]
    fn metrics_due_close_together_are_measured_in_one_round() {
        let every = |text: &str| Metric {
            interval: Some(text.into()),
            ..serde_json::from_value(serde_json::json!({ "name": "m", "provider": { "web": { "url": "http://x" } } }))
                .unwrap()
        };
        let (ten, minute) = (every("10s"), every("60s"));
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let at = |seconds: i64| Some(now + k8s_openapi::jiff::SignedDuration::from_secs(seconds));
        // (metric, next due, measured before) -> measured now
        type Schedule<'a> = Vec<(&'a Metric, Option<Timestamp>, bool)>;
        let cases: Vec<(Schedule, Vec<bool>)> = vec![
            (vec![(&ten, at(0), true), (&ten, at(1), true)], vec![true, true]),
            (vec![(&ten, at(0), true), (&ten, at(5), true)], vec![true, true]),
            (vec![(&ten, at(0), true), (&ten, at(6), true)], vec![true, false]),
            // nothing due yet: nothing measured early
            (vec![(&ten, at(1), true), (&ten, at(2), true)], vec![false, false]),
            // another interval keeps its own
            (vec![(&ten, at(0), true), (&minute, at(29), true)], vec![true, false]),
            (vec![(&minute, at(0), true), (&minute, at(29), true)], vec![true, true]),
            (vec![(&minute, at(0), true), (&minute, at(31), true)], vec![true, false]),
            // a first measurement keeps its initialDelay
            (vec![(&ten, at(0), true), (&ten, at(1), false)], vec![true, false]),
            // done metrics are not measured
            (vec![(&ten, at(0), true), (&ten, None, true)], vec![true, false]),
            (vec![(&ten, at(-3), false)], vec![true]),
        ];
        for (metrics, want) in cases {
            let due: Vec<_> = metrics
                .iter()
                .map(|(_, d, b)| (d.map(|d| d.duration_since(now)), *b))
                .collect();
            assert_eq!(measured_together(&metrics, now), want, "{due:?}");
        }
    }

    const T0: i64 = 1_700_000_000;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(T0 + secs).expect("in range")
    }

    fn metric(name: &str) -> Metric {
        Metric {
            name: name.into(),
            consecutive_error_limit: 4,
            ..Metric::default()
        }
    }

    fn measurement(phase: MeasurementPhase, value: &str, secs: i64) -> Measurement {
        Measurement {
            phase,
            value: Some(value.into()),
            finished_at: Time(at(secs)),
        }
    }

    fn run(metric: &Metric, phases: &[MeasurementPhase]) -> MetricStatus {
        let mut status = new_status(metric);
        for (i, p) in phases.iter().enumerate() {
            record(metric, &mut status, measurement(*p, &format!("v{i}"), i as i64));
        }
        status
    }

    #[test]
    fn durations_table() {
        let with = |interval: Option<&str>, delay: Option<&str>| Metric {
            interval: interval.map(str::to_string),
            initial_delay: delay.map(str::to_string),
            ..metric("m")
        };
        let ok: &[(Option<&str>, Duration)] = &[
            (None, DEFAULT_INTERVAL),
            (Some("30s"), Duration::from_secs(30)),
            (Some("1m"), Duration::from_secs(60)),
            (Some("500ms"), Duration::from_millis(500)),
            (Some("1h30m"), Duration::from_secs(5400)),
            (Some("1.5s"), Duration::from_millis(1500)),
        ];
        for (text, want) in ok {
            assert_eq!(interval(&with(*text, None)), Ok(*want), "{text:?}");
        }
        for text in [
            "",
            " ",
            "30",
            "abc",
            "10x",
            "-5s",
            "0s",
            "0",
            "9999999999h",
            "1s1s1s1s1s1s1s1s1s1s1s1s1s1s1s1s1s",
        ] {
            let err = interval(&with(Some(text), None)).unwrap_err();
            assert!(err.contains("metric \"m\": interval"), "{text:?}: {err}");
        }
        assert_eq!(initial_delay(&with(None, None)), Ok(Duration::ZERO));
        assert_eq!(initial_delay(&with(None, Some("0s"))), Ok(Duration::ZERO));
        assert_eq!(initial_delay(&with(None, Some("10s"))), Ok(Duration::from_secs(10)));
        let err = initial_delay(&with(None, Some("soon"))).unwrap_err();
        assert!(err.contains("initialDelay \"soon\""), "{err}");
    }

    #[test]
    fn limits_table() {
        struct Case {
            failure_limit: i32,
            inconclusive_limit: i32,
            consecutive_error_limit: i32,
            count: Option<i32>,
            phases: &'static [MeasurementPhase],
            want: AnalysisPhase,
        }
        let case = |failure_limit, phases, want| Case {
            failure_limit,
            inconclusive_limit: 0,
            consecutive_error_limit: 4,
            count: None,
            phases,
            want,
        };
        let cases = [
            // failureLimit 0/1/2.
            case(0, &[], A::Running),
            case(0, &[Successful], A::Running),
            case(0, &[Successful, Failed], A::Failed),
            case(1, &[Failed], A::Running),
            case(1, &[Failed, Successful, Failed], A::Failed),
            case(2, &[Failed, Failed], A::Running),
            case(2, &[Failed, Failed, Failed], A::Failed),
            // Consecutive errors: the limit is tolerated, one more fails; a non-Error resets.
            case(0, &[Error, Error, Error, Error], A::Running),
            case(0, &[Error, Error, Error, Error, Error], A::Failed),
            case(
                0,
                &[Error, Error, Error, Error, Successful, Error, Error, Error, Error],
                A::Running,
            ),
            case(
                5,
                &[Error, Error, Error, Error, Failed, Error, Error, Error, Error],
                A::Running,
            ),
            case(0, &[Error, Error, Error, Error, Inconclusive], A::Inconclusive),
            Case {
                consecutive_error_limit: 0,
                ..case(0, &[Error], A::Failed)
            },
            // Inconclusive limit.
            case(0, &[Inconclusive], A::Inconclusive),
            Case {
                inconclusive_limit: 1,
                ..case(0, &[Inconclusive], A::Running)
            },
            Case {
                inconclusive_limit: 1,
                ..case(0, &[Inconclusive, Successful, Inconclusive], A::Inconclusive)
            },
            // Failure wins over inconclusive.
            case(0, &[Inconclusive, Failed], A::Inconclusive),
            Case {
                inconclusive_limit: 5,
                ..case(0, &[Inconclusive, Failed], A::Failed)
            },
            // Count completion, tolerated failures included.
            Case {
                count: Some(3),
                ..case(0, &[Successful, Successful], A::Running)
            },
            Case {
                count: Some(3),
                ..case(0, &[Successful, Successful, Successful], A::Successful)
            },
            Case {
                count: Some(3),
                ..case(1, &[Successful, Failed, Successful], A::Successful)
            },
            Case {
                count: Some(2),
                ..case(0, &[Successful, Failed], A::Failed)
            },
            // Errors do not count toward count: they never make up a pass.
            Case {
                count: Some(10),
                ..case(
                    0,
                    &[
                        Successful, Error, Successful, Error, Error, Successful, Error, Error, Error, Error,
                    ],
                    A::Running,
                )
            },
            Case {
                count: Some(3),
                ..case(0, &[Successful, Error, Successful, Error, Successful], A::Successful)
            },
            // An error is measured again rather than completing the count.
            Case {
                count: Some(1),
                ..case(0, &[Error], A::Running)
            },
            Case {
                count: Some(2),
                inconclusive_limit: 5,
                ..case(0, &[Inconclusive, Inconclusive], A::Inconclusive)
            },
            // Final phases stick.
            Case {
                count: Some(2),
                ..case(0, &[Failed, Successful, Successful], A::Failed)
            },
            case(0, &[Error, Error, Error, Error, Error, Successful], A::Failed),
        ];
        for c in cases {
            let m = Metric {
                failure_limit: c.failure_limit,
                inconclusive_limit: c.inconclusive_limit,
                consecutive_error_limit: c.consecutive_error_limit,
                count: c.count,
                ..metric("m")
            };
            let status = run(&m, c.phases);
            assert_eq!(
                status.phase, c.want,
                "limits {:?} count {:?}: {:?}",
                m.failure_limit, m.count, c.phases
            );
        }
    }

    #[test]
    fn out_of_schema_limits_are_clamped() {
        let m = Metric {
            failure_limit: -1,
            inconclusive_limit: -1,
            consecutive_error_limit: -1,
            count: Some(0),
            ..metric("m")
        };
        assert_eq!(metric_phase(&m, &new_status(&m)), A::Running);
        assert_eq!(run(&m, &[Successful]).phase, A::Successful);
        assert_eq!(run(&m, &[Error]).phase, A::Failed);
    }

    #[test]
    fn record_counts_and_resets() {
        let m = metric("m");
        let status = run(
            &m,
            &[Error, Error, Successful, Error, Failed, Inconclusive, Error, Error],
        );
        assert_eq!(
            (
                status.count,
                status.successful,
                status.failed,
                status.inconclusive,
                status.error
            ),
            (8, 1, 1, 1, 5)
        );
        assert_eq!(status.consecutive_error, 2);
    }

    #[test]
    fn record_keeps_bounded_history() {
        let m = Metric {
            failure_limit: 100,
            ..metric("m")
        };
        let mut status = new_status(&m);
        for i in 0..25 {
            let phase = if i % 5 == 0 { Failed } else { Successful };
            record(&m, &mut status, measurement(phase, &format!("v{i}"), i));
        }
        assert_eq!(status.measurements.len(), KEPT_MEASUREMENTS);
        let values: Vec<_> = status.measurements.iter().filter_map(|m| m.value.clone()).collect();
        let want: Vec<_> = (15..25).map(|i| format!("v{i}")).collect();
        assert_eq!(values, want, "oldest dropped, newest last");
        assert_eq!((status.count, status.successful, status.failed), (25, 20, 5));
    }

    #[test]
    fn new_status_table() {
        let plain = new_status(&metric("a"));
        assert_eq!(
            (plain.name.as_str(), plain.phase, plain.count, plain.dry_run),
            ("a", A::Running, 0, None)
        );
        assert!(plain.measurements.is_empty());
        let dry = new_status(&Metric {
            dry_run: true,
            ..metric("b")
        });
        assert_eq!(dry.dry_run, Some(true));
    }

    #[test]
    fn next_due_schedule() {
        let m = Metric {
            interval: Some("1m".into()),
            initial_delay: Some("10s".into()),
            count: Some(2),
            ..metric("m")
        };
        let start = at(0);
        // First: after the initial delay, with or without a fresh status.
        assert_eq!(next_due(&m, None, start), Some(at(10)));
        let mut status = new_status(&m);
        assert_eq!(next_due(&m, Some(&status), start), Some(at(10)));
        // Then: an interval after the last measurement finished.
        record(&m, &mut status, measurement(Successful, "1", 12));
        assert_eq!(next_due(&m, Some(&status), start), Some(at(72)));
        // Done after count.
        record(&m, &mut status, measurement(Successful, "1", 75));
        assert_eq!(next_due(&m, Some(&status), start), None);

        // Defaults: no delay, 30s interval, no count.
        let plain = metric("p");
        assert_eq!(next_due(&plain, None, start), Some(start));
        let mut status = new_status(&plain);
        record(&plain, &mut status, measurement(Successful, "1", 5));
        assert_eq!(next_due(&plain, Some(&status), start), Some(at(35)));

        // None once Failed or Inconclusive.
        record(&plain, &mut status, measurement(Failed, "0", 40));
        assert_eq!(status.phase, A::Failed);
        assert_eq!(next_due(&plain, Some(&status), start), None);
        let inconclusive = run(&plain, &[Inconclusive]);
        assert_eq!(next_due(&plain, Some(&inconclusive), start), None);

        // An absurd interval saturates instead of overflowing.
        let slow = Metric {
            interval: Some("999999999h".into()),
            ..metric("s")
        };
        let status = run(&slow, &[Successful]);
        assert_eq!(next_due(&slow, Some(&status), start), Some(Timestamp::MAX));
    }

    #[test]
    fn overall_table() {
        let counted = |name: &str| Metric {
            count: Some(2),
            ..metric(name)
        };
        let dry = |m: Metric| Metric { dry_run: true, ..m };
        let a = counted("a");
        let b = metric("b");
        let cases: Vec<(Vec<Metric>, Vec<MetricStatus>, AnalysisPhase)> = vec![
            (vec![], vec![], A::Successful),
            (vec![a.clone(), b.clone()], vec![], A::Running),
            (vec![a.clone()], vec![run(&a, &[Successful])], A::Running),
            (vec![a.clone()], vec![run(&a, &[Successful, Successful])], A::Successful),
            // A metric without a status is Running.
            (
                vec![a.clone(), b.clone()],
                vec![run(&a, &[Successful, Successful])],
                A::Running,
            ),
            // Without a count: one Successful measurement is enough.
            (vec![b.clone()], vec![run(&b, &[Error])], A::Running),
            (vec![b.clone()], vec![run(&b, &[Error, Successful])], A::Successful),
            (
                vec![a.clone(), b.clone()],
                vec![run(&a, &[Successful, Successful]), run(&b, &[Successful])],
                A::Successful,
            ),
            // Failed beats Inconclusive beats the rest.
            (
                vec![a.clone(), b.clone()],
                vec![run(&a, &[Inconclusive]), run(&b, &[Failed])],
                A::Failed,
            ),
            (
                vec![a.clone(), b.clone()],
                vec![run(&a, &[Inconclusive]), run(&b, &[Successful])],
                A::Inconclusive,
            ),
            // Dry-run metrics are ignored, whatever they say.
            (
                vec![dry(a.clone()), b.clone()],
                vec![run(&dry(a.clone()), &[Failed]), run(&b, &[Successful])],
                A::Successful,
            ),
            (
                vec![dry(a.clone())],
                vec![run(&dry(a.clone()), &[Inconclusive])],
                A::Successful,
            ),
            (vec![dry(b.clone()), b.clone()], vec![], A::Running),
            // Statuses of metrics no longer in the spec are ignored.
            (
                vec![b.clone()],
                vec![run(&metric("gone"), &[Failed]), run(&b, &[Successful])],
                A::Successful,
            ),
        ];
        for (metrics, statuses, want) in cases {
            let (phase, message) = overall(&metrics, &statuses);
            assert_eq!(
                phase,
                want,
                "{:?}",
                statuses.iter().map(|s| (&s.name, s.phase)).collect::<Vec<_>>()
            );
            assert_eq!(
                message.is_some(),
                matches!(want, A::Failed | A::Inconclusive),
                "{message:?}"
            );
        }
    }

    #[test]
    fn overall_messages() {
        let m = Metric {
            count: Some(3),
            ..metric("error-rate")
        };
        let mut status = new_status(&m);
        for value in ["0.40", "0.41", "0.42"] {
            record(&m, &mut status, measurement(Failed, value, 0));
        }
        let (phase, message) = overall(std::slice::from_ref(&m), std::slice::from_ref(&status));
        assert_eq!(phase, A::Failed);
        assert_eq!(
            message.as_deref(),
            Some("metric \"error-rate\" failed: 3 of 3 measurements failed (limit 0); last value 0.42")
        );

        let errors = run(&metric("error-rate"), &[Error, Error, Error, Error, Error]);
        let mut errors = errors;
        errors.measurements.last_mut().expect("one").value = Some("connection refused".into());
        let (phase, message) = overall(&[metric("error-rate")], &[errors]);
        assert_eq!(phase, A::Failed);
        assert_eq!(
            message.as_deref(),
            Some("metric \"error-rate\" failed: 5 consecutive errors (limit 4); last error: connection refused")
        );

        let inconclusive = run(&metric("latency"), &[Successful, Inconclusive]);
        let (phase, message) = overall(&[metric("latency")], &[inconclusive]);
        assert_eq!(phase, A::Inconclusive);
        assert_eq!(
            message.as_deref(),
            Some("metric \"latency\" inconclusive: 1 of 2 measurements inconclusive (limit 0); last value v1")
        );

        // Long values are cut; a missing value is left out.
        let mut long = run(&metric("big"), &[Failed]);
        long.measurements[0].value = Some("x".repeat(500));
        let (_, message) = overall(&[metric("big")], &[long]);
        let message = message.expect("failed");
        assert!(
            message.ends_with(&format!("last value {}…", "x".repeat(MAX_VALUE_IN_MESSAGE))),
            "{message}"
        );
        let mut bare = run(&metric("bare"), &[Failed]);
        bare.measurements[0].value = None;
        let (_, message) = overall(&[metric("bare")], &[bare]);
        assert_eq!(
            message.as_deref(),
            Some("metric \"bare\" failed: 1 of 1 measurements failed (limit 0)")
        );
    }

    fn any_phase() -> impl Strategy<Value = MeasurementPhase> {
        prop_oneof![Just(Successful), Just(Failed), Just(Inconclusive), Just(Error)]
    }

    proptest! {
        #[test]
        fn counts_add_up_and_phase_follows_limits(
            phases in proptest::collection::vec(any_phase(), 0..40),
            failure_limit in 0..4i32,
            inconclusive_limit in 0..4i32,
            consecutive_error_limit in 0..4i32,
            count in proptest::option::of(1..30i32),
        ) {
            let m = Metric {
                failure_limit,
                inconclusive_limit,
                consecutive_error_limit,
                count,
                ..metric("m")
            };
            let status = run(&m, &phases);
            prop_assert_eq!(status.count as usize, phases.len());
            prop_assert_eq!(status.count, status.successful + status.failed + status.inconclusive + status.error);
            prop_assert_eq!(status.measurements.len(), phases.len().min(KEPT_MEASUREMENTS));

            // An independent model: the first prefix that crosses a limit decides; else Running or Successful.
            let (mut n, mut failed, mut inconclusive, mut successful, mut run_of_errors) = (0, 0, 0, 0, 0);
            // `n` counts decisive measurements only.
            let mut want = A::Running;
            for p in &phases {
                // Errors are measured again: they do not count toward `count`.
                if *p != Error {
                    n += 1;
                }
                match p {
                    Failed => failed += 1,
                    Inconclusive => inconclusive += 1,
                    Successful => successful += 1,
                    _ => {}
                }
                run_of_errors = if *p == Error { run_of_errors + 1 } else { 0 };
                want = if failed > failure_limit || run_of_errors > consecutive_error_limit {
                    A::Failed
                } else if inconclusive > inconclusive_limit {
                    A::Inconclusive
                } else if count.is_some_and(|c| n >= c) {
                    if successful > 0 { A::Successful } else { A::Inconclusive }
                } else {
                    A::Running
                };
                if want != A::Running {
                    break;
                }
            }
            prop_assert_eq!(status.phase, want);
            if want == A::Running {
                prop_assert_eq!(status.phase, metric_phase(&m, &status));
            }
        }
    }
}
