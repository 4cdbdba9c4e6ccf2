//! The controller process: leader failover, graceful handover on SIGTERM, and
//! its metrics scraped by the test bed's Prometheus.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use serin::api::Release;

use crate::support::metrics::prometheus_value;
use crate::support::operator::{ControllerProcess, install_crds, releases, wait_condition};
use crate::support::rollout::{LIMIT, ready_on, set_image};
use crate::support::{TestNamespace, client, free_port, from_json, poll_until, wait_for};

const LEASE: &str = "serin-controller";

/// A rolling Release whose pods take 2 s to become ready, so a rollout lasts a while.
fn slow_release(replicas: i32) -> Release {
    from_json(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
        "metadata": { "name": "web" },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" }, "annotations": { "serin.dev/ready-delay": "2s" } },
                "spec": { "containers": [{ "name": "web", "image": "example.com/web:1" }] }
            },
            "strategy": { "rolling": { "maxSurge": 1, "maxUnavailable": 0 } }
        }
    }))
}

async fn holder(client: &Client, ns: &str) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt(LEASE)
        .await
        .ok()??;
    lease.spec?.holder_identity.filter(|h| !h.is_empty())
}

async fn wait_holder(client: &Client, ns: &str, identity: &str, limit: Duration) {
    wait_for(&format!("{identity} to hold the Lease"), limit, || async {
        (holder(client, ns).await.as_deref() == Some(identity)).then_some(())
    })
    .await;
}

/// A namespace with CRDs installed and no controller yet.
async fn bare(test: &str) -> (Client, TestNamespace) {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, test).await;
    (client, ns)
}

/// Starts the rollout to v2 and returns once it is under way, not finished.
async fn rollout_under_way(api: &Api<Release>) -> String {
    let v2 = set_image(api, "example.com/web:2").await;
    wait_for("the rollout to be under way", LIMIT, || async {
        let status = api.get("web").await.ok()?.status?;
        (status.updated_replicas > 0 && status.stable_revision.as_deref() != Some(&v2)).then_some(())
    })
    .await;
    v2
}

/// The controllers that recorded Events in the namespace.
async fn reporting_instances(client: &Client, ns: &str) -> Vec<String> {
    let events = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    let mut instances: Vec<String> = events
        .items
        .into_iter()
        .filter(|e| e.reporting_controller.as_deref() == Some("serin"))
        .filter_map(|e| e.reporting_instance)
        .collect();
    instances.sort();
    instances.dedup();
    instances
}

/// serin-a leading and serin-b standing by, with a rollout to v2 under way.
async fn leader_and_standby_mid_rollout(
    client: &Client,
    ns: &str,
) -> (ControllerProcess, ControllerProcess, Api<Release>, String) {
    let leader = ControllerProcess::start_with(ns, "serin-a", &[]).await;
    wait_holder(client, ns, "serin-a", LIMIT).await;
    let standby = ControllerProcess::start_with(ns, "serin-b", &[]).await;
    let api = releases(client, ns);
    api.create(&PostParams::default(), &slow_release(4)).await.unwrap();
    wait_condition(&api, "web", "Ready", "True", None, LIMIT).await;
    let v2 = rollout_under_way(&api).await;
    (leader, standby, api, v2)
}

#[tokio::test]
async fn a_standby_takes_over_when_the_leader_dies_and_the_rollout_completes() {
    let (client, ns) = bare("failover").await;
    let (leader, _standby, api, v2) = leader_and_standby_mid_rollout(&client, &ns.name).await;
    assert_eq!(
        reporting_instances(&client, &ns.name).await,
        vec!["serin-a".to_string()],
        "the standby wrote nothing"
    );

    leader.kill().await;
    let killed = Instant::now();
    wait_holder(&client, &ns.name, "serin-b", LIMIT).await;
    println!("standby took over {:?} after the leader was killed", killed.elapsed());
    ready_on(&api, &v2).await;
    assert!(
        reporting_instances(&client, &ns.name)
            .await
            .contains(&"serin-b".to_string())
    );
}

#[tokio::test]
async fn sigterm_releases_the_lease_within_two_seconds_and_the_standby_finishes() {
    let (client, ns) = bare("handover").await;
    let (leader, _standby, api, v2) = leader_and_standby_mid_rollout(&client, &ns.name).await;

    let signalled = Instant::now();
    let exiting = tokio::spawn(leader.terminate());
    let released = poll_until(Duration::from_secs(10), || async {
        (holder(&client, &ns.name).await.as_deref() != Some("serin-a")).then(Instant::now)
    })
    .await
    .expect("the Lease leaves serin-a");
    let took = released.duration_since(signalled);
    println!("Lease released {took:?} after SIGTERM");
    assert!(took <= Duration::from_secs(2), "released {took:?} after SIGTERM");
    let status = exiting.await.unwrap();
    assert!(status.success(), "a graceful stop exits 0: {status}");
    wait_holder(&client, &ns.name, "serin-b", Duration::from_secs(5)).await;
    println!("standby holds the Lease {:?} after SIGTERM", signalled.elapsed());
    ready_on(&api, &v2).await;
}

