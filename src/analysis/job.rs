//! The Job provider: a Kubernetes Job per measurement, Successful when it
//! completes and Failed when it fails. Measuring starts the Job; later rounds
//! read it back (the controller watches Jobs labelled managed-by serin, so a
//! finished one triggers a reconcile).
use std::collections::{BTreeMap, BTreeSet};

use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use sha2::{Digest, Sha256};

use super::provider::{Env, HookRun, Outcome, Provider};
use super::template::{self, Args};
use crate::api::{
    self, FIELD_MANAGER, HOOK_ATTEMPT_LABEL, HOOK_LABEL, JobProvider, MANAGED_BY_LABEL, MANAGED_BY_VALUE,
    MeasurementPhase, RELEASE_LABEL, REVISION_LABEL,
};

impl Provider for JobProvider {
    fn name(&self) -> &'static str {
        "job"
    }

    /// Args go into the string values of the Job spec only.
    fn render(&self, args: &Args, _hidden: &BTreeSet<String>) -> Result<api::Provider, String> {
        let mut job = self.clone();
        let spec = serde_json::to_value(&job.spec).map_err(|e| e.to_string())?;
        job.spec = serde_json::from_value(template::json_tree(&spec, args)?).map_err(|e| e.to_string())?;
        Ok(api::Provider {
            job: Some(job),
            ..Default::default()
        })
    }

    fn measure<'a>(&'a self, env: &'a Env<'a>) -> BoxFuture<'a, Result<Outcome, kube::Error>> {
        Box::pin(start(env, &self.spec))
    }

    fn read_back<'a>(&'a self, env: &'a Env<'a>, handle: &'a str) -> BoxFuture<'a, Result<Outcome, kube::Error>> {
        Box::pin(outcome(env, handle))
    }
}

/// Starts a Job for one measurement, owned by the Release so it never outlives
/// it; started, its name is the handle. A Job of that name already there is
/// this one (a retry of the call), unless a hook's other attempt left it.
async fn start(env: &Env<'_>, spec: &k8s_openapi::api::batch::v1::JobSpec) -> Result<Outcome, kube::Error> {
    let release = env.release;
    let release_name = release.name_any();
    let name = job_name(&release_name, env.key, env.hook.as_ref(), env.number);
    let mut labels = BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
        (RELEASE_LABEL.to_string(), release_name.clone()),
    ]);
    if let Some(hook) = &env.hook {
        labels.insert(HOOK_LABEL.into(), hook.kind.label().into());
        labels.insert(REVISION_LABEL.into(), hook.revision.into());
        labels.insert(HOOK_ATTEMPT_LABEL.into(), hook.attempt.to_string());
    }
    let mut spec = spec.clone();
    if env.hook.is_some() {
        // serin keeps a hook's Job (it is read back after a restart) and
        // removes it with the next revision's.
        spec.ttl_seconds_after_finished = None;
    }
    let job = Job {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: release.namespace(),
            labels: Some(labels),
            owner_references: release.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    };
    let api = Api::<Job>::namespaced(env.kube.clone(), &release.namespace().unwrap_or_default());
    if let Some(hook) = &env.hook {
        delete_other_revisions(&api, &release_name, hook.revision).await?;
    }
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    for _ in 0..2 {
        match api.create(&params, &job).await {
            Ok(_) => return Ok(Outcome::Started(name)),
            Err(kube::Error::Api(s)) if s.is_already_exists() => {}
            Err(other) => return Err(other),
        }
        let Some(hook) = &env.hook else {
            return Ok(Outcome::Started(name));
        };
        let found = api.get_opt(&name).await?;
        let attempt = found.as_ref().and_then(|j| j.labels().get(HOOK_ATTEMPT_LABEL).cloned());
        if found.is_some() && attempt == Some(hook.attempt.to_string()) {
            return Ok(Outcome::Started(name));
        }
        // A failed attempt's Job, kept for its logs: this attempt replaces it.
        delete(&api, &name).await?;
    }
    Ok(Outcome::Running) // Still there: the next round starts it.
}

/// A hook's Jobs of other revisions: each revision keeps only its own.
async fn delete_other_revisions(api: &Api<Job>, release: &str, revision: &str) -> Result<(), kube::Error> {
    let selector = format!("{RELEASE_LABEL}={release},{HOOK_LABEL},{REVISION_LABEL}!={revision}");
    let others = api.list_metadata(&ListParams::default().labels(&selector)).await?;
    for job in others.items {
        delete(api, &job.name_any()).await?;
    }
    Ok(())
}

