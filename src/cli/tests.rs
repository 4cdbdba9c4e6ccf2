//! Snapshots of the tree for fixed Releases of each strategy, and of the list.
use std::num::NonZeroU16;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::render::{self, Colour, list, tree};
use crate::api::Release;
use crate::plan::RevisionState;

/// The clock every tree is drawn at, unless a test says otherwise.
fn now() -> Timestamp {
    at("2026-11-28T08:03:00Z")
}

fn at(time: &str) -> Timestamp {
    time.parse().unwrap()
}

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
    insta::assert_snapshot!(tree(&rolling(), &sets, Colour::Never, now()));
}

#[test]
fn a_canary_tree() {
    let sets = [rs(1, "a1", 10, 10), rs(2, "b2", 5, 5)];
    insta::assert_snapshot!(tree(&canary(), &sets, Colour::Never, now()));
}

#[test]
fn a_blue_green_tree() {
    let sets = [rs(1, "a1", 10, 10), rs(2, "b2", 10, 10)];
    insta::assert_snapshot!(tree(&blue_green(), &sets, Colour::Never, now()));
}

#[test]
fn colour_only_marks_the_phase_and_results() {
    let sets = [rs(1, "a1", 10, 10), rs(2, "b2", 5, 5)];
    let coloured = tree(&canary(), &sets, Colour::Always, now());
    assert!(coloured.contains("\x1b[33mPaused\x1b[0m"), "{coloured}");
    assert!(coloured.contains("\x1b[31mfail\x1b[0m"));
    let plain: String = coloured
        .replace("\x1b[33m", "")
        .replace("\x1b[31m", "")
        .replace("\x1b[32m", "")
        .replace("\x1b[0m", "");
    assert_eq!(plain, tree(&canary(), &sets, Colour::Never, now()));
}

#[test]
fn the_list() {
    insta::assert_snapshot!(list(&[rolling(), canary(), blue_green()]));
}

/// The line of `text` that starts with `prefix` (after the indent), if any.
fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().map(str::trim_start).find(|l| l.starts_with(prefix))
}

/// A canary of four steps with `status` merged over one in flight at step `step`.
fn canary_at(step: i32, extra: serde_json::Value) -> Release {
    let mut status = serde_json::json!({
        "observedGeneration": 3, "phase": "Progressing", "strategy": "Canary",
        "conditions": conditions("Progressing", "CanaryStep"),
        "currentRevision": "b2", "stableRevision": "a1", "currentStepIndex": step, "canaryWeight": 20,
        "canary": { "revision": "b2", "stepStartedAt": "2026-11-28T08:00:00Z" },
    });
    status
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    release(
        serde_json::json!({ "canary": { "stableService": "web", "canaryService": "web-canary",
            "steps": [{ "setWeight": 20 }, { "pause": { "duration": "5m" } }, { "analysis": { "templates": [{ "templateName": "t" }] } }, { "pause": {} }],
            "trafficRouting": { "gatewayAPI": { "httpRoutes": [{ "name": "web" }] } } } }),
        status,
    )
}

#[test]
fn the_traffic_line_shows_what_the_route_carries() {
    let cases = [
        // (what, status over the in-flight one, the Traffic part of the Steps line, the list's WEIGHT)
        (
            "in flight at 20%",
            serde_json::json!({}),
            "Traffic: 80% stable, 20% canary",
            "20%",
        ),
        (
            // After promotion the new revision is the stable one; canaryWeight stays 100.
            "promoted and settled",
            serde_json::json!({ "stableRevision": "b2", "currentStepIndex": 4, "canaryWeight": 100, "phase": "Healthy" }),
            "Traffic: 100% stable, 0% canary",
            "0%",
        ),
        (
            "promoting, the route not yet back to stable",
            serde_json::json!({ "currentStepIndex": 4, "canaryWeight": 50 }),
            "Traffic: 50% stable, 50% canary",
            "50%",
        ),
        (
            "rolled back",
            serde_json::json!({ "failedRevision": "b2", "canaryWeight": 0, "phase": "Degraded" }),
            "Traffic: 100% stable, 0% canary",
            "0%",
        ),
        (
            "no status yet",
            serde_json::json!({ "stableRevision": null, "currentRevision": null, "canaryWeight": null }),
            "Traffic: 100% stable, 0% canary",
            "0%",
        ),
    ];
    for (what, extra, traffic, weight) in cases {
        let release = canary_at(0, extra);
        let drawn = tree(&release, &[], Colour::Never, now());
        let steps = line(&drawn, "Steps:").unwrap();
        assert!(steps.ends_with(traffic), "{what}: {steps:?}");
        let listed = list(std::slice::from_ref(&release));
        let row = listed.lines().nth(1).unwrap();
        assert!(row.contains(&format!("   {weight}   ")), "{what}: {row:?}");
    }
}

