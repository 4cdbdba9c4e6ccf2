//! CRD types and their validation. No IO here.
mod analysis;
mod bluegreen;
pub mod canary;
mod crd;
mod credentials;
mod generic;
mod hooks;
mod int_or_percent;
mod invalid;
pub mod judge;
mod release;
mod routes;
pub mod schema;
mod snapshots;
pub mod validation;
mod workload;

// Every analysis type is API, so a glob: a new provider's type needs no edit here.
pub use analysis::*;
pub use bluegreen::BlueGreenStrategy;
pub use canary::{
    BackgroundAnalysis, CanaryStep, CanaryStrategy, DestinationRuleRef, GatewayApiRouting, HttpRouteRef, IstioRouting,
    NginxRouting, PauseStep, SetCanaryScale, TrafficRouting, VirtualServiceRef,
};
pub use crd::{crd_files, crds, crds_yaml};
pub use credentials::{Authentication, Header, SecretKeyRef};
pub use generic::{GenericRouting, PatchType, WeightPatch, WeightPaths, read_number};
pub use hooks::{Hook, HookKind, Hooks, HooksStatus};
pub use int_or_percent::IntOrPercent;
pub use int_or_percent::{MAX_UNAVAILABLE_MESSAGE, MAX_UNAVAILABLE_RULE};
pub use invalid::Invalid;
pub use judge::{
    JUDGE_SAMPLES_MAX, JudgeDirection, JudgeGroup, JudgeMetric, JudgeProvider, JudgeResult, JudgedMetric, NanStrategy,
    SequentialCounts,
};
pub use release::{
    BlueGreenStatus, CanaryStatus, Control, Phase, Release, ReleaseSpec, ReleaseStatus, RollingStrategy, Strategy,
};
pub use routes::{RouteMatch, SetHeaderRoute, SetMirrorRoute, StringMatch, regex_escape};
pub use snapshots::ConfigSnapshots;
pub use workload::{ScaleDown, WorkloadRef};

/// Field manager of every write serin makes.
pub const FIELD_MANAGER: &str = "serin";
/// Label naming the Release a ReplicaSet (or a canary Ingress) belongs to.
pub const RELEASE_LABEL: &str = "serin.dev/release";
/// Label on every object serin creates, so its watches select only those.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "serin";
/// Label carrying the pod template hash of a revision.
pub const REVISION_LABEL: &str = "serin.dev/revision";
/// Label on baseline pods (and their ReplicaSet): `baseline`.
pub const ROLE_LABEL: &str = "serin.dev/role";
pub const BASELINE_ROLE: &str = "baseline";
/// Label on the baseline ReplicaSet naming the stable revision it runs.
pub const BASELINE_OF_LABEL: &str = "serin.dev/baseline-of";
/// Label on the baseline ReplicaSet naming the canary revision it stands beside.
pub const BASELINE_FOR_LABEL: &str = "serin.dev/baseline-for";
/// Annotation with a ReplicaSet's revision number, increasing per Release.
pub const REVISION_NUMBER_ANNOTATION: &str = "serin.dev/revision-number";
/// Label on a snapshot copy of a ConfigMap or Secret, naming the original.
pub const SNAPSHOT_OF_LABEL: &str = "serin.dev/snapshot-of";
/// Label on a hook's Jobs: `pre-rollout` or `post-rollout`.
pub const HOOK_LABEL: &str = "serin.dev/hook";
/// Label on a hook's Jobs naming the attempt (the hook's start, in Unix
/// seconds): a retry's Job never mistakes the failed attempt's for its own.
pub const HOOK_ATTEMPT_LABEL: &str = "serin.dev/hook-attempt";
