//! Random mutations of valid Releases, created on a real control plane: each is
//! either refused by the API server, naming the field, or accepted and then
//! given a status by the controller, which survives them all and leaves the
//! other Releases of its namespace alone.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ResourceQuota, Service};
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::support::from_json;
use crate::support::operator::{ControllerProcess, releases, setup, wait_condition};
use crate::support::rollout::{LIMIT, web_release};

/// The seed of the mutations; `SERIN_FUZZ_SEED` (decimal or 0x-hex) replays another run.
const SEED: u64 = 0x5e41_f022_2024_0001;
/// Mutated Releases created, beside one unmutated control per strategy.
const MUTATIONS: usize = 240;
/// Releases created at once, then checked together.
const BATCH: usize = 10;
/// How long an accepted Release may go without a status for its generation.
const STATUS_LIMIT: Duration = Duration::from_secs(10);
/// A string far beyond every length limit, yet small enough for etcd.
const HUGE: usize = 300 * 1024;

/// Marks a create that failed other than by the API server's refusal.
const NOT_API: &str = "(not an API error)";

/// splitmix64: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[derive(Clone, Copy, Debug)]
enum Base {
    Rolling,
    Canary,
    BlueGreen,
}

const BASES: [Base; 3] = [Base::Rolling, Base::Canary, Base::BlueGreen];
const ACTIVE: &str = "fuzz-active";
const PREVIEW: &str = "fuzz-preview";

/// A valid Release `name` with the `base` strategy. Its labels are not the
/// sentinel's, so its pods never look like the sentinel's.
fn manifest(name: &str, base: Base) -> Value {
    let strategy = match base {
        Base::Rolling => json!({ "rolling": { "maxSurge": 1, "maxUnavailable": 0 } }),
        Base::Canary => json!({ "canary": {
            "maxSurge": "25%",
            "steps": [{ "setWeight": 20 }, { "pause": { "duration": "1h" } }, { "setWeight": 50 }]
        } }),
        Base::BlueGreen => json!({ "blueGreen": {
            "activeService": ACTIVE, "previewService": PREVIEW, "autoPromotionEnabled": false
        } }),
    };
    json!({
        "apiVersion": "serin.dev/v1alpha1", "kind": "Release",
        "metadata": { "name": name, "labels": { "fuzz": "yes" }, "annotations": { "fuzz": "yes" } },
        "spec": {
            "replicas": 1,
            "progressDeadlineSeconds": 60,
            "minReadySeconds": 0,
            "revisionHistoryLimit": 3,
            "paused": false,
            "selector": { "matchLabels": { "app": "fuzz" } },
            "template": {
                "metadata": { "labels": { "app": "fuzz" }, "annotations": { "fuzz": "yes" } },
                "spec": {
                    "restartPolicy": "Always",
                    "containers": [{
                        "name": "app",
                        "image": "example.com/fuzz:1",
                        "ports": [{ "containerPort": 8080 }],
                        "resources": { "limits": { "cpu": "100m" } },
                        "env": [{ "name": "A", "value": "1" }]
                    }]
                }
            },
            "strategy": strategy
        }
    })
}

/// Whole canaries with a router and route steps: routers whose objects are
/// missing, templates that do not parse, routes a router cannot carry.
fn routed_canaries() -> Vec<Value> {
    let routed = |routing: Value, steps: Value| json!({ "stableService": ACTIVE, "canaryService": PREVIEW, "trafficRouting": routing, "steps": steps });
    let header = json!({ "setHeaderRoute": { "name": "t", "match": [{ "headerName": "x", "headerValue": { "regex": "((" } }] } });
    let mirror = json!({ "setMirrorRoute": { "name": "m", "percentage": 150 } });
    let cookie = json!({ "setHeaderRoute": { "name": "c", "match": [{ "cookieName": "b", "cookieValue": "yes" }] } });
    let generic = |template: &str, path: &str| {
        json!({ "generic": { "apiVersion": "example.com/v1", "kind": "Thing", "name": "t",
            "patch": { "type": "json", "template": template }, "weights": { "stable": path, "canary": path } } })
    };
    vec![
        routed(
            json!({ "gatewayAPI": { "grpcRoutes": [{ "name": "g" }] } }),
            json!([header, { "pause": {} }]),
        ),
        routed(
            json!({ "gatewayAPI": { "httpRoutes": [{ "name": "h" }] } }),
            json!([mirror]),
        ),
        routed(
            json!({ "nginx": { "ingress": "i" } }),
            json!([cookie, { "setHeaderRoute": { "name": "d", "match": [{ "queryParamName": "q", "queryParamValue": { "exact": "1" } }] } }]),
        ),
        routed(
            json!({ "istio": { "virtualService": { "name": "v", "routes": ["missing"] } } }),
            json!([{ "setMirrorRoute": { "name": "m" } }, { "setWeight": 50 }]),
        ),
        routed(
            generic("{not: a list, w: {{canaryWeight}}}", "$.spec.w"),
            json!([{ "setWeight": 10 }]),
        ),
        routed(
            generic("[{op: replace, path: /spec/w, value: {{canaryWeight}}}]", "$..["),
            json!([{ "setWeight": 10 }]),
        ),
        routed(
            generic("[{op: replace, path: /spec/w, value: {{canaryWeight}}}]", "$.spec.w"),
            json!([header]),
        ),
    ]
}

