//! How a canary's traffic moves: the weight the route gives it
//! ([`next_weight`]), the revisions the Services select, the order that keeps
//! traffic safe, and the replica split that carries the weight without a
//! router. Weights go down before Services switch, Services switch before
//! weights go up, and all of that before any scaling; a weight is only raised
//! onto a canary its Service already selects and whose pods are available; and
//! no revision is scaled to zero while a Service selects it.
use std::time::Duration;

use super::reason::Reason;
use super::round::Round;
use super::surge::{self, Pods, RollingInput};
use super::{Action, RevisionState};
use crate::api::CanaryStrategy;

/// How soon a round that switched a Service or moved a weight looks again: a
/// backstop to the watches of those objects, as the next step may hinge on them.
const TRAFFIC_RECHECK: Duration = Duration::from_secs(1);

/// What the canary's weight this round hangs on (with a router).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct WeightInputs {
    /// Past the last step: the canary takes over.
    pub promoting: bool,
    /// The stable Service moves onto the canary this round.
    pub switch_stable: bool,
    /// Status records the step whose weight this is, so the weight may go up.
    pub may_raise: bool,
    /// The canary Service selects the canary revision, now and after this round.
    pub selects_canary: bool,
    /// The canary's ReplicaSet is synced and runs the step's pods (at least one) available.
    pub canary_ready: bool,
    /// The weight the router shows now; None when its objects are not set up yet.
    pub observed: Option<i32>,
    /// The weight the step asks for.
    pub target: i32,
}

/// The weight to send the canary this round. It goes up to the step's weight
/// only onto a ready canary its Service selects, once status records the step;
/// it never goes above the step's weight; it is 0 while the canary Service does
/// not select the canary; and once the stable Service takes the canary over,
/// the canary Service's share goes back to 0.
pub(super) fn next_weight(inputs: &WeightInputs) -> i32 {
    let observed = inputs.observed.unwrap_or(0);
    if inputs.promoting {
        if inputs.switch_stable { 0 } else { observed }
    } else if inputs.may_raise && inputs.selects_canary && inputs.canary_ready {
        inputs.target
    } else if inputs.selects_canary {
        observed.min(inputs.target)
    } else {
        0
    }
}

/// Where the Services and the route should be after this round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TrafficPlan {
    pub(super) stable_service: String,
    pub(super) canary_service: String,
    /// None without a router.
    pub(super) canary_weight: Option<i32>,
    /// The steps whose header and mirror routes are in force; None without a router.
    pub(super) routes: Option<Vec<usize>>,
}

impl Round<'_> {
    /// With a router, stable keeps every pod and the canary runs its own share.
    /// Returns (ReplicaSet name, or None for the canary yet to be created; replicas).
    pub(super) fn routed_replicas(&self, canary_pods: i32) -> Vec<(Option<String>, i32)> {
        let stable = self.stable();
        let draining = self.draining_until().is_some();
        let mut out = vec![(self.new.map(|c| c.name.clone()), canary_pods)];
        for rs in &self.old {
            if Some(*rs) == stable {
                out.push((Some(rs.name.clone()), self.desired()));
            } else if !draining {
                out.push((Some(rs.name.clone()), 0));
            }
        }
        out
    }

    /// Without a router the replica ratio carries the weight: the canary grows to
    /// its share and stable shrinks to the rest, within maxSurge and maxUnavailable.
    /// Superseded revisions go first.
    pub(super) fn ratio_replicas(
        &self,
        (max_surge, max_unavailable): (i32, i32),
        canary_pods: i32,
    ) -> Vec<(Option<String>, i32)> {
        let desired = self.desired();
        let stable = self.stable();
        let pods = |rs: Option<&RevisionState>| {
            rs.map_or(
                Pods {
                    replicas: 0,
                    available: 0,
                },
                |r| Pods {
                    replicas: r.replicas,
                    available: r.available,
                },
            )
        };
        let superseded: Vec<&RevisionState> = self.old.iter().copied().filter(|rs| Some(*rs) != stable).collect();
        let canary_replicas = self.new.map_or(0, |c| c.replicas);
        // The weight went down: stable grows back and the canary shrinks.
        let shrinking = canary_replicas > canary_pods;
        let (grow, shrink_last, floor) = if shrinking {
            (stable, self.new, canary_pods)
        } else {
            (self.new, stable, desired - canary_pods)
        };
        let mut order: Vec<Option<&RevisionState>> = superseded.iter().map(|rs| Some(*rs)).collect();
        order.push(shrink_last);
        let input = RollingInput {
            desired,
            max_surge,
            max_unavailable,
            new: pods(grow),
            old: order.iter().map(|rs| pods(*rs)).collect(),
            old_floor: floor,
        };
        let output = surge::step(&input);
        let name = |rs: Option<&RevisionState>| rs.map(|r| r.name.clone());
        let mut out = Vec::new();
        if grow.is_some() || !shrinking {
            out.push((name(grow), output.new_replicas));
        }
        for (rs, replicas) in order.into_iter().zip(output.old_replicas) {
            if rs.is_some() {
                out.push((name(rs), replicas));
            }
        }
        out
    }

    /// Route changes and Service switches, in the safe order. Returns the
    /// revisions the Services select after this round.
    pub(super) fn steer(&mut self, strategy: &CanaryStrategy, plan: &TrafficPlan) -> Vec<String> {
        let traffic = self.traffic;
        let observed = traffic.canary_weight;
        let actions_before = self.actions.len();
        // Routes come off before the Services move and go on after, as weights
        // do: first what stays of those shown (None shown: nothing stays).
        let mut shown = traffic.routes.clone();
        if let Some(wanted) = &plan.routes {
            let staying: Vec<usize> = shown.iter().flatten().copied().filter(|s| wanted.contains(s)).collect();
            if shown.as_ref() != Some(&staying) {
                self.actions.push(Action::SetRoutes { steps: staying.clone() });
                shown = Some(staying);
            }
        }
        if let Some(canary) = plan.canary_weight.filter(|w| observed.is_none_or(|o| *w < o)) {
            self.actions.push(Action::SetWeight { canary });
        }
        let selected = self.switch_services([
            (
                strategy.stable_service.as_deref(),
                &traffic.stable_service,
                &plan.stable_service,
                1,
            ),
            (
                strategy.canary_service.as_deref(),
                &traffic.canary_service,
                &plan.canary_service,
                1,
            ),
        ]);
        if let Some(canary) = plan.canary_weight.filter(|w| observed.is_some_and(|o| *w > o)) {
            self.actions.push(Action::SetWeight { canary });
        }
        if let Some(wanted) = plan.routes.as_ref().filter(|w| shown.as_ref() != Some(*w)) {
            self.actions.push(Action::SetRoutes { steps: wanted.clone() });
        }
        if let Some(weight) = plan.canary_weight
            && plan.canary_weight != observed
        {
            let note = format!("Traffic: {}% stable, {weight}% canary", 100 - weight);
            self.event(false, Reason::TrafficShifted, note);
        }
        if self.actions.len() > actions_before {
            // A backstop to the watches: look at what this round changed soon.
            self.requeue_at(TRAFFIC_RECHECK);
        }
        selected
    }
}
