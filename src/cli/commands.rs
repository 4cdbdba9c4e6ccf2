//! The commands of `kubectl serin`: each reads or writes a Release the way a
//! person would with kubectl, and no other way.
use std::io::Write;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use super::render::{self, Colour};
use crate::api::RELEASE_LABEL;
use crate::api::{Phase, REVISION_LABEL, Release};
use crate::controller::replicaset;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("release {0:?} not found")]
    NotFound(String),
    #[error("release {release:?} has no container {container:?} (it has: {have})")]
    NoContainer {
        release: String,
        container: String,
        have: String,
    },
    #[error("{0}")]
    Usage(String),
    #[error("could not write to the terminal: {0}")]
    Io(#[from] std::io::Error),
}

/// The human controls that go through the status subresource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Promote,
    PromoteFull,
    Abort,
    Retry,
}

impl Control {
    fn field(self) -> &'static str {
        match self {
            Control::Promote => "promote",
            Control::PromoteFull => "promoteFull",
            Control::Abort => "abort",
            Control::Retry => "retry",
        }
    }
}

async fn fetch(api: &Api<Release>, name: &str) -> Result<Release, CliError> {
    api.get_opt(name).await?.ok_or_else(|| CliError::NotFound(name.into()))
}

/// Writes `status.control`, which the controller acts on and clears; GitOps
/// tools never see the spec change.
pub async fn control(api: &Api<Release>, name: &str, control: Control) -> Result<String, CliError> {
    fetch(api, name).await?;
    let patch = json!({ "status": { "control": { control.field(): true } } });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(format!("release {name}: {} requested", control.field()))
}

