//! The layering of ARCHITECTURE.md, checked on the source: each top-level module of `src/` may
//! import only the modules listed for it, so the engine (data → model → reliability → report)
//! never reaches an instrument (dashboard, serve, cli) and no layer reaches one after it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each layer and the layers it may import (besides itself).
const ALLOWED: &[(&str, &[&str])] = &[
    ("support", &[]),
    ("error", &[]),
    ("metrics", &["support"]),
    ("data", &["support", "error"]),
    ("model", &["data", "support", "error"]),
    (
        "reliability",
        &["model", "data", "metrics", "support", "error"],
    ),
    (
        "report",
        &[
            "reliability",
            "model",
            "data",
            "metrics",
            "support",
            "error",
        ],
    ),
    (
        "dashboard",
        &[
            "report",
            "reliability",
            "model",
            "data",
            "metrics",
            "support",
            "error",
        ],
    ),
    (
        "serve",
        &[
            "report",
            "reliability",
            "model",
            "data",
            "metrics",
            "support",
            "error",
        ],
    ),
    (
        "cli",
        &[
            "serve",
            "dashboard",
            "report",
            "reliability",
            "model",
            "data",
            "metrics",
            "support",
            "error",
        ],
    ),
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

/// The top-level modules a file names through `crate::NAME`, in code and comments alike (a
/// doc link to a later layer is a dependency of the reader too).
fn crate_modules(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        if at > 0 && text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `reason_crate::`, not ours
        }
        let rest = &text[at + "crate::".len()..];
        // `crate::{a::x, b}` names several modules at once.
        let names = match rest.strip_prefix('{') {
            Some(group) => group[..group.find('}').unwrap_or(group.len())]
                .split(',')
                .map(str::trim)
                .collect(),
            None => vec![rest],
        };
        for name in names {
            let name: String = name
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn every_layer_imports_only_the_layers_before_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layers: BTreeSet<&str> = ALLOWED.iter().map(|(l, _)| *l).collect();
    let mut violations = Vec::new();
    let mut seen_layers = BTreeSet::new();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let layer = first.trim_end_matches(".rs").to_string();
        if layer == "lib" || layer == "main" {
            continue;
        }
        let (_, allowed) = ALLOWED
            .iter()
            .find(|(l, _)| *l == layer)
            .unwrap_or_else(|| {
                panic!(
                    "{}: a top-level module ARCHITECTURE.md does not place",
                    rel.display()
                )
            });
        seen_layers.insert(layer.clone());
        let text = std::fs::read_to_string(&file).unwrap();
        for used in crate_modules(&text) {
            if used != layer && layers.contains(used.as_str()) && !allowed.contains(&used.as_str())
            {
                violations.push(format!("{} uses crate::{used}", rel.display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering broken:\n{}",
        violations.join("\n")
    );
    // Every listed layer exists, so the table cannot silently outlive a rename.
    let missing: Vec<_> = layers
        .iter()
        .filter(|l| !seen_layers.contains(**l))
        .collect();
    assert!(missing.is_empty(), "layers without files: {missing:?}");
}

#[test]
fn the_scanner_sees_imports_paths_and_doc_links() {
    let text = "use crate::model::x;\nlet a = crate::cli::run();\n/// [`crate::dashboard::App`]\n\
                my_crate::data\nuse crate::{report::plots, support};";
    let found: Vec<String> = crate_modules(text).into_iter().collect();
    assert_eq!(found, ["cli", "dashboard", "model", "report", "support"]);
}
