//! Lint equals controller: every InvalidSpec the controller can derive from a
//! Release's spec, its templates, its args and its Secrets, run through both
//! paths, with the same verdict (field path and message).
//!
//! Controller path: the Release in flight, `plan::analyses_due`, the objects
//! fetched as `controller::analysis::fetch` fetches them (from an in-memory
//! cluster), `check::check` for the due slot, then `plan::plan` and the message
//! of its Degraded condition. Lint path: the same objects as YAML documents
//! through `lint_files`, told they are all the namespace holds
//! (`--complete`), as the in-memory cluster is.
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::{Linted, Scope, lint_files};
use crate::api::{BlueGreenStatus, CanaryStatus, Release, ReleaseStatus};
use crate::controller::check::{self, Inputs, Template, Which};
use crate::plan::{self, AnalysisInput, AnalysisSlot, Observed, RevisionState, Traffic, Verdict};

/// The cluster's objects: templates by (cluster scope, name), Secret keys.
struct Cluster {
    templates: BTreeMap<(bool, String), Template>,
    secrets: BTreeMap<(String, String), String>,
}

impl Cluster {
    fn of(objects: &[Value]) -> Self {
        let mut cluster = Cluster {
            templates: BTreeMap::new(),
            secrets: BTreeMap::new(),
        };
        for object in objects {
            let name = object["metadata"]["name"].as_str().unwrap().to_string();
            match object["kind"].as_str().unwrap() {
                kind @ ("AnalysisTemplate" | "ClusterAnalysisTemplate") => {
                    let template: Template = Template {
                        args: serde_json::from_value(object["spec"]["args"].clone()).unwrap_or_default(),
                        metrics: serde_json::from_value(object["spec"]["metrics"].clone()).unwrap(),
                    };
                    cluster
                        .templates
                        .insert((kind == "ClusterAnalysisTemplate", name), template);
                }
                "Secret" => {
                    for (key, value) in object["stringData"].as_object().unwrap() {
                        cluster
                            .secrets
                            .insert((name.clone(), key.clone()), value.as_str().unwrap().to_string());
                    }
                }
                kind => panic!("{kind}"),
            }
        }
        cluster
    }

    /// What `controller::analysis::fetch` reads, from this cluster.
    fn fetch(&self, release: &Release, which: Which) -> Inputs {
        let status = release.status.clone().unwrap_or_default();
        let mut inputs = Inputs {
            stable_revision: Some(status.stable_revision.unwrap_or_default()),
            ..Inputs::default()
        };
        for reference in check::templates_wanted(release, which) {
            let found = self
                .templates
                .get(&(reference.cluster_scope, reference.template_name.clone()))
                .cloned();
            if reference.cluster_scope {
                inputs.found.cluster_templates.insert(reference.template_name, found);
            } else {
                inputs.found.templates.insert(reference.template_name, found);
            }
        }
        for wanted in check::secrets_wanted(release, &inputs, which) {
            let value = self.secrets.get(&wanted).cloned();
            inputs.found.secrets.insert(wanted, value);
        }
        inputs
    }
}

