//! `{{args.NAME}}` substitution, escaped for where the value lands.
//!
//! Arg values may come from a Release or a Secret, so they are data, never
//! syntax: each renderer escapes a value so it cannot change the structure of
//! the query, URL, header or document it lands in. Only the template is
//! scanned for placeholders, so a value that itself reads `{{args.other}}` is
//! inserted as text, not expanded. Error messages name args, never their
//! values (a value may be a secret).
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

pub type Args = BTreeMap<String, String>;

/// PromQL. Inside a string literal, e.g. `{revision="{{args.hash}}"}`, any
/// value goes: in `"..."` and `'...'` it is escaped as literal content
/// (backslash, the quote, and every control character), so it can neither end
/// the string nor add operators; a raw `` `...` `` string has no escapes, so its
/// values must not contain a backtick. Outside a literal (`> {{args.threshold}}`,
/// `[{{args.window}}]`, as Argo Rollouts templates write them) the value must be
/// a number ([`is_number`]) or a duration ([`is_duration`]), which the PromQL
/// lexer reads as one token (a number may carry a sign, read as unary + or -);
/// any other value is an Err naming the arg. The value is shown in that Err
/// unless its name is in `secret` (read from a Secret).
pub fn promql(query: &str, args: &Args, secret: &BTreeSet<String>) -> Result<String, String> {
    promql_in(ARGS, query, args, secret)
}

/// The judge's per-side placeholders, `{{judge.NAME}}`, in a query whose args
/// are already in, escaped as [`promql`] escapes args.
pub fn judge_promql(query: &str, values: &Args) -> Result<String, String> {
    promql_in(JUDGE, query, values, &BTreeSet::new())
}

/// Placeholders `{{args.NAME}}`, and the judge's `{{judge.NAME}}`.
const ARGS: &str = "args";
const JUDGE: &str = "judge";

fn promql_in(scope: &str, query: &str, args: &Args, secret: &BTreeSet<String>) -> Result<String, String> {
    let placeholders = scan(query, scope)?;
    if placeholders.is_empty() {
        return Ok(query.to_string());
    }
    let lexed = lex_promql(query)?;
    render(query, &placeholders, scope, args, |p, value| {
        if lexed.escaped.contains(&p.start) {
            // `"\{{args.x}}"` would let the template's backslash pair up with
            // the escape we add and end the string.
            return Err(format!(
                "placeholder {} follows a backslash in the PromQL query",
                p.text
            ));
        }
        let Some(literal) = lexed.literals.iter().find(|l| l.open < p.start && p.end <= l.close) else {
            // A signed duration, as in `offset -5m`, is unary minus then one duration token.
            if is_number(value) || is_duration(value.strip_prefix(['+', '-']).unwrap_or(value)) {
                return Ok(value.to_string());
            }
            let got = if secret.contains(p.name) {
                "a value read from a Secret (not shown)".to_string()
            } else {
                format!("{value:?}")
            };
            return Err(format!(
                "arg {:?} is used outside a string literal ({}), so its value must be a number (like 0.05 or 1e3) \
                 or a duration (like 5m or 1h30m); got {got}. To use text, quote the placeholder, e.g. label=\"{}\"",
                p.name, p.text, p.text
            ));
        };
        match literal.quote {
            '`' if value.contains('`') => Err(format!(
                "arg {:?} contains a backtick, which cannot appear in the raw string around {}",
                p.name, p.text
            )),
            '`' => Ok(value.to_string()),
            quote => Ok(escape_quoted(value, quote)),
        }
    })
}

/// The arg whose value an error from this module is about (the template is
/// fine, the value is not), if any: such errors start with `arg "NAME"`.
pub fn faulty_arg(error: &str) -> Option<&str> {
    let name = error.strip_prefix("arg \"")?;
    // Names are letters, digits, '_', '.', '-' (see `is_name_char`): no escapes.
    name.split_once('"').map(|(name, _)| name)
}

/// The name in an "unknown arg" error from this module.
pub fn unknown_arg(error: &str) -> Option<&str> {
    error.strip_prefix("unknown arg {{args.")?.strip_suffix("}}")
}

/// A number as an arg may write it outside a PromQL string literal: an
/// optional sign, then digits with an optional fraction (or a fraction alone),
/// then an optional exponent: `5`, `-0.5`, `.25`, `1e3`, `2.5E-3`. Stricter
/// than PromQL: no hex (`0x1f`), no underscores (`1_000`), no `Inf` or `NaN`
/// (a threshold of NaN makes every comparison false, which reads as a pass),
/// and no bare integer with a leading zero (`010`, which PromQL reads as octal 8).
pub fn is_number(value: &str) -> bool {
    let unsigned = value.strip_prefix(['+', '-']).unwrap_or(value);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction) && !(whole.is_empty() && fraction.is_empty()),
        // PromQL reads a bare integer with a leading zero as octal: `010` is 8.
        None if exponent.is_none() && mantissa.len() > 1 && mantissa.starts_with('0') => false,
        None => !mantissa.is_empty() && digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// A duration as Prometheus parses one (`model.ParseDuration`): one or more
