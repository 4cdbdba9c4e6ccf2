//! What `kubectl serin` shows: a Release as a tree, and Releases as a table.
//! Pure: objects in, text out, so snapshot tests can pin every layout.
use crate::api::{AnalysisStatus, MeasurementPhase, Phase, Release};
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

/// The Release, its revisions with their pods, traffic, step and analyses.
pub fn tree(release: &Release, replica_sets: &[RevisionState], colour: Colour) -> String {
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
        out += &format!("  Message:  {message}\n");
    }
    if let Some(canary) = &strategy.canary {
        let steps = canary.steps.len();
        let step = status.current_step_index.unwrap_or(0);
        let weight = status.canary_weight.unwrap_or(0);
        out += &format!(
            "  Steps:    {step} of {steps} done   Traffic: {}% stable, {weight}% canary\n",
            100 - weight
        );
    }
    if let Some(blue_green) = &status.blue_green {
        let active = blue_green.active_revision.as_deref().unwrap_or("none");
        let preview = blue_green.preview_revision.as_deref().unwrap_or("none");
        out += &format!("  Active:   {active}   Preview: {preview}\n");
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
    ];
    for (title, analysis) in analyses {
        if let Some(analysis) = analysis {
            out += &analysis_lines(title, analysis, colour);
        }
    }
    out
}

/// What a revision is to the Release: stable, canary, active, preview, failed.
fn roles(status: &crate::api::ReleaseStatus, rs: &RevisionState, canary: bool, blue_green: bool) -> String {
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
        let value = last.and_then(|m| m.value.as_deref()).unwrap_or("-");
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
        let weight = canary.map_or("-".to_string(), |_| format!("{}%", status.canary_weight.unwrap_or(0)));
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
