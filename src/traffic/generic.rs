//! `trafficRouting.generic`: any object that carries the weights, by
//! declaration. The Release names the object, a patch template writing the
//! two weights and JSONPaths reading them back (see `api::GenericRouting`);
//! a Traefik TraefikService, a Contour HTTPProxy or an in-house CRD need no
//! code here and no plugin. The kind is only known at run time: the controller
//! watches the ones its `--watch-generic` names, so that a hand edit of the
//! weights is put back at once; others at the Release's next round.
use futures::future::BoxFuture;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

use super::{Router, RouterError, Shown, TrafficRouter};
use crate::api::{FIELD_MANAGER, GenericRouting, PatchType, Release, read_number};

pub const ROUTER: Router = Router {
    watches: &[],
    steers: |_| Vec::new(),
    build: |client, release, _services, routing| {
        let routing = routing.generic.as_ref()?;
        Some(Box::new(Generic::new(client, release, routing)))
    },
};

pub struct Generic {
    api: Api<DynamicObject>,
    namespace: String,
    routing: GenericRouting,
}

/// The resource `--watch-generic` names, `group/version/resource` (a core
/// kind: `version/resource`).
pub fn watched(text: &str) -> Option<ApiResource> {
    let parts: Vec<&str> = text.trim().split('/').collect();
    let (group, version, plural) = match parts.as_slice() {
        [group, version, plural] => (*group, *version, *plural),
        [version, plural] => ("", *version, *plural),
        _ => return None,
    };
    if version.is_empty() || plural.is_empty() {
        return None;
    }
    let mut resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, ""), plural);
    resource.kind.clear();
    Some(resource)
}

/// Whether `routing` drives the object `name` of `resource`.
pub fn drives(routing: &GenericRouting, resource: &ApiResource, name: &str) -> bool {
    let own = self::resource(routing);
    own.group == resource.group
        && own.version == resource.version
        && own.plural == resource.plural
        && routing.name == name
}

/// The object's resource, from `apiVersion` and `kind` (and `plural` if given).
pub fn resource(routing: &GenericRouting) -> ApiResource {
    let (group, version) = routing
        .api_version
        .rsplit_once('/')
        .unwrap_or(("", &routing.api_version));
    let gvk = GroupVersionKind::gvk(group, version, &routing.kind);
    match &routing.plural {
        Some(plural) => ApiResource::from_gvk_with_plural(&gvk, plural),
        None => ApiResource::from_gvk(&gvk),
    }
}

impl Generic {
    pub fn new(client: &Client, release: &Release, routing: &GenericRouting) -> Self {
        let namespace = release.namespace().unwrap_or_default();
        Self {
            api: Api::namespaced_with(client.clone(), &namespace, &resource(routing)),
            namespace,
            routing: routing.clone(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} {:?} ({})",
            self.routing.kind, self.routing.name, self.routing.api_version
        )
    }

