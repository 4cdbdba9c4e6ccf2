//! The import arrows: main/cli -> controller -> {plan, analysis, traffic} -> api.
//! A module may name only the modules below it, so the pure core stays free of
//! IO and each seam can change alone.
use std::path::{Path, PathBuf};

/// (module, the crate modules it must never name)
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "api",
        &["plan", "analysis", "traffic", "controller", "cli", "telemetry"],
    ),
    ("plan", &["analysis", "traffic", "controller", "cli", "telemetry"]),
    ("analysis", &["controller", "cli"]),
    ("traffic", &["controller", "cli"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::<module>` a file names, with its line number.
fn named_modules(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        for (at, _) in line.match_indices("crate::") {
            let module: String = line[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push((number + 1, module));
        }
    }
    found
}

#[test]
fn modules_name_only_the_modules_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    let mut files_read = 0;
    for (module, forbidden) in FORBIDDEN {
        let mut files = Vec::new();
        rust_files(&src.join(module), &mut files);
        assert!(!files.is_empty(), "src/{module} has no files");
        for file in files {
            files_read += 1;
            let text = std::fs::read_to_string(&file).unwrap();
            for (line, named) in named_modules(&text) {
                if forbidden.contains(&named.as_str()) {
                    let shown = file.strip_prefix(&src).unwrap_or(&file).display().to_string();
                    broken.push(format!("src/{shown}:{line} names crate::{named}"));
                }
            }
        }
    }
    assert!(files_read > 20, "read only {files_read} files");
    assert!(broken.is_empty(), "arrows broken:\n{}", broken.join("\n"));
}

#[test]
fn the_scanner_sees_a_named_module() {
    let found = named_modules("use crate::controller::FIELD_MANAGER;\nlet x = crate::api::X;");
    assert_eq!(found, [(1, "controller".to_string()), (2, "api".to_string())]);
}

/// A file's module path under src/: `plan/canary.rs` is `plan::canary`,
/// `plan/mod.rs` is `plan`, `lib.rs` is the crate root.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut path: Vec<String> = relative.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    if matches!(path.last().map(String::as_str), Some("mod" | "lib")) {
        path.pop();
    }
    path
}

/// The paths a file's code names through `crate::`, `super::` and `self::`
/// (a mod.rs naming its children without a prefix is the module tree, not an import)
/// (each item of a `{..}` group separately), resolved against the file's own
/// module. Comments and the file's inline test module are not code it runs on.
fn named_paths(module: &[String], text: &str) -> Vec<Vec<String>> {
    let code: String = text
        .split("#[cfg(test)]\nmod tests {")
        .next()
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    for keyword in ["crate::", "super::", "self::"] {
        for (at, _) in code.match_indices(keyword) {
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_' || bytes[at - 1] == b':') {
                continue;
            }
            let base: Vec<String> = match keyword {
                "crate::" => Vec::new(),
                "super::" => module[..module.len().saturating_sub(1)].to_vec(),
                _ => module.to_vec(),
            };
            paths_at(&code[at + keyword.len()..], base, &mut found);
        }
    }
    found
}

/// Reads `a::b::{c, d::e}` at the start of `rest`, appending each full path.
fn paths_at(rest: &str, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut rest = rest;
    loop {
        let ident: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if ident.is_empty() {
            break;
        }
        rest = &rest[ident.len()..];
        if ident != "self" {
            prefix.push(ident);
        }
        match rest.strip_prefix("::") {
            Some(next) => rest = next,
            None => break,
        }
    }
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    paths_at(group[start..i].trim(), prefix.clone(), out);
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    paths_at(group[start..i].trim(), prefix.clone(), out);
                    start = i + 1;
                }
                _ => {}
            }
        }
    }
    out.push(prefix);
}

/// The longest module path in `modules` that `path` starts with.
fn resolve<'m>(modules: &'m [Vec<String>], path: &[String]) -> Option<&'m Vec<String>> {
    modules.iter().filter(|m| path.starts_with(m)).max_by_key(|m| m.len())
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // main.rs and src/bin are crates of their own, outside serin's module tree.
    files.retain(|f| f.file_name().is_some_and(|n| n != "main.rs") && !f.starts_with(src.join("bin")));
    let modules: Vec<Vec<String>> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); modules.len()];
    for (from, file) in files.iter().enumerate() {
        let text = std::fs::read_to_string(file).unwrap();
        for path in named_paths(&modules[from], &text) {
            if let Some(target) = resolve(&modules, &path) {
                let to = modules.iter().position(|m| m == target).unwrap();
                // Naming the crate root, or a module naming its own parent's items, is not a circle.
                if to != from && !target.is_empty() && !edges[from].contains(&to) {
                    edges[from].push(to);
                }
            }
        }
    }
    let reaches = |start: usize, goal: usize| {
        let mut seen = vec![false; modules.len()];
        let mut stack = vec![start];
        while let Some(at) = stack.pop() {
            if at == goal {
                return true;
            }
            if !std::mem::replace(&mut seen[at], true) {
                stack.extend(&edges[at]);
            }
        }
        false
    };
    let mut circles = Vec::new();
    for (from, targets) in edges.iter().enumerate() {
        for &to in targets {
            if reaches(to, from) {
                circles.push(format!(
                    "{} names {}, which leads back",
                    modules[from].join("::"),
                    modules[to].join("::")
                ));
            }
        }
    }
    assert!(
        edges.iter().map(Vec::len).sum::<usize>() > 50,
        "found too few imports: {edges:?}"
    );
    assert!(circles.is_empty(), "import circles:\n{}", circles.join("\n"));
}

#[test]
fn the_cycle_scanner_reads_groups_and_relative_paths() {
    let module = vec!["plan".to_string(), "canary".to_string()];
    let found = named_paths(
        &module,
        "use super::release::{Round, x::{self, Y}};\n// use crate::cli;\nlet a = crate::api::B;",
    );
    let shown: Vec<String> = found.iter().map(|p| p.join("::")).collect();
    assert!(shown.contains(&"plan::release::Round".to_string()), "{shown:?}");
    assert!(shown.contains(&"plan::release::x::Y".to_string()), "{shown:?}");
    assert!(shown.contains(&"plan::release::x".to_string()), "{shown:?}");
    assert!(shown.contains(&"api::B".to_string()), "{shown:?}");
    assert!(!shown.iter().any(|p| p.starts_with("cli")), "{shown:?}");
}

/// Each function of `text` (outside its inline test module) with its first
/// line and length in lines, by counting braces from each `fn` line: crude,
/// but the planner's code has no braces inside strings or chars that matter.
fn function_lengths(text: &str) -> Vec<(usize, usize)> {
    let code = text.split("#[cfg(test)]\nmod tests {").next().unwrap_or_default();
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let is_fn = [
            "fn ",
            "pub fn ",
            "pub(super) fn ",
            "pub(crate) fn ",
            "const fn ",
            "pub const fn ",
        ]
        .iter()
        .any(|p| trimmed.starts_with(p));
        if !is_fn || trimmed.starts_with("//") {
            continue;
        }
        let mut depth = 0i32;
        let mut opened = false;
        for (offset, body) in lines[start..].iter().enumerate() {
            let body = body.split("//").next().unwrap_or_default();
            if !opened && body.contains(';') && !body.contains('{') {
                break; // a declaration without a body
            }
            depth += body.matches('{').count() as i32 - body.matches('}').count() as i32;
            opened |= body.contains('{');
            if opened && depth <= 0 {
                found.push((start + 1, offset + 1));
                break;
            }
        }
    }
    found
}

#[test]
fn no_function_in_the_planner_is_over_80_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/plan");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.retain(|f| !f.starts_with(src.join("tests")));
    let mut long = Vec::new();
    let mut functions = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, length) in function_lengths(&text) {
            functions += 1;
            if length > 80 {
                long.push(format!(
                    "src/plan/{}:{line} is {length} lines",
                    file.strip_prefix(&src).unwrap().display()
                ));
            }
        }
    }
    assert!(functions > 50, "found only {functions} functions");
    assert!(long.is_empty(), "split these into named pieces:\n{}", long.join("\n"));
}

#[test]
fn the_length_scanner_measures_a_function() {
    let text = "fn a() {\n    if x {\n        y();\n    }\n}\nfn b();\npub(super) fn c() -> X { X }\n";
    assert_eq!(function_lengths(text), [(1, 5), (7, 1)]);
}
