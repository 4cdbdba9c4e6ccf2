//! Header and mirror routes: which `setHeaderRoute` and `setMirrorRoute` steps
//! are in force at a step, and what each router can carry. A route is named
//! in the router's objects by the step that set it, so a router reads back
//! which steps' routes are in place and checks each against that step.
use super::Invalid;
use super::round::Round;
use crate::api::{CanaryStep, CanaryStrategy, RouteMatch, StringMatch};

/// Indexes of the steps whose routes are in force at step `index`, ascending:
/// each name's latest setting among steps `0..=index`, unless a later step
/// there removed it. None past the last step: promotion drops every route.
pub fn active_routes(steps: &[CanaryStep], index: usize) -> Vec<usize> {
    let Some(done) = steps.get(..=index) else {
        return Vec::new();
    };
    let mut active: Vec<usize> = Vec::new();
    for (i, step) in done.iter().enumerate() {
        let Some(name) = step.route_name() else { continue };
        active.retain(|&a| steps[a].route_name() != Some(name));
        if step.sets_route() {
            active.push(i);
        }
    }
    active
}

impl Round<'_> {
    /// The routes to have in place after this round at step `index`. Like a
    /// weight, a route goes on only once status records its step (`recorded`);
    /// it may come off at any time.
    ///
    /// A mirror route is shown only while the canary Service selects canary
    /// pods: mirrored onto the stable revision, a copy of each write would be
    /// served twice.
    pub(super) fn routes_to_show(&self, strategy: &CanaryStrategy, index: usize, recorded: bool) -> Vec<usize> {
        let mut routes = self.routes_in_force(strategy, index);
        if !recorded {
            // Drifted routes read as none: keep those this revision's recorded step allowed.
            let same = self
                .previous
                .canary
                .as_ref()
                .is_some_and(|c| c.revision == self.revision);
            let retry = self.previous.control.as_ref().is_some_and(|c| c.retry);
            let recorded_index = self
                .previous
                .current_step_index
                .and_then(|i| usize::try_from(i).ok())
                .filter(|_| same && !retry)
                .map(|i| i.min(index));
            let allowed = match (&self.traffic.routes, recorded_index) {
                (Some(shown), _) => shown.clone(),
                (None, Some(i)) => active_routes(&strategy.steps, i),
                (None, None) => Vec::new(),
            };
            routes.retain(|step| allowed.contains(step));
        }
        routes
    }

    /// A route in force at step `index` that the router cannot write (a
    /// condition the user's match already tests): InvalidSpec naming the
    /// step, and nothing moves. Before the step and after the canary, it does
    /// not matter.
    pub(super) fn route_cannot_be_written(&mut self, strategy: &CanaryStrategy, index: usize) -> bool {
        let in_force = active_routes(&strategy.steps, index);
        if let Some(room) = self.traffic.route_capacity.filter(|room| in_force.len() > *room) {
            let message = format!(
                "spec.strategy.canary.steps[{index}]: {} header and mirror routes in force, but the route has room \
                 for {room} beside its own rules (Gateway API allows 16 rules per route)",
                in_force.len()
            );
            self.invalid(message);
            return true;
        }
        let Some((step, why)) = self.traffic.route_problems.iter().find(|(s, _)| in_force.contains(s)) else {
            return false;
        };
        let field = if strategy.steps[*step].set_header_route.is_some() {
            "setHeaderRoute"
        } else {
            "setMirrorRoute"
        };
        let message = format!("spec.strategy.canary.steps[{step}].{field}: {why}");
        self.invalid(message);
        true
    }

    /// The routes step `index` has in force now: a mirror only while the
    /// canary Service selects canary pods.
    pub(super) fn routes_in_force(&self, strategy: &CanaryStrategy, index: usize) -> Vec<usize> {
        let mut routes = active_routes(&strategy.steps, index);
        let onto_canary =
            self.new.is_some_and(|c| c.available > 0) && self.traffic.canary_service.as_ref() == Some(&self.revision);
        if !onto_canary {
            routes.retain(|&step| strategy.steps[step].set_mirror_route.is_none());
        }
        routes
    }
}

/// What a router can carry, checked against the steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Carries {
    pub router: &'static str,
    pub mirror: bool,
    pub query_params: bool,
    pub cookies: bool,
    /// At most this many conditions per route, and routes in force at once.
    pub conditions: usize,
    pub routes: usize,
}

