//! What the watch caches keep of each object: only what serin reads, so that
//! memory grows by as little as possible per Release. A cached object is never
//! written back (every write builds its own body), so nothing trimmed is lost.
use std::borrow::Cow;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::api::Release;

/// kubectl's copy of the whole object as last applied: as large as the spec
/// again, and never read by serin.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Written by the API server for every field manager; never read by serin.
pub fn managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// A Release as the cache keeps it: its metadata decoded, its spec and status
/// as the compact JSON the API server sent, decoded for the round that needs
/// them. k8s-openapi's pod template types are large even when mostly empty (a
/// decoded Release with one container is 9.6 kB; its JSON is 2 kB), and a
/// fleet's Releases sit in the cache between rounds.
#[derive(Clone, Debug, Deserialize)]
pub struct CachedRelease {
    pub metadata: ObjectMeta,
    spec: Box<RawValue>,
    #[serde(default)]
    status: Option<Box<RawValue>>,
}

impl CachedRelease {
    /// The whole Release. Err when the stored object does not decode as this
    /// serin's Release (an object the API server accepted under another
    /// schema): only that Release is affected, not the watch.
    pub fn release(&self) -> Result<Release, serde_json::Error> {
        let mut release = Release::new(
            self.metadata.name.as_deref().unwrap_or_default(),
            serde_json::from_str(self.spec.get())?,
        );
        release.metadata = self.metadata.clone();
        release.status = match &self.status {
            Some(status) => serde_json::from_str(status.get())?,
            None => None,
        };
        Ok(release)
    }

    /// Whether the spec names `name` as a JSON string anywhere: a cheap test
    /// before decoding it, for watches that look for Releases naming an object.
    pub fn spec_mentions(&self, name: &str) -> bool {
        serde_json::to_string(name).is_ok_and(|quoted| self.spec.get().contains(&quoted))
    }

    /// What the cache keeps of `release`, as the watch decodes it.
    #[cfg(test)]
    pub fn of(release: &Release) -> Self {
        let json = serde_json::to_string(release).expect("a Release encodes");
        let mut cached: CachedRelease = serde_json::from_str(&json).expect("and decodes");
        self::release(&mut cached);
        cached
    }
}

impl Resource for CachedRelease {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Release::kind(&())
    }
    fn group(_: &()) -> Cow<'_, str> {
        Release::group(&())
    }
    fn version(_: &()) -> Cow<'_, str> {
        Release::version(&())
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Release::plural(&())
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A cached Release keeps no managed fields and no last-applied copy.
pub fn release(release: &mut CachedRelease) {
    managed_fields(release);
    if let Some(annotations) = release.metadata.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// A ReplicaSet as the cache keeps it: its metadata, replicas and status
/// counts. The planner reads its revision, counts and owner, never its pod
/// template (the Release has that), so the template is not even decoded:
/// k8s-openapi's ReplicaSet is 2.3 kB before any field is set.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CachedReplicaSet {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<CachedReplicaSetSpec>,
    #[serde(default)]
    pub status: Option<ReplicaSetStatus>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct CachedReplicaSetSpec {
    pub replicas: Option<i32>,
}

impl CachedReplicaSet {
    /// What the cache keeps of `rs` (tests build ReplicaSets; the watch decodes JSON).
    pub fn of(rs: &ReplicaSet) -> Self {
        let mut cached = CachedReplicaSet {
            metadata: rs.metadata.clone(),
            spec: rs.spec.as_ref().map(|s| CachedReplicaSetSpec { replicas: s.replicas }),
            status: rs.status.clone(),
        };
        replica_set(&mut cached);
        cached
    }
}

impl Resource for CachedReplicaSet {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        ReplicaSet::kind(&())
    }
    fn group(_: &()) -> Cow<'_, str> {
        ReplicaSet::group(&())
    }
    fn version(_: &()) -> Cow<'_, str> {
        ReplicaSet::version(&())
    }
    fn plural(_: &()) -> Cow<'_, str> {
        ReplicaSet::plural(&())
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A cached ReplicaSet keeps no managed fields and no last-applied copy.
pub fn replica_set(rs: &mut CachedReplicaSet) {
    managed_fields(rs);
    if let Some(annotations) = rs.metadata.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::controller::replicaset;

    #[test]
    fn a_cached_replica_set_reads_back_as_the_whole_one() {
        let release: Release = serde_json::from_value(json!({
            "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
            "metadata": { "name": "web", "namespace": "shop", "uid": "u-1",
                          "annotations": { LAST_APPLIED: "{…}", "keep": "me" } },
            "spec": {
                "replicas": 3, "selector": { "matchLabels": { "app": "web" } },
                "template": { "metadata": { "labels": { "app": "web" } },
                              "spec": { "containers": [{ "name": "web", "image": "web:1" }] } },
                "strategy": { "rolling": {} }
            }
        }))
        .unwrap();
        let mut whole = replicaset::build(&release, "abc", 2, 3);
        whole.metadata.managed_fields = Some(vec![Default::default()]);
        whole.status = Some(ReplicaSetStatus {
            replicas: 3,
            ready_replicas: Some(2),
            available_replicas: Some(1),
            ..Default::default()
        });
        // Decoded from the watch's JSON, as the cache does.
        let mut decoded: CachedReplicaSet = serde_json::from_value(serde_json::to_value(&whole).unwrap()).unwrap();
        replica_set(&mut decoded);
        let observed = replicaset::observe_cached(&decoded).unwrap();
        assert_eq!(
            (
                observed.replicas,
                observed.status_replicas,
                observed.ready,
                observed.available
            ),
            (3, 3, 2, 1)
        );
        assert_eq!(observed.revision, "abc");
        assert!(decoded.metadata.managed_fields.is_none());
        assert_eq!(Some(observed), replicaset::observe(&whole));
        assert_eq!(CachedReplicaSet::plural(&()), "replicasets");
        assert_eq!(CachedReplicaSet::api_version(&()), "apps/v1");

        let cached = CachedRelease::of(&release);
        let annotations = cached.metadata.annotations.as_ref().unwrap();
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert_eq!(annotations.get("keep").map(String::as_str), Some("me"));
        let decoded = cached.release().unwrap();
        assert_eq!(decoded.spec, release.spec);
        assert_eq!(decoded.status, release.status);
        assert_eq!(decoded.metadata.name, release.metadata.name);
        assert!(cached.spec_mentions("web:1") && !cached.spec_mentions("api"));
    }
}
