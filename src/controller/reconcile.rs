//! One reconcile: observe, plan (pure), apply the plan, write status if it changed.
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::Instrument;

use super::expectations::{Cached, Caught, Key, PATIENCE, Written};
use super::trim::{CachedRelease, CachedReplicaSet};
use super::{Context, Error, analysis, replicaset, snapshots, traffic, workload};
use crate::api::{FIELD_MANAGER, HookKind, Release, ReleaseStatus};
use crate::plan::{self, Action, AnalysisSlot, Observed};
use crate::telemetry::Reconciled;
use crate::traffic::TrafficRouter;

/// One reconcile, counted and timed, in a span naming its Release.
pub async fn timed(cached: Arc<CachedRelease>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let started = std::time::Instant::now();
    let result = reconcile(cached.clone(), ctx.clone())
        .instrument(span(cached.as_ref()))
        .await;
    let outcome = match &result {
        Ok(_) => Reconciled::Ok,
        Err(Error::NotLeader) => Reconciled::NotLeader,
        Err(error) => Reconciled::Failed { kind: error.kind() },
    };
    ctx.metrics.reconciled(outcome, started.elapsed());
    result
}

/// The span of one reconcile: every log line inside names the Release.
/// kube-runtime's own span (`object.ref`) is at its crate's log level.
pub fn span(release: &impl Resource) -> tracing::Span {
    tracing::info_span!(
        "reconcile",
        release = %release.name_any(),
        namespace = %release.namespace().unwrap_or_default(),
    )
}

/// The stages of one reconcile, in order: observe, plan (pure), apply, record.
pub async fn reconcile(cached: Arc<CachedRelease>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    // Planning on a partial cache would re-create ReplicaSets that exist.
    let mut synced = ctx.synced.clone();
    synced.wait_for(|synced| *synced).await.map_err(|_| Error::CacheGone)?;
    let namespace = cached.namespace().ok_or(Error::MissingNamespace)?;
    let releases = Api::<Release>::namespaced(ctx.client.clone(), &namespace);
    let key = (namespace.clone(), cached.name_any());
    let release = match caught_up(&ctx, &releases, &key, cached).await? {
        Decidable::On(release) => release,
        Decidable::Later(requeue) => return Ok(requeue),
    };
    // With workloadRef, the template is the Deployment's; with config
    // snapshots, the revision's template reads the copies.
    let (release, workload, adoption_problem) = match workload::observe(&ctx.client, &release).await? {
        workload::Workload::None => (*release, None, None),
        workload::Workload::Found(adopted, state) => (*adopted, Some(state), None),
        workload::Workload::Problem(invalid) => (*release, None, Some(invalid)),
    };
    let snapshots = snapshots::resolve(&ctx.client, &release).await?;
    let release = &match snapshots.as_ref().filter(|s| s.problem.is_none()) {
        Some(taken) => snapshots::reading_copies(&release, taken),
        None => release,
    };
    let (copies, snapshot_problem) = snapshots.map_or((Vec::new(), None), |s| (s.copies, s.problem));
    // The copies exist before anything reads them; every round, so that one
    // deleted by hand comes back before a pod of the revision needs it.
    let namespace_copies = release.namespace().unwrap_or_default();
    let refused = match (&snapshot_problem, copies.is_empty()) {
        (None, false) => {
            // Making copies is a write: only while holding the Lease.
            if !*ctx.leader.borrow() {
                return Err(Error::NotLeader);
            }
            snapshots::ensure(&ctx.client, &namespace_copies, &copies).await?
        }
        _ => None,
    };
    let template_problem = adoption_problem.or(snapshot_problem).or(refused);
    let replica_sets: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let now = Timestamp::now();
    let (owned, baseline) = owned_replica_sets(&ctx, release);
    let measure = if template_problem.is_some() {
        Measure::Nothing // The revision is not known: its analyses wait.
    } else if plan::pre_rollout_pending(release, &owned) {
        Measure::PreRolloutHook // No analysis of a revision with no pod yet.
    } else {
        Measure::Due
    };
    let observation = observe(&ctx, release, now, measure).await?;
    let mut observed = Observed {
        release,
        replica_sets: &owned,
        baseline,
        analysis: observation.analysis,
        gate_analysis: observation.gate_analysis,
        hook: observation.hook,
        traffic: observation.traffic,
        refused: None,
        template_problem,
        workload,
        now,
    };
    let plan = decide(&observed);

    // Writes are gated on holding the Lease: a standby never writes.
    if !*ctx.leader.borrow() {
        return Err(Error::NotLeader);
    }
    let plan = match create(&ctx, &replica_sets, &key, release, &plan).await? {
        Created::Refused(refusal) => {
            observed.refused = Some(refusal);
            decide(&observed)
        }
        Created::Done | Created::NothingToCreate => plan,
    };
    let router = observation.router;
    apply(&ctx, &replica_sets, &key, release, &plan, router.as_deref()).await?;
    if !copies.is_empty() && observed.template_problem.is_none() && plan.status.current_revision.is_some() {
        // The current revision's ReplicaSet owns its copies: trimming it
        // (and no other user) deletes them. Every round, as a crash or a
        // conflict may have left one with the Release only.
        let revision = plan.status.current_revision.clone().unwrap_or_default();
        let name = replicaset::name(release, &revision);
        snapshots::hand_over(&ctx.client, &namespace_copies, &copies, &name).await?;
    }
    publish_events(&ctx, release, &plan).await;
    write_status(&ctx, &releases, &key, release, &plan).await?;
    record_metrics(&ctx, release, &plan, now);
    Ok(match plan.requeue_after {
        Some(after) => Requeue::requeue(after),
        None => Requeue::await_change(),
    })
}