/// Values that are wrong almost anywhere: wrong types, extremes, odd strings.
fn anything() -> Vec<Value> {
    vec![
        json!("x"),
        json!("12"),
        json!({ "a": 1 }),
        json!([1, "two"]),
        json!([]),
        json!({}),
        json!(null),
        json!(true),
        json!(i32::MAX),
        json!(i64::from(i32::MAX) + 1),
        json!(-1),
        json!(0),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(1e300),
        json!(1.5),
        json!(""),
        json!("x".repeat(HUGE)),
        json!("ünï©ødé"),
        json!("🚀🔥"),
        json!("150%"),
        json!("-1%"),
        json!("x%"),
        json!("1x"),
        json!("-5s"),
        json!("99999999999h"),
    ]
}

/// Where to mutate each base, with the values that matter there.
fn targets(base: Base) -> Vec<(&'static str, Vec<Value>)> {
    let huge = || json!("x".repeat(HUGE));
    let counts = || vec![json!(-1), json!(0), json!(1), json!(3), json!(i32::MAX), json!("3")];
    let int_or_percent = || {
        vec![
            json!("150%"),
            json!("-1%"),
            json!("x%"),
            json!("100%"),
            json!("101%"),
            json!("0%"),
            json!("25"),
            json!("%"),
            json!(0),
            json!(-1),
            json!(i32::MAX),
            json!(i64::from(i32::MAX) + 1),
            json!(1.5),
        ]
    };
    let durations = || {
        vec![
            json!("1x"),
            json!("-5s"),
            json!("99999999999h"),
            json!("99999999999999999999s"),
            json!(""),
            json!("0s"),
            json!("1.5h30m"),
            json!("1h".repeat(17)),
            json!(30),
        ]
    };
    let names = || {
        vec![
            json!("Web"),
            json!("we_b"),
            json!("-web"),
            json!("a".repeat(64)),
            json!(""),
            json!("ünï©ødé"),
            json!("🚀"),
        ]
    };
    let label_values = || {
        vec![
            json!("web"),
            json!("bad value!"),
            json!("a".repeat(64)),
            json!(""),
            json!("ünï©ødé"),
            huge(),
        ]
    };
    let mut targets = vec![
        ("/spec/replicas", counts()),
        ("/spec/progressDeadlineSeconds", counts()),
        ("/spec/minReadySeconds", counts()),
        ("/spec/revisionHistoryLimit", counts()),
        ("/spec/paused", vec![json!(true), json!("true"), json!(1)]),
        ("/spec/selector/matchLabels/app", label_values()),
        (
            "/spec/selector",
            vec![
                json!({}),
                json!({ "matchLabels": {} }),
                json!({ "matchLabels": { "app": "other" } }),
                json!({ "matchExpressions": [{ "key": "app", "operator": "In", "values": ["fuzz"] }] }),
                json!({ "matchExpressions": [{ "key": "app", "operator": "NotIn", "values": ["fuzz"] }] }),
                json!({ "matchExpressions": [{ "key": "app", "operator": "Bogus", "values": ["fuzz"] }] }),
                json!({ "matchExpressions": [{ "key": "app", "operator": "Exists", "values": ["fuzz"] }] }),
                json!({ "matchExpressions": [{ "key": "Bad Key!", "operator": "Exists" }] }),
            ],
        ),
        ("/spec/template/metadata/labels/app", label_values()),
        (
            "/spec/template/metadata/labels",
            vec![
                json!({ "app": "fuzz", "Bad Key!": "x" }),
                json!({ "app": "fuzz", "": "x" }),
            ],
        ),
        (
            "/spec/template/metadata/annotations/fuzz",
            vec![huge(), json!(""), json!("ünï©ødé🚀")],
        ),
        (
            "/spec/template/metadata/annotations",
            vec![json!({ "bad key!": "x" }), json!({ "": "x" })],
        ),
        ("/metadata/labels/fuzz", label_values()),
        (
            "/metadata/annotations/fuzz",
            vec![huge(), json!(""), json!("ünï©ødé🚀")],
        ),
        ("/spec/template/spec/containers/0/name", names()),
        (
            "/spec/template/spec/containers/0/image",
            vec![
                json!(""),
                json!(" example.com/fuzz:1"),
                json!("example.com/fuzz:2"),
                json!("ünï©ødé"),
                huge(),
            ],
        ),
        (
            "/spec/template/spec/containers/0/ports/0/containerPort",
            vec![json!(70000), json!(0), json!(-1), json!(65536), json!("http")],
        ),
        (
            "/spec/template/spec/containers/0/ports",
            vec![
                json!([{}]),
                json!([{ "containerPort": 70000 }]),
                json!([{ "containerPort": 80, "protocol": "BOGUS" }]),
                json!([{ "containerPort": 80, "name": "Not_A_Port_Name" }]),
                json!([{ "containerPort": 80, "hostPort": 70000 }]),
            ],
        ),
        (
            "/spec/template/spec/containers/0/resources/limits/cpu",
            vec![
                json!("lots"),
                json!("-1"),
                json!(""),
                json!(5),
                json!(-5),
                json!(1e300),
                json!("1e300"),
                json!("ünï©ødé"),
            ],
        ),
        (
            "/spec/template/spec/containers/0/resources/requests/cpu",
            vec![json!("200m"), json!("lots")],
        ),
        (
            "/spec/template/spec/containers/0/env/0/value",
            vec![huge(), json!(5), json!("ünï©ødé🚀")],
        ),
        (
            "/spec/template/spec/containers/0/env",
            vec![
                json!([{ "name": "" }]),
                json!([{ "name": "A" }, { "name": "A" }]),
                json!([{ "name": "1=bad" }]),
                json!([{ "name": "A", "valueFrom": {} }]),
            ],
        ),
        (
            "/spec/template/spec/containers/0/readinessProbe",
            vec![
                json!({ "tcpSocket": { "port": 70000 } }),
                json!({ "tcpSocket": { "port": "Not A Port" } }),
                json!({ "tcpSocket": { "port": i64::MAX } }),
                json!({ "tcpSocket": { "port": i64::from(i32::MAX) + 1 } }),
                json!({ "tcpSocket": { "port": 8080 }, "periodSeconds": -1 }),
            ],
        ),
        (
            "/spec/template/spec/restartPolicy",
            vec![json!("Never"), json!("OnFailure"), json!(""), json!("always")],
        ),
        (
            "/spec/template/spec/containers",
            vec![
                json!([{ "name": "a", "image": "x" }, { "name": "a", "image": "y" }]),
                json!([]),
                json!([{ "name": "a" }]),
                json!([{ "image": "x" }]),
                json!([{ "name": "a", "image": "x" }, { "name": "b", "image": "y" }]),
            ],
        ),
        (
            "/spec/template/spec/initContainers",
            vec![
                json!([{ "name": "app", "image": "x" }]),
                json!([{ "name": "Init", "image": "x" }]),
                json!([{ "name": "init", "image": "" }]),
            ],
        ),
        (
            "/spec/template/spec/volumes",
            vec![
                json!([{ "name": "v" }]),
                json!([{ "name": "v", "emptyDir": {} }, { "name": "v", "emptyDir": {} }]),
            ],
        ),
        (
            "/spec/strategy",
            vec![
                json!({}),
                json!({ "rolling": {}, "canary": {} }),
                json!({ "rolling": null }),
                json!("rolling"),
                json!({ "rolling": {} }),
                json!({ "canary": {} }),
                json!({ "blueGreen": {} }),
                json!({ "blueGreen": { "activeService": ACTIVE } }),
            ],
        ),
        (
            "/spec/hooks",
            vec![
                json!({}),
                json!("migrate"),
                json!({ "preRollout": { "templates": [] } }),
                json!({ "preRollout": { "templates": [{ "templateName": "missing" }] } }),
                json!({ "postRollout": { "templates": [{ "templateName": "" }] } }),
                json!({ "preRollout": { "templates": [{ "templateName": "m" }], "args": [{ "name": "" }] } }),
            ],
        ),
        (
            "/spec/configSnapshots",
            vec![
                json!({}),
                json!({ "configMaps": true }),
                json!({ "configMaps": "yes" }),
                json!({ "secrets": true, "configMaps": true }),
            ],
        ),
        (
            "/spec/workloadRef",
            vec![
                json!({ "apiVersion": "apps/v1", "kind": "Deployment", "name": "missing" }),
                json!({ "apiVersion": "v1", "kind": "Pod", "name": "web" }),
                json!({ "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "scaleDown": "sometimes" }),
                json!({ "apiVersion": "apps/v1", "kind": "Deployment", "name": "" }),
            ],
        ),
    ];
    match base {
        Base::Rolling => {
            targets.push(("/spec/strategy/rolling/maxSurge", int_or_percent()));
            targets.push(("/spec/strategy/rolling/maxUnavailable", int_or_percent()));
        }
        Base::Canary => {
            targets.push(("/spec/strategy/canary/maxSurge", int_or_percent()));
            targets.push(("/spec/strategy/canary/maxUnavailable", int_or_percent()));
            targets.push(("/spec/strategy/canary/steps/1/pause/duration", durations()));
            targets.push(("/spec/strategy/canary/steps/0/setWeight", counts()));
            targets.push((
                "/spec/strategy/canary/steps/2/setWeight",
                vec![json!(101), json!(-1), json!(100)],
            ));
            targets.push(("/spec/strategy/canary/scaleDownDelaySeconds", counts()));
            targets.push((
                "/spec/strategy/canary/steps",
                vec![
                    json!([]),
                    json!([{}]),
                    json!([{ "setWeight": 10, "pause": {} }]),
                    json!([{ "pause": {} }]),
                    json!([{ "setCanaryScale": { "replicas": 1 } }]),
                    json!((0..33).map(|i| json!({ "setWeight": i })).collect::<Vec<_>>()),
                    json!((0..32).map(|i| json!({ "setWeight": i })).collect::<Vec<_>>()),
                ],
            ));
            targets.push(("/spec/strategy/canary/stableService", names()));
            targets.push(("/spec/strategy/canary/analysis/startingStep", vec![json!(7), json!(-1)]));
            targets.push(("/spec/strategy/canary", routed_canaries()));
        }
        Base::BlueGreen => {
            targets.push(("/spec/strategy/blueGreen/activeService", names()));
            targets.push((
                "/spec/strategy/blueGreen/previewService",
                vec![json!(ACTIVE), json!("")],
            ));
            targets.push(("/spec/strategy/blueGreen/previewReplicaCount", counts()));
            targets.push(("/spec/strategy/blueGreen/autoPromotionSeconds", counts()));
            targets.push((
                "/spec/strategy/blueGreen/autoPromotionEnabled",
                vec![json!(true), json!("no")],
            ));
            targets.push(("/spec/strategy/blueGreen/scaleDownDelaySeconds", counts()));
        }
    }
    targets
}

/// Sets the value at a JSON pointer, making the objects (or list items) on the way.
fn set(document: &mut Value, pointer: &str, value: Value) {
    let segments: Vec<&str> = pointer.split('/').skip(1).collect();
    set_in(document, &segments, value);
}

fn set_in(here: &mut Value, segments: &[&str], value: Value) {
    let Some((segment, rest)) = segments.split_first() else {
        *here = value;
        return;
    };
    let next = match (here.is_array(), segment.parse::<usize>()) {
        (true, Ok(index)) => {
            let list = here.as_array_mut().unwrap();
            if index >= list.len() {
                list.push(json!({}));
            }
            let last = list.len() - 1;
            &mut list[index.min(last)]
        }
        _ => {
            if !here.is_object() {
                *here = json!({});
            }
            let object = here.as_object_mut().unwrap();
            object.entry(segment.to_string()).or_insert_with(|| json!({}))
        }
    };
    set_in(next, rest, value);
}

/// A value as a printable string of about `limit` characters at most.
fn short(value: &impl std::fmt::Display, limit: usize) -> String {
    let text = value.to_string().replace('\n', " ");
    if text.chars().count() > limit {
        let head: String = text.chars().take(limit).collect();
        format!("{head}… ({} bytes)", text.len())
    } else {
        text
    }
}

struct Mutation {
    name: String,
    what: String,
    manifest: Value,
}

fn mutations(seed: u64) -> Vec<Mutation> {
    let mut rng = Rng(seed);
    let generic = anything();
    let targets: Vec<_> = BASES.iter().map(|base| targets(*base)).collect();
    let mut out: Vec<Mutation> = BASES
        .iter()
        .enumerate()
        .map(|(i, base)| Mutation {
            name: format!("control-{i}"),
            what: format!("{base:?}, unmutated"),
            manifest: manifest(&format!("control-{i}"), *base),
        })
        .collect();
    for i in 0..MUTATIONS {
        let which = rng.below(BASES.len());
        let name = format!("m-{i}");
        let mut manifest = manifest(&name, BASES[which]);
        let mut what = format!("{:?}:", BASES[which]);
        let edits = if rng.below(4) == 0 { 2 } else { 1 };
        for _ in 0..edits {
            let (pointer, specific) = rng.pick(&targets[which]);
            let value = if !specific.is_empty() && rng.below(5) < 3 {
                rng.pick(specific).clone()
            } else {
                rng.pick(&generic).clone()
            };
            what += &format!(" {pointer} = {}", short(&value, 60));
            set(&mut manifest, pointer, value);
        }
        out.push(Mutation { name, what, manifest });
    }
    out
}

/// What became of one mutation.
enum Outcome {
    Refused(String),
    /// Accepted, and a status for its generation came; `Some(message)` for InvalidSpec.
    Status {
        invalid: Option<String>,
        summary: String,
    },
    NoStatus(String),
}

fn release_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("serin.dev", "v1alpha1", "Release"), "releases")
}