/// Sets `spec.paused`: pausing is declarative.
pub async fn set_paused(api: &Api<Release>, name: &str, paused: bool) -> Result<String, CliError> {
    fetch(api, name).await?;
    let patch = json!({ "spec": { "paused": paused } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(format!("release {name} {}", if paused { "paused" } else { "resumed" }))
}

/// Replaces one container's image, leaving the rest of the template alone.
pub async fn set_image(api: &Api<Release>, name: &str, assignment: &str) -> Result<String, CliError> {
    let (container, image) = assignment
        .split_once('=')
        .filter(|(c, i)| !c.is_empty() && !i.is_empty())
        .ok_or_else(|| CliError::Usage(format!("{assignment:?} is not CONTAINER=IMAGE")))?;
    edit_spec(api, name, |release| {
        let containers = release
            .spec
            .template
            .spec
            .as_mut()
            .map(|s| &mut s.containers)
            .ok_or_else(|| CliError::Usage(format!("release {name} has no pod spec")))?;
        let have = containers.iter().map(|c| c.name.clone()).collect::<Vec<_>>().join(", ");
        let Some(target) = containers.iter_mut().find(|c| c.name == container) else {
            return Err(CliError::NoContainer {
                release: name.into(),
                container: container.into(),
                have,
            });
        };
        target.image = Some(image.to_string());
        Ok(())
    })
    .await?;
    Ok(format!("release {name}: container {container} image set to {image}"))
}

/// Reads the Release, changes its spec, and replaces it under the
/// resourceVersion read: no one else's edit is lost. The controller's status
/// writes also move the resourceVersion, so a conflict is read again and
/// retried, as kubectl does.
async fn edit_spec(
    api: &Api<Release>,
    name: &str,
    mut change: impl FnMut(&mut Release) -> Result<(), CliError>,
) -> Result<(), CliError> {
    const ATTEMPTS: usize = 5;
    for attempt in 1..=ATTEMPTS {
        let mut release = fetch(api, name).await?;
        change(&mut release)?;
        match api.replace(name, &PostParams::default(), &release).await {
            Err(kube::Error::Api(status)) if status.is_conflict() && attempt < ATTEMPTS => continue,
            other => {
                other?;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The Release's ReplicaSets, as the planner sees them.
async fn revisions(client: &Client, release: &Release) -> Result<Vec<crate::plan::RevisionState>, CliError> {
    let namespace = release.metadata.namespace.clone().unwrap_or_default();
    let name = release.metadata.name.clone().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), &namespace);
    let list = api
        .list(&ListParams::default().labels(&format!("{RELEASE_LABEL}={name}")))
        .await?;
    Ok(list.items.iter().filter_map(replicaset::observe).collect())
}

/// Restores the template of a recorded revision: by number, or the one before the current.
pub async fn undo(client: &Client, api: &Api<Release>, name: &str, to: Option<i64>) -> Result<String, CliError> {
    let release = fetch(api, name).await?;
    if let Some(workload) = &release.spec.workload_ref {
        return Err(CliError::Usage(format!(
            "release {name} takes its template from Deployment {0}: roll that back (kubectl rollout undo deployment/{0}), and serin rolls the Release out",
            workload.name
        )));
    }
    let namespace = release.metadata.namespace.clone().unwrap_or_default();
    let current = release.status.as_ref().and_then(|s| s.current_revision.clone());
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &namespace);
    let list = replica_sets
        .list(&ListParams::default().labels(&format!("{RELEASE_LABEL}={name}")))
        .await?;
    let mut recorded: Vec<(i64, &ReplicaSet)> = list
        .items
        .iter()
        .filter_map(|rs| Some((replicaset::observe(rs)?.number, rs)))
        .collect();
    recorded.sort_by_key(|(number, _)| std::cmp::Reverse(*number));
    let numbers = || {
        recorded
            .iter()
            .map(|(n, _)| n.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let target = match to {
        Some(number) => recorded.iter().find(|(n, _)| *n == number).ok_or_else(|| {
            CliError::Usage(format!(
                "release {name} has no revision {number} (recorded: {})",
                numbers()
            ))
        })?,
        None => recorded
            .iter()
            .find(|(_, rs)| {
                let revision = rs.metadata.labels.as_ref().and_then(|l| l.get(REVISION_LABEL));
                revision.is_some() && revision != current.as_ref()
            })
            .ok_or_else(|| CliError::Usage(format!("release {name} has no earlier revision to go back to")))?,
    };
    let mut template = target
        .1
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .ok_or_else(|| CliError::Usage("the recorded ReplicaSet has no template".into()))?;
    // serin adds its revision label to the pods; the Release's template has none.
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(REVISION_LABEL);
    }
    let number = target.0;
    edit_spec(api, name, |release| {
        release.spec.template = template.clone();
        Ok(())
    })
    .await?;
    Ok(format!("release {name} rolled back to revision {number}"))
}

/// Waits for the rollout's outcome: 0 when Ready, 1 when Degraded, 2 on timeout.
/// Prints a line each time the phase or message changes.
pub async fn status(api: &Api<Release>, name: &str, timeout: Duration, out: &mut impl Write) -> Result<i32, CliError> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let release = fetch(api, name).await?;
        let observed = release.status.as_ref().and_then(|s| s.observed_generation) >= release.metadata.generation;
        let status = release.status.clone().unwrap_or_default();
        let line = format!(
            "{}: {}",
            status.phase.map_or("Pending".to_string(), |p| p.to_string()),
            status.message.clone().unwrap_or_default()
        );
        if line != last {
            writeln!(out, "{line}")?;
            last = line;
        }
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if observed && ready {
            return Ok(0);
        }
        if observed && status.phase == Some(Phase::Degraded) {
            return Ok(1);
        }
        if Instant::now() >= deadline {
            writeln!(out, "timed out after {}s", timeout.as_secs())?;
            return Ok(2);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Reads the terminal's size as (columns, rows), or None when it is not a terminal.
pub type TerminalSize = fn() -> Option<(u16, u16)>;

/// The tree of one Release, once or every second under `watch`.
///
/// Under `watch` on a terminal (`terminal` is Some) the frame is redrawn in
/// place on the alternate screen, sized to the terminal on every frame and
/// again as soon as it is resized; Ctrl-C (or SIGTERM, SIGHUP) returns to the
/// normal screen and leaves the last frame there. Otherwise (a pipe, a file)
/// frames follow one another, a blank line between them, with no control
/// sequences.
pub async fn get(
    client: &Client,
    api: &Api<Release>,
    name: &str,
    watch: bool,
    colour: Colour,
    terminal: Option<TerminalSize>,
    out: &mut impl Write,
) -> Result<(), CliError> {
    if let (true, Some(size)) = (watch, terminal) {
        return watch_screen(client, api, name, colour, size, out).await;
    }
    loop {
        let frame = frame(client, api, name, colour).await?;
        write!(out, "{frame}")?;
        out.flush()?;
        if !watch {
            return Ok(());
        }
        writeln!(out)?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn frame(client: &Client, api: &Api<Release>, name: &str, colour: Colour) -> Result<String, CliError> {
    let release = fetch(api, name).await?;
    let replica_sets = revisions(client, &release).await?;
    Ok(render::tree(&release, &replica_sets, colour, Timestamp::now()))
}

/// `get --watch` on a terminal: the alternate screen, entered and always left.
async fn watch_screen(
    client: &Client,
    api: &Api<Release>,
    name: &str,
    colour: Colour,
    size: TerminalSize,
    out: &mut impl Write,
) -> Result<(), CliError> {
    write!(out, "{}", render::ENTER_SCREEN)?;
    out.flush()?;
    let mut last = None;
    let watched = redraw_until_stopped(client, api, name, colour, size, out, &mut last).await;
    // The terminal is restored even when the watch failed (the Release was deleted, say).
    write!(out, "{}", render::LEAVE_SCREEN)?;
    if let Some(frame) = &last {
        write!(out, "{frame}")?;
    }
    out.flush()?;
    watched
}

/// Fetches and draws a frame a second, and redraws the last one at once on a
/// resize, until a signal asks to stop.
async fn redraw_until_stopped(
    client: &Client,
    api: &Api<Release>,
    name: &str,
    colour: Colour,
    size: TerminalSize,
    out: &mut impl Write,
    last: &mut Option<String>,
) -> Result<(), CliError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut resized = signal(SignalKind::window_change())?;
    let mut terminated = signal(SignalKind::terminate())?;
    let mut hung_up = signal(SignalKind::hangup())?;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut next = tokio::time::Instant::now();
    loop {
        let fetched = async {
            tokio::time::sleep_until(next).await;
            frame(client, api, name, colour).await
        };
        tokio::select! {
            _ = &mut interrupted => return Ok(()),
            _ = terminated.recv() => return Ok(()),
            _ = hung_up.recv() => return Ok(()),
            _ = resized.recv() => {}
            frame = fetched => {
                *last = Some(frame?);
                next = tokio::time::Instant::now() + Duration::from_secs(1);
            }
        }
        if let Some(frame) = last.as_deref() {
            let (cols, rows) = size().unwrap_or((80, 24));
            write!(out, "{}", render::redraw(frame, cols, rows))?;
            out.flush()?;
        }
    }
}

/// The Releases of a namespace, or of all.
pub async fn list(api: &Api<Release>) -> Result<String, CliError> {
    let releases = api.list(&ListParams::default()).await?;
    Ok(render::list(&releases.items))
}
