//! Adopting a Deployment (`spec.workloadRef`) on a real control plane.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::json;
use serin::api::Release;

use crate::support::bounds::BoundsSampler;
use crate::support::operator::{releases, setup, wait_condition};
use crate::support::rollout::{LIMIT, create_services};
use crate::support::traffic::STABLE;
use crate::support::{from_json, wait_for};

async fn create_deployment(client: &Client, ns: &str, replicas: i32) -> Api<Deployment> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let deployment: Deployment = from_json(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" }, "annotations": { "serin.dev/ready-delay": "1s" } },
                "spec": { "containers": [{ "name": "web", "image": "example.com/web:1" }] }
            }
        }
    }));
    api.create(&PostParams::default(), &deployment).await.unwrap();
    wait_for("the Deployment available", LIMIT, || async {
        let status = api.get("web").await.ok()?.status?;
        (status.available_replicas == Some(replicas)).then_some(())
    })
    .await;
    api
}

fn adopting(replicas: i32, scale_down: &str) -> Release {
    from_json(json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
        "metadata": { "name": "web" },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": "web" } },
            "workloadRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "scaleDown": scale_down },
            "strategy": { "rolling": {} }
        }
    }))
}

/// The fewest ready endpoints the Service had, once it first had `full`.
struct EndpointsSampler {
    least: Arc<Mutex<Option<usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl EndpointsSampler {
    fn start(client: &Client, ns: &str, service: &str, full: usize) -> Self {
        let api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
        let config = watcher::Config::default().labels(&format!("kubernetes.io/service-name={service}"));
        let least = Arc::new(Mutex::new(None));
        let seen = least.clone();
        let task = tokio::spawn(async move {
            let mut slices: BTreeMap<String, usize> = BTreeMap::new();
            let mut events = watcher(api, config).default_backoff().boxed();
            while let Some(Ok(event)) = events.next().await {
                match event {
                    watcher::Event::Apply(s) | watcher::Event::InitApply(s) => {
                        let ready = s
                            .endpoints
                            .iter()
                            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
                            .count();
                        slices.insert(s.metadata.name.clone().unwrap_or_default(), ready);
                    }
                    watcher::Event::Delete(s) => {
                        slices.remove(s.metadata.name.as_deref().unwrap_or_default());
                    }
                    _ => continue,
                }
                let ready: usize = slices.values().sum();
                let mut least = seen.lock().unwrap();
                if least.is_some() || ready >= full {
                    *least = Some(least.map_or(ready, |l: usize| l.min(ready)));
                }
            }
        });
        Self { least, task }
    }

    fn finish(self) -> Option<usize> {
        self.task.abort();
        *self.least.lock().unwrap()
    }
}

#[tokio::test]
async fn a_deployment_is_adopted_progressively_without_dropping_below_its_bounds() {
    let (client, ns, _controller) = setup("adopt-progressive").await;
    create_services(&client, &ns.name, &[STABLE]).await;
    let deployments = create_deployment(&client, &ns.name, 6).await;
    let endpoints = EndpointsSampler::start(&client, &ns.name, STABLE, 6);
    wait_for("the Service's 6 ready endpoints", LIMIT, || async {
        (*endpoints.least.lock().unwrap() == Some(6)).then_some(())
    })
    .await;
    // 25% of 6: maxSurge 2 (rounded up), maxUnavailable 1 (rounded down).
    let bounds = BoundsSampler::start(Api::<ReplicaSet>::namespaced(client.clone(), &ns.name), 8, 5).await;
    let api = releases(&client, &ns.name);
    api.create(&PostParams::default(), &adopting(6, "progressively"))
        .await
        .unwrap();
    let ready = wait_condition(&api, "web", "Ready", "True", None, LIMIT).await;
    let status = ready.status.unwrap();
    assert_eq!(status.available_replicas, 6);
    assert_eq!(status.selector.as_deref(), Some("app=web,serin.dev/revision"));
    let deployment = deployments.get("web").await.unwrap();
    assert_eq!(deployment.spec.unwrap().replicas, Some(0), "the Deployment scaled away");
    let samples = bounds.finish();
    assert!(samples > 5, "the sampler saw the adoption ({samples} samples)");
    let least = endpoints.finish().expect("the Service was sampled");
    println!("adoption: the Service's ready endpoints never fell below {least} of 6");
    assert!(least >= 5, "ready endpoints fell to {least}");
}

#[tokio::test]
async fn with_scale_down_never_serin_never_writes_the_deployment_and_follows_its_template() {
    let (client, ns, _controller) = setup("adopt-never").await;
    let deployments = create_deployment(&client, &ns.name, 2).await;
    let before = deployments.get("web").await.unwrap();
    let api = releases(&client, &ns.name);
    api.create(&PostParams::default(), &adopting(2, "never")).await.unwrap();
    let ready = wait_condition(&api, "web", "Ready", "True", None, LIMIT).await;
    let v1 = ready.status.unwrap().current_revision.unwrap();

    // A new image on the Deployment: the Release rolls it out.
    let patch = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "web", "image": "example.com/web:2" }] } } } });
    deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    wait_for("the Release on the Deployment's new template", LIMIT, || async {
        let status = api.get("web").await.ok()?.status?;
        let moved = status.stable_revision.as_ref().is_some_and(|s| *s != v1) && status.available_replicas == 2;
        moved.then_some(())
    })
    .await;
    let after = deployments.get("web").await.unwrap();
    let managers: Vec<_> = after
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        !managers.iter().any(|m| m == "serin"),
        "serin wrote the Deployment: {managers:?}"
    );
    assert_eq!(
        after.spec.as_ref().unwrap().replicas,
        before.spec.as_ref().unwrap().replicas
    );
}