/// At the Lease settings users get (15 s), a standby must not wait for the
/// released Lease to expire in its own cached copy.
#[tokio::test]
async fn at_the_default_lease_duration_the_standby_holds_the_lease_within_two_seconds_of_sigterm() {
    let (client, ns) = bare("handover-defaults").await;
    let defaults = ["--lease-duration-seconds", "15"];
    let leader = ControllerProcess::start_with(&ns.name, "serin-a", &defaults).await;
    wait_holder(&client, &ns.name, "serin-a", LIMIT).await;
    let _standby = ControllerProcess::start_with(&ns.name, "serin-b", &defaults).await;
    let api = releases(&client, &ns.name);
    api.create(&PostParams::default(), &slow_release(2)).await.unwrap();
    wait_condition(&api, "web", "Ready", "True", None, LIMIT).await;
    // The standby has read the Lease as held for the next 15 s.
    wait_for("the standby to campaign", LIMIT, || async {
        let log =
            std::fs::read_to_string(std::env::temp_dir().join(format!("serin-controller-{}.log", ns.name))).ok()?;
        (log.matches("waiting for the Lease").count() >= 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await; // let serin-b's first try at the held Lease finish
    let signalled = Instant::now();
    let exiting = tokio::spawn(leader.terminate());
    let took = poll_until(Duration::from_secs(10), || async {
        (holder(&client, &ns.name).await.as_deref() == Some("serin-b")).then(|| signalled.elapsed())
    })
    .await
    .expect("serin-b takes the Lease");
    println!("handover at the default 15 s Lease: serin-b holds it {took:?} after serin-a's SIGTERM");
    assert!(took <= Duration::from_secs(2), "handover took {took:?}");
    assert!(exiting.await.unwrap().success());
    let v2 = set_image(&api, "example.com/web:2").await;
    ready_on(&api, &v2).await;
}

/// Deleting the Lease by hand: the holder stops writing, recreates it, holds it
/// again, and the rollout it was driving completes.
#[tokio::test]
async fn a_deleted_lease_is_recreated_and_the_rollout_completes() {
    let (client, ns) = bare("lease-deleted").await;
    let leader = ControllerProcess::start_with(&ns.name, "serin-a", &[]).await;
    wait_holder(&client, &ns.name, "serin-a", LIMIT).await;
    let standby = ControllerProcess::start_with(&ns.name, "serin-b", &[]).await;
    let api = releases(&client, &ns.name);
    api.create(&PostParams::default(), &slow_release(4)).await.unwrap();
    wait_condition(&api, "web", "Ready", "True", None, LIMIT).await;
    let v2 = rollout_under_way(&api).await;

    let leases = Api::<Lease>::namespaced(client.clone(), &ns.name);
    leases.delete(LEASE, &Default::default()).await.unwrap();
    let deleted = Instant::now();
    let holder = wait_for(
        "the Lease to be recreated and held",
        Duration::from_secs(10),
        || async { holder(&client, &ns.name).await },
    )
    .await;
    println!(
        "Lease recreated and held by {holder} {:?} after it was deleted",
        deleted.elapsed()
    );
    ready_on(&api, &v2).await;
    let log = std::fs::read_to_string(std::env::temp_dir().join(format!("serin-controller-{}.log", ns.name))).unwrap();
    assert!(
        log.contains("the Lease was deleted; recreating it"),
        "the controller says what happened"
    );
    // Of the two replicas, exactly one runs its controller once it settles.
    let started = log.matches("holding the Lease; starting the controller").count();
    let stopped = log.matches("lost the Lease; stopped the controller").count();
    assert_eq!(started - stopped, 1, "one controller runs at the end:\n{log}");
    drop((leader, standby));
}

/// Removes a Prometheus file_sd target when the test ends.
struct Target(PathBuf);

impl Drop for Target {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn prometheus_scrapes_the_controllers_metrics() {
    let (client, ns) = bare("metrics").await;
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let _controller = ControllerProcess::start_with(&ns.name, "serin-metrics", &["--metrics-addr", &address]).await;
    let targets = std::env::var("SERIN_PROMETHEUS_TARGETS").expect("SERIN_PROMETHEUS_TARGETS (run through make e2e)");
    let target = Target(PathBuf::from(targets).join(format!("{}-serin.json", ns.name)));
    let labels = json!({ "job": "serin", "namespace": ns.name });
    std::fs::write(
        &target.0,
        json!([{ "targets": [address], "labels": labels }]).to_string(),
    )
    .unwrap();

    let api = releases(&client, &ns.name);
    api.create(&PostParams::default(), &slow_release(2)).await.unwrap();
    wait_condition(&api, "web", "Ready", "True", None, LIMIT).await;

    let queries = [
        format!(
            r#"serin_release_phase{{namespace="{}",release="web",phase="Healthy"}}"#,
            ns.name
        ),
        format!(r#"sum(serin_reconcile_total{{namespace="{}",result="ok"}})"#, ns.name),
        format!(
            r#"sum(serin_kube_requests_total{{namespace="{}",verb="watch"}})"#,
            ns.name
        ),
        format!(
            r#"sum(serin_reconcile_duration_seconds_count{{namespace="{}"}})"#,
            ns.name
        ),
        format!(
            r#"sum(serin_rollout_duration_seconds_count{{namespace="{}",strategy="Rolling"}})"#,
            ns.name
        ),
    ];
    for query in queries {
        let value = poll_until(Duration::from_secs(20), || async {
            prometheus_value(&query).await.filter(|v| *v >= 1.0)
        })
        .await;
        assert!(value.is_some(), "Prometheus has no value of at least 1 for {query}");
        println!("{query} = {}", value.unwrap_or_default());
    }

    // Idle, the controller only renews its Lease: every half Lease duration.
    let patches = || async {
        let text = reqwest::get(format!("http://{address}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let patches = text
            .lines()
            .filter(|l| l.starts_with("serin_kube_requests_total{") && l.contains(r#"verb="patch""#))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
        Some(patches.sum::<f64>())
    };
    let before = patches().await.expect("the patch counter");
    // A measurement window, not a wait for something to happen.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let idle = patches().await.expect("the patch counter") - before;
    println!("{idle} patches in 6 s idle");
    assert!(idle <= 5.0, "{idle} patches in 6 s of idling");
}
