//! Traffic routers: how a canary's weight reaches the network. One trait, one
//! file per router. Without `trafficRouting` the weight is carried by the replica
//! ratio, which the planner handles by scaling (see `plan::canary`), so that case
//! needs no router. Adding Istio or SMI is one more file and one arm in [`router`].
pub mod gateway_api;
pub mod nginx;

use futures::future::BoxFuture;
use kube::Client;

use crate::api::Release;

/// Why a router cannot report or set a weight.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// Something the user must fix (a missing route, a rule without the canary
    /// backend). Shown on the Release; nothing is switched until it is fixed.
    #[error("{0}")]
    Misconfigured(String),
    /// An API failure: retried.
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
}

/// Splits traffic between the stable and canary Services.
pub trait TrafficRouter: Send + Sync {
    /// Percent of traffic sent to the canary Service now. `Ok(None)` when the
    /// router's objects are not set up (or have drifted from what serin
    /// maintains), so the next `set_weight` must write them.
    fn canary_weight(&self) -> BoxFuture<'_, Result<Option<i32>, RouterError>>;
    /// Sends `canary` percent (0..=100) to the canary Service and the rest to the stable one.
    fn set_weight(&self, canary: i32) -> BoxFuture<'_, Result<(), RouterError>>;
}

/// The router the Release's canary strategy configures, if any.
pub fn router(client: &Client, release: &Release) -> Option<Box<dyn TrafficRouter>> {
    let canary = release.spec.strategy.canary.as_ref()?;
    let routing = canary.traffic_routing.as_ref()?;
    let services = Services {
        stable: canary.stable_service.clone()?,
        canary: canary.canary_service.clone()?,
    };
    if let Some(gateway) = &routing.gateway_api {
        return Some(Box::new(gateway_api::GatewayApi::new(
            client, release, services, gateway,
        )));
    }
    if let Some(nginx) = &routing.nginx {
        return Some(Box::new(nginx::Nginx::new(client, release, services, nginx)));
    }
    None
}

/// The two Services a router splits traffic between.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Services {
    pub stable: String,
    pub canary: String,
}
