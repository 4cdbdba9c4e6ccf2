//! The Job provider: a Kubernetes Job per measurement, Successful when it
//! completes and Failed when it fails. Measuring starts the Job; later rounds
//! read it back (the controller watches Jobs labelled managed-by serin, so a
//! finished one triggers a reconcile).
use std::collections::{BTreeMap, BTreeSet};

use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Resource, ResourceExt};

use super::provider::{Env, Outcome, Provider};
use super::template::{self, Args};
use crate::api::{
    self, FIELD_MANAGER, JobProvider, MANAGED_BY_LABEL, MANAGED_BY_VALUE, MeasurementPhase, RELEASE_LABEL,
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
        Box::pin(async move { start(env, &self.spec).await.map(Outcome::Started) })
    }

    fn read_back<'a>(&'a self, env: &'a Env<'a>, handle: &'a str) -> BoxFuture<'a, Result<Outcome, kube::Error>> {
        Box::pin(outcome(env, handle))
    }
}

/// Starts a Job for one measurement, owned by the Release so it never outlives
/// it. Returns its name; a Job of that name already there is this one (a retry).
async fn start(env: &Env<'_>, spec: &k8s_openapi::api::batch::v1::JobSpec) -> Result<String, kube::Error> {
    let release = env.release;
    let release_name = release.name_any();
    let name = job_name(&release_name, env.key, env.number);
    let job = Job {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: release.namespace(),
            labels: Some(BTreeMap::from([
                (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
                (RELEASE_LABEL.to_string(), release_name),
            ])),
            owner_references: release.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        spec: Some(spec.clone()),
        status: None,
    };
    let api = Api::<Job>::namespaced(env.kube.clone(), &release.namespace().unwrap_or_default());
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.create(&params, &job).await {
        Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(name),
        other => other.map(|_| name),
    }
}

/// `<release>-<metric>-<n>`, cut to the 63 characters a Job name may have.
fn job_name(release: &str, metric: &str, number: i32) -> String {
    let suffix = format!("-{number}");
    let mut base: String = format!("{release}-{metric}").chars().take(63 - suffix.len()).collect();
    while base.ends_with('-') {
        base.pop();
    }
    format!("{}{suffix}", base.to_lowercase())
}

/// Reads a measurement Job: Successful when complete, Failed when failed; the Job
/// is deleted once read so runs do not pile up.
async fn outcome(env: &Env<'_>, name: &str) -> Result<Outcome, kube::Error> {
    let api = Api::<Job>::namespaced(env.kube.clone(), &env.release.namespace().unwrap_or_default());
    let Some(job) = api.get_opt(name).await? else {
        return Ok(Outcome::Judged(
            MeasurementPhase::Error,
            format!("Job {name} disappeared"),
        ));
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
    match api.delete(name, &DeleteParams::background()).await {
        Err(kube::Error::Api(s)) if s.is_not_found() => {}
        other => {
            other?;
        }
    }
    Ok(Outcome::Judged(phase, value))
}

#[cfg(test)]
mod tests {
    use super::job_name;

    #[test]
    fn job_names_fit_63_characters() {
        assert_eq!(job_name("web", "smoke", 1), "web-smoke-1");
        let long = job_name(&"a".repeat(50), &"b".repeat(50), 12);
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("-12"));
    }
}
