//! Snapshots of the tree for fixed Releases of each strategy, and of the list.
use super::render::{Colour, list, tree};
use crate::api::Release;
use crate::plan::RevisionState;

fn release(strategy: serde_json::Value, status: serde_json::Value) -> Release {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
        "metadata": { "name": "web", "namespace": "shop", "generation": 3 },
        "spec": {
            "replicas": 10,
            "selector": { "matchLabels": { "app": "web" } },
            "template": { "metadata": { "labels": { "app": "web" } },
                          "spec": { "containers": [{ "name": "web", "image": "example.com/web:2" }] } },
            "strategy": strategy
        },
        "status": status
    }))
    .unwrap()
}

fn rs(number: i64, revision: &str, replicas: i32, available: i32) -> RevisionState {
    RevisionState {
        name: format!("web-{revision}"),
        revision: revision.into(),
        number,
        replicas,
        status_replicas: replicas,
        ready: available,
        available,
        synced: true,
    }
}

fn conditions(phase: &str, reason: &str) -> serde_json::Value {
    let ready = if phase == "Healthy" { "True" } else { "False" };
    serde_json::json!([
        { "type": "Ready", "status": ready, "reason": reason, "message": "", "lastTransitionTime": "2026-11-28T08:00:00Z" },
        { "type": "Progressing", "status": "True", "reason": reason, "message": "", "lastTransitionTime": "2026-11-28T08:00:00Z" },
    ])
}

fn analysis() -> serde_json::Value {
    serde_json::json!({
        "revision": "b2", "phase": "Running", "startedAt": "2026-11-28T08:00:00Z",
        "metrics": [
            { "name": "error-ratio", "phase": "Running", "count": 3, "successful": 3,
              "measurements": [{ "phase": "Successful", "value": "[0.002]", "finishedAt": "2026-11-28T08:01:00Z" }] },
            { "name": "latency-p99", "phase": "Running", "count": 2, "successful": 1, "failed": 1,
              "measurements": [{ "phase": "Failed", "value": "[0.81]", "finishedAt": "2026-11-28T08:01:00Z" }] },
        ]
    })
}

fn rolling() -> Release {
    release(
        serde_json::json!({ "rolling": { "maxSurge": "25%", "maxUnavailable": "25%" } }),
        serde_json::json!({
            "observedGeneration": 3, "phase": "Progressing", "strategy": "Rolling",
            "conditions": conditions("Progressing", "RollingUpdate"),
            "currentRevision": "b2", "stableRevision": "a1",
            "replicas": 13, "updatedReplicas": 5, "readyReplicas": 10, "availableReplicas": 10,
            "message": "Rolling out revision b2: 2 of 10 updated replicas available, 8 old replicas remain",
            "analysis": analysis(),
        }),
    )
}

fn canary() -> Release {
    release(
        serde_json::json!({ "canary": { "stableService": "web", "canaryService": "web-canary",
            "steps": [{ "setWeight": 20 }, { "pause": { "duration": "5s" } }, { "setWeight": 50 }, { "pause": {} }],
            "trafficRouting": { "gatewayAPI": { "httpRoutes": [{ "name": "web" }] } } } }),
        serde_json::json!({
            "observedGeneration": 3, "phase": "Paused", "strategy": "Canary",
            "conditions": conditions("Paused", "CanaryPauseStep"),
            "currentRevision": "b2", "stableRevision": "a1", "currentStepIndex": 3, "canaryWeight": 50,
            "replicas": 15, "updatedReplicas": 5, "readyReplicas": 15, "availableReplicas": 15,
            "message": "Canary revision b2 at step 4/4 (pause): weight 50%, 5 of 5 canary pods available. Paused until promoted",
            "canary": { "revision": "b2", "stepStartedAt": "2026-11-28T08:00:10Z" },
            "analysis": analysis(),
        }),
    )
}

fn blue_green() -> Release {
    release(
        serde_json::json!({ "blueGreen": { "activeService": "web", "previewService": "web-preview",
            "postPromotionAnalysis": { "templates": [{ "templateName": "smoke" }] } } }),
        serde_json::json!({
            "observedGeneration": 3, "phase": "Progressing", "strategy": "BlueGreen",
            "conditions": conditions("Progressing", "PostPromotionAnalysis"),
            "currentRevision": "b2", "stableRevision": "a1",
            "replicas": 20, "updatedReplicas": 10, "readyReplicas": 20, "availableReplicas": 20,
            "message": "Revision b2 is active; revision a1 stands by until the post-promotion analysis passes",
            "blueGreen": { "activeRevision": "b2", "previewRevision": "b2", "switchedAt": "2026-11-28T08:02:00Z",
                           "postPromotionAnalysis": analysis() },
        }),
    )
}

#[test]
fn a_rolling_update_tree() {
    let sets = [rs(1, "a1", 8, 8), rs(2, "b2", 5, 2)];
    insta::assert_snapshot!(tree(&rolling(), &sets, Colour::Never));
}

