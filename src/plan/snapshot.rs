//! Config snapshots, the pure part: which ConfigMaps and Secrets a pod
//! template reads, what their copies are called, and the template that reads
//! the copies instead. The copy's name carries a hash of its content, so the
//! revision (the hash of that template) changes when the content does.
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodTemplateSpec};
use sha2::{Digest, Sha256};

use crate::api::ConfigSnapshots;

/// A kind of object a pod template reads config from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    ConfigMap,
    Secret,
}

/// One object the template reads, by kind and name.
pub type SourceRef = (Source, String);

/// The objects `template` reads that `snapshots` asks to copy, each once,
/// with whether every reference to it is optional.
pub fn references(template: &PodTemplateSpec, snapshots: &ConfigSnapshots) -> BTreeMap<SourceRef, bool> {
    let mut found: BTreeMap<SourceRef, bool> = BTreeMap::new();
    let mut note = |source: Source, name: &str, optional: Option<bool>| {
        let wanted = match source {
            Source::ConfigMap => snapshots.config_maps,
            Source::Secret => snapshots.secrets,
        };
        if wanted && !name.is_empty() {
            let optional = optional.unwrap_or(false);
            found
                .entry((source, name.to_string()))
                .and_modify(|all| *all &= optional)
                .or_insert(optional);
        }
    };
    let Some(spec) = &template.spec else {
        return found;
    };
    for volume in spec.volumes.iter().flatten() {
        if let Some(c) = &volume.config_map {
            note(Source::ConfigMap, &c.name, c.optional);
        }
        if let Some(s) = &volume.secret {
            note(Source::Secret, s.secret_name.as_deref().unwrap_or_default(), s.optional);
        }
        for projection in volume.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(c) = &projection.config_map {
                note(Source::ConfigMap, &c.name, c.optional);
            }
            if let Some(s) = &projection.secret {
                note(Source::Secret, &s.name, s.optional);
            }
        }
    }
    for container in containers(template) {
        for env in container.env.iter().flatten() {
            if let Some(from) = &env.value_from {
                if let Some(c) = &from.config_map_key_ref {
                    note(Source::ConfigMap, &c.name, c.optional);
                }
                if let Some(s) = &from.secret_key_ref {
                    note(Source::Secret, &s.name, s.optional);
                }
            }
        }
        for from in container.env_from.iter().flatten() {
            if let Some(c) = &from.config_map_ref {
                note(Source::ConfigMap, &c.name, c.optional);
            }
            if let Some(s) = &from.secret_ref {
                note(Source::Secret, &s.name, s.optional);
            }
        }
    }
    found
}

fn containers(template: &PodTemplateSpec) -> impl Iterator<Item = &Container> {
    let spec = template.spec.as_ref();
    spec.into_iter()
        .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
}

/// The hash of an object's content (`data` and `binaryData`, and a Secret's
/// type), in the copy's name.
pub fn content_hash(data: &BTreeMap<String, Vec<u8>>, kind_detail: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(kind_detail.as_bytes());
    for (key, value) in data {
        // Lengths first: no two different maps hash the same bytes.
        digest.update((key.len() as u64).to_be_bytes());
        digest.update(key.as_bytes());
        digest.update((value.len() as u64).to_be_bytes());
        digest.update(value);
    }
    digest.finalize()[..5].iter().map(|b| format!("{b:02x}")).collect()
}

/// `<name>-<hash>`, within the 253 characters an object name may have.
pub fn copy_name(name: &str, hash: &str) -> String {
    let keep = 253 - hash.len() - 1;
    let mut base: String = name.chars().take(keep).collect();
    while base.ends_with(['-', '.']) {
        base.pop();
    }
    format!("{base}-{hash}")
}

/// The `serin.dev/snapshot-of` label's value for an original named `name`:
/// the name, or for one longer than a label value may be, its start and a
/// hash (the annotation of the same key keeps the whole name).
pub fn label_value(name: &str) -> String {
    if name.len() <= 63 {
        return name.to_string();
    }
    let hash = content_hash(&BTreeMap::new(), name);
    let mut start: String = name.chars().take(63 - hash.len() - 1).collect();
    while start.ends_with(['-', '.']) {
        start.pop();
    }
    format!("{start}-{hash}")
}

