//! `spec.strategy.canary`: a new revision takes a growing share of traffic, step by step.
use kube::KubeSchema;
use kube::core::Rule;
use serde::{Deserialize, Serialize};

use super::analysis::{Arg, RolloutAnalysis, TemplateRef};
use super::generic::GenericRouting;
use super::int_or_percent::{IntOrPercent, MAX_UNAVAILABLE_MESSAGE, MAX_UNAVAILABLE_RULE};
use super::routes::{SetHeaderRoute, SetMirrorRoute};
use super::schema::exactly_one_of;

/// The most steps a canary may have. Bounded so the apiserver can estimate the
/// cost of the per-step rules.
pub const STEPS_MAX: u64 = 32;

/// The most HTTPRoutes a Gateway API canary may drive.
pub const HTTP_ROUTES_MAX: u64 = 8;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.trafficRouting) || (has(self.stableService) && has(self.canaryService))")
        .message("spec.strategy.canary.trafficRouting needs stableService and canaryService"),
    validation = Rule::new("!has(self.stableService) || !has(self.canaryService) || self.stableService != self.canaryService")
        .message("spec.strategy.canary.stableService and canaryService must be different Services"),
    validation = Rule::new("has(self.trafficRouting) || !has(self.steps) || self.steps.all(s, !has(s.setCanaryScale))")
        .message("setCanaryScale needs spec.strategy.canary.trafficRouting: without a router the weight is the replica ratio"),
    validation = Rule::new("has(self.trafficRouting) || !has(self.steps) || self.steps.all(s, !has(s.setHeaderRoute) && !has(s.setMirrorRoute))")
        .message("setHeaderRoute and setMirrorRoute need spec.strategy.canary.trafficRouting"),
    validation = Rule::new("!has(self.trafficRouting) || !has(self.trafficRouting.nginx) || !has(self.steps) || self.steps.all(s, !has(s.setMirrorRoute))")
        .message("setMirrorRoute is not supported by trafficRouting.nginx: ingress-nginx's canary Ingress cannot mirror"),
    validation = Rule::new(MAX_UNAVAILABLE_RULE).message(MAX_UNAVAILABLE_MESSAGE).field_path(".maxUnavailable"),
)]
pub struct CanaryStrategy {
    /// Service whose selector serin points at the stable revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub stable_service: Option<String>,
    /// Service whose selector serin points at the canary revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub canary_service: Option<String>,
    /// Done in order; after the last one the canary is promoted to stable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = STEPS_MAX))]
    pub steps: Vec<CanaryStep>,
    /// Metrics measured in the background from `startingStep` until promotion; a failure aborts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<BackgroundAnalysis>,
    /// Pods above `replicas` while the replica ratio carries the weight. Default 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrPercent>,
    /// Pods below `replicas` while the replica ratio carries the weight. Default 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrPercent>,
    /// Seconds the old stable revision keeps running after promotion, so in-flight connections drain.
    #[serde(default = "default_scale_down_delay_seconds")]
    #[schemars(range(min = 0))]
    pub scale_down_delay_seconds: i32,
    /// How traffic is split. Absent: by the ratio of canary to stable pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<TrafficRouting>,
    /// Seconds to wait for the router's controller to accept a route change
    /// (where it reports status, as Gateway API does) before saying so with a
    /// Warning. Nothing is scaled down on an unaccepted route, before or after.
    #[serde(default = "default_acceptance_timeout_seconds")]
    #[schemars(range(min = 1))]
    pub acceptance_timeout_seconds: i32,
}

fn default_acceptance_timeout_seconds() -> i32 {
    30
}

fn default_scale_down_delay_seconds() -> i32 {
    30
}

/// The JSON name of each field of `CanaryStep`. A test checks it against the struct.
const STEP_FIELDS: [&str; 6] = [
    "setWeight",
    "pause",
    "analysis",
    "setCanaryScale",
    "setHeaderRoute",
    "setMirrorRoute",
];

/// One step: exactly one field is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = exactly_one_of(&STEP_FIELDS, "a canary step sets"),
)]
pub struct CanaryStep {
    /// Percent of traffic for the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub set_weight: Option<i32>,
    /// Wait: for `duration`, or without one until a person promotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseStep>,
    /// Gate: the step passes when this analysis succeeds; a failure aborts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<TemplateAnalysis>,
    /// Run the canary at a scale other than its traffic weight (needs trafficRouting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_canary_scale: Option<SetCanaryScale>,
    /// Send requests that match to the canary, whatever the weight (needs trafficRouting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_header_route: Option<SetHeaderRoute>,
    /// Mirror a share of requests to the canary (needs trafficRouting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_mirror_route: Option<SetMirrorRoute>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseStep {
    /// How long to wait, e.g. "30s", "5m", "1h30m". Absent: until promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub duration: Option<String>,
}