/// Checks every route step against what the chosen router carries.
pub(super) fn validate(strategy: &CanaryStrategy) -> Result<(), Invalid> {
    let Some(carries) = strategy.traffic_routing.as_ref().map(carries) else {
        // The schema refuses this too; the planner must not wait on routes no router shows.
        return match strategy.steps.iter().position(|s| s.route_name().is_some()) {
            Some(index) => Err(Invalid::new(
                format!("spec.strategy.canary.steps[{index}]"),
                "setHeaderRoute and setMirrorRoute need spec.strategy.canary.trafficRouting",
            )),
            None => Ok(()),
        };
    };
    for (index, step) in strategy.steps.iter().enumerate() {
        let (field, matches) = match (&step.set_header_route, &step.set_mirror_route) {
            (Some(h), _) => ("setHeaderRoute", &h.matches),
            (_, Some(m)) => ("setMirrorRoute", &m.matches),
            _ => continue,
        };
        let at = format!("spec.strategy.canary.steps[{index}].{field}");
        if carries.routes == 0 {
            return Err(Invalid::new(at, format!("{} carries weights only", carries.router)));
        }
        if field == "setMirrorRoute" && !carries.mirror {
            return Err(Invalid::new(at, format!("{} cannot mirror requests", carries.router)));
        }
        if matches.len() > carries.conditions {
            return Err(Invalid::new(
                format!("{at}.match"),
                format!(
                    "{} routes on at most {} condition(s), not {}",
                    carries.router,
                    carries.conditions,
                    matches.len()
                ),
            ));
        }
        for (m, condition) in matches.iter().enumerate() {
            check_condition(condition, &carries).map_err(|e| Invalid::new(format!("{at}.match[{m}]"), e))?;
        }
        let in_force = active_routes(&strategy.steps, index).len();
        if in_force > carries.routes {
            return Err(Invalid::new(
                at,
                format!(
                    "{} routes in force at once; {} carries at most {}",
                    in_force, carries.router, carries.routes
                ),
            ));
        }
    }
    Ok(())
}

fn check_condition(condition: &RouteMatch, carries: &Carries) -> Result<(), String> {
    if condition.query_param_name.is_some() && !carries.query_params {
        return Err(format!("{} cannot match query parameters", carries.router));
    }
    if condition.cookie_name.is_some() && !carries.cookies {
        return Err(format!("{} cannot match cookies", carries.router));
    }
    if condition.cookie_name.is_some() && carries.router == NGINX && condition.cookie_value.is_some() {
        return Err("trafficRouting.nginx routes a cookie only on the value \"always\": leave cookieValue out".into());
    }
    for value in [&condition.header_value, &condition.query_param_value]
        .into_iter()
        .flatten()
    {
        check_value(value)?;
    }
    Ok(())
}

/// A regex must compile: Gateway API, Istio and ingress-nginx take RE2-like
/// patterns, which the `regex` crate reads the same way for what both accept.
fn check_value(value: &StringMatch) -> Result<(), String> {
    if let Some(pattern) = &value.regex {
        regex::Regex::new(pattern).map_err(|e| format!("regex {pattern:?} does not compile: {e}"))?;
    }
    Ok(())
}

const NGINX: &str = "trafficRouting.nginx";

/// What each router carries.
fn carries(routing: &crate::api::TrafficRouting) -> Carries {
    if routing.nginx.is_some() {
        // One canary Ingress: canary-by-header (or its pattern) or canary-by-cookie.
        return Carries {
            router: NGINX,
            mirror: false,
            query_params: false,
            cookies: true,
            conditions: 1,
            routes: 1,
        };
    }
    if routing.generic.is_some() {
        return Carries {
            router: "trafficRouting.generic",
            mirror: false,
            query_params: false,
            cookies: false,
            conditions: 0,
            routes: 0,
        };
    }
    if routing.istio.is_some() {
        return Carries {
            router: "trafficRouting.istio",
            mirror: true,
            query_params: true,
            cookies: true,
            conditions: usize::MAX,
            routes: usize::MAX,
        };
    }
    let grpc = routing.gateway_api.as_ref().is_some_and(|g| !g.grpc_routes.is_empty());
    Carries {
        router: if grpc {
            "trafficRouting.gatewayAPI with grpcRoutes"
        } else {
            "trafficRouting.gatewayAPI"
        },
        mirror: true,
        // GRPCRoute matches have headers only.
        query_params: !grpc,
        cookies: !grpc,
        conditions: usize::MAX,
        routes: usize::MAX,
    }
}
