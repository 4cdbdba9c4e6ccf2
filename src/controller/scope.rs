//! The namespaces the controller watches: all of them, or a list, with one
//! watch per namespace (a Role per namespace grants no cluster-wide watch).
//!
//! A reflector's Writer takes a relist (`Init` .. `InitDone`) as the whole
//! truth and replaces its store with it, so several namespaces' watches must
//! not feed one Writer as they are: one namespace's relist would drop every
//! other namespace's objects (kube-state-metrics had this bug,
//! kubernetes/kube-state-metrics#942). [`reflect`] merges them into the one
//! watcher stream a single watch over those namespaces would give.
use std::collections::{HashMap, HashSet};

use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{Store, store::Writer};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};

/// One Api per watched namespace; empty `namespaces` means all namespaces, one Api.
pub fn apis<K>(client: &Client, namespaces: &[String]) -> Vec<Api<K>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    if namespaces.is_empty() {
        return vec![Api::all(client.clone())];
    }
    namespaces
        .iter()
        .map(|ns| Api::namespaced(client.clone(), ns))
        .collect()
}

/// [`apis`] for a kind known at run time.
pub fn dynamic_apis(client: &Client, namespaces: &[String], resource: &ApiResource) -> Vec<Api<DynamicObject>> {
    if namespaces.is_empty() {
        return vec![Api::all_with(client.clone(), resource)];
    }
    namespaces
        .iter()
        .map(|ns| Api::namespaced_with(client.clone(), ns, resource))
        .collect()
}

type Events<K> = BoxStream<'static, watcher::Result<Event<K>>>;

/// Feeds `writer` from one watcher stream per namespace (each made by `watch`
/// from its Api), as if from one watch over them all: the store is ready once
/// every namespace has listed, and a namespace's relist replaces only that
/// namespace's objects. The stream passes on the events the store took in.
pub fn reflect<K, S>(
    writer: Writer<K>,
    apis: Vec<Api<K>>,
    watch: impl Fn(Api<K>) -> S,
) -> impl Stream<Item = watcher::Result<Event<K>>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    S: Stream<Item = watcher::Result<Event<K>>> + Send + 'static,
{
    let mut streams: Vec<(String, Events<K>)> = apis
        .into_iter()
        .map(|api| (api.namespace().unwrap_or_default().to_string(), watch(api).boxed()))
        .collect();
    let merged: Events<K> = if streams.len() == 1 {
        streams.remove(0).1
    } else {
        merge(streams, writer.as_reader()).boxed()
    };
    merged.reflect(writer)
}

/// The merge of per-namespace watcher streams; `store` is the store the
/// result is reflected into, read for the objects a relist found gone.
fn merge<K>(streams: Vec<(String, Events<K>)>, store: Store<K>) -> impl Stream<Item = watcher::Result<Event<K>>>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let mut merging = Merging::new(streams.iter().map(|(ns, _)| ns.clone()), store);
    let tagged = streams
        .into_iter()
        .map(|(ns, events)| events.map(move |event| (ns.clone(), event)).boxed());
    stream::select_all(tagged)
        .map(move |(ns, event)| stream::iter(merging.step(&ns, event)))
        .flatten()
}

/// Where one namespace's watch is in its list.
enum Listing<K> {
    /// Before the merged store is ready: the objects listed so far, by name,
    /// and whether this namespace's list has ended.
    First { objects: HashMap<String, K>, done: bool },
    /// After the store is ready; during a relist, the names listed so far.
    Live { relisting: Option<HashSet<String>> },
}

struct Merging<K: Resource<DynamicType = ()> + 'static> {
    namespaces: HashMap<String, Listing<K>>,
    store: Store<K>,
    /// The merged list has ended: the store holds every namespace.
    ready: bool,
}

