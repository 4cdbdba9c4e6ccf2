//! Running serin against the test cluster: CRDs, a controller process per test.
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serin::api::{Release, ReleaseStatus};

use super::{TestNamespace, client, poll_until, wait_for};

/// Installs serin's CRDs from crds/ (as a user would) and waits until they serve.
pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds");
    for entry in std::fs::read_dir(&dir).expect("crds/ exists") {
        let path = entry.unwrap().path();
        let yaml = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&yaml) {
            let crd: CustomResourceDefinition = serde::Deserialize::deserialize(doc).unwrap();
            let name = crd.metadata.name.clone().unwrap();
            crds.patch(&name, &PatchParams::apply("serin-e2e").force(), &Patch::Apply(&crd))
                .await
                .unwrap_or_else(|e| panic!("install CRD {name}: {e}"));
            wait_for(
                &format!("CRD {name} to be established"),
                Duration::from_secs(20),
                || async {
                    let crd = crds.get(&name).await.ok()?;
                    let conditions = crd.status?.conditions?;
                    conditions
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                        .then_some(())
                },
            )
            .await;
        }
    }
}

/// A `serin controller` process watching one namespace; killed on drop.
/// Its log is `$TMPDIR/serin-controller-<namespace>.log`.
pub struct ControllerProcess {
    child: tokio::process::Child,
}

/// Seconds of the test controllers' Lease: short, so that a restart after a
/// crash takes over quickly.
pub const LEASE_SECONDS: &str = "4";

impl ControllerProcess {
    /// A controller with leader election (its Lease in `namespace`) and
    /// endpoints on ports of its own.
    pub async fn start(namespace: &str) -> Self {
        Self::start_with(namespace, "", &[]).await
    }

    /// A controller named `identity` in the Lease, with extra flags.
    pub async fn start_with(namespace: &str, identity: &str, extra: &[&str]) -> Self {
        let log = std::env::temp_dir().join(format!("serin-controller-{namespace}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_serin"));
        command
            .args(["controller", "--namespace", namespace])
            .args(extra)
            .env("RUST_LOG", "info,serin=debug")
            .env_remove("POD_NAMESPACE")
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .kill_on_drop(true);
        // `make e2e-rbac` runs the controller as the Helm chart's ServiceAccount.
        // Its Lease is the chart's one, by name, which e2e/rbac.sh checks on its
        // own: the scenarios, each with a controller of its own, run without one.
        if let Ok(kubeconfig) = std::env::var("SERIN_E2E_CONTROLLER_KUBECONFIG") {
            command.env("KUBECONFIG", kubeconfig).arg("--leader-elect=false");
        }
        if !extra.contains(&"--lease-duration-seconds") {
            command.args(["--lease-duration-seconds", LEASE_SECONDS]);
        }
        for flag in ["--metrics-addr", "--health-addr"] {
            if !extra.contains(&flag) {
                command.args([flag, "127.0.0.1:0"]);
            }
        }
        if !identity.is_empty() {
            command.env("POD_NAME", identity);
        }
        let child = command.spawn().expect("start serin controller");
        Self { child }
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }

    /// The exit status, if the process has exited (without waiting for it).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGTERM, as the kubelet does, and waits for the process to exit.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        self.child.wait().await.expect("the controller exits")
    }
}

/// Everything a test needs: namespace, CRDs, its own controller.
pub async fn setup(test: &str) -> (Client, TestNamespace, ControllerProcess) {
    setup_with(test, &[]).await
}

/// [`setup`], with extra flags for the controller.
pub async fn setup_with(test: &str, flags: &[&str]) -> (Client, TestNamespace, ControllerProcess) {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, test).await;
    let controller = ControllerProcess::start_with(&ns.name, "", flags).await;
    (client, ns, controller)
}

/// The Release's Ready condition is True.
pub fn is_ready(status: &ReleaseStatus) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

pub fn releases(client: &Client, ns: &str) -> Api<Release> {
    Api::namespaced(client.clone(), ns)
}

/// Polls until the Release has a condition `type_` with `status` (and reason,
/// if given); on timeout, panics showing the status it last saw.
pub async fn wait_condition(
    api: &Api<Release>,
    name: &str,
    type_: &str,
    status: &str,
    reason: Option<&str>,
    limit: Duration,
) -> Release {
    let found = poll_until(limit, || async {
        let release = api.get(name).await.ok()?;
        let matched = release
            .status
            .as_ref()?
            .conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == status && reason.is_none_or(|r| c.reason == r));
        matched.then_some(release)
    })
    .await;
    match found {
        Some(release) => release,
        None => {
            let last = api.get(name).await.ok().and_then(|r| r.status);
            panic!(
                "timed out after {limit:?} waiting for release {name} {type_}={status} {reason:?}; status: {last:#?}"
            )
        }
    }
}