/// The outcome, once the status reflects the object's generation.
fn judge(object: &DynamicObject) -> Option<Outcome> {
    let status = object.data.get("status")?;
    let observed = status.get("observedGeneration")?.as_i64()?;
    if Some(observed) != object.metadata.generation {
        return None;
    }
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let invalid = conditions
        .iter()
        .find(|c| c["type"] == "Degraded" && c["status"] == "True" && c["reason"] == "InvalidSpec")
        .map(|c| c["message"].as_str().unwrap_or_default().to_string());
    let ready = conditions.iter().find(|c| c["type"] == "Ready");
    let summary = format!(
        "{} Ready={} {}",
        status["phase"].as_str().unwrap_or("-"),
        ready.and_then(|c| c["status"].as_str()).unwrap_or("-"),
        ready.and_then(|c| c["reason"].as_str()).unwrap_or("-"),
    );
    Some(Outcome::Status { invalid, summary })
}

/// Creates a batch at once, then waits for each accepted one's status; deletes them.
/// The manifests are POSTed as they are: a typed object, even a DynamicObject
/// (whose metadata is typed), could not carry every mutation.
async fn run_batch(client: &Client, api: &Api<DynamicObject>, batch: &[Mutation]) -> Vec<Outcome> {
    let ns = api.namespace().expect("a namespaced Api").to_string();
    let created = join_all(batch.iter().map(|m| {
        let ns = ns.clone();
        async move {
            let request = http::Request::post(format!("/apis/serin.dev/v1alpha1/namespaces/{ns}/releases"))
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(&m.manifest).unwrap())
                .unwrap();
            let result = client.request::<DynamicObject>(request).await;
            (result, Instant::now())
        }
    }))
    .await;
    let mut outcomes: Vec<Option<Outcome>> = created
        .iter()
        .map(|(result, _)| match result {
            Ok(_) => None,
            Err(kube::Error::Api(status)) => Some(Outcome::Refused(status.message.clone())),
            Err(error) => Some(Outcome::Refused(format!("{NOT_API} {error}"))),
        })
        .collect();
    let mut last_seen: Vec<String> = vec![String::new(); batch.len()];
    loop {
        let pending: Vec<usize> = (0..batch.len()).filter(|i| outcomes[*i].is_none()).collect();
        if pending.is_empty() {
            break;
        }
        let seen = join_all(pending.iter().map(|i| api.get(&batch[*i].name))).await;
        for (i, object) in pending.iter().zip(seen) {
            match object {
                Ok(object) => {
                    last_seen[*i] = format!(
                        "generation {:?}, status {}",
                        object.metadata.generation,
                        short(&object.data.get("status").cloned().unwrap_or(Value::Null), 400)
                    );
                    outcomes[*i] = judge(&object);
                }
                Err(error) => last_seen[*i] = format!("get: {error}"),
            }
            if outcomes[*i].is_none() && created[*i].1.elapsed() > STATUS_LIMIT {
                outcomes[*i] = Some(Outcome::NoStatus(last_seen[*i].clone()));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let accepted = batch.iter().zip(&created).filter(|(_, (result, _))| result.is_ok());
    let delete = DeleteParams::background();
    join_all(accepted.map(|(m, _)| api.delete(&m.name, &delete))).await;
    outcomes
        .into_iter()
        .map(|o| o.expect("every outcome decided"))
        .collect()
}

/// `name -> (generation, spec.replicas)` of the Release's ReplicaSets.
async fn replica_sets_of(client: &Client, ns: &str, release: &str) -> BTreeMap<String, (Option<i64>, Option<i32>)> {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(&format!("serin.dev/release={release}")))
        .await
        .unwrap();
    list.items
        .into_iter()
        .map(|rs| {
            let replicas = rs.spec.as_ref().and_then(|s| s.replicas);
            (rs.metadata.name.unwrap_or_default(), (rs.metadata.generation, replicas))
        })
        .collect()
}

fn controller_log(ns: &str) -> String {
    let path = std::env::temp_dir().join(format!("serin-controller-{ns}.log"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn assert_alive(controller: &mut ControllerProcess, ns: &str, after: &str) {
    if let Some(status) = controller.exited() {
        let log = controller_log(ns);
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        panic!(
            "the controller exited ({status}) after {after}; its log ends with:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
}

#[tokio::test]
async fn every_accepted_mutation_of_a_release_gets_a_status_and_the_controller_survives() {
    let started = Instant::now();
    let seed = std::env::var("SERIN_FUZZ_SEED")
        .ok()
        .map(|s| match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).expect("a hex seed"),
            None => s.parse().expect("a decimal seed"),
        })
        .unwrap_or(SEED);
    println!("fuzz: seed {seed:#x} (SERIN_FUZZ_SEED replays another)");
    let (client, ns, mut controller) = setup("fuzz").await;
    // Mutations may ask for 2^31 - 1 pods: a quota keeps the (fake) nodes out of it.
    let quota: ResourceQuota = from_json(json!({
        "metadata": { "name": "fuzz-pods" },
        "spec": { "hard": { "pods": "100" } }
    }));
    Api::<ResourceQuota>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &quota)
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), &ns.name);
    for name in [ACTIVE, PREVIEW] {
        let service: Service = from_json(json!({
            "metadata": { "name": name },
            "spec": { "selector": { "app": "fuzz" }, "ports": [{ "port": 80, "targetPort": 8080 }] }
        }));
        services.create(&PostParams::default(), &service).await.unwrap();
    }

    let typed = releases(&client, &ns.name);
    let mut sentinel = web_release(2, json!({ "rolling": { "maxSurge": 1, "maxUnavailable": 0 } }));
    sentinel.metadata.name = Some("sentinel".into());
    typed.create(&PostParams::default(), &sentinel).await.unwrap();
    let before = wait_condition(&typed, "sentinel", "Ready", "True", None, LIMIT)
        .await
        .status
        .unwrap();
    let sets_before = replica_sets_of(&client, &ns.name, "sentinel").await;
    assert!(!sets_before.is_empty(), "the sentinel has ReplicaSets");

    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &release_resource());
    let all = mutations(seed);
    let mut refused = Vec::new();
    let mut normal = Vec::new();
    let mut invalid = Vec::new();
    let mut missing = Vec::new();
    for batch in all.chunks(BATCH) {
        let outcomes = run_batch(&client, &api, batch).await;
        for (mutation, outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Outcome::Refused(message) => refused.push((mutation, message)),
                Outcome::Status { invalid: None, summary } => normal.push((mutation, summary)),
                Outcome::Status {
                    invalid: Some(message), ..
                } => invalid.push((mutation, message)),
                Outcome::NoStatus(seen) => missing.push((mutation, seen)),
            }
        }
        assert_alive(&mut controller, &ns.name, &format!("creating {}..", batch[0].name));
    }

    for (mutation, summary) in &normal {
        println!("accepted {:11} {}  -> {summary}", mutation.name, mutation.what);
    }
    for (mutation, message) in &invalid {
        println!(
            "invalid  {:11} {}  -> {}",
            mutation.name,
            mutation.what,
            short(message, 200)
        );
    }
    let mut failures = Vec::new();
    for (mutation, message) in &refused {
        if message.starts_with(NOT_API) {
            failures.push(format!(
                "{} ({}) could not be created: {message}",
                mutation.name, mutation.what
            ));
        }
        let flag = if message.contains("spec.") {
            ""
        } else {
            "(no \"spec.\") "
        };
        println!(
            "refused  {:11} {}  -> {flag}{}",
            mutation.name,
            mutation.what,
            short(message, 200)
        );
        // A refusal must say which field is wrong: one of the spec's, or of the object's metadata
        // (the API server decodes metadata first, naming a wrongly typed field `ObjectMeta.labels`).
        if !["spec.", "metadata.", "ObjectMeta."]
            .iter()
            .any(|field| message.contains(field))
        {
            failures.push(format!(
                "{} ({}) was refused without naming a field: {}",
                mutation.name,
                mutation.what,
                short(message, 400)
            ));
        }
    }
    for (mutation, seen) in &missing {
        println!("NO STATUS {:10} {}  -> last seen {seen}", mutation.name, mutation.what);
        failures.push(format!(
            "{} ({}) was accepted but got no status for its generation in {STATUS_LIMIT:?}; last seen {seen}",
            mutation.name, mutation.what
        ));
    }
    for control in all.iter().filter(|m| m.name.starts_with("control-")) {
        if !normal.iter().any(|(m, _)| m.name == control.name) {
            failures.push(format!(
                "the control {} ({}) got no normal status",
                control.name, control.what
            ));
        }
    }

    // Whatever happened to the others, the sentinel stood still.
    let after = wait_condition(&typed, "sentinel", "Ready", "True", None, LIMIT)
        .await
        .status
        .unwrap();
    let sets_after = replica_sets_of(&client, &ns.name, "sentinel").await;
    assert_alive(&mut controller, &ns.name, "the last batch");
    let same = |what: &str, before: &dyn std::fmt::Debug, after: &dyn std::fmt::Debug| {
        let (before, after) = (format!("{before:?}"), format!("{after:?}"));
        (before != after).then(|| format!("the sentinel's {what} went from {before} to {after}"))
    };
    failures.extend(same("stable revision", &before.stable_revision, &after.stable_revision));
    failures.extend(same(
        "current revision",
        &before.current_revision,
        &after.current_revision,
    ));
    failures.extend(same(
        "observed generation",
        &before.observed_generation,
        &after.observed_generation,
    ));
    failures.extend(same("ReplicaSets (generation, replicas)", &sets_before, &sets_after));

    let log = controller_log(&ns.name);
    for line in log.lines().filter(|l| l.contains("panicked")) {
        failures.push(format!("the controller panicked: {line}"));
    }
    // What the controller said about objects it could not read, for whoever reads a failure.
    let unreadable: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("watch stream failed") || l.contains("initial object list") || l.contains("deserializ"))
        .collect();
    for line in &unreadable {
        println!("controller log: {}", short(line, 400));
    }

    println!(
        "fuzz: seed {seed:#x}: {} Releases ({MUTATIONS} mutations, {} unmutated controls): \
         {} refused by the API server, {} accepted with a normal status, {} accepted with InvalidSpec, \
         {} accepted without a status in {STATUS_LIMIT:?}; {} unreadable-object lines in the controller log; {:.0?}",
        all.len(),
        all.len() - MUTATIONS,
        refused.len(),
        normal.len(),
        invalid.len(),
        missing.len(),
        unreadable.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
