//! One reconcile: observe, plan (pure), apply the plan, write status if it changed.
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::Instrument;

use super::{Context, Error, analysis, replicaset, traffic};
use crate::api::{FIELD_MANAGER, Release, ReleaseStatus};
use crate::plan::{self, Action, AnalysisSlot, Observed};
use crate::telemetry::Reconciled;
use crate::traffic::TrafficRouter;

/// One reconcile, counted and timed, in a span naming its Release.
pub async fn timed(cached: Arc<Release>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let started = std::time::Instant::now();
    let result = reconcile(cached.clone(), ctx.clone()).instrument(span(&cached)).await;
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
pub fn span(release: &Release) -> tracing::Span {
    tracing::info_span!(
        "reconcile",
        release = %release.name_any(),
        namespace = %release.namespace().unwrap_or_default(),
    )
}

/// The stages of one reconcile, in order: observe, plan (pure), apply, record.
pub async fn reconcile(cached: Arc<Release>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    // Planning on a partial cache would re-create ReplicaSets that exist.
    let mut synced = ctx.synced.clone();
    synced.wait_for(|synced| *synced).await.map_err(|_| Error::CacheGone)?;
    let namespace = cached.namespace().ok_or(Error::MissingNamespace)?;
    let releases = Api::<Release>::namespaced(ctx.client.clone(), &namespace);
    // Read the Release fresh: the cache can lag behind this controller's own
    // last status write, and a decision on a stale status (a measurement taken
    // twice, a Job read after it was deleted) would be wrong.
    let Some(release) = releases.get_opt(&cached.name_any()).await? else {
        ctx.metrics.forget(&namespace, &cached.name_any());
        return Ok(Requeue::await_change());
    };
    let replica_sets: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let now = Timestamp::now();
    let owned = owned_replica_sets(&ctx, &release);
    let observation = observe(&ctx, &release, now).await?;
    let (plan, router) = decide(&replica_sets, &release, &owned, observation, now).await?;

    // Writes are gated on holding the Lease: a standby never writes.
    if !*ctx.leader.borrow() {
        return Err(Error::NotLeader);
    }
    apply(&ctx, &replica_sets, &release, &plan, router.as_deref()).await?;
    publish_events(&ctx, &release, &plan).await;
    write_status(&releases, &release, &plan).await?;
    record_metrics(&ctx, &release, &plan, now);
    Ok(match plan.requeue_after {
        Some(after) => Requeue::requeue(after),
        None => Requeue::await_change(),
    })
}

/// The ReplicaSets this Release controls, from the cache.
fn owned_replica_sets(ctx: &Context, release: &Release) -> Vec<plan::RevisionState> {
    let uid = release.uid();
    ctx.replica_sets
        .state()
        .iter()
        .filter(|rs| {
            rs.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
        })
        .filter_map(|rs| replicaset::observe(rs))
        .collect()
}

/// What the plan reads besides the Release and its ReplicaSets.
struct Observation {
    analysis: Option<plan::AnalysisInput>,
    gate_analysis: Option<plan::AnalysisInput>,
    traffic: plan::Traffic,
    router: Option<Box<dyn TrafficRouter>>,
}

/// Observe: the analyses that are due, measured; the Services and the router's weight.
async fn observe(ctx: &Context, release: &Release, now: Timestamp) -> Result<Observation, Error> {
    let (mut analysis, mut gate_analysis) = (None, None);
    for request in plan::analyses_due(release, now) {
        let input = analysis::advance(ctx, release, &request, now).await?;
        match request.slot {
            AnalysisSlot::Background => analysis = Some(input),
            _ => gate_analysis = Some(input),
        }
    }
    let (traffic, router) = traffic::observe(ctx, release).await?;
    Ok(Observation {
        analysis,
        gate_analysis,
        traffic,
        router,
    })
}

/// Plan, then plan again when the API server refuses the ReplicaSet the plan
/// would create: asked before anything moves, so that the round's other actions
/// (scaling the old revision down) are not taken for a revision that can never start.
async fn decide(
    replica_sets: &Api<ReplicaSet>,
    release: &Release,
    owned: &[plan::RevisionState],
    observation: Observation,
    now: Timestamp,
) -> Result<(plan::Plan, Option<Box<dyn TrafficRouter>>), Error> {
    let mut observed = Observed {
        release,
        replica_sets: owned,
        analysis: observation.analysis,
        gate_analysis: observation.gate_analysis,
        traffic: observation.traffic,
        refused: None,
        now,
    };
    let mut plan = plan::plan(&observed);
    if let Some(refusal) = replicaset::refusal(replica_sets, release, &plan.actions).await? {
        observed.refused = Some(refusal);
        plan = plan::plan(&observed);
    }
    tracing::debug!(
        phase = ?plan.status.phase, actions = ?plan.actions,
        requeue_after = ?plan.requeue_after, analysis = ?plan.status.analysis.as_ref().map(|a| (a.phase, &a.message)),
        "planned"
    );
    Ok((plan, observation.router))
}

/// Apply: the actions in the plan's order, which puts route and Service changes
/// before the scaling they make safe.
async fn apply(
    ctx: &Context,
    replica_sets: &Api<ReplicaSet>,
    release: &Release,
    plan: &plan::Plan,
    router: Option<&dyn TrafficRouter>,
) -> Result<(), Error> {
    for action in &plan.actions {
        match action {
            Action::Select { service, revision } => traffic::select(ctx, release, service, revision).await?,
            Action::SetWeight { canary } => traffic::set_weight(router, *canary).await?,
            _ => replicaset::apply(replica_sets, release, action).await?,
        }
    }
    Ok(())
}

/// Record: the plan's transitions as Events. A failed Event is logged, not retried.
async fn publish_events(ctx: &Context, release: &Release, plan: &plan::Plan) {
    let reference = release.object_ref(&());
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
        if let Err(error) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(%error, reason = transition.reason.as_str(), "could not record event");
        }
    }
}

