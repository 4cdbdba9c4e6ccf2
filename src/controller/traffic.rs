//! Reading and steering a canary's Services and traffic router.
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::{Context, Error};
use crate::api::{FIELD_MANAGER, REVISION_LABEL, Release};
use crate::plan::Traffic;
use crate::traffic::{self, RouterError, TrafficRouter};

/// The canary's Services and router as they are now, and the router to steer with.
pub async fn observe(ctx: &Context, release: &Release) -> Result<(Traffic, Option<Box<dyn TrafficRouter>>), Error> {
    let mut observed = Traffic::default();
    let strategy = &release.spec.strategy;
    let (stable, canary) = if let Some(canary) = &strategy.canary {
        (
            ("spec.strategy.canary.stableService", canary.stable_service.clone()),
            ("spec.strategy.canary.canaryService", canary.canary_service.clone()),
        )
    } else if let Some(blue_green) = &strategy.blue_green {
        (
            (
                "spec.strategy.blueGreen.activeService",
                Some(blue_green.active_service.clone()),
            ),
            (
                "spec.strategy.blueGreen.previewService",
                blue_green.preview_service.clone(),
            ),
        )
    } else {
        return Ok((observed, None));
    };
    let namespace = release.namespace().unwrap_or_default();
    let services = Api::<Service>::namespaced(ctx.client.clone(), &namespace);
    let wanted = [
        (stable.0, stable.1, &mut observed.stable_service),
        (canary.0, canary.1, &mut observed.canary_service),
    ];
    let mut problem = None;
    for (field, name, selects) in wanted {
        let Some(name) = name else { continue };
        match services.get_opt(&name).await? {
            Some(service) => {
                *selects = service
                    .spec
                    .and_then(|s| s.selector)
                    .and_then(|s| s.get(REVISION_LABEL).cloned());
            }
            None => {
                problem.get_or_insert(format!(
                    "{field}: Service {name:?} not found in namespace {namespace:?}"
                ));
            }
        }
    }
    let router = traffic::router(&ctx.client, release);
    if let (Some(router), None) = (&router, &problem) {
        match router.shown().await {
            Ok(shown) => {
                observed.canary_weight = shown.canary_weight;
                observed.routes = shown.routes;
                observed.reports_acceptance = shown.reports_acceptance;
                observed.unaccepted = shown.unaccepted;
                observed.route_problems = shown.route_problems;
                observed.route_capacity = shown.route_capacity;
            }
            Err(RouterError::Misconfigured(message)) => problem = Some(message),
            Err(error @ RouterError::Kube(_)) => return Err(Error::Traffic(error)),
        }
    }
    observed.problem = problem;
    Ok((observed, router))
}

