//! Records every version of a canary's ReplicaSets, Services, route and Release
//! while a test runs, then replays them in the order they were written and
//! checks the traffic invariants at each one.
//!
//! Watches of different kinds deliver events in no common order. With one etcd,
//! though, an object's resourceVersion is etcd's global revision, so sorting by
//! it recovers the true order of writes across kinds.
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serin::api::{REVISION_LABEL, Release};

pub const STABLE: &str = "web";
pub const CANARY: &str = "web-canary";

/// One observed version of an object, reduced to what the invariants need.
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    ReplicaSet {
        name: String,
        revision: String,
        replicas: i32,
        available: i32,
    },
    ReplicaSetGone {
        name: String,
    },
    Service {
        name: String,
        revision: Option<String>,
    },
    /// (stable, canary) backendRef weights of the route's first rule of its
    /// own, and the steps (from 1) of the header and mirror rules serin added.
    Route((i64, i64), Vec<usize>, Acceptance),
    /// The revisions an Istio DestinationRule's stable and canary subsets select.
    Subsets(Option<String>, Option<String>),
    /// The canary Ingress's weight annotation, and the steps of its header route.
    CanaryIngress(i64, Vec<usize>),
    Release {
        step: Option<i32>,
        failed: Option<String>,
        /// The weight each step allows, by index; 100 past the end.
        caps: Vec<i32>,
        /// The route steps (from 1) each step allows, by index; none past the end.
        windows: Vec<Vec<usize>>,
        /// Blue-green: `replicas`, which the active Service's revision must have available.
        zero_downtime: Option<i32>,
    },
    /// Ready endpoints of one EndpointSlice of a Service.
    Endpoints {
        slice: String,
        service: String,
        ready: usize,
    },
    EndpointsGone {
        slice: String,
    },
}

/// A route's generation, and the oldest generation its gateways accept
/// (None when no gateway reports on it).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Acceptance {
    pub generation: i64,
    pub accepted: Option<i64>,
}

impl Acceptance {
    fn pending(&self) -> bool {
        self.accepted.is_some_and(|a| a < self.generation)
    }
}

/// The cluster as replayed up to one write.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct World {
    /// name -> (revision, spec replicas, available)
    pub replica_sets: BTreeMap<String, (String, i32, i32)>,
    /// Service name -> the revision it selects.
    pub services: BTreeMap<String, Option<String>>,
    /// (stable, canary) weights of the route, or of the canary Ingress (100 - w, w).
    pub weights: Option<(i64, i64)>,
    /// Steps (from 1) whose header or mirror routes the route carries.
    pub routes: Vec<usize>,
    pub acceptance: Acceptance,
    /// Istio subsets: the revisions the stable and canary shares reach instead of the Services'.
    pub subsets: Option<(Option<String>, Option<String>)>,
    pub step: Option<i32>,
    failed: Option<String>,
    caps: Vec<i32>,
    windows: Vec<Vec<usize>>,
    zero_downtime: Option<i32>,
    /// EndpointSlice name -> (Service, ready endpoints).
    pub endpoints: BTreeMap<String, (String, usize)>,
    /// Services that have had a ready endpoint.
    served: std::collections::BTreeSet<String>,
}

impl World {
    /// Spec replicas of `revision`'s ReplicaSet (0 when it has none).
    pub fn replicas(&self, revision: &str) -> i32 {
        self.replica_sets
            .values()
            .filter(|(r, _, _)| r == revision)
            .map(|(_, spec, _)| *spec)
            .sum()
    }

    fn available(&self, revision: &str) -> i32 {
        self.replica_sets
            .values()
            .filter(|(r, _, _)| r == revision)
            .map(|(_, _, available)| *available)
            .sum()
    }

    /// Ready endpoints of a Service, over its EndpointSlices.
    pub fn ready_endpoints(&self, service: &str) -> usize {
        self.endpoints
            .values()
            .filter(|(s, _)| s == service)
            .map(|(_, ready)| ready)
            .sum()
    }

    fn selected(&self, service: &str) -> Option<&String> {
        self.services.get(service).and_then(Option::as_ref)
    }

