//! Gateway API: the canary weight is the share of the canary Service's backendRef
//! in the HTTPRoute (or GRPCRoute) rules that route to both the stable and
//! canary Services. Header and mirror routes are rules serin adds in front of
//! those, named `serin-step<N>-<route>` after the step that set them; serin
//! drops any rule of that form that no step in force writes.
use futures::future::BoxFuture;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::Status;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::{ObjectKind, Router, RouterError, Services, Shown, TrafficRouter, Watched, added};
use crate::api::FIELD_MANAGER;
use crate::api::{CanaryStep, GatewayApiRouting, HttpRouteRef, Release, RouteMatch, StringMatch};

const GROUP: &str = "gateway.networking.k8s.io";
const VERSION: &str = "v1";

pub const HTTP_ROUTE: ObjectKind = ObjectKind {
    group: GROUP,
    version: VERSION,
    kind: "HTTPRoute",
    plural: "httproutes",
};

pub const GRPC_ROUTE: ObjectKind = ObjectKind {
    group: GROUP,
    version: VERSION,
    kind: "GRPCRoute",
    plural: "grpcroutes",
};

/// `trafficRouting.gatewayAPI`: the user's HTTPRoutes and GRPCRoutes, patched in place.
pub const ROUTER: Router = Router {
    watches: &[
        Watched {
            kind: HTTP_ROUTE,
            labelled: false,
        },
        Watched {
            kind: GRPC_ROUTE,
            labelled: false,
        },
    ],
    steers: |routing| {
        routing
            .gateway_api
            .iter()
            .flat_map(driven)
            .map(|(k, r)| (k, r.name.as_str()))
            .collect()
    },
    build: |client, release, services, routing| {
        let routing = routing.gateway_api.as_ref()?;
        Some(Box::new(GatewayApi::new(client, release, services, routing)))
    },
};

/// Every route the routing names, with its kind.
fn driven(routing: &GatewayApiRouting) -> impl Iterator<Item = (ObjectKind, &HttpRouteRef)> {
    let http = routing.http_routes.iter().map(|r| (HTTP_ROUTE, r));
    http.chain(routing.grpc_routes.iter().map(|r| (GRPC_ROUTE, r)))
}

/// The most rules Gateway API allows in one HTTPRoute or GRPCRoute.
const RULES_MAX: usize = 16;

/// The largest backendRef weight Gateway API accepts.
const WEIGHT_MAX: i64 = 1_000_000;

/// Drives the weights of the stable and canary backendRefs of HTTPRoutes and
/// GRPCRoutes, and the rules of header and mirror routes.
pub struct GatewayApi {
    client: Client,
    namespace: String,
    services: Services,
    routes: Vec<(ObjectKind, HttpRouteRef)>,
    steps: Vec<CanaryStep>,
}

/// What one route object shows: the canary weight and the routes' steps.
type InPlace = Option<(i32, Vec<usize>)>;

impl GatewayApi {
    pub fn new(client: &Client, release: &Release, services: Services, routing: &GatewayApiRouting) -> Self {
        let steps = release.spec.strategy.canary.as_ref().map(|c| c.steps.clone());
        Self {
            client: client.clone(),
            namespace: release.namespace().unwrap_or_default(),
            services,
            routes: driven(routing).map(|(k, r)| (k, r.clone())).collect(),
            steps: steps.unwrap_or_default(),
        }
    }

    fn api(&self, kind: &ObjectKind) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, &kind.api_resource())
    }

    /// The route as JSON, metadata included (names for messages, resourceVersion for patches).
    async fn get(&self, kind: &ObjectKind, name: &str) -> Result<Value, RouterError> {
        match self.api(kind).get(name).await {
            Ok(route) => Ok(serde_json::to_value(&route).map_err(kube::Error::SerdeError)?),
            Err(kube::Error::Api(status)) if super::not_found(&status) => Err(RouterError::Misconfigured(
                not_found_message(&status, kind, name, &self.namespace),
            )),
            Err(e) => Err(e.into()),
        }
    }

    fn route<'a>(&'a self, kind: &ObjectKind, route_ref: &'a HttpRouteRef) -> Route<'a> {
        Route {
            kind: *kind,
            rule: route_ref.rule.as_deref(),
            services: &self.services,
            steps: &self.steps,
        }
    }

    async fn read(&self) -> Result<(Vec<InPlace>, Acceptance), RouterError> {
        let mut shown = Vec::with_capacity(self.routes.len());
        let mut acceptance = Acceptance::default();
        for (kind, route_ref) in &self.routes {
            let object = self.get(kind, &route_ref.name).await?;
            let driver = self.route(kind, route_ref);
            acceptance.route_problems.extend(driver.route_problems(&object));
            let room = driver.room(&object);
            acceptance.route_capacity = Some(acceptance.route_capacity.map_or(room, |r: usize| r.min(room)));
            shown.push(
                self.route(kind, route_ref)
                    .in_place(&object)
                    .map_err(RouterError::Misconfigured)?,
            );
            let (reports, unaccepted) = acceptance_of(&object, kind.kind);
            acceptance.reports |= reports;
            acceptance.unaccepted = acceptance.unaccepted.or(unaccepted);
        }
        Ok((shown, acceptance))
    }

    /// Writes `canary` (None: keep each route's) and the routes of `steps`
    /// (None: keep those in place) into every route.
    async fn write(&self, canary: Option<i32>, steps: Option<&[usize]>) -> Result<(), RouterError> {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        for (kind, route_ref) in &self.routes {
            let object = self.get(kind, &route_ref.name).await?;
            let patch = self
                .route(kind, route_ref)
                .rules_patch(&object, canary, steps)
                .map_err(RouterError::Misconfigured)?;
            let Some(patch) = patch else { continue };
            let api = self.api(kind);
            // New rules of serin's: tried as a dry run first, so that a CRD
            // that prunes their names never stores rules serin cannot find again.
            let new_rules = added::steps_in(rules(&patch)) != added::steps_in(rules(&object));
            if new_rules {
                let dry_run = PatchParams {
                    dry_run: true,
                    ..params.clone()
                };
                let tried = api.patch(&route_ref.name, &dry_run, &Patch::Merge(&patch)).await?;
                let tried = serde_json::to_value(&tried).map_err(kube::Error::SerdeError)?;
                kept_what_serin_wrote(&patch, &tried, kind.kind).map_err(RouterError::Misconfigured)?;
            }
            api.patch(&route_ref.name, &params, &Patch::Merge(&patch)).await?;
        }
        Ok(())
    }
}

