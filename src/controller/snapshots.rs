//! Config snapshots, the IO: read the ConfigMaps and Secrets a Release's pods
//! refer to, copy them (immutable, named by content) before the revision's
//! ReplicaSet exists, then hand each copy to the ReplicaSets that use it, so
//! that trimming a revision deletes its copies (the garbage collector does,
//! once no ReplicaSet owns them). The pure part is `plan::snapshot`.
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, PodTemplateSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client, Resource, ResourceExt};

use super::Error;
use crate::api::{
    FIELD_MANAGER, Invalid, MANAGED_BY_LABEL, MANAGED_BY_VALUE, RELEASE_LABEL, Release, SNAPSHOT_OF_LABEL,
};
use crate::plan::snapshot::{self, Source, SourceRef};

/// A Release's snapshots this round.
#[derive(Clone, Debug, Default)]
pub struct Snapshots {
    /// The pod template reading the copies: the revision's template.
    pub template: PodTemplateSpec,
    /// The copies it reads, to create before its ReplicaSet.
    pub copies: Vec<Copy>,
    /// Why the copies cannot be made (a ConfigMap that is not there): the
    /// Release is held InvalidSpec, nothing scaled.
    pub problem: Option<Invalid>,
}

/// One copy.
#[derive(Clone, Debug)]
pub enum Copy {
    ConfigMap(ConfigMap),
    Secret(Secret),
}

impl Copy {
    /// A copy the template names itself (read from the API server, so it has
    /// a resourceVersion): there is nothing to create.
    fn pinned(&self) -> bool {
        self.meta().resource_version.is_some()
    }

    /// serin made it: a snapshot of another object.
    fn is_snapshot(&self) -> bool {
        let labels = self.meta().labels.as_ref();
        labels.is_some_and(|l| l.contains_key(SNAPSHOT_OF_LABEL))
    }

    fn meta(&self) -> &ObjectMeta {
        match self {
            Copy::ConfigMap(c) => &c.metadata,
            Copy::Secret(s) => &s.metadata,
        }
    }

    fn name(&self) -> String {
        match self {
            Copy::ConfigMap(c) => c.name_any(),
            Copy::Secret(s) => s.name_any(),
        }
    }
}

/// The Release's snapshots, or None when it takes none.
pub async fn resolve(client: &Client, release: &Release) -> Result<Option<Snapshots>, Error> {
    let Some(opted) = release
        .spec
        .config_snapshots
        .as_ref()
        .filter(|o| o.config_maps || o.secrets)
    else {
        return Ok(None);
    };
    let namespace = release.namespace().unwrap_or_default();
    let mut renamed: BTreeMap<SourceRef, String> = BTreeMap::new();
    let mut copies = Vec::new();
    for ((source, name), optional) in snapshot::references(&release.spec.template, opted) {
        let read = match source {
            Source::ConfigMap => read::<ConfigMap>(client, &namespace, &name).await,
            Source::Secret => read::<Secret>(client, &namespace, &name).await,
        };
        let found = match (read, source) {
            (Ok(found), _) => found,
            (Err(kube::Error::Api(status)), Source::Secret) if status.code == 403 => {
                return Ok(Some(held(format!(
                    "configSnapshots.secrets: serin may not read Secret {name:?}; install the chart with configSnapshots.secrets=true"
                ))));
            }
            (Err(error), _) => return Err(error.into()),
        };
        let Some(copy) = found else {
            if optional {
                continue;
            }
            let kind = match source {
                Source::ConfigMap => "ConfigMap",
                Source::Secret => "Secret",
            };
            return Ok(Some(held(format!(
                "{kind} {name:?} does not exist: configSnapshots copies it before the revision starts"
            ))));
        };
        if copy.is_snapshot() {
            // Already a copy (an undo pinned it): read as it is, and handed
            // to the new ReplicaSet too, so that trimming the one it came
            // with does not take it away.
            copies.push(copy);
            continue;
        }
        let copy = copy_of(copy, release);
        renamed.insert((source, name), copy.name());
        copies.push(copy);
    }
    Ok(Some(Snapshots {
        template: snapshot::rewrite(&release.spec.template, &renamed),
        copies,
        problem: None,
    }))
}

/// The Release as its revision is planned: its template reading the copies.
pub fn reading_copies(release: &Release, snapshots: &Snapshots) -> Release {
    let mut release = release.clone();
    release.spec.template = snapshots.template.clone();
    release
}

fn held(message: String) -> Snapshots {
    Snapshots {
        problem: Some(Invalid::new("spec.template", message)),
        ..Snapshots::default()
    }
}

async fn read<K>(client: &Client, namespace: &str, name: &str) -> Result<Option<Copy>, kube::Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Into<Copy>,
{
    Ok(Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await?
        .map(Into::into))
}

impl From<ConfigMap> for Copy {
    fn from(c: ConfigMap) -> Self {
        Copy::ConfigMap(c)
    }
}

impl From<Secret> for Copy {
    fn from(s: Secret) -> Self {
        Copy::Secret(s)
    }
}

