//! Hand-made schema pieces for the CRDs, used through `#[schemars(schema_with = ...)]`.
//!
//! Built-in Kubernetes types carry long descriptions. Embedded in a CRD, the
//! `PodTemplateSpec` alone makes it about 480 KB, more than fits into the
//! 256 KiB `kubectl.kubernetes.io/last-applied-configuration` annotation that
//! client-side apply (as Argo CD does) keeps. So the built-in types are embedded
//! without their descriptions. Everything else, including the `x-kubernetes-*`
//! extensions that k8s-openapi emits, is kept.
//!
//! Label maps get bounds (see [`LABEL_VALUE_MAX_LENGTH`], [`MATCH_LABELS_MAX`]):
//! without them the apiserver estimates the cost of the rule comparing
//! `spec.selector.matchLabels` with the template's labels at more than 100 times
//! its budget and refuses the whole CRD. Lists whose items carry a rule are
//! bounded for the same reason (see [`METRICS_MAX`]).
//!
//! The schemas returned here are always fully inlined (no `$ref`, no
//! definitions), whatever the caller's generator settings: a CRD schema must be
//! self-contained, and kube converts it to `JSONSchemaProps`, which would silently
//! drop anything it does not know.
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use schemars::transform::{Transform, transform_subschemas};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// The longest label value Kubernetes accepts. Declared on label maps so that
/// the apiserver can bound the cost of CEL rules that compare labels; it rejects
/// longer values in pods and selectors anyway.
pub const LABEL_VALUE_MAX_LENGTH: u64 = 63;

/// The most labels a selector's `matchLabels` may have. Kubernetes sets no
/// limit, but a CEL rule iterating an unbounded map is refused by the
/// apiserver's cost estimate; real selectors have a handful of labels.
pub const MATCH_LABELS_MAX: u64 = 64;

/// The most metrics an analysis (a template, or a strategy's inline metrics)
/// may have. Without a bound the apiserver estimates the cost of the rule on
/// each metric's provider (exactly one of prometheus, web, job or judge) over the
/// largest list a request could hold, at about 7 times its budget, and refuses
/// the CRD.
pub const METRICS_MAX: u64 = 20;

/// The JSON names of `T`'s properties, sorted: what a list of fields behind
/// [`exactly_one_of`] is checked against.
#[cfg(test)]
pub(super) fn property_names<T: JsonSchema>() -> Vec<String> {
    let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default();
    let mut names: Vec<String> = schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    names.sort_unstable();
    names
}

/// The CEL rule that exactly one of `fields` (JSON names) is set, with the
/// message `{subject} exactly one of a, b or c`: one rule per choice of
/// router or provider, built from its list of fields.
pub fn exactly_one_of(fields: &[&str], subject: &str) -> kube::core::Rule {
    let set: Vec<String> = fields.iter().map(|f| format!("has(self.{f})")).collect();
    let named = match fields.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, others)) => format!("{} or {last}", others.join(", ")),
        None => String::new(),
    };
    kube::core::Rule::new(format!("[{}].filter(x, x).size() == 1", set.join(", ")))
        .message(format!("{subject} exactly one of {named}").as_str())
}

/// `PodTemplateSpec`, without descriptions, with label values bounded to
/// [`LABEL_VALUE_MAX_LENGTH`], and with what the API server would refuse in a
/// ReplicaSet's template refused already by `kubectl apply` (see [`refuse_like_a_replica_set`]).
pub fn stripped_pod_template(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = inline_without_descriptions::<PodTemplateSpec>(generator);
    bound_label_map(&mut schema, "/properties/metadata/properties/labels", None);
    refuse_like_a_replica_set(&mut schema);
    schema
}

