//! Dereference, then resolve: the caller fetches the templates and Secrets a
//! strategy's analysis refers to ([`Found`]); [`resolve`] turns the analysis
//! into the metrics to measure, or the first thing wrong with it. Pure, and
//! provider-blind: each metric is rendered and its Secrets read through the
//! [`Provider`](super::Provider) seam.
//!
//! Arg precedence, per template: the built-in args, then the template's
//! defaults, then the Release's args. Only the source that wins is read, so a
//! template's default Secret need not exist when the Release sets the arg.
use std::collections::{BTreeMap, BTreeSet};

use super::provider::{SecretKey, SecretValues, Secrets};
use super::template::{self, Args};
use crate::api::{Arg, Invalid, Metric, RolloutAnalysis, TemplateRef};

/// An AnalysisTemplate's or ClusterAnalysisTemplate's args and metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Template {
    pub args: Vec<Arg>,
    pub metrics: Vec<Metric>,
}

/// What an analysis refers to, as the caller found it. An entry that is absent
/// is unknown (lint has no cluster): resolving skips what depends on it rather
/// than guess. An entry that is present but None was looked for and is not there.
#[derive(Clone, Debug, Default)]
pub struct Found {
    /// AnalysisTemplates of the Release's namespace, by name.
    pub templates: BTreeMap<String, Option<Template>>,
    /// ClusterAnalysisTemplates, by name.
    pub cluster_templates: BTreeMap<String, Option<Template>>,
    /// Keys of Secrets in the Release's namespace, to their values.
    pub secrets: Secrets,
}

impl Found {
    fn template(&self, reference: &TemplateRef) -> Option<&Option<Template>> {
        let found = if reference.cluster_scope {
            &self.cluster_templates
        } else {
            &self.templates
        };
        found.get(&reference.template_name)
    }
}

/// The built-in args (`release.name`, `revision.stable`, ...) by name; None
/// when unknown.
pub type Builtins = BTreeMap<String, Option<String>>;

/// A metric ready to measure: templates rendered, Secrets read.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub metric: Metric,
    /// The values of its provider's Secret keys.
    pub credentials: SecretValues,
    /// Every value read from a Secret: scrubbed from anything shown (a
    /// provider's error may quote the query a secret arg went into).
    pub secrets: Vec<String>,
}

/// Stands in for a value that cannot be known (a Secret lint was not given):
/// a value every renderer accepts anywhere, so only the template is checked.
const UNKNOWN_VALUE: &str = "0";

/// The metrics of one analysis, at `origin` in the Release (e.g.
/// `spec.strategy.canary.steps[2].analysis`, which every field in an Err starts
/// with), rendered with its args; or its first problem.
pub fn resolve(
    origin: &str,
    analysis: &RolloutAnalysis,
    found: &Found,
    builtins: &Builtins,
) -> Result<Vec<Rendered>, Invalid> {
    let (sources, complete) = sources(origin, analysis, found)?;
    let mut rendered: Vec<Rendered> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for source in &sources {
        let values = values(origin, analysis, source, found, builtins)?;
        for (field, metric) in &source.metrics {
            if seen.contains(&metric.name.as_str()) {
                let mut message = format!("metric {:?} is defined twice", metric.name);
                if !source.label.is_empty() {
                    message.push_str(&format!(" (again in {})", source.label));
                }
                return Err(Invalid::new(field.clone(), message));
            }
            seen.push(&metric.name);
            rendered.push(ready(source, field, metric, &values, found)?);
        }
    }
    if complete && rendered.is_empty() {
        return Err(Invalid::new(origin, "has no metrics"));
    }
    Ok(rendered)
}

