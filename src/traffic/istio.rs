//! Istio: the canary weight is the canary destination's share in the
//! VirtualService's HTTP routes that send to both the stable and the canary
//! destination, which are the two Services or, with `destinationRule`, two
//! subsets whose `serin.dev/revision` labels follow the Services. Header and
//! mirror routes are HTTP routes serin adds in front, named
//! `serin-step<N>-<route>` after the step that set them, as with Gateway API.
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Map, Value, json};

use super::{ObjectKind, Router, RouterError, Services, Shown, TrafficRouter, Watched, added};
use crate::api::{
    CanaryStep, DestinationRuleRef, FIELD_MANAGER, IstioRouting, REVISION_LABEL, Release, RouteMatch, StringMatch,
};

const GROUP: &str = "networking.istio.io";

pub const VIRTUAL_SERVICE: ObjectKind = ObjectKind {
    group: GROUP,
    version: "v1",
    kind: "VirtualService",
    plural: "virtualservices",
};

pub const DESTINATION_RULE: ObjectKind = ObjectKind {
    group: GROUP,
    version: "v1",
    kind: "DestinationRule",
    plural: "destinationrules",
};

/// `trafficRouting.istio`: the user's VirtualService (and DestinationRule), patched in place.
pub const ROUTER: Router = Router {
    watches: &[
        Watched {
            kind: VIRTUAL_SERVICE,
            labelled: false,
        },
        Watched {
            kind: DESTINATION_RULE,
            labelled: false,
        },
    ],
    steers: |routing| {
        let Some(istio) = &routing.istio else { return Vec::new() };
        let mut steered = vec![(VIRTUAL_SERVICE, istio.virtual_service.name.as_str())];
        steered.extend(
            istio
                .destination_rule
                .iter()
                .map(|d| (DESTINATION_RULE, d.name.as_str())),
        );
        steered
    },
    build: |client, release, services, routing| {
        let routing = routing.istio.as_ref()?;
        Some(Box::new(Istio::new(client, release, services, routing)))
    },
};

pub struct Istio {
    client: Client,
    namespace: String,
    services: Services,
    routing: IstioRouting,
    steps: Vec<CanaryStep>,
}

impl Istio {
    pub fn new(client: &Client, release: &Release, services: Services, routing: &IstioRouting) -> Self {
        let steps = release.spec.strategy.canary.as_ref().map(|c| c.steps.clone());
        Self {
            client: client.clone(),
            namespace: release.namespace().unwrap_or_default(),
            services,
            routing: routing.clone(),
            steps: steps.unwrap_or_default(),
        }
    }