#[test]
fn the_now_line_counts_down_a_timed_pause() {
    let paused = || serde_json::json!({ "phase": "Paused" });
    let cases = [
        // (what, step, status over the in-flight one, spec.paused, clock, the Now line or None)
        (
            "a setWeight step",
            0,
            serde_json::json!({}),
            false,
            "2026-11-28T08:01:00Z",
            Some("step 1/4, setWeight 20"),
        ),
        (
            "a timed pause, 3m23s to go",
            1,
            serde_json::json!({}),
            false,
            "2026-11-28T08:01:37Z",
            Some("step 2/4, pause 5m: 3m23s left"),
        ),
        (
            "rounded up to the second",
            1,
            serde_json::json!({}),
            false,
            "2026-11-28T08:04:59.2Z",
            Some("step 2/4, pause 5m: 1s left"),
        ),
        (
            "over, the controller yet to move on",
            1,
            serde_json::json!({}),
            false,
            "2026-11-28T08:05:00Z",
            Some("step 2/4, pause 5m: due now"),
        ),
        (
            "a clock behind the controller's",
            1,
            serde_json::json!({}),
            false,
            "2026-11-28T07:59:00Z",
            Some("step 2/4, pause 5m: 5m00s left"),
        ),
        (
            "held by spec.paused",
            1,
            paused(),
            true,
            "2026-11-28T08:01:37Z",
            Some("step 2/4, pause 5m: held by spec.paused; the pause starts over when resumed"),
        ),
        (
            "the step's clock is an older revision's",
            1,
            serde_json::json!({ "canary": { "revision": "a1", "stepStartedAt": "2026-11-28T07:00:00Z" } }),
            false,
            "2026-11-28T08:01:37Z",
            Some("step 2/4, pause 5m: starting"),
        ),
        (
            "an analysis step",
            2,
            serde_json::json!({}),
            false,
            "2026-11-28T08:01:00Z",
            Some("step 3/4, analysis"),
        ),
        (
            "a pause for a person",
            3,
            paused(),
            false,
            "2026-11-28T08:01:00Z",
            Some("step 4/4, pause: paused until promoted (kubectl serin promote web)"),
        ),
        (
            "promoting",
            4,
            serde_json::json!({}),
            false,
            "2026-11-28T08:01:00Z",
            Some("promoting: the canary becomes stable"),
        ),
        (
            "settled",
            4,
            serde_json::json!({ "stableRevision": "b2", "phase": "Healthy" }),
            false,
            "2026-11-28T08:01:00Z",
            None,
        ),
        (
            "rolled back",
            1,
            serde_json::json!({ "failedRevision": "b2", "phase": "Degraded" }),
            false,
            "2026-11-28T08:01:00Z",
            None,
        ),
    ];
    for (what, step, extra, held, clock, want) in cases {
        let mut release = canary_at(step, extra);
        release.spec.paused = held;
        let drawn = tree(&release, &[], Colour::Never, at(clock));
        let got = line(&drawn, "Now:").map(|l| l.trim_start_matches("Now:").trim_start());
        assert_eq!(got, want, "{what}:\n{drawn}");
    }
}