impl TrafficRouter for GatewayApi {
    fn shown(&self) -> BoxFuture<'_, Result<Shown, RouterError>> {
        Box::pin(async move {
            let (shown, acceptance) = self.read().await?;
            let weights: Vec<Option<i32>> = shown.iter().map(|s| s.as_ref().map(|(w, _)| *w)).collect();
            let routes: Vec<Option<Vec<usize>>> = shown.into_iter().map(|s| s.map(|(_, r)| r)).collect();
            Ok(Shown {
                canary_weight: agreed(&weights),
                routes: agreed(&routes),
                reports_acceptance: acceptance.reports,
                unaccepted: acceptance.unaccepted,
                route_problems: acceptance.route_problems,
                route_capacity: acceptance.route_capacity,
            })
        })
    }

    fn set_weight(&self, canary: i32) -> BoxFuture<'_, Result<(), RouterError>> {
        Box::pin(self.write(Some(canary), None))
    }

    fn set_routes<'a>(&'a self, steps: &'a [usize]) -> BoxFuture<'a, Result<(), RouterError>> {
        Box::pin(self.write(None, Some(steps)))
    }
}

/// What the gateways report on the routes, and what cannot be written onto them.
#[derive(Default)]
struct Acceptance {
    reports: bool,
    unaccepted: Option<String>,
    /// Route steps that cannot be written onto a route, and why.
    route_problems: Vec<(usize, String)>,
    /// The fewest header and mirror routes any route has room for.
    route_capacity: Option<usize>,
}

/// Gateway API before v1.4 (standard channel) has no `rules[].name`, and
/// before v1.3 no `RequestMirror` `percent`: the API server prunes them, and
/// serin could neither find its rules again nor read its mirror back. Said
/// once, on the write, rather than rewriting the route every round.
fn kept_what_serin_wrote(patch: &Value, written: &Value, kind: &str) -> Result<(), String> {
    let sent = patch
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let count = |rules: &[Value], f: &dyn Fn(&Value) -> bool| rules.iter().filter(|r| f(r)).count();
    let named = |r: &Value| added::step_of(r).is_some();
    let mirrored = |r: &Value| {
        r.get("filters")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|f| f.pointer("/requestMirror/percent").is_some()))
    };
    let kept = rules(written);
    if count(kept, &named) < count(sent, &named) || count(kept, &mirrored) < count(sent, &mirrored) {
        return Err(format!(
            "the {kind} CRD dropped the rule names or mirror percent serin wrote: header and mirror routes need \
             Gateway API v1.4 or later (standard channel)"
        ));
    }
    Ok(())
}

/// Refusals that mean a parent does not serve the route at all, whatever it
/// says: waiting on it would hold every scale-down for nothing.
const NOT_SERVED_BY: [&str; 3] = [
    "NotAllowedByListeners",
    "NoMatchingListenerHostname",
    "NoMatchingParent",
];

/// Whether any gateway reports on `route` (`status.parents` of a parent the
/// spec still names), and if one does not accept its current generation, why.
/// A parent accepts when its `Accepted` condition is True for this generation
/// or a later one.
fn acceptance_of(route: &Value, kind: &str) -> (bool, Option<String>) {
    let namespace = route
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let refs = route
        .pointer("/spec/parentRefs")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let named = |parent: &Value| {
        let key = |r: &Value| {
            let field = |f: &str| r.get(f).and_then(Value::as_str).unwrap_or_default().to_string();
            let ns = r
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or(namespace)
                .to_string();
            (field("name"), ns, field("sectionName"))
        };
        let (name, ns, section) = key(parent);
        refs.iter()
            .map(key)
            .any(|(n, s, sec)| n == name && s == ns && (sec.is_empty() || sec == section))
    };
    let parents: Vec<&Value> = route
        .pointer("/status/parents")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter(|p| p.get("parentRef").is_some_and(named))
        .collect();
    if parents.is_empty() {
        return (false, None);
    }
    let name = route_name(route);
    let generation = route
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    for parent in parents {
        let gateway = parent
            .pointer("/parentRef/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let controller = parent.get("controllerName").and_then(Value::as_str).unwrap_or_default();
        let accepted = parent
            .get("conditions")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().find(|c| c["type"] == "Accepted"));
        let Some(accepted) = accepted else {
            return (
                true,
                Some(format!(
                    "{kind} {name:?}: {controller} has not reported Accepted for parent {gateway:?}"
                )),
            );
        };
        let observed = accepted.get("observedGeneration").and_then(Value::as_i64).unwrap_or(0);
        if observed < generation {
            return (
                true,
                Some(format!(
                    "{kind} {name:?} is at generation {generation}, but {controller} has accepted only generation {observed} for parent {gateway:?}"
                )),
            );
        }
        let reason = accepted.get("reason").and_then(Value::as_str).unwrap_or_default();
        if accepted["status"] != "True" && !NOT_SERVED_BY.contains(&reason) {
            let message = accepted.get("message").and_then(Value::as_str).unwrap_or_default();
            return (
                true,
                Some(format!(
                    "{controller} does not accept {kind} {name:?} for parent {gateway:?}: {reason}: {message}"
                )),
            );
        }
    }
    (true, None)
}

/// One route as serin drives it.
struct Route<'a> {
    kind: ObjectKind,
    rule: Option<&'a str>,
    services: &'a Services,
    steps: &'a [CanaryStep],
}