    fn api(&self, kind: &ObjectKind) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, &kind.api_resource())
    }

    async fn get(&self, kind: &ObjectKind, name: &str) -> Result<Value, RouterError> {
        match self.api(kind).get(name).await {
            Ok(object) => Ok(serde_json::to_value(&object).map_err(kube::Error::SerdeError)?),
            Err(kube::Error::Api(status)) if super::not_found(&status) => Err(RouterError::Misconfigured(format!(
                "{} {name:?} not found in namespace {:?} (or Istio's CRDs are not installed)",
                kind.kind, self.namespace
            ))),
            Err(e) => Err(e.into()),
        }
    }

    fn driver(&self) -> Driver<'_> {
        Driver {
            namespace: &self.namespace,
            services: &self.services,
            subsets: self.routing.destination_rule.as_ref(),
            names: &self.routing.virtual_service.routes,
            steps: &self.steps,
        }
    }

    /// The revisions the stable and canary Services select, for the subsets.
    async fn selected(&self) -> Result<(Option<String>, Option<String>), RouterError> {
        let api = Api::<Service>::namespaced(self.client.clone(), &self.namespace);
        let mut out = Vec::new();
        for name in [&self.services.stable, &self.services.canary] {
            let service = api.get_opt(name).await?;
            out.push(service.and_then(|s| s.spec?.selector?.get(REVISION_LABEL).cloned()));
        }
        Ok((out[0].take(), out[1].take()))
    }

    async fn read(&self) -> Result<Shown, RouterError> {
        let vs = self.get(&VIRTUAL_SERVICE, &self.routing.virtual_service.name).await?;
        let mut state = self.driver().in_place(&vs).map_err(RouterError::Misconfigured)?;
        let route_problems = self.driver().route_problems(&vs);
        let (mut reports_acceptance, mut unaccepted) = acceptance_of(&vs);
        if let Some(rule) = &self.routing.destination_rule {
            let dr = self.get(&DESTINATION_RULE, &rule.name).await?;
            let (stable, canary) = self.selected().await?;
            let want = subsets(&dr, rule, stable.as_deref(), canary.as_deref()).map_err(RouterError::Misconfigured)?;
            if dr.pointer("/spec/subsets") != Some(&want) {
                state = None; // The subsets lag the Services: the next write moves them.
            }
            // Moving a subset's label is a traffic change too.
            let (reports, why) = acceptance_of(&dr);
            reports_acceptance |= reports;
            unaccepted = unaccepted.or(why);
        }
        Ok(Shown {
            canary_weight: state.as_ref().map(|(w, _)| *w),
            routes: state.map(|(_, r)| r),
            reports_acceptance,
            unaccepted,
            route_problems,
            // Istio sets no bound on a VirtualService's HTTP routes.
            route_capacity: None,
        })
    }

    async fn write(&self, canary: Option<i32>, steps: Option<&[usize]>) -> Result<(), RouterError> {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        self.write_subsets().await?;
        let name = &self.routing.virtual_service.name;
        let vs = self.get(&VIRTUAL_SERVICE, name).await?;
        let patch = self
            .driver()
            .patch(&vs, canary, steps)
            .map_err(RouterError::Misconfigured)?;
        if let Some(patch) = patch {
            self.api(&VIRTUAL_SERVICE)
                .patch(name, &params, &Patch::Merge(&patch))
                .await?;
        }
        Ok(())
    }

    /// Moves each subset's revision label onto the revision its Service selects.
    async fn write_subsets(&self) -> Result<(), RouterError> {
        let Some(rule) = &self.routing.destination_rule else {
            return Ok(());
        };
        let dr = self.get(&DESTINATION_RULE, &rule.name).await?;
        let (stable, canary) = self.selected().await?;
        let want = subsets(&dr, rule, stable.as_deref(), canary.as_deref()).map_err(RouterError::Misconfigured)?;
        if dr.pointer("/spec/subsets") == Some(&want) {
            return Ok(());
        }
        let patch = json!({
            "metadata": { "resourceVersion": dr.pointer("/metadata/resourceVersion") },
            "spec": { "subsets": want },
        });
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        self.api(&DESTINATION_RULE)
            .patch(&rule.name, &params, &Patch::Merge(&patch))
            .await?;
        Ok(())
    }
}

impl TrafficRouter for Istio {
    fn shown(&self) -> BoxFuture<'_, Result<Shown, RouterError>> {
        Box::pin(self.read())
    }

    fn set_weight(&self, canary: i32) -> BoxFuture<'_, Result<(), RouterError>> {
        Box::pin(self.write(Some(canary), None))
    }

    fn set_routes<'a>(&'a self, steps: &'a [usize]) -> BoxFuture<'a, Result<(), RouterError>> {
        Box::pin(self.write(None, Some(steps)))
    }

    fn selected<'a>(&'a self) -> BoxFuture<'a, Result<(), RouterError>> {
        Box::pin(self.write_subsets())
    }
}

/// `spec.subsets` with the stable and canary subsets labelled with the
/// revisions their Services select (unlabelled while a Service selects none).
fn subsets(dr: &Value, rule: &DestinationRuleRef, stable: Option<&str>, canary: Option<&str>) -> Result<Value, String> {
    let mut subsets = dr
        .pointer("/spec/subsets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (name, revision) in [(&rule.stable_subset_name, stable), (&rule.canary_subset_name, canary)] {
        let subset = subsets
            .iter_mut()
            .find(|s| s["name"] == name.as_str())
            .ok_or_else(|| format!("DestinationRule {:?} has no subset {name:?}", rule.name))?;
        let labels = subset
            .as_object_mut()
            .ok_or("a DestinationRule subset is not an object")?
            .entry("labels")
            .or_insert_with(|| json!({}));
        let labels = labels
            .as_object_mut()
            .ok_or("a DestinationRule subset's labels are not a map")?;
        match revision {
            Some(r) => labels.insert(REVISION_LABEL.into(), r.into()),
            None => labels.remove(REVISION_LABEL),
        };
    }
    Ok(Value::Array(subsets))
}

