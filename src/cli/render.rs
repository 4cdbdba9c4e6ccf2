//! What `kubectl serin` shows: a Release as a tree, and Releases as a table.
//! Pure: objects and the time in, text out, so snapshot tests can pin every
//! layout; and the control sequences that redraw a frame on a terminal.
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use unicode_width::UnicodeWidthChar;

use crate::api::{AnalysisPhase, AnalysisStatus, JudgeResult, MeasurementPhase, Phase, Release, ReleaseStatus};
use crate::plan::RevisionState;

/// ANSI colours, or none when the output is not a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colour {
    Always,
    Never,
}

impl Colour {
    fn paint(self, code: &str, text: &str) -> String {
        match self {
            Colour::Always => format!("\x1b[{code}m{text}\x1b[0m"),
            Colour::Never => text.to_string(),
        }
    }

    fn phase(self, phase: Option<Phase>) -> String {
        let text = phase.map_or("Unknown".to_string(), |p| p.to_string());
        let code = match phase {
            Some(Phase::Healthy) => "32",
            Some(Phase::Degraded) => "31",
            Some(Phase::Paused) => "33",
            _ => "36",
        };
        self.paint(code, &text)
    }
}

/// `text` with control characters (ESC, CR, tabs, ...) shown escaped: a message or
/// a measured value quoted from outside must not move the cursor or recolour.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// The Release, its revisions with their pods, traffic, step and analyses.
/// `now` counts down timed pauses and auto-promotion.
pub fn tree(release: &Release, replica_sets: &[RevisionState], colour: Colour, now: Timestamp) -> String {
    let name = release.metadata.name.as_deref().unwrap_or_default();
    let namespace = release.metadata.namespace.as_deref().unwrap_or("default");
    let status = release.status.clone().unwrap_or_default();
    let strategy = &release.spec.strategy;
    let reason = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .map(|c| c.reason.clone())
        .unwrap_or_default();
    let mut out = format!("Release {name} (namespace {namespace})\n");
    out += &format!(
        "  Strategy: {}   Phase: {} ({reason})\n",
        strategy.name(),
        colour.phase(status.phase)
    );
    if let Some(message) = &status.message {
        out += &format!("  Message:  {}\n", printable(message));
    }
    if let Some(canary) = &strategy.canary {
        let steps = canary.steps.len();
        let step = status.current_step_index.unwrap_or(0);
        let weight = canary_share(&status);
        out += &format!(
            "  Steps:    {step} of {steps} done   Traffic: {}% stable, {weight}% canary\n",
            100 - weight
        );
        if let Some(now_line) = canary_now(release, canary, now) {
            out += &format!("  Now:      {now_line}\n");
        }
    }
    if let Some(blue_green) = &status.blue_green {
        let active = blue_green.active_revision.as_deref().unwrap_or("none");
        let preview = blue_green.preview_revision.as_deref().unwrap_or("none");
        out += &format!("  Active:   {active}   Preview: {preview}\n");
    }
    if let Some(promotion) = blue_green_promotion(release, now) {
        out += &format!("  Promotion: {promotion}\n");
    }
    out += &format!(
        "  Pods:     {} desired, {} current, {} updated, {} available\n",
        release.spec.replicas, status.replicas, status.updated_replicas, status.available_replicas
    );

    let mut revisions: Vec<&RevisionState> = replica_sets.iter().collect();
    revisions.sort_by_key(|rs| std::cmp::Reverse(rs.number));
    out += "  Revisions:\n";
    for (index, rs) in revisions.iter().enumerate() {
        let branch = if index + 1 == revisions.len() {
            "└──"
        } else {
            "├──"
        };
        let roles = roles(&status, rs, strategy.canary.is_some(), strategy.blue_green.is_some());
        out += &format!(
            "  {branch} #{} {} {:<16} {}  desired {} ready {} available {}\n",
            rs.number, rs.revision, roles, rs.name, rs.replicas, rs.ready, rs.available
        );
    }
    let analyses = [
        ("Analysis", status.analysis.as_ref()),
        (
            "Step analysis",
            status.canary.as_ref().and_then(|c| c.step_analysis.as_ref()),
        ),
        (
            "Pre-promotion analysis",
            status
                .blue_green
                .as_ref()
                .and_then(|b| b.pre_promotion_analysis.as_ref()),
        ),
        (
            "Post-promotion analysis",
            status
                .blue_green
                .as_ref()
                .and_then(|b| b.post_promotion_analysis.as_ref()),
        ),
        (
            "preRollout hook",
            status.hooks.as_ref().and_then(|h| h.pre_rollout.as_ref()),
        ),
        (
            "postRollout hook",
            status.hooks.as_ref().and_then(|h| h.post_rollout.as_ref()),
        ),
    ];
    for (title, analysis) in analyses {
        if let Some(analysis) = analysis {
            out += &analysis_lines(title, analysis, colour);
        }
    }
    out
}