impl Route<'_> {
    /// The route with only the user's rules: the ones serin did not add.
    fn user_view(&self, route: &Value) -> Value {
        let mut view = route.clone();
        if let Some(rules) = view.pointer_mut("/spec/rules").and_then(Value::as_array_mut) {
            rules.retain(|r| added::step_of(r).is_none());
        }
        view
    }

    /// The weight and routes' steps the route shows, or None when writing them
    /// would change it (rules disagree, a weight off scale, a route serin added
    /// edited or naming no step that sets one).
    fn in_place(&self, route: &Value) -> Result<InPlace, String> {
        let view = self.user_view(route);
        let weight = canary_weight_in(&view, self.rule, self.services, self.kind.kind)?;
        let steps = added::steps_in(rules(route));
        let want = self.rendered(route, weight, &steps)?;
        Ok((route.pointer("/spec/rules") == Some(&want)).then_some((weight, steps)))
    }

    /// How many header and mirror routes fit: each takes one rule per driven
    /// rule, beside the user's rules, within Gateway API's 16.
    fn room(&self, route: &Value) -> usize {
        let view = self.user_view(route);
        let driven = driven_rules(&view, self.rule, self.services, self.kind.kind).map_or(1, |d| d.len().max(1));
        RULES_MAX.saturating_sub(rules(&view).len()) / driven
    }

    /// The route steps whose rules cannot be written onto this route (a
    /// condition the user's match already tests), and why: found when the
    /// route is read, so the Release says so when the canary reaches the step.
    fn route_problems(&self, route: &Value) -> Vec<(usize, String)> {
        let weight = canary_weight_in(&self.user_view(route), self.rule, self.services, self.kind.kind).unwrap_or(0);
        let steps = self.steps.iter().enumerate().filter(|(_, s)| s.sets_route());
        steps
            .filter_map(|(index, _)| self.rendered(route, weight, &[index]).err().map(|e| (index, e)))
            .collect()
    }

    /// The merge patch writing `canary` and `steps` (None: as shown now), or
    /// None when the route already has them. It carries the resourceVersion
    /// read so a concurrent edit fails with a Conflict instead of being
    /// overwritten: `spec.rules` is an atomic list, so the whole list is replaced.
    fn rules_patch(
        &self,
        route: &Value,
        canary: Option<i32>,
        steps: Option<&[usize]>,
    ) -> Result<Option<Value>, String> {
        let view = self.user_view(route);
        let canary = match canary {
            Some(c) => c,
            None => canary_weight_in(&view, self.rule, self.services, self.kind.kind)?,
        };
        let shown = added::steps_in(rules(route));
        let rules = self.rendered(route, canary, steps.unwrap_or(&shown))?;
        if route.pointer("/spec/rules") == Some(&rules) {
            return Ok(None);
        }
        Ok(Some(json!({
            "metadata": { "resourceVersion": route.pointer("/metadata/resourceVersion") },
            "spec": { "rules": rules },
        })))
    }

    /// `spec.rules` as serin writes them: the rules of `steps`' routes first,
    /// one per driven rule, then the user's rules with `canary` percent on the
    /// canary backendRef of every driven rule.
    fn rendered(&self, route: &Value, canary: i32, steps: &[usize]) -> Result<Value, String> {
        let view = self.user_view(route);
        let weighted = with_canary_weight(&view, self.rule, self.services, canary, self.kind.kind)?;
        let driven = driven_rules(&view, self.rule, self.services, self.kind.kind)?;
        let mut out = Vec::new();
        for &index in steps {
            let Some(step) = self.steps.get(index).filter(|s| s.sets_route()) else {
                continue; // Not a route any step writes: dropped.
            };
            for (k, d) in driven.iter().enumerate() {
                out.push(self.route_rule(&weighted[d.rule], d, index, k, step)?);
            }
        }
        out.extend(weighted.as_array().cloned().unwrap_or_default());
        Ok(Value::Array(out))
    }

    /// The rule of step `index`'s route beside driven rule `d` (the `k`th):
    /// the driven rule with the route's conditions added to each of its
    /// matches, and all of it to the canary (a header route) or mirrored to
    /// it (a mirror route).
    fn route_rule(&self, rule: &Value, d: &Driven, index: usize, k: usize, step: &CanaryStep) -> Result<Value, String> {
        let mut out = rule.clone();
        let (name, conditions) = added::route_of(step, index)?;
        out["name"] = added::name(index, name, k).into();
        if !conditions.is_empty() {
            out["matches"] = with_conditions(rule.get("matches"), conditions, self.kind.kind)?;
        }
        let canary_ref = rule
            .pointer(&format!("/backendRefs/{}", d.canary))
            .cloned()
            .unwrap_or_default();
        if step.set_header_route.is_some() {
            let mut only = canary_ref;
            only["weight"] = 1.into();
            out["backendRefs"] = json!([only]);
        } else if let Some(mirror) = &step.set_mirror_route {
            let mut target = serde_json::Map::new();
            for key in ["group", "kind", "name", "namespace", "port"] {
                if let Some(v) = canary_ref.get(key) {
                    target.insert(key.into(), v.clone());
                }
            }
            let filter = json!({ "type": "RequestMirror", "requestMirror": { "backendRef": target, "percent": mirror.percent() } });
            match out.get_mut("filters").and_then(Value::as_array_mut) {
                Some(filters) => filters.push(filter),
                None => out["filters"] = json!([filter]),
            }
        }
        Ok(out)
    }
}

/// Each of `matches` (or one match-all) with every condition added. A
/// condition on a header or query parameter the match already tests cannot
/// be added without changing the user's match: an error.
fn with_conditions(matches: Option<&Value>, conditions: &[RouteMatch], kind: &str) -> Result<Value, String> {
    let mut base: Vec<Value> = matches.and_then(Value::as_array).cloned().unwrap_or_default();
    if base.is_empty() {
        base.push(json!({}));
    }
    for m in &mut base {
        for condition in conditions {
            let (list, name, (kind_of, value)) = if let Some(header) = &condition.header_name {
                ("headers", header.clone(), typed(condition.header_value.as_ref()))
            } else if let Some(cookie) = &condition.cookie_name {
                let pattern = added::cookie_pattern(condition, cookie);
                ("headers", "Cookie".to_string(), ("RegularExpression", pattern))
            } else if let Some(param) = &condition.query_param_name {
                if kind == "GRPCRoute" {
                    return Err(format!("a {kind} cannot match query parameters"));
                }
                (
                    "queryParams",
                    param.clone(),
                    typed(condition.query_param_value.as_ref()),
                )
            } else {
                continue;
            };
            let entries = m
                .as_object_mut()
                .ok_or_else(|| format!("a {kind} match is not an object"))?
                .entry(list)
                .or_insert_with(|| json!([]));
            let entries = entries
                .as_array_mut()
                .ok_or_else(|| format!("{kind} {list} is not a list"))?;
            let same = |e: &Value| {
                let n = e.get("name").and_then(Value::as_str).unwrap_or_default();
                if list == "headers" {
                    n.eq_ignore_ascii_case(&name)
                } else {
                    n == name
                }
            };
            if entries.iter().any(same) {
                return Err(format!(
                    "a {kind} match already tests {} {name:?}; a route cannot add a second condition on it",
                    if list == "headers" { "header" } else { "query parameter" }
                ));
            }
            entries.push(json!({ "name": name, "type": kind_of, "value": value }));
        }
    }
    Ok(Value::Array(base))
}