/// Whether istiod reports on a VirtualService or DestinationRule
/// (`status.observedGeneration`, with its status feature on), and if it has
/// not reconciled the current generation, why.
fn acceptance_of(vs: &Value) -> (bool, Option<String>) {
    let kind = vs.get("kind").and_then(Value::as_str).unwrap_or("VirtualService");
    let Some(observed) = vs.pointer("/status/observedGeneration") else {
        return (false, None);
    };
    let observed = observed
        .as_i64()
        .or_else(|| observed.as_str()?.parse().ok())
        .unwrap_or(0);
    let generation = vs.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
    let name = vs.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    if observed < generation {
        return (
            true,
            Some(format!(
                "{kind} {name:?} is at generation {generation}, but istiod has reconciled only generation {observed}"
            )),
        );
    }
    let conditions = vs.pointer("/status/conditions").and_then(Value::as_array);
    let refused = conditions
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Reconciled" && c["status"] == "False");
    match refused {
        Some(c) => (
            true,
            Some(format!(
                "istiod has not reconciled VirtualService {name:?}: {}",
                c["message"]
            )),
        ),
        None => (true, None),
    }
}

/// One VirtualService as serin drives it.
struct Driver<'a> {
    namespace: &'a str,
    services: &'a Services,
    subsets: Option<&'a DestinationRuleRef>,
    /// The `http[].name`s to drive; empty: every route with both destinations.
    names: &'a [String],
    steps: &'a [CanaryStep],
}

/// Where the stable and canary destinations of one driven route are.
struct Driven {
    route: usize,
    stable: usize,
    canary: usize,
}

/// The steps whose routes serin added are in the VirtualService, each once, in order.
fn steps_shown(vs: &Value) -> Vec<usize> {
    added::steps_in(&http(vs))
}