/// The percent of requests the canary revision takes, as the route carries it.
/// Once promoted, status.canaryWeight stays at 100 (the new revision takes
/// everything), but that revision is then the stable one: the route sends all
/// to the stable Service and none to the canary.
fn canary_share(status: &ReleaseStatus) -> i32 {
    if settled(status) {
        0
    } else {
        status.canary_weight.unwrap_or(0).clamp(0, 100)
    }
}

/// The current revision is the stable one: no rollout in flight.
fn settled(status: &ReleaseStatus) -> bool {
    status.stable_revision.is_some() && status.stable_revision == status.current_revision
}

/// A rollout of the current revision is under way: not settled, not rolled back.
fn in_flight(status: &ReleaseStatus) -> bool {
    status.current_revision.is_some()
        && status.stable_revision.is_some()
        && !settled(status)
        && status.failed_revision != status.current_revision
        && status.phase != Some(Phase::Degraded)
}

/// The canary step under way, with the time a timed pause has left.
fn canary_now(release: &Release, canary: &crate::api::CanaryStrategy, now: Timestamp) -> Option<String> {
    let status = release.status.as_ref()?;
    if !in_flight(status) {
        return None;
    }
    let name = release.metadata.name.as_deref().unwrap_or_default();
    let steps = canary.steps.len();
    let index = usize::try_from(status.current_step_index.unwrap_or(0)).unwrap_or(0);
    let Some(step) = canary.steps.get(index) else {
        return Some("promoting: the canary becomes stable".into());
    };
    let at = format!("step {}/{steps}", index + 1);
    let held = release.spec.paused;
    if let Some(pause) = &step.pause {
        let Some(text) = pause.duration.as_deref() else {
            let until = if held {
                "held by spec.paused".to_string()
            } else {
                format!("paused until promoted (kubectl serin promote {name})")
            };
            return Some(format!("{at}, pause: {until}"));
        };
        if held {
            return Some(format!(
                "{at}, pause {text}: held by spec.paused; the pause starts over when resumed"
            ));
        }
        let started = status
            .canary
            .as_ref()
            .filter(|c| status.current_revision.as_deref() == Some(c.revision.as_str()))
            .and_then(|c| c.step_started_at.as_ref());
        let left = match (crate::api::validation::duration(text), started) {
            (Ok(wait), Some(started)) => time_left(wait, started.0, now),
            _ => "starting".to_string(),
        };
        return Some(format!("{at}, pause {text}: {left}"));
    }
    let what = if let Some(weight) = step.set_weight {
        format!("setWeight {weight}")
    } else if step.analysis.is_some() {
        "analysis".to_string()
    } else {
        "setCanaryScale".to_string()
    };
    let held = if held { ": held by spec.paused" } else { "" };
    Some(format!("{at}, {what}{held}"))
}

/// When the blue-green preview is switched to, with the time auto-promotion has left.
fn blue_green_promotion(release: &Release, now: Timestamp) -> Option<String> {
    let strategy = release.spec.strategy.blue_green.as_ref()?;
    let status = release.status.as_ref()?;
    let state = status.blue_green.as_ref()?;
    if !in_flight(status) || state.preview_revision.is_none() || state.switched_at.is_some() {
        return None;
    }
    let name = release.metadata.name.as_deref().unwrap_or_default();
    let wait = Duration::from_secs(u64::try_from(strategy.auto_promotion_seconds.unwrap_or(0)).unwrap_or(0));
    let auto = strategy.auto_promotion_enabled;
    let by_person = format!("waiting for kubectl serin promote {name}");
    let line = if state.promoting {
        "under way: the preview scales to full size, then takes the active Service".to_string()
    } else if release.spec.paused {
        let restart = if auto {
            "; the auto-promotion clock starts over when resumed"
        } else {
            ""
        };
        format!("held by spec.paused{restart}")
    } else if state.preview_ready_at.is_none() {
        if auto {
            format!("automatic, {} after the preview is available", clock(wait))
        } else {
            format!("once the preview is available, {by_person}")
        }
    } else if strategy.pre_promotion_analysis.is_some()
        && state.pre_promotion_analysis.as_ref().map(|a| a.phase) != Some(AnalysisPhase::Successful)
    {
        let then = if auto { "automatic" } else { "by a person" };
        format!("{then}, once the pre-promotion analysis passes")
    } else if let (true, Some(ready)) = (auto, &state.preview_ready_at) {
        format!("automatic, {}", time_left(wait, ready.0, now))
    } else {
        by_person
    };
    Some(line)
}