#[test]
fn the_promotion_line_counts_down_to_auto_promotion() {
    let bg = |strategy: serde_json::Value, state: serde_json::Value| {
        let mut spec = serde_json::json!({ "activeService": "web", "previewService": "web-preview" });
        spec.as_object_mut()
            .unwrap()
            .extend(strategy.as_object().unwrap().clone());
        let mut blue_green = serde_json::json!({ "activeRevision": "a1", "previewRevision": "b2",
            "previewReadyAt": "2026-11-28T08:00:00Z" });
        blue_green
            .as_object_mut()
            .unwrap()
            .extend(state.as_object().unwrap().clone());
        release(
            serde_json::json!({ "blueGreen": spec }),
            serde_json::json!({
                "observedGeneration": 3, "phase": "Progressing", "strategy": "BlueGreen",
                "currentRevision": "b2", "stableRevision": "a1", "blueGreen": blue_green,
            }),
        )
    };
    let auto = || serde_json::json!({ "autoPromotionEnabled": true, "autoPromotionSeconds": 90 });
    let gated = || {
        serde_json::json!({ "autoPromotionEnabled": true, "autoPromotionSeconds": 90,
        "prePromotionAnalysis": { "templates": [{ "templateName": "smoke" }] } })
    };
    let analysis = |phase: &str| serde_json::json!({ "prePromotionAnalysis": { "revision": "b2", "phase": phase, "startedAt": "2026-11-28T08:00:00Z" } });
    let cases = [
        // (what, strategy, status.blueGreen over the awaiting one, clock, the Promotion line or None)
        (
            "auto, 1m23s to go",
            auto(),
            serde_json::json!({}),
            "2026-11-28T08:00:07Z",
            Some("automatic, 1m23s left"),
        ),
        (
            "auto, due",
            auto(),
            serde_json::json!({}),
            "2026-11-28T08:01:30Z",
            Some("automatic, due now"),
        ),
        (
            "auto, the preview not yet available",
            auto(),
            serde_json::json!({ "previewReadyAt": null }),
            "2026-11-28T08:00:07Z",
            Some("automatic, 1m30s after the preview is available"),
        ),
        (
            "auto, the pre-promotion analysis running",
            gated(),
            analysis("Running"),
            "2026-11-28T08:00:07Z",
            Some("automatic, once the pre-promotion analysis passes"),
        ),
        (
            "auto, the analysis passed",
            gated(),
            analysis("Successful"),
            "2026-11-28T08:00:07Z",
            Some("automatic, 1m23s left"),
        ),
        (
            "by a person",
            serde_json::json!({ "autoPromotionEnabled": false }),
            serde_json::json!({}),
            "2026-11-28T08:00:07Z",
            Some("waiting for kubectl serin promote web"),
        ),
        (
            "promoting",
            auto(),
            serde_json::json!({ "promoting": true }),
            "2026-11-28T08:01:31Z",
            Some("under way: the preview scales to full size, then takes the active Service"),
        ),
        (
            "switched",
            auto(),
            serde_json::json!({ "switchedAt": "2026-11-28T08:01:32Z", "activeRevision": "b2" }),
            "2026-11-28T08:02:00Z",
            None,
        ),
    ];
    for (what, strategy, state, clock, want) in cases {
        let drawn = tree(&bg(strategy, state), &[], Colour::Never, at(clock));
        let got = line(&drawn, "Promotion:").map(|l| l.trim_start_matches("Promotion:").trim_start());
        assert_eq!(got, want, "{what}:\n{drawn}");
    }
}

#[test]
fn times_are_whole_seconds_rounded_up() {
    for (seconds, want) in [
        (0.0, "0s"),
        (0.2, "1s"),
        (45.0, "45s"),
        (65.0, "1m05s"),
        (3600.0, "1h00m00s"),
        (7205.5, "2h00m06s"),
    ] {
        assert_eq!(render::clock(Duration::from_secs_f64(seconds)), want, "{seconds}");
    }
}

/// A vt100 terminal of `cols` × `rows`, on its alternate screen as under watch.
fn terminal(cols: u16, rows: u16) -> vt100::Parser {
    let mut parser = vt100::Parser::new(NonZeroU16::new(rows).unwrap(), NonZeroU16::new(cols).unwrap(), 0);
    parser.process(render::ENTER_SCREEN.as_bytes());
    parser
}

/// The terminal's rows, trailing blanks trimmed, trailing empty rows dropped.
fn rows(parser: &vt100::Parser) -> Vec<String> {
    let (_, cols) = parser.screen().size();
    let mut rows: Vec<String> = parser
        .screen()
        .rows(0, cols.get())
        .map(|r| r.trim_end().to_string())
        .collect();
    while rows.last().is_some_and(String::is_empty) {
        rows.pop();
    }
    rows
}