fn http(vs: &Value) -> Vec<Value> {
    vs.pointer("/spec/http")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

impl Driver<'_> {
    /// Whether a destination is the stable (`true`) or canary (`false`) one.
    fn is(&self, destination: &Value, stable: bool) -> bool {
        let d = &destination["destination"];
        if let Some(rule) = self.subsets {
            let subset = if stable {
                &rule.stable_subset_name
            } else {
                &rule.canary_subset_name
            };
            return d["subset"] == subset.as_str();
        }
        let service = if stable {
            &self.services.stable
        } else {
            &self.services.canary
        };
        let host = d["host"].as_str().unwrap_or_default();
        let short = host.split('.').collect::<Vec<_>>();
        d.get("subset").is_none() && short[0] == service.as_str() && short.get(1).is_none_or(|ns| *ns == self.namespace)
    }

    fn driven(&self, user: &[Value]) -> Result<Vec<Driven>, String> {
        let mut out = Vec::new();
        for (index, route) in user.iter().enumerate() {
            let name = route.get("name").and_then(Value::as_str);
            if !self.names.is_empty() && !self.names.iter().any(|n| Some(n.as_str()) == name) {
                continue;
            }
            let label = name.map_or(format!("http[{index}]"), |n| format!("route {n:?}"));
            let destinations = route
                .get("route")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            let find = |stable| {
                let mut found = destinations
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| self.is(d, stable))
                    .map(|(i, _)| i);
                let first = found.next();
                match found.next() {
                    Some(_) => Err(format!(
                        "VirtualService {label} has more than one {} destination",
                        if stable { "stable" } else { "canary" }
                    )),
                    None => Ok(first),
                }
            };
            match (find(true)?, find(false)?) {
                (Some(stable), Some(canary)) => out.push(Driven {
                    route: index,
                    stable,
                    canary,
                }),
                (None, None) if self.names.is_empty() => {}
                (None, _) => return Err(format!("VirtualService {label} has no stable destination")),
                (Some(_), None) => {
                    return Err(format!(
                        "VirtualService {label} has no canary destination; add it with weight 0"
                    ));
                }
            }
        }
        for wanted in self.names {
            if !user.iter().any(|r| r["name"] == wanted.as_str()) {
                return Err(format!("VirtualService has no HTTP route named {wanted:?}"));
            }
        }
        if out.is_empty() {
            return Err("VirtualService has no HTTP route with both the stable and the canary destination".into());
        }
        Ok(out)
    }

    fn canary_weight(&self, user: &[Value], driven: &[Driven]) -> i32 {
        let weight = |d: &Driven, i: usize| user[d.route]["route"][i]["weight"].as_i64().unwrap_or(0).clamp(0, 100);
        let first = &driven[0];
        let (stable, canary) = (weight(first, first.stable), weight(first, first.canary));
        if stable + canary == 0 {
            0
        } else {
            ((200 * canary + stable + canary) / (2 * (stable + canary))) as i32
        }
    }

    /// The route steps whose routes cannot be written onto the VirtualService, and why.
    fn route_problems(&self, vs: &Value) -> Vec<(usize, String)> {
        let steps = self.steps.iter().enumerate().filter(|(_, s)| s.sets_route());
        steps
            .filter_map(|(index, _)| self.rendered(vs, 0, &[index]).err().map(|e| (index, e)))
            .collect()
    }

    /// The weight and routes' steps shown, or None when writing them would change the VirtualService.
    fn in_place(&self, vs: &Value) -> Result<Option<(i32, Vec<usize>)>, String> {
        let user: Vec<Value> = http(vs).into_iter().filter(|r| added::step_of(r).is_none()).collect();
        let driven = self.driven(&user)?;
        let weight = self.canary_weight(&user, &driven);
        let steps = steps_shown(vs);
        let want = self.rendered(vs, weight, &steps)?;
        Ok((vs.pointer("/spec/http") == Some(&want)).then_some((weight, steps)))
    }

    fn patch(&self, vs: &Value, canary: Option<i32>, steps: Option<&[usize]>) -> Result<Option<Value>, String> {
        let user: Vec<Value> = http(vs).into_iter().filter(|r| added::step_of(r).is_none()).collect();
        let driven = self.driven(&user)?;
        let canary = canary.unwrap_or_else(|| self.canary_weight(&user, &driven));
        let shown = steps_shown(vs);
        let want = self.rendered(vs, canary, steps.unwrap_or(&shown))?;
        if vs.pointer("/spec/http") == Some(&want) {
            return Ok(None);
        }
        Ok(Some(json!({
            "metadata": { "resourceVersion": vs.pointer("/metadata/resourceVersion") },
            "spec": { "http": want },
        })))
    }

    /// `spec.http`: the routes of `steps` first, then the user's with `canary` percent set.
    fn rendered(&self, vs: &Value, canary: i32, steps: &[usize]) -> Result<Value, String> {
        let canary = canary.clamp(0, 100);
        let mut user: Vec<Value> = http(vs).into_iter().filter(|r| added::step_of(r).is_none()).collect();
        let driven = self.driven(&user)?;
        for d in &driven {
            user[d.route]["route"][d.stable]["weight"] = (100 - canary).into();
            user[d.route]["route"][d.canary]["weight"] = canary.into();
        }
        let mut out = Vec::new();
        for &index in steps {
            let Some(step) = self.steps.get(index).filter(|s| s.sets_route()) else {
                continue;
            };
            for (k, d) in driven.iter().enumerate() {
                out.push(route_for(&user[d.route], d, index, k, step)?);
            }
        }
        out.extend(user);
        Ok(Value::Array(out))
    }
}

