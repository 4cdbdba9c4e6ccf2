//! The local test bed itself: what every other e2e test relies on.
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::support::{TestNamespace, client, from_json, wait_for};

fn is_ready(conditions: Option<&Vec<k8s_openapi::api::core::v1::PodCondition>>) -> bool {
    conditions
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The Kubernetes version pinned by the wrapper module, e.g. "v1.36.3".
fn pinned_kubernetes_version() -> String {
    let go_mod = include_str!("../tools/kube/go.mod");
    go_mod
        .lines()
        .map(|l| {
            l.trim()
                .trim_start_matches("require ")
                .split_whitespace()
                .collect::<Vec<_>>()
        })
        .find_map(|words| (words.first() == Some(&"k8s.io/kubernetes")).then(|| words.get(1).map(|v| v.to_string())))
        .flatten()
        .expect("e2e/tools/kube/go.mod requires k8s.io/kubernetes")
}

#[tokio::test]
async fn at_least_three_nodes_are_ready_and_the_server_is_the_pinned_release() {
    let client = client().await;
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let ready = nodes
        .items
        .iter()
        .filter(|n| {
            let conditions = n.status.as_ref().and_then(|s| s.conditions.as_ref());
            conditions
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
        .count();
    assert!(ready >= 3, "want at least 3 Ready nodes, found {ready}");

    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.git_version, pinned_kubernetes_version(), "server version");
}

#[tokio::test]
async fn a_three_replica_deployment_becomes_available_under_kubectl_wait() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "deploy").await;
    let deployment: Deployment = from_json(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 3,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": "example.com/web:1" }] }
            }
        }
    }));
    Api::<Deployment>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let out = tokio::process::Command::new("kubectl")
        .args([
            "wait",
            "--for=condition=Available",
            "deployment/web",
            "--timeout=30s",
            "-n",
            &ns.name,
        ])
        .output()
        .await
        .expect("kubectl on PATH");
    assert!(
        out.status.success(),
        "kubectl wait failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = Api::<Deployment>::namespaced(client, &ns.name)
        .get("web")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status.available_replicas, Some(3));
}

async fn create_pod(client: &Client, ns: &str, name: &str, fault: Option<&str>) {
    let mut labels = json!({ "app": name });
    if let Some(fault) = fault {
        labels["serin.dev/fault"] = json!(fault);
    }
    let pod: Pod = from_json(json!({
        "metadata": { "name": name, "labels": labels },
        "spec": { "containers": [{ "name": "app", "image": "example.com/app:1" }] }
    }));
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
}

async fn running_pod(client: &Client, ns: &str, name: &str) -> Pod {
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    wait_for(&format!("pod {name} to run"), Duration::from_secs(20), || async {
        let pod = pods.get(name).await.ok()?;
        (pod.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(pod)
    })
    .await
}

#[tokio::test]
async fn fault_labels_keep_pods_unready_for_thirty_seconds() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "faults").await;
    create_pod(&client, &ns.name, "healthy", None).await;
    create_pod(&client, &ns.name, "never-ready", Some("never-ready")).await;
    create_pod(&client, &ns.name, "crash", Some("crash")).await;

    let healthy = running_pod(&client, &ns.name, "healthy").await;
    assert!(
        is_ready(healthy.status.as_ref().and_then(|s| s.conditions.as_ref())),
        "a pod without a fault label becomes Ready"
    );
    let crash = running_pod(&client, &ns.name, "crash").await;
    let waiting = crash
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c[0].state.as_ref()?.waiting.clone());
    assert_eq!(waiting.and_then(|w| w.reason).as_deref(), Some("CrashLoopBackOff"));
    running_pod(&client, &ns.name, "never-ready").await;

    // Sample over 30 s: the faulty pods must never report Ready.
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut samples = 0;
    while tokio::time::Instant::now() < until {
        for name in ["never-ready", "crash"] {
            let pod = pods.get(name).await.unwrap();
            let status = pod.status.as_ref();
            assert!(
                !is_ready(status.and_then(|s| s.conditions.as_ref())),
                "{name} became Ready"
            );
            assert_eq!(status.and_then(|s| s.phase.as_deref()), Some("Running"), "{name} phase");
        }
        samples += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(samples >= 20, "sampled only {samples} times in 30 s");
}