/// Record: status, only when it changed; then a consumed `status.control` cleared.
async fn write_status(releases: &Api<Release>, release: &Release, plan: &plan::Plan) -> Result<(), Error> {
    // status.control is a person's request, not the controller's: compare without it.
    let recorded = release.status.clone().map(|s| ReleaseStatus { control: None, ..s });
    if recorded.as_ref() != Some(&plan.status) {
        let status = json!({ "apiVersion": "serin.dev/v1alpha1", "kind": "Release", "status": plan.status });
        let apply = PatchParams::apply(FIELD_MANAGER).force();
        releases
            .patch_status(&release.name_any(), &apply, &Patch::Apply(status))
            .await?;
    }
    if release.status.as_ref().is_some_and(|s| s.control.is_some()) && !plan.keep_control {
        // The request was acted on in this round; consume it.
        let consumed = json!({ "status": { "control": null } });
        releases
            .patch_status(&release.name_any(), &PatchParams::default(), &Patch::Merge(consumed))
            .await?;
    }
    Ok(())
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
    use std::sync::Arc;

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
    async fn a_new_revision_is_dry_run_then_created_never_applied_and_the_status_applied() {
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
            get_release(&release),
            Exchange::post(&format!("{REPLICA_SETS}?&dryRun=All&fieldManager=serin")).body(built.clone()),
            Exchange::post(&format!("{REPLICA_SETS}?&fieldManager=serin")).body(built),
            event("RolloutStarted"),
            event("ScalingReplicaSet"),
            status_applied(|status| assert_eq!(status["phase"], "Progressing"), &release),
        ];
        fx.server
            .serve(scenario, reconcile(Arc::new(release.clone()), fx.ctx.clone()))
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
            .serve(
                vec![get_release(&release)],
                reconcile(Arc::new(release.clone()), fx.ctx.clone()),
            )
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
        let scenario = vec![
            get_release(&release),
            event("Retried"),
            Exchange::merge_patch(&format!("{STATUS}?"))
                .body(|body| assert_eq!(body, &json!({ "status": { "control": null } })))
                .answer(&release),
        ];
        fx.server
            .serve(scenario, reconcile(Arc::new(release.clone()), fx.ctx.clone()))
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
            .serve(
                vec![get_release(&release)],
                reconcile(Arc::new(release.clone()), fx.ctx.clone()),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_standby_writes_nothing_and_is_not_counted_as_failed() {
        let mut fx = Fixture::new();
        fx.stand_by();
        let release = rolling();
        // The dry run writes nothing: it comes before the Lease is checked.
        let scenario = vec![
            get_release(&release),
            Exchange::post(&format!("{REPLICA_SETS}?&dryRun=All&fieldManager=serin")),
        ];
        let result = fx
            .server
            .serve(scenario, timed(Arc::new(release), fx.ctx.clone()))
            .await;
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
        let scenario = vec![Exchange::get(RELEASE).fail(500, "InternalError")];
        let result = fx
            .server
            .serve(scenario, timed(Arc::new(release), fx.ctx.clone()))
            .await;
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
        let result = server.serve(vec![], reconcile(Arc::new(rolling()), ctx)).await;
        assert!(matches!(result, Err(Error::CacheGone)), "{result:?}");
    }
}
