//! Judging a provider result with a metric's CEL conditions.
//!
//! The result is bound to the CEL variable `result`. Every JSON number becomes a
//! CEL double, whatever its spelling: JSON has one number type, Prometheus
//! samples are floats, an encoder may write 0.0 as `0`, and a ratio such as
//! `result.errors / result.total` must not silently become integer division.
//! Arithmetic mixing a value with an int literal is an evaluation error (loud,
//! not wrong): write `result.n + 1.0`.
//!
//! Two quirks of the cel crate (0.13) would judge silently wrong, so the parsed
//! expression is rewritten before it runs:
//! - `==` is false across numeric types (`0.0 == 0`), though `<` works; `==`
//!   and `!=` go to a numeric-aware equality, so `result.errors == 0` holds;
//! - selecting a field of a non-map (`result.x` on a number or null) yields
//!   `false`; field selection goes to a strict lookup that is an error instead.
//!
//! The crate's parser and interpreter recurse deeply: in a debug build a dozen
//! nested parentheses overflow a 2 MiB stack, which aborts the whole process.
//! Expressions come from users, so their size and bracket count are capped and
//! the CEL work runs on one long-lived thread with a large stack (reserved,
//! touched only as needed), not a thread per evaluation. That thread also turns
//! a panic inside the crate into an Err, and lives on.
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, mpsc};

use cel::common::ast::{CallExpr, EntryExpr, Expr, LiteralValue, operators};
use cel::objects::Key;
use cel::{Context, ExecutionError, IdedExpr, Program, Value};

use crate::api::{MeasurementPhase, Metric};

/// Compiles a CEL expression; Err names the problem (for InvalidSpec messages).
pub fn check(expression: &str) -> Result<(), String> {
    within_limits(expression)?;
    let expression = expression.to_string();
    on_big_stack(move || compile(&expression).map(|_| ()))
}

/// Judges one provider result for `metric`:
/// - no data → Inconclusive: null, an empty array, or an array whose elements are
///   all null (the providers encode NaN as null);
/// - failureCondition true → Failed (checked first);
/// - successCondition true → Successful;
/// - both given, neither true → Inconclusive;
/// - only successCondition given and false → Failed;
/// - only failureCondition given and false → Successful;
/// - neither given → Successful.
///
/// Err(message) when an expression fails to compile or evaluate, or does not
/// return a bool (the caller records an Error measurement).
pub fn judge(metric: &Metric, result: &serde_json::Value) -> Result<MeasurementPhase, String> {
    if no_data(result) {
        return Ok(MeasurementPhase::Inconclusive);
    }
    let (metric, result) = (metric.clone(), result.clone());
    on_big_stack(move || judge_data(&metric, &result))
}

fn judge_data(metric: &Metric, result: &serde_json::Value) -> Result<MeasurementPhase, String> {
    let value = to_cel(result);
    let failed = match &metric.failure_condition {
        Some(expression) => Some(evaluate("failureCondition", expression, &value)?),
        None => None,
    };
    if failed == Some(true) {
        return Ok(MeasurementPhase::Failed);
    }
    let succeeded = match &metric.success_condition {
        Some(expression) => Some(evaluate("successCondition", expression, &value)?),
        None => None,
    };
    Ok(match (failed, succeeded) {
        (_, Some(true)) => MeasurementPhase::Successful,
        (Some(_), Some(false)) => MeasurementPhase::Inconclusive,
        (None, Some(false)) => MeasurementPhase::Failed,
        (Some(_), None) | (None, None) => MeasurementPhase::Successful,
    })
}

/// Whether a result carries no measurement at all. NaN cannot appear in a
/// `serde_json::Value`, so the providers hand it over as null.
fn no_data(result: &serde_json::Value) -> bool {
    match result {
        serde_json::Value::Null => true,
        serde_json::Value::Array(items) => items.iter().all(serde_json::Value::is_null),
        _ => false,
    }
}

