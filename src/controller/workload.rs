//! `spec.workloadRef`, the IO: read the Deployment the Release adopts (its
//! pod template and its pods' counts) and scale it through `/scale`. What to
//! scale it to is `plan::adoption`'s.
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::Error;
use crate::api::{FIELD_MANAGER, Invalid, Release};
use crate::plan::WorkloadState;

/// What the Release adopts.
pub enum Workload {
    /// No workloadRef: the Release has a template of its own.
    None,
    /// The Release with the Deployment's template, and the Deployment's pods.
    Found(Box<Release>, WorkloadState),
    /// The Deployment cannot be adopted: held InvalidSpec, nothing scaled.
    Problem(Invalid),
}

/// Reads the Deployment of `spec.workloadRef`.
pub async fn observe(client: &Client, release: &Release) -> Result<Workload, Error> {
    let Some(reference) = &release.spec.workload_ref else {
        return Ok(Workload::None);
    };
    let namespace = release.namespace().unwrap_or_default();
    let api = Api::<Deployment>::namespaced(client.clone(), &namespace);
    let Some(deployment) = api.get_opt(&reference.name).await? else {
        return Ok(Workload::Problem(Invalid::new(
            "spec.workloadRef.name",
            format!("Deployment {:?} does not exist", reference.name),
        )));
    };
    let Some(spec) = deployment.spec.as_ref() else {
        return Ok(Workload::Problem(Invalid::new(
            "spec.workloadRef.name",
            format!("Deployment {:?} has no spec", reference.name),
        )));
    };
    let status = deployment.status.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let state = WorkloadState {
        name: reference.name.clone(),
        replicas,
        pods: replicas.max(status.replicas.unwrap_or(0)),
        available: status.available_replicas.unwrap_or(0),
        // Its counts are of its latest spec, and it is not rolling out a
        // template of its own (which would take pods away on its own terms).
        synced: status.observed_generation >= deployment.metadata.generation
            && status.updated_replicas.unwrap_or(0) >= status.replicas.unwrap_or(0),
    };
    let mut adopted = release.clone();
    adopted.spec.template = spec.template.clone();
    Ok(Workload::Found(Box::new(adopted), state))
}

/// Scales the Deployment through its scale subresource.
pub async fn scale(client: &Client, release: &Release, replicas: i32) -> Result<(), Error> {
    let Some(reference) = &release.spec.workload_ref else {
        return Ok(());
    };
    let api = Api::<Deployment>::namespaced(client.clone(), &release.namespace().unwrap_or_default());
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let patch = json!({ "spec": { "replicas": replicas } });
    api.patch_scale(&reference.name, &params, &Patch::Merge(&patch)).await?;
    Ok(())
}