/// The Secret keys [`resolve`] reads for `analysis`, given the templates in
/// `found`: those its args come from, and those its providers declare.
pub fn secrets_wanted(analysis: &RolloutAnalysis, found: &Found) -> BTreeSet<SecretKey> {
    let templates: Vec<&Template> = analysis
        .templates
        .iter()
        .filter_map(|r| found.template(r).and_then(Option::as_ref))
        .collect();
    let args = analysis.args.iter().chain(templates.iter().flat_map(|t| &t.args));
    let mut wanted: BTreeSet<SecretKey> = args
        .filter_map(|a| a.value_from.as_ref())
        .map(|from| (from.secret_key_ref.name.clone(), from.secret_key_ref.key.clone()))
        .collect();
    let metrics = analysis.metrics.iter().chain(templates.iter().flat_map(|t| &t.metrics));
    for provider in metrics.filter_map(|m| super::provider(&m.provider)) {
        wanted.extend(provider.secret_keys());
    }
    wanted
}

/// The checks of a template on its own (lint, for a template no Release in the
/// files uses): each metric rendered with the template's default values, and
/// every other arg (built-in, from a Secret, or left to the Release) unknown.
pub fn check_template(template: &Template) -> Vec<Invalid> {
    let mut problems = Vec::new();
    let mut args = Args::new();
    let mut hidden = BTreeSet::new();
    for arg in &template.args {
        args.insert(
            arg.name.clone(),
            arg.value.clone().unwrap_or_else(|| UNKNOWN_VALUE.into()),
        );
        if arg.value_from.is_some() {
            hidden.insert(arg.name.clone());
        }
    }
    for (index, metric) in template.metrics.iter().enumerate() {
        let mut args = args.clone();
        // An arg the template does not declare may come from the Release: unknown here.
        let mut result = render(metric, &args, &hidden);
        while let Err(name) = result.as_ref().map_err(|e| template::unknown_arg(e)) {
            match name {
                Some(name) if !args.contains_key(name) => {
                    args.insert(name.to_string(), UNKNOWN_VALUE.into());
                    result = render(metric, &args, &hidden);
                }
                _ => break,
            }
        }
        if let Err(error) = result {
            let error = unprefixed(&error, &metric.name);
            let set_by = template::faulty_arg(error)
                .and_then(|name| template.args.iter().position(|a| a.name == name && a.value.is_some()));
            let field = match set_by {
                Some(at) => format!("spec.args[{at}]"),
                None => format!("spec.metrics[{index}]"),
            };
            problems.push(Invalid::new(field, format!("metric {:?}: {error}", metric.name)));
        }
    }
    problems
}

/// Where a group of metrics comes from.
struct Source<'a> {
    /// `AnalysisTemplate "errors"`, or empty for the analysis's inline metrics.
    label: String,
    /// The field that brought them in.
    field: String,
    template_args: &'a [Arg],
    /// Each metric, with its field.
    metrics: Vec<(String, &'a Metric)>,
}

/// The templates, then the inline metrics, of `analysis`; and whether every
/// template is known (when one is not, "has no metrics" cannot be told).
fn sources<'a>(
    origin: &str,
    analysis: &'a RolloutAnalysis,
    found: &'a Found,
) -> Result<(Vec<Source<'a>>, bool), Invalid> {
    let mut sources = Vec::new();
    let mut complete = true;
    for (index, reference) in analysis.templates.iter().enumerate() {
        let kind = if reference.cluster_scope {
            "ClusterAnalysisTemplate"
        } else {
            "AnalysisTemplate"
        };
        let name = &reference.template_name;
        let field = format!("{origin}.templates[{index}]");
        match found.template(reference) {
            Some(Some(template)) => sources.push(Source {
                label: format!("{kind} {name:?}"),
                field: field.clone(),
                template_args: &template.args,
                metrics: template.metrics.iter().map(|m| (field.clone(), m)).collect(),
            }),
            Some(None) => {
                return Err(Invalid::new(
                    format!("{field}.templateName"),
                    format!("{kind} {name:?} not found"),
                ));
            }
            None => complete = false,
        }
    }
    if !analysis.metrics.is_empty() {
        sources.push(Source {
            label: String::new(),
            field: format!("{origin}.metrics"),
            template_args: &[],
            metrics: analysis
                .metrics
                .iter()
                .enumerate()
                .map(|(index, m)| (format!("{origin}.metrics[{index}]"), m))
                .collect(),
        });
    }
    Ok((sources, complete))
}