/// What the terminal shows after `frame` is printed plainly on a cleared screen
/// of that width: the rows the redraw must produce.
fn printed(frame: &str, cols: u16, rows_: u16) -> Vec<String> {
    let mut parser = vt100::Parser::new(NonZeroU16::new(rows_).unwrap(), NonZeroU16::new(cols).unwrap(), 0);
    parser.process(frame.trim_end_matches('\n').replace('\n', "\r\n").as_bytes());
    rows(&parser)
}

#[test]
fn a_redraw_leaves_exactly_the_new_frame_at_any_width_and_after_a_resize() {
    let sets = [rs(1, "a1", 10, 10), rs(2, "b2", 5, 5)];
    let wide = tree(&canary(), &sets, Colour::Always, now());
    let short = "Release web (namespace shop)\n  Phase: Healthy\n";
    let cjk = "名前が長いリリース web-ウェブ-サービス (namespace 店)\n  └── 幅の広い文字 ✓\n";
    let mut parser = terminal(80, 40);
    for (cols, frame) in [
        (80, wide.as_str()),
        (80, short),
        (140, wide.as_str()),
        (40, wide.as_str()),
        (21, cjk),
        (120, short),
        (33, wide.as_str()),
        (80, cjk),
    ] {
        parser.set_size(NonZeroU16::new(40).unwrap(), NonZeroU16::new(cols).unwrap());
        parser.process(render::redraw(frame, cols, 40).as_bytes());
        assert_eq!(
            rows(&parser),
            printed(frame, cols, 40),
            "{cols} columns, frame {frame:?}"
        );
        if frame == wide {
            assert_eq!(
                parser
                    .screen()
                    .contents()
                    .matches("Release web (namespace shop)")
                    .count(),
                1
            );
        }
    }
}

#[test]
fn a_frame_taller_than_the_terminal_is_cut_and_says_so() {
    let sets = [rs(1, "a1", 10, 10), rs(2, "b2", 5, 5)];
    let frame = tree(&canary(), &sets, Colour::Never, now());
    let lines = frame.lines().count();
    let mut parser = terminal(80, 8);
    parser.process(render::redraw(&frame, 80, 8).as_bytes());
    let shown = rows(&parser);
    assert_eq!(shown.len(), 8, "{shown:#?}");
    assert_eq!(shown[0], "Release web (namespace shop)", "the top stays: {shown:#?}");
    // Seven rows of whole lines: the header, strategy, the message (two rows), steps, now, pods.
    assert_eq!(shown[..7], printed(&frame, 80, 40)[..7]);
    assert_eq!(
        shown[7],
        format!("… {} more lines: make the terminal taller", lines - 6)
    );
}

