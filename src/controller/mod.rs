//! kube-runtime wiring: watch, observe, execute plans, write status; and the
//! process around it: leader election, endpoints, graceful shutdown.
mod analysis;
pub mod check;
pub mod client;
pub mod crds;
pub mod endpoints;
mod expectations;
#[cfg(test)]
mod fixtures;
pub mod leader;
mod reconcile;
pub mod replicaset;
mod scope;
pub mod selftest;
pub mod shard;
mod snapshots;
mod steered;
mod traffic;
mod trim;
mod workload;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, future};
use k8s_openapi::api::batch::v1::Job;
use kube::Client;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use tokio::sync::watch;

use self::endpoints::Health;
use self::expectations::Expectations;
use self::leader::{Leadership, LeaseConfig};
use self::shard::Shard;
use self::trim::{CachedRelease, CachedReplicaSet};
use crate::api::{FIELD_MANAGER, MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use crate::telemetry::Metrics;
use crate::traffic::RouterError;

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    /// Who records serin's Events. Each round publishes through a Recorder of
    /// its own: kube's Recorder keeps every Event it sent for six minutes (to
    /// fold repeats into a series), which after a mass rollout is several
    /// kilobytes per Release; serin records transitions, which do not repeat.
    pub reporter: Reporter,
    /// serin's ReplicaSets, from one label-selected watch.
    pub replica_sets: Store<CachedReplicaSet>,
    /// Turns true once `replica_sets` holds a full list. Every reconcile waits on
    /// it: kube-runtime's own `Store::wait_until_ready` wakes only one of several
    /// concurrent waiters (a oneshot receiver keeps a single waker), which left
    /// Releases present at start unreconciled.
    pub synced: watch::Receiver<bool>,
    /// For metric providers; connection pools are shared across Releases.
    pub http: reqwest::Client,
    pub metrics: Arc<Metrics>,
    /// True while this process may write: it holds the Lease (or runs without election).
    pub leader: watch::Receiver<bool>,
    /// This controller's writes its caches do not show yet, per Release.
    pub expectations: Expectations,
}

impl Context {
    /// Drops what is kept about a Release that is gone.
    fn forget(&self, (namespace, name): &expectations::Key) {
        self.metrics.forget(namespace, name);
        self.expectations.forget(&(namespace.clone(), name.clone()));
    }
}

/// Why a reconcile stopped. [`error_policy`] decides per variant what happens next.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("Release has no namespace")]
    MissingNamespace,
    #[error("the ReplicaSet cache is gone")]
    CacheGone,
    /// The router's API failure, or a misconfiguration found only when writing
    /// (the observe path shows one found when reading on the Release instead).
    #[error("traffic routing: {0}")]
    Traffic(#[source] RouterError),
    /// The stored Release does not decode as this serin's Release (accepted
    /// by the API server under another schema); only this Release waits.
    #[error("the Release does not decode: {0}")]
    Undecodable(#[source] serde_json::Error),
    /// Not a failure: the Lease moved while the round was planned.
    #[error("this process does not hold the Lease; it writes nothing")]
    NotLeader,
}

impl Error {
    /// A short name of the variant: the `kind` label of `serin_reconcile_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::MissingNamespace => "missing_namespace",
            Error::CacheGone => "cache_gone",
            Error::Traffic(_) => "traffic",
            Error::NotLeader => "not_leader",
            Error::Undecodable(_) => "undecodable",
        }
    }
}

/// Why the controller process stopped other than by a signal.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("could not serve the endpoints: {0}")]
    Endpoints(#[from] std::io::Error),
    #[error("leader election failed: {0}")]
    Election(#[from] kube_lease_manager::LeaseManagerError),
    #[error("the leader election stopped; stopping so that nothing is written without the Lease")]
    LostLease,
}

/// How long in-flight reconciles get to finish after SIGTERM, so that the
/// Lease is free within two seconds.
const DRAIN: Duration = Duration::from_millis(1200);

/// How the controller process runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Watch only these namespaces; empty for all.
    pub namespaces: Vec<String>,
    /// The Releases this controller reconciles: its shard's.
    pub shard: Shard,
    pub concurrency: u16,
    pub metrics_addr: SocketAddr,
    pub health_addr: SocketAddr,
    /// None: no leader election (a single replica).
    pub lease: Option<LeaseConfig>,
    /// Watch the Secrets of these namespaces, for Releases that snapshot them
    /// (`configSnapshots.secrets`).
    pub snapshot_secrets_in: Vec<String>,
    /// The `group/version/resource`s of `trafficRouting.generic` kinds to watch.
    pub watch_generic: Vec<String>,
}