/// The copy of `original`, owned by the Release until a ReplicaSet takes it.
fn copy_of(original: Copy, release: &Release) -> Copy {
    let meta = |name: &str, hash: &str| ObjectMeta {
        name: Some(snapshot::copy_name(name, hash)),
        namespace: release.namespace(),
        labels: Some(BTreeMap::from([
            (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
            (RELEASE_LABEL.to_string(), release.name_any()),
            (SNAPSHOT_OF_LABEL.to_string(), snapshot::label_value(name)),
        ])),
        annotations: Some(BTreeMap::from([(SNAPSHOT_OF_LABEL.to_string(), name.to_string())])),
        owner_references: release_owner(release).map(|o| vec![o]),
        ..ObjectMeta::default()
    };
    match original {
        Copy::ConfigMap(c) => {
            let mut content: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            for (k, v) in c.data.iter().flatten() {
                content.insert(format!("data/{k}"), v.clone().into_bytes());
            }
            for (k, v) in c.binary_data.iter().flatten() {
                content.insert(format!("binaryData/{k}"), v.0.clone());
            }
            // The Release in the hash too: a copy is one Release's, never shared.
            let hash = snapshot::content_hash(&content, &format!("ConfigMap/{}", release.name_any()));
            Copy::ConfigMap(ConfigMap {
                metadata: meta(&c.name_any(), &hash),
                data: c.data,
                binary_data: c.binary_data,
                immutable: Some(true),
            })
        }
        Copy::Secret(s) => {
            let content: BTreeMap<String, Vec<u8>> =
                s.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect();
            let kind = format!(
                "Secret/{}/{}",
                s.type_.as_deref().unwrap_or("Opaque"),
                release.name_any()
            );
            let hash = snapshot::content_hash(&content, &kind);
            Copy::Secret(Secret {
                metadata: meta(&s.name_any(), &hash),
                data: s.data,
                type_: s.type_,
                immutable: Some(true),
                string_data: None,
            })
        }
    }
}

/// A non-controlling owner reference to the Release: the copy goes with it.
fn release_owner(release: &Release) -> Option<OwnerReference> {
    let mut owner = release.controller_owner_ref(&())?;
    owner.controller = None;
    owner.block_owner_deletion = None;
    Some(owner)
}

/// Makes sure each copy exists, creating those that do not. Some(problem)
/// when the API server refuses one (serin may not create Secrets there, say):
/// the round holds the Release InvalidSpec instead of failing again and again.
pub async fn ensure(client: &Client, namespace: &str, copies: &[Copy]) -> Result<Option<Invalid>, Error> {
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    for copy in copies.iter().filter(|c| !c.pinned()) {
        let created = match copy {
            Copy::ConfigMap(c) => {
                let api = Api::<ConfigMap>::namespaced(client.clone(), namespace);
                if api.get_opt(&copy.name()).await?.is_some() {
                    continue;
                }
                api.create(&params, c).await.map(|_| ())
            }
            Copy::Secret(s) => {
                let api = Api::<Secret>::namespaced(client.clone(), namespace);
                if api.get_opt(&copy.name()).await?.is_some() {
                    continue;
                }
                api.create(&params, s).await.map(|_| ())
            }
        };
        match created {
            Ok(()) => {}
            Err(kube::Error::Api(status)) if status.is_already_exists() => {}
            Err(kube::Error::Api(status)) if status.code == 403 || status.code == 422 => {
                let message = format!("the copy {} cannot be created: {}", copy.name(), status.message);
                return Ok(Some(Invalid::new("spec.configSnapshots", message)));
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(None)
}

/// Hands each copy to the ReplicaSet `rs` (which uses it): it is owned by
/// every ReplicaSet that uses it, and no longer by the Release.
pub async fn hand_over(client: &Client, namespace: &str, copies: &[Copy], rs: &str) -> Result<(), Error> {
    let Some(rs) = Api::<ReplicaSet>::namespaced(client.clone(), namespace)
        .get_opt(rs)
        .await?
    else {
        return Ok(());
    };
    let Some(owner) = rs.controller_owner_ref(&()).map(|mut o| {
        o.controller = None;
        o.block_owner_deletion = None;
        o
    }) else {
        return Ok(());
    };
    for copy in copies {
        match copy {
            Copy::ConfigMap(_) => owned_by::<ConfigMap>(client, namespace, &copy.name(), &owner).await?,
            Copy::Secret(_) => owned_by::<Secret>(client, namespace, &copy.name(), &owner).await?,
        }
    }
    Ok(())
}

/// Adds `owner` to the object's owners and drops the Release among them
/// (the only owner that is not a ReplicaSet). A conflict fails the round,
/// and the next one, which hands the copies over again, retries it.
async fn owned_by<K>(client: &Client, namespace: &str, name: &str, owner: &OwnerReference) -> Result<(), Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + serde::Serialize,
{
    let api = Api::<K>::namespaced(client.clone(), namespace);
    let Some(mut object) = api.get_opt(name).await? else {
        return Ok(());
    };
    let owners = object.meta_mut().owner_references.get_or_insert_with(Vec::new);
    let before = owners.clone();
    owners.retain(|o| o.kind == "ReplicaSet");
    if !owners.iter().any(|o| o.uid == owner.uid) {
        owners.push(owner.clone());
    }
    if *owners == before {
        return Ok(());
    }
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    api.replace(name, &params, &object).await?;
    Ok(())
}
