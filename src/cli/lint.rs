//! `kubectl serin lint`: checks Release and AnalysisTemplate manifests offline,
//! as the API server and the controller would, naming the field and the reason.
//!
//! The controller's part is [`check::check`], the function the controller
//! itself calls, given what the files hold instead of what the cluster holds:
//! the AnalysisTemplates, ClusterAnalysisTemplates and Secrets among the
//! documents. What is not among them is not guessed: a Release's analysis that
//! refers to a template the files do not hold is checked as far as it can be,
//! and an arg read from a Secret they do not hold is taken to be fine, unless
//! [`Scope::Complete`] says the files hold everything the namespace does.
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

use crate::api::{AnalysisTemplate, ClusterAnalysisTemplate, Release, validation};
use crate::controller::check::{self, Inputs, Template, Which};

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
        write!(f, "document {}: {}: ", self.document, self.object)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.reason)
    }
}

const KINDS: [&str; 3] = ["Release", "AnalysisTemplate", "ClusterAnalysisTemplate"];

/// Every problem in a (multi-document) YAML file; documents of other kinds and
/// groups are left alone. Err when the text is not YAML.
pub fn lint(yaml: &str) -> Result<Vec<Problem>, String> {
    let linted = lint_files(&[yaml], Scope::Partial).map_err(|(_, e)| e)?;
    Ok(linted.problems.into_iter().map(|(_, problem)| problem).collect())
}

/// What [`lint_files`] found, each with the index of its file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Linted {
    pub problems: Vec<(usize, Problem)>,
    /// What could not be checked: objects a Release uses that the files do
    /// not hold (with [`Scope::Partial`]). Not problems.
    pub unchecked: Vec<(usize, Problem)>,
}

/// [`lint`] over several files at once, so that a Release in one is checked
/// with the templates and Secrets in the others. Err gives the index of the
/// file that is not YAML.
pub fn lint_files(files: &[&str], scope: Scope) -> Result<Linted, (usize, String)> {
    let mut documents = Vec::new();
    for (file, yaml) in files.iter().enumerate() {
        for (index, document) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
            let value: Value =
                serde::Deserialize::deserialize(document).map_err(|e| (file, format!("not YAML: {e}")))?;
            if !value.is_null() {
                documents.push((file, index + 1, value));
            }
        }
    }
    let mut given = Given::from(documents.iter().map(|(_, _, value)| value));
    given.complete = scope == Scope::Complete;
    let mut linted = Linted::default();
    for (file, document, value) in &documents {
        let mut unchecked = Vec::new();
        let problems = lint_object(*document, value, &given, &mut unchecked);
        linted.problems.extend(problems.into_iter().map(|p| (*file, p)));
        linted.unchecked.extend(unchecked.into_iter().map(|p| (*file, p)));
    }
    Ok(linted)
}

/// What the files stand for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Some of the objects: a template or Secret they do not hold may be in the
    /// cluster, so what depends on it is not checked.
    Partial,
    /// Everything the Releases' namespaces hold (`--complete`): a template or
    /// Secret they do not hold is missing, as the controller would find it.
    Complete,
}

/// The templates and Secrets the files hold, by namespace ("" when a document
/// names none).
#[derive(Default)]
struct Given {
    /// The files hold everything: what is not in them is missing.
    complete: bool,
    templates: BTreeMap<(String, String), Template>,
    cluster_templates: BTreeMap<String, Template>,
    secrets: BTreeMap<(String, String), Secret>,
}