/// A value match as Gateway API's (type, value): prefixes become patterns.
fn typed(value: Option<&StringMatch>) -> (&'static str, String) {
    match value {
        Some(StringMatch { exact: Some(v), .. }) => ("Exact", v.clone()),
        Some(other) => ("RegularExpression", other.as_regex()),
        None => ("Exact", String::new()),
    }
}

/// A 404 names the object when the route is missing; without that name the
/// resource itself is unknown, i.e. the CRD is not installed.
fn not_found_message(status: &Status, kind: &ObjectKind, name: &str, namespace: &str) -> String {
    let kind = kind.kind;
    if status.details.as_ref().is_some_and(|d| d.name == name) {
        format!("{kind} {name:?} not found in namespace {namespace:?}")
    } else {
        format!(
            "cannot read {kind} {name:?} in namespace {namespace:?}: the Gateway API CRDs \
             ({GROUP}/{VERSION} {kind}) are not installed"
        )
    }
}

/// One weight when every route agrees; otherwise `None`, so the writer re-syncs them.
fn agreed<T: Clone + PartialEq>(shown: &[Option<T>]) -> Option<T> {
    let first = shown.first()?;
    if shown.iter().all(|w| w == first) {
        first.clone()
    } else {
        None
    }
}

/// Where the stable and canary backendRefs of one driven rule are.
struct Driven {
    rule: usize,
    stable: usize,
    canary: usize,
}

