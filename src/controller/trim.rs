//! What the watch caches keep of each object: only what serin reads, so that
//! memory grows by as little as possible per Release. A cached object is never
//! written back (every write builds its own body), so nothing trimmed is lost.
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::Resource;

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

/// A ReplicaSet keeps its metadata, replicas and status: the planner reads its
/// revision, counts and owner, never its pod template (the Release has that).
pub fn replica_set(rs: &mut ReplicaSet) {
    managed_fields(rs);
    if let Some(spec) = rs.spec.as_mut() {
        spec.template = None;
    }
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
    fn a_trimmed_replica_set_reads_back_as_the_whole_one() {
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
        let whole = replicaset::build(&release, "abc", 2, 3);
        let mut trimmed = whole.clone();
        trimmed.metadata.managed_fields = Some(vec![Default::default()]);
        replica_set(&mut trimmed);
        assert_eq!(replicaset::observe(&trimmed), replicaset::observe(&whole));
        assert!(trimmed.spec.as_ref().unwrap().template.is_none());
        assert!(trimmed.metadata.managed_fields.is_none());

        let mut cached = release.clone();
        self::release(&mut cached);
        let annotations = cached.metadata.annotations.as_ref().unwrap();
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert_eq!(annotations.get("keep").map(String::as_str), Some("me"));
        assert_eq!(cached.spec.template, release.spec.template);
    }
}
