//! serin's ReplicaSets: built from the Release, read back as plan input, and
//! written (created, never applied; scaled through `/scale`; deleted).
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Resource};
use serde_json::json;

use super::Error;
use super::expectations::Written;
use super::trim::CachedReplicaSet;
use crate::api::{
    BASELINE_FOR_LABEL, BASELINE_OF_LABEL, BASELINE_ROLE, FIELD_MANAGER, MANAGED_BY_LABEL, MANAGED_BY_VALUE,
    RELEASE_LABEL, REVISION_LABEL, REVISION_NUMBER_ANNOTATION, ROLE_LABEL, Release,
};
use crate::plan::{self, BaselineState, RevisionState};

/// The ReplicaSet name of a revision.
pub fn name(release: &Release, revision: &str) -> String {
    format!("{}-{revision}", release.metadata.name.as_deref().unwrap_or_default())
}

/// The ReplicaSet for `revision` of the release's current template.
pub fn build(release: &Release, revision: &str, number: i64, replicas: i32) -> ReplicaSet {
    let release_name = release.metadata.name.clone().unwrap_or_default();
    let mut template = release.spec.template.clone();
    let template_meta = template.metadata.get_or_insert_with(Default::default);
    template_meta
        .labels
        .get_or_insert_with(Default::default)
        .insert(REVISION_LABEL.into(), revision.into());

    let mut labels: BTreeMap<String, String> = template_meta.labels.clone().unwrap_or_default();
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
    labels.insert(RELEASE_LABEL.into(), release_name);

    let mut selector = release.spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(REVISION_LABEL.into(), revision.into());

    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name(release, revision)),
            namespace: release.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some([(REVISION_NUMBER_ANNOTATION.to_string(), number.to_string())].into()),
            owner_references: release.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: Some(release.spec.min_ready_seconds),
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

/// How the plan sees a ReplicaSet. None for one without serin's revision label.
pub fn observe(rs: &ReplicaSet) -> Option<RevisionState> {
    observe_cached(&CachedReplicaSet::of(rs))
}

/// How the plan sees a ReplicaSet from the controller's cache.
pub(super) fn observe_cached(rs: &CachedReplicaSet) -> Option<RevisionState> {
    let meta = &rs.metadata;
    let revision = meta.labels.as_ref()?.get(REVISION_LABEL)?.clone();
    let number = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION_NUMBER_ANNOTATION))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let status = rs.status.clone().unwrap_or_default();
    Some(RevisionState {
        name: meta.name.clone()?,
        revision,
        number,
        replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        status_replicas: status.replicas,
        ready: status.ready_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
        synced: meta.deletion_timestamp.is_none() && status.observed_generation >= meta.generation,
    })
}

/// What came of creating a revision's ReplicaSet.
pub(super) enum Creation {
    /// Created; the cache must show it before the next decision.
    Created(Written),
    /// It exists already (created by an earlier process; the cache lagged).
    Exists,
    /// The API server refuses the ReplicaSet itself, with this message.
    Refused(String),
}

/// Creates the ReplicaSet of `revision`: created, never applied, so that a
/// stale cache can never overwrite a live ReplicaSet's scale.
pub(super) async fn create(
    api: &Api<ReplicaSet>,
    release: &Release,
    revision: &str,
    number: i64,
    replicas: i32,
) -> Result<Creation, Error> {
    let rs = build(release, revision, number, replicas);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.create(&params, &rs).await {
        Ok(created) => Ok(Creation::Created(Written::ReplicaSet {
            name: name(release, revision),
            resource_version: created.metadata.resource_version.unwrap_or_default(),
        })),
        Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(Creation::Exists),
        Err(kube::Error::Api(status)) if is_refusal(status.code) => {
            Ok(Creation::Refused(clipped(&status.message, REFUSAL_MAX)))
        }
        Err(error) => Err(error.into()),
    }
}

/// The API server refused the object itself (422 Invalid, 400 Bad Request, 413
/// too large), as opposed to a failure worth retrying.
fn is_refusal(code: u16) -> bool {
    matches!(code, 400 | 413 | 422)
}

