//! Replays every saved fuzz input (`fuzz/corpus/<target>/`) and every fixture's envelopes
//! through the fuzz targets, on stable Rust: an input that once crashed a target stays
//! fixed, without the nightly toolchain the fuzzers themselves need (see `fuzz/README.md`).

use std::path::{Path, PathBuf};

use hookgate::fuzz_targets;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs every file of `fuzz/corpus/<target>/` through `run`; returns how many there were.
fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = root().join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    for file in &files {
        let input = std::fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&input));
        assert!(outcome.is_ok(), "{target} fails on {}", file.display());
    }
    files.len()
}

/// Every request envelope of `fixtures/`.
fn fixture_envelopes() -> Vec<serde_json::Value> {
    let mut envelopes = Vec::new();
    for entry in std::fs::read_dir(root().join("fixtures")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let fixture: serde_json::Value = read_json(&path);
        let steps = std::iter::once(&fixture)
            .chain(fixture["setup"].as_array().into_iter().flatten())
            .chain(fixture["then"].as_array().into_iter().flatten());
        envelopes.extend(steps.filter_map(|s| s.get("request")).cloned());
    }
    envelopes
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_saved_fuzz_input_passes_its_target() {
    for (target, run) in [
        ("envelope", fuzz_targets::envelope as fn(&[u8])),
        ("normalize", fuzz_targets::normalize),
        ("signature_header", fuzz_targets::signature_header),
        ("query_string", fuzz_targets::query_string),
        ("body_reader", fuzz_targets::body_reader),
    ] {
        assert!(replay(target, run) > 0, "fuzz/corpus/{target} is empty");
    }
}

#[test]
fn every_fixture_envelope_passes_the_parsing_targets() {
    let envelopes = fixture_envelopes();
    assert!(envelopes.len() > 100, "{} envelopes", envelopes.len());
    for envelope in envelopes {
        fuzz_targets::envelope(&serde_json::to_vec(&envelope).unwrap());
        let event_type = envelope["event_type"].as_str().unwrap_or("");
        let input = format!("{event_type}\n{}", envelope["data"]);
        fuzz_targets::normalize(input.as_bytes());
    }
}