#[tokio::test]
async fn pods_owned_by_a_job_complete_and_crashing_ones_fail() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "jobs").await;
    let job = |name: &str, labels: serde_json::Value| -> Job {
        from_json(json!({
            "metadata": { "name": name },
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": { "labels": labels },
                    "spec": { "restartPolicy": "Never", "containers": [{ "name": "smoke", "image": "example.com/smoke:1" }] }
                }
            }
        }))
    };
    let jobs = Api::<Job>::namespaced(client.clone(), &ns.name);
    jobs.create(&PostParams::default(), &job("passes", json!({})))
        .await
        .unwrap();
    jobs.create(
        &PostParams::default(),
        &job("fails", json!({ "serin.dev/fault": "crash" })),
    )
    .await
    .unwrap();
    for (name, condition) in [("passes", "Complete"), ("fails", "Failed")] {
        wait_for(
            &format!("job {name} to be {condition}"),
            Duration::from_secs(30),
            || async {
                let job = jobs.get(name).await.ok()?;
                let conditions = job.status?.conditions?;
                conditions
                    .iter()
                    .any(|c| c.type_ == condition && c.status == "True")
                    .then_some(())
            },
        )
        .await;
    }
}

#[tokio::test]
async fn prometheus_answers_and_scrapes_targets_that_tests_write() {
    let env = |name: &str| {
        std::env::var(name)
            .unwrap_or_else(|_| panic!("{name} is not set: run through `make e2e`, or eval \"$(make -s cluster-env)\""))
    };
    let (base, targets) = (env("SERIN_PROMETHEUS_URL"), env("SERIN_PROMETHEUS_TARGETS"));
    let http = reqwest::Client::new();
    let query = |q: String| {
        let http = http.clone();
        let url = format!("{base}/api/v1/query");
        async move {
            let body: serde_json::Value = http
                .get(url)
                .query(&[("query", q)])
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (body["status"] == "success").then_some(body["data"]["result"].as_array()?.clone())
        }
    };
    let up = wait_for("prometheus to answer `up`", Duration::from_secs(15), || async {
        query("up".into()).await.filter(|r| !r.is_empty())
    })
    .await;
    assert!(
        up.iter().any(|s| s["metric"]["job"] == "prometheus"),
        "`up` has the prometheus job: {up:?}"
    );

    // A test adds a target by writing a file_sd file; here Prometheus itself, with a unique label.
    let marker = format!("t{}", std::process::id());
    let file = std::path::Path::new(&targets).join(format!("{marker}.json"));
    let target = base.trim_start_matches("http://").to_string();
    std::fs::write(
        &file,
        json!([{ "targets": [target], "labels": { "e2e": marker } }]).to_string(),
    )
    .unwrap();
    let scraped = wait_for("the written target to be scraped", Duration::from_secs(15), || async {
        query(format!("up{{e2e=\"{marker}\"}} == 1"))
            .await
            .filter(|r| !r.is_empty())
    })
    .await;
    std::fs::remove_file(&file).unwrap();
    assert_eq!(scraped[0]["metric"]["job"], "e2e");
}

#[tokio::test]
async fn the_gateway_api_httproute_crd_is_established() {
    let client = client().await;
    let crd = Api::<CustomResourceDefinition>::all(client)
        .get("httproutes.gateway.networking.k8s.io")
        .await
        .expect("the HTTPRoute CRD is installed");
    let established = crd
        .status
        .and_then(|s| s.conditions)
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established, "HTTPRoute CRD is Established");
}
