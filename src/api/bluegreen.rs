//! `spec.strategy.blueGreen`: the new revision comes up beside the old one,
//! can be tried through a preview Service, then takes all traffic at once.
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::canary::TemplateAnalysis;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.previewService) || self.previewService != self.activeService")
        .message("spec.strategy.blueGreen.previewService must differ from activeService"),
    validation = Rule::new("self.autoPromotionEnabled || !has(self.autoPromotionSeconds)")
        .message("spec.strategy.blueGreen.autoPromotionSeconds needs autoPromotionEnabled"),
    validation = Rule::new("!has(self.postPromotionAnalysis) || !has(self.postPromotionAnalysis.baselinePods) || !self.postPromotionAnalysis.baselinePods")
        .message("spec.strategy.blueGreen.postPromotionAnalysis cannot run baseline pods: after the switch the new revision is the stable one"),
)]
pub struct BlueGreenStrategy {
    /// Service that takes production traffic; serin points it at the active revision.
    #[schemars(length(min = 1, max = 63))]
    pub active_service: String,
    /// Service serin points at the new revision before the switch, to try it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub preview_service: Option<String>,
    /// Pods the new revision runs before promotion. Default: `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub preview_replica_count: Option<i32>,
    /// Switch without a person once the preview is ready and its analysis passed.
    #[serde(default = "default_true")]
    pub auto_promotion_enabled: bool,
    /// Seconds the ready preview waits before an automatic switch. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub auto_promotion_seconds: Option<i32>,
    /// Seconds the old revision keeps running after the switch (and its checks).
    #[serde(default = "default_delay")]
    #[schemars(range(min = 0))]
    pub scale_down_delay_seconds: i32,
    /// Seconds a failed or aborted revision keeps running after the switch back.
    #[serde(default = "default_delay")]
    #[schemars(range(min = 0))]
    pub abort_scale_down_delay_seconds: i32,
    /// Checks on the preview; the switch waits for them to pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<TemplateAnalysis>,
    /// Checks after the switch; a failure switches back at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis: Option<TemplateAnalysis>,
}

fn default_true() -> bool {
    true
}

fn default_delay() -> i32 {
    30
}
