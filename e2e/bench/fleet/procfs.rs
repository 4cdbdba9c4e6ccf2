//! CPU time and resident memory of a process, from /proc.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// USER_HZ, the unit of utime and stime in /proc/PID/stat: 100 on Linux.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds (user + system) the process has used; None once it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// VmRSS in KiB; None once the process is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The highest RSS of one process, sampled every SAMPLE_EVERY in the background.
pub struct PeakRss {
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

const SAMPLE_EVERY: Duration = Duration::from_millis(150);

impl PeakRss {
    pub fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(rss_kib(pid).unwrap_or(0)));
        let shared = peak.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tick.tick().await;
                if let Some(rss) = rss_kib(pid) {
                    shared.fetch_max(rss, Ordering::Relaxed);
                }
            }
        });
        Self { peak, task }
    }

    /// The peak since the last call (or the start); starts a new window.
    pub fn take(&self, pid: u32) -> u64 {
        let now = rss_kib(pid).unwrap_or(0);
        self.peak.swap(now, Ordering::Relaxed).max(now)
    }
}

impl Drop for PeakRss {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits until the process uses less than QUIET of a core over one second
/// (at least MIN, at most MAX), so that start-up or a burst of work is over.
pub async fn settle(pid: u32) -> Duration {
    const QUIET: f64 = 0.03;
    const MIN: Duration = Duration::from_secs(2);
    const MAX: Duration = Duration::from_secs(30);
    let started = tokio::time::Instant::now();
    tokio::time::sleep(MIN - Duration::from_secs(1)).await;
    loop {
        let before = cpu_seconds(pid).unwrap_or(0.0);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let used = cpu_seconds(pid).unwrap_or(0.0) - before;
        if used < QUIET || started.elapsed() >= MAX {
            return started.elapsed();
        }
    }
}

/// The median of a few RSS samples over two seconds: one figure for memory at rest.
pub async fn resting_rss_kib(pid: u32) -> u64 {
    let mut samples = Vec::new();
    for _ in 0..5 {
        samples.extend(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or(0)
}
