//! The objects a Release steers but does not own (Services, HTTPRoutes, the
//! stable Ingress) and the canary Ingress it owns, watched so that an outside
//! edit of a selector or weight is put back at once, not at the next rollout.
//!
//! No cache is kept: each event is mapped to the Releases that name the object
//! and dropped, so memory does not grow with the cluster's Services.
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use super::replicaset::RELEASE_LABEL;
use super::{scoped, strip_managed_fields};
use crate::api::Release;

/// What kind of object an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Steered {
    Service,
    HttpRoute,
    Ingress,
}

/// Whether `release` steers the `kind` object called `name` (in its namespace).
pub fn steers(release: &Release, kind: Steered, name: &str) -> bool {
    let strategy = &release.spec.strategy;
    match kind {
        Steered::Service => {
            let canary = strategy
                .canary
                .iter()
                .flat_map(|c| [c.stable_service.as_deref(), c.canary_service.as_deref()]);
            let blue_green = strategy
                .blue_green
                .iter()
                .flat_map(|b| [Some(b.active_service.as_str()), b.preview_service.as_deref()]);
            canary.chain(blue_green).flatten().any(|s| s == name)
        }
        Steered::HttpRoute => strategy
            .canary
            .iter()
            .filter_map(|c| c.traffic_routing.as_ref()?.gateway_api.as_ref())
            .flat_map(|g| &g.http_routes)
            .any(|r| r.name == name),
        Steered::Ingress => strategy
            .canary
            .iter()
            .filter_map(|c| c.traffic_routing.as_ref()?.nginx.as_ref())
            .any(|n| n.ingress == name),
    }
}

/// The Releases in `namespace` that steer the object.
fn releases_steering(
    releases: &Store<Release>,
    kind: Steered,
    namespace: Option<String>,
    name: &str,
) -> Vec<ObjectRef<Release>> {
    releases
        .state()
        .iter()
        .filter(|r| r.namespace() == namespace && steers(r, kind, name))
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// Stream of Releases to reconcile because something they steer changed.
type Triggers = futures::stream::BoxStream<'static, Result<ObjectRef<Release>, watcher::Error>>;

fn triggers<K>(
    api: Api<K>,
    releases: Store<Release>,
    map: impl Fn(&Store<Release>, &K) -> Vec<ObjectRef<Release>> + Send + 'static,
) -> Triggers
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(strip_managed_fields)
        .touched_objects()
        .map(move |object| object.map(|o| map(&releases, &o)))
        .flat_map(|r| match r {
            Ok(refs) => futures::stream::iter(refs.into_iter().map(Ok)).boxed(),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        })
        .boxed()
}

/// Every steered-object watch, merged. HTTPRoutes are watched only when the
/// Gateway API is installed at start.
pub async fn watch(
    client: &Client,
    namespace: &Option<String>,
    releases: Store<Release>,
) -> impl Stream<Item = Result<ObjectRef<Release>, watcher::Error>> + Send + 'static {
    let services = triggers(
        scoped::<Service>(client, namespace),
        releases.clone(),
        |store, s: &Service| releases_steering(store, Steered::Service, s.namespace(), &s.name_any()),
    );
    let ingresses = triggers(
        scoped::<Ingress>(client, namespace),
        releases.clone(),
        |store, i: &Ingress| {
            // The canary Ingress is serin's own and names its Release; the stable one is the user's.
            let mut refs = releases_steering(store, Steered::Ingress, i.namespace(), &i.name_any());
            if let (Some(release), Some(ns)) = (i.labels().get(RELEASE_LABEL), i.namespace()) {
                refs.push(ObjectRef::new(release).within(&ns));
            }
            refs
        },
    );
    let mut all = vec![services, ingresses];
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    );
    let routes: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    match routes.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => all.push(triggers(routes, releases, |store, route: &DynamicObject| {
            releases_steering(store, Steered::HttpRoute, route.namespace(), &route.name_any())
        })),
        Err(error) => tracing::info!(%error, "not watching HTTPRoutes: the Gateway API is not served"),
    }
    futures::stream::select_all(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(strategy: serde_json::Value) -> Release {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
            "metadata": { "name": "web", "namespace": "apps" },
            "spec": {
                "replicas": 1,
                "selector": { "matchLabels": { "app": "web" } },
                "template": { "metadata": { "labels": { "app": "web" } },
                              "spec": { "containers": [{ "name": "web", "image": "web:1" }] } },
                "strategy": strategy
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_release_steers_the_objects_its_strategy_names() {
        let canary = release(serde_json::json!({ "canary": {
            "stableService": "web", "canaryService": "web-canary",
            "trafficRouting": { "gatewayAPI": { "httpRoutes": [{ "name": "route" }] } }
        }}));
        let nginx = release(serde_json::json!({ "canary": {
            "stableService": "web", "canaryService": "web-canary",
            "trafficRouting": { "nginx": { "ingress": "web" } }
        }}));
        let blue_green =
            release(serde_json::json!({ "blueGreen": { "activeService": "web", "previewService": "web-preview" } }));
        let rolling = release(serde_json::json!({ "rolling": {} }));
        let table = [
            (&canary, Steered::Service, "web", true),
            (&canary, Steered::Service, "web-canary", true),
            (&canary, Steered::Service, "other", false),
            (&canary, Steered::HttpRoute, "route", true),
            (&canary, Steered::HttpRoute, "web", false),
            (&canary, Steered::Ingress, "web", false),
            (&nginx, Steered::Ingress, "web", true),
            (&blue_green, Steered::Service, "web-preview", true),
            (&blue_green, Steered::Service, "web", true),
            (&blue_green, Steered::HttpRoute, "web", false),
            (&rolling, Steered::Service, "web", false),
        ];
        for (release, kind, name, want) in table {
            assert_eq!(
                steers(release, kind, name),
                want,
                "{kind:?} {name} by {:?}",
                release.spec.strategy.name()
            );
        }
    }
}