/// The first `max` bytes of `text` (on a character boundary), marked when cut.
fn clipped(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The baseline ReplicaSet for `stable`, the ReplicaSet of `revision`: its pod
/// template and selector, with `serin.dev/role: baseline` added to both, so
/// that the stable Service (which selects the revision) sends baseline pods
/// the stable pods' traffic, while the stable ReplicaSet never counts them
/// (they have another controller). Its own labels carry no revision, so it is
/// never read back as a revision. None when `stable` has no template.
pub fn build_baseline(
    release: &Release,
    stable: &ReplicaSet,
    revision: &str,
    canary: &str,
    replicas: i32,
) -> Option<ReplicaSet> {
    let spec = stable.spec.as_ref()?;
    let mut template = spec.template.clone()?;
    template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default)
        .insert(ROLE_LABEL.into(), BASELINE_ROLE.into());
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(ROLE_LABEL.into(), BASELINE_ROLE.into());
    let release_name = release.metadata.name.clone().unwrap_or_default();
    let labels = BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
        (RELEASE_LABEL.to_string(), release_name.clone()),
        (ROLE_LABEL.to_string(), BASELINE_ROLE.to_string()),
        (BASELINE_OF_LABEL.to_string(), revision.to_string()),
        (BASELINE_FOR_LABEL.to_string(), canary.to_string()),
    ]);
    Some(ReplicaSet {
        metadata: ObjectMeta {
            name: Some(plan::baseline_name(&release_name, revision)),
            namespace: release.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: release.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    })
}

/// How the plan sees the baseline ReplicaSet; None for any other.
pub(super) fn observe_baseline(rs: &CachedReplicaSet) -> Option<BaselineState> {
    let labels = rs.metadata.labels.as_ref()?;
    if labels.get(ROLE_LABEL).map(String::as_str) != Some(BASELINE_ROLE) {
        return None;
    }
    Some(BaselineState {
        name: rs.metadata.name.clone()?,
        stable_revision: labels.get(BASELINE_OF_LABEL).cloned().unwrap_or_default(),
        canary_revision: labels.get(BASELINE_FOR_LABEL).cloned().unwrap_or_default(),
        replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        deleting: rs.metadata.deletion_timestamp.is_some(),
    })
}