#[test]
fn a_canary_tree() {
    let sets = [rs(1, "a1", 10, 10), rs(2, "b2", 5, 5)];
    insta::assert_snapshot!(tree(&canary(), &sets, Colour::Never));
}

#[test]
fn a_blue_green_tree() {
    let sets = [rs(1, "a1", 10, 10), rs(2, "b2", 10, 10)];
    insta::assert_snapshot!(tree(&blue_green(), &sets, Colour::Never));
}

#[test]
fn colour_only_marks_the_phase_and_results() {
    let sets = [rs(1, "a1", 10, 10), rs(2, "b2", 5, 5)];
    let coloured = tree(&canary(), &sets, Colour::Always);
    assert!(coloured.contains("\x1b[33mPaused\x1b[0m"), "{coloured}");
    assert!(coloured.contains("\x1b[31mfail\x1b[0m"));
    let plain: String = coloured
        .replace("\x1b[33m", "")
        .replace("\x1b[31m", "")
        .replace("\x1b[32m", "")
        .replace("\x1b[0m", "");
    assert_eq!(plain, tree(&canary(), &sets, Colour::Never));
}

#[test]
fn the_list() {
    insta::assert_snapshot!(list(&[rolling(), canary(), blue_green()]));
}

mod lint {
    use serde_json::{Value, json};

    use crate::cli::lint::lint;

    fn release(strategy: Value) -> Value {
        json!({
            "apiVersion": "serin.dev/v1alpha1", "kind": "Release", "metadata": { "name": "web" },
            "spec": {
                "replicas": 3,
                "selector": { "matchLabels": { "app": "web" } },
                "template": { "metadata": { "labels": { "app": "web" } },
                              "spec": { "containers": [{ "name": "web", "image": "example.com/web:1" }] } },
                "strategy": strategy
            }
        })
    }

    /// `value` with the JSON at `pointer` replaced (or removed, for null).
    fn with(mut value: Value, pointer: &str, replacement: Value) -> Value {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = value.pointer_mut(parent).unwrap().as_object_mut().unwrap();
        if replacement.is_null() {
            target.remove(key);
        } else {
            target.insert(key.to_string(), replacement);
        }
        value
    }

    fn template(metric: Value) -> Value {
        json!({
            "apiVersion": "serin.dev/v1alpha1", "kind": "AnalysisTemplate", "metadata": { "name": "errors" },
            "spec": { "metrics": [metric] }
        })
    }

    fn metric(extra: Value) -> Value {
        let mut metric = json!({ "name": "errors", "provider": { "web": { "url": "http://x" } } });
        metric
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        metric
    }

