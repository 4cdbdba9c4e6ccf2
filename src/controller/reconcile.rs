//! One reconcile: observe, plan (pure), apply the plan, write status if it changed.
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::{Context, Error, FIELD_MANAGER, analysis, replicaset, traffic};
use crate::api::{Release, ReleaseStatus};
use crate::plan::{self, Action, AnalysisSlot, Observed};

/// One reconcile, counted and timed.
pub async fn timed(cached: Arc<Release>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let started = std::time::Instant::now();
    let result = reconcile(cached, ctx.clone()).await;
    ctx.metrics.reconciled(result.is_ok(), started.elapsed());
    result
}

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
    let uid = release.uid();
    let observed: Vec<_> = ctx
        .replica_sets
        .state()
        .iter()
        .filter(|rs| {
            rs.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
        })
        .filter_map(|rs| replicaset::observe(rs))
        .collect();

    let now = Timestamp::now();
    let (mut analysis, mut gate_analysis) = (None, None);
    for request in plan::analyses_due(&release, now) {
        let input = analysis::advance(&ctx, &release, &request, now).await?;
        match request.slot {
            AnalysisSlot::Background => analysis = Some(input),
            _ => gate_analysis = Some(input),
        }
    }
    let (traffic, router) = traffic::observe(&ctx, &release).await?;
    let replica_sets: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut observed = Observed {
        release: &release,
        replica_sets: &observed,
        analysis,
        gate_analysis,
        traffic,
        refused: None,
        now,
    };
    let mut plan = plan::plan(&observed);
    // A template the API server refuses for a ReplicaSet: asked before anything
    // moves, so that the round's other actions (scaling the old revision down)
    // are not taken for a revision that can never start.
    if let Some(refusal) = refusal(&replica_sets, &release, &plan.actions).await? {
        observed.refused = Some(refusal);
        plan = plan::plan(&observed);
    }
    tracing::debug!(
        release = %release.name_any(), %namespace, phase = ?plan.status.phase, actions = ?plan.actions,
        requeue_after = ?plan.requeue_after, analysis = ?plan.status.analysis.as_ref().map(|a| (a.phase, &a.message)),
        "planned"
    );

    // Writes are gated on holding the Lease: a standby never writes.
    if !*ctx.leader.borrow() {
        return Err(Error::NotLeader);
    }
    // In order: the plan puts route and Service changes before the scaling they make safe.
    for action in &plan.actions {
        match action {
            Action::Select { service, revision } => traffic::select(&ctx, &release, service, revision).await?,
            Action::SetWeight { canary } => traffic::set_weight(router.as_deref(), *canary).await?,
            _ => apply(&replica_sets, &release, action).await?,
        }
    }
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
    if let Some(phase) = plan.status.phase {
        ctx.metrics.phase(&namespace, &release.name_any(), phase);
    }
    let promoted = plan.promoted;
    if let (true, Some(started)) = (
        promoted,
        release.status.as_ref().and_then(|s| s.rollout_start_time.as_ref()),
    ) {
        let took = now.duration_since(started.0).unsigned_abs();
        ctx.metrics.rollout_completed(release.spec.strategy.name(), took);
    }
    Ok(match plan.requeue_after {
        Some(after) => Requeue::requeue(after),
        None => Requeue::await_change(),
    })
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

/// Why the API server refuses the ReplicaSet the plan would create, if it does:
/// a server-side dry run of the create.
async fn refusal(api: &Api<ReplicaSet>, release: &Release, actions: &[Action]) -> Result<Option<String>, Error> {
    let Some(Action::Create {
        revision,
        number,
        replicas,
    }) = actions.iter().find(|a| matches!(a, Action::Create { .. }))
    else {
        return Ok(None);
    };
    let rs = replicaset::build(release, revision, *number, *replicas);
    let params = PostParams {
        dry_run: true,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    match api.create(&params, &rs).await {
        Err(kube::Error::Api(status)) if is_refusal(status.code) => Ok(Some(clipped(&status.message, REFUSAL_MAX))),
        Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(None),
        Err(error) => Err(error.into()),
        Ok(_) => Ok(None),
    }
}

/// The API server refused the object itself (422 Invalid, 400 Bad Request, 413
/// too large), as opposed to a failure worth retrying.
fn is_refusal(code: u16) -> bool {
    matches!(code, 400 | 413 | 422)
}

/// The first `max` bytes of `text` (on a character boundary), marked when cut.
fn clipped(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Longest refusal message kept in a condition: an Event's note holds 1 kB, and
/// a refusal quoting a 300 kB annotation must not grow the status with it.
const REFUSAL_MAX: usize = 900;

async fn apply(api: &Api<ReplicaSet>, release: &Release, action: &Action) -> Result<(), Error> {
    match action {
        Action::Create {
            revision,
            number,
            replicas,
        } => {
            // Create, not apply: a stale cache must never overwrite a live ReplicaSet's scale.
            let rs = replicaset::build(release, revision, *number, *replicas);
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            match api.create(&params, &rs).await {
                Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(()),
                other => other.map(|_| ()).map_err(Error::from),
            }
        }
        Action::Scale { name, replicas } => {
            let scale = json!({ "spec": { "replicas": replicas } });
            api.patch_scale(name, &PatchParams::default(), &Patch::Merge(&scale))
                .await?;
            Ok(())
        }
        Action::Delete { name } => match api.delete(name, &DeleteParams::background()).await {
            Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
            other => other.map(|_| ()).map_err(Error::from),
        },
        Action::Select { .. } | Action::SetWeight { .. } => Ok(()), // Applied by the caller.
    }
}
