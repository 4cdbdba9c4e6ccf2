//! Weights the data plane accepted, against a stand-in gateway controller that
//! writes HTTPRoute status: the old revision is scaled down only after the
//! gateway accepts the route's new generation, and while a silent gateway
//! accepts nothing, the Release holds and says why.
use std::time::{Duration, Instant};

use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

use crate::canary::{create_route, gateway_canary, paused_at, release};
use crate::support::gateway::StandInGateway;
use crate::support::operator::{releases, setup};
use crate::support::rollout::{LIMIT, control, create_services, ready_on, replicas, roll_to_v2, wait_replicas};
use crate::support::traffic::{CANARY, STABLE, TrafficRecorder};
use crate::support::wait_for;

fn promoted_at_once(timeout: i32) -> serde_json::Value {
    let mut canary = gateway_canary(json!([{ "setWeight": 50 }, { "pause": {} }]));
    canary["scaleDownDelaySeconds"] = 0.into();
    canary["acceptanceTimeoutSeconds"] = timeout.into();
    canary
}

#[tokio::test]
async fn the_old_revision_goes_only_after_the_gateway_accepts_the_promotion() {
    let (client, ns, _controller) = setup("accept-order").await;
    create_services(&client, &ns.name, &[STABLE, CANARY]).await;
    create_route(&client, &ns.name).await;
    let delay = Duration::from_millis(1500);
    let _gateway = StandInGateway::start(&client, &ns.name, delay);
    let recorder = TrafficRecorder::start(&client, &ns.name).await;
    let api = releases(&client, &ns.name);
    let (v1, v2) = roll_to_v2(&api, &release(4, promoted_at_once(30))).await;
    paused_at(&api, 1).await;
    // Until a gateway first reports on the route, serin has nothing to wait for.
    let routes = crate::canary::routes(&client, &ns.name);
    wait_for("the gateway to report on the route", LIMIT, || async {
        let route = routes.get("web").await.ok()?;
        let accepted = route.data["status"]["parents"][0]["conditions"][0]["observedGeneration"].as_i64();
        (accepted == route.metadata.generation).then_some(())
    })
    .await;

    let promoted = Instant::now();
    control(&ns.name, "promote").await;
    ready_on(&api, &v2).await;
    wait_replicas(&client, &ns.name, &v1, 0).await;
    let took = promoted.elapsed();

    // The recorder's own check: no ReplicaSet shrank while the route's
    // generation was unaccepted. Then the order of the promotion's writes.
    let states = recorder.finish().await;
    let last_write = states
        .iter()
        .rposition(|w| w.acceptance.accepted.is_some_and(|a| a < w.acceptance.generation))
        .expect("the promotion's route write, pending");
    let pending = states[last_write].acceptance;
    let accepted = last_write
        + states[last_write..]
            .iter()
            .position(|w| w.acceptance.accepted >= Some(pending.generation))
            .expect("the gateway accepted it");
    let scaled = states
        .iter()
        .position(|w| w.replicas(&v1) == 0 && w.replica_sets.values().any(|(r, _, _)| *r == v1))
        .expect("v1 scaled down");
    eprintln!(
        "order of writes: route generation {} (weights {:?}) at state {last_write}, accepted at state {accepted}, \
         {v1} scaled to 0 at state {scaled}; promote to scale-down {took:?} with the gateway accepting after {delay:?}",
        pending.generation, states[last_write].weights
    );
    assert!(
        last_write < accepted && accepted < scaled,
        "write {last_write} < accept {accepted} < scale {scaled}"
    );
    assert!(
        took >= delay,
        "scaled down {took:?} after the promotion, before the gateway's {delay:?}"
    );
}

#[tokio::test]
async fn a_silent_gateway_holds_the_scale_down_and_the_release_says_why() {
    let (client, ns, _controller) = setup("accept-silent").await;
    create_services(&client, &ns.name, &[STABLE, CANARY]).await;
    create_route(&client, &ns.name).await;
    let gateway = StandInGateway::start(&client, &ns.name, Duration::ZERO);
    let recorder = TrafficRecorder::start(&client, &ns.name).await;
    let api = releases(&client, &ns.name);
    let (v1, v2) = roll_to_v2(&api, &release(4, promoted_at_once(2))).await;
    paused_at(&api, 1).await;

    gateway.go_silent();
    control(&ns.name, "promote").await;
    let held = wait_for("the hold past the timeout", LIMIT, || async {
        let status = api.get("web").await.ok()?.status?;
        let progressing = status.conditions.iter().find(|c| c.type_ == "Progressing")?;
        (progressing.reason == "TrafficNotAccepted" && progressing.message.starts_with("Holding:"))
            .then(|| (progressing.message.clone(), status.phase))
    })
    .await;
    let (held, phase) = held;
    assert_eq!(
        phase,
        Some(serin::api::Phase::Healthy),
        "promoted; only the old revision's scale-down waits"
    );
    eprintln!("held: {held}");
    assert!(held.contains("accepted only generation"), "{held}");
    assert!(held.contains("stand-in-gateway"), "{held}");
    assert_eq!(replicas(&client, &ns.name, &v1).await, 4, "nothing scaled down");
    let warned = wait_for("a TrafficNotAccepted Warning", LIMIT, || async {
        let events = Api::<Event>::namespaced(client.clone(), &ns.name)
            .list(&ListParams::default())
            .await
            .ok()?;
        let warnings: Vec<Event> = events
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("TrafficNotAccepted") && e.type_.as_deref() == Some("Warning"))
            .collect();
        (!warnings.is_empty()).then_some(warnings)
    })
    .await;
    assert_eq!(warned.len(), 1, "one Warning per hold");

    gateway.speak_again();
    ready_on(&api, &v2).await;
    wait_replicas(&client, &ns.name, &v1, 0).await;
    recorder.finish().await;
}