/// Whether a round can decide now, and on what.
enum Decidable {
    On(Box<Release>),
    /// Nothing to decide on yet, or any more (the Release is gone).
    Later(Requeue),
}

/// The Release to decide on: the cached one once the caches show this
/// controller's own last writes (see [`super::expectations`]). While they do
/// not, the round does nothing: the watch event of that write reconciles again
/// (the requeue only bounds a lost event).
async fn caught_up(
    ctx: &Context,
    releases: &Api<Release>,
    key: &Key,
    cached: Arc<CachedRelease>,
) -> Result<Decidable, Error> {
    let view = CacheView {
        release: &cached,
        replica_sets: &ctx.replica_sets,
        namespace: &key.0,
    };
    match ctx.expectations.check(key, &view) {
        Caught::Up => Ok(Decidable::On(Box::new(cached.release().map_err(Error::Undecodable)?))),
        Caught::Behind { waited } => {
            tracing::debug!(?waited, "the caches do not show this controller's last write yet");
            ctx.metrics.cache_behind();
            Ok(Decidable::Later(Requeue::requeue(PATIENCE.saturating_sub(waited))))
        }
        Caught::NotComparable => match releases.get_opt(&key.1).await? {
            Some(release) => Ok(Decidable::On(Box::new(release))),
            None => {
                ctx.forget(key);
                Ok(Decidable::Later(Requeue::await_change()))
            }
        },
    }
}

/// The caches, as [`expectations`] compares them with what was written.
struct CacheView<'a> {
    release: &'a CachedRelease,
    replica_sets: &'a Store<CachedReplicaSet>,
    namespace: &'a str,
}

impl Cached for CacheView<'_> {
    fn release_version(&self) -> Option<String> {
        self.release.resource_version()
    }

    fn replica_set_version(&self, name: &str) -> Option<String> {
        let reference = ObjectRef::new(name).within(self.namespace);
        self.replica_sets.get(&reference)?.resource_version()
    }

    fn replica_set_gone(&self, name: &str) -> bool {
        let reference = ObjectRef::new(name).within(self.namespace);
        self.replica_sets
            .get(&reference)
            .is_none_or(|rs| rs.metadata.deletion_timestamp.is_some())
    }
}

