//! Hand-made schema pieces for the CRDs, used through `#[schemars(schema_with = ...)]`.
//!
//! Built-in Kubernetes types carry long descriptions. Embedded in a CRD, the
//! `PodTemplateSpec` alone makes it about 480 KB, more than fits into the
//! 256 KiB `kubectl.kubernetes.io/last-applied-configuration` annotation that
//! client-side apply (as Argo CD does) keeps. So the built-in types are embedded
//! without their descriptions. Everything else, including the `x-kubernetes-*`
//! extensions that k8s-openapi emits, is kept.
//!
//! The schemas returned here are always fully inlined (no `$ref`, no
//! definitions), whatever the caller's generator settings: a CRD schema must be
//! self-contained, and kube converts it to `JSONSchemaProps`, which would silently
//! drop anything it does not know.
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use schemars::transform::{Transform, transform_subschemas};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// `PodTemplateSpec`, without descriptions.
pub fn stripped_pod_template(generator: &mut SchemaGenerator) -> Schema {
    inline_without_descriptions::<PodTemplateSpec>(generator)
}

/// `LabelSelector`, without descriptions.
pub fn stripped_label_selector(generator: &mut SchemaGenerator) -> Schema {
    inline_without_descriptions::<LabelSelector>(generator)
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
    schema
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
                usize::from(map.contains_key(key))
                    + map.values().map(|v| count_key(v, key)).sum::<usize>()
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
        assert_eq!(
            schema["x-kubernetes-list-map-keys"],
            serde_json::json!(["type"])
        );
        let required = schema["items"]["required"].as_array().unwrap();
        assert!(
            required.contains(&"type".into()),
            "list map keys must be required"
        );
        assert_eq!(count_key(&schema, "description"), 0);
    }
}
