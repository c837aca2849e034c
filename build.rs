//! Embeds one example envelope per inbound event type, taken from `fixtures/` (the seed's own
//! examples: files without `--` in their name), for `hookgate trigger`.

use std::collections::BTreeMap;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=fixtures");
    let mut examples: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut files: Vec<_> = std::fs::read_dir("fixtures")
        .expect("fixtures/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| !p.to_string_lossy().contains("--"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("fixture readable");
        let fixture: serde_json::Value = serde_json::from_str(&text).expect("fixture is JSON");
        let request = &fixture["request"];
        if let Some(event_type) = request["event_type"].as_str() {
            examples
                .entry(event_type.to_string())
                .or_insert_with(|| request.clone());
        }
    }
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("trigger_examples.json");
    std::fs::write(out, serde_json::to_string(&examples).expect("serializable")).expect("written");
}