/// Creates the baseline from the live template of `stable` (the cache keeps
/// no templates). None when there is nothing to wait for: it exists already,
/// `stable` is gone, or the API server refuses it (logged: the analysis goes
/// on, and its judge sees no baseline data).
pub(super) async fn create_baseline(
    api: &Api<ReplicaSet>,
    release: &Release,
    stable: &str,
    revision: &str,
    canary: &str,
    replicas: i32,
) -> Result<Option<Written>, Error> {
    let built = api.get_opt(stable).await?;
    let Some(rs) = built.and_then(|s| build_baseline(release, &s, revision, canary, replicas)) else {
        return Ok(None);
    };
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.create(&params, &rs).await {
        Ok(created) => Ok(Some(Written::ReplicaSet {
            name: created.metadata.name.unwrap_or_default(),
            resource_version: created.metadata.resource_version.unwrap_or_default(),
        })),
        Err(kube::Error::Api(status)) if status.is_already_exists() => {
            // Ours, which the cache shows next; or someone else's by that name, which stays.
            tracing::info!(name = ?rs.metadata.name, "a ReplicaSet by the baseline's name exists already");
            Ok(None)
        }
        Err(kube::Error::Api(status)) if is_refusal(status.code) => {
            tracing::warn!(message = %clipped(&status.message, REFUSAL_MAX), "the API server refuses the baseline ReplicaSet");
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// Scales a ReplicaSet through `/scale`; the write the cache must show.
pub(super) async fn scale(api: &Api<ReplicaSet>, name: &str, replicas: i32) -> Result<Written, Error> {
    let scale = json!({ "spec": { "replicas": replicas } });
    let scaled = api
        .patch_scale(name, &PatchParams::default(), &Patch::Merge(&scale))
        .await?;
    Ok(Written::ReplicaSet {
        name: name.to_string(),
        resource_version: scaled.metadata.resource_version.unwrap_or_default(),
    })
}

/// Deletes a ReplicaSet of trimmed history; one already gone is fine.
pub(super) async fn delete(api: &Api<ReplicaSet>, name: &str) -> Result<(), Error> {
    match api.delete(name, &DeleteParams::background()).await {
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        other => other.map(|_| ()).map_err(Error::from),
    }
}

/// Longest refusal message kept in a condition: an Event's note holds 1 kB, and
/// a refusal quoting a 300 kB annotation must not grow the status with it.
const REFUSAL_MAX: usize = 900;

#[cfg(test)]
mod tests {
    use super::*;

    fn release() -> Release {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
            "metadata": { "name": "web", "namespace": "shop", "uid": "u-1" },
            "spec": {
                "replicas": 3, "minReadySeconds": 2,
                "selector": { "matchLabels": { "app": "web" } },
                "template": { "metadata": { "labels": { "app": "web" } },
                              "spec": { "containers": [{ "name": "web", "image": "web:1" }] } },
                "strategy": { "rolling": {} }
            }
        }))
        .unwrap()
    }

    #[test]
    fn built_replica_sets_select_only_their_revision_and_read_back() {
        let rs = build(&release(), "abc123", 4, 2);
        let spec = rs.spec.as_ref().unwrap();
        let selector = spec.selector.match_labels.as_ref().unwrap();
        assert_eq!(selector.get(REVISION_LABEL).map(String::as_str), Some("abc123"));
        assert_eq!(selector.get("app").map(String::as_str), Some("web"));
        let pod_labels = spec
            .template
            .as_ref()
            .unwrap()
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert!(
            selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
            "selector matches its pods"
        );
        assert_eq!(rs.metadata.owner_references.as_ref().unwrap()[0].controller, Some(true));
        assert_eq!(spec.min_ready_seconds, Some(2));

        let observed = observe(&rs).unwrap();
        assert_eq!(
            (observed.revision.as_str(), observed.number, observed.replicas),
            ("abc123", 4, 2)
        );
        assert_eq!(observed.name, "web-abc123");
    }

    #[test]
    fn a_baseline_runs_the_stable_template_apart_from_its_revision_and_reads_back() {
        let release = release();
        let stable = build(&release, "abc", 1, 3);
        let rs = build_baseline(&release, &stable, "abc", "def", 2).unwrap();
        let with_role = |labels: &BTreeMap<String, String>| {
            let mut labels = labels.clone();
            labels.insert(ROLE_LABEL.into(), BASELINE_ROLE.into());
            labels
        };
        let template = |rs: &ReplicaSet| rs.spec.as_ref().unwrap().template.clone().unwrap();
        let pod_labels = |rs: &ReplicaSet| template(rs).metadata.unwrap().labels.unwrap();
        let selector = |rs: &ReplicaSet| rs.spec.as_ref().unwrap().selector.match_labels.clone().unwrap();

        assert_eq!(
            pod_labels(&rs),
            with_role(&pod_labels(&stable)),
            "the stable pods' labels"
        );
        assert_eq!(template(&rs).spec, template(&stable).spec, "the stable pods");
        assert_eq!(selector(&rs), with_role(&selector(&stable)));
        assert!(
            selector(&rs).iter().all(|(k, v)| pod_labels(&rs).get(k) == Some(v)),
            "selects its own pods"
        );
        let spec = rs.spec.as_ref().unwrap();
        assert_eq!((spec.replicas, spec.min_ready_seconds), (Some(2), Some(2)));

        let labels = rs.metadata.labels.as_ref().unwrap();
        assert!(!labels.contains_key(REVISION_LABEL), "{labels:?}");
        assert_eq!(labels.get(BASELINE_OF_LABEL).map(String::as_str), Some("abc"));
        assert_eq!(labels.get(BASELINE_FOR_LABEL).map(String::as_str), Some("def"));
        assert_eq!(labels.get(ROLE_LABEL).map(String::as_str), Some(BASELINE_ROLE));
        assert_eq!(labels.get(RELEASE_LABEL).map(String::as_str), Some("web"));
        assert_eq!(observe(&rs), None, "never read back as a revision");
        assert_eq!(
            (rs.metadata.name.as_deref(), rs.metadata.namespace.as_deref()),
            (Some("web-abc-baseline"), Some("shop"))
        );
        let owners = rs.metadata.owner_references.as_ref().unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(
            (owners[0].kind.as_str(), owners[0].name.as_str(), owners[0].uid.as_str()),
            ("Release", "web", "u-1")
        );
        assert_eq!(owners[0].controller, Some(true));

        let baseline = BaselineState {
            name: "web-abc-baseline".into(),
            stable_revision: "abc".into(),
            canary_revision: "def".into(),
            replicas: 2,
            deleting: false,
        };
        assert_eq!(observe_baseline(&CachedReplicaSet::of(&rs)), Some(baseline.clone()));
        let mut going = rs.clone();
        going.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        assert_eq!(
            observe_baseline(&CachedReplicaSet::of(&going)),
            Some(BaselineState {
                deleting: true,
                ..baseline
            })
        );
        assert_eq!(
            observe_baseline(&CachedReplicaSet::of(&stable)),
            None,
            "a revision is no baseline"
        );
    }

    mod writes {
        use serde_json::{Value, json};

        use super::super::super::fixtures::{Exchange, Fixture, REPLICA_SETS};
        use super::*;

        fn api(fx: &Fixture) -> Api<ReplicaSet> {
            Api::namespaced(fx.ctx.client.clone(), "shop")
        }

        fn the_built_one(rs: &Value) {
            assert_eq!(rs["kind"], "ReplicaSet");
            assert_eq!(rs["metadata"]["name"], "web-abc");
            assert_eq!(rs["metadata"]["annotations"][REVISION_NUMBER_ANNOTATION], "2");
            assert_eq!(rs["spec"]["replicas"], 1);
        }

        async fn created(answer: Exchange) -> Result<Creation, Error> {
            let mut fx = Fixture::new();
            let post = answer.body(the_built_one);
            fx.server
                .serve(vec![post], create(&api(&fx), &release(), "abc", 2, 1))
                .await
        }

        fn post() -> Exchange {
            Exchange::post(&format!("{REPLICA_SETS}?&fieldManager=serin"))
        }

        #[tokio::test]
        async fn a_revision_is_created_by_post_and_its_version_remembered() {
            let mut answer = build(&release(), "abc", 2, 1);
            answer.metadata.resource_version = Some("41".into());
            match created(post().answer(answer)).await {
                Ok(Creation::Created(written)) => assert_eq!(
                    written,
                    Written::ReplicaSet {
                        name: "web-abc".into(),
                        resource_version: "41".into()
                    }
                ),
                other => panic!("{:?}", other.map(|_| ())),
            }
        }

        #[tokio::test]
        async fn an_existing_revision_is_left_as_it_is() {
            // 409: created by an earlier process; the live ReplicaSet keeps its scale (no apply follows).
            let got = created(post().fail(409, "AlreadyExists").about("web-abc")).await;
            assert!(matches!(got, Ok(Creation::Exists)), "{:?}", got.map(|_| ()));
        }

        #[tokio::test]
        async fn a_refused_template_is_reported_clipped_and_a_failure_is_an_error() {
            let long = "x".repeat(REFUSAL_MAX + 10);
            let cases = [
                (
                    422,
                    "Invalid",
                    "spec.template: Invalid value",
                    "spec.template: Invalid value".to_string(),
                ),
                (
                    413,
                    "RequestEntityTooLarge",
                    &long,
                    format!("{}…", &long[..REFUSAL_MAX]),
                ),
                (400, "BadRequest", "bad", "bad".to_string()),
            ];
            for (code, reason, message, want) in cases {
                match created(post().fail(code, reason).saying(message)).await {
                    Ok(Creation::Refused(refusal)) => assert_eq!(refusal, want, "{code}"),
                    other => panic!("{code}: {:?}", other.map(|_| ())),
                }
            }
            // A failure worth retrying is an error, not a refusal.
            let got = created(post().fail(500, "InternalError")).await;
            assert!(matches!(got, Err(Error::Kube(_))), "{:?}", got.map(|_| ()));
        }

        #[tokio::test]
        async fn scaling_patches_the_scale_subresource() {
            let mut fx = Fixture::new();
            let patch = Exchange::merge_patch(&format!("{REPLICA_SETS}/web-abc/scale?"))
                .body(|body| assert_eq!(body, &json!({ "spec": { "replicas": 5 } })))
                .answer(json!({
                    "apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": { "name": "web-abc", "namespace": "shop", "resourceVersion": "77" },
                    "spec": { "replicas": 5 },
                }));
            let written = fx
                .server
                .serve(vec![patch], scale(&api(&fx), "web-abc", 5))
                .await
                .unwrap();
            assert_eq!(
                written,
                Written::ReplicaSet {
                    name: "web-abc".into(),
                    resource_version: "77".into()
                }
            );
        }

        #[tokio::test]
        async fn a_replica_set_already_gone_counts_as_deleted() {
            let mut fx = Fixture::new();
            let gone = Exchange::delete(&format!("{REPLICA_SETS}/web-abc?"))
                .body(|body| assert_eq!(body["propagationPolicy"], "Background"))
                .fail(404, "NotFound")
                .about("web-abc");
            fx.server.serve(vec![gone], delete(&api(&fx), "web-abc")).await.unwrap();
        }
    }
}
