//! Sharding and namespace lists: two shards, each a leader and a standby,
//! split 200 Releases with no Release reconciled by both; SIGTERM on one
//! shard's leader hands exactly that shard's Releases to its standby. And a
//! controller given a list of namespaces watches those and no other.
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use serin::api::{Phase, Release};
use serin::controller::shard::shard_of;

use crate::support::operator::{ControllerProcess, install_crds, releases, wait_condition};
use crate::support::rollout::LIMIT;
use crate::support::{TestNamespace, client, free_port, from_json, poll_until, wait_for};

/// Fixed, unlike the other tests' generated names: a Release's shard hashes
/// its namespace, and with this one the 200 names split 95 / 105 (pinned in
/// src/controller/shard.rs). Random namespaces would land within 90..=110
/// only about 84 % of the time.
const NAMESPACE: &str = "e2e-sharding";
const RELEASES: usize = 200;
const SHARDS: u32 = 2;

fn release(name: &str) -> Release {
    from_json(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
        "metadata": { "name": name },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "web", "image": "example.com/web:1" }] }
            },
            "strategy": { "rolling": {} }
        }
    }))
}

/// The fixed namespace, once a previous run's copy has gone; removed on drop.
async fn fixed_namespace(client: &Client) -> TestNamespace {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(NAMESPACE).await.unwrap().is_some() {
        let _ = namespaces.delete(NAMESPACE, &DeleteParams::background()).await;
        wait_for(
            "the previous run's namespace to go",
            Duration::from_secs(120),
            || async { namespaces.get_opt(NAMESPACE).await.ok()?.is_none().then_some(()) },
        )
        .await;
    }
    let ns: Namespace = from_json(json!({
        "metadata": { "name": NAMESPACE, "labels": { "serin.dev/e2e": "true" } }
    }));
    namespaces.create(&PostParams::default(), &ns).await.unwrap();
    TestNamespace { name: NAMESPACE.into() }
}

/// One controller process of a shard, with its own metrics address (which
/// also serves /readyz).
struct Replica {
    identity: String,
    address: String,
    process: ControllerProcess,
}

impl Replica {
    async fn start(shard: u32, identity: &str) -> Self {
        let address = format!("127.0.0.1:{}", free_port());
        let (shards, index) = (SHARDS.to_string(), shard.to_string());
        let flags = [
            "--shards",
            &shards,
            "--shard-index",
            &index,
            "--metrics-addr",
            &address,
            "--health-addr",
            &address,
            // The users' default: under load a 4 s Lease could move on its own.
            "--lease-duration-seconds",
            "15",
        ];
        let process = ControllerProcess::start_with(NAMESPACE, identity, &flags).await;
        Replica {
            identity: identity.into(),
            address,
            process,
        }
    }

    async fn get(&self, path: &str) -> Option<reqwest::Response> {
        reqwest::get(format!("http://{}{path}", self.address)).await.ok()
    }

    async fn metrics(&self) -> String {
        let response = self.get("/metrics").await.expect("the controller serves /metrics");
        response.text().await.unwrap()
    }

    /// Ready: its caches synced, or (a standby) campaigning for the Lease.
    async fn wait_ready(&self) {
        wait_for(&format!("{} to be ready", self.identity), LIMIT, || async {
            self.get("/readyz").await?.status().is_success().then_some(())
        })
        .await;
    }
}

fn lease_name(shard: u32) -> String {
    format!("serin-controller-shard-{shard}-of-{SHARDS}")
}

async fn lease(client: &Client, shard: u32) -> Option<Lease> {
    Api::<Lease>::namespaced(client.clone(), NAMESPACE)
        .get_opt(&lease_name(shard))
        .await
        .ok()?
}

async fn holder(client: &Client, shard: u32) -> Option<String> {
    lease(client, shard)
        .await?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

async fn wait_holder(client: &Client, shard: u32, identity: &str) {
    wait_for(&format!("{identity} to hold {}", lease_name(shard)), LIMIT, || async {
        (holder(client, shard).await.as_deref() == Some(identity)).then_some(())
    })
    .await;
}

/// The Releases a controller has a `serin_release_phase` series at 1 for:
/// the ones it reconciled.
fn reconciled(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("serin_release_phase{"))
        .filter_map(|rest| rest.split_once("} "))
        .filter(|(_, value)| value.trim() == "1")
        .filter_map(|(labels, _)| {
            let label = |key: &str| {
                labels
                    .split(',')
                    .find_map(|pair| pair.strip_prefix(&format!("{key}=\""))?.strip_suffix('"'))
            };
            (label("namespace")? == NAMESPACE).then(|| label("release").map(String::from))?
        })
        .collect()
}

