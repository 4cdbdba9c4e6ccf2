//! `serin controller --apply-crds`: the controller brings its own CRDs up to
//! date at start, because `helm upgrade` never touches a chart's `crds/`.
//!
//! Each CRD is server-side applied with the field manager `serin`, forced:
//! the first apply takes over the fields Helm (or kubectl) wrote at install.
//! The RBAC that allows it is limited by name to serin's three CRDs; a CRD
//! that is missing is created by the same apply, which the API server
//! authorizes as `create` on that name, so `create` is name-limited too.
//! A CRD last applied by a newer serin is left alone (a `helm rollback`, or
//! an old replica restarting during an upgrade, must not take fields away
//! from a newer schema: the API server would prune them from stored objects
//! on their next write). Returns once every CRD is Established.
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};

use crate::api::FIELD_MANAGER;

/// The serin version that last applied a CRD, on the CRD.
pub const VERSION_ANNOTATION: &str = "serin.dev/applied-by-version";

/// How long the CRDs get to become Established.
const ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error("could not apply CRD {name}: {source}")]
    Apply { name: String, source: kube::Error },
    #[error("could not read CRD {name}: {source}")]
    Read { name: String, source: kube::Error },
    #[error("CRD {name} is not Established after {seconds}s: {why}")]
    NotEstablished { name: String, seconds: u64, why: String },
}

/// What happened to one CRD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied: created, or brought to this serin's schema (or already there).
    Applied,
    /// Left alone: a newer serin applied it.
    KeptNewer(String),
}

/// Applies `crds` and waits until each is Established.
pub async fn apply(client: &Client, crds: Vec<CustomResourceDefinition>) -> Result<Vec<(String, Outcome)>, CrdError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let ours = env!("CARGO_PKG_VERSION");
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut outcomes = Vec::new();
    for mut crd in crds {
        let name = crd.name_any();
        let live = api.get_opt(&name).await.map_err(|source| CrdError::Read {
            name: name.clone(),
            source,
        })?;
        let theirs = live
            .as_ref()
            .and_then(|live| live.annotations().get(VERSION_ANNOTATION).cloned());
        if let Some(theirs) = theirs.filter(|theirs| is_newer(theirs, ours)) {
            tracing::warn!(crd = %name, applied_by = %theirs, ours, "CRD was applied by a newer serin; leaving it");
            outcomes.push((name, Outcome::KeptNewer(theirs)));
            continue;
        }
        crd.annotations_mut().insert(VERSION_ANNOTATION.into(), ours.into());
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .map_err(|source| CrdError::Apply {
                name: name.clone(),
                source,
            })?;
        tracing::info!(crd = %name, created = live.is_none(), "applied CRD");
        outcomes.push((name, Outcome::Applied));
    }
    for (name, _) in &outcomes {
        wait_established(&api, name).await?;
    }
    Ok(outcomes)
}

/// Polls the CRD (get by name: the RBAC allows no list or watch) until its
/// Established condition is True.
async fn wait_established(api: &Api<CustomResourceDefinition>, name: &str) -> Result<(), CrdError> {
    let start = Instant::now();
    let mut why = String::from("no Established condition yet");
    while start.elapsed() < ESTABLISHED_TIMEOUT {
        let crd = api.get(name).await.map_err(|source| CrdError::Read {
            name: name.into(),
            source,
        })?;
        match established(&crd) {
            Ok(()) => return Ok(()),
            Err(reason) => why = reason,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(CrdError::NotEstablished {
        name: name.into(),
        seconds: ESTABLISHED_TIMEOUT.as_secs(),
        why,
    })
}

/// Ok when the CRD's Established condition is True, else why not.
pub fn established(crd: &CustomResourceDefinition) -> Result<(), String> {
    let conditions = crd.status.as_ref().and_then(|s| s.conditions.as_ref());
    let Some(condition) = conditions.and_then(|c| c.iter().find(|c| c.type_ == "Established")) else {
        return Err("no Established condition yet".into());
    };
    if condition.status == "True" {
        return Ok(());
    }
    Err(format!(
        "Established={}: {}",
        condition.status,
        condition.message.as_deref().unwrap_or("no message")
    ))
}

/// True when version `theirs` is strictly newer than `ours` (major.minor.patch,
/// numerically; a pre-release counts as older than its release). A version
/// that does not parse is never newer, so a hand-edited annotation cannot
/// stop the apply for good.
pub fn is_newer(theirs: &str, ours: &str) -> bool {
    match (parse(theirs), parse(ours)) {
        (Some(theirs), Some(ours)) => theirs > ours,
        _ => false,
    }
}

/// (major, minor, patch, is a release): a release sorts after its pre-releases.
fn parse(version: &str) -> Option<(u64, u64, u64, bool)> {
    let version = version.split('+').next()?;
    let (core, pre) = match version.split_once('-') {
        Some((core, _)) => (core, true),
        None => (version, false),
    };
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next()??;
    let patch = parts.next()??;
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor, patch, !pre))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinitionCondition, CustomResourceDefinitionStatus,
    };

    #[test]
    fn newer_compares_numerically() {
        assert!(is_newer("0.10.0", "0.9.3"));
        assert!(is_newer("1.0.0", "0.99.99"));
        assert!(is_newer("0.2.1", "0.2.0"));
        assert!(!is_newer("0.2.0", "0.2.0"));
        assert!(!is_newer("0.9.3", "0.10.0"));
        // A pre-release is older than its release, newer than the one before.
        assert!(!is_newer("0.3.0-rc.1", "0.3.0"));
        assert!(is_newer("0.3.0", "0.3.0-rc.1"));
        assert!(is_newer("0.3.0-rc.1", "0.2.9"));
        assert!(!is_newer("0.2.0+build.5", "0.2.0"));
    }

    #[test]
    fn unparsable_versions_are_never_newer() {
        for theirs in ["", "latest", "1.2", "1.2.3.4", "v1.2.3", "1.x.0"] {
            assert!(!is_newer(theirs, "0.1.0"), "{theirs:?}");
        }
    }

    fn crd_with(conditions: Option<Vec<(&str, &str)>>) -> CustomResourceDefinition {
        CustomResourceDefinition {
            status: conditions.map(|conditions| CustomResourceDefinitionStatus {
                conditions: Some(
                    conditions
                        .into_iter()
                        .map(|(type_, status)| CustomResourceDefinitionCondition {
                            type_: type_.into(),
                            status: status.into(),
                            message: Some("the names are in use".into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn established_reads_the_condition() {
        assert_eq!(
            established(&crd_with(Some(vec![
                ("NamesAccepted", "True"),
                ("Established", "True")
            ]))),
            Ok(())
        );
        assert_eq!(
            established(&crd_with(Some(vec![("Established", "False")]))),
            Err("Established=False: the names are in use".into())
        );
        assert!(established(&crd_with(Some(vec![("NamesAccepted", "True")]))).is_err());
        assert!(established(&crd_with(None)).is_err());
    }
}
