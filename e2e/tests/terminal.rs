//! `kubectl serin get release --watch` in a real pseudo-terminal, read back
//! through a terminal emulator (vt100): however wide the terminal, and after
//! it is resized, the screen shows exactly one frame.
use std::num::NonZeroU16;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::PostParams;
use serde_json::json;
use serin::api::Release;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::operator::{releases, setup, wait_condition};
use crate::support::rollout::LIMIT;
use crate::support::{from_json, poll_until};

/// 55 characters: the header's start fits 80 columns; the header, the paused
/// message and the revision lines (ReplicaSet names are the Release's plus the
/// revision, about 130 columns) do not.
const NAME: &str = "checkout-frontend-with-a-rather-long-name-for-wrapping1";
const ROWS: u16 = 40;

fn release() -> Release {
    from_json(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
        "metadata": { "name": NAME },
        "spec": {
            "replicas": 4,
            "selector": { "matchLabels": { "app": "checkout" } },
            "template": {
                "metadata": { "labels": { "app": "checkout" } },
                "spec": { "containers": [{ "name": "web", "image": "example.com/web:1" }] }
            },
            "strategy": { "canary": { "steps": [{ "setWeight": 25 }, { "pause": {} }] } }
        }
    }))
}

fn size(cols: u16) -> (NonZeroU16, NonZeroU16) {
    let rows = NonZeroU16::new(ROWS).expect("rows > 0");
    (rows, NonZeroU16::new(cols).expect("cols > 0"))
}

