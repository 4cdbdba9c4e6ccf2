//! The CRDs' validation rules (x-kubernetes-validations), evaluated offline as
//! the API server would, for `kubectl serin lint` and the CRD tests; and the
//! duration syntax that pauses and metrics share.
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use kube::core::cel::cel::{self, extractors::This};
use kube::core::cel::{CompiledSchema, ErrorKind, KubeCelExt, Validator, apply_defaults, compile_schema};
use serde_json::{Value, json};

use super::crd::crds;

/// Longest duration text accepted. With at most nine integer digits per part
/// this keeps kube's parser far from overflowing (it panics on overflow).
const MAX_DURATION_TEXT: usize = 32;
const MAX_DIGITS: usize = 9;
/// Parses a duration like "30s" or "1m30s", refusing text that could overflow kube's parser.
pub fn duration(text: &str) -> Result<Duration, String> {
    let invalid = |why: &str| format!("{text:?} is not a duration like \"30s\" or \"1m30s\": {why}");
    let longest_digits = text
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    if text.len() > MAX_DURATION_TEXT || longest_digits > MAX_DIGITS {
        return Err(invalid("too long or too large"));
    }
    if text.trim().is_empty() {
        return Err(invalid("empty"));
    }
    let parsed: kube::core::Duration = text.parse().map_err(|e| invalid(&format!("{e}")))?;
    if parsed.is_negative() {
        return Err(invalid("negative"));
    }
    Ok(parsed.into())
}

/// The openAPIV3Schema of serin's CRD of `kind`.
pub fn schema_of(kind: &str) -> Option<Value> {
    crds()
        .into_iter()
        .find(|crd| crd.spec.names.kind == kind)
        .and_then(|crd| {
            let version = crd.spec.versions.into_iter().next()?;
            serde_json::to_value(version.schema?.open_api_v3_schema?).ok()
        })
}

/// Each kind's schema, with its rules compiled once: compiling CEL is slow.
fn compiled(kind: &str) -> Option<&'static (Value, CompiledSchema)> {
    static SCHEMAS: OnceLock<BTreeMap<&'static str, (Value, CompiledSchema)>> = OnceLock::new();
    SCHEMAS
        .get_or_init(|| {
            ["Release", "AnalysisTemplate", "ClusterAnalysisTemplate"]
                .into_iter()
                .filter_map(|kind| {
                    let schema = schema_of(kind)?;
                    let compiled = compile_schema(&schema);
                    Some((kind, (schema, compiled)))
                })
                .collect()
        })
        .get(kind)
}

/// `path: message` of every validation rule that `object` (of `kind`) breaks,
/// after the schema's defaults are applied, as the API server does.
pub fn rule_errors(kind: &str, object: &Value) -> Vec<String> {
    let Some((schema, compiled)) = compiled(kind) else {
        return vec![format!("{kind} is not one of serin's kinds")];
    };
    let object = apply_defaults(schema, object);
    let Err(errors) = Validator::new().validate_compiled(compiled, &object, None) else {
        return Vec::new();
    };
    errors
        .iter()
        .filter_map(|e| match e.kind {
            // kube's evaluator has no type(), which the IntOrPercent rules use.
            ErrorKind::UnsupportedReference if e.rule.contains("type(") => {
                evaluate_with_type_function(schema, &object, &e.field_path, &e.rule)
            }
            _ => Some(e.to_string()),
        })
        .collect()
}

/// CEL's `type()`, reduced to what serin's rules compare: a tag per value kind,
/// and the type identifiers (`string`, `int`, ...) bound to the same tags.
fn with_type_function(ctx: &mut cel::Context<'_>) -> Option<()> {
    let kinds = [
        "int",
        "uint",
        "double",
        "string",
        "bool",
        "list",
        "map",
        "null_type",
        "bytes",
    ];
    for kind in kinds {
        ctx.add_variable(kind, json!(format!("<cel type {kind}>"))).ok()?;
    }
    ctx.add_function("type", |This(value): This<cel::Value>| -> String {
        let kind = match value {
            cel::Value::Int(_) => "int",
            cel::Value::UInt(_) => "uint",
            cel::Value::Float(_) => "double",
            cel::Value::String(_) => "string",
            cel::Value::Bool(_) => "bool",
            cel::Value::List(_) => "list",
            cel::Value::Map(_) => "map",
            cel::Value::Null => "null_type",
            cel::Value::Bytes(_) => "bytes",
            _ => "other",
        };
        format!("<cel type {kind}>")
    });
    Some(())
}

