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
