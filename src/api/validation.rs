//! The CRDs' validation rules (x-kubernetes-validations), evaluated offline as
//! the API server would, for `kubectl serin lint` and the CRD tests.
use std::collections::BTreeMap;
use std::sync::OnceLock;

use kube::core::cel::cel::{self, extractors::This};
use kube::core::cel::{CompiledSchema, ErrorKind, KubeCelExt, Validator, apply_defaults, compile_schema};
use serde_json::{Value, json};

use super::crd::crds;

/// The openAPIV3Schema of serin's CRD of `kind`.
pub fn schema_of(kind: &str) -> Option<Value> {
    crds().into_iter().find(|crd| crd.spec.names.kind == kind).and_then(|crd| {
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
    let kinds = ["int", "uint", "double", "string", "bool", "list", "map", "null_type", "bytes"];
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