/// Step `index`'s route beside driven route `d` (the `k`th).
fn route_for(route: &Value, d: &Driven, index: usize, k: usize, step: &CanaryStep) -> Result<Value, String> {
    let mut out = route.clone();
    let (name, conditions) = added::route_of(step, index)?;
    out["name"] = added::name(index, name, k).into();
    if !conditions.is_empty() {
        out["match"] = with_conditions(route.get("match"), conditions)?;
    }
    let mut canary = route["route"][d.canary].clone();
    if step.set_header_route.is_some() {
        if let Some(c) = canary.as_object_mut() {
            c.remove("weight");
        }
        out["route"] = json!([canary]);
        if let Some(o) = out.as_object_mut() {
            o.remove("mirror");
            o.remove("mirrorPercentage");
        }
    } else if let Some(mirror) = &step.set_mirror_route {
        out["mirror"] = canary["destination"].take();
        // A whole number: the API server stores 10.0 as 10, which would read as drift.
        out["mirrorPercentage"] = json!({ "value": mirror.percent() });
    }
    Ok(out)
}

/// Each of `matches` (or one match-all) with every condition added.
fn with_conditions(matches: Option<&Value>, conditions: &[RouteMatch]) -> Result<Value, String> {
    let mut base: Vec<Value> = matches.and_then(Value::as_array).cloned().unwrap_or_default();
    if base.is_empty() {
        base.push(json!({}));
    }
    for m in &mut base {
        for condition in conditions {
            let (map, name, value) = if let Some(header) = &condition.header_name {
                (
                    "headers",
                    header.to_ascii_lowercase(),
                    string_match(condition.header_value.as_ref()),
                )
            } else if let Some(cookie) = &condition.cookie_name {
                let pattern = added::cookie_pattern(condition, cookie);
                ("headers", "cookie".to_string(), json!({ "regex": pattern }))
            } else if let Some(param) = &condition.query_param_name {
                (
                    "queryParams",
                    param.clone(),
                    string_match(condition.query_param_value.as_ref()),
                )
            } else {
                continue;
            };
            let entries = m
                .as_object_mut()
                .ok_or("a VirtualService match is not an object")?
                .entry(map)
                .or_insert_with(|| Value::Object(Map::new()));
            let entries = entries
                .as_object_mut()
                .ok_or("a VirtualService match's headers are not a map")?;
            if entries.contains_key(&name) {
                return Err(format!(
                    "a VirtualService match already tests {name:?}; a route cannot add a second condition on it"
                ));
            }
            entries.insert(name, value);
        }
    }
    Ok(Value::Array(base))
}

