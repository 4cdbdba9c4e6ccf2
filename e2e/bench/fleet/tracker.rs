//! Per workload: when the bench wrote it and when the watch first showed it
//! complete at (or past) the generation that write produced.
use std::collections::HashMap;
use std::time::Instant;

#[derive(Default)]
pub struct Tracker {
    objects: HashMap<String, Tracked>,
    done: usize,
    /// The watch has listed the namespace and is streaming changes.
    pub watching: bool,
}

#[derive(Default)]
struct Tracked {
    /// What the watch last showed.
    generation: i64,
    complete: bool,
    /// The write of this phase: when it returned, and the generation it made.
    written: Option<(Instant, i64)>,
    done_at: Option<Instant>,
}

impl Tracker {
    /// A new phase: forget the previous phase's writes and completions.
    pub fn begin(&mut self) {
        for tracked in self.objects.values_mut() {
            tracked.written = None;
            tracked.done_at = None;
        }
        self.done = 0;
    }

    pub fn written(&mut self, name: &str, generation: i64, at: Instant) {
        let tracked = self.objects.entry(name.to_string()).or_default();
        tracked.written = Some((at, generation));
        // The watch may have shown the result before the write returned.
        if tracked.done_at.is_none() && tracked.complete && tracked.generation >= generation {
            tracked.done_at = Some(at);
            self.done += 1;
        }
    }

    pub fn observed(&mut self, name: &str, generation: i64, complete: bool, at: Instant) {
        let tracked = self.objects.entry(name.to_string()).or_default();
        tracked.generation = generation;
        tracked.complete = complete;
        if let Some((_, target)) = tracked.written
            && tracked.done_at.is_none()
            && complete
            && generation >= target
        {
            tracked.done_at = Some(at);
            self.done += 1;
        }
    }

    /// Workloads of this phase complete so far.
    pub fn done(&self) -> usize {
        self.done
    }

    /// (written, complete) of each workload complete in this phase.
    pub fn completions(&self) -> Vec<(Instant, Instant)> {
        self.objects
            .values()
            .filter_map(|t| Some((t.written?.0, t.done_at?)))
            .collect()
    }
}
