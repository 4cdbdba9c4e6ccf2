//! The objects a Release steers but does not own (Services, and what its
//! router reads: HTTPRoutes, the stable Ingress) and those its router owns (the
//! canary Ingress), watched so that an outside edit of a selector or weight is
//! put back at once, not at the next rollout. The kinds and names come from
//! `traffic::ROUTERS`, so the code here names no router (only its tests do).
//!
//! No cache is kept: each event is mapped to the Releases that name the object
//! and dropped, so memory does not grow with the cluster's Services.
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{DynamicObject, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use super::trim::CachedRelease;
use super::{scope, trim};
use crate::api::{RELEASE_LABEL, Release};
use crate::plan::snapshot::{self, Source};
use crate::traffic::{self, ObjectKind, Watched};

/// What kind of object an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Steered {
    /// The strategy's Services.
    Service,
    /// A kind a traffic router reads or writes.
    Routed(ObjectKind),
    /// A ConfigMap or Secret the pods read, with `spec.configSnapshots`: a
    /// change rolls out a new revision.
    Config(Source),
    /// The Deployment of `spec.workloadRef`: its template and its pods.
    Workload,
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
        Steered::Routed(kind) => traffic::steers(release, &kind, name),
        Steered::Workload => release.spec.workload_ref.as_ref().is_some_and(|w| w.name == name),
        Steered::Config(source) => release.spec.config_snapshots.as_ref().is_some_and(|opted| {
            // With workloadRef the template is the Deployment's, which is not
            // kept here: any ConfigMap (or Secret) of the namespace may be its.
            release.spec.workload_ref.is_some()
                || snapshot::references(&release.spec.template, opted).contains_key(&(source, name.into()))
        }),
    }
}

/// The Releases in `namespace` that steer the object.
fn releases_steering(
    releases: &Store<CachedRelease>,
    kind: Steered,
    namespace: Option<String>,
    name: &str,
) -> Vec<ObjectRef<CachedRelease>> {
    releases
        .state()
        .iter()
        .filter(|r| r.namespace() == namespace)
        .filter(|r| r.spec_mentions(name) || (matches!(kind, Steered::Config(_)) && r.spec_mentions("workloadRef")))
        .filter(|r| r.release().is_ok_and(|release| steers(&release, kind, name)))
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// The Releases a router object's event is for: those naming it, and for a
/// labelled kind the Release its label names (serin created the object).
fn releases_routed_by(
    releases: &Store<CachedRelease>,
    watched: Watched,
    object: &DynamicObject,
) -> Vec<ObjectRef<CachedRelease>> {
    let namespace = object.namespace();
    let mut refs = releases_steering(
        releases,
        Steered::Routed(watched.kind),
        namespace.clone(),
        &object.name_any(),
    );
    if let (true, Some(release), Some(ns)) = (watched.labelled, object.labels().get(RELEASE_LABEL), namespace) {
        refs.push(ObjectRef::new(release).within(&ns));
    }
    refs
}

/// Stream of Releases to reconcile because something they steer changed.
type Triggers = futures::stream::BoxStream<'static, Result<ObjectRef<CachedRelease>, watcher::Error>>;

fn triggers<K>(
    api: Api<K>,
    releases: Store<CachedRelease>,
    map: impl Fn(&Store<CachedRelease>, &K) -> Vec<ObjectRef<CachedRelease>> + Send + 'static,
) -> Triggers
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(trim::managed_fields)
        .touched_objects()
        .map(move |object| object.map(|o| map(&releases, &o)))
        .flat_map(|r| match r {
            Ok(refs) => futures::stream::iter(refs.into_iter().map(Ok)).boxed(),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        })
        .boxed()
}