/// `template` reading the copies named in `copies` instead of the originals.
pub fn rewrite(template: &PodTemplateSpec, copies: &BTreeMap<SourceRef, String>) -> PodTemplateSpec {
    let mut template = template.clone();
    let copy = |source: Source, name: &mut String| {
        if let Some(to) = copies.get(&(source, name.clone())) {
            *name = to.clone();
        }
    };
    let Some(spec) = template.spec.as_mut() else {
        return template;
    };
    for volume in spec.volumes.iter_mut().flatten() {
        if let Some(c) = volume.config_map.as_mut() {
            copy(Source::ConfigMap, &mut c.name);
        }
        if let Some(name) = volume.secret.as_mut().and_then(|s| s.secret_name.as_mut()) {
            copy(Source::Secret, name);
        }
        for projection in volume.projected.iter_mut().flat_map(|p| p.sources.iter_mut().flatten()) {
            if let Some(c) = projection.config_map.as_mut() {
                copy(Source::ConfigMap, &mut c.name);
            }
            if let Some(s) = projection.secret.as_mut() {
                copy(Source::Secret, &mut s.name);
            }
        }
    }
    let init = spec.init_containers.iter_mut().flatten();
    for container in spec.containers.iter_mut().chain(init) {
        for env in container.env.iter_mut().flatten() {
            if let Some(from) = env.value_from.as_mut() {
                if let Some(c) = from.config_map_key_ref.as_mut() {
                    copy(Source::ConfigMap, &mut c.name);
                }
                if let Some(s) = from.secret_key_ref.as_mut() {
                    copy(Source::Secret, &mut s.name);
                }
            }
        }
        for from in container.env_from.iter_mut().flatten() {
            if let Some(c) = from.config_map_ref.as_mut() {
                copy(Source::ConfigMap, &mut c.name);
            }
            if let Some(s) = from.secret_ref.as_mut() {
                copy(Source::Secret, &mut s.name);
            }
        }
    }
    template
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn template() -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "metadata": { "labels": { "app": "web" } },
            "spec": {
                "volumes": [
                    { "name": "config", "configMap": { "name": "app" } },
                    { "name": "creds", "secret": { "secretName": "db" } },
                    { "name": "all", "projected": { "sources": [
                        { "configMap": { "name": "extra", "optional": true } },
                        { "secret": { "name": "tls" } }
                    ] } }
                ],
                "initContainers": [{ "name": "init", "image": "i", "envFrom": [{ "configMapRef": { "name": "init-env" } }] }],
                "containers": [{ "name": "web", "image": "w",
                    "env": [
                        { "name": "A", "valueFrom": { "configMapKeyRef": { "name": "app", "key": "a" } } },
                        { "name": "P", "valueFrom": { "secretKeyRef": { "name": "db", "key": "p" } } },
                        { "name": "L", "value": "literal" }
                    ],
                    "envFrom": [{ "secretRef": { "name": "env-secret", "optional": true } }]
                }]
            }
        }))
        .unwrap()
    }

    fn opts(config_maps: bool, secrets: bool) -> ConfigSnapshots {
        ConfigSnapshots { config_maps, secrets }
    }

    #[test]
    fn every_place_a_pod_reads_config_from_is_found_once() {
        let cases = [
            (opts(true, false), vec!["app", "extra", "init-env"], vec![]),
            (opts(false, true), vec![], vec!["db", "env-secret", "tls"]),
            (opts(false, false), vec![], vec![]),
        ];
        for (opted, maps, secrets) in cases {
            let found = references(&template(), &opted);
            let names = |source: Source| -> Vec<&str> {
                found
                    .keys()
                    .filter(|(s, _)| *s == source)
                    .map(|(_, n)| n.as_str())
                    .collect()
            };
            assert_eq!(names(Source::ConfigMap), maps, "{opted:?}");
            assert_eq!(names(Source::Secret), secrets, "{opted:?}");
        }
        let found = references(&template(), &opts(true, true));
        assert!(
            found[&(Source::ConfigMap, "extra".into())],
            "optional everywhere it is read"
        );
        assert!(!found[&(Source::ConfigMap, "app".into())]);
    }

    #[test]
    fn the_rewritten_template_reads_only_the_copies_and_changes_its_revision() {
        let opted = opts(true, true);
        let copies: BTreeMap<SourceRef, String> = references(&template(), &opted)
            .into_keys()
            .map(|(s, n)| ((s, n.clone()), copy_name(&n, "0123456789")))
            .collect();
        let rewritten = rewrite(&template(), &copies);
        let after = references(&rewritten, &opted);
        assert!(after.keys().all(|(_, n)| n.ends_with("-0123456789")), "{after:?}");
        assert_eq!(after.len(), copies.len());
        let literal = &rewritten.spec.as_ref().unwrap().containers[0].env.as_ref().unwrap()[2];
        assert_eq!(literal.value.as_deref(), Some("literal"));
        use crate::plan::revision::revision_of;
        assert_ne!(revision_of(&rewritten), revision_of(&template()));
        assert_eq!(
            rewrite(&template(), &BTreeMap::new()),
            template(),
            "no copies: unchanged"
        );
    }

    #[test]
    fn label_values_fit_63_characters() {
        assert_eq!(label_value("web-config"), "web-config");
        let long = "a".repeat(100);
        let value = label_value(&long);
        assert_eq!(value.len(), 63);
        assert_ne!(value, label_value(&"a".repeat(101)), "two long names stay apart");
    }

    #[test]
    fn copy_names_fit_and_keep_the_hash() {
        assert_eq!(copy_name("app", "0123456789"), "app-0123456789");
        let long = copy_name(&"a".repeat(300), "0123456789");
        assert_eq!(long.len(), 253);
        assert!(long.ends_with("-0123456789"));
    }

    proptest! {
        #[test]
        fn equal_content_hashes_equal_and_any_change_differs(
            data in proptest::collection::btree_map("[a-z]{1,4}", proptest::collection::vec(any::<u8>(), 0..8), 0..5),
            key in "[a-z]{1,4}",
            value in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let hash = content_hash(&data, "ConfigMap");
            prop_assert_eq!(hash.len(), 10);
            prop_assert_eq!(&hash, &content_hash(&data.clone(), "ConfigMap"));
            let mut changed = data.clone();
            let before = changed.insert(key, value.clone());
            if before.as_ref() != Some(&value) {
                prop_assert_ne!(hash, content_hash(&changed, "ConfigMap"));
            }
        }
    }
}
