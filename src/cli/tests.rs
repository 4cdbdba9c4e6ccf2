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