/// "1m23s left" of `wait` counted from `since`; "due now" once it has passed.
fn time_left(wait: Duration, since: Timestamp, now: Timestamp) -> String {
    let elapsed = Duration::try_from(now.duration_since(since)).unwrap_or_default();
    let left = wait.saturating_sub(elapsed);
    if left.is_zero() {
        "due now".to_string()
    } else {
        format!("{} left", clock(left))
    }
}

/// 45s, 1m05s, 2h00m05s: whole seconds, rounded up.
pub(super) fn clock(duration: Duration) -> String {
    let total = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    if hours > 0 {
        format!("{hours}h{minutes:02}m{seconds:02}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds:02}s")
    } else {
        format!("{seconds}s")
    }
}

/// What a revision is to the Release: stable, canary, active, preview, failed.
fn roles(status: &ReleaseStatus, rs: &RevisionState, canary: bool, blue_green: bool) -> String {
    let mut roles = Vec::new();
    let is = |revision: &Option<String>| revision.as_deref() == Some(rs.revision.as_str());
    if is(&status.stable_revision) {
        roles.push("stable");
    }
    if is(&status.current_revision) && !is(&status.stable_revision) {
        roles.push(if canary {
            "canary"
        } else if blue_green {
            "preview"
        } else {
            "new"
        });
    }
    if let Some(blue_green) = &status.blue_green
        && is(&blue_green.active_revision)
    {
        roles.push("active");
    }
    if is(&status.failed_revision) {
        roles.push("failed");
    }
    if roles.is_empty() {
        roles.push("old");
    }
    format!("({})", roles.join(","))
}

fn analysis_lines(title: &str, analysis: &AnalysisStatus, colour: Colour) -> String {
    let mut out = format!("  {title} of {}: {:?}\n", analysis.revision, analysis.phase);
    for (index, metric) in analysis.metrics.iter().enumerate() {
        let branch = if index + 1 == analysis.metrics.len() {
            "└──"
        } else {
            "├──"
        };
        let last = metric.measurements.last();
        let value = match &metric.judge {
            // Its metrics get a line each, below.
            Some(judge) => format!("{}, score {}", printable(&judge.verdict), judge.score).into(),
            None => printable(last.and_then(|m| m.value.as_deref()).unwrap_or("-")),
        };
        let mark = match last.map(|m| m.phase) {
            Some(MeasurementPhase::Successful) => colour.paint("32", "pass"),
            Some(MeasurementPhase::Failed) => colour.paint("31", "fail"),
            Some(MeasurementPhase::Inconclusive) => colour.paint("33", "inconclusive"),
            Some(MeasurementPhase::Error) => colour.paint("31", "error"),
            None => "pending".to_string(),
        };
        out += &format!(
            "  {branch} {}: {mark} {value}  ({} measured: {} passed, {} failed, {} inconclusive, {} errors)\n",
            metric.name, metric.count, metric.successful, metric.failed, metric.inconclusive, metric.error
        );
        if let Some(judge) = &metric.judge {
            let indent = if index + 1 == analysis.metrics.len() {
                "    "
            } else {
                "│   "
            };
            out += &judged_lines(indent, judge, colour);
        }
    }
    out
}