    async fn get(&self) -> Result<Value, RouterError> {
        match self.api.get(&self.routing.name).await {
            Ok(object) => Ok(serde_json::to_value(&object).map_err(kube::Error::SerdeError)?),
            Err(kube::Error::Api(status)) if super::not_found(&status) => Err(RouterError::Misconfigured(format!(
                "trafficRouting.generic: {} not found in namespace {:?} (or its kind is not served; set plural if it is not {:?})",
                self.describe(),
                self.namespace,
                resource(&self.routing).plural
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn read(&self) -> Result<Shown, RouterError> {
        let object = self.get().await?;
        Ok(Shown {
            canary_weight: shown_weight(&self.routing, &object).map_err(RouterError::Misconfigured)?,
            routes: Some(Vec::new()),
            ..Shown::default()
        })
    }

    async fn write(&self, canary: i32) -> Result<(), RouterError> {
        let at = "trafficRouting.generic.patch.template";
        let patch = self
            .routing
            .render(canary)
            .map_err(|e| RouterError::Misconfigured(format!("{at} {e}")))?;
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        let written = match self.routing.patch.patch_type {
            PatchType::Merge => {
                self.api
                    .patch(&self.routing.name, &params, &Patch::Merge(&patch))
                    .await?
            }
            PatchType::Json => {
                let ops: json_patch::Patch = serde_json::from_value(patch)
                    .map_err(|e| RouterError::Misconfigured(format!("{at} is not a JSON patch: {e}")))?;
                self.api
                    .patch(&self.routing.name, &params, &Patch::<()>::Json(ops))
                    .await?
            }
        };
        let written = serde_json::to_value(&written).map_err(kube::Error::SerdeError)?;
        // A template that writes elsewhere than the paths read would never settle.
        match shown_weight(&self.routing, &written).map_err(RouterError::Misconfigured)? {
            Some(w) if w == canary.clamp(0, 100) => Ok(()),
            _ => Err(RouterError::Misconfigured(format!(
                "{at} wrote canary weight {canary} to {}, but trafficRouting.generic.weights do not read it back",
                self.describe()
            ))),
        }
    }
}

/// The canary percent `object` shows: None unless both paths select a number
/// and the two sum to 100, as serin writes them.
fn shown_weight(routing: &GenericRouting, object: &Value) -> Result<Option<i32>, String> {
    let (stable, canary) = routing
        .paths()
        .map_err(|(field, e)| format!("trafficRouting.generic.weights.{field}: {e}"))?;
    let (Some(stable), Some(canary)) = (read_number(object, &stable), read_number(object, &canary)) else {
        return Ok(None);
    };
    let in_range = (0..=100).contains(&stable) && (0..=100).contains(&canary);
    Ok((in_range && stable + canary == 100).then_some(canary as i32))
}

impl TrafficRouter for Generic {
    fn shown(&self) -> BoxFuture<'_, Result<Shown, RouterError>> {
        Box::pin(self.read())
    }

    fn set_weight(&self, canary: i32) -> BoxFuture<'_, Result<(), RouterError>> {
        Box::pin(self.write(canary))
    }

    fn set_routes<'a>(&'a self, _steps: &'a [usize]) -> BoxFuture<'a, Result<(), RouterError>> {
        // Validation refuses route steps with this router.
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn routing() -> GenericRouting {
        serde_json::from_value(json!({
            "apiVersion": "e2e.serin.dev/v1", "kind": "WeightedBackend", "name": "web",
            "patch": { "template": "{spec: {stable: {{stableWeight}}, canary: {{canaryWeight}}}}" },
            "weights": { "stable": "$.spec.stable", "canary": "$.spec.canary" },
        }))
        .unwrap()
    }

    #[test]
    fn the_weight_shows_only_as_serin_writes_it() {
        let cases = [
            (json!({ "spec": { "stable": 80, "canary": 20 } }), Some(20)),
            (json!({ "spec": { "stable": 80.0, "canary": 20.0 } }), Some(20)),
            (json!({ "spec": { "stable": 80, "canary": 30 } }), None),
            (json!({ "spec": { "stable": 80 } }), None),
            (json!({ "spec": { "stable": "80", "canary": 20 } }), None),
            (json!({ "spec": { "stable": 120, "canary": -20 } }), None),
        ];
        for (object, want) in cases {
            assert_eq!(shown_weight(&routing(), &object), Ok(want), "{object}");
        }
    }

    #[test]
    fn a_watched_kind_is_group_version_resource_and_matches_the_routings_naming_it() {
        let watched = watched("e2e.serin.dev/v1/weightedbackends").unwrap();
        assert!(drives(&routing(), &watched, "web"));
        assert!(!drives(&routing(), &watched, "other"));
        assert!(!drives(
            &routing(),
            &super::watched("e2e.serin.dev/v2/weightedbackends").unwrap(),
            "web"
        ));
        assert_eq!(super::watched("v1/configmaps").map(|r| r.group), Some(String::new()));
        for bad in ["", "weightedbackends", "a/b/c/d", "g//r"] {
            assert!(super::watched(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_resource_comes_from_api_version_kind_and_plural() {
        let guessed = resource(&routing());
        assert_eq!(
            (
                guessed.group.as_str(),
                guessed.version.as_str(),
                guessed.plural.as_str()
            ),
            ("e2e.serin.dev", "v1", "weightedbackends")
        );
        let mut proxy = routing();
        (proxy.api_version, proxy.kind, proxy.plural) = (
            "projectcontour.io/v1".into(),
            "HTTPProxy".into(),
            Some("httpproxies".into()),
        );
        assert_eq!(resource(&proxy).plural, "httpproxies");
        let mut core = routing();
        core.api_version = "v1".into();
        assert_eq!(
            (resource(&core).group.as_str(), resource(&core).version.as_str()),
            ("", "v1")
        );
    }
}
