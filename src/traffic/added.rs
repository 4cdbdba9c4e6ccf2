//! The routes serin adds to a user's route object (Gateway API rules, Istio
//! HTTP routes) for `setHeaderRoute` and `setMirrorRoute`: named
//! `serin-step<N>-<route>` after the step that set them, so a router reads
//! back which steps' routes are in place and removes any no step in force
//! writes. One naming for every router that adds routes.
use serde_json::Value;

use crate::api::{CanaryStep, RouteMatch, regex_escape};

/// The prefix of an added route's name; N counts steps from 1.
const PREFIX: &str = "serin-step";

/// The step an added route (a rule or HTTP route, by its `name`) stands for;
/// None for the user's own, even one named like `serin-web`.
pub fn step_of(route: &Value) -> Option<usize> {
    let rest = route.get("name")?.as_str()?.strip_prefix(PREFIX)?;
    let (number, _) = rest.split_once('-')?;
    number.parse::<usize>().ok()?.checked_sub(1)
}

/// The steps whose added routes are in `routes`, each once, in order.
pub fn steps_in(routes: &[Value]) -> Vec<usize> {
    let mut steps: Vec<usize> = routes.iter().filter_map(step_of).collect();
    steps.dedup();
    steps
}

/// The name of step `index`'s route beside the `k`th driven route.
pub fn name(index: usize, route: &str, k: usize) -> String {
    let suffix = if k == 0 { String::new() } else { format!("-{k}") };
    format!("{PREFIX}{}-{route}{suffix}", index + 1)
}

/// The route name and conditions of a route step.
pub fn route_of(step: &CanaryStep, index: usize) -> Result<(&str, &[RouteMatch]), String> {
    match (&step.set_header_route, &step.set_mirror_route) {
        (Some(h), _) => Ok((&h.name, &h.matches)),
        (_, Some(m)) => Ok((&m.name, &m.matches)),
        _ => Err(format!("step {index} sets no route")),
    }
}

/// A `Cookie` header pattern for `name=value`, matching under whole-header
/// semantics (Envoy) and search semantics alike.
pub fn cookie_pattern(condition: &RouteMatch, name: &str) -> String {
    format!(
        r"(^|.*;\s*){}={}(;.*|$)",
        regex_escape(name),
        regex_escape(condition.cookie_value())
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn added_routes_are_named_after_their_step_and_read_back() {
        assert_eq!(name(1, "testers", 0), "serin-step2-testers");
        assert_eq!(name(1, "t-1", 2), "serin-step2-t-1-2");
        assert_eq!(step_of(&json!({ "name": name(4, "t-1", 2) })), Some(4));
        for users in [
            json!({ "name": "serin-web" }),
            json!({ "name": "serin-step0-x" }),
            json!({}),
        ] {
            assert_eq!(step_of(&users), None, "{users}");
        }
        let routes = [
            json!({ "name": "serin-step2-a" }),
            json!({ "name": "serin-step2-a-1" }),
            json!({ "name": "serin-step3-b" }),
            json!({}),
        ];
        assert_eq!(steps_in(&routes), [1, 2]);
    }
}