    /// Problems with this state, given the write that led to it.
    fn violations(&self, before: &World) -> Vec<String> {
        let mut found = Vec::new();
        let (stable_share, canary_share) = self.weights.unwrap_or((100, 0));
        if let Some((stable, canary)) = self.weights
            && stable + canary != 100
        {
            found.push(format!("weights {stable}/{canary} do not sum to 100"));
        }
        // A header or mirror route sends requests to the canary Service whatever the weight.
        let routed_share = if self.routes.is_empty() {
            canary_share
        } else {
            canary_share.max(1)
        };
        for (service, share) in [(STABLE, stable_share), (CANARY, routed_share)] {
            let subset = self
                .subsets
                .as_ref()
                .map(|(s, c)| if service == STABLE { s } else { c });
            if let Some(revision) = subset.map_or_else(|| self.selected(service), Option::as_ref)
                && share > 0
                && self.available(revision) == 0
            {
                found.push(format!(
                    "{service} takes {share}% but selects {revision}, which has no available pod"
                ));
            }
        }
        if self.acceptance.pending() {
            for (name, (revision, replicas, _)) in &self.replica_sets {
                let was = before.replica_sets.get(name).map_or(0, |(_, r, _)| *r);
                if *replicas < was {
                    found.push(format!(
                        "{revision} scaled down {was} -> {replicas} while the route's generation {} is accepted only at {:?}",
                        self.acceptance.generation, self.acceptance.accepted
                    ));
                }
            }
        }
        if let Some(failed) = &self.failed
            && self.replicas(failed) < before.replicas(failed)
            && canary_share > 0
            && self.selected(CANARY) == Some(failed)
        {
            found.push(format!(
                "aborted {failed} lost pods while taking {canary_share}% of traffic"
            ));
        }
        if let (Some(replicas), Some(active)) = (self.zero_downtime, self.selected(STABLE)) {
            let available = self.available(active);
            if available < replicas {
                found.push(format!(
                    "active Service selects {active} with {available} of {replicas} available"
                ));
            }
        }
        if self.zero_downtime.is_some() && self.served.contains(STABLE) && self.ready_endpoints(STABLE) == 0 {
            found.push("the active Service has no ready endpoint".into());
        }
        if let Some(step) = self.step {
            let allowed = usize::try_from(step).ok().and_then(|i| self.windows.get(i));
            let outside: Vec<&usize> = self
                .routes
                .iter()
                .filter(|r| allowed.is_none_or(|a| !a.contains(r)))
                .collect();
            if !outside.is_empty() {
                found.push(format!(
                    "routes of steps {outside:?} in place at step {step}, which allows {allowed:?}"
                ));
            }
            let cap = usize::try_from(step)
                .ok()
                .and_then(|i| self.caps.get(i))
                .copied()
                .unwrap_or(100);
            if canary_share > i64::from(cap) {
                found.push(format!(
                    "canary takes {canary_share}% at step {step}, which allows {cap}%"
                ));
            }
        }
        found
    }

    fn apply(&mut self, seen: &Seen) {
        match seen.clone() {
            Seen::ReplicaSet {
                name,
                revision,
                replicas,
                available,
            } => {
                self.replica_sets.insert(name, (revision, replicas, available));
            }
            Seen::ReplicaSetGone { name } => {
                self.replica_sets.remove(&name);
            }
            Seen::Service { name, revision } => {
                self.services.insert(name, revision);
            }
            Seen::Route((stable, canary), routes, acceptance) => {
                (self.weights, self.routes, self.acceptance) = (Some((stable, canary)), routes, acceptance)
            }
            Seen::Subsets(stable, canary) => self.subsets = Some((stable, canary)),
            Seen::CanaryIngress(canary, routes) => (self.weights, self.routes) = (Some((100 - canary, canary)), routes),
            Seen::Release {
                step,
                failed,
                caps,
                windows,
                zero_downtime,
            } => {
                self.step = step;
                self.failed = failed;
                self.caps = caps;
                self.windows = windows;
                self.zero_downtime = zero_downtime;
            }
            Seen::Endpoints { slice, service, ready } => {
                if ready > 0 {
                    self.served.insert(service.clone());
                }
                self.endpoints.insert(slice, (service, ready));
            }
            Seen::EndpointsGone { slice } => {
                self.endpoints.remove(&slice);
            }
        }
    }
}

