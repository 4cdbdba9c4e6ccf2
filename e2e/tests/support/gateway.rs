//! A stand-in gateway controller: it accepts each new generation of the
//! HTTPRoutes in a namespace some time after it appears, writing
//! `status.parents` as a Gateway API implementation does, until told to go
//! silent. Polled, not watched: it is the cluster's part, not the test's.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use crate::canary::routes;

pub const CONTROLLER: &str = "example.com/stand-in-gateway";

pub struct StandInGateway {
    silent: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl StandInGateway {
    /// Accepts each new generation of every HTTPRoute in `ns` after `delay`.
    pub fn start(client: &Client, ns: &str, delay: Duration) -> Self {
        let silent = Arc::new(AtomicBool::new(false));
        let api = routes(client, ns);
        let quiet = silent.clone();
        let task = tokio::spawn(async move {
            // (route, generation) -> when first seen unaccepted.
            let mut seen: Vec<(String, i64, Instant)> = Vec::new();
            loop {
                if !quiet.load(Ordering::SeqCst) {
                    accept_due(&api, &mut seen, delay).await;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        StandInGateway { silent, task }
    }

    /// Stops accepting: routes keep the last generation accepted.
    pub fn go_silent(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }

    pub fn speak_again(&self) {
        self.silent.store(false, Ordering::SeqCst);
    }
}

impl Drop for StandInGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_due(api: &Api<DynamicObject>, seen: &mut Vec<(String, i64, Instant)>, delay: Duration) {
    let list = match api.list(&Default::default()).await {
        Ok(list) => list,
        Err(e) => return eprintln!("stand-in gateway: {e}"),
    };
    for route in list {
        let (Some(name), Some(generation)) = (route.metadata.name.clone(), route.metadata.generation) else {
            continue;
        };
        let accepted = route.data["status"]["parents"][0]["conditions"][0]["observedGeneration"].as_i64();
        if accepted == Some(generation) {
            continue;
        }
        let first = match seen.iter().find(|(n, g, _)| *n == name && *g == generation) {
            Some((_, _, at)) => *at,
            None => {
                seen.push((name.clone(), generation, Instant::now()));
                Instant::now()
            }
        };
        if first.elapsed() < delay {
            continue;
        }
        let status = json!({ "status": { "parents": [{
            "parentRef": { "name": "gw" },
            "controllerName": CONTROLLER,
            "conditions": [{
                "type": "Accepted", "status": "True", "reason": "Accepted", "message": "stand-in",
                "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z",
            }],
        }] } });
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            eprintln!("stand-in gateway: {e}");
        }
    }
}
