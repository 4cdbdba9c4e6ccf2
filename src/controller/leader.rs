//! Leader election on a coordination.k8s.io Lease, through kube-lease-manager.
//! Besides the manager's own timers, the Lease is watched:
//! - a standby takes a released Lease at once, not when its cached copy of the
//!   Lease says it would have expired;
//! - a deleted Lease is recreated and campaigned for again; the holder steps
//!   down (writes stop) until it holds the new one.
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::FIELD_MANAGER;

/// Where and how long the Lease is held.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// None: a random identity.
    pub identity: Option<String>,
    pub duration_seconds: u64,
}

/// A campaign for the Lease, running until released.
pub struct Leadership {
    /// True while this process holds the Lease.
    pub is_leader: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// What a change of the Lease object means for this campaign.
#[derive(Debug, PartialEq, Eq)]
enum LeaseChange {
    /// Nothing this campaign must act on now (a renewal, say).
    Ignore,
    /// Nobody holds it: a standby should try at once.
    Free,
    /// The object is gone: recreate it and campaign again.
    Deleted,
}

/// Tracks a watch (re-)list: one that ends without the Lease means it was
/// deleted while the watch was down, and no Delete event will come.
#[derive(Default)]
struct Listing {
    saw_lease: bool,
}

impl Listing {
    fn classify(&mut self, event: &Event<Lease>) -> LeaseChange {
        match event {
            Event::Init => self.saw_lease = false,
            Event::InitApply(_) => self.saw_lease = true,
            Event::InitDone if !self.saw_lease => return LeaseChange::Deleted,
            _ => {}
        }
        classify(event)
    }
}

fn classify(event: &Event<Lease>) -> LeaseChange {
    match event {
        Event::Delete(_) => LeaseChange::Deleted,
        Event::Apply(lease) | Event::InitApply(lease) => {
            let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref());
            if holder.is_none_or(str::is_empty) {
                LeaseChange::Free
            } else {
                LeaseChange::Ignore
            }
        }
        Event::Init | Event::InitDone => LeaseChange::Ignore,
    }
}

impl Leadership {
    /// Starts campaigning.
    pub async fn campaign(client: Client, config: LeaseConfig) -> Result<Self, LeaseManagerError> {
        // One identity for every manager this campaign builds, so that a
        // rebuilt manager recognises a Lease it already holds.
        let identity = config.identity.clone().unwrap_or_else(random_identity);
        let build = {
            let (client, config, identity) = (client.clone(), config.clone(), identity.clone());
            move || build_manager(client.clone(), config.clone(), identity.clone())
        };
        let mut manager = Arc::new(build().await?);
        let (leader_tx, is_leader) = watch::channel(false);
        let (stop, mut stopping) = watch::channel(false);
        let leases: Api<Lease> = Api::namespaced(client, &config.namespace);
        let by_name = watcher::Config::default().fields(&format!("metadata.name={}", config.name));
        let task = tokio::spawn(async move {
            let mut lease_changes = watcher::watcher(leases, by_name).default_backoff().boxed();
            // Kept across loop turns: dropping it mid-renewal would renew again and again.
            let mut changed = changes(&manager);
            let mut leading = false;
            let mut listing = Listing::default();
            loop {
                tokio::select! {
                    biased;
                    _ = stopping.changed() => {
                        // A renewal in flight holds the manager's lock: end it first.
                        drop(changed);
                        if let Err(error) = manager.release().await {
                            tracing::warn!(%error, "could not release the Lease");
                        }
                        let _ = leader_tx.send(false);
                        return;
                    }
                    outcome = &mut changed => {
                        match outcome {
                            Ok(leader) => {
                                tracing::info!(leader, "leadership changed");
                                leading = leader;
                                let _ = leader_tx.send(leader);
                            }
                            Err(error) if is_missing(&error) => {
                                tracing::warn!("the Lease was deleted; recreating it and campaigning again");
                                step_down(&mut leading, &leader_tx);
                                manager = rebuild(&build, manager).await;
                            }
                            Err(error) => {
                                tracing::warn!(%error, "leader election failed; trying again");
                                tokio::time::sleep(RETRY).await;
                            }
                        }
                        changed = changes(&manager);
                    }
                    Some(event) = lease_changes.next() => match event.as_ref().map(|e| listing.classify(e)) {
                        Ok(LeaseChange::Deleted) => {
                            tracing::warn!("the Lease was deleted; recreating it and campaigning again");
                            step_down(&mut leading, &leader_tx);
                            manager = rebuild(&build, manager).await;
                            changed = changes(&manager);
                        }
                        // The manager trusts its cached expiry; a fresh one reads the Lease again.
                        Ok(LeaseChange::Free) if !leading => {
                            manager = rebuild(&build, manager).await;
                            changed = changes(&manager);
                        }
                        Ok(_) => {}
                        Err(error) => tracing::debug!(%error, "Lease watch interrupted"),
                    },
                }
            }
        });
        Ok(Leadership { is_leader, stop, task })
    }

