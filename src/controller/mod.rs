//! kube-runtime wiring: watch, observe, execute plans, write status.
mod analysis;
mod reconcile;
pub mod replicaset;
mod traffic;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, Resource};

use crate::api::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, Release};

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    /// serin's ReplicaSets, from one label-selected watch.
    pub replica_sets: Store<ReplicaSet>,
    /// For metric providers; connection pools are shared across Releases.
    pub http: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("Release has no namespace")]
    MissingNamespace,
    #[error("the ReplicaSet cache is gone: {0}")]
    CacheGone(#[from] reflector::store::WriterDropped),
    #[error("traffic routing: {0}")]
    Traffic(String),
}

/// Field manager of every write serin makes.
pub const FIELD_MANAGER: &str = "serin";

/// Runs the Release controller until SIGTERM or Ctrl-C, over one namespace or all.
pub async fn run(client: Client, namespace: Option<String>, concurrency: u16) {
    let (replica_sets, rs_writer) = reflector::store();
    let owned = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    let rs_stream = watcher(scoped::<ReplicaSet>(&client, &namespace), owned.clone())
        .default_backoff()
        .modify(strip_managed_fields)
        .reflect(rs_writer)
        .touched_objects();

    // Analysis Jobs: watched only to reconcile their Release when one finishes.
    let job_stream = watcher(scoped::<Job>(&client, &namespace), owned.clone())
        .default_backoff()
        .touched_objects();

    let (releases, release_writer) = reflector::store();
    let release_stream = watcher(scoped::<Release>(&client, &namespace), watcher::Config::default())
        .default_backoff()
        .modify(strip_managed_fields)
        .reflect(release_writer)
        .touched_objects();

    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let context = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        replica_sets,
        http: reqwest::Client::new(),
    });
    Controller::for_stream(release_stream, releases)
        .owns_stream(rs_stream)
        .owns_stream(job_stream)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .shutdown_on_signal()
        .run(reconcile::reconcile, error_policy, context)
        .for_each(|result| async move {
            match result {
                // A ReplicaSet event for a Release that was just deleted: nothing to do.
                Err(kube::runtime::controller::Error::ObjectNotFound(object)) => {
                    tracing::debug!(%object, "release is gone")
                }
                Err(error) => tracing::warn!(%error, "reconcile failed"),
                Ok(_) => {}
            }
        })
        .await;
}

fn scoped<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn strip_managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

fn error_policy(_: Arc<Release>, error: &Error, _: Arc<Context>) -> kube::runtime::controller::Action {
    tracing::warn!(%error, "will retry");
    kube::runtime::controller::Action::requeue(Duration::from_secs(5))
}