/// Longest expression accepted: bounds operator chains, which the interpreter
/// recurses through.
const MAX_EXPRESSION_LEN: usize = 2048;
/// Most opening brackets accepted, counted anywhere (string literals too): a
/// bound on nesting that needs no lexing to be sound.
const MAX_BRACKETS: usize = 64;
/// Enough for the worst expression within the limits in a debug build.
const CEL_STACK_BYTES: usize = 128 << 20;

fn within_limits(expression: &str) -> Result<(), String> {
    if expression.len() > MAX_EXPRESSION_LEN {
        return Err(format!(
            "CEL expression is {} bytes long; the limit is {MAX_EXPRESSION_LEN}",
            expression.len()
        ));
    }
    let brackets = expression.chars().filter(|c| matches!(c, '(' | '[' | '{')).count();
    if brackets > MAX_BRACKETS {
        return Err(format!(
            "CEL expression has {brackets} opening brackets; the limit is {MAX_BRACKETS}"
        ));
    }
    Ok(())
}

/// Runs `work` on the CEL thread and waits for its result.
fn on_big_stack<T: Send + 'static>(work: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    let (answer, result) = mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
            .unwrap_or_else(|_| Err("the CEL library failed on this expression (nested too deeply?)".to_string()));
        let _ = answer.send(outcome);
    });
    cel_thread()?
        .send(job)
        .map_err(|_| "the CEL thread has stopped".to_string())?;
    result.recv().map_err(|_| "the CEL thread has stopped".to_string())?
}

type Job = Box<dyn FnOnce() + Send>;

/// The CEL thread's queue, started on first use.
fn cel_thread() -> Result<&'static mpsc::Sender<Job>, String> {
    static QUEUE: OnceLock<Result<mpsc::Sender<Job>, String>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (queue, jobs) = mpsc::channel::<Job>();
            std::thread::Builder::new()
                .name("cel".to_string())
                .stack_size(CEL_STACK_BYTES)
                .spawn(move || jobs.into_iter().for_each(|job| job()))
                .map(|_| queue)
                .map_err(|e| format!("cannot start CEL evaluation: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn compile(expression: &str) -> Result<Program, String> {
    Program::compile(expression).map_err(|errors| {
        // The parser's own Display spans several lines with a caret; status
        // messages want one line.
        let parts: Vec<String> = errors
            .errors
            .iter()
            .map(|e| format!("{}:{}: {}", e.pos.0, e.pos.1, e.msg))
            .collect();
        // Callers quote the expression themselves, next to the field it came from.
        if parts.is_empty() {
            "invalid CEL expression".to_string()
        } else {
            format!("invalid CEL expression: {}", parts.join("; "))
        }
    })
}

/// Names the user cannot write in CEL source (`@` is not an identifier
/// character), so the rewritten calls cannot collide with anything.
const EQUALS: &str = "@serin_equals";
const NOT_EQUALS: &str = "@serin_not_equals";
const FIELD: &str = "@serin_field";

fn evaluate(field: &str, expression: &str, result: &Value) -> Result<bool, String> {
    within_limits(expression).map_err(|e| format!("{field}: {e}"))?;
    let program = compile(expression).map_err(|e| format!("{field} {expression:?}: {e}"))?;
    let mut ast = program.expression().clone();
    rewrite(&mut ast);
    let mut context = Context::default();
    // The crate's own Value equality treats 0 and 0.0 as equal, lists and maps
    // element-wise.
    context.add_function(EQUALS, |a: Value, b: Value| a == b);
    context.add_function(NOT_EQUALS, |a: Value, b: Value| a != b);
    context.add_function(FIELD, select_field);
    context.add_variable_from_value("result", result.clone());
    match Value::resolve(&ast, &context) {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!(
            "{field} {expression:?} returned a {}, not a bool",
            other.type_of()
        )),
        Err(e) => Err(format!("{field} {expression:?}: {e}")),
    }
}

