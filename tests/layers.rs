//! The house rules (ARCHITECTURE §3), so the layers stay one-way: a module of `src/` never
//! names a layer above it, and no file grows past 800 lines. Reads the sources as text: `use
//! crate::…` trees and inline `crate::x::` paths, with comments and string literals left out
//! (the same reading as `shared/tools/layer-check`).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Which top-level modules each layer must not name.
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("http", &["api", "app", "jobs"]),
    ("jobs", &["api", "app", "http", "domain"]),
    ("domain", &["api", "app", "http"]),
    ("realtime", &["api", "app", "http", "domain"]),
    ("runtime", &["api", "app", "http", "domain"]),
    (
        "desktop",
        &["api", "app", "http", "domain", "jobs", "realtime", "auth"],
    ),
    ("auth", &["api", "app", "http", "domain"]),
    (
        "blob",
        &[
            "api", "app", "http", "domain", "jobs", "realtime", "runtime", "auth",
        ],
    ),
    (
        "mail",
        &[
            "api", "app", "http", "domain", "auth", "jobs", "realtime", "runtime",
        ],
    ),
    (
        "entity",
        &[
            "api", "app", "http", "domain", "auth", "jobs", "realtime", "runtime",
        ],
    ),
    ("config", &["api", "app", "http", "domain", "auth", "jobs"]),
    ("state", &["api", "app", "http"]),
    ("error", &["api", "app", "domain", "jobs"]),
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

/// `text` without comments and with string literals emptied.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            c => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    out
}

/// The top-level modules a file names through `crate::`.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        if code[..i].ends_with('$') {
            continue; // `$crate::` in a macro: not a dependency of this file.
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::b, c, d::{e, f}}`: the top-level names of the tree.
            let (mut depth, mut item) = (1, String::new());
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => {
                        names.insert(ident(item.trim()));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if depth == 1 {
                    item.push(ch);
                }
            }
            names.insert(ident(item.trim()));
        } else {
            names.insert(ident(rest));
        }
    }
    names.remove("");
    names
}

#[test]
fn layers_point_one_way_and_files_stay_small() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let forbidden: BTreeMap<&str, &[&str]> = FORBIDDEN.iter().copied().collect();
    let mut problems = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let layer = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        let lines = text.lines().count();
        if lines > 800 {
            problems.push(format!("src/{rel} has {lines} lines (over 800)"));
        }
        let bad: Vec<String> = named_modules(&code_only(&text))
            .into_iter()
            .filter(|m| {
                forbidden
                    .get(layer.as_str())
                    .is_some_and(|f| f.contains(&m.as_str()))
            })
            .collect();
        if !bad.is_empty() {
            problems.push(format!("src/{rel} ({layer}) names {}", bad.join(", ")));
        }
    }
    assert!(
        problems.is_empty(),
        "house rules broken (ARCHITECTURE §3):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_reader_sees_use_trees_and_paths_but_not_comments() {
    let code = code_only(
        "use crate::{api::X, http::{a, b}, error};\n// crate::app::Y\nlet s = \"crate::jobs\";\nfoo(crate::domain::z); $crate::realtime::q",
    );
    let names: Vec<String> = named_modules(&code).into_iter().collect();
    assert_eq!(names, ["api", "domain", "error", "http"]);
}
