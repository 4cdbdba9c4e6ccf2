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
        match router.canary_weight().await {
            Ok(weight) => observed.canary_weight = weight,
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
}