/// A container name as Kubernetes requires it: a DNS-1123 label.
pub const CONTAINER_NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// Cheap checks of a pod template that a ReplicaSet's validation makes too:
/// container names (DNS-1123 labels, unique: a list-map keyed by name, as in
/// Deployments), a non-empty image, and `restartPolicy: Always`. What is left
/// (quantities, sizes, the rest of pod validation) is caught when the API
/// server refuses the ReplicaSet, and shown as InvalidSpec.
fn refuse_like_a_replica_set(schema: &mut Schema) {
    for list in ["containers", "initContainers"] {
        let pointer = format!("/properties/spec/properties/{list}");
        let containers = schema
            .pointer_mut(&pointer)
            .and_then(serde_json::Value::as_object_mut)
            .unwrap_or_else(|| panic!("no container list at {pointer}"));
        containers.insert("x-kubernetes-list-type".into(), "map".into());
        containers.insert("x-kubernetes-list-map-keys".into(), serde_json::json!(["name"]));
        let item = containers
            .get_mut("items")
            .and_then(|i| i.pointer_mut("/properties"))
            .and_then(serde_json::Value::as_object_mut)
            .unwrap_or_else(|| panic!("no container properties at {pointer}"));
        let name = item
            .get_mut("name")
            .and_then(serde_json::Value::as_object_mut)
            .expect("container name");
        name.insert("pattern".into(), CONTAINER_NAME_PATTERN.into());
        name.insert("maxLength".into(), LABEL_VALUE_MAX_LENGTH.into());
        if list == "containers" {
            let image = item
                .get_mut("image")
                .and_then(serde_json::Value::as_object_mut)
                .expect("container image");
            image.insert("minLength".into(), 1.into());
        }
    }
    if let Some(containers) = schema.pointer_mut("/properties/spec/properties/containers/items") {
        let required = containers
            .as_object_mut()
            .expect("container schema")
            .entry("required")
            .or_insert_with(|| serde_json::json!([]));
        if let Some(required) = required.as_array_mut()
            && !required.iter().any(|r| r == "image")
        {
            required.push("image".into());
        }
    }
    let restart = schema
        .pointer_mut("/properties/spec/properties/restartPolicy")
        .and_then(serde_json::Value::as_object_mut)
        .expect("restartPolicy");
    restart.insert("enum".into(), serde_json::json!(["Always"]));
}

/// `LabelSelector`, without descriptions, and with `matchLabels` bounded to
/// [`MATCH_LABELS_MAX`] entries of at most [`LABEL_VALUE_MAX_LENGTH`] characters.
pub fn stripped_label_selector(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = inline_without_descriptions::<LabelSelector>(generator);
    bound_label_map(&mut schema, "/properties/matchLabels", Some(MATCH_LABELS_MAX));
    schema
}

/// `JobSpec` for Job analysis providers, without descriptions.
pub fn stripped_job_spec(generator: &mut SchemaGenerator) -> Schema {
    inline_without_descriptions::<k8s_openapi::api::batch::v1::JobSpec>(generator)
}

/// Adds `maxLength` to the values of the string map at `pointer`, and
/// optionally `maxProperties` to the map.
fn bound_label_map(schema: &mut Schema, pointer: &str, max_entries: Option<u64>) {
    let map = schema
        .pointer_mut(pointer)
        .and_then(serde_json::Value::as_object_mut)
        .unwrap_or_else(|| panic!("no label map at {pointer}"));
    let values = map
        .get_mut("additionalProperties")
        .and_then(serde_json::Value::as_object_mut)
        .filter(|values| values.get("type").and_then(|t| t.as_str()) == Some("string"))
        .unwrap_or_else(|| panic!("{pointer} is not a map of strings"));
    values.insert("maxLength".into(), LABEL_VALUE_MAX_LENGTH.into());
    if let Some(max) = max_entries {
        map.insert("maxProperties".into(), max.into());
    }
}

/// `Vec<Condition>` without descriptions, as a list map keyed by `type`, the way
/// built-in resources declare their conditions (so server-side apply merges
/// conditions one by one).
pub fn conditions(generator: &mut SchemaGenerator) -> Schema {
    let item = inline_without_descriptions::<Condition>(generator);
    json_schema!({
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    })
}

/// An `Option<serde_json::Value>` placeholder for a strategy that is not
/// implemented yet: any object is accepted and kept as is.
///
/// Nullable like every other optional field kube generates, so that
/// `canary: null` is accepted and reads back as `None`.
pub fn reserved_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// The schema of `T` with every subschema inlined and every `description` removed.
///
/// Uses a generator with the caller's settings, except that subschemas are
/// always inlined. The caller's transforms (kube's structural rewriter,
/// nullable handling) still run over the result, as part of the caller's root
/// schema.
fn inline_without_descriptions<T: JsonSchema>(generator: &SchemaGenerator) -> Schema {
    let mut inlining = generator
        .settings()
        .clone()
        .with(|settings| settings.inline_subschemas = true)
        .into_generator();
    let mut schema = inlining.subschema_for::<T>();
    // Only a recursive type would still need a definition; none of those we embed is.
    assert!(
        inlining.definitions().is_empty(),
        "{} did not inline: {:?}",
        T::schema_name(),
        inlining.definitions().keys().collect::<Vec<_>>()
    );
    StripDescriptions.transform(&mut schema);
    BoundIntOrStringPorts.transform(&mut schema);
    schema
}

