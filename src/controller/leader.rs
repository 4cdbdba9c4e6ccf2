//! Leader election on a coordination.k8s.io Lease, through kube-lease-manager.
//! Besides the manager's own timers, the Lease is watched, so that a standby
//! takes a released Lease at once rather than when it would have expired.
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::FIELD_MANAGER;

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

impl Leadership {
    /// Starts campaigning.
    pub async fn campaign(client: Client, config: LeaseConfig) -> Result<Self, kube_lease_manager::LeaseManagerError> {
        let duration = config.duration_seconds.max(2);
        // Renew halfway to expiry, leaving half the duration for a slow API server.
        let grace = (duration / 2).max(1);
        let mut builder = LeaseManagerBuilder::new(client.clone(), &config.name)
            .with_namespace(&config.namespace)
            .with_duration(duration)
            .with_grace(grace)
            .with_field_manager(FIELD_MANAGER);
        if let Some(identity) = &config.identity {
            builder = builder.with_identity(identity);
        }
        let manager = builder.build().await?;
        let (leader_tx, is_leader) = watch::channel(false);
        let (stop, mut stopping) = watch::channel(false);
        let leases: Api<Lease> = Api::namespaced(client, &config.namespace);
        let by_name = watcher::Config::default().fields(&format!("metadata.name={}", config.name));
        let task = tokio::spawn(async move {
            let mut lease_changes = watcher(leases, by_name).default_backoff().touched_objects().boxed();
            let mut leading = false;
            loop {
                tokio::select! {
                    biased;
                    _ = stopping.changed() => {
                        if let Err(error) = manager.release().await {
                            tracing::warn!(%error, "could not release the Lease");
                        }
                        let _ = leader_tx.send(false);
                        return;
                    }
                    changed = manager.changed() => match changed {
                        Ok(leader) => {
                            tracing::info!(leader, "leadership changed");
                            leading = leader;
                            let _ = leader_tx.send(leader);
                        }
                        Err(error) => {
                            tracing::warn!(%error, "leader election failed; trying again");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    },
                    // A standby looks again at once when the Lease changes (say, is
                    // released). The leader does not: its own renewals would
                    // interrupt it mid-renewal, and it would renew again and again.
                    Some(_) = lease_changes.next(), if !leading => {}
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