/// The ReplicaSets this Release controls, from the cache: its revisions, and its baseline.
fn owned_replica_sets(ctx: &Context, release: &Release) -> (Vec<plan::RevisionState>, Option<plan::BaselineState>) {
    let uid = release.uid();
    let owned: Vec<_> = ctx
        .replica_sets
        .state()
        .into_iter()
        .filter(|rs| {
            rs.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
        })
        .collect();
    let baseline = owned.iter().find_map(|rs| replicaset::observe_baseline(rs));
    let revisions = owned
        .iter()
        .filter(|rs| replicaset::observe_baseline(rs).is_none())
        .filter_map(|rs| replicaset::observe_cached(rs))
        .collect();
    (revisions, baseline)
}

/// What the plan reads besides the Release and its ReplicaSets.
struct Observation {
    analysis: Option<plan::AnalysisInput>,
    gate_analysis: Option<plan::AnalysisInput>,
    hook: Option<plan::AnalysisInput>,
    traffic: plan::Traffic,
    router: Option<Box<dyn TrafficRouter>>,
}

/// Which of the analyses that are due a round measures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Measure {
    Due,
    PreRolloutHook,
    Nothing,
}

/// Observe: the analyses that are due, measured; the Services and the router's weight.
async fn observe(ctx: &Context, release: &Release, now: Timestamp, measure: Measure) -> Result<Observation, Error> {
    let (mut analysis, mut gate_analysis, mut hook) = (None, None, None);
    let due = plan::analyses_due(release, now)
        .into_iter()
        .filter(|request| match measure {
            Measure::Due => true,
            Measure::PreRolloutHook => request.slot == AnalysisSlot::Hook(HookKind::PreRollout),
            Measure::Nothing => false,
        });
    for request in due {
        let input = analysis::advance(ctx, release, &request, now).await?;
        match request.slot {
            AnalysisSlot::Background => analysis = Some(input),
            AnalysisSlot::Hook(_) => hook = Some(input),
            _ => gate_analysis = Some(input),
        }
    }
    let (traffic, router) = traffic::observe(ctx, release).await?;
    Ok(Observation {
        analysis,
        gate_analysis,
        hook,
        traffic,
        router,
    })
}

/// Decide: the pure plan of what was observed.
fn decide(observed: &Observed) -> plan::Plan {
    let plan = plan::plan(observed);
    tracing::debug!(
        phase = ?plan.status.phase, actions = ?plan.actions,
        requeue_after = ?plan.requeue_after, analysis = ?plan.status.analysis.as_ref().map(|a| (a.phase, &a.message)),
        "planned"
    );
    plan
}

/// What became of the ReplicaSet a plan creates.
enum Created {
    NothingToCreate,
    Done,
    /// The API server refuses it (a pod template the CRD schema let through),
    /// with this message: the round is planned again knowing that.
    Refused(String),
}

/// Apply, first: the ReplicaSet the plan creates, before anything else moves,
/// so that the round's other actions (scaling the old revision down) are never
/// taken for a revision that cannot start.
async fn create(
    ctx: &Context,
    replica_sets: &Api<ReplicaSet>,
    key: &Key,
    release: &Release,
    plan: &plan::Plan,
) -> Result<Created, Error> {
    let Some(Action::Create {
        revision,
        number,
        replicas,
    }) = plan.actions.iter().find(|a| matches!(a, Action::Create { .. }))
    else {
        return Ok(Created::NothingToCreate);
    };
    Ok(
        match replicaset::create(replica_sets, release, revision, *number, *replicas).await? {
            replicaset::Creation::Created(written) => {
                ctx.expectations.wrote(key, written);
                Created::Done
            }
            replicaset::Creation::Exists => Created::Done,
            replicaset::Creation::Refused(refusal) => Created::Refused(refusal),
        },
    )
}