/// Runs until SIGTERM or Ctrl-C (Ok), or until the Lease is lost (Err).
pub async fn run(clients: client::Clients, metrics: Arc<Metrics>, options: Options) -> Result<(), RunError> {
    let client = clients.controller;
    let ready = Arc::new(AtomicBool::new(false));
    let health = Health {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let bound = endpoints::serve(options.metrics_addr, health.clone()).await?;
    tracing::info!(%bound, "serving /metrics");
    if options.health_addr != options.metrics_addr {
        let bound = endpoints::serve(options.health_addr, health).await?;
        tracing::info!(%bound, "serving /healthz and /readyz");
    }
    let mut shutdown = shutdown_signal();

    let Some(lease) = options.lease.clone() else {
        let (_always, leader) = watch::channel(true);
        lead(client, metrics, &options, leader, ready, shutdown).await;
        return Ok(());
    };
    let leadership = Leadership::campaign(clients.lease, lease).await?;
    let mut is_leader = leadership.is_leader.clone();
    loop {
        // A standby is ready: it is healthy and can take over.
        ready.store(true, Ordering::Relaxed);
        tracing::info!("waiting for the Lease");
        while !*is_leader.borrow_and_update() {
            tokio::select! {
                changed = is_leader.changed() => if changed.is_err() { return Err(RunError::LostLease) },
                _ = shutdown.changed() => {
                    leadership.release().await;
                    return Ok(());
                }
            }
        }
        tracing::info!("holding the Lease; starting the controller");
        ready.store(false, Ordering::Relaxed);
        let mut watching_lease = leadership.is_leader.clone();
        let lost = async move {
            while *watching_lease.borrow_and_update() {
                if watching_lease.changed().await.is_err() {
                    break;
                }
            }
        };
        let leading = lead(
            client.clone(),
            metrics.clone(),
            &options,
            leadership.is_leader.clone(),
            ready.clone(),
            shutdown.clone(),
        );
        tokio::select! {
            _ = leading => break,
            // Dropping the controller stops its writes; campaign again, as a standby.
            _ = lost => tracing::warn!("lost the Lease; stopped the controller until it holds the Lease again"),
        }
        if *shutdown.borrow() {
            break;
        }
    }
    ready.store(false, Ordering::Relaxed);
    leadership.release().await;
    tracing::info!("released the Lease");
    Ok(())
}

/// A channel that turns true on SIGTERM or Ctrl-C.
fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = terminate => {},
            _ = tokio::signal::ctrl_c() => {},
        }
        tracing::info!("shutting down: no new work; finishing what is in flight");
        let _ = tx.send(true);
    });
    rx
}

async fn wait_for(mut signal: watch::Receiver<bool>) {
    while !*signal.borrow_and_update() {
        if signal.changed().await.is_err() {
            return;
        }
    }
}

