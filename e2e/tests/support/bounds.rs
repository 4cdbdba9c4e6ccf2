//! A sampler of the bounds a rolling update keeps: every state of the
//! namespace's ReplicaSets, as a watch delivers them, against maxSurge (total
//! pods) and maxUnavailable (available pods).
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};

/// (spec replicas, available) of a ReplicaSet.
pub fn counts(rs: &ReplicaSet) -> (i32, i32) {
    let spec = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let available = rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
    (spec, available)
}

/// Watches the namespace's ReplicaSets and records every state that breaks
/// maxSurge (total pods) or maxUnavailable (available pods).
pub struct BoundsSampler {
    violations: Arc<Mutex<Vec<String>>>,
    samples: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl BoundsSampler {
    /// Starts watching; returns once the watch holds the namespace's current state.
    pub async fn start(api: Api<ReplicaSet>, max_total: i32, min_available: i32) -> Self {
        let violations = Arc::new(Mutex::new(Vec::new()));
        let samples = Arc::new(Mutex::new(0));
        let (v, s) = (violations.clone(), samples.clone());
        let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut synced = Some(synced_tx);
            let mut state: BTreeMap<String, (i32, i32)> = BTreeMap::new();
            let mut events = watcher(api, watcher::Config::default()).default_backoff().boxed();
            while let Some(Ok(event)) = events.next().await {
                match event {
                    watcher::Event::Apply(rs) | watcher::Event::InitApply(rs) => {
                        state.insert(rs.metadata.name.clone().unwrap_or_default(), counts(&rs));
                    }
                    watcher::Event::Delete(rs) => {
                        state.remove(rs.metadata.name.as_deref().unwrap_or_default());
                    }
                    watcher::Event::InitDone => {
                        if let Some(tx) = synced.take() {
                            let _ = tx.send(());
                        }
                    }
                    watcher::Event::Init => {}
                }
                // Judge only whole states: not halfway through the initial list.
                if synced.is_some() {
                    continue;
                }
                let total: i32 = state.values().map(|c| c.0).sum();
                let available: i32 = state.values().map(|c| c.1).sum();
                *s.lock().unwrap() += 1;
                if total > max_total || available < min_available {
                    v.lock()
                        .unwrap()
                        .push(format!("total {total}, available {available}: {state:?}"));
                }
            }
        });
        synced_rx.await.expect("the ReplicaSet watch lists the namespace");
        Self {
            violations,
            samples,
            task,
        }
    }

    pub fn finish(self) -> usize {
        self.task.abort();
        let violations = self.violations.lock().unwrap();
        assert!(violations.is_empty(), "rollout bounds broken: {violations:#?}");
        *self.samples.lock().unwrap()
    }
}
