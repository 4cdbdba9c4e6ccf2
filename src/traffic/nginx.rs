//! ingress-nginx: serin keeps a canary twin of the stable Ingress whose
//! `canary-weight` annotation sends that percent of requests to the canary Service.
use std::collections::BTreeMap;

use futures::future::BoxFuture;
use k8s_openapi::api::networking::v1::{Ingress, IngressSpec};
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};

use super::{ObjectKind, Router, RouterError, Services, Shown, TrafficRouter, Watched};
use crate::api::{CanaryStep, FIELD_MANAGER, RELEASE_LABEL};
use crate::api::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, NginxRouting, Release};

pub const INGRESS: ObjectKind = ObjectKind {
    group: "networking.k8s.io",
    version: "v1",
    kind: "Ingress",
    plural: "ingresses",
};

/// `trafficRouting.nginx`: reads the user's stable Ingress, writes its canary twin.
pub const ROUTER: Router = Router {
    // The canary Ingress is serin's own and names its Release; the stable one is the user's.
    watches: &[Watched {
        kind: INGRESS,
        labelled: true,
    }],
    steers: |routing| routing.nginx.iter().map(|n| (INGRESS, n.ingress.as_str())).collect(),
    build: |client, release, services, routing| {
        let routing = routing.nginx.as_ref()?;
        Some(Box::new(Nginx::new(client, release, services, routing)))
    },
};

const NGINX_PREFIX: &str = "nginx.ingress.kubernetes.io/";
/// Also the prefix of every canary annotation, none of which may leak from the stable Ingress.
const CANARY_ANNOTATION: &str = "nginx.ingress.kubernetes.io/canary";
const WEIGHT_ANNOTATION: &str = "nginx.ingress.kubernetes.io/canary-weight";
const BY_HEADER: &str = "nginx.ingress.kubernetes.io/canary-by-header";
const BY_HEADER_VALUE: &str = "nginx.ingress.kubernetes.io/canary-by-header-value";
const BY_HEADER_PATTERN: &str = "nginx.ingress.kubernetes.io/canary-by-header-pattern";
const BY_COOKIE: &str = "nginx.ingress.kubernetes.io/canary-by-cookie";
/// The canary steps (from 1) whose header routes the canary Ingress carries.
const ROUTE_STEPS_ANNOTATION: &str = "serin.dev/route-steps";
/// Ingresses without `ingressClassName` pick their controller by this annotation;
/// the canary must reach the same controller as the stable Ingress.
const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
const NAME_MAX: usize = 253;
const CANARY_SUFFIX: &str = "-canary";

/// Maintains the canary Ingress next to the Release's stable Ingress.
pub struct Nginx {
    api: Api<Ingress>,
    namespace: String,
    release: Release,
    services: Services,
    ingress: String,
}

impl Nginx {
    pub fn new(client: &Client, release: &Release, services: Services, routing: &NginxRouting) -> Self {
        let namespace = release.namespace().unwrap_or_default();
        Self {
            api: Api::namespaced(client.clone(), &namespace),
            namespace,
            release: release.clone(),
            services,
            ingress: routing.ingress.clone(),
        }
    }

    async fn stable(&self) -> Result<Ingress, RouterError> {
        self.api.get_opt(&self.ingress).await?.ok_or_else(|| {
            RouterError::Misconfigured(format!(
                "Ingress {:?} not found in namespace {:?}",
                self.ingress, self.namespace
            ))
        })
    }

    /// The stable Ingress, and the canary Ingress if it exists.
    async fn objects(&self) -> Result<(Ingress, Option<Ingress>), RouterError> {
        let stable = self.stable().await?;
        // Report a stable Ingress serin cannot mirror even before the canary exists.
        canary_ingress(&stable, &self.release, &self.services, 0, &[]).map_err(RouterError::Misconfigured)?;
        let name = canary_ingress_name(&self.release.name_any(), &self.ingress);
        Ok((stable, self.api.get_opt(&name).await?))
    }

