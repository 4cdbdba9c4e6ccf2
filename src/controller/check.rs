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
use std::collections::BTreeSet;

use crate::analysis::SecretKey;
use crate::analysis::resolve::{self, Builtins, Found};
use crate::api::{HookKind, Invalid, Release, RolloutAnalysis, TemplateRef};
use crate::plan::{self, AnalysisSlot};

pub use crate::analysis::resolve::{Rendered, Template};

/// What the check reads besides the Release. Unknown parts (lint has no
/// cluster) are left out, and the check skips what depends on them.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// The templates and Secrets the analyses refer to.
    pub found: Found,
    /// `{{args.revision.stable}}`: the stable revision from status ("" for none).
    /// None when unknown.
    pub stable_revision: Option<String>,
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

impl Which {
    fn includes(self, slot: AnalysisSlot) -> bool {
        self == Which::All || self == Which::Slot(slot)
    }
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

impl Checked {
    /// The rendered metrics, or the problem the controller shows.
    pub fn first_problem(self) -> Result<Vec<Rendered>, Invalid> {
        match self.problems.into_iter().next() {
            Some(invalid) => Err(invalid),
            None => Ok(self.rendered),
        }
    }
}

/// The one InvalidSpec check of a Release: `plan`'s validation of the spec,
/// then its analyses (templates, args, Secrets, and each metric rendered for its
/// provider), each resolved by `analysis::resolve`.
pub fn check(release: &Release, inputs: &Inputs, which: Which) -> Checked {
    let mut checked = Checked::default();
    if let Err(invalid) = plan::validate(&release.spec) {
        checked.problems.push(invalid);
    }
    let builtins = builtins(release, inputs);
    for (slot, origin, spec) in analyses(release) {
        if !which.includes(slot) {
            continue;
        }
        match resolve::resolve(&origin, &spec, &inputs.found, &builtins) {
            Ok(rendered) => checked.rendered.extend(rendered),
            Err(invalid) => checked.problems.push(invalid),
        }
    }
    checked
}

/// The args every metric may use without declaring them.
fn builtins(release: &Release, inputs: &Inputs) -> Builtins {
    Builtins::from([
        ("release.name".into(), release.metadata.name.clone()),
        ("release.namespace".into(), release.metadata.namespace.clone()),
        (
            "revision.canary".into(),
            Some(plan::revision::revision_of(&release.spec.template)),
        ),
        ("revision.stable".into(), inputs.stable_revision.clone()),
    ])
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
    if let Some(hooks) = &release.spec.hooks {
        for kind in [HookKind::PreRollout, HookKind::PostRollout] {
            if let Some(hook) = kind.spec(hooks) {
                let origin = format!("spec.hooks.{}", kind.field());
                found.push((AnalysisSlot::Hook(kind), origin, hook.to_rollout_analysis()));
            }
        }
    }
    found
}

/// The templates [`check`] reads for `which`.
pub fn templates_wanted(release: &Release, which: Which) -> Vec<TemplateRef> {
    let mut wanted: Vec<TemplateRef> = Vec::new();
    for (slot, _, spec) in analyses(release) {
        if which.includes(slot) {
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
pub fn secrets_wanted(release: &Release, inputs: &Inputs, which: Which) -> BTreeSet<SecretKey> {
    analyses(release)
        .into_iter()
        .filter(|(slot, _, _)| which.includes(*slot))
        .flat_map(|(_, _, spec)| resolve::secrets_wanted(&spec, &inputs.found))
        .collect()
}

/// The checks of a template on its own (lint, for a template no Release in the
/// files uses).
pub fn template(template: &Template) -> Vec<Invalid> {
    resolve::check_template(template)
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
        inputs.found.templates.insert("t".into(), Some(template));
        inputs.found.secrets.insert(("gone".into(), "k".into()), None);
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
            .found
            .secrets
            .insert(("s".into(), "t".into()), Some("1 or vector(1)".into()));
        assert_eq!(secrets_wanted(&r, &inputs, Which::All).len(), 1);
        let problems = check(&r, &inputs, Which::All).problems;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "spec.strategy.rolling.analysis.args");
        assert!(!problems[0].message.contains("vector"), "{problems:?}");
        inputs
            .found
            .secrets
            .insert(("s".into(), "t".into()), Some("0.5".into()));
        let checked = check(&r, &inputs, Which::All);
        assert_eq!(checked.problems, vec![]);
        assert_eq!(checked.rendered[0].secrets, vec!["0.5".to_string()]);
    }
}
