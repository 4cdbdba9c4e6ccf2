//! Pure decision logic: observed state in, plan out. No IO, no async.
//!
//! The controller observes a Release and its ReplicaSets, calls [`plan`], and
//! executes the returned actions; every rollout decision is made here, where a
//! unit test reaches it in microseconds.
pub mod conditions;
mod release;
pub mod revision;
pub mod rolling;
mod selector;
#[cfg(test)]
mod tests;

use std::time::Duration;

use crate::api::ReleaseStatus;

pub use release::plan;
pub use selector::selector_string;

/// One ReplicaSet of a Release, as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionState {
    pub name: String,
    /// The pod template hash (`serin.dev/revision`).
    pub revision: String,
    /// Increasing per Release (`serin.dev/revision-number`); orders revisions.
    pub number: i64,
    /// spec.replicas
    pub replicas: i32,
    pub status_replicas: i32,
    pub ready: i32,
    pub available: i32,
    /// The ReplicaSet controller has observed the latest spec, so the counts are current.
    pub synced: bool,
}

/// What the controller must do to move the Release along.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create the ReplicaSet of the current template.
    Create {
        revision: String,
        number: i64,
        replicas: i32,
    },
    Scale {
        name: String,
        replicas: i32,
    },
    /// Trim revision history.
    Delete {
        name: String,
    },
}

/// A Kubernetes Event to record on the Release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

/// The outcome of one planning round.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub status: ReleaseStatus,
    pub events: Vec<Transition>,
    /// When a timer (the progress deadline) falls due; None means wait for a change.
    pub requeue_after: Option<Duration>,
}
