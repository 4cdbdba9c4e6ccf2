//! The InvalidSpec check: one function, [`check`], for everything serin refuses
//! a Release for that its spec, its templates, its args and its Secrets decide.
//! The controller calls it with what it fetched from the cluster; `kubectl serin
//! lint` calls it with what it read from files. Pure: fetching is the caller's,
//! so both run the same code on the same kind of input.
//!
//! Not here, because only the live cluster can say: a Service or route that is
//! missing or misconfigured, and a pod template the API server refuses for a
//! ReplicaSet. Those are InvalidSpec too, from `plan` with what the controller
//! observed.
use std::collections::{BTreeMap, BTreeSet};

use crate::analysis::prometheus::Credentials;
use crate::analysis::template::{self, Args};
use crate::api::{Arg, Metric, Release, RolloutAnalysis, TemplateRef};
use crate::plan::{self, AnalysisSlot, Invalid};

/// An AnalysisTemplate's or ClusterAnalysisTemplate's args and metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Template {
    pub args: Vec<Arg>,
    pub metrics: Vec<Metric>,
}

/// What the check reads besides the Release. An entry that is absent is
/// unknown (lint has no cluster): the check skips what depends on it rather
/// than guess. An entry that is present but None was looked for and is not there.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// AnalysisTemplates of the Release's namespace, by name.
    pub templates: BTreeMap<String, Option<Template>>,
    /// ClusterAnalysisTemplates, by name.
    pub cluster_templates: BTreeMap<String, Option<Template>>,
    /// Keys of Secrets in the Release's namespace: (Secret, key) to value. None
    /// when the Secret or the key is absent, or the value is not UTF-8.
    pub secrets: BTreeMap<(String, String), Option<String>>,
    /// `{{args.revision.stable}}`: the stable revision from status ("" for none).
    /// None when unknown.
    pub stable_revision: Option<String>,
}

impl Inputs {
    fn template(&self, reference: &TemplateRef) -> Option<&Option<Template>> {
        let found = if reference.cluster_scope {
            &self.cluster_templates
        } else {
            &self.templates
        };
        found.get(&reference.template_name)
    }
}

/// Which of a Release's analyses to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// Every one (lint).
    All,
    /// The one that is due (the controller, which fetches its templates and
    /// Secrets when it falls due).
    Slot(AnalysisSlot),
}

/// A metric ready to measure: templates rendered, credentials read.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub metric: Metric,
    pub credentials: Credentials,
    /// Values read from Secrets: scrubbed from anything shown (a provider's
    /// error may quote the query a secret arg went into).
    pub secrets: Vec<String>,
}

/// What [`check`] found.
#[derive(Debug, Default)]
pub struct Checked {
    /// Every problem: the spec's own first, then the first of each analysis.
    /// The controller shows the first as InvalidSpec.
    pub problems: Vec<Invalid>,
    /// The rendered metrics of the checked analyses that passed, in spec order.
    pub rendered: Vec<Rendered>,
}

/// The one InvalidSpec check of a Release: `plan`'s validation of the spec,
/// then its analyses (templates, args, Secrets, and each metric rendered for its
/// provider).
pub fn check(release: &Release, inputs: &Inputs, which: Which) -> Checked {
    let mut checked = Checked::default();
    if let Err(invalid) = plan::validate(&release.spec) {
        checked.problems.push(invalid);
    }
    for (slot, origin, spec) in analyses(release) {
        if which != Which::All && which != Which::Slot(slot) {
            continue;
        }
        match analysis(release, &origin, &spec, inputs) {
            Ok(rendered) => checked.rendered.extend(rendered),
            Err(invalid) => checked.problems.push(invalid),
        }
    }
    checked
}

