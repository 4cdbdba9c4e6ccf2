//! Weights the data plane has accepted. Where the router's controller reports
//! on the route (Gateway API `status.parents[].conditions` with
//! `observedGeneration`), a scale-down waits until it accepts the route's
//! latest generation: a ReplicaSet is never scaled down on a weight or a
//! Service move the proxies may not have taken yet. After the canary's
//! `acceptanceTimeoutSeconds` the round still holds, and says so loudly.
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::Action;
use super::conditions::{self, PROGRESSING};
use super::reason::Reason;
use super::round::Round;

/// How a held round's message starts once the timeout is over: one Warning per hold.
const HOLDING: &str = "Holding:";

impl Round<'_> {
    /// Drops this round's scale-downs while the route is not accepted, or
    /// when this round changes it, and says why on the conditions.
    pub(super) fn hold_unaccepted_scale_downs(&mut self) {
        // A Service switch counts: a DestinationRule's subsets follow it.
        let writes_route = self.actions.iter().any(|a| {
            matches!(
                a,
                Action::SetWeight { .. } | Action::SetRoutes { .. } | Action::Select { .. }
            )
        });
        let unaccepted = self.traffic.unaccepted.clone();
        if !self.traffic.reports_acceptance || (unaccepted.is_none() && !writes_route) {
            return;
        }
        let running: Vec<(String, i32)> = self
            .new
            .into_iter()
            .chain(self.old.iter().copied())
            .map(|rs| (rs.name.clone(), rs.replicas))
            .collect();
        let shrinks = |action: &Action| match action {
            Action::Scale { name, replicas } => running.iter().any(|(n, now)| n == name && replicas < now),
            _ => false,
        };
        let mut held: Vec<String> = self
            .actions
            .iter()
            .filter(|a| shrinks(a))
            .filter_map(|a| match a {
                Action::Scale { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        if held.is_empty() {
            return;
        }
        self.actions.retain(|a| !shrinks(a));
        // Nor an Event for a scale-down that does not happen.
        self.events.retain(|e| {
            e.reason != Reason::ScalingReplicaSet
                || !held
                    .iter()
                    .any(|name| e.note.starts_with(&format!("Scaled down replica set {name} ")))
        });
        // Changed this round: the route's watch brings the controller's answer.
        let Some(why) = unaccepted else { return };
        held.sort();
        // A new generation written this round starts the wait again.
        let since = self
            .previous
            .traffic_unaccepted_since
            .as_ref()
            .filter(|_| !writes_route)
            .map_or(self.stamp(), |t| t.0);
        self.status.traffic_unaccepted_since = Some(Time(since));
        let timeout = Duration::from_secs(self.acceptance_timeout());
        let elapsed = self.elapsed_since(since);
        let names = held.join(", ");
        let message = if elapsed < timeout {
            self.requeue_at(timeout - elapsed);
            format!("Waiting for the route to be accepted before scaling down ReplicaSet {names}: {why}")
        } else {
            let message = format!(
                "{HOLDING} the route was not accepted within {}s, so ReplicaSet {names} is not scaled down until it is: {why}",
                timeout.as_secs()
            );
            let warned =
                conditions::get(&self.previous.conditions, PROGRESSING).is_some_and(|c| c.message.starts_with(HOLDING));
            if !warned {
                self.event(true, Reason::TrafficNotAccepted, message.clone());
            }
            message
        };
        self.say_held(message);
    }

    /// The hold on the Progressing condition's reason and the message; the
    /// phase and the other conditions stay as the round decided them (an
    /// abort stays Degraded with its reason, a promotion Healthy).
    fn say_held(&mut self, message: String) {
        let generation = self.status.observed_generation;
        let now = Time(self.now);
        let list = &mut self.status.conditions;
        let progressing = conditions::get(list, PROGRESSING).is_some_and(|c| c.status == "True");
        conditions::set(
            list,
            PROGRESSING,
            progressing,
            Reason::TrafficNotAccepted.as_str(),
            message.clone(),
            generation,
            &now,
        );
        // The round's own message (an abort's reason) stays first.
        self.status.message = Some(match self.status.message.take() {
            Some(round) if !round.is_empty() => format!("{round}; {message}"),
            _ => message,
        });
    }

    fn acceptance_timeout(&self) -> u64 {
        let seconds = self
            .spec
            .strategy
            .canary
            .as_ref()
            .map_or(30, |c| c.acceptance_timeout_seconds);
        u64::try_from(seconds.max(1)).unwrap_or(30)
    }
}