/// The value of an unlabelled or fully labelled series, as written.
fn sample<'a>(metrics: &'a str, series: &str) -> Option<&'a str> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
}

/// Per Release, the controllers (reportingInstance) that recorded Events on it.
async fn reporters(client: &Client) -> BTreeMap<String, BTreeSet<String>> {
    let events = Api::<Event>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default())
        .await
        .unwrap();
    let mut by_release: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for event in events.items {
        if event.reporting_controller.as_deref() != Some("serin") {
            continue;
        }
        if let (Some(name), Some(instance)) = (event.regarding.and_then(|r| r.name), event.reporting_instance) {
            by_release.entry(name).or_default().insert(instance);
        }
    }
    by_release
}

/// How many of `names` are Healthy on the revision of their current spec.
async fn settled(api: &Api<Release>, names: &BTreeSet<String>) -> usize {
    let list = api.list(&ListParams::default()).await.unwrap();
    list.items
        .iter()
        .filter(|r| names.contains(r.metadata.name.as_deref().unwrap_or_default()))
        .filter(|r| {
            r.status.as_ref().is_some_and(|s| {
                s.phase == Some(Phase::Healthy)
                    && s.observed_generation == r.metadata.generation
                    && s.stable_revision.is_some()
                    && s.stable_revision == s.current_revision
            })
        })
        .count()
}

async fn wait_settled(api: &Api<Release>, names: &BTreeSet<String>, limit: Duration) -> Duration {
    let started = Instant::now();
    let done = poll_until(limit, || async {
        (settled(api, names).await == names.len()).then_some(())
    })
    .await;
    let count = settled(api, names).await;
    assert!(
        done.is_some(),
        "{count} of {} Releases Healthy after {limit:?}",
        names.len()
    );
    started.elapsed()
}