/// The range of an `i32`, as `maximum`/`minimum` on an int-or-string value.
/// The API server does not bound the integer side of an int-or-string field;
/// one larger than an `i32` (a port of 2147483648) is stored, and then no
/// client with 32-bit types (serin's watch among them) can read the object:
/// its whole list fails. Declared, the API server refuses such a value instead.
pub fn bound_to_i32(schema: &mut serde_json::Map<String, serde_json::Value>) {
    schema.insert("maximum".into(), i32::MAX.into());
    schema.insert("minimum".into(), i32::MIN.into());
}

/// Bounds every int-or-string property named `port` (probes, lifecycle hooks)
/// to an `i32` (see [`bound_to_i32`]). Quantities, the other int-or-string
/// values in a pod, are read at any size.
struct BoundIntOrStringPorts;

impl Transform for BoundIntOrStringPorts {
    fn transform(&mut self, schema: &mut Schema) {
        if let Some(port) = schema
            .pointer_mut("/properties/port")
            .and_then(serde_json::Value::as_object_mut)
            .filter(|p| p.get("x-kubernetes-int-or-string") == Some(&serde_json::Value::Bool(true)))
        {
            bound_to_i32(port);
        }
        transform_subschemas(self, schema);
    }
}

/// Removes the `description` keyword from a schema and all its subschemas.
///
/// Walks only schema positions (`properties`, `items`, ...), so a property that
/// happens to be *named* `description` stays.
struct StripDescriptions;

impl Transform for StripDescriptions {
    fn transform(&mut self, schema: &mut Schema) {
        if let Some(object) = schema.as_object_mut() {
            object.remove("description");
        }
        transform_subschemas(self, schema);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemars::generate::SchemaSettings;

    fn count_key(value: &serde_json::Value, key: &str) -> usize {
        match value {
            serde_json::Value::Object(map) => {
                usize::from(map.contains_key(key)) + map.values().map(|v| count_key(v, key)).sum::<usize>()
            }
            serde_json::Value::Array(items) => items.iter().map(|v| count_key(v, key)).sum(),
            _ => 0,
        }
    }

    #[test]
    fn pod_template_is_inlined_and_has_no_descriptions() {
        // Even with a generator that would emit `$ref`s.
        let mut generator = SchemaSettings::default().into_generator();
        let schema = stripped_pod_template(&mut generator).to_value();
        assert_eq!(count_key(&schema, "description"), 0);
        assert_eq!(count_key(&schema, "$ref"), 0);
        assert!(generator.definitions().is_empty());
        // Extensions survive: resources limits are quantities (int-or-string).
        assert!(count_key(&schema, "x-kubernetes-int-or-string") > 0);
        let labels = &schema["properties"]["metadata"]["properties"]["labels"];
        assert_eq!(labels["type"], "object");
        assert_eq!(labels["additionalProperties"]["maxLength"], 63);
    }

    #[test]
    fn job_spec_is_inlined_and_has_no_descriptions() {
        let mut generator = SchemaSettings::default().into_generator();
        let schema = stripped_job_spec(&mut generator).to_value();
        assert_eq!(count_key(&schema, "description"), 0);
        assert_eq!(count_key(&schema, "$ref"), 0);
        assert!(generator.definitions().is_empty());
        let pod_spec = &schema["properties"]["template"]["properties"]["spec"];
        assert_eq!(pod_spec["properties"]["containers"]["type"], "array");
    }

    #[test]
    fn selector_match_labels_are_bounded() {
        let schema = stripped_label_selector(&mut SchemaGenerator::default()).to_value();
        let match_labels = &schema["properties"]["matchLabels"];
        assert_eq!(match_labels["maxProperties"], 64);
        assert_eq!(match_labels["additionalProperties"]["maxLength"], 63);
        assert_eq!(count_key(&schema, "description"), 0);
    }

    #[test]
    fn keeps_a_property_named_description() {
        let mut schema = json_schema!({
            "description": "gone",
            "type": "object",
            "properties": {
                "description": { "type": "string", "description": "gone too" },
            },
        });
        StripDescriptions.transform(&mut schema);
        assert_eq!(
            schema.to_value(),
            serde_json::json!({
                "type": "object",
                "properties": { "description": { "type": "string" } },
            })
        );
    }

    #[test]
    fn conditions_are_a_list_map_keyed_by_type() {
        let schema = conditions(&mut SchemaGenerator::default()).to_value();
        assert_eq!(schema["x-kubernetes-list-type"], "map");
        assert_eq!(schema["x-kubernetes-list-map-keys"], serde_json::json!(["type"]));
        let required = schema["items"]["required"].as_array().unwrap();
        assert!(required.contains(&"type".into()), "list map keys must be required");
        assert_eq!(count_key(&schema, "description"), 0);
    }
}