proptest::proptest! {
    /// Any frames, any widths in turn: the screen shows the last frame as a
    /// terminal lays it out when printed on a clear screen, and nothing of
    /// the ones before. (At most 12 lines of 200 columns, 10 or more columns
    /// wide: 240 rows, so the 250-row terminal never cuts the frame.)
    #[test]
    fn redraws_never_leave_an_older_frame_behind(
        frames in proptest::collection::vec(
            proptest::collection::vec("[a-z ├──└│名✓é]{0,200}", 1..12), 1..6),
        widths in proptest::collection::vec(10u16..160, 1..6),
    ) {
        const ROWS: u16 = 250;
        let mut parser = terminal(80, ROWS);
        for (lines, cols) in frames.iter().zip(widths.iter().cycle()) {
            let frame = lines.join("\n") + "\n";
            parser.set_size(NonZeroU16::new(ROWS).unwrap(), NonZeroU16::new(*cols).unwrap());
            parser.process(render::redraw(&frame, *cols, ROWS).as_bytes());
            proptest::prop_assert_eq!(rows(&parser), printed(&frame, *cols, ROWS));
        }
    }
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
                "set exactly one of spec.template and spec.workloadRef",
            ),
            (
                with(rolling(), "/spec/replicas", json!("three")),
                "spec.replicas: must be of type integer",
            ),
            // Issue 4: analysis.
            (
                template(json!({ "name": "errors", "provider": {} })),
                "exactly one of prometheus, web, job or judge",
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
                "exactly one of prometheus, web, job or judge",
            ),
            // Issue 5: canaries.
            (
                canary(json!({ "steps": [{ "setWeight": 10, "pause": {} }] })),
                "exactly one of setWeight, pause, analysis, setCanaryScale, setHeaderRoute or setMirrorRoute",
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
                "sets exactly one of gatewayAPI, nginx, istio or generic",
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

#[test]
fn quoted_control_characters_cannot_move_the_cursor() {
    let mut release = rolling();
    let status = release.status.as_mut().unwrap();
    status.message = Some("bad\u{1b}[2J\rvalue\tend".into());
    let metric = &mut status.analysis.as_mut().unwrap().metrics[0];
    metric.measurements.last_mut().unwrap().value = Some("1\u{1b}[H".into());
    let text = tree(&release, &[], Colour::Never, now());
    assert!(!text.contains(['\u{1b}', '\r', '\t']), "{text}");
    assert!(text.contains(r"bad\u{1b}[2J\rvalue\tend"), "{text}");
}

#[test]
fn a_judge_shows_its_score_and_a_line_per_metric_within_80_columns() {
    let mut release = rolling();
    let status = release.status.as_mut().unwrap();
    let metric = &mut status.analysis.as_mut().unwrap().metrics[1];
    metric.name = "judge".into();
    metric.judge = Some(
        serde_json::from_value(serde_json::json!({
            "score": 50.0, "verdict": "Fail", "metrics": [
                { "name": "errors", "test": "sequential", "classification": "High", "failed": true,
                  "ratio": 1.503, "interval": [1.1812, 1.9071], "samples": 3 },
                { "name": "latency-p99", "test": "rank", "classification": "Pass",
                  "ratio": 1.0, "shift": 0.0, "interval": [-0.03, 0.03], "pValue": 1.0, "samples": 4 },
            ]
        }))
        .unwrap(),
    );
    let text = tree(&release, &[], Colour::Never, now());
    assert!(text.contains("└── judge: fail Fail, score 50  (2 measured"), "{text}");
    assert!(
        text.contains("    ├── errors       High   rate ratio 1.503 [1.181, 1.907]\n"),
        "{text}"
    );
    assert!(
        text.contains("    └── latency-p99  Pass   ratio 1 shift 0 [-0.03, 0.03] p 1\n"),
        "{text}"
    );
    // The metric line above is as every metric's; the judged lines below it fit.
    let judge_lines = text.lines().skip_while(|l| !l.contains("judge:")).skip(1).take(2);
    for line in judge_lines {
        assert!(
            unicode_width::UnicodeWidthStr::width(line) <= 80,
            "{line:?} is over 80 columns"
        );
    }
}

#[test]
fn hooks_show_under_the_revisions() {
    let mut release = rolling();
    let status = release.status.as_mut().unwrap();
    let mut hook = status.analysis.clone().unwrap();
    hook.metrics.truncate(1);
    hook.metrics[0].name = "migrate".into();
    status.hooks = Some(crate::api::HooksStatus {
        pre_rollout: Some(hook),
        post_rollout: None,
    });
    let text = tree(&release, &[], Colour::Never, now());
    let at = text.find("preRollout hook").expect("a preRollout line");
    assert!(text[at..].contains("migrate"), "{text}");
    assert!(!text.contains("postRollout hook"), "{text}");
}

/// The first YAML block of each guide: what a reader copies lints clean.
#[test]
fn the_guides_examples_lint_clean() {
    let guides = [
        ("docs/judge.md", include_str!("../../docs/judge.md")),
        ("docs/hooks.md", include_str!("../../docs/hooks.md")),
        (
            "docs/config-snapshots.md",
            include_str!("../../docs/config-snapshots.md"),
        ),
        ("docs/workload-ref.md", include_str!("../../docs/workload-ref.md")),
        ("docs/traffic.md", include_str!("../../docs/traffic.md")),
    ];
    for (path, guide) in guides {
        let start = guide.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
        let end = start + guide[start..].find("```").expect("the block ends");
        let problems = crate::cli::lint::lint(&guide[start..end]).expect("YAML");
        assert_eq!(problems, Vec::new(), "{path}'s example");
    }
}
