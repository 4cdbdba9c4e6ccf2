//! The three kinds of workload the fleet bench rolls, with one pod template:
//! their manifests, the image change, and when each counts as complete.
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Controller {
    /// serin's Release
    Serin,
    /// Argo Rollouts' Rollout
    Argo,
    /// kube-controller-manager's Deployment
    Deployment,
}

impl Controller {
    pub const ALL: [Controller; 3] = [Controller::Serin, Controller::Argo, Controller::Deployment];

    pub fn name(self) -> &'static str {
        match self {
            Controller::Serin => "serin",
            Controller::Argo => "argo",
            Controller::Deployment => "deployment",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Controller::Serin => "serin",
            Controller::Argo => "Argo Rollouts",
            Controller::Deployment => "Deployment",
        }
    }

    pub fn resource(self) -> ApiResource {
        let gvk = match self {
            Controller::Serin => GroupVersionKind::gvk("serin.dev", "v1alpha1", "Release"),
            Controller::Argo => GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout"),
            Controller::Deployment => GroupVersionKind::gvk("apps", "v1", "Deployment"),
        };
        ApiResource::from_gvk(&gvk)
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// maxSurge 1, maxUnavailable 0
    Rolling,
    /// steps setWeight 50, pause 2s; no traffic router (the weight is the replica ratio)
    Canary,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Rolling => "rolling",
            Scenario::Canary => "canary",
        }
    }

    /// A Deployment has no canary steps.
    pub fn supports(self, controller: Controller) -> bool {
        !(self == Scenario::Canary && controller == Controller::Deployment)
    }
}

pub const IMAGE_V1: &str = "example.com/app:1";
pub const IMAGE_V2: &str = "example.com/app:2";

fn template(name: &str, image: &str) -> Value {
    json!({
        "metadata": { "labels": { "app": name } },
        "spec": { "containers": [{ "name": "app", "image": image }] }
    })
}

fn strategy(controller: Controller, scenario: Scenario) -> Value {
    let surge = json!({ "maxSurge": 1, "maxUnavailable": 0 });
    let steps = json!([{ "setWeight": 50 }, { "pause": { "duration": "2s" } }]);
    match (controller, scenario) {
        (Controller::Serin, Scenario::Rolling) => json!({ "rolling": surge }),
        (Controller::Serin, Scenario::Canary) => {
            json!({ "canary": { "steps": steps, "maxSurge": 1, "maxUnavailable": 0 } })
        }
        // Argo's canary without steps is its rolling update.
        (Controller::Argo, Scenario::Rolling) => json!({ "canary": surge }),
        (Controller::Argo, Scenario::Canary) => {
            json!({ "canary": { "steps": steps, "maxSurge": 1, "maxUnavailable": 0 } })
        }
        (Controller::Deployment, _) => json!({ "type": "RollingUpdate", "rollingUpdate": surge }),
    }
}

/// Workload `name` at IMAGE_V1; `progress_deadline` (seconds) is set on every
/// kind alike, or left to each kind's default (600 s for all three).
pub fn manifest(
    controller: Controller,
    scenario: Scenario,
    name: &str,
    replicas: i32,
    progress_deadline: Option<i32>,
) -> Result<DynamicObject, serde_json::Error> {
    let resource = controller.resource();
    let mut object = json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": template(name, IMAGE_V1),
            "strategy": strategy(controller, scenario),
        }
    });
    if let Some(seconds) = progress_deadline {
        object["spec"]["progressDeadlineSeconds"] = json!(seconds);
    }
    serde_json::from_value(object)
}

/// The mass update: a merge patch that is the same for every kind.
pub fn new_image_patch() -> Value {
    json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": IMAGE_V2 }] } } } })
}

/// The controller has acted on the object's current spec and every replica runs
/// the current template, available, with no old pods left.
pub fn complete(controller: Controller, object: &DynamicObject) -> bool {
    let Some(generation) = object.metadata.generation else {
        return false;
    };
    let spec = &object.data["spec"];
    let status = &object.data["status"];
    let want = spec["replicas"].as_i64().unwrap_or(1);
    let counts = |fields: &[&str]| fields.iter().all(|f| status[*f].as_i64() == Some(want));
    match controller {
        Controller::Serin => {
            let revision = serde_json::from_value::<PodTemplateSpec>(spec["template"].clone())
                .map(|t| serin::plan::revision::revision_of(&t))
                .ok();
            status["phase"] == "Healthy"
                && status["observedGeneration"].as_i64() == Some(generation)
                && revision.is_some()
                && status["currentRevision"].as_str() == revision.as_deref()
                && status["stableRevision"] == status["currentRevision"]
                && counts(&["replicas", "updatedReplicas", "availableReplicas"])
        }
        Controller::Argo => {
            // Argo writes observedGeneration as a string.
            status["phase"] == "Healthy"
                && status["observedGeneration"].as_str() == Some(generation.to_string().as_str())
                && status["stableRS"].is_string()
                && status["stableRS"] == status["currentPodHash"]
                && counts(&["replicas", "updatedReplicas", "availableReplicas"])
        }
        Controller::Deployment => {
            status["observedGeneration"].as_i64().is_some_and(|g| g >= generation)
                && counts(&["replicas", "updatedReplicas", "availableReplicas"])
        }
    }
}
