//! Traffic routers: how a canary's weight reaches the network. One trait, one
//! file per router. Without `trafficRouting` the weight is carried by the replica
//! ratio, which the planner handles by scaling (see `plan::canary_traffic`), so that case
//! needs no router.
//!
//! Each router file declares a [`Router`]: the `trafficRouting` field that
//! selects it, the objects it steers and how it is built. Adding Istio or SMI is
//! one more file, its field in `TrafficRouting`, and one entry in [`ROUTERS`];
//! the controller builds, watches and maps events through this list alone.
mod added;
pub mod gateway_api;
pub mod generic;
pub mod istio;
pub mod nginx;

use futures::future::BoxFuture;
use kube::Client;
use kube::api::{ApiResource, GroupVersionKind};

use crate::api::{Release, TrafficRouting};

/// Every router serin knows, in the order `router` tries them.
pub const ROUTERS: &[Router] = &[gateway_api::ROUTER, nginx::ROUTER, istio::ROUTER, generic::ROUTER];

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
    /// What the router's objects carry now (see [`Shown`]).
    fn shown(&self) -> BoxFuture<'_, Result<Shown, RouterError>>;
    /// Sends `canary` percent (0..=100) to the canary Service and the rest to the stable one.
    fn set_weight(&self, canary: i32) -> BoxFuture<'_, Result<(), RouterError>>;
    /// Puts the routes of `steps` (indexes into the canary's steps) in place,
    /// and removes every other route serin added.
    fn set_routes<'a>(&'a self, steps: &'a [usize]) -> BoxFuture<'a, Result<(), RouterError>>;
    /// A Service now selects another revision: a router that mirrors the
    /// Services' selection (Istio's DestinationRule subsets) follows at once.
    fn selected<'a>(&'a self) -> BoxFuture<'a, Result<(), RouterError>> {
        Box::pin(async { Ok(()) })
    }
}

/// What a router's objects carry now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shown {
    /// Percent of traffic sent to the canary Service. None when the router's
    /// objects are not set up (or have drifted from what serin maintains), so
    /// the next `set_weight` must write them.
    pub canary_weight: Option<i32>,
    /// The canary steps whose `setHeaderRoute` or `setMirrorRoute` routes are
    /// in place, ascending, each exactly as that step writes it. None when a
    /// route serin wrote drifted or names no such step, so the next
    /// `set_routes` must write them.
    pub routes: Option<Vec<usize>>,
    /// A controller reports on the objects (Gateway API `status.parents`).
    pub reports_acceptance: bool,
    /// Why the reporting controller does not accept their latest generation.
    pub unaccepted: Option<String>,
    /// Route steps whose routes cannot be written onto the objects (a
    /// condition the user's match already tests), and why.
    pub route_problems: Vec<(usize, String)>,
    /// How many header and mirror routes fit in the objects at once, where
    /// the kind bounds them (Gateway API: 16 rules per route); None: no bound.
    pub route_capacity: Option<usize>,
}

/// One router as the controller sees it before any Release chooses it.
pub struct Router {
    /// The kinds of object it reads or writes, watched from start (when the
    /// cluster serves them) so an outside edit is put back at once.
    pub watches: &'static [Watched],
    /// The objects it steers for this `trafficRouting`, by kind and name in the
    /// Release's namespace; empty when `trafficRouting` chooses another router.
    pub steers: for<'a> fn(&'a TrafficRouting) -> Vec<(ObjectKind, &'a str)>,
    /// The router for `release`, when its `trafficRouting` chooses this one.
    pub build: Build,
}

/// How a [`Router`] is built: `None` when `trafficRouting` chooses another.
pub type Build = fn(&Client, &Release, Services, &TrafficRouting) -> Option<Box<dyn TrafficRouter>>;

/// A kind of object in the Release's namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
}

impl ObjectKind {
    pub fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(self.group, self.version, self.kind), self.plural)
    }
}

/// A kind a router reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watched {
    pub kind: ObjectKind,
    /// The objects of this kind that serin creates carry `api::RELEASE_LABEL`
    /// naming their Release, which maps their events back to it without a name.
    pub labelled: bool,
}