/// Evaluates `rule` of the schema node at the dotted `path` against `object`,
/// returning the failure as the validator would phrase it.
fn evaluate_with_type_function(schema: &Value, object: &Value, path: &str, rule: &str) -> Option<String> {
    let (mut node, mut value) = (schema, object);
    for field in path.split('.').filter(|f| !f.is_empty()) {
        node = &node["properties"][field];
        value = &value[field];
    }
    let declared = node["x-kubernetes-validations"]
        .as_array()
        .and_then(|rules| rules.iter().find(|r| r["rule"] == rule));
    let message = declared
        .and_then(|d| d["message"].as_str())
        .map_or_else(|| format!("failed rule: {rule}"), String::from);
    let program = match cel::Program::compile(rule) {
        Ok(program) => program,
        Err(error) => return Some(format!("{path}: {rule:?} does not compile: {error}")),
    };
    let mut ctx = cel::Context::default().with_all();
    with_type_function(&mut ctx)?;
    ctx.add_variable("self", value.clone()).ok()?;
    match program.execute(&ctx) {
        Ok(cel::Value::Bool(true)) => None,
        Ok(cel::Value::Bool(false)) => Some(format!("{path}: {message}")),
        other => Some(format!("{path}: {rule:?} evaluated to {other:?}")),
    }
}

/// `path: message` of every place where `object` (of `kind`) breaks the
/// structure of its schema: types, required fields, bounds, enums.
pub fn schema_errors(kind: &str, object: &Value) -> Vec<String> {
    let Some((schema, _)) = compiled(kind) else {
        return vec![format!("{kind} is not one of serin's kinds")];
    };
    let mut errors = Vec::new();
    // metadata is the API server's to check.
    if let (Some(properties), Some(fields)) = (schema["properties"].as_object(), object.as_object()) {
        for (field, value) in fields {
            if field != "metadata"
                && let Some(node) = properties.get(field)
            {
                structure(node, value, field, &mut errors);
            }
        }
    }
    errors
}

fn structure(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if value.is_null() {
        if schema["nullable"] != true {
            errors.push(format!("{path}: must not be null"));
        }
        return;
    }
    if schema["x-kubernetes-int-or-string"] == true {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            errors.push(format!("{path}: must be an integer or a string"));
        }
        return;
    }
    let fits = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !fits {
        let want = schema["type"].as_str().unwrap_or_default();
        errors.push(format!("{path}: must be of type {want}"));
        return;
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        errors.push(format!("{path}: must be one of {}", Value::from(options.clone())));
    }
    if let Some(number) = value.as_f64() {
        if let Some(minimum) = schema["minimum"].as_f64()
            && number < minimum
        {
            errors.push(format!("{path}: should be greater than or equal to {minimum}"));
        }
        if let Some(maximum) = schema["maximum"].as_f64()
            && number > maximum
        {
            errors.push(format!("{path}: should be less than or equal to {maximum}"));
        }
    }
    if let Some(text) = value.as_str() {
        let length = text.chars().count() as u64;
        if schema["maxLength"].as_u64().is_some_and(|max| length > max) {
            errors.push(format!("{path}: may not be longer than {}", schema["maxLength"]));
        }
        if schema["minLength"].as_u64().is_some_and(|min| length < min) {
            errors.push(format!("{path}: should be at least {} long", schema["minLength"]));
        }
    }
    if let Some(items) = value.as_array() {
        if schema["maxItems"].as_u64().is_some_and(|max| items.len() as u64 > max) {
            errors.push(format!("{path}: must have at most {} items", schema["maxItems"]));
        }
        if schema["minItems"]
            .as_u64()
            .is_some_and(|min| (items.len() as u64) < min)
        {
            errors.push(format!("{path}: must have at least {} items", schema["minItems"]));
        }
        for (index, item) in items.iter().enumerate() {
            structure(&schema["items"], item, &format!("{path}[{index}]"), errors);
        }
    }
    if let Some(fields) = value.as_object() {
        for required in schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !fields.contains_key(required) {
                errors.push(format!("{path}.{required}: Required value"));
            }
        }
        let properties = schema["properties"].as_object();
        for (field, value) in fields {
            match properties.and_then(|p| p.get(field)) {
                Some(node) => structure(node, value, &format!("{path}.{field}"), errors),
                None => {
                    if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                        structure(extra, value, &format!("{path}.{field}"), errors);
                    } else if properties.is_some() && schema["x-kubernetes-preserve-unknown-fields"] != true {
                        errors.push(format!("{path}.{field}: unknown field"));
                    }
                }
            }
        }
    }
}