async fn delete(api: &Api<Job>, name: &str) -> Result<(), kube::Error> {
    match api.delete(name, &DeleteParams::background()).await {
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        other => other.map(|_| ()),
    }
}

/// `<release>-<metric>-<n>`, or for a hook `<release>-<hook>-<metric>-<revision>-<n>`,
/// cut to the 63 characters a Job name may have.
fn job_name(release: &str, metric: &str, hook: Option<&HookRun>, number: i32) -> String {
    let suffix = match hook {
        Some(hook) => format!("-{}-{number}", hook.revision),
        None => format!("-{number}"),
    };
    let full = format!("{release}-{metric}").to_lowercase();
    let room = 63usize.saturating_sub(suffix.len());
    let mut base: String = if full.len() <= room {
        full
    } else {
        // Cut, with a hash of the whole: two long names cut alike stay apart.
        let digest = Sha256::digest(full.as_bytes());
        let hash: String = digest[..3].iter().map(|b| format!("{b:02x}")).collect();
        let mut cut: String = full.chars().take(room.saturating_sub(hash.len() + 1)).collect();
        while cut.ends_with(['-', '.']) {
            cut.pop();
        }
        format!("{cut}-{hash}")
    };
    while base.ends_with(['-', '.']) {
        base.pop();
    }
    format!("{base}{suffix}")
}

/// Reads a measurement Job: Successful when complete, Failed when failed; the Job
/// is deleted once read so runs do not pile up.
async fn outcome(env: &Env<'_>, name: &str) -> Result<Outcome, kube::Error> {
    let api = Api::<Job>::namespaced(env.kube.clone(), &env.release.namespace().unwrap_or_default());
    let Some(job) = api.get_opt(name).await? else {
        // An analysis measures again; a hook never runs twice (a migration
        // may have run): it fails, and a retry starts a new attempt.
        let phase = match env.hook {
            Some(_) => MeasurementPhase::Failed,
            None => MeasurementPhase::Error,
        };
        return Ok(Outcome::Judged(phase, format!("Job {name} disappeared")));
    };
    let conditions = job.status.and_then(|s| s.conditions).unwrap_or_default();
    let finished = conditions
        .iter()
        .find(|c| c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed"));
    let Some(finished) = finished else {
        return Ok(Outcome::Running);
    };
    let phase = if finished.type_ == "Complete" {
        MeasurementPhase::Successful
    } else {
        MeasurementPhase::Failed
    };
    let value = match &finished.reason {
        Some(reason) => format!("Job {}: {reason}", finished.type_),
        None => format!("Job {}", finished.type_),
    };
    // A hook's Job stays, for its logs and so that a read after a restart
    // finds it; another revision's hook or attempt removes it.
    if env.hook.is_none() {
        delete(&api, name).await?;
    }
    Ok(Outcome::Judged(phase, value))
}

#[cfg(test)]
mod tests {
    use super::{HookRun, job_name};

    #[test]
    fn job_names_fit_63_characters() {
        assert_eq!(job_name("web", "smoke", None, 1), "web-smoke-1");
        let long = job_name(&"a".repeat(50), &"b".repeat(50), None, 12);
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("-12"));
    }

    #[test]
    fn a_hooks_job_is_named_by_its_revision() {
        let hook = HookRun {
            kind: crate::api::HookKind::PreRollout,
            revision: "5d8f7c9b4a",
            attempt: 1,
        };
        let name = job_name("web", "pre-rollout-migrate", Some(&hook), 1);
        assert_eq!(name, "web-pre-rollout-migrate-5d8f7c9b4a-1");
        let long = job_name(&"a".repeat(60), "pre-rollout-migrate", Some(&hook), 3);
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("-5d8f7c9b4a-3"), "{long}");
        let release = "payments-api-production-eu";
        let checkout = job_name(release, "post-rollout-smoke-test-checkout", Some(&hook), 1);
        let search = job_name(release, "post-rollout-smoke-test-search", Some(&hook), 1);
        assert_ne!(checkout, search, "names cut alike stay apart");
        assert!(checkout.len() <= 63 && search.len() <= 63);
    }
}
