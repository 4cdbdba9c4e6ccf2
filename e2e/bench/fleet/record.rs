//! What one run measured, as written to OUT/SCENARIO-CONTROLLER.json.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Snapshot;
use super::metrics::diff;
use super::workload::{Controller, Scenario};

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Run {
    pub controller: Controller,
    pub scenario: Scenario,
    pub n: usize,
    pub replicas: i32,
    /// The controller up, leading and quiet, with no workloads (KiB).
    pub idle_rss_kib: u64,
    /// The controller quiet again after the fleet was created (KiB).
    pub steady_rss_kib: u64,
    pub create: PhaseRecord,
    pub update: PhaseRecord,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct PhaseRecord {
    pub objects: usize,
    pub completed: usize,
    /// From the phase's first write until the last workload was complete
    /// (None when some never were).
    pub seconds: Option<f64>,
    /// How long the bench took to send every write.
    pub writes_seconds: f64,
    /// Per workload, from its write returning to the watch showing it complete.
    pub p50_seconds: Option<f64>,
    pub p90_seconds: Option<f64>,
    pub p99_seconds: Option<f64>,
    /// CPU seconds used during the phase, per process ("controller" is the
    /// controller; for Deployments, kube-controller-manager).
    pub cpu_seconds: BTreeMap<String, f64>,
    /// The API server's requests during the phase, all clients, by "VERB resource".
    pub apiserver_requests: BTreeMap<String, f64>,
    /// The controller's own count of its requests, by verb (and kind).
    pub controller_requests: Option<BTreeMap<String, f64>>,
    /// kube-controller-manager's requests (all its controllers).
    pub kcm_requests: Option<f64>,
    /// The controller's highest RSS during the phase (KiB).
    pub peak_rss_kib: u64,
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

/// CPU seconds per process between two readings (zero kept: it is a figure).
fn cpu_used(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(k, a)| Some((k.clone(), a - before.get(k)?)))
        .collect()
}

pub fn phase(
    objects: usize,
    completions: &[(Instant, Instant)],
    before: &Snapshot,
    after: &Snapshot,
    writes: Duration,
    peak_rss_kib: u64,
) -> PhaseRecord {
    let mut each: Vec<f64> = completions
        .iter()
        .map(|(written, done)| done.saturating_duration_since(*written).as_secs_f64())
        .collect();
    each.sort_by(f64::total_cmp);
    let last = completions.iter().map(|(_, done)| *done).max();
    let seconds = last
        .filter(|_| completions.len() == objects)
        .map(|last| last.saturating_duration_since(before.at).as_secs_f64());
    let controller_requests = before
        .controller
        .as_ref()
        .zip(after.controller.as_ref())
        .map(|(b, a)| diff(b, a));
    PhaseRecord {
        objects,
        completed: completions.len(),
        seconds,
        writes_seconds: writes.as_secs_f64(),
        p50_seconds: percentile(&each, 50.0),
        p90_seconds: percentile(&each, 90.0),
        p99_seconds: percentile(&each, 99.0),
        cpu_seconds: cpu_used(&before.cpu, &after.cpu),
        apiserver_requests: diff(&before.apiserver, &after.apiserver),
        controller_requests,
        kcm_requests: before.kcm.zip(after.kcm).map(|(b, a)| a - b),
        peak_rss_kib,
    }
}