/// Points every `==`, `!=` and field selection in the tree at the functions
/// above. `has(x.f)` (a test-only selection) keeps its own meaning.
fn rewrite(node: &mut IdedExpr) {
    match &mut node.expr {
        Expr::Call(call) => {
            if call.target.is_none() && call.args.len() == 2 {
                if call.func_name == operators::EQUALS {
                    call.func_name = EQUALS.to_string();
                } else if call.func_name == operators::NOT_EQUALS {
                    call.func_name = NOT_EQUALS.to_string();
                }
            }
            if let Some(target) = &mut call.target {
                rewrite(target);
            }
            call.args.iter_mut().for_each(rewrite);
        }
        Expr::Select(select) if !select.test => {
            let mut operand = std::mem::take(&mut *select.operand);
            rewrite(&mut operand);
            let name = IdedExpr {
                id: node.id,
                expr: Expr::Literal(LiteralValue::String(select.field.as_str().into())),
            };
            node.expr = Expr::Call(CallExpr {
                func_name: FIELD.to_string(),
                target: None,
                args: vec![operand, name],
            });
        }
        Expr::Select(select) => rewrite(&mut select.operand),
        Expr::Comprehension(c) => {
            for part in [
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.loop_step,
                &mut c.result,
            ] {
                rewrite(part);
            }
        }
        Expr::List(list) => list.elements.iter_mut().for_each(rewrite),
        Expr::Map(map) => map.entries.iter_mut().for_each(|entry| rewrite_entry(&mut entry.expr)),
        Expr::Struct(s) => s.entries.iter_mut().for_each(|entry| rewrite_entry(&mut entry.expr)),
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
    }
}

fn rewrite_entry(entry: &mut EntryExpr) {
    match entry {
        EntryExpr::MapEntry(e) => {
            rewrite(&mut e.key);
            rewrite(&mut e.value);
        }
        EntryExpr::StructField(f) => rewrite(&mut f.value),
    }
}

/// `target.name`, strictly: a map without the key, or anything but a map, is
/// an error rather than `false`.
fn select_field(target: Value, name: Arc<String>) -> Result<Value, ExecutionError> {
    match &target {
        Value::Map(map) => map
            .get(&Key::String(name.clone()))
            .cloned()
            .ok_or(ExecutionError::NoSuchKey(name)),
        other => Err(ExecutionError::UnexpectedType {
            got: format!("{} (selecting .{name})", other.type_of()),
            want: "map".to_string(),
        }),
    }
}

