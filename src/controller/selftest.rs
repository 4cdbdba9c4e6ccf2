//! `serin self-test`: is an installed serin working? The chart's `helm test`
//! hook runs it in the cluster; CI runs the same checks from the host.
//!
//! - each of serin's CRDs is Established and carries this serin's schema and
//!   printer columns (a CRD Helm did not upgrade fails here);
//! - the controller's Lease (each shard's, when sharded) is held: a holder,
//!   renewed within its duration;
//! - the metrics endpoint answers with serin's metrics.
//!
//! It reads only: get on the three CRDs and on the Leases.
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Client, ResourceExt};

use super::crds::established;

/// What to check besides the CRDs.
#[derive(Clone, Debug, Default)]
pub struct Targets {
    /// The controller's Leases, (namespace, name): one, or one per shard;
    /// none skips the check.
    pub leases: Vec<(String, String)>,
    /// serin's /metrics, e.g. through the chart's Service; None skips the check.
    pub metrics_url: Option<String>,
}

/// One check's verdict: what was checked, and Ok(detail) or Err(why not).
#[derive(Debug)]
pub struct Check {
    pub what: String,
    pub result: Result<String, String>,
}

/// Runs every check; none stops the others.
pub async fn run(client: &Client, targets: &Targets) -> Vec<Check> {
    let mut checks = Vec::new();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for want in crate::api::crds() {
        let name = want.name_any();
        let result = match api.get_opt(&name).await {
            Ok(Some(live)) => crd_matches(&live, &want),
            Ok(None) => Err("not installed".into()),
            Err(error) => Err(format!("cannot read it: {error}")),
        };
        checks.push(Check {
            what: format!("CRD {name}"),
            result,
        });
    }
    for (namespace, name) in &targets.leases {
        let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
        let result = match api.get_opt(name).await {
            Ok(Some(lease)) => lease_held(&lease, Timestamp::now()),
            Ok(None) => Err("no such Lease: the controller has never run".into()),
            Err(error) => Err(format!("cannot read it: {error}")),
        };
        checks.push(Check {
            what: format!("Lease {namespace}/{name}"),
            result,
        });
    }
    if let Some(url) = &targets.metrics_url {
        checks.push(Check {
            what: format!("metrics {url}"),
            result: metrics_answer(url).await,
        });
    }
    checks
}

/// Established, and every version's schema, printer columns and subresources
/// equal to this serin's. The API server stores a CRD's versions as given, so
/// any difference means the live CRD came from another serin.
pub fn crd_matches(live: &CustomResourceDefinition, want: &CustomResourceDefinition) -> Result<String, String> {
    established(live)?;
    let live_versions = &live.spec.versions;
    for version in &want.spec.versions {
        let Some(found) = live_versions.iter().find(|v| v.name == version.name) else {
            return Err(format!(
                "has no version {}: not upgraded to this serin's CRDs",
                version.name
            ));
        };
        let columns = |v: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinitionVersion| {
            v.additional_printer_columns.clone().unwrap_or_default()
        };
        let differs = if found.schema != version.schema {
            Some("schema")
        } else if columns(found) != columns(version) {
            Some("printer columns")
        } else if found.subresources != version.subresources {
            Some("subresources")
        } else {
            None
        };
        if let Some(part) = differs {
            return Err(format!(
                "Established, but its {} {part} differ from this serin's: the CRD was not upgraded \
                 (helm upgrade never updates CRDs; set crds.applyOnStart=true or apply charts/serin/crds/)",
                version.name
            ));
        }
    }
    let by = live
        .annotations()
        .get(super::crds::VERSION_ANNOTATION)
        .map(|v| format!(", last applied by serin {v}"))
        .unwrap_or_default();
    Ok(format!("Established, same schema as this serin{by}"))
}

/// A holder, and a renewal less than one lease duration ago.
pub fn lease_held(lease: &Lease, now: Timestamp) -> Result<String, String> {
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.filter(|h| !h.is_empty()).ok_or("held by no one")?;
    let renewed = spec.renew_time.ok_or(format!("held by {holder}, never renewed"))?.0;
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    let age = now.duration_since(renewed).as_secs().max(0);
    if age > duration {
        return Err(format!(
            "held by {holder}, but last renewed {age}s ago (duration {duration}s): the holder is gone"
        ));
    }
    Ok(format!("held by {holder}, renewed {age}s ago"))
}

async fn metrics_answer(url: &str) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client.get(url).send().await.map_err(|e| format!("no answer: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("answered {status}"));
    }
    let body = response.text().await.map_err(|e| format!("unreadable body: {e}"))?;
    let series = body.lines().filter(|l| l.starts_with("serin_")).count();
    if series == 0 {
        return Err("answered, but with no serin_ metrics: not serin's endpoint".into());
    }
    Ok(format!("{status}, {series} serin_ series"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinitionCondition, CustomResourceDefinitionStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn lease(holder: Option<&str>, renewed_secs_ago: Option<i64>, now: Timestamp) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: holder.map(String::from),
                lease_duration_seconds: Some(15),
                renew_time: renewed_secs_ago.map(|s| MicroTime(now - k8s_openapi::jiff::SignedDuration::from_secs(s))),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_lease_is_held_while_renewed_within_its_duration() {
        let now = Timestamp::now();
        assert_eq!(
            lease_held(&lease(Some("pod-a"), Some(3), now), now),
            Ok("held by pod-a, renewed 3s ago".into())
        );
        let stale = lease_held(&lease(Some("pod-a"), Some(40), now), now).unwrap_err();
        assert!(stale.contains("the holder is gone"), "{stale}");
        assert_eq!(
            lease_held(&lease(None, Some(1), now), now),
            Err("held by no one".into())
        );
        assert_eq!(
            lease_held(&lease(Some(""), Some(1), now), now),
            Err("held by no one".into())
        );
        assert!(lease_held(&lease(Some("pod-a"), None, now), now).is_err());
    }

    fn established_copy(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
        crd.status = Some(CustomResourceDefinitionStatus {
            conditions: Some(vec![CustomResourceDefinitionCondition {
                type_: "Established".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        crd
    }

    #[test]
    fn a_crd_matches_only_with_this_serins_schema_and_columns() {
        let want = <crate::api::Release as kube::CustomResourceExt>::crd();
        assert!(crd_matches(&established_copy(want.clone()), &want).is_ok());
        assert!(crd_matches(&want, &want).is_err(), "not Established");

        let mut old = established_copy(want.clone());
        let columns = old.spec.versions[0].additional_printer_columns.as_mut().unwrap();
        columns.retain(|c| c.priority.unwrap_or(0) == 0);
        let why = crd_matches(&old, &want).unwrap_err();
        assert!(
            why.contains("printer columns differ") && why.contains("crds.applyOnStart"),
            "{why}"
        );

        let mut old = established_copy(want.clone());
        old.spec.versions[0].schema = None;
        assert!(crd_matches(&old, &want).unwrap_err().contains("schema differ"));

        let mut old = established_copy(want.clone());
        old.spec.versions[0].name = "v1alpha0".into();
        assert!(
            crd_matches(&old, &want)
                .unwrap_err()
                .contains("has no version v1alpha1")
        );
    }
}