/// Apply: the actions in the plan's order, which puts route and Service changes
/// before the scaling they make safe.
async fn apply(
    ctx: &Context,
    replica_sets: &Api<ReplicaSet>,
    key: &Key,
    release: &Release,
    plan: &plan::Plan,
    router: Option<&dyn TrafficRouter>,
) -> Result<(), Error> {
    for action in &plan.actions {
        match action {
            Action::Create { .. } => {} // created first, by `create`
            Action::CreateBaseline {
                stable,
                revision,
                canary,
                replicas,
            } => {
                if let Some(written) =
                    replicaset::create_baseline(replica_sets, release, stable, revision, canary, *replicas).await?
                {
                    ctx.expectations.wrote(key, written);
                }
            }
            Action::Select { service, revision } => {
                traffic::select(ctx, release, service, revision).await?;
                traffic::selected(router).await?;
            }
            Action::SetWeight { canary } => traffic::set_weight(router, *canary).await?,
            Action::SetRoutes { steps } => traffic::set_routes(router, steps).await?,
            Action::ScaleWorkload { replicas } => workload::scale(&ctx.client, release, *replicas).await?,
            Action::Scale { name, replicas } => {
                let written = replicaset::scale(replica_sets, name, *replicas).await?;
                ctx.expectations.wrote(key, written);
            }
            Action::Delete { name } => {
                replicaset::delete(replica_sets, name).await?;
                ctx.expectations.wrote(key, Written::Deleted { name: name.clone() });
            }
        }
    }
    Ok(())
}

/// Record: the plan's transitions as Events. A failed Event is logged, not retried.
async fn publish_events(ctx: &Context, release: &Release, plan: &plan::Plan) {
    let reference = release.object_ref(&());
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    for transition in &plan.events {
        let event = Event {
            type_: if transition.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: transition.reason.into(),
            note: Some(transition.note.clone()),
            action: series_key(&transition.note),
            secondary: None,
        };
        if let Err(error) = recorder.publish(&event, &reference).await {
            tracing::warn!(%error, reason = transition.reason.as_str(), "could not record event");
        }
    }
}

/// Record: status, only when it changed; then a consumed `status.control` cleared.
/// Both writes of a round that consumes a request carry a resourceVersion
/// precondition: a request written after the round decided makes them a
/// conflict, and the next round acts on it instead of clearing it unseen.
async fn write_status(
    ctx: &Context,
    releases: &Api<Release>,
    key: &Key,
    release: &Release,
    plan: &plan::Plan,
) -> Result<(), Error> {
    let consume = release.status.as_ref().is_some_and(|s| s.control.is_some()) && !plan.keep_control;
    let mut decided_on = release.resource_version();
    // status.control is a person's request, not the controller's: compare without it.
    let recorded = release.status.clone().map(|s| ReleaseStatus { control: None, ..s });
    if recorded.as_ref() != Some(&plan.status) {
        let mut status = json!({ "apiVersion": "serin.dev/v1alpha1", "kind": "Release", "status": plan.status });
        if consume {
            status["metadata"] = json!({ "resourceVersion": decided_on });
        }
        let apply = PatchParams::apply(FIELD_MANAGER).force();
        let written = releases
            .patch_status(&release.name_any(), &apply, &Patch::Apply(status))
            .await?;
        remember(ctx, key, &written);
        decided_on = written.resource_version();
    }
    if consume {
        // The request was acted on in this round; consume it.
        let consumed = json!({ "metadata": { "resourceVersion": decided_on }, "status": { "control": null } });
        let written = releases
            .patch_status(&release.name_any(), &PatchParams::default(), &Patch::Merge(consumed))
            .await?;
        remember(ctx, key, &written);
    }
    Ok(())
}

/// Each status write is remembered as soon as it is made: a later write of
/// the round may fail, and the next round must still wait for this one.
fn remember(ctx: &Context, key: &Key, written: &Release) {
    if let Some(resource_version) = written.resource_version() {
        ctx.expectations.wrote(key, Written::Release { resource_version });
    }
}

/// Record: the phase gauge, and the rollout's duration when this round promoted it.
fn record_metrics(ctx: &Context, release: &Release, plan: &plan::Plan, now: Timestamp) {
    let namespace = release.namespace().unwrap_or_default();
    if let Some(phase) = plan.status.phase {
        ctx.metrics.phase(&namespace, &release.name_any(), phase);
    }
    let started = release.status.as_ref().and_then(|s| s.rollout_start_time.as_ref());
    if let (true, Some(started)) = (plan.promoted, started) {
        let took = now.duration_since(started.0).unsigned_abs();
        ctx.metrics.rollout_completed(release.spec.strategy.name(), took);
    }
}