/// An arg's value, and where it was set.
struct ArgValue {
    /// None when unknown (a Secret lint was not given).
    value: Option<String>,
    /// Read from a Secret: never shown.
    secret: bool,
    /// The field that set it, for messages; None for a built-in arg.
    field: Option<String>,
}

/// The args of one source's metrics, by name.
struct Values {
    args: BTreeMap<String, ArgValue>,
    /// The values read from Secrets.
    secrets: Vec<String>,
}

impl Values {
    fn args(&self) -> Args {
        self.args
            .iter()
            .map(|(name, v)| (name.clone(), v.value.clone().unwrap_or_else(|| UNKNOWN_VALUE.into())))
            .collect()
    }

    fn hidden(&self) -> BTreeSet<String> {
        self.args
            .iter()
            .filter(|(_, v)| v.secret)
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// The args `source`'s metrics see: built-ins, then the template's defaults,
/// then the Release's; Err for a Secret without the key, or a template arg
/// nothing sets.
fn values(
    origin: &str,
    analysis: &RolloutAnalysis,
    source: &Source<'_>,
    found: &Found,
    builtins: &Builtins,
) -> Result<Values, Invalid> {
    let mut values: BTreeMap<String, ArgValue> = builtins
        .iter()
        .map(|(name, value)| {
            let value = ArgValue {
                value: value.clone(),
                secret: false,
                field: None,
            };
            (name.clone(), value)
        })
        .collect();
    let mut winners: BTreeMap<&str, (&Arg, String)> = BTreeMap::new();
    for arg in source.template_args {
        winners.insert(&arg.name, (arg, source.field.clone()));
    }
    // An arg with neither value nor valueFrom sets nothing.
    for arg in analysis
        .args
        .iter()
        .filter(|a| a.value.is_some() || a.value_from.is_some())
    {
        winners.insert(&arg.name, (arg, format!("{origin}.args")));
    }
    let mut secrets = Vec::new();
    for (arg, field) in winners.into_values() {
        let value = match (&arg.value, &arg.value_from) {
            (Some(value), _) => Some(value.clone()),
            (None, Some(from)) => {
                let key = &from.secret_key_ref;
                match found.secrets.get(&(key.name.clone(), key.key.clone())) {
                    Some(Some(value)) => {
                        secrets.push(value.clone());
                        Some(value.clone())
                    }
                    Some(None) => {
                        return Err(Invalid::new(
                            field,
                            format!("arg {:?}: Secret {:?} has no key {:?}", arg.name, key.name, key.key),
                        ));
                    }
                    None => None,
                }
            }
            // No value here: the Release must supply one.
            (None, None) => continue,
        };
        let secret = arg.value_from.is_some();
        let field = Some(field);
        values.insert(arg.name.clone(), ArgValue { value, secret, field });
    }
    for arg in source.template_args {
        if !values.contains_key(&arg.name) {
            return Err(Invalid::new(
                format!("{origin}.args"),
                format!("arg {:?} of {} has no value; set it here", arg.name, source.label),
            ));
        }
    }
    Ok(Values { args: values, secrets })
}

/// One metric rendered, with its provider's Secrets read.
fn ready(
    source: &Source<'_>,
    field: &str,
    metric: &Metric,
    values: &Values,
    found: &Found,
) -> Result<Rendered, Invalid> {
    let label = if source.label.is_empty() {
        format!("metric {:?}", metric.name)
    } else {
        format!("{} metric {:?}", source.label, metric.name)
    };
    let metric = render(metric, &values.args(), &values.hidden()).map_err(|error| {
        let error = unprefixed(&error, &metric.name);
        // A value at fault points at the field that set it.
        let set_by = template::faulty_arg(error).and_then(|name| values.args.get(name)?.field.clone());
        Invalid::new(set_by.unwrap_or_else(|| field.to_string()), format!("{label}: {error}"))
    })?;
    let keys = match super::provider(&metric.provider) {
        Some(provider) => {
            provider
                .check_secrets(&found.secrets)
                .map_err(|error| Invalid::new(field, format!("{label}: {error}")))?;
            provider.secret_keys()
        }
        None => Vec::new(),
    };
    let credentials = SecretValues::of(&keys, &found.secrets);
    let mut secrets: Vec<String> = keys
        .iter()
        .filter_map(|k| found.secrets.get(k).cloned().flatten())
        .collect();
    secrets.extend(values.secrets.iter().cloned());
    Ok(Rendered {
        metric,
        credentials,
        secrets,
    })
}

/// `error` without the `metric "NAME": ` that some checks start with, for a
/// message that names the metric itself.
fn unprefixed<'e>(error: &'e str, metric: &str) -> &'e str {
    error.strip_prefix(&format!("metric {metric:?}: ")).unwrap_or(error)
}