/// The controller's InvalidSpec message for `release` (in flight from revision
/// "old"), or None when it has none.
fn controller_verdict(release: &Release, cluster: &Cluster) -> Option<String> {
    let now = Timestamp::UNIX_EPOCH;
    let revision = plan::revision::revision_of(&release.spec.template);
    let mut release = release.clone();
    let mut status = ReleaseStatus {
        stable_revision: Some("old".into()),
        current_revision: Some(revision.clone()),
        ..ReleaseStatus::default()
    };
    if let Some(canary) = &release.spec.strategy.canary {
        let step = canary.steps.iter().position(|s| s.analysis.is_some()).unwrap_or(0);
        status.current_step_index = Some(step as i32);
        status.canary = Some(CanaryStatus {
            revision: revision.clone(),
            step_started_at: Some(Time(now)),
            ..CanaryStatus::default()
        });
    }
    if release.spec.strategy.blue_green.is_some() {
        status.blue_green = Some(BlueGreenStatus {
            preview_revision: Some(revision.clone()),
            preview_ready_at: Some(Time(now)),
            ..BlueGreenStatus::default()
        });
    }
    release.status = Some(status);
    let (mut analysis, mut gate_analysis) = (None, None);
    for request in plan::analyses_due(&release, now) {
        let which = Which::Slot(request.slot);
        let checked = check::check(&release, &cluster.fetch(&release, which), which);
        let verdict = match checked.problems.first() {
            Some(invalid) => Verdict::Invalid(invalid.to_string()),
            None => Verdict::Running,
        };
        let input = AnalysisInput {
            slot: request.slot,
            status: request.status,
            verdict,
            next_due: None,
        };
        match request.slot {
            AnalysisSlot::Background => analysis = Some(input),
            _ => gate_analysis = Some(input),
        }
    }
    let replicas = release.spec.replicas;
    let replica_sets = [
        RevisionState {
            name: "web-old".into(),
            revision: "old".into(),
            number: 1,
            replicas,
            status_replicas: replicas,
            ready: replicas,
            available: replicas,
            synced: true,
        },
        RevisionState {
            name: format!("web-{revision}"),
            revision,
            number: 2,
            replicas: 0,
            status_replicas: 0,
            ready: 0,
            available: 0,
            synced: true,
        },
    ];
    let plan = plan::plan(&Observed {
        release: &release,
        replica_sets: &replica_sets,
        baseline: None,
        analysis,
        gate_analysis,
        hook: None,
        traffic: Traffic::default(),
        refused: None,
        template_problem: None,
        workload: None,
        now,
    });
    let degraded = plan.status.conditions.iter().find(|c| c.type_ == "Degraded")?;
    (degraded.status == "True" && plan::Reason::InvalidSpec == degraded.reason).then(|| degraded.message.clone())
}

fn release(strategy: Value) -> Value {
    json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Release", "metadata": { "name": "web", "namespace": "ns" },
        "spec": {
            "replicas": 4,
            "selector": { "matchLabels": { "app": "web" } },
            "template": { "metadata": { "labels": { "app": "web" } },
                          "spec": { "containers": [{ "name": "web", "image": "example.com/web:2" }] } },
            "strategy": strategy
        }
    })
}

/// A rolling Release whose analysis is `analysis`.
fn rolling(analysis: Value) -> Value {
    release(json!({ "rolling": { "analysis": analysis } }))
}

/// `value` with the JSON at `pointer` replaced.
fn with(mut value: Value, pointer: &str, replacement: Value) -> Value {
    *value.pointer_mut(pointer).unwrap() = replacement;
    value
}

fn template(kind: &str, name: &str, args: Value, metrics: Value) -> Value {
    let mut template = json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": kind, "metadata": { "name": name },
        "spec": { "args": args, "metrics": metrics }
    });
    if kind == "AnalysisTemplate" {
        template["metadata"]["namespace"] = json!("ns");
    }
    template
}

/// An AnalysisTemplate "t" with one metric "m".
fn one_metric(args: Value, metric: Value) -> Value {
    let mut m = json!({ "name": "m" });
    m.as_object_mut().unwrap().extend(metric.as_object().unwrap().clone());
    template("AnalysisTemplate", "t", args, json!([m]))
}

fn prometheus(query: &str) -> Value {
    json!({ "provider": { "prometheus": { "address": "http://prometheus:9090", "query": query } } })
}

fn uses_t(args: Value) -> Value {
    json!({ "templates": [{ "templateName": "t" }], "args": args })
}

fn secret(name: &str, data: Value) -> Value {
    json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": name, "namespace": "ns" }, "stringData": data })
}