    /// Writes `canary` (None: as the live canary Ingress has it, or 0) and the
    /// routes of `steps` (None: as it has them).
    async fn write(&self, canary: Option<i32>, steps: Option<&[usize]>) -> Result<(), RouterError> {
        let (stable, live) = self.objects().await?;
        let (live_weight, live_steps) = live.as_ref().map(shown).unwrap_or((0, Vec::new()));
        let desired = canary_ingress(
            &stable,
            &self.release,
            &self.services,
            canary.unwrap_or(live_weight),
            steps.unwrap_or(&live_steps),
        )
        .map_err(RouterError::Misconfigured)?;
        let name = desired.name_any();
        // Server-side apply: fields serin stops setting (an annotation removed
        // from the stable Ingress) are removed from the canary too.
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.api.patch(&name, &params, &Patch::Apply(&desired)).await?;
        Ok(())
    }
}

impl TrafficRouter for Nginx {
    fn shown(&self) -> BoxFuture<'_, Result<Shown, RouterError>> {
        Box::pin(async move {
            let (stable, live) = self.objects().await?;
            // No canary Ingress yet: no weight to read, and no routes either.
            let Some(live) = live else {
                return Ok(Shown {
                    routes: Some(Vec::new()),
                    ..Shown::default()
                });
            };
            let state =
                live_state(&live, &stable, &self.release, &self.services).map_err(RouterError::Misconfigured)?;
            // ingress-nginx reports no acceptance: only the load balancer's address.
            Ok(Shown {
                canary_weight: state.as_ref().map(|(w, _)| *w),
                routes: state.map(|(_, steps)| steps),
                ..Shown::default()
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

/// The weight and route steps a canary Ingress says it carries, whether or not it does.
fn shown(live: &Ingress) -> (i32, Vec<usize>) {
    let annotations = live.annotations();
    let weight = annotations.get(WEIGHT_ANNOTATION).and_then(|w| w.parse::<i32>().ok());
    (
        weight.unwrap_or(0).clamp(0, 100),
        route_steps(annotations).unwrap_or_default(),
    )
}

/// The steps of `serin.dev/route-steps`; None when it does not parse.
fn route_steps(annotations: &BTreeMap<String, String>) -> Option<Vec<usize>> {
    let Some(list) = annotations.get(ROUTE_STEPS_ANNOTATION) else {
        return Some(Vec::new());
    };
    list.split(',')
        .map(|n| n.trim().parse::<usize>().ok()?.checked_sub(1))
        .collect()
}

/// The annotations of the header route `step` sets.
fn route_annotations(step: &CanaryStep) -> Result<Vec<(&'static str, String)>, String> {
    let header = step
        .set_header_route
        .as_ref()
        .ok_or("ingress-nginx cannot mirror requests")?;
    let [condition] = header.matches.as_slice() else {
        return Err("ingress-nginx routes on exactly one header or cookie".into());
    };
    if let (Some(name), Some(value)) = (&condition.header_name, &condition.header_value) {
        let by = match &value.exact {
            Some(exact) => (BY_HEADER_VALUE, exact.clone()),
            None => (BY_HEADER_PATTERN, value.as_regex()),
        };
        return Ok(vec![(BY_HEADER, name.clone()), by]);
    }
    match &condition.cookie_name {
        Some(cookie) => Ok(vec![(BY_COOKIE, cookie.clone())]),
        None => Err("ingress-nginx routes on a header or a cookie only".into()),
    }
}

/// `{release}-{ingress}-canary`, shortened to a valid object name.
fn canary_ingress_name(release: &str, ingress: &str) -> String {
    let base: String = format!("{release}-{ingress}")
        .chars()
        .take(NAME_MAX - CANARY_SUFFIX.len())
        .collect();
    // Cutting may leave a '-' or '.' before the suffix, which names forbid twice in a row.
    let base = base.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{base}{CANARY_SUFFIX}")
}

/// Stable Ingress annotations the canary copies: ingress-nginx behaviour
/// (rewrites, timeouts...) must match on both, but never the canary settings.
fn copied_annotation(key: &str) -> bool {
    (key.starts_with(NGINX_PREFIX) && !key.starts_with(CANARY_ANNOTATION)) || key == LEGACY_CLASS_ANNOTATION
}

/// Annotations serin owns on the canary Ingress; others belong to other tools.
fn managed_annotations(ingress: &Ingress) -> BTreeMap<&str, &str> {
    ingress
        .annotations()
        .iter()
        .filter(|(k, _)| k.starts_with(NGINX_PREFIX) || *k == LEGACY_CLASS_ANNOTATION)
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// The canary twin of `stable`: its paths to the stable Service go to the canary Service.
fn canary_ingress(
    stable: &Ingress,
    release: &Release,
    services: &Services,
    canary_weight: i32,
    route_steps: &[usize],
) -> Result<Ingress, String> {
    let spec = stable.spec.clone().unwrap_or_default();
    let mut rules = spec.rules.unwrap_or_default();
    let mut rewritten = 0;
    for path in rules
        .iter_mut()
        .filter_map(|rule| rule.http.as_mut())
        .flat_map(|http| http.paths.iter_mut())
    {
        if let Some(service) = path.backend.service.as_mut().filter(|s| s.name == services.stable) {
            service.name.clone_from(&services.canary);
            rewritten += 1;
        }
    }
    if rewritten == 0 {
        return Err(format!(
            "Ingress {:?} has no path whose backend is the stable Service {:?}, so no traffic can be split",
            stable.name_any(),
            services.stable
        ));
    }

    let mut annotations: BTreeMap<String, String> = stable
        .annotations()
        .iter()
        .filter(|(k, _)| copied_annotation(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert(CANARY_ANNOTATION.into(), "true".into());
    annotations.insert(WEIGHT_ANNOTATION.into(), canary_weight.clamp(0, 100).to_string());
    let steps = release
        .spec
        .strategy
        .canary
        .as_ref()
        .map_or(&[][..], |c| c.steps.as_slice());
    for &index in route_steps {
        let step = steps
            .get(index)
            .filter(|s| s.sets_route())
            .ok_or_else(|| format!("step {index} sets no route"))?;
        for (key, value) in route_annotations(step)? {
            annotations.insert(key.into(), value);
        }
    }
    if !route_steps.is_empty() {
        let numbers: Vec<String> = route_steps.iter().map(|i| (i + 1).to_string()).collect();
        annotations.insert(ROUTE_STEPS_ANNOTATION.into(), numbers.join(","));
    }

    let release_name = release.name_any();
    Ok(Ingress {
        metadata: ObjectMeta {
            name: Some(canary_ingress_name(&release_name, &stable.name_any())),
            namespace: release.namespace(),
            labels: Some(
                [
                    (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
                    (RELEASE_LABEL.to_string(), release_name),
                ]
                .into(),
            ),
            annotations: Some(annotations),
            owner_references: release.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        // TLS and the default backend stay on the stable Ingress: ingress-nginx
        // serves a canary with the main Ingress's.
        spec: Some(IngressSpec {
            ingress_class_name: spec.ingress_class_name,
            rules: Some(rules),
            ..Default::default()
        }),
        status: None,
    })
}

/// The weight and route steps of the live canary Ingress, or `None` when it
/// is not what serin would write for them (hand edits, a changed stable
/// Ingress, a route naming no route step), so the next write rewrites it.
fn live_state(
    live: &Ingress,
    stable: &Ingress,
    release: &Release,
    services: &Services,
) -> Result<Option<(i32, Vec<usize>)>, String> {
    let Some(weight) = live
        .annotations()
        .get(WEIGHT_ANNOTATION)
        .and_then(|w| w.parse::<i32>().ok())
        .filter(|w| (0..=100).contains(w))
    else {
        return Ok(None);
    };
    let Some(steps) = route_steps(live.annotations()) else {
        return Ok(None);
    };
    // A route the spec no longer sets is drift, not a misconfiguration.
    let Ok(desired) = canary_ingress(stable, release, services, weight, &steps) else {
        return Ok(None);
    };
    let labels_kept = desired.labels().iter().all(|(k, v)| live.labels().get(k) == Some(v));
    let in_sync = live.spec == desired.spec
        && labels_kept
        && managed_annotations(live) == managed_annotations(&desired)
        && live.annotations().get(ROUTE_STEPS_ANNOTATION) == desired.annotations().get(ROUTE_STEPS_ANNOTATION);
    Ok(in_sync.then_some((weight, steps)))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn release() -> Release {
        serde_json::from_value(json!({
            "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
            "metadata": { "name": "shop", "namespace": "prod", "uid": "u-1" },
            "spec": {
                "selector": { "matchLabels": { "app": "web" } },
                "template": { "metadata": { "labels": { "app": "web" } },
                              "spec": { "containers": [{ "name": "web", "image": "web:1" }] } },
                "strategy": { "canary": {
                    "stableService": "web", "canaryService": "web-canary",
                    "trafficRouting": { "nginx": { "ingress": "web" } },
                } }
            }
        }))
        .unwrap()
    }

    fn live_weight(
        live: &Ingress,
        stable: &Ingress,
        release: &Release,
        services: &Services,
    ) -> Result<Option<i32>, String> {
        live_state(live, stable, release, services).map(|s| s.map(|(w, _)| w))
    }

    fn services() -> Services {
        Services {
            stable: "web".into(),
            canary: "web-canary".into(),
        }
    }

    fn path(path: &str, service: &str, port: Value) -> Value {
        json!({ "path": path, "pathType": "Prefix", "backend": { "service": { "name": service, "port": port } } })
    }

    fn stable() -> Ingress {
        serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {
                "name": "web", "namespace": "prod", "resourceVersion": "9",
                "labels": { "app": "web" },
                "annotations": {
                    "nginx.ingress.kubernetes.io/rewrite-target": "/",
                    "nginx.ingress.kubernetes.io/proxy-read-timeout": "30",
                    "nginx.ingress.kubernetes.io/canary-by-header": "X-Canary",
                    "nginx.ingress.kubernetes.io/canary-weight-total": "1000",
                    "cert-manager.io/cluster-issuer": "letsencrypt",
                },
            },
            "spec": {
                "ingressClassName": "nginx",
                "defaultBackend": { "service": { "name": "web", "port": { "number": 80 } } },
                "tls": [{ "hosts": ["shop.example.com"], "secretName": "shop-tls" }],
                "rules": [
                    { "host": "shop.example.com", "http": { "paths": [
                        path("/", "web", json!({ "number": 80 })),
                        path("/api", "api", json!({ "number": 8080 })),
                    ] } },
                    { "host": "www.example.com", "http": { "paths": [
                        path("/", "web", json!({ "name": "http" })),
                    ] } },
                ],
            },
        }))
        .unwrap()
    }

    fn json_of(ingress: &Ingress) -> Value {
        serde_json::to_value(ingress).unwrap()
    }

    #[test]
    fn canary_ingress_sends_the_stable_paths_to_the_canary_service() {
        let canary = canary_ingress(&stable(), &release(), &services(), 20, &[]).unwrap();
        assert_eq!(
            json_of(&canary)["spec"],
            json!({
                "ingressClassName": "nginx",
                "rules": [
                    { "host": "shop.example.com", "http": { "paths": [
                        path("/", "web-canary", json!({ "number": 80 })),
                        path("/api", "api", json!({ "number": 8080 })),
                    ] } },
                    { "host": "www.example.com", "http": { "paths": [
                        path("/", "web-canary", json!({ "name": "http" })),
                    ] } },
                ],
            }),
            "rules rewritten, no TLS, no default backend"
        );
    }

    #[test]
    fn canary_ingress_copies_only_nginx_behaviour_annotations() {
        let canary = canary_ingress(&stable(), &release(), &services(), 20, &[]).unwrap();
        assert_eq!(
            json_of(&canary)["metadata"]["annotations"],
            json!({
                "nginx.ingress.kubernetes.io/rewrite-target": "/",
                "nginx.ingress.kubernetes.io/proxy-read-timeout": "30",
                "nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-weight": "20",
            })
        );
    }

    #[test]
    fn canary_ingress_keeps_a_legacy_ingress_class_annotation() {
        let mut stable = stable();
        stable.spec.as_mut().unwrap().ingress_class_name = None;
        stable
            .annotations_mut()
            .insert(LEGACY_CLASS_ANNOTATION.into(), "nginx".into());
        let canary = canary_ingress(&stable, &release(), &services(), 0, &[]).unwrap();
        assert_eq!(
            canary.annotations().get(LEGACY_CLASS_ANNOTATION).map(String::as_str),
            Some("nginx")
        );
        assert_eq!(canary.spec.unwrap().ingress_class_name, None);
    }

    #[test]
    fn canary_ingress_is_owned_and_labelled_for_the_release() {
        let canary = json_of(&canary_ingress(&stable(), &release(), &services(), 0, &[]).unwrap());
        assert_eq!(
            canary["apiVersion"], "networking.k8s.io/v1",
            "server-side apply needs the type"
        );
        assert_eq!(canary["kind"], "Ingress");
        let meta = &canary["metadata"];
        assert_eq!(meta["name"], "shop-web-canary");
        assert_eq!(meta["namespace"], "prod");
        assert_eq!(
            meta["labels"],
            json!({ "app.kubernetes.io/managed-by": "serin", "serin.dev/release": "shop" })
        );
        assert_eq!(
            meta["ownerReferences"],
            json!([{
                "apiVersion": "serin.dev/v1alpha1", "kind": "Release", "name": "shop", "uid": "u-1",
                "controller": true,
            }])
        );
        assert!(
            meta.get("resourceVersion").is_none(),
            "not copied from the stable Ingress"
        );
        assert!(canary.get("status").is_none());
    }

    #[test]
    fn canary_ingress_clamps_the_weight() {
        for (weight, want) in [(-5, "0"), (0, "0"), (55, "55"), (100, "100"), (101, "100")] {
            let canary = canary_ingress(&stable(), &release(), &services(), weight, &[]).unwrap();
            assert_eq!(
                canary.annotations().get(WEIGHT_ANNOTATION).map(String::as_str),
                Some(want),
                "{weight}"
            );
        }
    }

    #[test]
    fn canary_ingress_needs_a_path_to_the_stable_service() {
        let cases = [
            (
                "only other services",
                json!({ "rules": [{ "http": { "paths": [path("/", "api", json!({ "number": 80 }))] } }] }),
            ),
            (
                "stable only as default backend",
                json!({ "defaultBackend": { "service": { "name": "web", "port": { "number": 80 } } } }),
            ),
            ("no rules", json!({})),
        ];
        for (case, spec) in cases {
            let stable: Ingress =
                serde_json::from_value(json!({ "metadata": { "name": "web" }, "spec": spec })).unwrap();
            assert_eq!(
                canary_ingress(&stable, &release(), &services(), 10, &[]),
                Err(r#"Ingress "web" has no path whose backend is the stable Service "web", so no traffic can be split"#.into()),
                "{case}"
            );
        }
    }

    #[test]
    fn canary_ingress_names_stay_valid() {
        assert_eq!(canary_ingress_name("shop", "web"), "shop-web-canary");
        let long = canary_ingress_name(&"r".repeat(200), &"i".repeat(200));
        assert_eq!(long.len(), NAME_MAX);
        assert!(long.ends_with("-canary"), "{long}");
        // A cut landing right after the separator must not leave "--canary".
        let cut = canary_ingress_name(&"r".repeat(NAME_MAX - CANARY_SUFFIX.len()), "web");
        assert_eq!(cut, format!("{}-canary", "r".repeat(NAME_MAX - CANARY_SUFFIX.len())));
        let at_dash = canary_ingress_name(&"r".repeat(NAME_MAX - CANARY_SUFFIX.len() - 1), "web");
        assert_eq!(
            at_dash,
            format!("{}-canary", "r".repeat(NAME_MAX - CANARY_SUFFIX.len() - 1))
        );
    }

    /// The canary as the apiserver returns it: with server-set and other tools' fields.
    fn live(weight: &str) -> Ingress {
        let mut live = canary_ingress(&stable(), &release(), &services(), 0, &[]).unwrap();
        live.annotations_mut().insert(WEIGHT_ANNOTATION.into(), weight.into());
        live.metadata.resource_version = Some("12".into());
        live.labels_mut().insert("team".into(), "payments".into());
        live.annotations_mut().insert("example.com/audit".into(), "yes".into());
        live
    }

    #[test]
    fn live_weight_reads_an_in_sync_canary_and_flags_drift() {
        let edit = |f: fn(&mut Ingress)| {
            let mut ingress = live("30");
            f(&mut ingress);
            ingress
        };
        let cases: Vec<(&str, Ingress, Option<i32>)> = vec![
            ("in sync", live("30"), Some(30)),
            ("zero", live("0"), Some(0)),
            ("unparsable weight", live("thirty"), None),
            ("weight out of range", live("130"), None),
            (
                "weight annotation missing",
                edit(|i| {
                    i.annotations_mut().remove(WEIGHT_ANNOTATION);
                }),
                None,
            ),
            (
                "canary switched off by hand",
                edit(|i| {
                    i.annotations_mut().insert(CANARY_ANNOTATION.into(), "false".into());
                }),
                None,
            ),
            (
                "stale copied annotation",
                edit(|i| {
                    i.annotations_mut()
                        .insert("nginx.ingress.kubernetes.io/ssl-redirect".into(), "false".into());
                }),
                None,
            ),
            (
                "release label removed",
                edit(|i| {
                    i.labels_mut().remove(RELEASE_LABEL);
                }),
                None,
            ),
            (
                "ingress class edited",
                edit(|i| {
                    i.spec.as_mut().unwrap().ingress_class_name = Some("other".into());
                }),
                None,
            ),
        ];
        for (case, live, want) in cases {
            assert_eq!(
                live_weight(&live, &stable(), &release(), &services()),
                Ok(want),
                "{case}"
            );
        }
    }

    #[test]
    fn live_weight_sees_a_changed_stable_ingress_as_drift() {
        let mut changed = stable();
        changed
            .annotations_mut()
            .insert("nginx.ingress.kubernetes.io/proxy-body-size".into(), "8m".into());
        assert_eq!(live_weight(&live("30"), &changed, &release(), &services()), Ok(None));
        let mut fewer_paths = stable();
        fewer_paths.spec.as_mut().unwrap().rules.as_mut().unwrap().pop();
        assert_eq!(
            live_weight(&live("30"), &fewer_paths, &release(), &services()),
            Ok(None)
        );
    }

    #[test]
    fn a_header_route_is_the_canary_ingress_annotations_and_reads_back() {
        let mut release = release();
        release.spec.strategy.canary.as_mut().unwrap().steps = serde_json::from_value(json!([
            { "setHeaderRoute": { "name": "a", "match": [{ "headerName": "X-Canary", "headerValue": { "exact": "yes" } }] } },
            { "setHeaderRoute": { "name": "a", "match": [{ "headerName": "X-Canary", "headerValue": { "prefix": "v2." } }] } },
            { "setHeaderRoute": { "name": "a", "match": [{ "cookieName": "beta" }] } },
            { "setWeight": 10 },
        ]))
        .unwrap();
        let annotations = |steps: &[usize]| {
            let ingress = canary_ingress(&stable(), &release, &services(), 10, steps).unwrap();
            let live = live_state(&ingress, &stable(), &release, &services()).unwrap();
            assert_eq!(live, Some((10, steps.to_vec())), "reads back");
            let mut shown: Vec<(String, String)> = ingress
                .annotations()
                .iter()
                .filter(|(k, _)| k.contains("canary-by") || k.starts_with("serin.dev"))
                .map(|(k, v)| (k.replace(NGINX_PREFIX, ""), v.clone()))
                .collect();
            shown.sort();
            shown
        };
        let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
            p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert_eq!(
            annotations(&[0]),
            pairs(&[
                ("canary-by-header", "X-Canary"),
                ("canary-by-header-value", "yes"),
                ("serin.dev/route-steps", "1")
            ])
        );
        assert_eq!(
            annotations(&[1]),
            pairs(&[
                ("canary-by-header", "X-Canary"),
                ("canary-by-header-pattern", r"^v2\..*"),
                ("serin.dev/route-steps", "2")
            ])
        );
        assert_eq!(
            annotations(&[2]),
            pairs(&[("canary-by-cookie", "beta"), ("serin.dev/route-steps", "3")])
        );
        assert_eq!(annotations(&[]), pairs(&[]));
        // A route annotation naming a step that sets no route is drift.
        let mut bad = canary_ingress(&stable(), &release, &services(), 10, &[0]).unwrap();
        bad.annotations_mut().insert(ROUTE_STEPS_ANNOTATION.into(), "4".into());
        assert_eq!(live_state(&bad, &stable(), &release, &services()), Ok(None));
    }
}