/// Every analysis of a Release: its slot, its field path, and what it asks for.
pub fn analyses(release: &Release) -> Vec<(AnalysisSlot, String, RolloutAnalysis)> {
    let strategy = &release.spec.strategy;
    let mut found = Vec::new();
    if let Some(spec) = strategy.rolling.as_ref().and_then(|r| r.analysis.as_ref()) {
        let origin = "spec.strategy.rolling.analysis".to_string();
        found.push((AnalysisSlot::Background, origin, spec.clone()));
    }
    if let Some(canary) = &strategy.canary {
        if let Some(background) = &canary.analysis {
            let origin = "spec.strategy.canary.analysis".to_string();
            found.push((
                AnalysisSlot::Background,
                origin,
                background.analysis.to_rollout_analysis(),
            ));
        }
        for (index, step) in canary.steps.iter().enumerate() {
            if let (Some(spec), Ok(slot)) = (&step.analysis, i32::try_from(index)) {
                let origin = format!("spec.strategy.canary.steps[{index}].analysis");
                found.push((AnalysisSlot::Step(slot), origin, spec.to_rollout_analysis()));
            }
        }
    }
    if let Some(blue_green) = &strategy.blue_green {
        if let Some(spec) = &blue_green.pre_promotion_analysis {
            let origin = "spec.strategy.blueGreen.prePromotionAnalysis".to_string();
            found.push((AnalysisSlot::PrePromotion, origin, spec.to_rollout_analysis()));
        }
        if let Some(spec) = &blue_green.post_promotion_analysis {
            let origin = "spec.strategy.blueGreen.postPromotionAnalysis".to_string();
            found.push((AnalysisSlot::PostPromotion, origin, spec.to_rollout_analysis()));
        }
    }
    found
}

/// The templates [`check`] reads for `which`.
pub fn templates_wanted(release: &Release, which: Which) -> Vec<TemplateRef> {
    let mut wanted: Vec<TemplateRef> = Vec::new();
    for (slot, _, spec) in analyses(release) {
        if which == Which::All || which == Which::Slot(slot) {
            for reference in spec.templates {
                if !wanted.contains(&reference) {
                    wanted.push(reference);
                }
            }
        }
    }
    wanted
}

/// The Secret keys [`check`] reads for `which`, given the templates in `inputs`.
pub fn secrets_wanted(release: &Release, inputs: &Inputs, which: Which) -> BTreeSet<(String, String)> {
    let mut wanted = BTreeSet::new();
    for (slot, _, spec) in analyses(release) {
        if which != Which::All && which != Which::Slot(slot) {
            continue;
        }
        let templates: Vec<&Template> = spec
            .templates
            .iter()
            .filter_map(|r| inputs.template(r).and_then(Option::as_ref))
            .collect();
        let args = spec.args.iter().chain(templates.iter().flat_map(|t| &t.args));
        for from in args.filter_map(|a| a.value_from.as_ref()) {
            let key = &from.secret_key_ref;
            wanted.insert((key.name.clone(), key.key.clone()));
        }
        let metrics = spec.metrics.iter().chain(templates.iter().flat_map(|t| &t.metrics));
        for auth in metrics.filter_map(|m| m.provider.prometheus.as_ref()?.authentication.as_ref()) {
            if let Some(token) = &auth.bearer_token {
                wanted.insert((token.name.clone(), token.key.clone()));
            }
            if let Some(name) = &auth.basic_auth_secret {
                wanted.insert((name.clone(), "username".into()));
                wanted.insert((name.clone(), "password".into()));
            }
        }
    }
    wanted
}