/// The router the Release's canary strategy configures, if any.
pub fn router(client: &Client, release: &Release) -> Option<Box<dyn TrafficRouter>> {
    let canary = release.spec.strategy.canary.as_ref()?;
    let routing = canary.traffic_routing.as_ref()?;
    let services = Services {
        stable: canary.stable_service.clone()?,
        canary: canary.canary_service.clone()?,
    };
    ROUTERS
        .iter()
        .find_map(|router| (router.build)(client, release, services.clone(), routing))
}

/// Whether the router `release` configures reads or writes the `kind` object
/// called `name` in the Release's namespace.
pub fn steers(release: &Release, kind: &ObjectKind, name: &str) -> bool {
    let Some(routing) = release
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routing.as_ref())
    else {
        return false;
    };
    ROUTERS
        .iter()
        .flat_map(|router| (router.steers)(routing))
        .any(|(k, n)| k == *kind && n == name)
}

/// The kinds every router watches, each once: labelled when any router labels it.
pub fn watched_kinds() -> Vec<Watched> {
    distinct(ROUTERS.iter().flat_map(|router| router.watches))
}

fn distinct<'a>(watches: impl Iterator<Item = &'a Watched>) -> Vec<Watched> {
    let mut kinds: Vec<Watched> = Vec::new();
    for watched in watches {
        match kinds.iter_mut().find(|k| k.kind == watched.kind) {
            Some(known) => known.labelled |= watched.labelled,
            None => kinds.push(*watched),
        }
    }
    kinds
}

/// A 404: the object is missing, or its kind is not served at all. kube's
/// `is_not_found` wants the NotFound reason, which the API server's plain-text
/// 404 for an unserved kind (a CRD not installed) lacks.
pub(crate) fn not_found(status: &kube::core::Status) -> bool {
    status.code == 404
}

/// The two Services a router splits traffic between.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Services {
    pub stable: String,
    pub canary: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ObjectKind = ObjectKind {
        group: "example.com",
        version: "v1",
        kind: "A",
        plural: "as",
    };
    const B: ObjectKind = ObjectKind {
        kind: "B",
        plural: "bs",
        ..A
    };

    fn watched(kind: ObjectKind, labelled: bool) -> Watched {
        Watched { kind, labelled }
    }

    #[test]
    fn a_plain_404_is_not_found_though_kube_does_not_say_so() {
        let plain = kube::core::Status::failure("404 page not found", "Failed to parse error data").with_code(404);
        assert!(!plain.is_not_found(), "kube's own check, which missed an unserved kind");
        assert!(not_found(&plain));
        assert!(!not_found(
            &kube::core::Status::failure("forbidden", "Forbidden").with_code(403)
        ));
    }

    #[test]
    fn each_kind_is_watched_once_and_labelled_if_any_router_labels_it() {
        let watches = [
            watched(A, false),
            watched(B, false),
            watched(A, true),
            watched(B, false),
        ];
        assert_eq!(distinct(watches.iter()), [watched(A, true), watched(B, false)]);
    }

    #[test]
    fn every_router_watches_the_kinds_it_steers() {
        let routings: Vec<TrafficRouting> = [
            serde_json::json!({ "gatewayAPI": { "httpRoutes": [{ "name": "a" }, { "name": "b" }] } }),
            serde_json::json!({ "nginx": { "ingress": "web" } }),
            serde_json::json!({ "istio": { "virtualService": { "name": "web" },
                "destinationRule": { "name": "web", "stableSubsetName": "s", "canarySubsetName": "c" } } }),
        ]
        .into_iter()
        .map(|r| serde_json::from_value(r).unwrap())
        .collect();
        for router in ROUTERS {
            for routing in &routings {
                for (kind, name) in (router.steers)(routing) {
                    assert!(
                        router.watches.iter().any(|w| w.kind == kind),
                        "{name}: {kind:?} is steered but not watched"
                    );
                }
            }
        }
        let steering: Vec<usize> = routings
            .iter()
            .map(|routing| ROUTERS.iter().filter(|r| !(r.steers)(routing).is_empty()).count())
            .collect();
        assert_eq!(steering, [1, 1, 1], "each routing is steered by exactly its router");
        let kinds = watched_kinds();
        for want in [watched(gateway_api::HTTP_ROUTE, false), watched(nginx::INGRESS, true)] {
            assert!(kinds.contains(&want), "{want:?} not in {kinds:?}");
        }
    }
}