/// Watches a canary's objects in a namespace until finished.
pub struct TrafficRecorder {
    records: Arc<Mutex<Vec<(u64, Seen)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    client: Client,
    namespace: String,
}

impl TrafficRecorder {
    /// Starts the watches; returns once each has listed the namespace.
    pub async fn start(client: &Client, namespace: &str) -> Self {
        Self::start_with(client, namespace, None).await
    }

    /// Also watches the test's own weight-carrying kind (the generic router's):
    /// `spec.services[]` of `{name, weight}`, as a TraefikService has them.
    pub async fn start_generic(client: &Client, namespace: &str, kind: &ApiResource) -> Self {
        Self::start_with(client, namespace, Some(kind)).await
    }

    async fn start_with(client: &Client, namespace: &str, generic: Option<&ApiResource>) -> Self {
        let records = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        let route_resource = |kind, plural| {
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind), plural)
        };
        let streams: Vec<(&str, Records)> = vec![
            (
                "ReplicaSets",
                watch(Api::<ReplicaSet>::namespaced(client.clone(), namespace), |rs, gone| {
                    let name = rs.metadata.name.clone().unwrap_or_default();
                    if gone {
                        return Some(Seen::ReplicaSetGone { name });
                    }
                    Some(Seen::ReplicaSet {
                        name,
                        revision: rs.metadata.labels.as_ref()?.get(REVISION_LABEL)?.clone(),
                        replicas: rs.spec.as_ref()?.replicas.unwrap_or(0),
                        available: rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0),
                    })
                }),
            ),
            (
                "Services",
                watch(Api::<Service>::namespaced(client.clone(), namespace), |svc, _| {
                    Some(Seen::Service {
                        name: svc.metadata.name.clone()?,
                        revision: svc.spec.as_ref()?.selector.as_ref()?.get(REVISION_LABEL).cloned(),
                    })
                }),
            ),
            (
                "HTTPRoutes",
                watch(
                    Api::<DynamicObject>::namespaced_with(
                        client.clone(),
                        namespace,
                        &route_resource("HTTPRoute", "httproutes"),
                    ),
                    route_seen,
                ),
            ),
            (
                "GRPCRoutes",
                watch(
                    Api::<DynamicObject>::namespaced_with(
                        client.clone(),
                        namespace,
                        &route_resource("GRPCRoute", "grpcroutes"),
                    ),
                    route_seen,
                ),
            ),
            (
                "Ingresses",
                watch(
                    Api::<Ingress>::namespaced(client.clone(), namespace),
                    |ingress, gone| {
                        let annotations = ingress.metadata.annotations.as_ref()?;
                        (annotations.get("nginx.ingress.kubernetes.io/canary")? == "true" && !gone).then_some(())?;
                        let weight = annotations
                            .get("nginx.ingress.kubernetes.io/canary-weight")?
                            .parse()
                            .ok()?;
                        let routes = annotations
                            .get("serin.dev/route-steps")
                            .map(|l| l.split(',').filter_map(|n| n.parse().ok()).collect())
                            .unwrap_or_default();
                        Some(Seen::CanaryIngress(weight, routes))
                    },
                ),
            ),
            (
                "Releases",
                watch(Api::<Release>::namespaced(client.clone(), namespace), |release, _| {
                    let status = release.status.as_ref();
                    let strategy = &release.spec.strategy;
                    let steps = strategy.canary.as_ref().map(|c| c.steps.clone()).unwrap_or_default();
                    let mut weight = 0;
                    let caps = steps
                        .iter()
                        .map(|s| {
                            weight = s.set_weight.unwrap_or(weight);
                            weight
                        })
                        .collect();
                    Some(Seen::Release {
                        step: status.and_then(|s| s.current_step_index),
                        failed: status.and_then(|s| s.failed_revision.clone()),
                        caps,
                        windows: route_windows(&steps),
                        zero_downtime: strategy.blue_green.as_ref().map(|_| release.spec.replicas),
                    })
                }),
            ),
            (
                "EndpointSlices",
                watch(
                    Api::<EndpointSlice>::namespaced(client.clone(), namespace),
                    |slice, gone| {
                        let name = slice.metadata.name.clone()?;
                        if gone {
                            return Some(Seen::EndpointsGone { slice: name });
                        }
                        let service = slice
                            .metadata
                            .labels
                            .as_ref()?
                            .get("kubernetes.io/service-name")?
                            .clone();
                        let ready = slice
                            .endpoints
                            .iter()
                            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
                            .count();
                        Some(Seen::Endpoints {
                            slice: name,
                            service,
                            ready,
                        })
                    },
                ),
            ),
        ];
        let mut streams = streams;
        let istio = |kind, plural| {
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("networking.istio.io", "v1", kind), plural)
        };
        streams.push((
            "VirtualServices",
            watch(
                Api::<DynamicObject>::namespaced_with(
                    client.clone(),
                    namespace,
                    &istio("VirtualService", "virtualservices"),
                ),
                virtual_service_seen,
            ),
        ));
        streams.push((
            "DestinationRules",
            watch(
                Api::<DynamicObject>::namespaced_with(
                    client.clone(),
                    namespace,
                    &istio("DestinationRule", "destinationrules"),
                ),
                destination_rule_seen,
            ),
        ));
        if let Some(kind) = generic {
            let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, kind);
            streams.push(("generic router objects", watch(api, generic_seen)));
        }
        for (what, mut stream) in streams {
            let records = records.clone();
            let (listed_tx, listed_rx) = tokio::sync::oneshot::channel();
            tasks.push(tokio::spawn(async move {
                let mut listed = Some(listed_tx);
                while let Some(item) = stream.next().await {
                    match item {
                        Some(record) => records.lock().unwrap().push(record),
                        None => {
                            if let Some(tx) = listed.take() {
                                let _ = tx.send(());
                            }
                        }
                    }
                }
            }));
            listed_rx
                .await
                .unwrap_or_else(|_| panic!("the {what} watch lists the namespace"));
        }
        Self {
            records,
            tasks,
            client: client.clone(),
            namespace: namespace.to_string(),
        }
    }

    /// Waits until the watches have delivered the version of every ReplicaSet
    /// and Service the API server has now: a test that saw the end state by a
    /// read must not replay a record that ends before it.
    async fn catch_up(&self) {
        let replica_sets = Api::<ReplicaSet>::namespaced(self.client.clone(), &self.namespace);
        let services = Api::<Service>::namespaced(self.client.clone(), &self.namespace);
        let params = kube::api::ListParams::default();
        let mut wanted: Vec<(String, u64)> = Vec::new();
        let version = |meta: &kube::api::ObjectMeta| meta.resource_version.as_ref().and_then(|v| v.parse().ok());
        for rs in replica_sets.list(&params).await.expect("list ReplicaSets") {
            let labelled = rs
                .metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(REVISION_LABEL));
            if let (true, Some(name), Some(rv)) = (labelled, rs.metadata.name.clone(), version(&rs.metadata)) {
                wanted.push((name, rv));
            }
        }
        for svc in services.list(&params).await.expect("list Services") {
            let selects = svc
                .spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_some_and(|s| s.contains_key(REVISION_LABEL));
            if let (true, Some(name), Some(rv)) = (selects, svc.metadata.name.clone(), version(&svc.metadata)) {
                wanted.push((name, rv));
            }
        }
        let seen = |records: &[(u64, Seen)], name: &str, rv: u64| {
            records.iter().any(|(at, seen)| {
                *at >= rv
                    && matches!(seen, Seen::ReplicaSet { name: n, .. } | Seen::ReplicaSetGone { name: n } | Seen::Service { name: n, .. } if n == name)
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let missing: Vec<&(String, u64)> = {
                let records = self.records.lock().unwrap();
                wanted.iter().filter(|(name, rv)| !seen(&records, name, *rv)).collect()
            };
            if missing.is_empty() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the watches never delivered {missing:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Every state in write order, with the invariant violations found on the way.
    pub fn replay(&self) -> (Vec<World>, Vec<String>) {
        replay_records(self.records.lock().unwrap().clone())
    }

    /// Stops watching and asserts the invariants held in every state; returns the states.
    pub async fn finish(self) -> Vec<World> {
        self.catch_up().await;
        for task in &self.tasks {
            task.abort();
        }
        let (states, violations) = self.replay();
        assert!(violations.is_empty(), "traffic invariants broken: {violations:#?}");
        states
    }
}

/// An Istio VirtualService: the weights of its first HTTP route of the
/// user's (by destination host, or subset), and the steps of serin's routes.
fn virtual_service_seen(vs: &DynamicObject, _gone: bool) -> Option<Seen> {
    let http = vs.data["spec"]["http"].as_array()?;
    let step_of = |route: &serde_json::Value| -> Option<usize> {
        route["name"]
            .as_str()?
            .strip_prefix("serin-step")?
            .split('-')
            .next()?
            .parse()
            .ok()
    };
    let mut routes: Vec<usize> = http.iter().filter_map(step_of).collect();
    routes.dedup();
    let destinations = http.iter().find(|r| step_of(r).is_none())?["route"].as_array()?;
    let weight = |stable: bool| {
        destinations
            .iter()
            .find(|d| {
                let d = &d["destination"];
                match d["subset"].as_str() {
                    Some(subset) => (subset == "stable") == stable,
                    None => d["host"]
                        .as_str()
                        .is_some_and(|h| h.split('.').next() == Some(if stable { STABLE } else { CANARY })),
                }
            })
            .map(|d| d["weight"].as_i64().unwrap_or(0))
    };
    Some(Seen::Route(
        (weight(true)?, weight(false)?),
        routes,
        Acceptance::default(),
    ))
}

/// An Istio DestinationRule with subsets named stable and canary.
fn destination_rule_seen(dr: &DynamicObject, _gone: bool) -> Option<Seen> {
    let subsets = dr.data["spec"]["subsets"].as_array()?;
    let revision = |name: &str| {
        let subset = subsets.iter().find(|s| s["name"] == name)?;
        subset["labels"][REVISION_LABEL].as_str().map(String::from)
    };
    Some(Seen::Subsets(revision("stable"), revision("canary")))
}

/// The weights of the generic router's test kind: `spec.services[]` by name.
fn generic_seen(object: &DynamicObject, _gone: bool) -> Option<Seen> {
    let services = object.data["spec"]["services"].as_array()?;
    let weight = |name: &str| services.iter().find(|s| s["name"] == name)?["weight"].as_i64();
    Some(Seen::Route(
        (weight(STABLE)?, weight(CANARY)?),
        Vec::new(),
        Acceptance::default(),
    ))
}

/// A Gateway API route: the weights of its first rule of the user's, and the
/// steps of the rules serin added (`serin-step<N>-...`).
fn route_seen(route: &DynamicObject, _gone: bool) -> Option<Seen> {
    let rules = route.data["spec"]["rules"].as_array()?;
    let step_of = |rule: &serde_json::Value| -> Option<usize> {
        let rest = rule["name"].as_str()?.strip_prefix("serin-step")?;
        rest.split('-').next()?.parse().ok()
    };
    let mut routes: Vec<usize> = rules.iter().filter_map(step_of).collect();
    routes.dedup();
    let refs = rules.iter().find(|r| step_of(r).is_none())?["backendRefs"].as_array()?;
    let weight = |name: &str| {
        refs.iter()
            .find(|r| r["name"] == name)
            .map(|r| r["weight"].as_i64().unwrap_or(1))
    };
    let accepted = route.data["status"]["parents"].as_array().and_then(|parents| {
        parents
            .iter()
            .map(|p| {
                let conditions = p["conditions"].as_array()?;
                let c = conditions
                    .iter()
                    .find(|c| c["type"] == "Accepted" && c["status"] == "True")?;
                c["observedGeneration"].as_i64()
            })
            .map(|g| g.unwrap_or(0))
            .min()
    });
    let acceptance = Acceptance {
        generation: route.metadata.generation.unwrap_or(0),
        accepted,
    };
    Some(Seen::Route((weight(STABLE)?, weight(CANARY)?), routes, acceptance))
}

/// The route steps (from 1) each step allows: a route named N, from the step
/// that last set N up to the step that removes it; nothing past the last step.
/// Written apart from serin's planner, as the oracle it is checked against.
fn route_windows(steps: &[serin::api::CanaryStep]) -> Vec<Vec<usize>> {
    let mut in_force: Vec<(String, usize)> = Vec::new();
    let mut windows = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let (name, sets) = match (&step.set_header_route, &step.set_mirror_route) {
            (Some(h), _) => (h.name.clone(), !h.matches.is_empty()),
            (_, Some(m)) => (m.name.clone(), !m.matches.is_empty() || m.percentage.is_some()),
            _ => {
                windows.push(in_force.iter().map(|(_, s)| *s).collect());
                continue;
            }
        };
        in_force.retain(|(n, _)| *n != name);
        if sets {
            in_force.push((name, i + 1));
        }
        windows.push(in_force.iter().map(|(_, s)| *s).collect());
    }
    windows
}

/// Every state in resourceVersion order, with the invariant violations found on the way.
fn replay_records(mut records: Vec<(u64, Seen)>) -> (Vec<World>, Vec<String>) {
    records.sort_by_key(|(rv, _)| *rv);
    let mut world = World::default();
    let mut states = Vec::new();
    let mut violations = Vec::new();
    for (rv, seen) in &records {
        let before = world.clone();
        world.apply(seen);
        for problem in world.violations(&before) {
            violations.push(format!("at resourceVersion {rv} ({seen:?}): {problem}"));
        }
        if states.last() != Some(&world) {
            states.push(world.clone());
        }
    }
    (states, violations)
}

/// (resourceVersion, Seen) records of one watch; None marks the end of the initial list.
type Records = futures::stream::BoxStream<'static, Option<(u64, Seen)>>;

/// A watch reduced to records.
fn watch<K>(api: Api<K>, reduce: fn(&K, bool) -> Option<Seen>) -> Records
where
    K: Resource + Clone + Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let versioned = move |object: &K, gone: bool| {
        let rv = object.meta().resource_version.as_ref()?.parse().ok()?;
        Some((rv, reduce(object, gone)?))
    };
    let events = watcher(api, watcher::Config::default()).default_backoff();
    let stream: std::pin::Pin<Box<dyn Stream<Item = _> + Send>> = Box::pin(events.filter_map(move |event| {
        let item = match event {
            Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::InitApply(o)) => versioned(&o, false).map(Some),
            Ok(watcher::Event::Delete(o)) => versioned(&o, true).map(Some),
            Ok(watcher::Event::InitDone) => Some(None),
            _ => None,
        };
        futures::future::ready(item)
    }));
    stream
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(records: Vec<Seen>) -> Vec<String> {
        replay_records(records.into_iter().enumerate().map(|(i, s)| (i as u64, s)).collect()).1
    }

    fn rs(revision: &str, replicas: i32, available: i32) -> Seen {
        Seen::ReplicaSet {
            name: format!("web-{revision}"),
            revision: revision.into(),
            replicas,
            available,
        }
    }

    fn selects(service: &str, revision: &str) -> Seen {
        Seen::Service {
            name: service.into(),
            revision: Some(revision.into()),
        }
    }

    fn release(step: i32, failed: Option<&str>) -> Seen {
        Seen::Release {
            step: Some(step),
            failed: failed.map(Into::into),
            caps: vec![20, 20, 50],
            windows: vec![vec![], vec![2], vec![]],
            zero_downtime: None,
        }
    }

    #[test]
    fn a_route_is_allowed_from_the_step_that_sets_it_to_the_one_that_removes_it() {
        let steps: Vec<serin::api::CanaryStep> = serde_json::from_value(serde_json::json!([
            { "setHeaderRoute": { "name": "a", "match": [{ "headerName": "x", "headerValue": { "exact": "1" } }] } },
            { "setMirrorRoute": { "name": "m", "percentage": 5 } },
            { "setHeaderRoute": { "name": "a" } },
            { "pause": {} },
        ]))
        .unwrap();
        assert_eq!(route_windows(&steps), vec![vec![1], vec![1, 2], vec![2], vec![2]]);
    }

    #[test]
    fn the_replay_catches_each_broken_invariant() {
        let healthy = || {
            vec![
                rs("v1", 4, 4),
                rs("v2", 1, 1),
                selects(STABLE, "v1"),
                selects(CANARY, "v2"),
            ]
        };
        let cases = [
            (
                vec![Seen::Route((90, 20), vec![], Acceptance::default())],
                "do not sum to 100",
            ),
            (
                vec![
                    release(0, None),
                    Seen::Route((80, 20), vec![], Acceptance::default()),
                    rs("v2", 1, 0),
                ],
                "which has no available pod",
            ),
            (
                vec![
                    release(1, None),
                    Seen::Route((80, 20), vec![], Acceptance::default()),
                    release(1, Some("v2")),
                    rs("v2", 0, 0),
                ],
                "lost pods while taking 20%",
            ),
            (
                vec![release(1, None), Seen::Route((50, 50), vec![], Acceptance::default())],
                "which allows 20%",
            ),
            (
                vec![release(0, None), Seen::Route((100, 0), vec![2], Acceptance::default())],
                "routes of steps [2] in place at step 0",
            ),
            (
                vec![
                    release(1, None),
                    Seen::Route((100, 0), vec![2], Acceptance::default()),
                    release(2, None),
                ],
                "routes of steps [2] in place at step 2",
            ),
            (
                vec![
                    Seen::Route(
                        (100, 0),
                        vec![],
                        Acceptance {
                            generation: 3,
                            accepted: Some(2),
                        },
                    ),
                    rs("v1", 3, 3),
                ],
                "v1 scaled down 4 -> 3 while the route's generation 3 is accepted only at Some(2)",
            ),
            (
                vec![
                    release(1, None),
                    Seen::Route((100, 0), vec![2], Acceptance::default()),
                    rs("v2", 1, 0),
                ],
                "web-canary takes 1% but selects v2, which has no available pod",
            ),
        ];
        for (tail, needle) in cases {
            let violations = replay(healthy().into_iter().chain(tail).collect());
            assert!(
                violations.iter().any(|v| v.contains(needle)),
                "{needle}: {violations:?}"
            );
        }
        let blue_green = Seen::Release {
            step: None,
            failed: None,
            caps: Vec::new(),
            windows: Vec::new(),
            zero_downtime: Some(4),
        };
        let endpoints = |ready| Seen::Endpoints {
            slice: "web-abc".into(),
            service: STABLE.into(),
            ready,
        };
        let switched_early = vec![blue_green.clone(), rs("v2", 4, 3), selects(STABLE, "v2")];
        let violations = replay(healthy().into_iter().chain(switched_early).collect());
        assert!(
            violations.iter().any(|v| v.contains("with 3 of 4 available")),
            "{violations:?}"
        );
        let emptied = vec![blue_green, endpoints(4), endpoints(0), endpoints(4)];
        let violations = replay(healthy().into_iter().chain(emptied).collect());
        assert!(
            violations.iter().any(|v| v.contains("no ready endpoint")),
            "{violations:?}"
        );

        let safe = vec![
            release(1, None),
            Seen::Route((80, 20), vec![], Acceptance::default()),
            Seen::Route((100, 0), vec![], Acceptance::default()),
            selects(CANARY, "v1"),
            rs("v2", 0, 0),
        ];
        assert_eq!(
            replay(healthy().into_iter().chain(safe).collect()),
            Vec::<String>::new()
        );
    }
}