fn route_name(route: &Value) -> &str {
    route
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn rules(route: &Value) -> &[Value] {
    route
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// How a rule is named in messages: by its name if it has one, else its index.
fn rule_label(rule: &Value, index: usize) -> String {
    match rule.get("name").and_then(Value::as_str) {
        Some(name) => format!("rule {name:?}"),
        None => format!("rule {index}"),
    }
}

/// Whether a backendRef points at the Service `name` in the route's namespace.
fn is_service_ref(backend: &Value, name: &str, route_namespace: Option<&str>) -> bool {
    let field = |key| backend.get(key).and_then(Value::as_str);
    field("name") == Some(name)
        && field("kind").is_none_or(|k| k == "Service")
        && field("group").is_none_or(str::is_empty)
        && field("namespace").is_none_or(|ns| Some(ns) == route_namespace)
}

/// Index of the only backendRef to `service`, if any.
fn service_ref(
    refs: &[Value],
    service: &str,
    route_namespace: Option<&str>,
    describe: impl Fn() -> String,
) -> Result<Option<usize>, String> {
    let mut found = refs
        .iter()
        .enumerate()
        .filter(|(_, r)| is_service_ref(r, service, route_namespace))
        .map(|(i, _)| i);
    let first = found.next();
    // Two refs to one Service leave no single weight to read or set.
    if found.next().is_some() {
        return Err(format!(
            "{} has more than one backendRef to Service {service:?}",
            describe()
        ));
    }
    Ok(first)
}

/// The rules to drive: the one named `rule`, or every rule routing to either Service.
fn driven_rules(route: &Value, rule: Option<&str>, services: &Services, kind: &str) -> Result<Vec<Driven>, String> {
    let name = route_name(route);
    let namespace = route.pointer("/metadata/namespace").and_then(Value::as_str);
    let mut driven = Vec::new();
    for (index, r) in rules(route).iter().enumerate() {
        if rule.is_some_and(|wanted| r.get("name").and_then(Value::as_str) != Some(wanted)) {
            continue;
        }
        let describe = || format!("{kind} {name:?} {}", rule_label(r, index));
        let refs = r
            .get("backendRefs")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let stable = service_ref(refs, &services.stable, namespace, describe)?;
        let canary = service_ref(refs, &services.canary, namespace, describe)?;
        match (stable, canary) {
            (Some(stable), Some(canary)) => driven.push(Driven {
                rule: index,
                stable,
                canary,
            }),
            (None, None) if rule.is_none() => {}
            (None, _) => {
                return Err(format!(
                    "{} has no backendRef to stable Service {:?}",
                    describe(),
                    services.stable
                ));
            }
            (Some(_), None) => {
                return Err(format!(
                    "{} has no backendRef to canary Service {:?}; add it with weight 0",
                    describe(),
                    services.canary
                ));
            }
        }
    }
    if driven.is_empty() {
        return Err(match rule {
            Some(wanted) => format!("{kind} {name:?} has no rule named {wanted:?}"),
            None => format!(
                "{kind} {name:?} has no rule with backendRefs to stable Service {:?} and canary Service {:?}",
                services.stable, services.canary
            ),
        });
    }
    Ok(driven)
}

/// A backendRef's weight; absent means 1, as in Gateway API.
fn weight(route: &Value, driven: &Driven, backend: usize, kind: &str) -> Result<i64, String> {
    let rule = &rules(route)[driven.rule];
    match rule.pointer(&format!("/backendRefs/{backend}/weight")) {
        None | Some(Value::Null) => Ok(1),
        Some(w) => w.as_i64().filter(|w| (0..=WEIGHT_MAX).contains(w)).ok_or_else(|| {
            format!(
                "{kind} {:?} {} has an invalid backendRef weight {w}",
                route_name(route),
                rule_label(rule, driven.rule)
            )
        }),
    }
}

/// Percent of traffic to the canary, rounded half up.
fn percent(stable: i64, canary: i64) -> i32 {
    let total = stable + canary;
    if total == 0 {
        return 0;
    }
    // Both are at most WEIGHT_MAX, so neither this nor the cast can overflow.
    ((200 * canary + total) / (2 * total)) as i32
}

/// The canary percent of the route's driven rules; the first rule's if they disagree.
fn canary_weight_in(route: &Value, rule: Option<&str>, services: &Services, kind: &str) -> Result<i32, String> {
    let mut percents = Vec::new();
    for driven in driven_rules(route, rule, services, kind)? {
        percents.push(percent(
            weight(route, &driven, driven.stable, kind)?,
            weight(route, &driven, driven.canary, kind)?,
        ));
    }
    // driven_rules never returns an empty list.
    Ok(percents.first().copied().unwrap_or_default())
}

/// `spec.rules` with `canary` percent on the canary backendRef and the rest on
/// the stable one, in every driven rule; other rules are left as they are.
fn with_canary_weight(
    route: &Value,
    rule: Option<&str>,
    services: &Services,
    canary: i32,
    kind: &str,
) -> Result<Value, String> {
    let canary = canary.clamp(0, 100);
    let mut updated = rules(route).to_vec();
    for driven in driven_rules(route, rule, services, kind)? {
        for (backend, weight) in [(driven.stable, 100 - canary), (driven.canary, canary)] {
            if let Some(backend) = updated[driven.rule]
                .pointer_mut(&format!("/backendRefs/{backend}"))
                .and_then(Value::as_object_mut)
            {
                backend.insert("weight".into(), weight.into());
            }
        }
    }
    Ok(Value::Array(updated))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "HTTPRoute";

    fn driver<'a>(services: &'a Services, steps: &'a [CanaryStep]) -> Route<'a> {
        Route {
            kind: HTTP_ROUTE,
            rule: None,
            services,
            steps,
        }
    }

    fn services() -> Services {
        Services {
            stable: "web".into(),
            canary: "web-canary".into(),
        }
    }

    fn route(rules: Value) -> Value {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": { "name": "shop", "namespace": "prod", "resourceVersion": "7" },
            "spec": { "parentRefs": [{ "name": "gw" }], "rules": rules },
        })
    }

    /// A rule with backendRefs given as (name, weight); weight None leaves it out.
    fn rule(backends: &[(&str, Option<i64>)]) -> Value {
        let refs: Vec<Value> = backends
            .iter()
            .map(|(name, weight)| match weight {
                Some(w) => json!({ "name": name, "port": 80, "weight": w }),
                None => json!({ "name": name, "port": 80 }),
            })
            .collect();
        json!({ "backendRefs": refs })
    }

    fn named(name: &str, mut rule: Value) -> Value {
        rule["name"] = name.into();
        rule
    }

    #[test]
    fn canary_weight_in_reads_the_canary_share() {
        let both = |s, c| route(json!([rule(&[("web", s), ("web-canary", c)])]));
        let cases: Vec<(&str, Value, Option<&str>, i32)> = vec![
            ("explicit weights", both(Some(90), Some(10)), None, 10),
            ("absent weights default to 1", both(None, None), None, 50),
            ("absent stable is 1 against 0", both(None, Some(0)), None, 0),
            ("both zero", both(Some(0), Some(0)), None, 0),
            ("all canary", both(Some(0), Some(5)), None, 100),
            ("rounds down below half", both(Some(2), Some(1)), None, 33),
            ("rounds up above half", both(Some(1), Some(2)), None, 67),
            ("rounds half up", both(Some(7), Some(1)), None, 13),
            ("weights beyond 100", both(Some(750), Some(250)), None, 25),
            (
                "explicit core Service kind",
                route(json!([{ "backendRefs": [
                    { "name": "web", "kind": "Service", "group": "", "weight": 80 },
                    { "name": "web-canary", "kind": "Service", "weight": 20 },
                ] }])),
                None,
                20,
            ),
            (
                "same-namespace ref counts",
                route(json!([{ "backendRefs": [
                    { "name": "web", "namespace": "prod", "weight": 60 },
                    { "name": "web-canary", "weight": 40 },
                ] }])),
                None,
                40,
            ),
            (
                "rules not routing to either Service are ignored",
                route(json!([
                    rule(&[("api", Some(1))]),
                    rule(&[("web", Some(70)), ("web-canary", Some(30))]),
                ])),
                None,
                30,
            ),
            (
                "the named rule only",
                route(json!([
                    named("a", rule(&[("web", Some(90)), ("web-canary", Some(10))])),
                    named("b", rule(&[("web", Some(70)), ("web-canary", Some(30))])),
                ])),
                Some("b"),
                30,
            ),
            (
                "disagreeing rules report the first",
                route(json!([
                    rule(&[("web", Some(90)), ("web-canary", Some(10))]),
                    rule(&[("web", Some(50)), ("web-canary", Some(50))]),
                ])),
                None,
                10,
            ),
        ];
        for (case, route, rule, want) in cases {
            assert_eq!(canary_weight_in(&route, rule, &services(), H), Ok(want), "{case}");
        }
    }

    #[test]
    fn canary_weight_in_rejects_routes_it_cannot_drive() {
        let cases: Vec<(&str, Value, Option<&str>, &str)> = vec![
            (
                "canary backendRef missing",
                route(json!([rule(&[("web", Some(100))])])),
                None,
                r#"HTTPRoute "shop" rule 0 has no backendRef to canary Service "web-canary"; add it with weight 0"#,
            ),
            (
                "stable backendRef missing",
                route(json!([rule(&[("api", Some(1))]), rule(&[("web-canary", Some(100))])])),
                None,
                r#"HTTPRoute "shop" rule 1 has no backendRef to stable Service "web""#,
            ),
            (
                "named rule missing the canary",
                route(json!([named("main", rule(&[("web", None)]))])),
                Some("main"),
                r#"HTTPRoute "shop" rule "main" has no backendRef to canary Service "web-canary"; add it with weight 0"#,
            ),
            (
                "named rule routing to neither",
                route(json!([named("main", rule(&[("api", None)]))])),
                Some("main"),
                r#"HTTPRoute "shop" rule "main" has no backendRef to stable Service "web""#,
            ),
            (
                "no rule with that name",
                route(json!([named("main", rule(&[("web", None), ("web-canary", None)]))])),
                Some("other"),
                r#"HTTPRoute "shop" has no rule named "other""#,
            ),
            (
                "no rule routes to either Service",
                route(json!([rule(&[("api", None)])])),
                None,
                r#"HTTPRoute "shop" has no rule with backendRefs to stable Service "web" and canary Service "web-canary""#,
            ),
            (
                "no rules at all",
                route(json!([])),
                None,
                r#"HTTPRoute "shop" has no rule with backendRefs to stable Service "web" and canary Service "web-canary""#,
            ),
            (
                "a non-Service backend with the canary's name is not the canary",
                route(json!([{ "backendRefs": [
                    { "name": "web" },
                    { "name": "web-canary", "group": "example.com", "kind": "Backend" },
                ] }])),
                None,
                r#"HTTPRoute "shop" rule 0 has no backendRef to canary Service "web-canary"; add it with weight 0"#,
            ),
            (
                "a Service in another namespace is not the canary",
                route(json!([{ "backendRefs": [
                    { "name": "web" },
                    { "name": "web-canary", "namespace": "staging" },
                ] }])),
                None,
                r#"HTTPRoute "shop" rule 0 has no backendRef to canary Service "web-canary"; add it with weight 0"#,
            ),
            (
                "two refs to the stable Service",
                route(json!([rule(&[
                    ("web", Some(1)),
                    ("web", Some(1)),
                    ("web-canary", Some(0))
                ])])),
                None,
                r#"HTTPRoute "shop" rule 0 has more than one backendRef to Service "web""#,
            ),
            (
                "negative weight",
                route(json!([rule(&[("web", Some(-1)), ("web-canary", Some(0))])])),
                None,
                r#"HTTPRoute "shop" rule 0 has an invalid backendRef weight -1"#,
            ),
        ];
        for (case, route, rule, want) in cases {
            assert_eq!(
                canary_weight_in(&route, rule, &services(), H),
                Err(want.to_string()),
                "{case}"
            );
        }
    }

    #[test]
    fn with_canary_weight_sets_both_backends_of_every_driven_rule() {
        let other = rule(&[("api", Some(3))]);
        let route = route(json!([
            rule(&[("web", None), ("web-canary", None)]),
            other.clone(),
            rule(&[("web-canary", Some(0)), ("web", Some(100)), ("mirror", Some(5))]),
        ]));
        let rules = with_canary_weight(&route, None, &services(), 30, H).unwrap();
        assert_eq!(
            rules,
            json!([
                rule(&[("web", Some(70)), ("web-canary", Some(30))]),
                other,
                rule(&[("web-canary", Some(30)), ("web", Some(70)), ("mirror", Some(5))]),
            ])
        );
        let rewritten = {
            let mut r = route.clone();
            r["spec"]["rules"] = rules;
            r
        };
        assert_eq!(canary_weight_in(&rewritten, None, &services(), H), Ok(30), "reads back");
    }

    #[test]
    fn with_canary_weight_touches_only_the_named_rule() {
        let a = named("a", rule(&[("web", Some(100)), ("web-canary", Some(0))]));
        let route = route(json!([
            a.clone(),
            named("b", rule(&[("web", Some(100)), ("web-canary", Some(0))]))
        ]));
        let rules = with_canary_weight(&route, Some("b"), &services(), 100, H).unwrap();
        assert_eq!(
            rules,
            json!([a, named("b", rule(&[("web", Some(0)), ("web-canary", Some(100))]))])
        );
    }

    #[test]
    fn with_canary_weight_clamps_and_propagates_errors() {
        let route1 = route(json!([rule(&[("web", None), ("web-canary", None)])]));
        assert_eq!(
            with_canary_weight(&route1, None, &services(), 150, H).unwrap(),
            json!([rule(&[("web", Some(0)), ("web-canary", Some(100))])])
        );
        let broken = route(json!([rule(&[("web", None)])]));
        assert!(with_canary_weight(&broken, None, &services(), 10, H).is_err());
    }

    #[test]
    fn route_weight_is_none_until_the_route_is_written() {
        let cases: Vec<(&str, Value, Option<i32>)> = vec![
            (
                "as serin writes it",
                route(json!([rule(&[("web", Some(80)), ("web-canary", Some(20))])])),
                Some(20),
            ),
            (
                "rules disagree",
                route(json!([
                    rule(&[("web", Some(80)), ("web-canary", Some(20))]),
                    rule(&[("web", Some(100)), ("web-canary", Some(0))]),
                ])),
                None,
            ),
            (
                "same share, other scale",
                route(json!([rule(&[("web", Some(4)), ("web-canary", Some(1))])])),
                None,
            ),
            (
                "implicit weights",
                route(json!([rule(&[("web", None), ("web-canary", Some(0))])])),
                None,
            ),
        ];
        for (case, route, want) in cases {
            let shown = driver(&services(), &[]).in_place(&route).unwrap().map(|(w, _)| w);
            assert_eq!(shown, want, "{case}");
        }
    }

    #[test]
    fn rules_patch_replaces_the_rules_under_the_read_resource_version() {
        let route = route(json!([rule(&[("web", Some(100)), ("web-canary", Some(0))])]));
        let services = services();
        let driver = driver(&services, &[]);
        assert_eq!(driver.rules_patch(&route, Some(0), None), Ok(None), "unchanged");
        assert_eq!(
            driver.rules_patch(&route, Some(25), None),
            Ok(Some(json!({
                "metadata": { "resourceVersion": "7" },
                "spec": { "rules": [rule(&[("web", Some(75)), ("web-canary", Some(25))])] },
            })))
        );
    }

    #[test]
    fn agreed_needs_every_route_at_one_weight() {
        let cases: Vec<(&[Option<i32>], Option<i32>)> = vec![
            (&[Some(10)], Some(10)),
            (&[Some(10), Some(10)], Some(10)),
            (&[Some(10), Some(20)], None),
            (&[Some(10), None], None),
            (&[None], None),
            (&[], None),
        ];
        for (weights, want) in cases {
            assert_eq!(agreed(weights), want, "{weights:?}");
        }
    }

    #[test]
    fn a_404_without_the_route_name_means_the_crd_is_missing() {
        let status = |body: Value| -> Status { serde_json::from_value(body).unwrap() };
        let missing_route = status(json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound",
            "message": "httproutes.gateway.networking.k8s.io \"shop\" not found",
            "details": { "name": "shop", "group": "gateway.networking.k8s.io", "kind": "httproutes" },
        }));
        assert_eq!(
            not_found_message(&missing_route, &HTTP_ROUTE, "shop", "prod"),
            r#"HTTPRoute "shop" not found in namespace "prod""#
        );
        let unknown_resource = status(json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound",
            "message": "the server could not find the requested resource", "details": {},
        }));
        // A plain-text 404, which kube turns into a Status without details.
        let plain_404 = Status::failure("404 page not found", "Failed to parse error data").with_code(404);
        for status in [unknown_resource, plain_404] {
            let message = not_found_message(&status, &HTTP_ROUTE, "shop", "prod");
            assert!(message.contains("Gateway API CRDs"), "{message}");
            assert!(message.contains("not installed"), "{message}");
        }
    }

    fn route_steps() -> Vec<CanaryStep> {
        serde_json::from_value(json!([
            { "setWeight": 10 },
            { "setHeaderRoute": { "name": "testers", "match": [
                { "headerName": "X-Canary", "headerValue": { "prefix": "yes." } },
                { "cookieName": "beta" },
                { "queryParamName": "v", "queryParamValue": { "exact": "2" } },
            ] } },
            { "setMirrorRoute": { "name": "shadow", "percentage": 20 } },
        ]))
        .unwrap()
    }

    fn path_route() -> Value {
        route(json!([{
            "matches": [{ "path": { "type": "PathPrefix", "value": "/shop" } }],
            "backendRefs": [
                { "name": "web", "port": 80, "weight": 90 },
                { "name": "web-canary", "port": 80, "weight": 10 },
            ],
        }]))
    }

    #[test]
    fn header_and_mirror_routes_are_rules_in_front_of_the_driven_one() {
        let (services, steps) = (services(), route_steps());
        let driver = driver(&services, &steps);
        let patch = driver
            .rules_patch(&path_route(), Some(30), Some(&[1, 2]))
            .unwrap()
            .unwrap();
        let weighted = json!([
            { "name": "web", "port": 80, "weight": 70 },
            { "name": "web-canary", "port": 80, "weight": 30 },
        ]);
        assert_eq!(
            patch["spec"]["rules"],
            json!([
                {
                    "name": "serin-step2-testers",
                    "matches": [{
                        "path": { "type": "PathPrefix", "value": "/shop" },
                        "headers": [
                            { "name": "X-Canary", "type": "RegularExpression", "value": r"^yes\..*" },
                            { "name": "Cookie", "type": "RegularExpression", "value": r"(^|.*;\s*)beta=always(;.*|$)" },
                        ],
                        "queryParams": [{ "name": "v", "type": "Exact", "value": "2" }],
                    }],
                    "backendRefs": [{ "name": "web-canary", "port": 80, "weight": 1 }],
                },
                {
                    "name": "serin-step3-shadow",
                    "matches": [{ "path": { "type": "PathPrefix", "value": "/shop" } }],
                    "backendRefs": weighted,
                    "filters": [{ "type": "RequestMirror", "requestMirror": {
                        "backendRef": { "name": "web-canary", "port": 80 }, "percent": 20,
                    } }],
                },
                { "matches": [{ "path": { "type": "PathPrefix", "value": "/shop" } }], "backendRefs": weighted },
            ])
        );
        // What was written reads back; a weight change keeps the routes.
        let mut written = path_route();
        written["spec"]["rules"] = patch["spec"]["rules"].clone();
        assert_eq!(driver.in_place(&written), Ok(Some((30, vec![1, 2]))));
        let reweighted = driver.rules_patch(&written, Some(50), None).unwrap().unwrap();
        written["spec"]["rules"] = reweighted["spec"]["rules"].clone();
        assert_eq!(driver.in_place(&written), Ok(Some((50, vec![1, 2]))));
        assert_eq!(
            written["spec"]["rules"][1]["backendRefs"][1]["weight"], 50,
            "the mirror rule follows the weight"
        );
        // Removing the routes leaves the user's rule alone.
        let removed = driver.rules_patch(&written, None, Some(&[])).unwrap().unwrap();
        assert_eq!(removed["spec"]["rules"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn an_edited_or_unknown_serin_rule_reads_as_drift() {
        let (services, steps) = (services(), route_steps());
        let driver = driver(&services, &steps);
        let patch = driver
            .rules_patch(&path_route(), Some(10), Some(&[1]))
            .unwrap()
            .unwrap();
        let mut written = path_route();
        written["spec"]["rules"] = patch["spec"]["rules"].clone();
        let mut edited = written.clone();
        edited["spec"]["rules"][0]["backendRefs"][0]["name"] = "web".into();
        assert_eq!(driver.in_place(&edited), Ok(None), "a header route sent to stable");
        let mut unknown = written.clone();
        unknown["spec"]["rules"][0]["name"] = "serin-step1-testers".into();
        assert_eq!(driver.in_place(&unknown), Ok(None), "step 1 sets a weight, not a route");
        // The user's own rule named like serin's but not of its form is theirs.
        let mut users = path_route();
        users["spec"]["rules"][0]["name"] = "serin-web".into();
        assert_eq!(driver.in_place(&users), Ok(Some((10, vec![]))));
    }

    #[test]
    fn a_condition_the_users_match_already_tests_is_refused() {
        let steps: Vec<CanaryStep> = serde_json::from_value(json!([
            { "setHeaderRoute": { "name": "t", "match": [{ "headerName": "x-env", "headerValue": { "exact": "a" } }] } },
        ]))
        .unwrap();
        let services = services();
        let driver = driver(&services, &steps);
        let route = route(json!([{
            "matches": [{ "headers": [{ "name": "X-Env", "value": "prod" }] }],
            "backendRefs": [{ "name": "web", "weight": 100 }, { "name": "web-canary", "weight": 0 }],
        }]));
        let err = driver.rules_patch(&route, None, Some(&[0])).unwrap_err();
        assert_eq!(
            err,
            r#"a HTTPRoute match already tests header "x-env"; a route cannot add a second condition on it"#
        );
        let grpc = Route {
            kind: GRPC_ROUTE,
            ..driver
        };
        let query: Vec<RouteMatch> =
            serde_json::from_value(json!([{ "queryParamName": "v", "queryParamValue": { "exact": "2" } }])).unwrap();
        assert_eq!(
            with_conditions(None, &query, grpc.kind.kind),
            Err("a GRPCRoute cannot match query parameters".into())
        );
    }

    #[test]
    fn a_route_is_accepted_when_every_reporting_parent_accepts_its_generation() {
        let with = |parents: Value| {
            let mut r = path_route();
            r["metadata"]["generation"] = 4.into();
            r["status"] = json!({ "parents": parents });
            r
        };
        let parent = |observed: i64, status: &str| {
            json!({ "parentRef": { "name": "gw" }, "controllerName": "example.com/gw", "conditions": [
                { "type": "Accepted", "status": status, "observedGeneration": observed, "reason": "NotAllowed", "message": "no listener" },
            ] })
        };
        type Case<'a> = (&'a str, Value, (bool, Option<&'a str>));
        let cases: Vec<Case> = vec![
            ("no status", path_route(), (false, None)),
            ("no parents", with(json!([])), (false, None)),
            ("accepted now", with(json!([parent(4, "True")])), (true, None)),
            ("accepted later", with(json!([parent(5, "True")])), (true, None)),
            (
                "an older generation",
                with(json!([parent(4, "True"), parent(3, "True")])),
                (
                    true,
                    Some(
                        r#"HTTPRoute "shop" is at generation 4, but example.com/gw has accepted only generation 3 for parent "gw""#,
                    ),
                ),
            ),
            (
                "refused",
                with(json!([parent(4, "False")])),
                (
                    true,
                    Some(r#"example.com/gw does not accept HTTPRoute "shop" for parent "gw": NotAllowed: no listener"#),
                ),
            ),
            (
                "a parent the spec no longer names",
                with(
                    json!([parent(4, "True"), { "parentRef": { "name": "old-gw" }, "controllerName": "example.com/gw", "conditions": [] }]),
                ),
                (true, None),
            ),
            (
                "a listener that does not take the route",
                with(
                    json!([{ "parentRef": { "name": "gw" }, "controllerName": "example.com/gw", "conditions": [
                    { "type": "Accepted", "status": "False", "observedGeneration": 4, "reason": "NotAllowedByListeners", "message": "" },
                ] }]),
                ),
                (true, None),
            ),
            (
                "no Accepted condition",
                with(json!([{ "parentRef": { "name": "gw" }, "controllerName": "example.com/gw", "conditions": [] }])),
                (
                    true,
                    Some(r#"HTTPRoute "shop": example.com/gw has not reported Accepted for parent "gw""#),
                ),
            ),
        ];
        for (case, route, (reports, why)) in cases {
            assert_eq!(
                acceptance_of(&route, "HTTPRoute"),
                (reports, why.map(String::from)),
                "{case}"
            );
        }
    }

    #[test]
    fn two_driven_rules_get_one_route_rule_each_across_weight_changes() {
        let (services, steps) = (services(), route_steps());
        let driver = driver(&services, &steps);
        let two = route(json!([
            { "matches": [{ "path": { "type": "PathPrefix", "value": "/a" } }], "backendRefs": [
                { "name": "web", "weight": 100 }, { "name": "web-canary", "weight": 0 } ] },
            { "matches": [{ "path": { "type": "PathPrefix", "value": "/b" } }], "backendRefs": [
                { "name": "web", "weight": 100 }, { "name": "web-canary", "weight": 0 } ] },
        ]));
        let mut written = two.clone();
        for (canary, steps) in [(Some(10), Some(&[1usize, 2][..])), (Some(40), None), (Some(60), None)] {
            let patch = driver.rules_patch(&written, canary, steps).unwrap().unwrap();
            written["spec"]["rules"] = patch["spec"]["rules"].clone();
        }
        let names: Vec<&str> = rules(&written)
            .iter()
            .map(|r| r["name"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            names,
            [
                "serin-step2-testers",
                "serin-step2-testers-1",
                "serin-step3-shadow",
                "serin-step3-shadow-1",
                "",
                ""
            ]
        );
        assert_eq!(driver.in_place(&written), Ok(Some((60, vec![1, 2]))));
    }

    #[test]
    fn an_older_crd_that_prunes_rule_names_is_said_once() {
        let (services, steps) = (services(), route_steps());
        let patch = driver(&services, &steps)
            .rules_patch(&path_route(), Some(10), Some(&[1, 2]))
            .unwrap()
            .unwrap();
        let mut pruned = path_route();
        pruned["spec"]["rules"] = patch["spec"]["rules"].clone();
        assert_eq!(kept_what_serin_wrote(&patch, &pruned, "HTTPRoute"), Ok(()));
        for rule in pruned["spec"]["rules"].as_array_mut().unwrap() {
            rule.as_object_mut().unwrap().remove("name");
        }
        let err = kept_what_serin_wrote(&patch, &pruned, "HTTPRoute").unwrap_err();
        assert!(err.contains("Gateway API v1.4 or later"), "{err}");
    }

    #[test]
    fn room_is_what_sixteen_rules_leave_per_driven_rule() {
        let (services, steps) = (services(), route_steps());
        let driver = driver(&services, &steps);
        assert_eq!(driver.room(&path_route()), 15);
        let both = |path: &str| {
            json!({ "matches": [{ "path": { "type": "PathPrefix", "value": path } }], "backendRefs": [
            { "name": "web", "weight": 100 }, { "name": "web-canary", "weight": 0 } ] })
        };
        let other = json!({ "backendRefs": [{ "name": "api" }] });
        assert_eq!(
            driver.room(&route(json!([both("/a"), both("/b"), other]))),
            6,
            "(16 - 3) / 2"
        );
    }
}