/// The checks of a template on its own (lint, for a template no Release in the
/// files uses): each metric rendered with the template's default values, and
/// every other arg (built-in, from a Secret, or left to the Release) unknown.
pub fn template(template: &Template) -> Vec<Invalid> {
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

/// Stands in for a value the check cannot know (a Secret lint was not given):
/// a value every renderer accepts anywhere, so only the template is checked.
const UNKNOWN_VALUE: &str = "0";

/// An arg's value, and where it was set.
struct ArgValue {
    /// None when unknown (a Secret lint was not given).
    value: Option<String>,
    /// Read from a Secret: never shown.
    secret: bool,
    /// The field that set it, for messages; None for a built-in arg.
    field: Option<String>,
}

/// Where a group of metrics comes from.
struct Source<'a> {
    /// `AnalysisTemplate "errors"`, or the analysis's own field for inline metrics.
    label: String,
    /// The field that brought them in.
    field: String,
    template_args: &'a [Arg],
    metrics: Vec<(String, &'a Metric)>,
}

/// Checks one analysis and renders its metrics.
fn analysis(
    release: &Release,
    origin: &str,
    spec: &RolloutAnalysis,
    inputs: &Inputs,
) -> Result<Vec<Rendered>, Invalid> {
    let mut sources = Vec::new();
    let mut complete = true;
    for (index, reference) in spec.templates.iter().enumerate() {
        let kind = if reference.cluster_scope {
            "ClusterAnalysisTemplate"
        } else {
            "AnalysisTemplate"
        };
        let name = &reference.template_name;
        let field = format!("{origin}.templates[{index}]");
        match inputs.template(reference) {
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
    if !spec.metrics.is_empty() {
        sources.push(Source {
            label: String::new(),
            field: format!("{origin}.metrics"),
            template_args: &[],
            metrics: spec
                .metrics
                .iter()
                .enumerate()
                .map(|(index, m)| (format!("{origin}.metrics[{index}]"), m))
                .collect(),
        });
    }

    let mut builtins: BTreeMap<String, Option<String>> = BTreeMap::new();
    builtins.insert("release.name".into(), release.metadata.name.clone());
    builtins.insert("release.namespace".into(), release.metadata.namespace.clone());
    builtins.insert(
        "revision.canary".into(),
        Some(plan::revision::revision_of(&release.spec.template)),
    );
    builtins.insert("revision.stable".into(), inputs.stable_revision.clone());

    let mut rendered: Vec<Rendered> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for source in &sources {
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
        // Template defaults first; the Release's args override them. Only the
        // source that wins is read: a template's default Secret need not exist
        // when the Release sets the arg.
        let mut winners: BTreeMap<&str, (&Arg, String)> = BTreeMap::new();
        for arg in source.template_args {
            winners.insert(&arg.name, (arg, source.field.clone()));
        }
        // An arg with neither value nor valueFrom sets nothing.
        for arg in spec.args.iter().filter(|a| a.value.is_some() || a.value_from.is_some()) {
            winners.insert(&arg.name, (arg, format!("{origin}.args")));
        }
        let mut secrets = Vec::new();
        for (arg, field) in winners.into_values() {
            let value = match (&arg.value, &arg.value_from) {
                (Some(value), _) => Some(value.clone()),
                (None, Some(from)) => {
                    let key = &from.secret_key_ref;
                    match inputs.secrets.get(&(key.name.clone(), key.key.clone())) {
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
        let args: Args = values
            .iter()
            .map(|(name, v)| (name.clone(), v.value.clone().unwrap_or_else(|| UNKNOWN_VALUE.into())))
            .collect();
        let hidden: BTreeSet<String> = values
            .iter()
            .filter(|(_, v)| v.secret)
            .map(|(name, _)| name.clone())
            .collect();
        for (field, metric) in &source.metrics {
            let label = if source.label.is_empty() {
                format!("metric {:?}", metric.name)
            } else {
                format!("{} metric {:?}", source.label, metric.name)
            };
            if seen.contains(&metric.name.as_str()) {
                let mut message = format!("metric {:?} is defined twice", metric.name);
                if !source.label.is_empty() {
                    message.push_str(&format!(" (again in {})", source.label));
                }
                return Err(Invalid::new(field.clone(), message));
            }
            seen.push(&metric.name);
            let metric = render(metric, &args, &hidden).map_err(|error| {
                let error = unprefixed(&error, &metric.name);
                // A value at fault points at the field that set it.
                let set_by = template::faulty_arg(error).and_then(|name| values.get(name)?.field.clone());
                Invalid::new(set_by.unwrap_or_else(|| field.clone()), format!("{label}: {error}"))
            })?;
            let (credentials, mut read) = match credentials(&metric, inputs) {
                Ok(found) => found,
                Err(error) => return Err(Invalid::new(field.clone(), format!("{label}: {error}"))),
            };
            read.extend(secrets.iter().cloned());
            rendered.push(Rendered {
                metric,
                credentials,
                secrets: read,
            });
        }
    }
    if complete && rendered.is_empty() {
        return Err(Invalid::new(origin, "has no metrics"));
    }
    Ok(rendered)
}

/// `error` without the `metric "NAME": ` that some checks start with, for a
/// message that names the metric itself.
fn unprefixed<'e>(error: &'e str, metric: &str) -> &'e str {
    error.strip_prefix(&format!("metric {metric:?}: ")).unwrap_or(error)
}

/// Checks a metric and renders its provider with `args`.
fn render(metric: &Metric, args: &Args, hidden: &BTreeSet<String>) -> Result<Metric, String> {
    crate::analysis::check_metric(metric)?;
    let mut metric = metric.clone();
    let provider = &mut metric.provider;
    if let Some(p) = &mut provider.prometheus {
        p.address = template::url(&p.address, args)?;
        p.query = template::promql(&p.query, args, hidden)?;
        for h in &mut p.headers {
            h.value = template::header_value(&h.value, args)?;
        }
    }
    if let Some(w) = &mut provider.web {
        w.url = template::url(&w.url, args)?;
        for h in &mut w.headers {
            h.value = template::header_value(&h.value, args)?;
        }
        if let Some(body) = &w.body {
            w.body = Some(match serde_json::from_str::<serde_json::Value>(body) {
                Ok(json) => template::json_tree(&json, args)?.to_string(),
                Err(_) => template::text(body, args)?,
            });
        }
    }
    if let Some(j) = &mut provider.job {
        let spec = serde_json::to_value(&j.spec).map_err(|e| e.to_string())?;
        j.spec = serde_json::from_value(template::json_tree(&spec, args)?).map_err(|e| e.to_string())?;
    }
    Ok(metric)
}

/// A Prometheus metric's credentials, and the secret values among them.
/// Credentials whose Secret is unknown are left out.
fn credentials(metric: &Metric, inputs: &Inputs) -> Result<(Credentials, Vec<String>), String> {
    let mut credentials = Credentials::default();
    let Some(auth) = metric
        .provider
        .prometheus
        .as_ref()
        .and_then(|p| p.authentication.as_ref())
    else {
        return Ok((credentials, Vec::new()));
    };
    let lookup = |name: &str, key: &str| inputs.secrets.get(&(name.to_string(), key.to_string())).cloned();
    if let Some(r) = &auth.bearer_token {
        match lookup(&r.name, &r.key) {
            Some(Some(token)) => credentials.bearer_token = Some(token),
            Some(None) => return Err(format!("Secret {:?} has no key {:?}", r.name, r.key)),
            None => {}
        }
    }
    if let Some(name) = &auth.basic_auth_secret {
        match (lookup(name, "username"), lookup(name, "password")) {
            (Some(Some(u)), Some(Some(p))) => credentials.basic = Some((u, p)),
            (None, _) | (_, None) => {}
            _ => return Err(format!("Secret {name:?} needs keys \"username\" and \"password\"")),
        }
    }
    let mut secrets: Vec<String> = credentials.bearer_token.iter().cloned().collect();
    secrets.extend(credentials.basic.iter().flat_map(|(u, p)| [u.clone(), p.clone()]));
    Ok((credentials, secrets))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn release(analysis: serde_json::Value) -> Release {
        serde_json::from_value(json!({
            "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
            "metadata": { "name": "web", "namespace": "ns" },
            "spec": {
                "replicas": 1,
                "selector": { "matchLabels": { "app": "web" } },
                "template": { "metadata": { "labels": { "app": "web" } },
                              "spec": { "containers": [{ "name": "web", "image": "web:1" }] } },
                "strategy": { "rolling": { "analysis": analysis } }
            }
        }))
        .unwrap()
    }

    /// The web provider keeps its escaping through the shared check: URL
    /// values percent-encoded, JSON body values confined to their strings,
    /// and no number-or-duration rule (that is PromQL's alone).
    #[test]
    fn web_placeholders_keep_their_escaping() {
        let hostile = "x/../admin?drop=1#\", \"injected\": true, \"y\": \"";
        let metric = json!({ "name": "smoke", "provider": { "web": {
            "method": "POST",
            "url": "http://svc/api/{{args.app}}?window={{args.window}}",
            "headers": [{ "name": "X-App", "value": "{{ args.app }}" }],
            "body": "{\"app\": \"{{args.app}}\", \"window\": \"{{args.window}}\"}"
        } } });
        let r = release(json!({
            "metrics": [metric],
            "args": [{ "name": "app", "value": hostile }, { "name": "window", "value": "not a duration" }]
        }));
        let checked = check(&r, &Inputs::default(), Which::All);
        assert_eq!(checked.problems, vec![]);
        let web = checked.rendered[0].metric.provider.web.clone().unwrap();
        assert_eq!(
            web.url,
            "http://svc/api/x%2F..%2Fadmin%3Fdrop%3D1%23%22%2C%20%22injected%22%3A%20true%2C%20%22y%22%3A%20%22\
             ?window=not%20a%20duration"
        );
        assert_eq!(web.headers[0].value, hostile);
        let body: serde_json::Value = serde_json::from_str(web.body.as_deref().unwrap()).unwrap();
        assert_eq!(body, json!({ "app": hostile, "window": "not a duration" }));
    }

    /// The Release's arg wins over the template's default, and only the winner
    /// is read: a default from a Secret that is not there does not matter then.
    #[test]
    fn only_the_winning_source_of_an_arg_is_read() {
        let template = Template {
            args: serde_json::from_value(json!([
                { "name": "job", "valueFrom": { "secretKeyRef": { "name": "gone", "key": "k" } } },
                { "name": "window", "value": "5m" }
            ]))
            .unwrap(),
            metrics: serde_json::from_value(json!([{ "name": "m", "provider": { "prometheus": {
                "address": "http://p", "query": "rate(up{job=\"{{args.job}}\"}[{{args.window}}])" } } }]))
            .unwrap(),
        };
        let r = release(json!({
            "templates": [{ "templateName": "t" }],
            "args": [{ "name": "job", "value": "web" }, { "name": "window" }]
        }));
        let mut inputs = Inputs::default();
        inputs.templates.insert("t".into(), Some(template));
        inputs.secrets.insert(("gone".into(), "k".into()), None);
        let checked = check(&r, &inputs, Which::All);
        assert_eq!(checked.problems, vec![]);
        let query = &checked.rendered[0].metric.provider.prometheus.as_ref().unwrap().query;
        assert_eq!(query, "rate(up{job=\"web\"}[5m])");
    }

    /// Lint has no cluster: a Secret value it was not given stands in as a
    /// value every renderer accepts, so only the template is judged; the
    /// controller, given the value, judges the value too.
    #[test]
    fn an_unknown_secret_value_is_not_guessed() {
        let metric = json!({ "name": "m", "provider": { "prometheus": {
            "address": "http://p", "query": "up > {{args.threshold}}" } } });
        let r = release(json!({
            "metrics": [metric],
            "args": [{ "name": "threshold", "valueFrom": { "secretKeyRef": { "name": "s", "key": "t" } } }]
        }));
        assert_eq!(check(&r, &Inputs::default(), Which::All).problems, vec![]);
        let mut inputs = Inputs::default();
        inputs
            .secrets
            .insert(("s".into(), "t".into()), Some("1 or vector(1)".into()));
        assert_eq!(secrets_wanted(&r, &inputs, Which::All).len(), 1);
        let problems = check(&r, &inputs, Which::All).problems;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "spec.strategy.rolling.analysis.args");
        assert!(!problems[0].message.contains("vector"), "{problems:?}");
        inputs.secrets.insert(("s".into(), "t".into()), Some("0.5".into()));
        let checked = check(&r, &inputs, Which::All);
        assert_eq!(checked.problems, vec![]);
        assert_eq!(checked.rendered[0].secrets, vec!["0.5".to_string()]);
    }
}
