//! Helpers shared by the e2e tests: a client, per-test namespaces, polling waits.
pub mod argocd;
pub mod bounds;
pub mod gateway;
pub mod metrics;
pub mod operator;
pub mod rollout;
pub mod traffic;
use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};

/// A client for the cluster under test. Panics with a clear message when none
/// is reachable: the suite never skips silently.
pub async fn client() -> Client {
    let client = Client::try_default().await.unwrap_or_else(|e| {
        panic!(
            "no Kubernetes cluster reachable (KUBECONFIG={:?}): {e}. Run `make cluster-up` first.",
            std::env::var("KUBECONFIG").ok()
        )
    });
    client.apiserver_version().await.unwrap_or_else(|e| {
        panic!(
            "the cluster at KUBECONFIG={:?} does not answer: {e}. Run `make cluster-up` first.",
            std::env::var("KUBECONFIG").ok()
        )
    });
    client
}

/// A namespace owned by one test, deleted when dropped (also on panic).
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    pub async fn new(client: &Client, test: &str) -> Self {
        let ns: Namespace = from_json(serde_json::json!({
            "metadata": { "generateName": format!("e2e-{test}-"), "labels": { "serin.dev/e2e": "true" } }
        }));
        let created = Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("create a namespace for {test}: {e}"));
        let name = created
            .metadata
            .name
            .expect("the API server names generated namespaces");
        Self { name }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await, and the test's client is bound to the test's (now
        // blocked) runtime: delete from a thread with its own runtime and client.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(client) = Client::try_default().await {
                        let _ = Api::<Namespace>::all(client)
                            .delete(&name, &DeleteParams::background())
                            .await;
                    }
                });
            }
        })
        .join();
    }
}

/// Polls `check` until it returns Some, or panics after `limit` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match poll_until(limit, check).await {
        Some(value) => value,
        None => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Polls `check` until it returns Some, or gives None after `limit`.
pub async fn poll_until<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Builds a typed object from JSON, for compact manifests in tests.
pub fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("test manifest must deserialize")
}

/// The first YAML block after `marker` in the README or the guide in docs/
/// (the canary and blue-green pages hold the examples): its examples are tested.
pub fn readme_yaml(marker: &str) -> String {
    let guide = [
        include_str!("../../../README.md"),
        include_str!("../../../docs/canary.md"),
        include_str!("../../../docs/bluegreen.md"),
    ];
    let block = guide
        .iter()
        .find_map(|page| page.find(marker).map(|from| &page[from..]))
        .unwrap_or_else(|| panic!("the README and docs/ have no {marker:?}"));
    let start = block.find("```yaml\n").expect("a yaml block follows") + "```yaml\n".len();
    let end = block[start..].find("```").expect("the block ends");
    block[start..start + end].to_string()
}

/// `kubectl apply -f -` of `yaml` into `namespace`, as a user would.
pub async fn kubectl_apply(namespace: &str, yaml: &str) {
    use tokio::io::AsyncWriteExt;
    let mut apply = tokio::process::Command::new("kubectl")
        .args(["-n", namespace, "apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl on PATH");
    let mut stdin = apply.stdin.take().expect("kubectl's stdin");
    stdin.write_all(yaml.as_bytes()).await.expect("write to kubectl");
    drop(stdin);
    let output = apply.wait_with_output().await.expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Asserts that nothing rewrites the object while the Release waits: a router
/// whose read-back never matches what it wrote would patch it every round.
/// Watches for a window longer than the planner's 1 s recheck.
pub async fn assert_quiet<K>(api: &kube::Api<K>, name: &str)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    let version = |object: K| object.meta().resource_version.clone();
    let before = version(api.get(name).await.unwrap());
    tokio::time::sleep(crate::resilience::QUIET).await;
    let after = version(api.get(name).await.unwrap());
    assert_eq!(
        before, after,
        "{name} was rewritten while the Release waited at a pause"
    );
}