impl<'a> Given {
    fn from(values: impl Iterator<Item = &'a Value>) -> Self {
        let mut given = Given::default();
        for value in values {
            let namespace = value["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
            let name = value["metadata"]["name"].as_str().unwrap_or_default().to_string();
            let (group, kind) = (value["apiVersion"].as_str(), value["kind"].as_str());
            match (group, kind) {
                (Some("serin.dev/v1alpha1"), Some("AnalysisTemplate")) => {
                    if let Ok(t) = serde_json::from_value::<AnalysisTemplate>(value.clone()) {
                        let template = Template {
                            args: t.spec.args,
                            metrics: t.spec.metrics,
                        };
                        given.templates.insert((namespace, name), template);
                    }
                }
                (Some("serin.dev/v1alpha1"), Some("ClusterAnalysisTemplate")) => {
                    if let Ok(t) = serde_json::from_value::<ClusterAnalysisTemplate>(value.clone()) {
                        let template = Template {
                            args: t.spec.args,
                            metrics: t.spec.metrics,
                        };
                        given.cluster_templates.insert(name, template);
                    }
                }
                (Some("v1"), Some("Secret")) => {
                    if let Ok(secret) = serde_json::from_value::<Secret>(value.clone()) {
                        given.secrets.insert((namespace, name), secret);
                    }
                }
                _ => {}
            }
        }
        given
    }

    /// What the controller would fetch for `release`, as far as the files hold
    /// it, and what they lack: `(field that uses it, what)`.
    fn inputs(&self, release: &Release) -> (Inputs, Vec<(String, String)>) {
        let mut lacking = Vec::new();
        let namespace = release.metadata.namespace.clone().unwrap_or_default();
        let mut inputs = Inputs::default();
        for reference in check::templates_wanted(release, Which::All) {
            let name = reference.template_name.clone();
            let (found, into) = if reference.cluster_scope {
                (self.cluster_templates.get(&name), &mut inputs.found.cluster_templates)
            } else {
                (
                    self.templates.get(&(namespace.clone(), name.clone())),
                    &mut inputs.found.templates,
                )
            };
            if found.is_none() && !self.complete {
                let kind = if reference.cluster_scope {
                    "ClusterAnalysisTemplate"
                } else {
                    "AnalysisTemplate"
                };
                // Named at its first use.
                let field = check::analyses(release).into_iter().find_map(|(_, origin, spec)| {
                    let at = spec.templates.iter().position(|r| *r == reference)?;
                    Some(format!("{origin}.templates[{at}]"))
                });
                lacking.push((field.unwrap_or_default(), format!("{kind} {name:?}")));
            }
            if found.is_some() || self.complete {
                into.insert(name, found.cloned());
            }
        }
        for (name, key) in check::secrets_wanted(release, &inputs, Which::All) {
            let Some(secret) = self.secrets.get(&(namespace.clone(), name.clone())) else {
                if self.complete {
                    inputs.found.secrets.insert((name, key), None);
                } else if !lacking.iter().any(|(_, what)| *what == format!("Secret {name:?}")) {
                    lacking.push((String::new(), format!("Secret {name:?}")));
                }
                continue;
            };
            let data = secret.data.as_ref().and_then(|d| d.get(&key)).map(|b| b.0.clone());
            // The API server folds stringData into data.
            let text = secret.string_data.as_ref().and_then(|d| d.get(&key)).cloned();
            let value = text.or_else(|| data.and_then(|b| String::from_utf8(b).ok()));
            inputs.found.secrets.insert((name, key), value);
        }
        (inputs, lacking)
    }
}

fn lint_object(document: usize, value: &Value, given: &Given, unchecked: &mut Vec<Problem>) -> Vec<Problem> {
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
        "AnalysisTemplate" => typed::<AnalysisTemplate>(value).map(|t| {
            Typed::Template(Template {
                args: t.spec.args,
                metrics: t.spec.metrics,
            })
        }),
        _ => typed::<ClusterAnalysisTemplate>(value).map(|t| {
            Typed::Template(Template {
                args: t.spec.args,
                metrics: t.spec.metrics,
            })
        }),
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
    let invalid = match typed {
        Typed::Release(release) => {
            let (inputs, lacking) = given.inputs(&release);
            for (field, what) in lacking {
                let why = format!(
                    "{what} is not in the given files, so what depends on it was not checked \
                     (add its manifest with -f, or pass --complete if the files hold everything)"
                );
                unchecked.push(problem(&field, why));
            }
            check::check(&release, &inputs, Which::All).problems
        }
        Typed::Template(template) => check::template(&template),
    };
    problems.extend(invalid.into_iter().map(|i| problem(&i.field, i.message)));
    problems
}

enum Typed {
    Release(Box<Release>),
    Template(Template),
}

/// The object read as its type; Err names the field that does not fit.
fn typed<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        (if path == "." { String::new() } else { path }, e.inner().to_string())
    })
}

#[cfg(test)]
#[path = "lint_tests.rs"]
mod tests;