/// kube's Recorder folds events with the same reason and action into one series,
/// keeping the first note. Keying the action on the note folds only true repeats.
fn series_key(note: &str) -> String {
    let mut end = note.len().min(128);
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    note[..end].to_string()
}

#[cfg(test)]
mod tests {

    use serde_json::{Value, json};

    use super::super::fixtures::*;
    use super::*;
    use crate::api::Control;

    const STATUS: &str = "/apis/serin.dev/v1alpha1/namespaces/shop/releases/web/status";

    fn rolling() -> Release {
        release(json!({ "rolling": {} }))
    }

    fn with_control(mut release: Release, control: Value) -> Release {
        let control: Control = serde_json::from_value(control).unwrap();
        release.status.get_or_insert_with(Default::default).control = Some(control);
        release
    }

    /// The status apply: serin's field manager, forced, the whole status.
    fn status_applied(check: impl FnOnce(&Value) + Send + 'static, answer: &Release) -> Exchange {
        Exchange::apply(&format!("{STATUS}?&force=true&fieldManager=serin"))
            .body(move |body| {
                assert_eq!(
                    (&body["apiVersion"], &body["kind"]),
                    (&json!("serin.dev/v1alpha1"), &json!("Release"))
                );
                assert!(
                    body["status"].get("control").is_none(),
                    "control is not serin's: {body}"
                );
                check(&body["status"]);
            })
            .answer(answer)
    }