/// Points a Service's revision selector at `revision`, keeping every other
/// key of its selector. `spec.selector` is an atomic map, so an apply of just
/// the revision key would replace the user's keys: serin applies the whole map
/// as it is now, plus its key. A re-apply of the user's Service that drops the
/// key is seen by the Service watch and put back at once.
pub async fn select(ctx: &Context, release: &Release, service: &str, revision: &str) -> Result<(), Error> {
    let api = Api::<Service>::namespaced(ctx.client.clone(), &release.namespace().unwrap_or_default());
    let live = api.get(service).await?;
    let selector = with_revision(live.spec.and_then(|s| s.selector).unwrap_or_default(), revision);
    let patch = json!({
        "apiVersion": "v1",
        "kind": "Service",
        // The map as read: a change made since is a conflict, not overwritten.
        "metadata": { "name": service, "resourceVersion": live.metadata.resource_version },
        "spec": { "selector": selector },
    });
    api.patch(
        service,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// The selector with serin's revision key set to `revision`, the rest untouched.
fn with_revision(mut selector: BTreeMap<String, String>, revision: &str) -> BTreeMap<String, String> {
    selector.insert(REVISION_LABEL.to_string(), revision.to_string());
    selector
}

/// Sets the canary's share of traffic through the router.
pub async fn set_weight(router: Option<&dyn TrafficRouter>, canary: i32) -> Result<(), Error> {
    let Some(router) = router else {
        return Ok(()); // The replica ratio carries the weight.
    };
    router.set_weight(canary).await.map_err(Error::Traffic)
}

/// Lets the router follow a Service that now selects another revision.
pub async fn selected(router: Option<&dyn TrafficRouter>) -> Result<(), Error> {
    match router {
        Some(router) => router.selected().await.map_err(Error::Traffic),
        None => Ok(()),
    }
}

/// Puts the header and mirror routes of `steps` in place, and no others.
pub async fn set_routes(router: Option<&dyn TrafficRouter>, steps: &[usize]) -> Result<(), Error> {
    let Some(router) = router else {
        return Ok(()); // Route steps need a router; the schema says so.
    };
    router.set_routes(steps).await.map_err(Error::Traffic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_revision_key_joins_the_users_selector() {
        let user: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let selector = with_revision(user.clone(), "abc");
        assert_eq!(selector.get("app").map(String::as_str), Some("web"));
        assert_eq!(selector.get(REVISION_LABEL).map(String::as_str), Some("abc"));
        let moved = with_revision(selector, "def");
        assert_eq!(moved.len(), 2);
        assert_eq!(moved.get(REVISION_LABEL).map(String::as_str), Some("def"));
    }

    mod io {
        use std::error::Error as _;

        use serde_json::{Value, json};

        use super::super::super::fixtures::{Exchange, Fixture, release};
        use super::*;

        const SERVICES: &str = "/api/v1/namespaces/shop/services";
        const ROUTE: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/web";

        fn routed() -> Release {
            release(json!({ "canary": {
                "stableService": "web-stable", "canaryService": "web-canary", "steps": [{ "setWeight": 50 }],
                "trafficRouting": { "gatewayAPI": { "httpRoutes": [{ "name": "web" }] } },
            } }))
        }

        fn service(name: &str, revision: &str) -> Value {
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": { "name": name, "namespace": "shop", "resourceVersion": "7" },
                "spec": { "selector": { "app": "web", REVISION_LABEL: revision } },
            })
        }

        /// The reads of both Services, selecting `old` and `new`.
        fn services() -> Vec<Exchange> {
            vec![
                Exchange::get(&format!("{SERVICES}/web-stable")).answer(service("web-stable", "old")),
                Exchange::get(&format!("{SERVICES}/web-canary")).answer(service("web-canary", "new")),
            ]
        }

        #[tokio::test]
        async fn a_missing_route_or_route_type_is_the_problem_shown_on_the_release() {
            let cases = [
                (Some("web"), r#"HTTPRoute "web" not found in namespace "shop""#.to_string()),
                (
                    None,
                    r#"cannot read HTTPRoute "web" in namespace "shop": the Gateway API CRDs (gateway.networking.k8s.io/v1 HTTPRoute) are not installed"#.to_string(),
                ),
            ];
            for (named, problem) in cases {
                let mut fx = Fixture::new();
                let mut not_found = Exchange::get(ROUTE).fail(404, "NotFound");
                if let Some(name) = named {
                    not_found = not_found.about(name);
                }
                let mut scenario = services();
                scenario.push(not_found);
                let release = routed();
                let (traffic, router) = fx.server.serve(scenario, observe(&fx.ctx, &release)).await.unwrap();
                assert_eq!(traffic.problem.as_deref(), Some(problem.as_str()));
                assert_eq!(
                    (traffic.stable_service.as_deref(), traffic.canary_service.as_deref()),
                    (Some("old"), Some("new"))
                );
                assert!(router.is_some());
            }
        }

        #[tokio::test]
        async fn a_missing_service_is_the_problem_and_the_router_is_not_asked() {
            let mut fx = Fixture::new();
            let scenario = vec![
                Exchange::get(&format!("{SERVICES}/web-stable"))
                    .fail(404, "NotFound")
                    .about("web-stable"),
                Exchange::get(&format!("{SERVICES}/web-canary")).answer(service("web-canary", "new")),
            ];
            let release = routed();
            let (traffic, _) = fx.server.serve(scenario, observe(&fx.ctx, &release)).await.unwrap();
            assert_eq!(
                traffic.problem.as_deref(),
                Some(r#"spec.strategy.canary.stableService: Service "web-stable" not found in namespace "shop""#)
            );
        }

        #[tokio::test]
        async fn a_failing_route_read_is_a_traffic_error_with_the_api_error_as_source() {
            let mut fx = Fixture::new();
            let mut scenario = services();
            scenario.push(Exchange::get(ROUTE).fail(500, "InternalError"));
            let release = routed();
            let error = match fx.server.serve(scenario, observe(&fx.ctx, &release)).await {
                Err(error) => error,
                Ok(observed) => panic!("a 500 read as {:?}", observed.0),
            };
            assert!(
                matches!(&error, Error::Traffic(RouterError::Kube(kube::Error::Api(s))) if s.code == 500),
                "{error:?}"
            );
            let router = error.source().expect("the router's error");
            assert!(router.is::<RouterError>(), "{router:?}");
            let api = router.source().expect("the API error");
            assert!(api.is::<kube::Error>(), "{api:?}");
        }

        #[tokio::test]
        async fn a_route_found_misconfigured_when_writing_is_a_traffic_error() {
            let mut fx = Fixture::new();
            let stable_only = json!({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": { "name": "web", "namespace": "shop", "resourceVersion": "9" },
                "spec": { "rules": [{ "backendRefs": [{ "name": "web-stable", "port": 80 }] }] },
            });
            let release = routed();
            let router = crate::traffic::router(&fx.ctx.client, &release).expect("a router");
            let scenario = vec![Exchange::get(ROUTE).answer(stable_only)];
            let result = fx.server.serve(scenario, set_weight(Some(router.as_ref()), 50)).await;
            match result {
                Err(Error::Traffic(RouterError::Misconfigured(message))) => {
                    assert!(
                        message.contains(r#"no backendRef to canary Service "web-canary""#),
                        "{message}"
                    )
                }
                other => panic!("{other:?}"),
            }
        }

        #[tokio::test]
        async fn a_selector_is_applied_whole_as_read_with_the_revision_key_moved() {
            let mut fx = Fixture::new();
            let scenario = vec![
                Exchange::get(&format!("{SERVICES}/web-stable")).answer(service("web-stable", "old")),
                Exchange::apply(&format!("{SERVICES}/web-stable?&force=true&fieldManager=serin"))
                    .body(|body| {
                        assert_eq!(
                            body,
                            &json!({
                                "apiVersion": "v1", "kind": "Service",
                                "metadata": { "name": "web-stable", "resourceVersion": "7" },
                                "spec": { "selector": { "app": "web", REVISION_LABEL: "new" } },
                            })
                        )
                    })
                    .answer(service("web-stable", "new")),
            ];
            let release = routed();
            fx.server
                .serve(scenario, select(&fx.ctx, &release, "web-stable", "new"))
                .await
                .unwrap();
        }
    }
}