/// Checks a metric and renders its provider with `args`.
fn render(metric: &Metric, args: &Args, hidden: &BTreeSet<String>) -> Result<Metric, String> {
    super::check_metric(metric)?;
    let mut metric = metric.clone();
    if let Some(provider) = super::provider(&metric.provider) {
        metric.provider = provider.render(args, hidden)?;
    }
    Ok(metric)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const CANARY_STEP: &str = "spec.strategy.canary.steps[2].analysis";
    const PRE_PROMOTION: &str = "spec.strategy.blueGreen.prePromotionAnalysis";
    const ROLLING: &str = "spec.strategy.rolling.analysis";

    fn prometheus(query: &str) -> Value {
        json!({ "prometheus": { "address": "http://p", "query": query } })
    }

    fn metric(name: &str, provider: Value) -> Value {
        json!({ "name": name, "provider": provider })
    }

    fn template(args: Value, metrics: Value) -> Option<Template> {
        Some(Template {
            args: serde_json::from_value(args).unwrap(),
            metrics: serde_json::from_value(metrics).unwrap(),
        })
    }

    /// `spec.strategy.*.analysis` refers to templates "t" and "u" (in that order),
    /// with `args`.
    fn two_templates(args: Value) -> Value {
        json!({ "templates": [{ "templateName": "t" }, { "templateName": "u" }], "args": args })
    }

    fn one_template(args: Value) -> Value {
        json!({ "templates": [{ "templateName": "t" }], "args": args })
    }

    enum Want {
        /// The rendered providers, and the secret values to scrub.
        Rendered(Vec<Value>, Vec<&'static str>),
        /// The field and message of the problem.
        Invalid(String, &'static str),
    }

    struct Case {
        name: &'static str,
        origin: &'static str,
        analysis: Value,
        templates: Vec<(&'static str, Option<Template>)>,
        cluster_templates: Vec<(&'static str, Option<Template>)>,
        /// (Secret, key, value); None: looked for and not there.
        secrets: Vec<(&'static str, &'static str, Option<&'static str>)>,
        want: Want,
    }

    impl Default for Case {
        fn default() -> Self {
            Case {
                name: "",
                origin: ROLLING,
                analysis: json!({}),
                templates: Vec::new(),
                cluster_templates: Vec::new(),
                secrets: Vec::new(),
                want: Want::Rendered(Vec::new(), Vec::new()),
            }
        }
    }

    fn invalid(origin: &str, field: &str, message: &'static str) -> Want {
        Want::Invalid(format!("{origin}{field}"), message)
    }

    #[test]
    fn resolve_table() {
        let window = || {
            template(
                json!([{ "name": "window", "value": "5m" }]),
                json!([metric("m", prometheus("rate(x[{{args.window}}])"))]),
            )
        };
        let needs_job = || {
            template(
                json!([{ "name": "job" }]),
                json!([metric("m", prometheus("up{job=\"{{args.job}}\"}"))]),
            )
        };
        let tenant_header = |name: &str| {
            metric(
                name,
                json!({ "web": { "url": "http://w", "headers": [{ "name": "X-Tenant", "value": "{{args.tenant}}" }] } }),
            )
        };
        let cases = vec![
            Case {
                name: "the Release's arg wins over the template's default",
                analysis: one_template(json!([{ "name": "window", "value": "1m" }])),
                templates: vec![("t", window())],
                want: Want::Rendered(vec![prometheus("rate(x[1m])")], vec![]),
                ..Case::default()
            },
            Case {
                name: "an arg of the Release without a value leaves the default",
                analysis: one_template(json!([{ "name": "window" }])),
                templates: vec![("t", window())],
                want: Want::Rendered(vec![prometheus("rate(x[5m])")], vec![]),
                ..Case::default()
            },
            Case {
                name: "only the winning source is read: a default from a missing Secret does not matter",
                analysis: one_template(json!([{ "name": "job", "value": "web" }])),
                templates: vec![(
                    "t",
                    template(
                        json!([{ "name": "job", "valueFrom": { "secretKeyRef": { "name": "gone", "key": "k" } } }]),
                        json!([metric("m", prometheus("up{job=\"{{args.job}}\"}"))]),
                    ),
                )],
                secrets: vec![("gone", "k", None)],
                want: Want::Rendered(vec![prometheus("up{job=\"web\"}")], vec![]),
                ..Case::default()
            },
            Case {
                name: "a template arg nothing sets, in a canary step",
                origin: CANARY_STEP,
                analysis: one_template(json!([])),
                templates: vec![("t", needs_job())],
                want: invalid(
                    CANARY_STEP,
                    ".args",
                    "arg \"job\" of AnalysisTemplate \"t\" has no value; set it here",
                ),
                ..Case::default()
            },
            Case {
                name: "a template arg nothing sets, before a blue-green promotion",
                origin: PRE_PROMOTION,
                analysis: json!({ "templates": [{ "templateName": "t", "clusterScope": true }] }),
                cluster_templates: vec![("t", needs_job())],
                want: invalid(
                    PRE_PROMOTION,
                    ".args",
                    "arg \"job\" of ClusterAnalysisTemplate \"t\" has no value; set it here",
                ),
                ..Case::default()
            },
            Case {
                name: "a metric in two templates",
                origin: CANARY_STEP,
                analysis: two_templates(json!([])),
                templates: vec![("t", window()), ("u", window())],
                want: invalid(
                    CANARY_STEP,
                    ".templates[1]",
                    "metric \"m\" is defined twice (again in AnalysisTemplate \"u\")",
                ),
                ..Case::default()
            },
            Case {
                name: "an inline metric twice",
                origin: PRE_PROMOTION,
                analysis: json!({ "metrics": [metric("m", prometheus("up")), metric("m", prometheus("up"))] }),
                want: invalid(PRE_PROMOTION, ".metrics[1]", "metric \"m\" is defined twice"),
                ..Case::default()
            },
            Case {
                name: "an arg's Secret without the key",
                origin: CANARY_STEP,
                analysis: json!({
                    "metrics": [metric("m", prometheus("up"))],
                    "args": [{ "name": "token", "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } }]
                }),
                secrets: vec![("s", "k", None)],
                want: invalid(CANARY_STEP, ".args", "arg \"token\": Secret \"s\" has no key \"k\""),
                ..Case::default()
            },
            Case {
                name: "a bearer token's Secret without the key",
                analysis: json!({ "metrics": [metric("m", json!({ "prometheus": { "address": "http://p", "query": "up",
                    "authentication": { "bearerToken": { "name": "s", "key": "t" } } } }))] }),
                secrets: vec![("s", "t", None)],
                want: invalid(ROLLING, ".metrics[0]", "metric \"m\": Secret \"s\" has no key \"t\""),
                ..Case::default()
            },
            Case {
                name: "a basic auth Secret without a password",
                origin: PRE_PROMOTION,
                analysis: one_template(json!([])),
                templates: vec![(
                    "t",
                    template(
                        json!([]),
                        json!([metric(
                            "m",
                            json!({ "prometheus": {
                    "address": "http://p", "query": "up", "authentication": { "basicAuthSecret": "b" } } })
                        )]),
                    ),
                )],
                secrets: vec![("b", "username", Some("admin")), ("b", "password", None)],
                want: invalid(
                    PRE_PROMOTION,
                    ".templates[0]",
                    "AnalysisTemplate \"t\" metric \"m\": Secret \"b\" needs keys \"username\" and \"password\"",
                ),
                ..Case::default()
            },
            Case {
                name: "a template that is not there",
                origin: CANARY_STEP,
                analysis: two_templates(json!([])),
                templates: vec![("t", window()), ("u", None)],
                want: invalid(
                    CANARY_STEP,
                    ".templates[1].templateName",
                    "AnalysisTemplate \"u\" not found",
                ),
                ..Case::default()
            },
            Case {
                name: "a cluster template that is not there",
                analysis: json!({ "templates": [{ "templateName": "c", "clusterScope": true }] }),
                cluster_templates: vec![("c", None)],
                want: invalid(
                    ROLLING,
                    ".templates[0].templateName",
                    "ClusterAnalysisTemplate \"c\" not found",
                ),
                ..Case::default()
            },
            Case {
                name: "a template that is unknown (lint without it) is skipped, not missing",
                analysis: one_template(json!([])),
                want: Want::Rendered(vec![], vec![]),
                ..Case::default()
            },
            Case {
                name: "an analysis without metrics",
                origin: PRE_PROMOTION,
                analysis: json!({ "args": [{ "name": "x", "value": "1" }] }),
                want: invalid(PRE_PROMOTION, "", "has no metrics"),
                ..Case::default()
            },
            Case {
                name: "built-in args, an unknown one standing in as 0",
                analysis: json!({ "metrics": [metric("m", json!({ "web": {
                    "url": "http://svc/{{args.release.name}}/{{args.revision.stable}}" } }))] }),
                want: Want::Rendered(vec![json!({ "web": { "url": "http://svc/web/0" } })], vec![]),
                ..Case::default()
            },
            Case {
                name: "secret values are collected for scrubbing: the provider's, then the args'",
                analysis: json!({
                    "metrics": [metric("m", json!({ "prometheus": { "address": "http://p", "query": "up > {{args.threshold}}",
                        "authentication": { "bearerToken": { "name": "s", "key": "t" } } } }))],
                    "args": [{ "name": "threshold", "valueFrom": { "secretKeyRef": { "name": "th", "key": "v" } } }]
                }),
                secrets: vec![("s", "t", Some("t0ken")), ("th", "v", Some("0.5"))],
                want: Want::Rendered(
                    vec![json!({ "prometheus": { "address": "http://p", "query": "up > 0.5",
                        "authentication": { "bearerToken": { "name": "s", "key": "t" } } } })],
                    vec!["t0ken", "0.5"],
                ),
                ..Case::default()
            },
            Case {
                name: "a value at fault points at the Release's args that set it",
                origin: CANARY_STEP,
                analysis: json!({ "metrics": [tenant_header("m")], "args": [{ "name": "tenant", "value": "a\nb" }] }),
                want: invalid(
                    CANARY_STEP,
                    ".args",
                    "metric \"m\": arg \"tenant\" contains CR, LF or NUL, which cannot go into a header value ({{args.tenant}})",
                ),
                ..Case::default()
            },
            Case {
                name: "a default at fault points at the template",
                origin: CANARY_STEP,
                analysis: one_template(json!([])),
                templates: vec![(
                    "t",
                    template(
                        json!([{ "name": "tenant", "value": "a\rb" }]),
                        json!([tenant_header("m")]),
                    ),
                )],
                want: invalid(
                    CANARY_STEP,
                    ".templates[0]",
                    "AnalysisTemplate \"t\" metric \"m\": arg \"tenant\" contains CR, LF or NUL, which cannot go into a header value ({{args.tenant}})",
                ),
                ..Case::default()
            },
            Case {
                name: "an arg nobody declares",
                origin: PRE_PROMOTION,
                analysis: json!({ "metrics": [metric("m", prometheus("up{a=\"{{args.nope}}\"}"))] }),
                want: invalid(PRE_PROMOTION, ".metrics[0]", "metric \"m\": unknown arg {{args.nope}}"),
                ..Case::default()
            },
        ];

        let builtins = Builtins::from([
            ("release.name".to_string(), Some("web".to_string())),
            ("revision.stable".to_string(), None),
        ]);
        for case in cases {
            let analysis: RolloutAnalysis = serde_json::from_value(case.analysis).unwrap();
            let named =
                |list: Vec<(&str, Option<Template>)>| list.into_iter().map(|(n, t)| (n.to_string(), t)).collect();
            let found = Found {
                templates: named(case.templates),
                cluster_templates: named(case.cluster_templates),
                secrets: case
                    .secrets
                    .iter()
                    .map(|(s, k, v)| ((s.to_string(), k.to_string()), v.map(str::to_string)))
                    .collect(),
            };
            let got = resolve(case.origin, &analysis, &found, &builtins);
            match (case.want, got) {
                (Want::Rendered(providers, secrets), Ok(rendered)) => {
                    let got: Vec<Value> = rendered
                        .iter()
                        .map(|r| serde_json::to_value(&r.metric.provider).unwrap())
                        .collect();
                    assert_eq!(got, providers, "{}", case.name);
                    let scrubbed: Vec<&str> = rendered.iter().flat_map(|r| &r.secrets).map(String::as_str).collect();
                    assert_eq!(scrubbed, secrets, "{}", case.name);
                }
                (Want::Invalid(field, message), Err(invalid)) => {
                    assert_eq!(invalid, Invalid::new(field, message), "{}", case.name);
                }
                (_, got) => panic!("{}: got {got:?}", case.name),
            }
        }
    }

    /// The controller fetches what `resolve` reads: the Secrets of the args
    /// and of the providers, for templates it has found.
    #[test]
    fn secrets_wanted_are_the_args_and_the_providers() {
        let analysis: RolloutAnalysis = serde_json::from_value(json!({
            "templates": [{ "templateName": "t" }, { "templateName": "unknown" }],
            "args": [{ "name": "a", "valueFrom": { "secretKeyRef": { "name": "s", "key": "a" } } }],
            "metrics": [metric("m", json!({ "prometheus": { "address": "http://p", "query": "up",
                "authentication": { "basicAuthSecret": "b" } } }))]
        }))
        .unwrap();
        let mut found = Found::default();
        found.templates.insert(
            "t".into(),
            template(
                json!([{ "name": "d", "valueFrom": { "secretKeyRef": { "name": "s", "key": "d" } } }]),
                json!([metric(
                    "n",
                    json!({ "prometheus": { "address": "http://p", "query": "up",
                    "authentication": { "bearerToken": { "name": "tok", "key": "t" } } } })
                )]),
            ),
        );
        let wanted = secrets_wanted(&analysis, &found);
        let keys = |pairs: &[(&str, &str)]| -> BTreeSet<SecretKey> {
            pairs.iter().map(|(s, k)| (s.to_string(), k.to_string())).collect()
        };
        assert_eq!(
            wanted,
            keys(&[
                ("b", "password"),
                ("b", "username"),
                ("s", "a"),
                ("s", "d"),
                ("tok", "t")
            ])
        );
    }
}
