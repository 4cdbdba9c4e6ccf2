//! kstatus-style conditions, changed only when their content changes.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
/// kstatus reads `Reconciling=True` as InProgress: a rollout in flight or held.
pub const RECONCILING: &str = "Reconciling";
/// kstatus reads `Stalled=True` as Failed: rolled back, aborted or invalid.
pub const STALLED: &str = "Stalled";

/// Sets condition `type_`, keeping its lastTransitionTime unless the status flips,
/// so an unchanged Release writes an unchanged status.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &Time,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let previous = conditions.iter().position(|c| c.type_ == type_);
    let last_transition_time = match previous.map(|i| &conditions[i]) {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => now.clone(),
    };
    let condition = Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    };
    match previous {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

/// The condition of `type_`, if present.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let t0 = Time(Timestamp::from_second(100).unwrap());
        let t1 = Time(Timestamp::from_second(200).unwrap());
        let mut conditions = Vec::new();
        set(&mut conditions, READY, false, "Progressing", "a".into(), Some(1), &t0);
        set(&mut conditions, READY, false, "Other", "b".into(), Some(2), &t1);
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, t0);
        assert_eq!(conditions[0].reason, "Other");
        set(&mut conditions, READY, true, "Available", "c".into(), Some(2), &t1);
        assert_eq!(conditions[0].last_transition_time, t1);
    }
}