/// `<digits><unit>`, units from `y w d h m s ms`, each at most once and in that
/// order: `5m`, `1h30m`, `90s`, `1d12h`, `500ms`. No sign, no fraction, no spaces.
pub fn is_duration(value: &str) -> bool {
    const UNITS: [&str; 7] = ["y", "w", "d", "h", "m", "s", "ms"];
    let mut rest = value;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        // `ms` before `m`: "5ms" is milliseconds, not minutes then "s".
        let Some(unit) = (next_unit..UNITS.len())
            .filter(|&u| rest.starts_with(UNITS[u]))
            .max_by_key(|&u| UNITS[u].len())
        else {
            return false;
        };
        rest = &rest[UNITS[unit].len()..];
        next_unit = unit + 1;
    }
    !value.is_empty()
}

/// URL: values are percent-encoded, keeping only RFC 3986 unreserved
/// characters, so a value cannot add path segments, query params or fragments.
pub fn url(url: &str, args: &Args) -> Result<String, String> {
    render(url, &scan(url, ARGS)?, ARGS, args, |_, value| {
        Ok(utf8_percent_encode(value, URL_ENCODED).to_string())
    })
}

/// Header values: substituted verbatim, but a value with CR, LF or NUL is an
/// Err (header injection).
pub fn header_value(value: &str, args: &Args) -> Result<String, String> {
    render(value, &scan(value, ARGS)?, ARGS, args, |p, v| {
        if v.contains(['\r', '\n', '\0']) {
            Err(format!(
                "arg {:?} contains CR, LF or NUL, which cannot go into a header value ({})",
                p.name, p.text
            ))
        } else {
            Ok(v.to_string())
        }
    })
}

/// Every string leaf of a JSON tree (a Job spec, a JSON body) gets values
/// verbatim; keys and structure are left as they are, so the tree's shape
/// cannot change whatever the values hold.
pub fn json_tree(value: &serde_json::Value, args: &Args) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match value {
        Value::String(s) => Value::String(text(s, args)?),
        Value::Array(items) => Value::Array(items.iter().map(|v| json_tree(v, args)).collect::<Result<_, _>>()?),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), json_tree(v, args)?)))
                .collect::<Result<_, String>>()?,
        ),
        Value::Null | Value::Bool(_) | Value::Number(_) => value.clone(),
    })
}

/// A non-JSON text body: verbatim substitution.
pub fn text(text: &str, args: &Args) -> Result<String, String> {
    render(text, &scan(text, ARGS)?, ARGS, args, |_, value| Ok(value.to_string()))
}

/// Everything but RFC 3986 unreserved characters (ALPHA / DIGIT / - . _ ~).
const URL_ENCODED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// One `{{args.NAME}}` in a template: byte range and name.
struct Placeholder<'a> {
    start: usize,
    end: usize,
    name: &'a str,
    /// The placeholder as written, for messages.
    text: &'a str,
}

enum Parsed<'a> {
    Placeholder(Placeholder<'a>),
    /// Starts like `{{args` but is not a valid placeholder.
    Malformed,
    /// Some other `{{`: not ours, left alone.
    NotOurs,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Whitespace around the name is ignored, as Argo Rollouts does
/// (`strings.TrimSpace` of the tag): `{{ args.x }}` is `{{args.x}}`.
fn trim_blanks(s: &str) -> &str {
    s.trim_start_matches(char::is_whitespace)
}

/// Parses a placeholder at `start`, where `text` has `{{`.
fn parse_at<'t>(text: &'t str, start: usize, scope: &str) -> Parsed<'t> {
    let inner = trim_blanks(&text[start + 2..]);
    let Some(after_args) = inner.strip_prefix(scope) else {
        return Parsed::NotOurs;
    };
    // `{{argsfoo}}` is someone else's syntax; `{{args}}`, `{{args .x}}` are typos of ours.
    if after_args.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        return Parsed::NotOurs;
    }
    let Some(name_on) = after_args.strip_prefix('.') else {
        return Parsed::Malformed;
    };
    let name_len = name_on.find(|c: char| !is_name_char(c)).unwrap_or(name_on.len());
    let name = &name_on[..name_len];
    let Some(rest) = trim_blanks(&name_on[name_len..]).strip_prefix("}}") else {
        return Parsed::Malformed;
    };
    if name.is_empty() {
        return Parsed::Malformed;
    }
    let end = text.len() - rest.len();
    Parsed::Placeholder(Placeholder {
        start,
        end,
        name,
        text: &text[start..end],
    })
}