/// Every steered-object watch, merged: Services, ConfigMaps (and the Secrets
/// of `secrets_in`) for config snapshots, and each kind a router reads or
/// writes, once, when the cluster serves it at start; in each watched
/// namespace (`namespaces`; empty for all).
pub async fn watch(
    client: &Client,
    namespaces: &[String],
    releases: Store<CachedRelease>,
    secrets_in: &[String],
    generic: &[String],
) -> impl Stream<Item = Result<ObjectRef<CachedRelease>, watcher::Error>> + Send + 'static {
    let mut all: Vec<Triggers> = scope::apis::<Service>(client, namespaces)
        .into_iter()
        .map(|services| {
            triggers(services, releases.clone(), |store, s: &Service| {
                releases_steering(store, Steered::Service, s.namespace(), &s.name_any())
            })
        })
        .collect();
    // Metadata only: a change of data moves the resourceVersion, and the
    // round reads the object itself.
    all.extend(
        scope::apis::<PartialObjectMeta<ConfigMap>>(client, namespaces)
            .into_iter()
            .map(|api| {
                triggers(api, releases.clone(), |store, o: &PartialObjectMeta<ConfigMap>| {
                    releases_steering(store, Steered::Config(Source::ConfigMap), o.namespace(), &o.name_any())
                })
            }),
    );
    all.extend(
        scope::apis::<PartialObjectMeta<Deployment>>(client, namespaces)
            .into_iter()
            .map(|api| {
                triggers(api, releases.clone(), |store, o: &PartialObjectMeta<Deployment>| {
                    releases_steering(store, Steered::Workload, o.namespace(), &o.name_any())
                })
            }),
    );
    // Secrets only where the controller may watch them: never all namespaces.
    if !secrets_in.is_empty() {
        all.extend(
            scope::apis::<PartialObjectMeta<Secret>>(client, secrets_in)
                .into_iter()
                .map(|api| {
                    triggers(api, releases.clone(), |store, o: &PartialObjectMeta<Secret>| {
                        releases_steering(store, Steered::Config(Source::Secret), o.namespace(), &o.name_any())
                    })
                }),
        );
    }
    for watched in traffic::watched_kinds() {
        let resource = watched.kind.api_resource();
        let apis = scope::dynamic_apis(client, namespaces, &resource);
        let Some(first) = apis.first() else { continue };
        match first.list_metadata(&ListParams::default().limit(1)).await {
            Ok(_) => all.extend(apis.into_iter().map(|objects| {
                triggers(objects, releases.clone(), move |store, object| {
                    releases_routed_by(store, watched, object)
                })
            })),
            Err(error) => tracing::info!(
                %error,
                "not watching {}: {} is not served",
                watched.kind.plural,
                resource.api_version
            ),
        }
    }
    for text in generic {
        let Some(resource) = traffic::generic::watched(text) else {
            tracing::warn!("not watching {text:?}: --watch-generic takes group/version/resource");
            continue;
        };
        let apis = scope::dynamic_apis(client, namespaces, &resource);
        let Some(first) = apis.first() else { continue };
        if let Err(error) = first.list_metadata(&ListParams::default().limit(1)).await {
            tracing::info!(%error, "not watching {text}: it is not served, or not listable");
            continue;
        }
        all.extend(apis.into_iter().map(|objects| {
            let resource = resource.clone();
            triggers(objects, releases.clone(), move |store, object: &DynamicObject| {
                releases_driving(store, &resource, object)
            })
        }));
    }
    futures::stream::select_all(all)
}

/// The Releases whose `trafficRouting.generic` drives the object.
fn releases_driving(
    releases: &Store<CachedRelease>,
    resource: &kube::api::ApiResource,
    object: &DynamicObject,
) -> Vec<ObjectRef<CachedRelease>> {
    let (namespace, name) = (object.namespace(), object.name_any());
    releases
        .state()
        .iter()
        .filter(|r| r.namespace() == namespace && r.spec_mentions(&name))
        .filter(|r| {
            r.release().is_ok_and(|release| {
                let canary = release.spec.strategy.canary.as_ref();
                let generic = canary
                    .and_then(|c| c.traffic_routing.as_ref())
                    .and_then(|t| t.generic.as_ref());
                generic.is_some_and(|g| traffic::generic::drives(g, resource, &name))
            })
        })
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
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
        const HTTP_ROUTE: Steered = Steered::Routed(crate::traffic::gateway_api::HTTP_ROUTE);
        const INGRESS: Steered = Steered::Routed(crate::traffic::nginx::INGRESS);
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
            (&canary, HTTP_ROUTE, "route", true),
            (&canary, HTTP_ROUTE, "web", false),
            (&canary, INGRESS, "web", false),
            (&nginx, INGRESS, "web", true),
            (&blue_green, Steered::Service, "web-preview", true),
            (&blue_green, Steered::Service, "web", true),
            (&blue_green, HTTP_ROUTE, "web", false),
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

    #[test]
    fn a_router_object_triggers_the_releases_naming_it_and_the_one_its_label_names() {
        use crate::traffic::{gateway_api::HTTP_ROUTE, nginx::INGRESS};
        let (store, mut writer) = kube::runtime::reflector::store();
        writer.apply_watcher_event(&watcher::Event::Apply(CachedRelease::of(&release(
            serde_json::json!({ "canary": {
                "stableService": "web", "canaryService": "web-canary",
                "trafficRouting": { "nginx": { "ingress": "stable" } }
            }}),
        ))));
        let object = |kind: ObjectKind, namespace: &str, name: &str, label: Option<&str>| {
            let mut object = DynamicObject::new(name, &kind.api_resource()).within(namespace);
            if let Some(release) = label {
                object.labels_mut().insert(RELEASE_LABEL.into(), release.into());
            }
            object
        };
        let watched = |kind, labelled| Watched { kind, labelled };
        let web = ObjectRef::<CachedRelease>::new("web").within("apps");
        let table = [
            (
                "the stable Ingress",
                watched(INGRESS, true),
                object(INGRESS, "apps", "stable", None),
                vec![web.clone()],
            ),
            (
                "elsewhere",
                watched(INGRESS, true),
                object(INGRESS, "other", "stable", None),
                vec![],
            ),
            (
                "another Ingress",
                watched(INGRESS, true),
                object(INGRESS, "apps", "api", None),
                vec![],
            ),
            (
                "the canary Ingress, by its label",
                watched(INGRESS, true),
                object(INGRESS, "apps", "web-stable-canary", Some("web")),
                vec![web.clone()],
            ),
            (
                "a label names a Release not in the cache",
                watched(INGRESS, true),
                object(INGRESS, "other", "x-canary", Some("x")),
                vec![ObjectRef::new("x").within("other")],
            ),
            (
                "a label on an unlabelled kind",
                watched(HTTP_ROUTE, false),
                object(HTTP_ROUTE, "apps", "route", Some("web")),
                vec![],
            ),
        ];
        for (case, watched, object, want) in table {
            assert_eq!(releases_routed_by(&store, watched, &object), want, "{case}");
        }
    }
}