    fn problems(object: &Value) -> Vec<String> {
        let yaml = serde_yaml::to_string(object).unwrap();
        lint(&yaml).unwrap().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn good_manifests_have_no_problems() {
        let canary = json!({ "canary": { "stableService": "web", "canaryService": "web-canary",
            "steps": [{ "setWeight": 20 }, { "pause": { "duration": "1m" } }, { "pause": {} }],
            "trafficRouting": { "gatewayAPI": { "httpRoutes": [{ "name": "web" }] } } } });
        let blue_green = json!({ "blueGreen": { "activeService": "web", "previewService": "web-preview",
            "prePromotionAnalysis": { "templates": [{ "templateName": "smoke" }] } } });
        for strategy in [json!({ "rolling": {} }), canary, blue_green] {
            assert_eq!(problems(&release(strategy.clone())), Vec::<String>::new(), "{strategy}");
        }
        let good = metric(json!({ "interval": "30s", "successCondition": "result[0] < 0.01" }));
        assert_eq!(problems(&template(good)), Vec::<String>::new());
        let service = json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "web" } });
        assert_eq!(problems(&service), Vec::<String>::new(), "other kinds are left alone");
    }

    #[test]
    fn each_bad_input_is_named_with_its_field_and_reason() {
        let rolling = || release(json!({ "rolling": {} }));
        let canary = |c: Value| release(json!({ "canary": c }));
        let blue_green = |b: Value| release(json!({ "blueGreen": b }));
        let cases: Vec<(Value, &str)> = vec![
            // Issue 3: Releases.
            (
                with(rolling(), "/spec/replicas", json!(-1)),
                "spec.replicas: should be greater than or equal to 0",
            ),
            (
                with(rolling(), "/spec/selector", json!({ "matchLabels": { "app": "api" } })),
                "must match spec.template.metadata.labels",
            ),
            (
                with(rolling(), "/spec/strategy", json!({})),
                "exactly one of rolling, blueGreen or canary",
            ),
            (
                with(rolling(), "/spec/strategy", json!({ "rolling": {}, "canary": {} })),
                "exactly one of rolling, blueGreen or canary",
            ),
            (
                with(
                    rolling(),
                    "/spec/strategy",
                    json!({ "rolling": { "maxSurge": 0, "maxUnavailable": "0%" } }),
                ),
                "may not both be 0",
            ),
            (
                with(
                    with(rolling(), "/spec/minReadySeconds", json!(700)),
                    "/spec/progressDeadlineSeconds",
                    json!(600),
                ),
                "must be greater than spec.minReadySeconds",
            ),
            (
                with(rolling(), "/spec/strategy", json!({ "rolling": { "maxSurge": "x%" } })),
                "maxSurge",
            ),
            (
                with(rolling(), "/spec/template", Value::Null),
                "spec.template: Required value",
            ),
            (
                with(rolling(), "/spec/replicas", json!("three")),
                "spec.replicas: must be of type integer",
            ),
            // Issue 4: analysis.
            (
                template(json!({ "name": "errors", "provider": {} })),
                "exactly one of prometheus, web or job",
            ),
            (
                template(metric(json!({ "successCondition": "result[0] <" }))),
                "condition \"result[0] <\"",
            ),
            (
                template(metric(json!({ "interval": "soon" }))),
                "interval \"soon\" is not a duration",
            ),
            (
                template(metric(json!({ "count": 0 }))),
                "spec.metrics[0].count: should be greater than or equal to 1",
            ),
            (
                with(
                    template(metric(json!({}))),
                    "/spec/args",
                    json!([{ "name": "token", "value": "x", "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } }]),
                ),
                "set value or valueFrom, not both",
            ),
            (
                with(
                    template(metric(json!({}))),
                    "/spec/metrics",
                    Value::from(vec![metric(json!({})); 21]),
                ),
                "spec.metrics: must have at most 20 items",
            ),
            (
                template(
                    json!({ "name": "errors", "provider": { "web": { "url": "http://x" }, "job": { "spec": { "template": {} } } } }),
                ),
                "exactly one of prometheus, web or job",
            ),
            // Issue 5: canaries.
            (
                canary(json!({ "steps": [{ "setWeight": 10, "pause": {} }] })),
                "exactly one of setWeight, pause, analysis or setCanaryScale",
            ),
            (
                canary(json!({ "steps": [{ "setWeight": 120 }] })),
                "setWeight: should be less than or equal to 100",
            ),
            (
                canary(json!({ "trafficRouting": { "nginx": { "ingress": "web" } } })),
                "needs stableService and canaryService",
            ),
            (
                canary(
                    json!({ "stableService": "web", "canaryService": "web-canary", "trafficRouting": {
                    "nginx": { "ingress": "web" }, "gatewayAPI": { "httpRoutes": [{ "name": "web" }] } } }),
                ),
                "sets exactly one of gatewayAPI or nginx",
            ),
            (
                canary(json!({ "stableService": "web", "canaryService": "web" })),
                "must be different Services",
            ),
            (
                canary(json!({ "steps": [{ "setCanaryScale": { "replicas": 1 } }] })),
                "setCanaryScale needs spec.strategy.canary.trafficRouting",
            ),
            (
                canary(json!({ "steps": [{ "pause": { "duration": "5 minutes" } }] })),
                "pause.duration",
            ),
            (
                canary(
                    json!({ "steps": [{ "setWeight": 5 }], "analysis": { "templates": [{ "templateName": "t" }], "startingStep": 3 } }),
                ),
                "startingStep: 3 is past the last of 1 steps",
            ),
            (
                canary(json!({ "steps": [{ "analysis": { "templates": [] } }] })),
                "templates: must have at least 1 items",
            ),
            // Issue 6: blue-green.
            (blue_green(json!({})), "activeService: Required value"),
            (
                blue_green(json!({ "activeService": "web", "previewService": "web" })),
                "previewService must differ from activeService",
            ),
            (
                blue_green(
                    json!({ "activeService": "web", "autoPromotionEnabled": false, "autoPromotionSeconds": 30 }),
                ),
                "autoPromotionSeconds needs autoPromotionEnabled",
            ),
            (
                blue_green(json!({ "activeService": "web", "previewReplicaCount": -1 })),
                "previewReplicaCount: should be greater than or equal to 0",
            ),
        ];
        for (object, needle) in cases {
            let found = problems(&object);
            assert!(
                found.iter().any(|p| p.contains(needle)),
                "want {needle:?} in {found:#?} for {object}"
            );
            assert!(found.iter().all(|p| p.starts_with("document 1: ")), "{found:?}");
        }
    }

    #[test]
    fn every_document_is_checked_and_named() {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n---\n".to_string()
            + &serde_yaml::to_string(&with(release(json!({ "rolling": {} })), "/spec/replicas", json!(-2))).unwrap();
        let found: Vec<String> = lint(&yaml).unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            vec!["document 2: Release web: spec.replicas: should be greater than or equal to 0"]
        );
        assert!(lint("a: [").is_err(), "not YAML");
    }
}