/// All placeholders of a template, in order; Err for a malformed one.
fn scan<'t>(text: &'t str, scope: &str) -> Result<Vec<Placeholder<'t>>, String> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = text[at..].find("{{") {
        let start = at + offset;
        match parse_at(text, start, scope) {
            Parsed::Placeholder(p) => {
                at = p.end;
                found.push(p);
            }
            Parsed::Malformed => {
                let shown: String = text[start..].chars().take(40).collect();
                return Err(format!(
                    "malformed placeholder at {shown:?}: write {{{{{scope}.NAME}}}}, NAME of letters, digits, '_', '.', '-'"
                ));
            }
            // `start + 1` is a char boundary: `{` is one byte.
            Parsed::NotOurs => at = start + 1,
        }
    }
    Ok(found)
}

/// Replaces each placeholder with `value_for(placeholder, value)`.
fn render(
    template: &str,
    placeholders: &[Placeholder<'_>],
    scope: &str,
    args: &Args,
    mut value_for: impl FnMut(&Placeholder<'_>, &str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut at = 0;
    for p in placeholders {
        let value = args.get(p.name).ok_or_else(|| match scope {
            ARGS => format!("unknown arg {{{{args.{}}}}}", p.name),
            _ => format!("unknown placeholder {{{{{scope}.{}}}}}", p.name),
        })?;
        out.push_str(&template[at..p.start]);
        out.push_str(&value_for(p, value)?);
        at = p.end;
    }
    out.push_str(&template[at..]);
    Ok(out)
}

/// String literals of a PromQL query, by byte offsets of their quotes.
struct Literal {
    open: usize,
    close: usize,
    quote: char,
}

struct Lexed {
    literals: Vec<Literal>,
    /// Offsets of characters escaped by a backslash inside literals.
    escaped: Vec<usize>,
}

/// Finds string literals the way the PromQL lexer does: `"..."` and `'...'`
/// with backslash escapes and no raw newline, `` `...` `` raw, and `#` comments
/// to the end of the line (quotes in a comment start nothing).
fn lex_promql(query: &str) -> Result<Lexed, String> {
    let mut lexed = Lexed {
        literals: Vec::new(),
        escaped: Vec::new(),
    };
    let mut chars = query.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '#' => {
                for (_, c) in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' | '\'' | '`' => {
                let close = loop {
                    match chars.next() {
                        None => return Err(format!("unterminated string literal at byte {i} of the PromQL query")),
                        Some((j, q)) if q == c => break j,
                        Some((_, '\\')) if c != '`' => {
                            if let Some((k, _)) = chars.next() {
                                lexed.escaped.push(k);
                            }
                        }
                        Some((_, '\n')) if c != '`' => {
                            return Err(format!("unterminated string literal at byte {i} of the PromQL query"));
                        }
                        Some(_) => {}
                    }
                };
                lexed.literals.push(Literal {
                    open: i,
                    close,
                    quote: c,
                });
            }
            _ => {}
        }
    }
    Ok(lexed)
}

/// Escapes `value` as the content of a PromQL string quoted with `quote`.
/// Only the enclosing quote is escaped: PromQL rejects `\'` inside `"..."` and
/// the reverse. `\u` takes exactly four digits, so template text after the
/// value cannot extend an escape.
fn escape_quoted(value: &str, quote: char) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use percent_encoding::percent_decode_str;
    use proptest::prelude::*;
    use serde_json::json;

    fn args(pairs: &[(&str, &str)]) -> Args {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn no_secrets() -> BTreeSet<String> {
        BTreeSet::new()
    }

    #[test]
    fn text_table() {
        let a = args(&[("a", "1"), ("b", "two words"), ("x.y-z_0", "dotted"), ("e", "")]);
        let ok: &[(&str, &str)] = &[
            ("", ""),
            ("plain", "plain"),
            ("{{args.a}}", "1"),
            ("<{{ args.a }}|{{args.b}}>", "<1|two words>"),
            ("{{args.x.y-z_0}}", "dotted"),
            ("[{{args.e}}]", "[]"),
            ("{{{args.a}}}", "{1}"),
            ("{{ not ours }} {{args.a}}", "{{ not ours }} 1"),
            ("{{argsfoo}}", "{{argsfoo}}"),
            ("{{", "{{"),
            ("}}{{args.a}}}}", "}}1}}"),
        ];
        for (template, want) in ok {
            assert_eq!(text(template, &a).as_deref(), Ok(*want), "{template:?}");
        }
        let err: &[(&str, &str)] = &[
            ("{{args.missing}}", "unknown arg {{args.missing}}"),
            ("{{args.}}", "malformed placeholder"),
            ("{{args.a b}}", "malformed placeholder"),
            ("{{args.a}", "malformed placeholder"),
            ("{{args}}", "malformed placeholder"),
            ("{{ args .a }}", "malformed placeholder"),
            ("{{args.a!}}", "malformed placeholder"),
        ];
        for (template, want) in err {
            let got = text(template, &a).unwrap_err();
            assert!(got.contains(want), "{template:?}: {got:?} should contain {want:?}");
        }
    }

    #[test]
    fn values_are_never_expanded() {
        let a = args(&[("a", "{{args.b}}"), ("b", "secret")]);
        assert_eq!(text("{{args.a}}", &a).as_deref(), Ok("{{args.b}}"));
        assert_eq!(header_value("{{args.a}}", &a).as_deref(), Ok("{{args.b}}"));
    }

    #[test]
    fn promql_table() {
        let a = args(&[
            ("rev", "abc123"),
            ("quote", "a\"b"),
            ("single", "it's"),
            ("back", "a`b"),
            ("slash", "a\\b"),
            ("ctl", "a\nb\r\t\u{0}\u{7f}\u{85}"),
            ("svc", "web"),
        ]);
        let ok: &[(&str, &str)] = &[
            ("up", "up"),
            ("up{job=\"{{args.svc}}\"}", "up{job=\"web\"}"),
            ("up{job=\"{{ args.svc }}-{{args.rev}}\"}", "up{job=\"web-abc123\"}"),
            ("up{a=\"{{args.quote}}\"}", "up{a=\"a\\\"b\"}"),
            ("up{a=\"{{args.single}}\"}", "up{a=\"it's\"}"),
            ("up{a='{{args.single}}'}", "up{a='it\\'s'}"),
            ("up{a='{{args.quote}}'}", "up{a='a\"b'}"),
            ("up{a=\"{{args.slash}}\"}", "up{a=\"a\\\\b\"}"),
            ("up{a=\"{{args.ctl}}\"}", "up{a=\"a\\nb\\r\\t\\u0000\\u007f\\u0085\"}"),
            ("up{a=`{{args.rev}}`}", "up{a=`abc123`}"),
            ("up{a=`{{args.quote}}`}", "up{a=`a\"b`}"),
            // Escapes in the template before the placeholder are kept.
            ("up{a=\"\\\"{{args.rev}}\"}", "up{a=\"\\\"abc123\"}"),
            // Quotes inside a comment start nothing.
            (
                "up{a=\"{{args.rev}}\"} # it's \"fine\"",
                "up{a=\"abc123\"} # it's \"fine\"",
            ),
            // `{{` that is not ours is left alone, even outside a literal.
            (
                "up{a=\"{{args.rev}}\"} # {{ not ours }}",
                "up{a=\"abc123\"} # {{ not ours }}",
            ),
        ];
        for (query, want) in ok {
            assert_eq!(promql(query, &a, &no_secrets()).as_deref(), Ok(*want), "{query:?}");
        }
        let err: &[(&str, &str)] = &[
            (
                "up{job={{args.svc}}}",
                "arg \"svc\" is used outside a string literal ({{args.svc}}), so its value must be a number",
            ),
            (
                "up > {{ args.rev }}",
                "arg \"rev\" is used outside a string literal ({{ args.rev }})",
            ),
            ("up # {{args.rev}}", "outside a string literal"),
            ("up{a=\"x\"} + {{args.rev}} + up{b=\"y\"}", "got \"abc123\""),
            ("up{a=`{{args.back}}`}", "arg \"back\" contains a backtick"),
            ("up{a=\"{{args.nope}}\"}", "unknown arg {{args.nope}}"),
            ("up{a=\"{{args.rev}}}", "unterminated string literal"),
            ("up{a=\"{{args.rev}}\nb\"}", "unterminated string literal"),
            ("up{a=\"\\{{args.rev}}\"}", "follows a backslash"),
            ("up{a=\"{{args.}}\"}", "malformed placeholder"),
        ];
        for (query, want) in err {
            let got = promql(query, &a, &no_secrets()).unwrap_err();
            assert!(got.contains(want), "{query:?}: {got:?} should contain {want:?}");
        }
        // Messages name args, never values (a value may be a secret).
        let got = promql("up{a=`{{args.back}}`}", &a, &no_secrets()).unwrap_err();
        assert!(!got.contains("a`b"), "{got}");
    }

    #[test]
    fn numbers_and_durations_table() {
        for good in [
            "0", "5", "-5", "+5", "0.5", ".5", "5.", "-.25", "1e3", "1E3", "2.5e-3", "+1e+10", "00.5", "0010e0",
        ] {
            assert!(is_number(good), "{good:?} is a number");
        }
        for bad in [
            "", "-", "+", ".", "e3", "1e", "1e+", "1.2.3", "--1", "+-1", "0x1f", "1_000", "Inf", "+Inf", "NaN", "nan",
            " 1", "1 ", "1,5", "5m", "1e3.5", "١", "007", "010", "-0100", "00",
        ] {
            assert!(!is_number(bad), "{bad:?} is not a number");
        }
        for good in [
            "5m",
            "1h30m",
            "90s",
            "500ms",
            "1d12h",
            "2w",
            "1y",
            "1y2w3d4h5m6s7ms",
            "0s",
            "05m",
            "1m5ms",
        ] {
            assert!(is_duration(good), "{good:?} is a duration");
        }
        for bad in [
            "", "5", "m", "5M", "5 m", "-5m", "+5m", "1.5h", "30m1h", "1h1h", "5ms1s", "5mm", "5msm", "1h30", "5x",
            "5m)", "1µs", "1us", "1ns",
        ] {
            assert!(!is_duration(bad), "{bad:?} is not a duration");
        }
    }

    #[test]
    fn promql_numbers_and_durations_outside_literals() {
        let a = args(&[
            ("threshold", "0.05"),
            ("negative", "-1"),
            ("big", "1e3"),
            ("window", "5m"),
            ("long", "1h30m"),
            ("service-name", "web"),
            ("hostile", "5m) or vector(1"),
            ("nan", "NaN"),
            ("empty", ""),
            ("spaced", " 5m"),
            ("shift", "-5m"),
            ("octal", "010"),
        ]);
        // Argo Rollouts' own examples, as written for it.
        let ok: &[(&str, &str)] = &[
            (
                "sum(rate(errors{service=\"{{args.service-name}}\"}[{{args.window}}])) > {{args.threshold}}",
                "sum(rate(errors{service=\"web\"}[5m])) > 0.05",
            ),
            ("rate(x[{{ args.long }}]) < {{ args.negative }}", "rate(x[1h30m]) < -1"),
            ("x offset {{args.window}} > {{args.big}}", "x offset 5m > 1e3"),
            ("x offset {{args.shift}}", "x offset -5m"),
            ("x{a=\"{{args.hostile}}\"}", "x{a=\"5m) or vector(1\"}"),
        ];
        for (query, want) in ok {
            assert_eq!(promql(query, &a, &no_secrets()).as_deref(), Ok(*want), "{query:?}");
        }
        for name in ["hostile", "nan", "empty", "spaced", "service-name", "octal"] {
            let query = format!("rate(x[{{{{args.{name}}}}}])");
            let got = promql(&query, &a, &no_secrets()).unwrap_err();
            let value = &a[name];
            assert_eq!(
                got,
                format!(
                    "arg {name:?} is used outside a string literal ({{{{args.{name}}}}}), so its value must be a number \
                     (like 0.05 or 1e3) or a duration (like 5m or 1h30m); got {value:?}. To use text, quote the \
                     placeholder, e.g. label=\"{{{{args.{name}}}}}\""
                )
            );
        }
        // A value read from a Secret is never shown.
        let secret = BTreeSet::from(["hostile".to_string()]);
        let got = promql("x > {{args.hostile}}", &a, &secret).unwrap_err();
        assert!(got.contains("got a value read from a Secret (not shown)"), "{got}");
        assert!(!got.contains("vector"), "{got}");
        // Newlines around the name are trimmed, as Argo's strings.TrimSpace does.
        assert_eq!(
            promql("x > {{\n args.threshold\n}}", &a, &no_secrets()).as_deref(),
            Ok("x > 0.05")
        );
    }

    /// A PromQL token, as Prometheus' lexer reads one, for the property tests:
    /// numbers (decimal, hex, exponent), durations, names, strings, operators.
    #[derive(Clone, Debug, PartialEq)]
    enum Token {
        Number(String),
        Duration(String),
        Name(String),
        Other(char),
        /// Something the lexer refuses, e.g. `5x` ("bad number or duration syntax").
        Bad(String),
    }

    fn lex(text: &str) -> Vec<Token> {
        let chars: Vec<char> = text.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next_digit = chars.get(i + 1).is_some_and(char::is_ascii_digit);
            if c.is_whitespace() {
                i += 1;
            } else if c.is_ascii_digit() || (c == '.' && next_digit) {
                // As the lexer: the whole run of number and unit characters is one token.
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || chars[i] == '.'
                        || (matches!(chars[i], '+' | '-') && matches!(chars[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
                let run: String = chars[start..i].iter().collect();
                let hex = run.len() > 2
                    && (run.starts_with("0x") || run.starts_with("0X"))
                    && run[2..].chars().all(|c| c.is_ascii_hexdigit());
                // Rust's float grammar matches PromQL's decimal one for text
                // that starts with a digit or a dot.
                // PromQL parses an integer with base 0 first: `010` is octal 8.
                let octal = run.len() > 1 && run.starts_with('0') && run.bytes().all(|b| b.is_ascii_digit());
                tokens.push(if octal {
                    Token::Bad(run)
                } else if run.parse::<f64>().is_ok() || hex {
                    Token::Number(run)
                } else if is_prometheus_duration(&run) {
                    Token::Duration(run)
                } else {
                    Token::Bad(run)
                });
            } else if c.is_alphabetic() || c == '_' || c == ':' {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | ':')) {
                    i += 1;
                }
                tokens.push(Token::Name(chars[start..i].iter().collect()));
            } else {
                tokens.push(Token::Other(c));
                i += 1;
            }
        }
        tokens
    }

    /// Prometheus' duration regex, written out independently of [`is_duration`]:
    /// `^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$`, not empty.
    fn is_prometheus_duration(text: &str) -> bool {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            if digits == 0 {
                return false;
            }
            let unit_len = rest[digits..]
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len() - digits);
            parts.push(&rest[digits..digits + unit_len]);
            rest = &rest[digits + unit_len..];
        }
        let order = ["y", "w", "d", "h", "m", "s", "ms"];
        let ranks: Option<Vec<usize>> = parts.iter().map(|u| order.iter().position(|o| o == u)).collect();
        ranks.is_some_and(|r| !r.is_empty() && r.windows(2).all(|w| w[0] < w[1]))
    }

    /// The tokens the rendered query must have: the template's around the
    /// placeholder, and in its place an optional sign and one number or duration.
    fn assert_one_token(prefix: &str, value: &str, suffix: &str) -> Result<(), TestCaseError> {
        let query = format!("{prefix}{{{{args.v}}}}{suffix}");
        match promql(&query, &args(&[("v", value)]), &no_secrets()) {
            Ok(rendered) => {
                prop_assert_eq!(&rendered, &format!("{prefix}{value}{suffix}"));
                let unsigned = value.strip_prefix(['+', '-']).unwrap_or(value);
                let mut want = lex(prefix);
                if unsigned.len() < value.len() {
                    want.push(Token::Other(value.chars().next().unwrap_or_default()));
                }
                let inner = lex(unsigned);
                prop_assert!(
                    matches!(inner.as_slice(), [Token::Number(_)] | [Token::Duration(_)]),
                    "{:?} lexes as {:?}",
                    value,
                    inner
                );
                want.extend(inner);
                want.extend(lex(suffix));
                prop_assert_eq!(lex(&rendered), want, "{}", rendered);
            }
            Err(error) => {
                let unsigned = value.strip_prefix(['+', '-']).unwrap_or(value);
                prop_assert!(!is_number(value) && !is_duration(unsigned), "{:?}: {}", value, error);
                prop_assert!(
                    error.starts_with("arg \"v\" is used outside a string literal"),
                    "{}",
                    error
                );
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn promql_value_outside_a_literal_is_one_number_or_duration(
            value in prop_oneof!["[-+0-9.eEywdhms]{0,10}", any::<String>()],
        ) {
            assert_one_token("sum(rate(x{a=\"b\"}[1m])) > ", &value, "")?;
            assert_one_token("rate(x[", &value, "]) and x offset 5m")?;
        }

        #[test]
        fn promql_numbers_and_durations_are_accepted_outside_a_literal(
            value in prop_oneof![
                // No bare integer with a leading zero: PromQL reads that as octal.
                "[-+]?(0|[1-9][0-9]{0,3})(\\.[0-9]{0,3})?([eE][-+]?[0-9]{1,2})?",
                "[-+]?[0-9]{1,4}(\\.[0-9]{0,3}|[eE][-+]?[0-9]{1,2})",
                "\\.[0-9]{1,3}",
                "([0-9]{1,3}y)?([0-9]{1,3}w)?([0-9]{1,3}d)?([0-9]{1,3}h)?([0-9]{1,3}m)?[0-9]{1,3}(s|ms)",
            ],
        ) {
            prop_assert!(
                promql("x > {{args.v}}", &args(&[("v", &value)]), &no_secrets()).is_ok(),
                "{:?} refused", value
            );
            assert_one_token("rate(x[", &value, "])")?;
        }

        #[test]
        fn promql_value_with_other_characters_is_refused_outside_a_literal(
            (before, other, after) in ("[0-9.eEywdhms]{0,4}", any::<char>(), "[0-9.eEywdhms]{0,4}"),
        ) {
            prop_assume!(!"0123456789.eE+-ywdhms".contains(other));
            let value = format!("{before}{other}{after}");
            let got = promql("x > {{args.v}}", &args(&[("v", &value)]), &no_secrets());
            prop_assert!(got.is_err(), "{:?} accepted: {:?}", value, got);
            // Inside a literal the same value is text, and goes.
            let quoted = promql("x{a=\"{{args.v}}\"}", &args(&[("v", &value)]), &no_secrets());
            prop_assert!(quoted.is_ok(), "{:?} refused inside a literal: {:?}", value, quoted);
        }
    }

    #[test]
    fn url_table() {
        let a = args(&[
            ("app", "web"),
            ("path", "a/b"),
            ("hostile", "x?admin=1&y=2#frag"),
            ("space", "a b+c%"),
            ("unreserved", "AZaz09-._~"),
            ("utf8", "é"),
        ]);
        let ok: &[(&str, &str)] = &[
            ("http://svc/api/{{args.app}}", "http://svc/api/web"),
            ("http://svc/{{args.path}}/x", "http://svc/a%2Fb/x"),
            (
                "http://svc/?q={{args.hostile}}",
                "http://svc/?q=x%3Fadmin%3D1%26y%3D2%23frag",
            ),
            ("http://svc/{{args.space}}", "http://svc/a%20b%2Bc%25"),
            ("http://svc/{{args.unreserved}}", "http://svc/AZaz09-._~"),
            ("http://svc/{{args.utf8}}", "http://svc/%C3%A9"),
            ("http://{{args.app}}.ns:8080/", "http://web.ns:8080/"),
        ];
        for (template, want) in ok {
            assert_eq!(url(template, &a).as_deref(), Ok(*want), "{template:?}");
        }
        assert_eq!(
            url("http://svc/{{args.x}}", &a),
            Err("unknown arg {{args.x}}".to_string())
        );
        assert!(url("http://svc/{{args.x", &a).unwrap_err().contains("malformed"));
    }

    #[test]
    fn header_value_table() {
        let a = args(&[
            ("token", "Bearer abc"),
            ("cr", "a\rb"),
            ("lf", "a\nSet-Cookie: x"),
            ("nul", "a\0"),
            ("tab", "a\tb"),
        ]);
        assert_eq!(header_value("{{args.token}}", &a).as_deref(), Ok("Bearer abc"));
        assert_eq!(header_value("x-{{ args.tab }}", &a).as_deref(), Ok("x-a\tb"));
        assert_eq!(header_value("static", &a).as_deref(), Ok("static"));
        for name in ["cr", "lf", "nul"] {
            let got = header_value(&format!("v={{{{args.{name}}}}}"), &a).unwrap_err();
            assert!(got.contains(&format!("arg {name:?} contains CR, LF or NUL")), "{got}");
            assert!(!got.contains("Set-Cookie"), "{got}");
        }
        assert_eq!(
            header_value("{{args.none}}", &a),
            Err("unknown arg {{args.none}}".to_string())
        );
    }

    #[test]
    fn json_tree_table() {
        let a = args(&[("image", "app:v2"), ("hostile", "\", \"injected\": \"1"), ("n", "3")]);
        let template = json!({
            "template": {"spec": {"containers": [{
                "image": "registry/{{args.image}}",
                "args": ["--n={{args.n}}", "{{args.hostile}}", 5, true, null],
                "{{args.image}}": "keys are left alone",
            }]}}
        });
        let want = json!({
            "template": {"spec": {"containers": [{
                "image": "registry/app:v2",
                "args": ["--n=3", "\", \"injected\": \"1", 5, true, null],
                "{{args.image}}": "keys are left alone",
            }]}}
        });
        assert_eq!(json_tree(&template, &a), Ok(want));
        assert_eq!(json_tree(&json!(7), &a), Ok(json!(7)));
        assert_eq!(
            json_tree(&json!({"a": ["{{args.missing}}"]}), &a),
            Err("unknown arg {{args.missing}}".to_string())
        );
        assert!(json_tree(&json!("{{args.}}"), &a).unwrap_err().contains("malformed"));
    }

    /// A piece of a PromQL query, as the PromQL lexer splits it: string
    /// literals (decoded) and everything else.
    #[derive(Debug, PartialEq)]
    enum Piece {
        Code(String),
        Literal { quote: char, value: String },
    }

    /// Test-only tokenizer: splits a query into code and decoded string
    /// literals, panicking on anything the PromQL lexer would reject.
    fn tokenize(query: &str) -> Vec<Piece> {
        let mut pieces = Vec::new();
        let mut code = String::new();
        let mut chars = query.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '#' => {
                    code.push(c);
                    while let Some(&n) = chars.peek() {
                        if n == '\n' {
                            break;
                        }
                        code.push(n);
                        chars.next();
                    }
                }
                '"' | '\'' | '`' => {
                    pieces.push(Piece::Code(std::mem::take(&mut code)));
                    let mut value = String::new();
                    loop {
                        let n = chars.next().expect("unterminated literal");
                        if n == c {
                            break;
                        }
                        if c == '`' {
                            value.push(n);
                            continue;
                        }
                        assert_ne!(n, '\n', "raw newline in a quoted literal");
                        if n != '\\' {
                            value.push(n);
                            continue;
                        }
                        let e = chars.next().expect("dangling backslash");
                        match e {
                            'a' => value.push('\u{7}'),
                            'b' => value.push('\u{8}'),
                            'f' => value.push('\u{c}'),
                            'n' => value.push('\n'),
                            'r' => value.push('\r'),
                            't' => value.push('\t'),
                            'v' => value.push('\u{b}'),
                            '\\' => value.push('\\'),
                            'u' => {
                                let hex: String = (0..4).map(|_| chars.next().expect("short \\u")).collect();
                                let code = u32::from_str_radix(&hex, 16).expect("hex");
                                value.push(char::from_u32(code).expect("scalar"));
                            }
                            e if e == c => value.push(e),
                            e => panic!("escape \\{e} is invalid in a {c}-quoted PromQL string"),
                        }
                    }
                    pieces.push(Piece::Literal { quote: c, value });
                }
                c => code.push(c),
            }
        }
        pieces.push(Piece::Code(code));
        pieces
    }

    const QUERY: &str = r#"sum(rate(http_requests_total{revision="{{args.rev}}",code=~"5.."}[1m]))"#;

    /// Renders QUERY with `value` and checks that it differs from the template
    /// only inside the revision literal, which decodes back to `value`.
    fn assert_structure_kept(value: &str) {
        let rendered = promql(QUERY, &args(&[("rev", value)]), &no_secrets()).expect("renders");
        let want_text = QUERY.replace("{{args.rev}}", &escape_quoted(value, '"'));
        assert_eq!(rendered, want_text);
        let template = tokenize(QUERY);
        let output = tokenize(&rendered);
        assert_eq!(template.len(), output.len(), "{rendered}");
        for (t, o) in template.iter().zip(&output) {
            match (t, o) {
                (Piece::Literal { value: tv, .. }, Piece::Literal { quote, value: ov }) if tv == "{{args.rev}}" => {
                    assert_eq!(*quote, '"');
                    assert_eq!(ov, value);
                }
                (t, o) => assert_eq!(t, o, "{rendered}"),
            }
        }
    }

    #[test]
    fn promql_hostile_values_keep_structure() {
        for value in [
            "x\"} or vector(1) #",
            "\"} + on() vector(1000)",
            "{{args.other}}",
            "{{args.rev}}",
            "\\\"",
            "\\",
            "a\nb",
            "a\r\n# comment\nb",
            "'",
            "`",
            "\u{0}\u{1b}[2J\u{7f}\u{9f}",
            "é😀\u{2028}",
            "",
        ] {
            assert_structure_kept(value);
        }
    }

    #[test]
    fn promql_single_and_raw_literals_keep_structure() {
        let query = "up{a='{{args.v}}', b=`{{args.v}}`}";
        for value in ["x'} or vector(1) #", "\\'", "a\nb", "\"", "{{args.v}}"] {
            let rendered = promql(query, &args(&[("v", value)]), &no_secrets()).expect("renders");
            let pieces = tokenize(&rendered);
            assert_eq!(
                pieces,
                vec![
                    Piece::Code("up{a=".into()),
                    Piece::Literal {
                        quote: '\'',
                        value: value.into()
                    },
                    Piece::Code(", b=".into()),
                    Piece::Literal {
                        quote: '`',
                        value: value.into()
                    },
                    Piece::Code("}".into()),
                ],
                "{rendered}"
            );
        }
    }

    proptest! {
        #[test]
        fn promql_any_value_keeps_structure(value in any::<String>()) {
            assert_structure_kept(&value);
        }

        #[test]
        fn promql_any_value_in_single_quotes_decodes(value in any::<String>()) {
            let rendered = promql("up{a='{{args.v}}'}", &args(&[("v", &value)]), &no_secrets()).expect("renders");
            let pieces = tokenize(&rendered);
            prop_assert_eq!(pieces, vec![
                Piece::Code("up{a=".into()),
                Piece::Literal { quote: '\'', value: value.clone() },
                Piece::Code("}".into()),
            ]);
        }

        #[test]
        fn url_any_value_stays_in_its_segment(value in any::<String>()) {
            let (prefix, suffix) = ("https://svc.example/api/v1/", "/errors?window=5m&x=1#top");
            let template = format!("{prefix}{{{{args.app}}}}{suffix}");
            let rendered = url(&template, &args(&[("app", &value)])).expect("renders");
            let encoded = rendered
                .strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(suffix))
                .expect("template text kept");
            prop_assert!(
                encoded.chars().all(|c| c.is_ascii_alphanumeric() || "-._~%".contains(c)),
                "{}", encoded
            );
            prop_assert!(!encoded.contains(['/', '?', '#', '&']));
            let decoded = percent_decode_str(encoded).decode_utf8().expect("utf-8");
            prop_assert_eq!(decoded.as_ref(), value.as_str());
        }
    }
}
