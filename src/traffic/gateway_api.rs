//! Gateway API: the canary weight is the share of the canary Service's backendRef
//! in the HTTPRoute rules that route to both the stable and canary Services.
use futures::future::BoxFuture;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::Status;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::{ObjectKind, Router, RouterError, Services, TrafficRouter, Watched};
use crate::api::FIELD_MANAGER;
use crate::api::{GatewayApiRouting, HttpRouteRef, Release};

const GROUP: &str = "gateway.networking.k8s.io";
const VERSION: &str = "v1";
const KIND: &str = "HTTPRoute";

pub const HTTP_ROUTE: ObjectKind = ObjectKind {
    group: GROUP,
    version: VERSION,
    kind: KIND,
    plural: "httproutes",
};

/// `trafficRouting.gatewayAPI`: the user's HTTPRoutes, patched in place.
pub const ROUTER: Router = Router {
    watches: &[Watched {
        kind: HTTP_ROUTE,
        labelled: false,
    }],
    steers: |routing| {
        let routes = routing.gateway_api.iter().flat_map(|g| &g.http_routes);
        routes.map(|r| (HTTP_ROUTE, r.name.as_str())).collect()
    },
    build: |client, release, services, routing| {
        let routing = routing.gateway_api.as_ref()?;
        Some(Box::new(GatewayApi::new(client, release, services, routing)))
    },
};

/// The largest backendRef weight Gateway API accepts.
const WEIGHT_MAX: i64 = 1_000_000;

/// Drives the weights of the stable and canary backendRefs of HTTPRoutes.
pub struct GatewayApi {
    api: Api<DynamicObject>,
    namespace: String,
    services: Services,
    routes: Vec<HttpRouteRef>,
}

impl GatewayApi {
    pub fn new(client: &Client, release: &Release, services: Services, routing: &GatewayApiRouting) -> Self {
        let namespace = release.namespace().unwrap_or_default();
        Self {
            api: Api::namespaced_with(client.clone(), &namespace, &HTTP_ROUTE.api_resource()),
            namespace,
            services,
            routes: routing.http_routes.clone(),
        }
    }

    /// The route as JSON, metadata included (names for messages, resourceVersion for patches).
    async fn get(&self, name: &str) -> Result<Value, RouterError> {
        match self.api.get(name).await {
            Ok(route) => Ok(serde_json::to_value(&route).map_err(kube::Error::SerdeError)?),
            Err(kube::Error::Api(status)) if status.is_not_found() => Err(RouterError::Misconfigured(
                not_found_message(&status, name, &self.namespace),
            )),
            Err(e) => Err(e.into()),
        }
    }

    async fn read_weight(&self) -> Result<Option<i32>, RouterError> {
        let mut weights = Vec::with_capacity(self.routes.len());
        for route_ref in &self.routes {
            let route = self.get(&route_ref.name).await?;
            let weight =
                route_weight(&route, route_ref.rule.as_deref(), &self.services).map_err(RouterError::Misconfigured)?;
            weights.push(weight);
        }
        Ok(agreed(&weights))
    }

    async fn write_weight(&self, canary: i32) -> Result<(), RouterError> {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        for route_ref in &self.routes {
            let route = self.get(&route_ref.name).await?;
            let patch = rules_patch(&route, route_ref.rule.as_deref(), &self.services, canary)
                .map_err(RouterError::Misconfigured)?;
            if let Some(patch) = patch {
                self.api.patch(&route_ref.name, &params, &Patch::Merge(&patch)).await?;
            }
        }
        Ok(())
    }
}

impl TrafficRouter for GatewayApi {
    fn canary_weight(&self) -> BoxFuture<'_, Result<Option<i32>, RouterError>> {
        Box::pin(self.read_weight())
    }

    fn set_weight(&self, canary: i32) -> BoxFuture<'_, Result<(), RouterError>> {
        Box::pin(self.write_weight(canary))
    }
}

/// A 404 names the object when the route is missing; without that name the
/// resource itself is unknown, i.e. the CRD is not installed.
fn not_found_message(status: &Status, name: &str, namespace: &str) -> String {
    if status.details.as_ref().is_some_and(|d| d.name == name) {
        format!("{KIND} {name:?} not found in namespace {namespace:?}")
    } else {
        format!(
            "cannot read {KIND} {name:?} in namespace {namespace:?}: the Gateway API CRDs \
             ({GROUP}/{VERSION} {KIND}) are not installed"
        )
    }
}

/// One weight when every route agrees; otherwise `None`, so the writer re-syncs them.
fn agreed(weights: &[Option<i32>]) -> Option<i32> {
    let first = *weights.first()?;
    if weights.iter().all(|w| *w == first) {
        first
    } else {
        None
    }
}

/// The route's canary weight, or `None` when writing that weight would change
/// the route (rules disagree, or the stable weight is not 100 minus the canary's).
fn route_weight(route: &Value, rule: Option<&str>, services: &Services) -> Result<Option<i32>, String> {
    let weight = canary_weight_in(route, rule, services)?;
    let rules = with_canary_weight(route, rule, services, weight)?;
    Ok((route.pointer("/spec/rules") == Some(&rules)).then_some(weight))
}