/// Exactly one field is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("[has(self.replicas), has(self.weight), has(self.matchTrafficWeight) && self.matchTrafficWeight].filter(x, x).size() == 1")
        .message("setCanaryScale sets exactly one of replicas, weight or matchTrafficWeight: true"),
)]
pub struct SetCanaryScale {
    /// A fixed number of canary pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Canary pods as a percent of `replicas`, rounded up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub weight: Option<i32>,
    /// Go back to sizing the canary by its traffic weight.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub match_traffic_weight: bool,
}

/// An analysis made of templates. A canary's analyses refer to templates
/// rather than inlining metrics, which keeps the CRD within the size that
/// client-side apply can annotate.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateAnalysis {
    /// AnalysisTemplates (or ClusterAnalysisTemplates) whose metrics are measured together.
    #[schemars(length(min = 1, max = 8))]
    pub templates: Vec<TemplateRef>,
    /// Values for the templates' args.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Arg>,
    /// Run baseline pods while this analysis runs: a ReplicaSet of the stable
    /// template at the canary's size, its pods labelled `serin.dev/role:
    /// baseline`, for a judge to compare the canary with pods as young as
    /// its own. Removed when the analysis ends. Not for post-promotion
    /// analysis, where the canary is the stable revision.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub baseline_pods: bool,
}

impl TemplateAnalysis {
    /// The same analysis in the shape every strategy measures.
    pub fn to_rollout_analysis(&self) -> RolloutAnalysis {
        RolloutAnalysis {
            templates: self.templates.clone(),
            args: self.args.clone(),
            metrics: Vec::new(),
        }
    }
}

/// Analysis in the background of the canary steps.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackgroundAnalysis {
    #[serde(flatten)]
    pub analysis: TemplateAnalysis,
    /// Index of the step at which the analysis starts. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub starting_step: Option<i32>,
}

/// The JSON name of each field of `TrafficRouting`, one per router. A test
/// checks it against the struct.
const ROUTER_FIELDS: [&str; 4] = ["gatewayAPI", "nginx", "istio", "generic"];

/// Exactly one router: `spec.strategy.canary.trafficRouting sets exactly one of gatewayAPI, nginx, istio or generic`.
fn exactly_one_router() -> Rule {
    exactly_one_of(&ROUTER_FIELDS, "spec.strategy.canary.trafficRouting sets")
}

/// Exactly one router.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = exactly_one_router())]
pub struct TrafficRouting {
    /// Weights on the stable and canary backendRefs of Gateway API HTTPRoutes.
    #[serde(default, rename = "gatewayAPI", skip_serializing_if = "Option::is_none")]
    pub gateway_api: Option<GatewayApiRouting>,
    /// A companion canary Ingress for ingress-nginx, owned by the Release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nginx: Option<NginxRouting>,
    /// Weights, header and mirror routes in an Istio VirtualService, to the
    /// two Services or to two subsets of a DestinationRule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio: Option<IstioRouting>,
    /// Any object that carries the weights (a Traefik TraefikService, a
    /// Contour HTTPProxy, an in-house CRD), by declaration: a patch template
    /// to write them and JSONPaths to read them back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generic: Option<GenericRouting>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.httpRoutes) && size(self.httpRoutes) > 0) || (has(self.grpcRoutes) && size(self.grpcRoutes) > 0)")
        .message("trafficRouting.gatewayAPI names at least one of httpRoutes or grpcRoutes"),
)]
pub struct GatewayApiRouting {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = HTTP_ROUTES_MAX))]
    pub http_routes: Vec<HttpRouteRef>,
    /// GRPCRoutes, driven as HTTPRoutes are: weights, header and mirror routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = HTTP_ROUTES_MAX))]
    pub grpc_routes: Vec<HttpRouteRef>,
}

/// `trafficRouting.istio`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioRouting {
    pub virtual_service: VirtualServiceRef,
    /// Route to two subsets of one host instead of to the two Services: serin
    /// keeps each subset's `serin.dev/revision` label on the revision its
    /// Service selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_rule: Option<DestinationRuleRef>,
}

/// A VirtualService in the Release's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The `http[].name`s to drive. Absent: every HTTP route with both destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub routes: Vec<String>,
}

/// A DestinationRule in the Release's namespace, and its two subsets.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRuleRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 253))]
    pub stable_subset_name: String,
    #[schemars(length(min = 1, max = 253))]
    pub canary_subset_name: String,
}

/// An HTTPRoute (or GRPCRoute) in the Release's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The rule (by `rules[].name`) to drive. Absent: every rule with the stable and canary backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub rule: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NginxRouting {
    /// The Ingress that serves the stable Service; serin creates its canary twin.
    #[schemars(length(min = 1, max = 253))]
    pub ingress: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_router_rule_names_every_router_field() {
        let mut fields = ROUTER_FIELDS.to_vec();
        fields.sort_unstable();
        assert_eq!(
            super::super::schema::property_names::<TrafficRouting>(),
            fields,
            "ROUTER_FIELDS lists TrafficRouting's fields"
        );
    }

    #[test]
    fn the_one_step_rule_names_every_step_field() {
        let mut fields = STEP_FIELDS.to_vec();
        fields.sort_unstable();
        assert_eq!(super::super::schema::property_names::<CanaryStep>(), fields);
    }
}