#[tokio::test]
async fn two_shards_split_the_releases_and_a_shards_standby_takes_over_exactly_its_share() {
    let started = Instant::now();
    let client = client().await;
    install_crds(&client).await;
    let _ns = fixed_namespace(&client).await;
    let names: Vec<String> = (0..RELEASES).map(|i| format!("web-{i:03}")).collect();
    let share = |shard: u32| -> BTreeSet<String> {
        let owned = names.iter().filter(|n| shard_of(NAMESPACE, n, SHARDS) == shard);
        owned.cloned().collect()
    };
    let (share0, share1) = (share(0), share(1));
    println!("expected split: {} / {}", share0.len(), share1.len());

    let leader0 = Replica::start(0, "shard0-a").await;
    let leader1 = Replica::start(1, "shard1-a").await;
    wait_holder(&client, 0, "shard0-a").await;
    wait_holder(&client, 1, "shard1-a").await;
    let standby0 = Replica::start(0, "shard0-b").await;
    let standby1 = Replica::start(1, "shard1-b").await;
    standby0.wait_ready().await;
    standby1.wait_ready().await;

    let api = releases(&client, NAMESPACE);
    let created = Instant::now();
    futures::stream::iter(&names)
        .for_each_concurrent(16, |name| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &release(name)).await.unwrap();
            }
        })
        .await;
    let created_in = created.elapsed();
    let all: BTreeSet<String> = names.iter().cloned().collect();
    wait_settled(&api, &all, Duration::from_secs(120)).await;
    println!(
        "{RELEASES} Releases created in {created_in:?}; all Healthy {:?} after the first was created",
        created.elapsed()
    );

    // Each shard's leader reconciled exactly its share; the standbys nothing.
    let (m0, m1) = (leader0.metrics().await, leader1.metrics().await);
    let (r0, r1) = (reconciled(&m0), reconciled(&m1));
    println!("reconciled: shard 0 leader {}, shard 1 leader {}", r0.len(), r1.len());
    assert_eq!(r0, share0, "shard 0's leader reconciled exactly shard 0's Releases");
    assert_eq!(r1, share1, "shard 1's leader reconciled exactly shard 1's Releases");
    assert!(r0.is_disjoint(&r1) && r0.union(&r1).count() == RELEASES);
    for (shard, count) in [(0, r0.len()), (1, r1.len())] {
        assert!(
            (90..=110).contains(&count),
            "shard {shard} holds {count} of {RELEASES}: not 50 ± 5 %"
        );
    }
    assert_eq!(
        sample(&m0, "serin_shard_releases"),
        Some(share0.len().to_string().as_str())
    );
    assert_eq!(
        sample(&m1, "serin_shard_releases"),
        Some(share1.len().to_string().as_str())
    );
    assert_eq!(sample(&m1, r#"serin_shard_info{shard="1",shards="2"}"#), Some("1"));
    for standby in [&standby0, &standby1] {
        let metrics = standby.metrics().await;
        assert!(
            reconciled(&metrics).is_empty(),
            "{} reconciled nothing",
            standby.identity
        );
        assert_eq!(sample(&metrics, "serin_shard_releases"), Some("0"));
    }
    // And the writes say the same: every Release's Events come from its shard's leader alone.
    let by_release = reporters(&client).await;
    for name in &names {
        let leader = if share0.contains(name) { "shard0-a" } else { "shard1-a" };
        let reporters = by_release.get(name).cloned().unwrap_or_default();
        assert_eq!(reporters, BTreeSet::from([leader.to_string()]), "the Events of {name}");
    }

    // SIGTERM on shard 0's leader: its standby takes shard 0's Lease; shard 1's stays.
    let before1 = lease(&client, 1).await.and_then(|l| l.spec).unwrap();
    let signalled = Instant::now();
    let exiting = tokio::spawn(leader0.process.terminate());
    let handover = loop {
        if holder(&client, 0).await.as_deref() == Some("shard0-b") {
            break signalled.elapsed();
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "shard0-b does not hold shard 0's Lease"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    println!("shard 0's standby holds its Lease {handover:?} after its leader's SIGTERM");
    assert!(handover <= Duration::from_secs(2), "handover took {handover:?}");
    assert!(exiting.await.unwrap().success(), "a graceful stop exits 0");
    let after1 = lease(&client, 1).await.and_then(|l| l.spec).unwrap();
    assert_eq!(after1.holder_identity.as_deref(), Some("shard1-a"));
    assert_eq!(
        after1.acquire_time, before1.acquire_time,
        "shard 1's Lease did not move"
    );
    assert_eq!(after1.lease_transitions, before1.lease_transitions);

    // A new image on three Releases of each shard: shard 0's new leader
    // rolls out its own, shard 1's leader its own.
    let changed: BTreeSet<String> = share0.iter().take(3).chain(share1.iter().take(3)).cloned().collect();
    let image = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "web", "image": "example.com/web:2" }] } } } });
    for name in &changed {
        api.patch(name, &PatchParams::default(), &Patch::Merge(&image))
            .await
            .unwrap();
    }
    let rolled = wait_settled(&api, &changed, LIMIT).await;
    println!("6 Releases rolled to a new image in {rolled:?}");
    let r0 = reconciled(&standby0.metrics().await);
    assert_eq!(r0, share0, "shard 0's standby took over exactly shard 0's Releases");
    assert_eq!(
        reconciled(&leader1.metrics().await),
        share1,
        "shard 1's leader kept its own"
    );
    assert!(reconciled(&standby1.metrics().await).is_empty());
    let by_release = reporters(&client).await;
    for name in &changed {
        let want: &[&str] = if share0.contains(name) {
            &["shard0-a", "shard0-b"]
        } else {
            &["shard1-a"]
        };
        let got: Vec<&str> = by_release[name].iter().map(String::as_str).collect();
        assert_eq!(got, want, "the Events of {name}");
    }
    drop((leader1, standby0, standby1));
    println!("the test took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_controller_given_two_namespaces_watches_both_and_no_other() {
    let client = client().await;
    install_crds(&client).await;
    let (first, second, other) = (
        TestNamespace::new(&client, "ns-list-a").await,
        TestNamespace::new(&client, "ns-list-b").await,
        TestNamespace::new(&client, "ns-list-c").await,
    );
    // `--namespace` repeated: the helper passes the first, this the second.
    let _controller = ControllerProcess::start_with(&first.name, "serin-ns", &["--namespace", &second.name]).await;
    for ns in [&first, &second, &other] {
        releases(&client, &ns.name)
            .create(&PostParams::default(), &release("web"))
            .await
            .unwrap();
    }
    for ns in [&first, &second] {
        wait_condition(&releases(&client, &ns.name), "web", "Ready", "True", None, LIMIT).await;
    }
    let lease = Api::<Lease>::namespaced(client.clone(), &first.name)
        .get("serin-controller")
        .await
        .unwrap();
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("serin-ns"),
        "the Lease is in the first namespace listed"
    );
    // The schema defaults a status; a reconciled Release has a phase.
    let unwatched = releases(&client, &other.name).get("web").await.unwrap();
    let status = unwatched.status.unwrap_or_default();
    assert_eq!(status.phase, None, "a namespace not listed is left alone: {status:?}");
    let replica_sets = Api::<k8s_openapi::api::apps::v1::ReplicaSet>::namespaced(client.clone(), &other.name)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(replica_sets.items.is_empty(), "no ReplicaSet in a namespace not listed");
}
