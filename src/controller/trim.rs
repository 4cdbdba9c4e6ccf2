//! What the watch caches keep of each object: only what serin reads, so that
//! memory grows by as little as possible per Release. A cached object is never
//! written back (every write builds its own body), so nothing trimmed is lost.
use std::borrow::Cow;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::Deserialize;

use crate::api::Release;

/// kubectl's copy of the whole object as last applied: as large as the spec
/// again, and never read by serin.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Written by the API server for every field manager; never read by serin.
pub fn managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// A Release keeps its spec and status, without the managed fields and
/// kubectl's last-applied copy.
pub fn release(release: &mut Release) {
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

        let mut cached = release.clone();
        self::release(&mut cached);
        let annotations = cached.metadata.annotations.as_ref().unwrap();
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert_eq!(annotations.get("keep").map(String::as_str), Some("me"));
        assert_eq!(cached.spec.template, release.spec.template);
    }
}