/// The merge patch setting `canary`, or `None` when the route already has it.
/// It carries the resourceVersion read so a concurrent edit fails with a
/// Conflict instead of being overwritten: `spec.rules` is an atomic list, so
/// the whole list is replaced.
fn rules_patch(route: &Value, rule: Option<&str>, services: &Services, canary: i32) -> Result<Option<Value>, String> {
    let rules = with_canary_weight(route, rule, services, canary)?;
    if route.pointer("/spec/rules") == Some(&rules) {
        return Ok(None);
    }
    Ok(Some(json!({
        "metadata": { "resourceVersion": route.pointer("/metadata/resourceVersion") },
        "spec": { "rules": rules },
    })))
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
fn driven_rules(route: &Value, rule: Option<&str>, services: &Services) -> Result<Vec<Driven>, String> {
    let name = route_name(route);
    let namespace = route.pointer("/metadata/namespace").and_then(Value::as_str);
    let mut driven = Vec::new();
    for (index, r) in rules(route).iter().enumerate() {
        if rule.is_some_and(|wanted| r.get("name").and_then(Value::as_str) != Some(wanted)) {
            continue;
        }
        let describe = || format!("{KIND} {name:?} {}", rule_label(r, index));
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
            Some(wanted) => format!("{KIND} {name:?} has no rule named {wanted:?}"),
            None => format!(
                "{KIND} {name:?} has no rule with backendRefs to stable Service {:?} and canary Service {:?}",
                services.stable, services.canary
            ),
        });
    }
    Ok(driven)
}

/// A backendRef's weight; absent means 1, as in Gateway API.
fn weight(route: &Value, driven: &Driven, backend: usize) -> Result<i64, String> {
    let rule = &rules(route)[driven.rule];
    match rule.pointer(&format!("/backendRefs/{backend}/weight")) {
        None | Some(Value::Null) => Ok(1),
        Some(w) => w.as_i64().filter(|w| (0..=WEIGHT_MAX).contains(w)).ok_or_else(|| {
            format!(
                "{KIND} {:?} {} has an invalid backendRef weight {w}",
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
fn canary_weight_in(route: &Value, rule: Option<&str>, services: &Services) -> Result<i32, String> {
    let mut percents = Vec::new();
    for driven in driven_rules(route, rule, services)? {
        percents.push(percent(
            weight(route, &driven, driven.stable)?,
            weight(route, &driven, driven.canary)?,
        ));
    }
    // driven_rules never returns an empty list.
    Ok(percents.first().copied().unwrap_or_default())
}

/// `spec.rules` with `canary` percent on the canary backendRef and the rest on
/// the stable one, in every driven rule; other rules are left as they are.
fn with_canary_weight(route: &Value, rule: Option<&str>, services: &Services, canary: i32) -> Result<Value, String> {
    let canary = canary.clamp(0, 100);
    let mut updated = rules(route).to_vec();
    for driven in driven_rules(route, rule, services)? {
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
            assert_eq!(canary_weight_in(&route, rule, &services()), Ok(want), "{case}");
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
                canary_weight_in(&route, rule, &services()),
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
        let rules = with_canary_weight(&route, None, &services(), 30).unwrap();
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
        assert_eq!(canary_weight_in(&rewritten, None, &services()), Ok(30), "reads back");
    }

    #[test]
    fn with_canary_weight_touches_only_the_named_rule() {
        let a = named("a", rule(&[("web", Some(100)), ("web-canary", Some(0))]));
        let route = route(json!([
            a.clone(),
            named("b", rule(&[("web", Some(100)), ("web-canary", Some(0))]))
        ]));
        let rules = with_canary_weight(&route, Some("b"), &services(), 100).unwrap();
        assert_eq!(
            rules,
            json!([a, named("b", rule(&[("web", Some(0)), ("web-canary", Some(100))]))])
        );
    }

    #[test]
    fn with_canary_weight_clamps_and_propagates_errors() {
        let route1 = route(json!([rule(&[("web", None), ("web-canary", None)])]));
        assert_eq!(
            with_canary_weight(&route1, None, &services(), 150).unwrap(),
            json!([rule(&[("web", Some(0)), ("web-canary", Some(100))])])
        );
        let broken = route(json!([rule(&[("web", None)])]));
        assert!(with_canary_weight(&broken, None, &services(), 10).is_err());
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
            assert_eq!(route_weight(&route, None, &services()), Ok(want), "{case}");
        }
    }

    #[test]
    fn rules_patch_replaces_the_rules_under_the_read_resource_version() {
        let route = route(json!([rule(&[("web", Some(100)), ("web-canary", Some(0))])]));
        assert_eq!(rules_patch(&route, None, &services(), 0), Ok(None), "unchanged");
        assert_eq!(
            rules_patch(&route, None, &services(), 25),
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
            not_found_message(&missing_route, "shop", "prod"),
            r#"HTTPRoute "shop" not found in namespace "prod""#
        );
        let unknown_resource = status(json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound",
            "message": "the server could not find the requested resource", "details": {},
        }));
        // A plain-text 404, which kube turns into a Status without details.
        let plain_404 = Status::failure("404 page not found", "Failed to parse error data").with_code(404);
        for status in [unknown_resource, plain_404] {
            let message = not_found_message(&status, "shop", "prod");
            assert!(message.contains("Gateway API CRDs"), "{message}");
            assert!(message.contains("not installed"), "{message}");
        }
    }
}