    #[tokio::test]
    async fn a_new_revision_is_created_never_applied_and_the_status_applied() {
        let mut fx = Fixture::new();
        let release = rolling();
        let revision = plan::revision::revision_of(&release.spec.template);
        let name = format!("web-{revision}");
        let built = {
            let name = name.clone();
            move |rs: &Value| {
                assert_eq!(rs["kind"], "ReplicaSet");
                assert_eq!(rs["metadata"]["name"], json!(name));
                assert_eq!(rs["metadata"]["ownerReferences"][0]["uid"], "u-1");
                assert_eq!(rs["spec"]["replicas"], 3);
            }
        };
        let scenario = vec![
            Exchange::post(&format!("{REPLICA_SETS}?&fieldManager=serin")).body(built),
            event("RolloutStarted"),
            event("ScalingReplicaSet"),
            status_applied(|status| assert_eq!(status["phase"], "Progressing"), &release),
        ];
        fx.server
            .serve(scenario, reconcile(cached(&release), fx.ctx.clone()))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_status_the_plan_leaves_as_recorded_is_not_written() {
        let mut fx = Fixture::new();
        let release = rolling();
        fx.cache(replica_set(&release, 1, 3, 3));
        let release = fx.settled(release);
        fx.server
            .serve(vec![], reconcile(cached(&release), fx.ctx.clone()))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_control_request_is_consumed_after_the_round_that_acted_on_it() {
        let mut fx = Fixture::new();
        let release = rolling();
        fx.cache(replica_set(&release, 1, 3, 3));
        let release = with_control(fx.settled(release), json!({ "retry": true }));
        let plan = fx.plan(&release);
        assert!(!plan.keep_control, "precondition: the plan acts on the retry now");
        let version = release.resource_version();
        let scenario = vec![
            event("Retried"),
            Exchange::merge_patch(&format!("{STATUS}?"))
                .body(move |body| {
                    let precondition = json!({ "resourceVersion": version });
                    assert_eq!(
                        body,
                        &json!({ "metadata": precondition, "status": { "control": null } })
                    );
                })
                .answer(&release),
        ];
        fx.server
            .serve(scenario, reconcile(cached(&release), fx.ctx.clone()))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_round_that_changes_the_status_and_consumes_a_request_chains_its_preconditions() {
        let mut fx = Fixture::new();
        let release = rolling();
        fx.cache(replica_set(&release, 1, 3, 3));
        let mut release = with_control(fx.settled(release), json!({ "retry": true }));
        // A recorded status the plan will correct, so this round writes it too.
        release.status.as_mut().unwrap().message = Some("stale".into());
        release.metadata.resource_version = Some("decided-on".into());
        assert!(
            !fx.plan(&release).keep_control,
            "precondition: the plan acts on the retry now"
        );
        let mut written = release.clone();
        written.metadata.resource_version = Some("answered-by-the-apply".into());
        let scenario = vec![
            event("Retried"),
            Exchange::apply(&format!("{STATUS}?&force=true&fieldManager=serin"))
                .body(move |body| {
                    // The apply carries the version the round decided on ...
                    assert_eq!(body["metadata"], json!({ "resourceVersion": "decided-on" }));
                    assert_ne!(body["status"]["message"], "stale");
                    assert!(body["status"].get("control").is_none(), "{body}");
                })
                .answer(&written),
            // ... and the clear carries the one the apply answered, not the old one.
            Exchange::merge_patch(&format!("{STATUS}?"))
                .body(|body| {
                    let precondition = json!({ "resourceVersion": "answered-by-the-apply" });
                    assert_eq!(
                        body,
                        &json!({ "metadata": precondition, "status": { "control": null } })
                    );
                })
                .answer(&written),
        ];
        fx.server
            .serve(scenario, reconcile(cached(&release), fx.ctx.clone()))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_control_request_the_plan_keeps_stays() {
        let mut fx = Fixture::new();
        let mut release = release(json!({ "canary": { "steps": [{ "setWeight": 50 }, { "pause": {} }] } }));
        let image = |release: &mut Release, image: &str| {
            release.spec.template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
        };
        image(&mut release, "web:0");
        fx.cache(replica_set(&release, 1, 3, 3));
        let mut release = fx.settled(release);
        // A new revision, paused before its first step, with a promotion asked for.
        image(&mut release, "web:1");
        release.spec.paused = true;
        let release = fx.settled(with_control(release, json!({ "promote": true })));
        assert!(
            fx.plan(&release).keep_control,
            "precondition: the promotion waits for the resume"
        );
        fx.server
            .serve(vec![], reconcile(cached(&release), fx.ctx.clone()))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_standby_writes_nothing_and_is_not_counted_as_failed() {
        let mut fx = Fixture::new();
        fx.stand_by();
        let release = rolling();
        // It plans on its caches and sends nothing at all.
        let result = fx.server.serve(vec![], timed(cached(&release), fx.ctx.clone())).await;
        assert!(matches!(result, Err(Error::NotLeader)), "{result:?}");
        let metrics = fx.ctx.metrics.render();
        assert!(
            metrics.contains(r#"serin_reconcile_total{result="not_leader"} 1"#),
            "{metrics}"
        );
        assert!(!metrics.contains(r#"result="error""#), "{metrics}");
        assert!(!metrics.contains("serin_reconcile_errors_total{"), "{metrics}");
    }

    #[tokio::test]
    async fn a_failed_round_is_counted_by_kind() {
        let mut fx = Fixture::new();
        let release = rolling();
        let scenario = vec![Exchange::post(&format!("{REPLICA_SETS}?&fieldManager=serin")).fail(500, "InternalError")];
        let result = fx.server.serve(scenario, timed(cached(&release), fx.ctx.clone())).await;
        assert!(
            matches!(&result, Err(Error::Kube(kube::Error::Api(s))) if s.code == 500),
            "{result:?}"
        );
        let metrics = fx.ctx.metrics.render();
        assert!(
            metrics.contains(r#"serin_reconcile_total{result="error"} 1"#),
            "{metrics}"
        );
        assert!(
            metrics.contains(r#"serin_reconcile_errors_total{kind="kube"} 1"#),
            "{metrics}"
        );
    }

    #[tokio::test]
    async fn a_round_without_a_synced_cache_reads_nothing() {
        let (ctx, mut server) = Fixture::new().lose_cache();
        let result = server.serve(vec![], reconcile(cached(&rolling()), ctx)).await;
        assert!(matches!(result, Err(Error::CacheGone)), "{result:?}");
    }

    /// The first round of a new revision: its ReplicaSet created and the
    /// status written, answered with these resourceVersions.
    async fn first_round(fx: &mut Fixture, release: &Release, rs_version: &str, status_version: &str) {
        let mut written = release.clone();
        written.metadata.resource_version = Some(status_version.into());
        let revision = plan::revision::revision_of(&release.spec.template);
        let mut created = replicaset::build(release, &revision, 1, 3);
        created.metadata.resource_version = Some(rs_version.into());
        let scenario = vec![
            Exchange::post(&format!("{REPLICA_SETS}?&fieldManager=serin")).answer(created),
            event("RolloutStarted"),
            event("ScalingReplicaSet"),
            status_applied(|_| {}, &written),
        ];
        fx.server
            .serve(scenario, reconcile(cached(release), fx.ctx.clone()))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_round_on_caches_that_do_not_show_its_own_last_writes_plans_nothing() {
        let mut fx = Fixture::new();
        let mut release = rolling();
        release.metadata.resource_version = Some("10".into());
        first_round(&mut fx, &release, "11", "12").await;

        // The watch has not delivered either write: the same stale Release,
        // no ReplicaSet. Without the guard this round would create it again.
        let again = fx
            .server
            .serve(vec![], reconcile(cached(&release), fx.ctx.clone()))
            .await;
        assert!(
            matches!(again, Ok(ref requeue) if *requeue != Requeue::await_change()),
            "{again:?}"
        );

        // The ReplicaSet arrives, the status write not yet: still nothing.
        let revision = plan::revision::revision_of(&release.spec.template);
        let mut rs = replicaset::build(&release, &revision, 1, 3);
        rs.metadata.resource_version = Some("11".into());
        fx.cache(rs);
        fx.server
            .serve(vec![], reconcile(cached(&release), fx.ctx.clone()))
            .await
            .unwrap();
        assert!(!fx.ctx.expectations.is_empty());

        // Both shown: the round decides again, and has nothing to write.
        let mut shown = fx.settled(release);
        shown.metadata.resource_version = Some("12".into());
        fx.server
            .serve(vec![], reconcile(cached(&shown), fx.ctx.clone()))
            .await
            .unwrap();
        assert!(fx.ctx.expectations.is_empty(), "what the caches show is forgotten");
        let metrics = fx.ctx.metrics.render();
        assert!(metrics.contains("serin_reconcile_cache_behind_total 2"), "{metrics}");
    }

    #[tokio::test]
    async fn resource_versions_that_are_not_integers_make_the_round_read_the_release() {
        let mut fx = Fixture::new();
        let mut release = rolling();
        release.metadata.resource_version = Some("a".into());
        first_round(&mut fx, &release, "b", "c").await;
        fx.cache(replica_set(&release, 1, 3, 3));
        let mut fresh = fx.settled(release.clone());
        fresh.metadata.resource_version = Some("c".into());
        fx.server
            .serve(vec![get_release(&fresh)], reconcile(cached(&release), fx.ctx.clone()))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_template_the_api_server_refuses_is_shown_and_nothing_else_moves() {
        let mut fx = Fixture::new();
        let mut release = rolling();
        let image = |release: &mut Release, image: &str| {
            release.spec.template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
        };
        image(&mut release, "web:0");
        fx.cache(replica_set(&release, 1, 3, 3));
        let mut release = fx.settled(release);
        image(&mut release, "web:1");
        let scenario = vec![
            Exchange::post(&format!("{REPLICA_SETS}?&fieldManager=serin"))
                .fail(422, "Invalid")
                .saying("spec.template.spec.containers[0].image: Invalid value"),
            event("InvalidSpec"),
            status_applied(
                |status| {
                    let conditions = status["conditions"].to_string();
                    assert!(
                        conditions.contains("the API server refuses its ReplicaSet"),
                        "{conditions}"
                    );
                    assert!(conditions.contains("Invalid value"), "{conditions}");
                },
                &release,
            ),
        ];
        fx.server
            .serve(scenario, reconcile(cached(&release), fx.ctx.clone()))
            .await
            .unwrap();
    }
}