/// `kubectl serin get release NAME --watch` on a pty, every byte it writes fed
/// to a terminal emulator of the pty's size.
struct Watch {
    child: tokio::process::Child,
    pty: pty_process::OwnedWritePty,
    screen: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Watch {
    fn start(namespace: &str, cols: u16) -> Self {
        Self::start_on(namespace, cols, "xterm-256color")
    }

    fn start_on(namespace: &str, cols: u16, term: &str) -> Self {
        let (pty, pts) = pty_process::open().expect("open a pty");
        pty.resize(pty_process::Size::new(ROWS, cols)).expect("size the pty");
        let child = pty_process::Command::new(env!("CARGO_BIN_EXE_kubectl-serin"))
            .args(["-n", namespace, "get", "release", NAME, "--watch"])
            .env("TERM", term)
            .kill_on_drop(true)
            .spawn(pts)
            .expect("start kubectl-serin on the pty");
        let (rows, columns) = size(cols);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(rows, columns, 0)));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let (mut read, pty) = pty.into_split();
        let (parser, bytes) = (screen.clone(), raw.clone());
        let reader = tokio::spawn(async move {
            let mut chunk = [0u8; 8192];
            // EIO once the child has exited and closed its side.
            while let Ok(n) = read.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                parser.lock().unwrap().process(&chunk[..n]);
                bytes.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Self {
            child,
            pty,
            screen,
            raw,
            reader,
        }
    }

    /// How many frames the command has drawn so far: each starts with the header.
    fn drawn(&self) -> usize {
        String::from_utf8_lossy(&self.raw.lock().unwrap())
            .matches(&format!("Release {NAME} (namespace"))
            .count()
    }

    fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Waits until `more` frames beyond those drawn so far have arrived.
    async fn redraws(&self, more: usize, what: &str) {
        let target = self.drawn() + more;
        let drawn = poll_until(Duration::from_secs(30), || async {
            (self.drawn() >= target).then_some(())
        })
        .await;
        assert!(
            drawn.is_some(),
            "{what}: fewer than {more} redraws in 30 s; screen:\n{}",
            self.contents()
        );
    }

    /// The terminal (and the emulator reading it) changes width, as a window does.
    fn resize(&self, cols: u16) {
        let (rows, columns) = size(cols);
        // The emulator first: bytes after the resize are laid out at the new width.
        self.screen.lock().unwrap().set_size(rows, columns);
        self.pty
            .resize(pty_process::Size::new(ROWS, cols))
            .expect("resize the pty");
    }
}

/// The emulator's screen holds exactly one frame: one header, one line of each kind.
#[track_caller]
fn one_frame(screen: &str, when: &str) {
    let count = |needle: &str| screen.matches(needle).count();
    let headers = count(&format!("Release {NAME} (namespace"));
    let strategy = count("Strategy: Canary");
    let revisions = count("Revisions:");
    assert!(
        headers == 1 && strategy == 1 && revisions == 1,
        "{when}: want exactly one frame on screen, found {headers} headers, {strategy} strategy lines and \
         {revisions} revision headings; screen:\n{screen}"
    );
    assert!(
        screen.contains("Paused until promoted"),
        "{when}: the frame is whole:\n{screen}"
    );
}

/// Starts at `widths[0]`, lets it redraw, then resizes through the rest,
/// checking the screen after several redraws at each width; then Ctrl-C.
async fn watch_through(namespace: &str, widths: &[u16]) -> Vec<String> {
    let mut watch = Watch::start(namespace, widths[0]);
    let mut dumps = Vec::new();
    for (index, cols) in widths.iter().enumerate() {
        if index > 0 {
            watch.resize(*cols);
        }
        watch.redraws(4, &format!("{cols} columns")).await;
        let screen = watch.contents();
        dumps.push(format!("--- {cols} columns ---\n{screen}"));
        one_frame(&screen, &format!("after 4 redraws at {cols} columns ({widths:?})"));
    }
    // Ctrl-C: back to the normal screen, the last frame left on it.
    watch.pty.write_all(&[0x03]).await.expect("send ^C");
    let status = tokio::time::timeout(Duration::from_secs(10), watch.child.wait())
        .await
        .expect("kubectl-serin stops within 10 s of ^C")
        .expect("kubectl-serin's exit status");
    let _ = tokio::time::timeout(Duration::from_secs(5), &mut watch.reader).await;
    let screen = watch.screen.lock().unwrap().screen().clone();
    dumps.push(format!("--- after ^C ---\n{}", screen.contents()));
    assert!(status.success(), "^C ends the watch cleanly: {status:?}");
    assert!(!screen.alternate_screen(), "the normal screen is restored");
    assert!(!screen.hide_cursor(), "the cursor is shown again");
    one_frame(&screen.contents(), "after ^C");
    dumps
}

#[tokio::test]
async fn watch_shows_one_frame_at_any_width_and_after_resizes() {
    let (client, ns, _controller) = setup("terminal").await;
    let ns = ns.name.clone();
    let api = releases(&client, &ns);
    api.create(&PostParams::default(), &release()).await.unwrap();
    wait_condition(&api, NAME, "Ready", "True", None, LIMIT).await;
    let patch = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "web", "image": "example.com/web:2" }] } } } });
    api.patch(NAME, &Default::default(), &kube::api::Patch::Merge(&patch))
        .await
        .unwrap();
    let paused = wait_condition(&api, NAME, "Progressing", "True", Some("CanaryPauseStep"), LIMIT).await;
    let message = paused.status.and_then(|s| s.message).unwrap_or_default();
    assert!(
        message.len() > 80,
        "the paused message wraps at 80 columns: {message:?}"
    );

    for widths in [[80, 140, 80], [140, 80, 140]] {
        let dumps = watch_through(&ns, &widths).await;
        println!("{}", dumps.join("\n"));
    }

    // TERM=dumb: what a pipe gets, frame after frame, no control sequences.
    let dumb = Watch::start_on(&ns, 80, "dumb");
    dumb.redraws(3, "TERM=dumb").await;
    let raw = String::from_utf8_lossy(&dumb.raw.lock().unwrap()).into_owned();
    assert!(!raw.contains('\x1b'), "no control sequences for TERM=dumb: {raw:?}");
}

/// `kubectl serin get release web` through a pipe, as a script reads it.
async fn get(namespace: &str) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-serin"))
        .args(["-n", namespace, "get", "release", "web"])
        .output()
        .await
        .expect("kubectl-serin runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!text.contains('\x1b'), "no control sequences in a pipe: {text:?}");
    text
}

/// The text after `label` on the tree's line that starts with it.
fn field<'a>(tree: &'a str, label: &str) -> Option<&'a str> {
    tree.lines()
        .map(str::trim_start)
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim_start)
}

/// Seconds in a "1m05s left" or "45s left" countdown.
fn seconds_left(text: &str) -> u64 {
    let clock = text
        .rsplit_once(' ')
        .map(|(rest, _)| rest.rsplit(' ').next().unwrap_or(rest))
        .unwrap_or_else(|| panic!("no countdown in {text:?}"));
    let (minutes, seconds) = clock
        .trim_end_matches('s')
        .split_once('m')
        .unwrap_or(("0", clock.trim_end_matches('s')));
    minutes.parse::<u64>().unwrap() * 60 + seconds.parse::<u64>().unwrap()
}

