//! What canary and blue-green share: pointing Services at revisions, scaling
//! without pulling pods from under a Service, and the clock status is kept in.
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::Action;
use super::reason::Reason;
use super::round::{INVALID_RECHECK, Round};
use crate::api::Phase;

impl Round<'_> {
    /// A Service or route the strategy needs cannot be driven: the Release is
    /// InvalidSpec until it can, and nothing is switched. Their watches wake the
    /// controller when they appear; look again anyway.
    pub(super) fn blocked_by_traffic(&mut self) -> bool {
        let Some(problem) = self.traffic.problem.clone() else {
            return false;
        };
        self.requeue_at(INVALID_RECHECK);
        self.invalid(problem);
        true
    }

    /// Now, rounded up to the whole second: status keeps times to the second, and
    /// a recorded start rounded down would end pauses and deadlines early.
    pub(super) fn stamp(&self) -> Timestamp {
        let carry = i64::from(self.now.subsec_nanosecond() > 0);
        Timestamp::from_second(self.now.as_second() + carry).unwrap_or(self.now)
    }

    /// Records when the rollout of the current revision started; kept while it goes on.
    pub(super) fn note_rollout_start(&mut self, retry: bool) {
        let same = self.previous.current_revision.as_ref() == Some(&self.revision) && !retry;
        let started = self.previous.rollout_start_time.clone().filter(|_| same);
        self.status.rollout_start_time = Some(started.unwrap_or(Time(self.stamp())));
    }

    /// Time since `then`; zero for a time still ahead (a rounded-up stamp).
    pub(super) fn elapsed_since(&self, then: Timestamp) -> Duration {
        Duration::try_from(self.now.duration_since(then)).unwrap_or_default()
    }

    /// Time until `then`; zero once it has passed.
    pub(super) fn until(&self, then: Timestamp) -> Duration {
        Duration::try_from(then.duration_since(self.now)).unwrap_or_default()
    }

    /// Available pods of a revision's ReplicaSets.
    pub(super) fn available_pods(&self, revision: &str) -> i32 {
        self.new
            .into_iter()
            .chain(self.old.iter().copied())
            .filter(|rs| rs.revision == revision)
            .map(|rs| rs.available)
            .sum()
    }

    /// Points each configured Service at the revision it should select, if that
    /// revision has at least `min_available` available pods: a Service never
    /// moves onto a revision that cannot serve it. Entries are (Service name,
    /// revision it selects now, revision it should select, min_available).
    /// Returns the revisions the Services select after this round.
    pub(super) fn switch_services<const N: usize>(
        &mut self,
        services: [(Option<&str>, &Option<String>, &String, i32); N],
    ) -> Vec<String> {
        let mut selected = Vec::new();
        for (service, now, want, min_available) in services {
            let Some(service) = service else { continue };
            if now.as_ref() == Some(want) || self.available_pods(want) < min_available.max(1) {
                selected.extend(now.clone());
                continue;
            }
            let note = format!("Service {service} now selects revision {want}");
            self.event(false, Reason::ServiceSwitched, note);
            self.actions.push(Action::Select {
                service: service.to_string(),
                revision: want.clone(),
            });
            selected.push(want.clone());
        }
        selected
    }

    /// Scales a ReplicaSet (None: the current revision's, created first), except
    /// to zero while a Service selects its revision after this round.
    pub(super) fn scale_guarded(&mut self, name: Option<&str>, replicas: i32, selected: &[String]) {
        let Some(name) = name else {
            return self.scale_new(replicas);
        };
        let Some(rs) = self
            .new
            .into_iter()
            .chain(self.old.iter().copied())
            .find(|rs| rs.name == name)
        else {
            return;
        };
        if replicas == 0 && selected.contains(&rs.revision) {
            return;
        }
        self.scale(rs, replicas);
    }

    /// No rollout in flight: the current revision runs every pod, and older ones
    /// scale down once their drain is over and no Service selects them. Healthy
    /// (and stable) once every pod is available; until then Progressing, for `why`.
    pub(super) fn settle_on_current(&mut self, selected: &[String], drain_until: Option<&Time>, why: Reason) {
        let desired = self.desired();
        if self.synced {
            self.scale_new(desired);
            match drain_until {
                Some(at) => self.requeue_at(self.until(at.0)),
                None => {
                    for rs in self.old.clone() {
                        self.scale_guarded(Some(&rs.name), 0, selected);
                    }
                }
            }
        }
        let available = self
            .new
            .is_some_and(|c| c.replicas == desired && c.available >= desired);
        if available && self.synced {
            self.promote();
            return self.healthy(drain_until);
        }
        let ready = self.new.map_or(0, |c| c.available);
        let message = format!(
            "Scaling revision {}: {ready} of {desired} replicas available",
            self.revision
        );
        self.set_conditions(Phase::Progressing, why, message, true, None);
    }

    /// Healthy; older revisions that still run drain until `drain_until`.
    pub(super) fn healthy(&mut self, drain_until: Option<&Time>) {
        let desired = self.desired();
        let mut message = format!("Revision {}: all {desired} replicas available", self.revision);
        let draining: Vec<&str> = self
            .old
            .iter()
            .filter(|rs| rs.replicas > 0)
            .map(|rs| rs.revision.as_str())
            .collect();
        if let Some(at) = drain_until
            && !draining.is_empty()
        {
            message.push_str(&format!("; revision {} scales down at {}", draining.join(", "), at.0));
        }
        self.set_conditions(Phase::Healthy, Reason::Available, message, false, None);
        if self.old.iter().all(|rs| rs.replicas == 0) {
            self.trim_history();
        }
    }
}