/// A judge's metrics, a line each: classification, effect, interval and p-value.
fn judged_lines(indent: &str, judge: &JudgeResult, colour: Colour) -> String {
    let width = judge.metrics.iter().map(|m| m.name.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (index, m) in judge.metrics.iter().enumerate() {
        let branch = if index + 1 == judge.metrics.len() {
            "└──"
        } else {
            "├──"
        };
        let class = format!("{:<6}", m.classification);
        let class = match (m.failed, m.classification.as_str()) {
            (true, _) => colour.paint("31", &class),
            (false, "NoData") => colour.paint("33", &class),
            _ => colour.paint("32", &class),
        };
        let mut line = format!("  {indent}{branch} {:<width$}  {class}", printable(&m.name));
        let short = |v: f64| {
            format!("{v:.3}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string()
        };
        if let Some(ratio) = m.ratio {
            let what = if m.test == "sequential" { "rate ratio" } else { "ratio" };
            line += &format!(" {what} {}", short(ratio));
        }
        if let Some(shift) = m.shift {
            line += &format!(" shift {}", short(shift));
        }
        if let Some([low, high]) = m.interval.as_deref() {
            line += &format!(" [{}, {}]", short(*low), short(*high));
        }
        if let Some(p) = m.p_value {
            line += &format!(" p {}", short(p));
        }
        out += &line;
        out += "\n";
    }
    out
}

/// One line per Release: name, strategy, phase, step and weight.
pub fn list(releases: &[Release]) -> String {
    let mut rows = vec![[
        "NAMESPACE".to_string(),
        "NAME".into(),
        "STRATEGY".into(),
        "PHASE".into(),
        "STEP".into(),
        "WEIGHT".into(),
        "AVAILABLE".into(),
    ]];
    for release in releases {
        let status = release.status.clone().unwrap_or_default();
        let canary = release.spec.strategy.canary.as_ref();
        let step = canary.map_or("-".to_string(), |c| {
            format!("{}/{}", status.current_step_index.unwrap_or(0), c.steps.len())
        });
        let weight = canary.map_or("-".to_string(), |_| format!("{}%", canary_share(&status)));
        rows.push([
            release.metadata.namespace.clone().unwrap_or_default(),
            release.metadata.name.clone().unwrap_or_default(),
            release.spec.strategy.name().to_string(),
            status.phase.map_or("-".to_string(), |p| p.to_string()),
            step,
            weight,
            format!("{}/{}", status.available_replicas, release.spec.replicas),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            cells.join("   ").trim_end().to_string() + "\n"
        })
        .collect()
}

/// Enters the alternate screen with the cursor hidden, as `watch` and `top` do:
/// the redraws never touch the shell's scrollback.
pub const ENTER_SCREEN: &str = "\x1b[?1049h\x1b[?25l";
/// Shows the cursor and returns to the normal screen, as it was.
pub const LEAVE_SCREEN: &str = "\x1b[?25h\x1b[?1049l";

/// The bytes that replace what a terminal of `cols` × `rows` shows with
/// `frame`. Each line is cut into rows of at most `cols` columns (by display
/// width, wide characters included), and each row is written at its own
/// position after erasing it: nothing depends on the terminal's line wrapping
/// or on what it showed before, so a resize or an older, taller frame leaves
/// nothing behind. A frame taller than the screen is cut, with a last row
/// saying how much is hidden. The update is one synchronized output block
/// (ignored by terminals without it).
pub fn redraw(frame: &str, cols: u16, rows: u16) -> String {
    let cols = if cols == 0 { 80 } else { usize::from(cols) };
    let rows = if rows == 0 { 24 } else { usize::from(rows) };
    let lines: Vec<Vec<String>> = frame.lines().map(|line| wrap(line, cols)).collect();
    let total: usize = lines.iter().map(Vec::len).sum();
    let mut screen: Vec<String> = lines.iter().flatten().cloned().collect();
    if total > rows {
        // Whole lines only, and one row left for the note.
        let mut shown = Vec::new();
        let mut hidden = 0;
        for line in &lines {
            if hidden == 0 && shown.len() + line.len() < rows {
                shown.extend(line.iter().cloned());
            } else {
                hidden += 1;
            }
        }
        let note = format!("… {hidden} more lines: make the terminal taller");
        shown.extend(wrap(&note, cols).into_iter().take(1));
        screen = shown;
    }
    let mut out = String::from("\x1b[?2026h");
    for (row, text) in screen.iter().enumerate() {
        out += &format!("\x1b[{};1H\x1b[2K{text}", row + 1);
    }
    if screen.len() < rows {
        // Below the frame: erase what an older frame left there.
        out += &format!("\x1b[{};1H\x1b[J", screen.len() + 1);
    }
    out += "\x1b[?2026l";
    out
}

/// `line` cut into rows of at most `cols` display columns; colour sequences
/// take no room. An empty line is one empty row.
pub(super) fn wrap(line: &str, cols: usize) -> Vec<String> {
    let mut rows = Vec::new();
    let mut row = String::new();
    let mut used = 0;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // A CSI sequence: ESC [ parameters, then one final byte in @..~.
            row.push(c);
            if chars.peek() == Some(&'[') {
                row.extend(chars.next());
                for p in chars.by_ref() {
                    row.push(p);
                    if ('@'..='~').contains(&p) {
                        break;
                    }
                }
            }
            continue;
        }
        let width = c.width().unwrap_or(0);
        if used + width > cols && used > 0 {
            rows.push(std::mem::take(&mut row));
            used = 0;
        }
        row.push(c);
        used += width;
    }
    rows.push(row);
    rows
}