/// Runs the Release controller over the watched namespaces, for this shard's
/// Releases, until shutdown; then gives in-flight reconciles a moment to finish.
async fn lead(
    client: Client,
    metrics: Arc<Metrics>,
    options: &Options,
    leader: watch::Receiver<bool>,
    ready: Arc<AtomicBool>,
    shutdown: watch::Receiver<bool>,
) {
    let namespaces = &options.namespaces;
    let shard = options.shard;
    // A shard caches only its own Releases and what they own: out-of-shard
    // events are dropped before the reflectors.
    let (replica_sets, rs_writer) = reflector::store();
    let owned = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    let rs_stream = scope::reflect(rs_writer, scope::apis::<CachedReplicaSet>(&client, namespaces), |api| {
        watcher(api, owned.clone())
            .default_backoff()
            .modify(trim::replica_set)
            .filter(move |event| future::ready(shard::keeps(event, |rs| shard.owns_child(rs))))
    })
    .touched_objects();

    // Analysis Jobs: watched only to reconcile their Release when one finishes.
    let job_watches = scope::apis::<Job>(&client, namespaces)
        .into_iter()
        .map(|api| watcher(api, owned.clone()).default_backoff().touched_objects().boxed());
    let job_stream =
        futures::stream::select_all(job_watches).try_filter(move |job| future::ready(shard.owns_child(job)));

    let (releases, release_writer) = reflector::store();
    let (held, gauge, releases_gauge) = (releases.clone(), metrics.clone(), metrics.clone());
    let release_stream = scope::reflect(
        release_writer,
        scope::apis::<CachedRelease>(&client, namespaces),
        |api| {
            watcher(api, watcher::Config::default())
                .default_backoff()
                .modify(trim::release)
                .filter(move |event| future::ready(shard::keeps(event, |release| shard.owns_release(release))))
        },
    )
    .inspect(move |_| gauge.shard_releases(held.len()))
    .touched_objects();

    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let (synced_tx, synced) = watch::channel(false);
    let context = Arc::new(Context {
        reporter,
        client,
        replica_sets: replica_sets.clone(),
        synced,
        http: reqwest::Client::new(),
        metrics,
        leader,
        expectations: Expectations::default(),
    });
    // The one waiter on the store's readiness; everyone else watches `synced`.
    tokio::spawn(async move {
        if replica_sets.wait_until_ready().await.is_ok() {
            let _ = synced_tx.send(true);
            ready.store(true, Ordering::Relaxed);
            tracing::info!("caches synced; ready");
        }
    });
    let steered = steered::watch(
        &context.client,
        namespaces,
        releases.clone(),
        &options.snapshot_secrets_in,
        &options.watch_generic,
    )
    .await;
    let stopping = wait_for(shutdown.clone());
    let controller = Controller::for_stream(release_stream, releases)
        .owns_stream(rs_stream)
        .owns_stream(job_stream)
        .reconcile_on(steered.filter_map(move |trigger| async move {
            trigger
                .inspect_err(|error| tracing::debug!(%error, "watch of steered objects interrupted"))
                .ok()
                .filter(|release| shard.owns(release.namespace.as_deref().unwrap_or_default(), &release.name))
        }))
        .with_config(kube::runtime::controller::Config::default().concurrency(options.concurrency))
        .graceful_shutdown_on(stopping)
        .run(reconcile::timed, error_policy, context.clone())
        .for_each(|result| async {
            match result {
                // The Release was deleted (or a ReplicaSet event came for a
                // deleted one): forget what is kept about it.
                Err(kube::runtime::controller::Error::ObjectNotFound(object)) => {
                    tracing::debug!(%object, "release is gone");
                    context.forget(&(object.namespace.clone().unwrap_or_default(), object.name.clone()));
                }
                // error_policy logged it, with what happens next.
                Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
                Err(error) => tracing::warn!(%error, "reconcile failed"),
                Ok(_) => {}
            }
        });
    let drained = async {
        wait_for(shutdown).await;
        tokio::time::sleep(DRAIN).await;
        tracing::warn!("in-flight reconciles did not finish in time; stopping anyway");
    };
    tokio::select! {
        _ = controller => {},
        _ = drained => {},
    }
    // A standby holds none of the shard's Releases.
    releases_gauge.shard_releases(0);
}

/// What follows a failed reconcile, per kind of failure. Runs in kube-runtime's
/// span of the reconcile, so it enters serin's span for the Release's fields.
fn error_policy(release: Arc<CachedRelease>, error: &Error, _: Arc<Context>) -> Requeue {
    let _span = reconcile::span(release.as_ref()).entered();
    let retry = retry_after(error);
    match (error, retry) {
        (Error::NotLeader, _) => tracing::debug!("the Lease moved during the round; wrote nothing"),
        (_, Some(after)) => tracing::warn!(%error, kind = error.kind(), retry_in = ?after, "will retry"),
        (_, None) => tracing::warn!(%error, kind = error.kind(), "will not retry until the Release changes"),
    }
    match retry {
        Some(after) => Requeue::requeue(after),
        None => Requeue::await_change(),
    }
}