fn to_cel(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => n.as_f64().map_or(Value::Null, Value::Float),
        serde_json::Value::String(s) => Value::String(s.clone().into()),
        serde_json::Value::Array(items) => Value::List(items.iter().map(to_cel).collect::<Vec<_>>().into()),
        serde_json::Value::Object(fields) => {
            let map: HashMap<String, Value> = fields.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            Value::Map(map.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_evaluation_runs_on_the_one_cel_thread_which_outlives_a_panic() {
        let on_cel = || on_big_stack(|| Ok(std::thread::current().id())).unwrap();
        let first = on_cel();
        assert_ne!(first, std::thread::current().id());
        assert_eq!(on_cel(), first, "no thread per evaluation");
        let panicked: Result<(), String> = on_big_stack(|| panic!("inside the CEL library"));
        assert!(panicked.unwrap_err().contains("the CEL library failed"));
        assert_eq!(on_cel(), first, "the thread lives on");
    }
    use MeasurementPhase::*;
    use serde_json::json;

    fn metric(success: Option<&str>, failure: Option<&str>) -> Metric {
        Metric {
            name: "m".into(),
            success_condition: success.map(str::to_string),
            failure_condition: failure.map(str::to_string),
            ..Metric::default()
        }
    }

    #[test]
    fn judges_table() {
        let cases: &[(Option<&str>, Option<&str>, serde_json::Value, MeasurementPhase)] = &[
            // The documented examples.
            (Some("result >= 0.99"), None, json!(0.995), Successful),
            (Some("result >= 0.99"), None, json!(0.5), Failed),
            (Some("result >= 0.99"), None, json!(1), Successful),
            (Some("result[0] < 500"), None, json!([12.5]), Successful),
            (Some("result[0] < 500"), None, json!([512.0]), Failed),
            (Some("result[0] < 500"), None, json!([500]), Failed),
            // Field access, size, int literal equality against a JSON number.
            (Some("result.errors == 0"), None, json!({"errors": 0}), Successful),
            (Some("result.errors == 0"), None, json!({"errors": 3}), Failed),
            (Some("result.errors == 0"), None, json!({"errors": 0.0}), Successful),
            (Some("result.errors != 0"), None, json!({"errors": 0.0}), Failed),
            (Some("result == 1.0"), None, json!(1), Successful),
            (Some("size(result) == 1"), None, json!([7]), Successful),
            (Some("result == [1, 2]"), None, json!([1.0, 2.0]), Successful),
            (Some("result.all(x, x == 3)"), None, json!([3, 3.0]), Successful),
            (Some("result.exists(x, x != 3)"), None, json!([3, 3.0]), Failed),
            (
                Some("(result == 0 ? 'none' : 'some') == 'none'"),
                None,
                json!([0.0]),
                Failed,
            ),
            (
                Some("(result[0] == 0 ? 'none' : 'some') == 'none'"),
                None,
                json!([0.0]),
                Successful,
            ),
            (Some("{'a': result == 2}.a"), None, json!(2), Successful),
            (Some("[result == 2][0]"), None, json!(2), Successful),
            (
                Some("has(result.a) && !has(result.b)"),
                None,
                json!({"a": 1}),
                Successful,
            ),
            (
                Some("result.a.b.c == 'deep'"),
                None,
                json!({"a": {"b": {"c": "deep"}}}),
                Successful,
            ),
            (
                Some("result.items.all(i, i.ok)"),
                None,
                json!({"items": [{"ok": true}]}),
                Successful,
            ),
            (
                Some("result.items.exists(i, i.ok)"),
                None,
                json!({"items": [{"ok": false}]}),
                Failed,
            ),
            (Some("size(result) > 0"), None, json!(["a"]), Successful),
            (
                Some("result.errors / result.total < 0.01"),
                None,
                json!({"errors": 1, "total": 1000}),
                Successful,
            ),
            (Some("result.status == 'ok'"), None, json!({"status": "ok"}), Successful),
            (Some("result.all(x, x < 5)"), None, json!([1, 2, 3]), Successful),
            (Some("result.all(x, x < 5)"), None, json!([1, 9]), Failed),
            (Some("result"), None, json!(true), Successful),
            (Some("result"), None, json!(false), Failed),
            // No data: Inconclusive whatever the conditions say.
            (Some("true"), None, json!(null), Inconclusive),
            (Some("true"), None, json!([]), Inconclusive),
            (Some("true"), None, json!([null]), Inconclusive),
            (Some("true"), None, json!([null, null]), Inconclusive),
            (None, Some("true"), json!(null), Inconclusive),
            (None, None, json!([]), Inconclusive),
            // Some data among nulls is data.
            (Some("size(result) == 2"), None, json!([null, 1.0]), Successful),
            // Failure is checked first.
            (Some("true"), Some("true"), json!(1), Failed),
            (Some("result > 0"), Some("result > 10"), json!(20), Failed),
            (Some("result > 0"), Some("result > 10"), json!(5), Successful),
            // Both given, neither true.
            (Some("result > 10"), Some("result < 0"), json!(5), Inconclusive),
            // Only one given.
            (None, Some("result > 10"), json!(5), Successful),
            (None, Some("result > 10"), json!(11), Failed),
            // Neither given.
            (None, None, json!(5), Successful),
            (None, None, json!({"a": 1}), Successful),
        ];
        for (success, failure, result, want) in cases {
            let got = judge(&metric(*success, *failure), result);
            assert_eq!(
                got,
                Ok(*want),
                "success={success:?} failure={failure:?} result={result}"
            );
        }
    }

    #[test]
    fn errors_table() {
        let cases: &[(Option<&str>, Option<&str>, serde_json::Value, &str)] = &[
            // Does not compile.
            (
                Some("result >="),
                None,
                json!(1),
                "successCondition \"result >=\": invalid CEL expression: 1:",
            ),
            (
                None,
                Some("result )"),
                json!(1),
                "failureCondition \"result )\": invalid CEL expression",
            ),
            // Not a bool.
            (Some("result + 1.0"), None, json!(1), "returned a float, not a bool"),
            (None, Some("'x'"), json!(1), "returned a string, not a bool"),
            // Fails to evaluate.
            (
                Some("result.missing > 0"),
                None,
                json!({"a": 1}),
                "successCondition \"result.missing > 0\"",
            ),
            (Some("result[3] > 0"), None, json!([1]), "successCondition"),
            (Some("other > 0"), None, json!(1), "other"),
            // Selecting a field of a non-map is an error, not false.
            (
                Some("result.x == 1"),
                None,
                json!(1),
                "got 'float (selecting .x)', want 'map'",
            ),
            (
                None,
                Some("result.data.broken"),
                json!({"data": [1]}),
                "got 'list (selecting .broken)'",
            ),
            (
                None,
                Some("result.data.broken"),
                json!({"data": null}),
                "got 'null (selecting .broken)'",
            ),
            (Some("result.a.b == 1"), None, json!({"a": {}}), "No such key: b"),
            // A failing failureCondition stops before successCondition.
            (Some("true"), Some("result.x"), json!(1), "failureCondition"),
        ];
        for (success, failure, result, want) in cases {
            let got = judge(&metric(*success, *failure), result);
            match got {
                Err(message) => assert!(message.contains(want), "{message:?} should contain {want:?}"),
                Ok(phase) => panic!("success={success:?} failure={failure:?}: want Err, got {phase:?}"),
            }
        }
    }

    /// The worst expressions within the limits run on the big stack, even from
    /// a test thread's small one; beyond the limits they are refused.
    #[test]
    fn deep_expressions_within_limits_run() {
        let n = MAX_BRACKETS;
        let chain = |unit: &str, tail: &str| {
            let times = (MAX_EXPRESSION_LEN - tail.len()) / unit.len();
            format!("{}{tail}", unit.repeat(times))
        };
        // (expression, whether it compiles)
        let cases = [
            (format!("{}true{}", "(".repeat(n), ")".repeat(n)), true),
            (format!("{}1{} == [[1]]", "[".repeat(n - 2), "]".repeat(n - 2)), true),
            (format!("{}1{} != 0", "size(".repeat(n), ")".repeat(n)), true),
            (chain("1.0 + ", "1.0 > 0.0"), true),
            (chain("true && ", "true"), true),
            (chain("!", "true"), true),
            (format!("{}1 > 0", "-".repeat(MAX_EXPRESSION_LEN - 5)), true),
            (
                format!("has(result{})", ".a".repeat((MAX_EXPRESSION_LEN - 12) / 2)),
                true,
            ),
            // Past the parser's own recursion limit (96): an Err, not an abort.
            (chain("false ? 1 : ", "true"), false),
        ];
        for (expression, compiles) in &cases {
            assert!(expression.len() <= MAX_EXPRESSION_LEN);
            assert_eq!(check(expression).is_ok(), *compiles, "{expression:.40}");
            // Ok or Err, but it returns.
            let _ = judge(&metric(Some(expression), None), &json!({"a": 1}));
        }
        assert_eq!(judge(&metric(Some(&cases[0].0), None), &json!(1)), Ok(Successful));
        let too_deep = format!("{}true{}", "(".repeat(n + 1), ")".repeat(n + 1));
        assert!(
            check(&too_deep)
                .unwrap_err()
                .contains("opening brackets; the limit is 64")
        );
        assert!(
            judge(&metric(Some(&too_deep), None), &json!(1))
                .unwrap_err()
                .starts_with("successCondition: CEL")
        );
        let too_long = format!("true{}", " ".repeat(MAX_EXPRESSION_LEN));
        assert!(
            check(&too_long)
                .unwrap_err()
                .contains("2052 bytes long; the limit is 2048")
        );
    }

    #[test]
    fn check_table() {
        assert_eq!(check("result >= 0.99"), Ok(()));
        assert_eq!(check("result[0] < 500 && size(result) > 0"), Ok(()));
        let err = check("result >= ").unwrap_err();
        assert!(err.starts_with("invalid CEL expression: 1:"), "{err}");
        assert!(!err.contains('\n'), "one line: {err:?}");
        assert!(check("").is_err());
        assert!(check("(((").is_err());
    }
}