/// Seconds from `since` to this machine's clock (the controller's too: one machine).
fn elapsed_since(since: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> u64 {
    let elapsed = k8s_openapi::jiff::Timestamp::now().duration_since(since.0);
    u64::try_from(elapsed.as_secs()).unwrap_or(0)
}

/// Polls the tree until the countdown on `label`'s line is below `from` seconds.
async fn counts_down(namespace: &str, label: &str, from: u64) {
    let lower = poll_until(Duration::from_secs(10), || async {
        let tree = get(namespace).await;
        let left = seconds_left(field(&tree, label)?);
        (left < from).then_some(left)
    })
    .await;
    assert!(lower.is_some(), "{label} still at {from}s or more after 10 s");
}

#[tokio::test]
async fn the_tree_counts_down_a_timed_pause_and_shows_the_traffic_the_route_carries() {
    use crate::canary::{create_route, gateway_canary, release, route_weights};
    use crate::support::rollout::{control, create_services, ready_on, roll_to_v2};
    use crate::support::traffic::{CANARY, STABLE};

    let (client, ns, _controller) = setup("terminal-traffic").await;
    create_services(&client, &ns.name, &[STABLE, CANARY]).await;
    create_route(&client, &ns.name).await;
    let api = releases(&client, &ns.name);
    let steps = json!([{ "setWeight": 25 }, { "pause": { "duration": "2m" } }, { "pause": {} }]);
    let (_, v2) = roll_to_v2(&api, &release(4, gateway_canary(steps))).await;

    // In the timed pause: the time left, as the step's start and the clock say.
    let paused = crate::support::wait_for("the timed pause at step 2", LIMIT, || async {
        let release = api.get("web").await.ok()?;
        let status = release.status.as_ref()?;
        (status.current_step_index == Some(1) && status.canary_weight == Some(25)).then_some(release)
    })
    .await;
    let tree = get(&ns.name).await;
    assert_eq!(route_weights(&client, &ns.name).await, (75, 25));
    assert!(
        field(&tree, "Steps:").is_some_and(|l| l.ends_with("Traffic: 75% stable, 25% canary")),
        "{tree}"
    );
    let now = field(&tree, "Now:").unwrap_or_else(|| panic!("a Now line: {tree}"));
    assert!(
        now.starts_with("step 2/3, pause 2m: ") && now.ends_with(" left"),
        "{now}"
    );
    let started = paused.status.unwrap().canary.unwrap().step_started_at.unwrap();
    let want = 120u64.saturating_sub(elapsed_since(&started));
    let left = seconds_left(now);
    assert!(left.abs_diff(want) <= 5, "{left}s left, want about {want}s: {tree}");
    println!("in the timed pause:\n{tree}");
    counts_down(&ns.name, "Now:", left).await;

    // Promoted and settled: the new revision is stable and the route sends it everything.
    control(&ns.name, "promoteFull").await;
    ready_on(&api, &v2).await;
    assert_eq!(route_weights(&client, &ns.name).await, (100, 0));
    let tree = get(&ns.name).await;
    assert!(
        field(&tree, "Steps:").is_some_and(|l| l.ends_with("Traffic: 100% stable, 0% canary")),
        "{tree}"
    );
    assert_eq!(field(&tree, "Now:"), None, "nothing in flight: {tree}");
    println!("promoted:\n{tree}");
}

#[tokio::test]
async fn the_tree_counts_down_to_blue_green_auto_promotion() {
    use crate::support::rollout::{create_services, roll_to_v2, web_release};

    let (client, ns, _controller) = setup("terminal-bluegreen").await;
    create_services(&client, &ns.name, &["web", "web-preview"]).await;
    let api = releases(&client, &ns.name);
    let strategy = json!({ "blueGreen": { "activeService": "web", "previewService": "web-preview",
        "autoPromotionSeconds": 120 } });
    roll_to_v2(&api, &web_release(3, strategy)).await;
    let ready_at = crate::support::wait_for("the preview to be ready", LIMIT, || async {
        api.get("web").await.ok()?.status?.blue_green?.preview_ready_at
    })
    .await;
    let tree = get(&ns.name).await;
    let promotion = field(&tree, "Promotion:").unwrap_or_else(|| panic!("a Promotion line: {tree}"));
    assert!(
        promotion.starts_with("automatic, ") && promotion.ends_with(" left"),
        "{promotion}"
    );
    let want = 120u64.saturating_sub(elapsed_since(&ready_at));
    let left = seconds_left(promotion);
    assert!(left.abs_diff(want) <= 5, "{left}s left, want about {want}s: {tree}");
    println!("awaiting auto-promotion:\n{tree}");
    counts_down(&ns.name, "Promotion:", left).await;
}