/// Istio's StringMatch takes exact, prefix and regex as they are.
fn string_match(value: Option<&StringMatch>) -> Value {
    match value {
        Some(StringMatch { exact: Some(v), .. }) => json!({ "exact": v }),
        Some(StringMatch { prefix: Some(v), .. }) => json!({ "prefix": v }),
        Some(StringMatch { regex: Some(v), .. }) => json!({ "regex": v }),
        _ => json!({ "exact": "" }),
    }
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

    fn vs(http: Value) -> Value {
        json!({ "metadata": { "name": "web", "namespace": "shop", "resourceVersion": "3", "generation": 2 }, "spec": { "hosts": ["web"], "http": http } })
    }

    fn primary() -> Value {
        json!({ "name": "primary", "match": [{ "uri": { "prefix": "/" } }], "route": [
            { "destination": { "host": "web", "port": { "number": 80 } }, "weight": 100 },
            { "destination": { "host": "web-canary.shop.svc.cluster.local", "port": { "number": 80 } }, "weight": 0 },
        ] })
    }

    fn steps() -> Vec<CanaryStep> {
        serde_json::from_value(json!([
            { "setHeaderRoute": { "name": "testers", "match": [
                { "headerName": "X-Canary", "headerValue": { "prefix": "yes" } },
                { "queryParamName": "beta", "queryParamValue": { "exact": "1" } },
            ] } },
            { "setMirrorRoute": { "name": "shadow", "percentage": 25 } },
        ]))
        .unwrap()
    }

    #[test]
    fn weights_header_and_mirror_routes_render_and_read_back() {
        let (services, steps) = (services(), steps());
        let driver = Driver {
            namespace: "shop",
            services: &services,
            subsets: None,
            names: &[],
            steps: &steps,
        };
        let patch = driver
            .patch(&vs(json!([primary()])), Some(30), Some(&[0, 1]))
            .unwrap()
            .unwrap();
        let http = &patch["spec"]["http"];
        assert_eq!(http[0]["name"], "serin-step1-testers");
        assert_eq!(
            http[0]["match"],
            json!([{ "uri": { "prefix": "/" }, "headers": { "x-canary": { "prefix": "yes" } }, "queryParams": { "beta": { "exact": "1" } } }])
        );
        assert_eq!(
            http[0]["route"],
            json!([{ "destination": { "host": "web-canary.shop.svc.cluster.local", "port": { "number": 80 } } }])
        );
        assert_eq!(http[1]["name"], "serin-step2-shadow");
        assert_eq!(
            http[1]["mirror"],
            json!({ "host": "web-canary.shop.svc.cluster.local", "port": { "number": 80 } })
        );
        assert_eq!(http[1]["mirrorPercentage"], json!({ "value": 25 }));
        assert_eq!(
            (
                http[2]["route"][0]["weight"].clone(),
                http[2]["route"][1]["weight"].clone()
            ),
            (json!(70), json!(30))
        );
        let mut written = vs(json!([]));
        written["spec"]["http"] = http.clone();
        assert_eq!(driver.in_place(&written), Ok(Some((30, vec![0, 1]))));
        written["spec"]["http"][0]["route"][0]["destination"]["host"] = "web".into();
        assert_eq!(
            driver.in_place(&written),
            Ok(None),
            "a header route sent to stable is drift"
        );
    }

    #[test]
    fn subsets_follow_the_services_and_name_the_destinations() {
        let rule = DestinationRuleRef {
            name: "web".into(),
            stable_subset_name: "stable".into(),
            canary_subset_name: "canary".into(),
        };
        let dr = json!({ "spec": { "host": "web", "subsets": [{ "name": "stable", "labels": { "app": "web" } }, { "name": "canary" }] } });
        assert_eq!(
            subsets(&dr, &rule, Some("abc"), Some("def")),
            Ok(
                json!([{ "name": "stable", "labels": { "app": "web", REVISION_LABEL: "abc" } }, { "name": "canary", "labels": { REVISION_LABEL: "def" } }])
            )
        );
        let missing = DestinationRuleRef {
            canary_subset_name: "preview".into(),
            ..rule.clone()
        };
        assert_eq!(
            subsets(&dr, &missing, None, None),
            Err(r#"DestinationRule "web" has no subset "preview""#.into())
        );
        let services = services();
        let driver = Driver {
            namespace: "shop",
            services: &services,
            subsets: Some(&rule),
            names: &[],
            steps: &[],
        };
        let by_subset = vs(json!([{ "route": [
            { "destination": { "host": "web", "subset": "stable" }, "weight": 60 },
            { "destination": { "host": "web", "subset": "canary" }, "weight": 40 },
        ] }]));
        assert_eq!(driver.in_place(&by_subset), Ok(Some((40, vec![]))));
    }

    #[test]
    fn routes_it_cannot_drive_say_why() {
        let services = services();
        let names = vec!["other".to_string()];
        let driver = Driver {
            namespace: "shop",
            services: &services,
            subsets: None,
            names: &names,
            steps: &[],
        };
        assert_eq!(
            driver.in_place(&vs(json!([primary()]))),
            Err(r#"VirtualService has no HTTP route named "other""#.into())
        );
        let only_stable = json!([{ "route": [{ "destination": { "host": "web" }, "weight": 100 }] }]);
        let all = Driver { names: &[], ..driver };
        assert_eq!(
            all.in_place(&vs(only_stable)),
            Err("VirtualService http[0] has no canary destination; add it with weight 0".into())
        );
    }

    #[test]
    fn istiod_reports_acceptance_by_observed_generation() {
        let mut v = vs(json!([primary()]));
        assert_eq!(acceptance_of(&v), (false, None));
        v["status"] = json!({ "observedGeneration": "1" });
        assert_eq!(
            acceptance_of(&v).1.as_deref(),
            Some(r#"VirtualService "web" is at generation 2, but istiod has reconciled only generation 1"#)
        );
        v["status"] = json!({ "observedGeneration": 2, "conditions": [{ "type": "Reconciled", "status": "True" }] });
        assert_eq!(acceptance_of(&v), (true, None));
    }
}
