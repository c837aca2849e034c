//! The architecture invariants of `ARCHITECTURE.md` that a grep can check, checked: which parts
//! of the crate each module may name. A failure names the file and the module it should not
//! know.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/`, as (path relative to `src/`, code without comment lines).
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src/ is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("source is readable");
            // Doc links name modules without depending on them.
            let code: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect();
            let relative = path.strip_prefix(&root).expect("under src/");
            (
                relative.to_string_lossy().replace('\\', "/"),
                code.join("\n"),
            )
        })
        .collect()
}

/// The crate's top-level modules a file names: `crate::x…` and `crate::{x, y…}`.
fn crate_modules(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let name = item.trim().split("::").next().unwrap_or("").trim();
                if !name.is_empty() {
                    names.insert(name.to_string());
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    names
}

/// The top-level module a file belongs to (`store` for `store/sql.rs`, `ingest` for
/// `ingest.rs`).
fn module_of(file: &str) -> &str {
    let first = file.split('/').next().unwrap_or(file);
    first.strip_suffix(".rs").unwrap_or(first)
}

/// Fails with every file that names a module `allowed` refuses it.
fn check(rule: &str, applies: impl Fn(&str) -> bool, allowed: impl Fn(&str) -> bool) {
    let mut broken = Vec::new();
    for (file, code) in sources() {
        if !applies(&file) {
            continue;
        }
        for name in crate_modules(&code) {
            if name != module_of(&file) && !allowed(&name) {
                broken.push(format!("{file} names crate::{name}"));
            }
        }
    }
    assert!(broken.is_empty(), "{rule}:\n  {}", broken.join("\n  "));
}

/// The server edge; the delivery client speaks HTTP/1.1 itself, and `http`'s shared types
/// (`HeaderMap`) are not hyper.
#[test]
fn only_the_server_edge_knows_hyper() {
    let broken: Vec<String> = sources()
        .into_iter()
        .filter(|(file, _)| !file.starts_with("http/"))
        .filter(|(_, code)| {
            ["hyper::", "hyper_util::", "http_body_util::"]
                .iter()
                .any(|p| code.contains(p))
        })
        .map(|(file, _)| file)
        .collect();
    assert!(broken.is_empty(), "hyper outside http/: {broken:?}");
}

#[test]
fn imports_flow_one_way_from_the_edge() {
    check(
        "nothing below http/ imports it (only app.rs, which runs it)",
        |file| !file.starts_with("http/") && file != "app.rs",
        |name| name != "http",
    );
    check(
        "only the command line imports app (start-up)",
        |file| !file.starts_with("cli/") && file != "lib.rs",
        |name| name != "app",
    );
    check(
        "only http/ runs the inbound pipeline",
        |file| !file.starts_with("http/"),
        |name| name != "pipeline",
    );
}

#[test]
fn storage_knows_nothing_of_the_rest() {
    check(
        "store/ imports nothing of the crate but clock",
        |file| file.starts_with("store/"),
        |name| name == "clock",
    );
}

#[test]
fn business_rules_never_see_requests() {
    check(
        "apply/ knows the catalog, the validated event and storage, nothing of requests",
        |file| file.starts_with("apply/"),
        |name| ["catalog", "clock", "crypto", "store", "validate"].contains(&name),
    );
    check(
        "the parsing stages are pure: no state, request, pipeline or edge",
        |file| ["envelope.rs", "normalize.rs", "validate.rs", "verify.rs"].contains(&file),
        |name| {
            ![
                "state", "request", "ingest", "pipeline", "http", "rest", "admin", "app", "store",
            ]
            .contains(&name)
        },
    );
}

#[test]
fn the_checker_reads_imports() {
    let code =
        "use crate::store::Store;\nuse crate::{clock, request::Reply};\nx = crate::http::run;";
    let found: Vec<String> = crate_modules(code).into_iter().collect();
    assert_eq!(found, ["clock", "http", "request", "store"]);
    assert_eq!(module_of("store/sql.rs"), "store");
    assert_eq!(module_of("ingest.rs"), "ingest");
}