    /// Gives the Lease up, so that a standby can take it at once.
    pub async fn release(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(1), self.task).await.is_err() {
            tracing::warn!("releasing the Lease took over a second");
        }
    }
}

/// The Lease is gone: the manager says so, or a renewal's patch found nothing.
fn is_missing(error: &LeaseManagerError) -> bool {
    match error {
        LeaseManagerError::NonexistentLease(_) => true,
        LeaseManagerError::KubeError(kube::Error::Api(status)) => status.is_not_found(),
        _ => false,
    }
}

/// The Lease's field manager: one per replica. kube-lease-manager takes the
/// Lease with a server-side apply of `holderIdentity` that is not forced, so
/// only a different manager's claim conflicts; with one shared manager two
/// replicas claiming a free Lease at once would both win.
fn lease_field_manager(identity: &str) -> String {
    let mut manager = format!("{FIELD_MANAGER}/{identity}");
    let mut end = manager.len().min(FIELD_MANAGER_MAX);
    while !manager.is_char_boundary(end) {
        end -= 1;
    }
    manager.truncate(end);
    manager
}

async fn build_manager(
    client: Client,
    config: LeaseConfig,
    identity: String,
) -> Result<LeaseManager, LeaseManagerError> {
    let duration = config.duration_seconds.max(2);
    // Renew halfway to expiry, leaving half the duration for a slow API server.
    let grace = (duration / 2).max(1);
    LeaseManagerBuilder::new(client, &config.name)
        .with_namespace(&config.namespace)
        .with_duration(duration)
        .with_grace(grace)
        .with_field_manager(lease_field_manager(&identity))
        .with_identity(identity)
        .build()
        .await
}

/// A new manager (which creates the Lease if it is missing); the old one while that fails.
async fn rebuild<F, Fut>(build: &F, old: Arc<LeaseManager>) -> Arc<LeaseManager>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<LeaseManager, LeaseManagerError>>,
{
    match build().await {
        Ok(manager) => Arc::new(manager),
        Err(error) => {
            tracing::warn!(%error, "could not set up the Lease; trying again");
            tokio::time::sleep(RETRY).await;
            old
        }
    }
}

fn changes(manager: &Arc<LeaseManager>) -> BoxFuture<'static, Result<bool, LeaseManagerError>> {
    let manager = manager.clone();
    async move { manager.changed().await }.boxed()
}

fn step_down(leading: &mut bool, leader_tx: &watch::Sender<bool>) {
    if std::mem::take(leading) {
        tracing::info!(leader = false, "leadership changed");
        let _ = leader_tx.send(false);
    }
}

fn random_identity() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("serin-{}-{nanos:08x}", std::process::id())
}

/// Pause before trying again after a failed election step.
const RETRY: Duration = Duration::from_secs(1);

/// The longest field manager name the API server accepts.
const FIELD_MANAGER_MAX: usize = 128;

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;

    fn lease(holder: Option<&str>) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: holder.map(String::from),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn lease_changes_are_classified() {
        let table = [
            (Event::Apply(lease(Some("serin-a"))), LeaseChange::Ignore),
            (Event::Apply(lease(None)), LeaseChange::Free),
            (Event::Apply(lease(Some(""))), LeaseChange::Free),
            (Event::InitApply(lease(None)), LeaseChange::Free),
            (Event::Delete(lease(Some("serin-a"))), LeaseChange::Deleted),
            (Event::Init, LeaseChange::Ignore),
            (Event::InitDone, LeaseChange::Ignore),
        ];
        for (event, expected) in table {
            assert_eq!(classify(&event), expected, "{event:?}");
        }
    }

    #[test]
    fn a_relist_without_the_lease_means_it_was_deleted() {
        let mut listing = Listing::default();
        assert_eq!(listing.classify(&Event::Init), LeaseChange::Ignore);
        assert_eq!(
            listing.classify(&Event::InitApply(lease(Some("serin-a")))),
            LeaseChange::Ignore
        );
        assert_eq!(listing.classify(&Event::InitDone), LeaseChange::Ignore);
        assert_eq!(listing.classify(&Event::Init), LeaseChange::Ignore);
        assert_eq!(listing.classify(&Event::InitDone), LeaseChange::Deleted);
    }

    #[test]
    fn each_replica_claims_the_lease_as_a_manager_of_its_own() {
        assert_eq!(lease_field_manager("serin-a"), "serin/serin-a");
        assert_ne!(lease_field_manager("serin-a"), lease_field_manager("serin-b"));
        assert_eq!(lease_field_manager(&"é".repeat(100)).len(), 128);
    }
}