/// When to try again after `error`; None: on the next change only.
fn retry_after(error: &Error) -> Option<Duration> {
    match error {
        // A controller runs only while its process holds the Lease; one that
        // lost it is being stopped, and the next holder starts its own
        // controller, whose first list reconciles every Release.
        Error::NotLeader => None,
        // The ReplicaSet watch is gone only when the controller stops; a
        // Release without a namespace cannot exist. Retrying changes neither.
        Error::CacheGone | Error::MissingNamespace => None,
        // The same bytes decode the same way until the Release changes.
        Error::Undecodable(_) => None,
        Error::Kube(error) | Error::Traffic(RouterError::Kube(error)) => Some(api_retry(error)),
        // A route that changed between its read and its write: the next
        // round reads it again, and shows a misconfiguration on the Release.
        Error::Traffic(RouterError::Misconfigured(_)) => Some(RETRY_TRANSIENT),
    }
}

fn api_retry(error: &kube::Error) -> Duration {
    let kube::Error::Api(status) = error else {
        return RETRY_TRANSIENT; // Connection, TLS, timeout: not the API server's answer.
    };
    match status.code {
        409 => RETRY_CONFLICT,
        // kube's client has already retried these with exponential backoff.
        429 | 503 | 504 => RETRY_OVERLOADED,
        500..=599 => RETRY_TRANSIENT,
        _ => RETRY_REFUSED,
    }
}

/// After a Conflict: another writer won; the next round reads what it wrote.
/// Short, so that a hand edit of a route or selector is put back within seconds.
const RETRY_CONFLICT: Duration = Duration::from_secs(1);
/// After a failure of the connection or the API server, likely passing.
const RETRY_TRANSIENT: Duration = Duration::from_secs(5);
/// After the API server asked to back off, or stayed unavailable, through the
/// client's own retries.
const RETRY_OVERLOADED: Duration = Duration::from_secs(30);
/// After a request the API server refuses (403 Forbidden, 404, 422 Invalid):
/// it fails until someone changes something, and the watches bring most such
/// changes sooner; RBAC is not watched.
const RETRY_REFUSED: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Status::failure("refused", "Reason").with_code(code).boxed())
    }

    #[test]
    fn each_kind_of_failure_is_retried_when_retrying_can_help() {
        let connection = || kube::Error::Service("connection refused".into());
        let cases = [
            (Error::NotLeader, None),
            (Error::CacheGone, None),
            (Error::MissingNamespace, None),
            (Error::Kube(api(409)), Some(RETRY_CONFLICT)),
            (Error::Kube(api(429)), Some(RETRY_OVERLOADED)),
            (Error::Kube(api(503)), Some(RETRY_OVERLOADED)),
            (Error::Kube(api(504)), Some(RETRY_OVERLOADED)),
            (Error::Kube(api(500)), Some(RETRY_TRANSIENT)),
            (Error::Kube(api(502)), Some(RETRY_TRANSIENT)),
            (Error::Kube(connection()), Some(RETRY_TRANSIENT)),
            (Error::Kube(api(403)), Some(RETRY_REFUSED)),
            (Error::Kube(api(404)), Some(RETRY_REFUSED)),
            (Error::Kube(api(422)), Some(RETRY_REFUSED)),
            // Through the router: as the API failure underneath.
            (Error::Traffic(RouterError::Kube(api(409))), Some(RETRY_CONFLICT)),
            (Error::Traffic(RouterError::Kube(connection())), Some(RETRY_TRANSIENT)),
            (
                Error::Traffic(RouterError::Misconfigured("no rule".into())),
                Some(RETRY_TRANSIENT),
            ),
        ];
        for (error, want) in cases {
            assert_eq!(retry_after(&error), want, "{error:?}");
        }
        assert!(
            RETRY_CONFLICT < Duration::from_secs(2),
            "a conflict is retried within 2 s"
        );
    }

    #[tokio::test]
    async fn the_policy_requeues_as_the_table_says() {
        let fx = fixtures::Fixture::new();
        let release = fixtures::cached(&fixtures::release(serde_json::json!({ "rolling": {} })));
        let policy = |error: Error| error_policy(release.clone(), &error, fx.ctx.clone());
        assert_eq!(policy(Error::NotLeader), Requeue::await_change());
        assert_eq!(policy(Error::Kube(api(409))), Requeue::requeue(RETRY_CONFLICT));
    }
}