/// (what, Release, other objects, field, part of the message)
type Case = (&'static str, Value, Vec<Value>, &'static str, &'static str);

fn cases() -> Vec<Case> {
    let good_t = || one_metric(json!([]), prometheus("up"));
    let analysis = "spec.strategy.rolling.analysis";
    vec![
        // plan::validate: the spec alone.
        (
            "selector does not match the template",
            with(
                rolling(uses_t(json!([]))),
                "/spec/selector",
                json!({ "matchLabels": { "app": "api" } }),
            ),
            vec![good_t()],
            "spec.selector",
            "does not match spec.template.metadata.labels",
        ),
        (
            "selector is empty",
            with(
                rolling(uses_t(json!([]))),
                "/spec/selector",
                json!({ "matchLabels": {} }),
            ),
            vec![good_t()],
            "spec.selector",
            "must not be empty",
        ),
        (
            "no strategy",
            release(json!({})),
            vec![],
            "spec.strategy",
            "must set exactly one of rolling, blueGreen or canary",
        ),
        (
            "rolling maxSurge is not a percent",
            release(json!({ "rolling": { "maxSurge": "x%" } })),
            vec![],
            "spec.strategy.rolling",
            "maxSurge: \"x%\" is neither an integer nor a percent",
        ),
        (
            "rolling maxUnavailable is not a percent",
            release(json!({ "rolling": { "maxUnavailable": "many" } })),
            vec![],
            "spec.strategy.rolling",
            "maxUnavailable: \"many\" is neither an integer nor a percent",
        ),
        (
            "rolling maxSurge percent too large",
            with(
                release(json!({ "rolling": { "maxSurge": "2000000000%" } })),
                "/spec/replicas",
                json!(1000),
            ),
            vec![],
            "spec.strategy.rolling",
            "maxSurge: 2000000000% of 1000 is too large",
        ),
        (
            "rolling maxSurge negative",
            release(json!({ "rolling": { "maxSurge": -1 } })),
            vec![],
            "spec.strategy.rolling",
            "maxSurge: -1 is negative",
        ),
        (
            "rolling maxSurge negative percent",
            release(json!({ "rolling": { "maxSurge": "-5%" } })),
            vec![],
            "spec.strategy.rolling",
            "maxSurge: \"-5%\" is neither an integer nor a percent",
        ),
        (
            "rolling maxUnavailable over 100%",
            release(json!({ "rolling": { "maxUnavailable": "150%" } })),
            vec![],
            "spec.strategy.rolling",
            "maxUnavailable must not exceed 100%",
        ),
        (
            "canary maxSurge is not a percent",
            release(json!({ "canary": { "maxSurge": "x" } })),
            vec![],
            "spec.strategy.canary",
            "maxSurge: \"x\" is neither an integer nor a percent",
        ),
        (
            "canary maxUnavailable over 100%",
            release(json!({ "canary": { "maxUnavailable": "101%" } })),
            vec![],
            "spec.strategy.canary",
            "maxUnavailable must not exceed 100%",
        ),
        (
            "canary pause duration",
            release(json!({ "canary": { "steps": [{ "setWeight": 10 }, { "pause": { "duration": "5 minutes" } }] } })),
            vec![],
            "spec.strategy.canary.steps[1].pause.duration",
            "\"5 minutes\" is not a duration",
        ),
        (
            "canary startingStep past the steps",
            release(json!({ "canary": { "steps": [{ "setWeight": 5 }],
                "analysis": { "templates": [{ "templateName": "t" }], "startingStep": 3 } } })),
            vec![good_t()],
            "spec.strategy.canary.analysis.startingStep",
            "3 is past the last of 1 steps",
        ),
        // The analyses: templates, args, Secrets, rendering.
        (
            "AnalysisTemplate not found",
            rolling(uses_t(json!([]))),
            vec![],
            "spec.strategy.rolling.analysis.templates[0].templateName",
            "AnalysisTemplate \"t\" not found",
        ),
        (
            "ClusterAnalysisTemplate not found",
            rolling(json!({ "templates": [{ "templateName": "shared", "clusterScope": true }] })),
            vec![],
            "spec.strategy.rolling.analysis.templates[0].templateName",
            "ClusterAnalysisTemplate \"shared\" not found",
        ),
        (
            "template arg has no value",
            rolling(uses_t(json!([]))),
            vec![one_metric(
                json!([{ "name": "service" }]),
                prometheus("up{job=\"{{args.service}}\"}"),
            )],
            "spec.strategy.rolling.analysis.args",
            "arg \"service\" of AnalysisTemplate \"t\" has no value; set it here",
        ),
        (
            "Release arg reads a Secret key that is not there",
            rolling(uses_t(
                json!([{ "name": "token", "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } }]),
            )),
            vec![good_t()],
            "spec.strategy.rolling.analysis.args",
            "arg \"token\": Secret \"s\" has no key \"k\"",
        ),
        (
            "template arg reads a Secret key that is not there",
            rolling(uses_t(json!([]))),
            vec![
                one_metric(
                    json!([{ "name": "token", "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } }]),
                    prometheus("up"),
                ),
                secret("s", json!({ "other": "x" })),
            ],
            "spec.strategy.rolling.analysis.templates[0]",
            "arg \"token\": Secret \"s\" has no key \"k\"",
        ),
        (
            "metric defined twice",
            rolling(json!({ "templates": [{ "templateName": "t" }, { "templateName": "u" }] })),
            vec![
                good_t(),
                template(
                    "AnalysisTemplate",
                    "u",
                    json!([]),
                    json!([{ "name": "m", "provider": { "web": { "url": "http://x" } } }]),
                ),
            ],
            "spec.strategy.rolling.analysis.templates[1]",
            "metric \"m\" is defined twice (again in AnalysisTemplate \"u\")",
        ),
        (
            "condition does not compile",
            rolling(uses_t(json!([]))),
            vec![one_metric(
                json!([]),
                json!({ "successCondition": "result[0] <", "provider": { "web": { "url": "http://x" } } }),
            )],
            "spec.strategy.rolling.analysis.templates[0]",
            "AnalysisTemplate \"t\" metric \"m\": condition \"result[0] <\"",
        ),
        (
            "failureCondition does not compile",
            rolling(uses_t(json!([]))),
            vec![one_metric(
                json!([]),
                json!({ "failureCondition": "result >", "provider": { "web": { "url": "http://x" } } }),
            )],
            "spec.strategy.rolling.analysis.templates[0]",
            "AnalysisTemplate \"t\" metric \"m\": condition \"result >\": invalid CEL expression",
        ),
        (
            "condition nests too deeply",
            rolling(uses_t(json!([]))),
            vec![one_metric(
                json!([]),
                json!({ "successCondition": format!("{}true{}", "(".repeat(65), ")".repeat(65)),
                        "provider": { "web": { "url": "http://x" } } }),
            )],
            "spec.strategy.rolling.analysis.templates[0]",
            "CEL expression has 65 opening brackets; the limit is 64",
        ),
        (
            "interval of zero",
            rolling(uses_t(json!([]))),
            vec![one_metric(
                json!([]),
                json!({ "interval": "0s", "provider": { "web": { "url": "http://x" } } }),
            )],
            "spec.strategy.rolling.analysis.templates[0]",
            "interval \"0s\" must be more than 0",
        ),
        (
            "interval too large",
            rolling(uses_t(json!([]))),
            vec![one_metric(
                json!([]),
                json!({ "interval": "9999999999h", "provider": { "web": { "url": "http://x" } } }),
            )],
            "spec.strategy.rolling.analysis.templates[0]",
            "interval \"9999999999h\" is not a duration like \"30s\" or \"1m30s\": too long or too large",
        ),
        (
            "interval is not a duration",
            rolling(uses_t(json!([]))),
            vec![one_metric(
                json!([]),
                json!({ "interval": "soon", "provider": { "web": { "url": "http://x" } } }),
            )],
            "spec.strategy.rolling.analysis.templates[0]",
            "interval \"soon\" is not a duration",
        ),
        (
            "initialDelay is not a duration",
            rolling(uses_t(json!([]))),
            vec![one_metric(
                json!([]),
                json!({ "initialDelay": "-5s", "provider": { "web": { "url": "http://x" } } }),
            )],
            "spec.strategy.rolling.analysis.templates[0]",
            "initialDelay \"-5s\" is not a duration",
        ),
        (
            "timeout is not a duration",
            rolling(uses_t(json!([]))),
            vec![one_metric(
                json!([]),
                json!({ "provider": { "prometheus": { "address": "http://p", "query": "up", "timeout": "2 s" } } }),
            )],
            "spec.strategy.rolling.analysis.templates[0]",
            "timeout \"2 s\" is not a duration",
        ),
        (
            "malformed placeholder",
            rolling(uses_t(json!([]))),
            vec![one_metric(json!([]), prometheus("up{a=\"{{args.}}\"}"))],
            "spec.strategy.rolling.analysis.templates[0]",
            "malformed placeholder",
        ),
        (
            "unknown arg",
            rolling(uses_t(json!([]))),
            vec![one_metric(json!([]), prometheus("up{a=\"{{args.nope}}\"}"))],
            "spec.strategy.rolling.analysis.templates[0]",
            "unknown arg {{args.nope}}",
        ),
        (
            "unterminated string literal",
            rolling(uses_t(json!([]))),
            vec![one_metric(
                json!([{ "name": "x", "value": "1" }]),
                prometheus("up{a=\"{{args.x}}}"),
            )],
            "spec.strategy.rolling.analysis.templates[0]",
            "unterminated string literal at byte 5",
        ),
        (
            "placeholder after a backslash",
            rolling(uses_t(json!([{ "name": "x", "value": "1" }]))),
            vec![one_metric(
                json!([{ "name": "x" }]),
                prometheus("up{a=\"\\{{args.x}}\"}"),
            )],
            "spec.strategy.rolling.analysis.templates[0]",
            "placeholder {{args.x}} follows a backslash",
        ),
        (
            "Release arg outside a literal is not a number or duration",
            release(json!({ "canary": { "steps": [{ "setWeight": 10 }, { "setWeight": 20 },
                { "analysis": { "templates": [{ "templateName": "x" }], "args": [{ "name": "window", "value": "5m) or vector(1" }] } }] } })),
            vec![template(
                "AnalysisTemplate",
                "x",
                json!([{ "name": "window" }]),
                json!([{ "name": "y", "provider": { "prometheus": { "address": "http://p", "query": "rate(errors[{{args.window}}]) > 0.1" } } }]),
            )],
            "spec.strategy.canary.steps[2].analysis.args",
            "AnalysisTemplate \"x\" metric \"y\": arg \"window\" is used outside a string literal ({{args.window}}), so its value must be a number (like 0.05 or 1e3) or a duration (like 5m or 1h30m); got \"5m) or vector(1\"",
        ),
        (
            "template default outside a literal is not a number",
            rolling(uses_t(json!([]))),
            vec![one_metric(
                json!([{ "name": "threshold", "value": "high" }]),
                prometheus("up > {{args.threshold}}"),
            )],
            "spec.strategy.rolling.analysis.templates[0]",
            "arg \"threshold\" is used outside a string literal ({{args.threshold}}), so its value must be a number",
        ),
        (
            "Secret value outside a literal is not shown",
            rolling(uses_t(
                json!([{ "name": "threshold", "valueFrom": { "secretKeyRef": { "name": "s", "key": "t" } } }]),
            )),
            vec![
                one_metric(json!([{ "name": "threshold" }]), prometheus("up > {{args.threshold}}")),
                secret("s", json!({ "t": "1 or vector(1)" })),
            ],
            "spec.strategy.rolling.analysis.args",
            "got a value read from a Secret (not shown)",
        ),
        (
            "backtick in a raw string",
            rolling(uses_t(json!([{ "name": "job", "value": "a`b" }]))),
            vec![one_metric(
                json!([{ "name": "job" }]),
                prometheus("up{job=`{{args.job}}`}"),
            )],
            "spec.strategy.rolling.analysis.args",
            "arg \"job\" contains a backtick",
        ),
        (
            "CR or LF in a header value",
            rolling(uses_t(json!([{ "name": "tenant", "value": "a\nSet-Cookie: x" }]))),
            vec![one_metric(
                json!([{ "name": "tenant" }]),
                json!({ "provider": { "web": { "url": "http://x", "headers": [{ "name": "X-Tenant", "value": "{{args.tenant}}" }] } } }),
            )],
            "spec.strategy.rolling.analysis.args",
            "arg \"tenant\" contains CR, LF or NUL",
        ),
        (
            "bearer token Secret has no key",
            rolling(uses_t(json!([]))),
            vec![
                one_metric(
                    json!([]),
                    json!({ "provider": { "prometheus": { "address": "http://p", "query": "up",
                        "authentication": { "bearerToken": { "name": "prom", "key": "token" } } } } }),
                ),
                secret("prom", json!({ "other": "x" })),
            ],
            "spec.strategy.rolling.analysis.templates[0]",
            "Secret \"prom\" has no key \"token\"",
        ),
        (
            "basic auth Secret lacks a key",
            rolling(uses_t(json!([]))),
            vec![
                one_metric(
                    json!([]),
                    json!({ "provider": { "prometheus": { "address": "http://p", "query": "up",
                        "authentication": { "basicAuthSecret": "prom" } } } }),
                ),
                secret("prom", json!({ "username": "u" })),
            ],
            "spec.strategy.rolling.analysis.templates[0]",
            "Secret \"prom\" needs keys \"username\" and \"password\"",
        ),
        (
            "analysis with no metrics",
            rolling(json!({})),
            vec![],
            analysis,
            "has no metrics",
        ),
        (
            "inline metric",
            rolling(
                json!({ "metrics": [{ "name": "m", "interval": "often", "provider": { "web": { "url": "http://x" } } }] }),
            ),
            vec![],
            "spec.strategy.rolling.analysis.metrics[0]",
            "metric \"m\": interval \"often\" is not a duration",
        ),
        (
            "canary background analysis",
            release(
                json!({ "canary": { "steps": [{ "setWeight": 10 }], "analysis": { "templates": [{ "templateName": "gone" }] } } }),
            ),
            vec![],
            "spec.strategy.canary.analysis.templates[0].templateName",
            "AnalysisTemplate \"gone\" not found",
        ),
        (
            "blue-green pre-promotion analysis",
            release(
                json!({ "blueGreen": { "activeService": "web", "previewService": "web-preview",
                "prePromotionAnalysis": { "templates": [{ "templateName": "t" }] } } }),
            ),
            vec![one_metric(
                json!([{ "name": "service" }]),
                prometheus("up{job=\"{{args.service}}\"}"),
            )],
            "spec.strategy.blueGreen.prePromotionAnalysis.args",
            "arg \"service\" of AnalysisTemplate \"t\" has no value",
        ),
    ]
}

#[test]
fn lint_and_the_controller_give_every_invalid_spec_the_same_verdict() {
    let cases = cases();
    // Refused by the CRD's own rules as well; checked by plan in case the
    // installed CRDs are older than the controller.
    let mut refused_by_rules = Vec::new();
    for (what, release_json, objects, field, needle) in &cases {
        let release: Release = serde_json::from_value(release_json.clone()).unwrap();
        let controller = controller_verdict(&release, &Cluster::of(objects))
            .unwrap_or_else(|| panic!("{what}: the controller finds no InvalidSpec"));
        let mut documents = vec![serde_yaml::to_string(release_json).unwrap()];
        documents.extend(objects.iter().map(|o| serde_yaml::to_string(o).unwrap()));
        let files: Vec<&str> = documents.iter().map(String::as_str).collect();
        let lint: Vec<_> = lint_files(&files, Scope::Complete)
            .unwrap()
            .problems
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        let release_problems: Vec<String> = lint
            .iter()
            .filter(|p| p.object == "Release web")
            .map(|p| format!("{}: {}", p.field, p.reason))
            .collect();
        // Lint lists the CRD's rule errors first, then the shared check's problems:
        // the first of those is the controller's verdict, word for word.
        let rules_first = crate::api::validation::rule_errors("Release", release_json).len();
        assert_eq!(
            release_problems.get(rules_first),
            Some(&controller),
            "{what}: the controller says {controller:?}; lint says {release_problems:#?}"
        );
        assert!(
            controller.starts_with(&format!("{field}: ")) && controller.contains(needle),
            "{what}: {controller:?} should be at {field:?} and contain {needle:?}"
        );
        // Nothing the API server refuses: the controller only ever sees what it admitted.
        let schema = crate::api::validation::schema_errors("Release", release_json);
        assert!(schema.is_empty(), "{what}: {schema:?}");
        let rules = crate::api::validation::rule_errors("Release", release_json);
        if !rules.is_empty() {
            refused_by_rules.push(*what);
        }
    }
    assert_eq!(
        refused_by_rules,
        [
            "selector does not match the template",
            "no strategy",
            "rolling maxSurge is not a percent",
            "rolling maxUnavailable is not a percent",
            "rolling maxSurge negative",
            "rolling maxSurge negative percent",
            "canary maxSurge is not a percent",
        ]
    );
    println!(
        "{} InvalidSpec cases, same verdict from lint and the controller ({} of them also refused by the CRD's rules)",
        cases.len(),
        refused_by_rules.len()
    );
}

#[test]
fn the_same_manifests_made_valid_pass_both() {
    let template = one_metric(
        json!([{ "name": "window", "value": "5m" }, { "name": "threshold" }, { "name": "service-name" }]),
        prometheus("sum(rate(errors{service=\"{{ args.service-name }}\"}[{{args.window}}])) > {{args.threshold}}"),
    );
    let release_json = rolling(uses_t(
        json!([{ "name": "threshold", "value": "0.05" }, { "name": "service-name", "value": "web" }]),
    ));
    let release: Release = serde_json::from_value(release_json.clone()).unwrap();
    let cluster = Cluster::of(std::slice::from_ref(&template));
    assert_eq!(controller_verdict(&release, &cluster), None);
    let checked = check::check(&release, &cluster.fetch(&release, Which::All), Which::All);
    assert!(checked.problems.is_empty(), "{:?}", checked.problems);
    let query = &checked.rendered[0].metric.provider.prometheus.as_ref().unwrap().query;
    assert_eq!(query, "sum(rate(errors{service=\"web\"}[5m])) > 0.05");
    let documents = [
        serde_yaml::to_string(&release_json).unwrap(),
        serde_yaml::to_string(&template).unwrap(),
    ];
    let files: Vec<&str> = documents.iter().map(String::as_str).collect();
    assert_eq!(lint_files(&files, Scope::Complete).unwrap(), Linted::default());
    // Without the template, lint checks what it can and says what it could not.
    let partial = lint_files(&files[..1], Scope::Partial).unwrap();
    assert_eq!(partial.problems, vec![]);
    let unchecked: Vec<String> = partial.unchecked.iter().map(|(_, p)| p.to_string()).collect();
    assert_eq!(
        unchecked,
        vec![
            "document 1: Release web: spec.strategy.rolling.analysis.templates[0]: AnalysisTemplate \"t\" is not in the given files, so what depends on it was not \
             checked (add its manifest with -f, or pass --complete if the files hold everything)"
        ]
    );
}

/// A Secret manifest's `data` is base64, as the API server stores it; lint
/// reads it as the controller reads the live Secret.
#[test]
fn secrets_in_the_files_are_read_like_live_ones() {
    let release_json = rolling(uses_t(json!([{ "name": "threshold",
        "valueFrom": { "secretKeyRef": { "name": "s", "key": "t" } } }])));
    let template = one_metric(json!([{ "name": "threshold" }]), prometheus("up > {{args.threshold}}"));
    let lint_with = |data: Value| {
        let secret = json!({ "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "s", "namespace": "ns" }, "data": data });
        let documents: Vec<String> = [&release_json, &template, &secret]
            .iter()
            .map(|d| serde_yaml::to_string(d).unwrap())
            .collect();
        let files: Vec<&str> = documents.iter().map(String::as_str).collect();
        lint_files(&files, Scope::Partial).unwrap()
    };
    // "1 or vector(1)"
    let bad = lint_with(json!({ "t": "MSBvciB2ZWN0b3IoMSk=" }));
    let found: Vec<String> = bad.problems.iter().map(|(_, p)| p.to_string()).collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("got a value read from a Secret (not shown)"),
        "{found:?}"
    );
    assert!(!found[0].contains("vector"), "{found:?}");
    // "0.5"
    assert_eq!(lint_with(json!({ "t": "MC41" })), Linted::default());
    // The key is missing: the controller would say so, and so does lint.
    let missing = lint_with(json!({ "other": "MC41" }));
    let found: Vec<String> = missing.problems.iter().map(|(_, p)| p.to_string()).collect();
    assert_eq!(
        found,
        vec![
            "document 1: Release web: spec.strategy.rolling.analysis.args: arg \"threshold\": Secret \"s\" has no key \"t\""
        ]
    );
}
