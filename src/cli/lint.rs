//! `kubectl serin lint`: checks Release and AnalysisTemplate manifests offline,
//! as the API server and the controller would, naming the field and the reason.
use serde_json::Value;

use crate::api::{AnalysisTemplate, ClusterAnalysisTemplate, Metric, Release, validation};
use crate::plan::{self, Observed, Traffic};

/// One problem in one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based position in the file.
    pub document: usize,
    /// `Release web`, say.
    pub object: String,
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "document {}: {}: {}: {}",
            self.document, self.object, self.field, self.reason
        )
    }
}

const KINDS: [&str; 3] = ["Release", "AnalysisTemplate", "ClusterAnalysisTemplate"];

/// Every problem in a (multi-document) YAML file; documents of other kinds and
/// groups are left alone. Err when the text is not YAML.
pub fn lint(yaml: &str) -> Result<Vec<Problem>, String> {
    let mut problems = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let value: Value = serde::Deserialize::deserialize(document).map_err(|e| format!("not YAML: {e}"))?;
        if value.is_null() {
            continue;
        }
        problems.extend(lint_object(index + 1, &value));
    }
    Ok(problems)
}

fn lint_object(document: usize, value: &Value) -> Vec<Problem> {
    let kind = value["kind"].as_str().unwrap_or_default();
    let api_version = value["apiVersion"].as_str().unwrap_or_default();
    if !api_version.starts_with("serin.dev/") || !KINDS.contains(&kind) {
        return Vec::new();
    }
    let name = value["metadata"]["name"].as_str().unwrap_or("(unnamed)");
    let problem = |field: &str, reason: String| Problem {
        document,
        object: format!("{kind} {name}"),
        field: field.to_string(),
        reason,
    };
    if api_version != "serin.dev/v1alpha1" {
        return vec![problem(
            "apiVersion",
            format!("{api_version:?} is not served; use serin.dev/v1alpha1"),
        )];
    }
    // The schema's structure (types, bounds, required fields), then the types
    // as serin reads them.
    let structural = validation::schema_errors(kind, value);
    if !structural.is_empty() {
        return structural
            .into_iter()
            .map(|error| match error.split_once(": ") {
                Some((field, reason)) => problem(field, reason.to_string()),
                None => problem("", error),
            })
            .collect();
    }
    let typed = match kind {
        "Release" => typed::<Release>(value).map(|r| Typed::Release(Box::new(r))),
        "AnalysisTemplate" => typed::<AnalysisTemplate>(value).map(|t| Typed::Metrics(t.spec.metrics)),
        _ => typed::<ClusterAnalysisTemplate>(value).map(|t| Typed::Metrics(t.spec.metrics)),
    };
    let typed = match typed {
        Ok(typed) => typed,
        Err((field, reason)) => return vec![problem(&field, reason)],
    };
    // The CRD's validation rules, as the API server evaluates them.
    let mut problems: Vec<Problem> = validation::rule_errors(kind, value)
        .into_iter()
        .map(|error| match error.split_once(": ") {
            Some((field, reason)) => problem(field, reason.to_string()),
            None => problem("", error),
        })
        .collect();
    // serin's own checks: what the controller would show as InvalidSpec.
    match typed {
        Typed::Release(release) => problems.extend(invalid_spec(&release).map(|reason| problem("spec", reason))),
        Typed::Metrics(metrics) => {
            for (index, metric) in metrics.iter().enumerate() {
                if let Err(reason) = crate::analysis::check_metric(metric) {
                    problems.push(problem(&format!("spec.metrics[{index}]"), reason));
                }
            }
        }
    }
    problems
}

enum Typed {
    Release(Box<Release>),
    Metrics(Vec<Metric>),
}

/// The object read as its type; Err names the field that does not fit.
fn typed<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        (if path == "." { String::new() } else { path }, e.inner().to_string())
    })
}

/// The message the controller would show as InvalidSpec for this spec, if any.
fn invalid_spec(release: &Release) -> Option<String> {
    let mut fresh = release.clone();
    fresh.status = None;
    let plan = plan::plan(&Observed {
        release: &fresh,
        replica_sets: &[],
        analysis: None,
        gate_analysis: None,
        traffic: Traffic::default(),
        refused: None,
        now: k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
    });
    let degraded = plan.status.conditions.iter().find(|c| c.type_ == "Degraded")?;
    (degraded.status == "True" && degraded.reason == plan::reason::INVALID_SPEC).then(|| degraded.message.clone())
}