impl<K> Merging<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    fn new(namespaces: impl Iterator<Item = String>, store: Store<K>) -> Self {
        let first = || Listing::First {
            objects: HashMap::new(),
            done: false,
        };
        Merging {
            namespaces: namespaces.map(|ns| (ns, first())).collect(),
            store,
            ready: false,
        }
    }

    /// What the Writer gets for `event` of `namespace`'s watch.
    fn step(&mut self, namespace: &str, event: watcher::Result<Event<K>>) -> Vec<watcher::Result<Event<K>>> {
        let Ok(event) = event else {
            return vec![event];
        };
        let Some(listing) = self.namespaces.get_mut(namespace) else {
            return vec![];
        };
        match (listing, event) {
            // The first list, which a watch may restart (Init again) before it ends.
            (Listing::First { objects, done }, Event::Init) => {
                objects.clear();
                *done = false;
                vec![]
            }
            (Listing::First { objects, .. }, Event::InitApply(object) | Event::Apply(object)) => {
                objects.insert(object.name_any(), object);
                vec![]
            }
            (Listing::First { objects, .. }, Event::Delete(object)) => {
                objects.remove(&object.name_any());
                vec![]
            }
            (Listing::First { done, .. }, Event::InitDone) => {
                *done = true;
                self.first_list_if_complete()
            }
            // A relist once the store is ready: its objects apply one by one,
            // and those it no longer has are deleted when it ends.
            (Listing::Live { relisting }, Event::Init) => {
                *relisting = Some(HashSet::new());
                vec![]
            }
            (Listing::Live { relisting }, Event::InitApply(object)) => {
                if let Some(seen) = relisting {
                    seen.insert(object.name_any());
                }
                vec![Ok(Event::Apply(object))]
            }
            (Listing::Live { relisting }, Event::InitDone) => {
                let seen = relisting.take().unwrap_or_default();
                let gone = self.store.state_filter(|object| {
                    object.namespace().as_deref() == Some(namespace) && !seen.contains(&object.name_any())
                });
                gone.into_iter()
                    .map(|object| Ok(Event::Delete(object.as_ref().clone())))
                    .collect()
            }
            (Listing::Live { .. }, event @ (Event::Apply(_) | Event::Delete(_))) => vec![Ok(event)],
        }
    }

    /// Once every namespace has listed: the merged list, for the Writer to
    /// take in at once.
    fn first_list_if_complete(&mut self) -> Vec<watcher::Result<Event<K>>> {
        let complete = self
            .namespaces
            .values()
            .all(|listing| matches!(listing, Listing::First { done: true, .. }));
        if self.ready || !complete {
            return vec![];
        }
        self.ready = true;
        let mut events = vec![Ok(Event::Init)];
        for listing in self.namespaces.values_mut() {
            if let Listing::First { objects, .. } = std::mem::replace(listing, Listing::Live { relisting: None }) {
                events.extend(objects.into_values().map(|object| Ok(Event::InitApply(object))));
            }
        }
        events.push(Ok(Event::InitDone));
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::mpsc;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector;

    fn config_map(namespace: &str, name: &str) -> ConfigMap {
        let mut object = ConfigMap::default();
        object.metadata.namespace = Some(namespace.into());
        object.metadata.name = Some(name.into());
        object
    }

    /// Two namespaces' event streams, fed by hand, into one store.
    struct Bed {
        a: mpsc::UnboundedSender<watcher::Result<Event<ConfigMap>>>,
        b: mpsc::UnboundedSender<watcher::Result<Event<ConfigMap>>>,
        store: Store<ConfigMap>,
        merged: Events<ConfigMap>,
    }

    impl Bed {
        fn new() -> Self {
            let (store, writer) = reflector::store();
            let (a, a_rx) = mpsc::unbounded();
            let (b, b_rx) = mpsc::unbounded();
            let streams: Vec<(String, Events<ConfigMap>)> =
                vec![("a".into(), a_rx.boxed()), ("b".into(), b_rx.boxed())];
            let merged = merge(streams, store.clone()).reflect(writer).boxed();
            Bed { a, b, store, merged }
        }

        /// Sends the events, then takes every event the store received for them.
        async fn feed(&mut self, events: Vec<(&str, Event<ConfigMap>)>) -> Vec<String> {
            for (ns, event) in events {
                let tx = if ns == "a" { &self.a } else { &self.b };
                tx.unbounded_send(Ok(event)).unwrap();
            }
            let mut out = Vec::new();
            while let Some(Some(Ok(event))) = self.merged.next().now_or_never() {
                out.push(describe(&event));
            }
            out
        }

        fn names(&self) -> Vec<String> {
            let mut names: Vec<String> = self
                .store
                .state()
                .iter()
                .map(|o| format!("{}/{}", o.namespace().unwrap(), o.name_any()))
                .collect();
            names.sort();
            names
        }
    }

    use futures::FutureExt;

    fn describe(event: &Event<ConfigMap>) -> String {
        let name = |o: &ConfigMap| format!("{}/{}", o.namespace().unwrap(), o.name_any());
        match event {
            Event::Init => "Init".into(),
            Event::InitApply(o) => format!("InitApply {}", name(o)),
            Event::InitDone => "InitDone".into(),
            Event::Apply(o) => format!("Apply {}", name(o)),
            Event::Delete(o) => format!("Delete {}", name(o)),
        }
    }

    #[tokio::test]
    async fn the_store_is_ready_once_every_namespace_has_listed() {
        let mut bed = Bed::new();
        let out = bed
            .feed(vec![
                ("a", Event::Init),
                ("a", Event::InitApply(config_map("a", "one"))),
                ("a", Event::InitDone),
                ("a", Event::Apply(config_map("a", "two"))),
                ("b", Event::Init),
                ("b", Event::InitApply(config_map("b", "gone"))),
                ("b", Event::Init), // the list restarted before it ended
                ("b", Event::InitApply(config_map("b", "three"))),
            ])
            .await;
        assert!(out.is_empty(), "nothing before every namespace listed: {out:?}");
        assert!(bed.store.wait_until_ready().now_or_never().is_none());
        let mut out = bed.feed(vec![("b", Event::InitDone)]).await;
        out[1..4].sort();
        assert_eq!(
            out,
            [
                "Init",
                "InitApply a/one",
                "InitApply a/two",
                "InitApply b/three",
                "InitDone"
            ]
        );
        assert!(bed.store.wait_until_ready().now_or_never().is_some());
        assert_eq!(bed.names(), ["a/one", "a/two", "b/three"]);
    }

    #[tokio::test]
    async fn a_relist_of_one_namespace_replaces_only_that_namespaces_objects() {
        let mut bed = Bed::new();
        bed.feed(vec![
            ("a", Event::Init),
            ("a", Event::InitApply(config_map("a", "one"))),
            ("a", Event::InitApply(config_map("a", "deleted-meanwhile"))),
            ("a", Event::InitDone),
            ("b", Event::Init),
            ("b", Event::InitApply(config_map("b", "two"))),
            ("b", Event::InitDone),
        ])
        .await;
        let out = bed
            .feed(vec![
                ("a", Event::Init),
                ("a", Event::InitApply(config_map("a", "one"))),
                ("a", Event::InitApply(config_map("a", "new"))),
                ("a", Event::InitDone),
            ])
            .await;
        assert_eq!(out, ["Apply a/one", "Apply a/new", "Delete a/deleted-meanwhile"]);
        assert_eq!(bed.names(), ["a/new", "a/one", "b/two"]);
        let out = bed
            .feed(vec![
                ("b", Event::Delete(config_map("b", "two"))),
                ("a", Event::Apply(config_map("a", "three"))),
            ])
            .await;
        assert_eq!(out, ["Delete b/two", "Apply a/three"]);
        assert_eq!(bed.names(), ["a/new", "a/one", "a/three"]);
    }
}
