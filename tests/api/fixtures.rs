//! Replays every fixture in `fixtures/` (every request example of the main seed, and a
//! variant per business rule) against the real server: each in a fresh company, setup first,
//! then the request, then the `then` steps that read the stored state back.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::receiver::Receiver;

/// Subset match: expected object keys must match, arrays element by element, "<any>" matches
/// any non-null value. Returns the path of the first mismatch.
fn matches(expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::String(s), a) if s == "<any>" => {
            if a.is_null() {
                Err(format!("{path}: expected a value, got null/missing"))
            } else {
                Ok(())
            }
        }
        (Value::Object(e), Value::Object(a)) => {
            for (k, v) in e {
                matches(v, a.get(k).unwrap_or(&Value::Null), &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!(
                    "{path}: expected {} elements, got {}",
                    e.len(),
                    a.len()
                ));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                matches(ev, av, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Number(e), Value::Number(a)) if e.as_f64() == a.as_f64() => Ok(()),
        (e, a) if e == a => Ok(()),
        (e, a) => Err(format!("{path}: expected {e}, got {a}")),
    }
}

async fn step(
    app: &TestApp,
    key: &hookgate::keys::CreatedKey,
    name: &str,
    label: &str,
    step: &Value,
) -> Result<(), String> {
    if let Some(skills) = step.get("skills").and_then(Value::as_array) {
        let names: Vec<String> = skills
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        let company = key.company_id.clone();
        app.state
            .store
            .write(move |tx| tx.add_skills(&company, &names, 0))
            .await
            .map_err(|e| e.to_string())?;
        return Ok(());
    }
    let request = step
        .get("request")
        .ok_or_else(|| format!("{name} {label}: step without request"))?;
    let sent = app.post(key, request).await;
    let expect = &step["expect"];
    let status = expect["status"].as_u64().unwrap_or(200) as u16;
    if sent.status != status {
        return Err(format!(
            "{name} {label}: {} expected status {status}, got {} {}",
            request["event_type"], sent.status, sent.body
        ));
    }
    if let Some(body) = expect.get("body") {
        matches(body, &sent.body, "body").map_err(|e| {
            format!(
                "{name} {label}: {} {e}; got {}",
                request["event_type"], sent.body
            )
        })?;
    }
    Ok(())
}

#[tokio::test]
async fn every_seed_example_and_rule_fixture() {
    let app = spawn_app().await;
    // Another integration of each fixture's company subscribes to everything, so every
    // outbound event the fixtures cause is delivered (and checked) too.
    let receiver = Receiver::start().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 40,
        "expected every seed example, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        // A fresh company per fixture, with rate limits out of the way.
        let key = app
            .create_key_with(
                &format!("fixture-{i}"),
                "replay",
                hookgate::keys::KeyOptions {
                    per_minute: Some(100_000),
                    per_hour: Some(100_000),
                    ..Default::default()
                },
            )
            .await;
        let observer = app.create_key(&format!("fixture-{i}"), "observer").await;
        app.subscribe(
            &observer,
            json!({"name": "everything", "url": receiver.url, "events": ["*"]}),
        )
        .await;
        let mut result = Ok(());
        for (j, s) in fixture["setup"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            result = step(&app, &key, &name, &format!("setup[{j}]"), s).await;
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = step(&app, &key, &name, "request", &fixture).await;
        }
        if result.is_ok() {
            for (j, s) in fixture["then"].as_array().into_iter().flatten().enumerate() {
                result = step(&app, &key, &name, &format!("then[{j}]"), s).await;
                if result.is_err() {
                    break;
                }
            }
        }
        if let Err(e) = result {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    // Every event is delivered (and the receiver checks each against its schema), and each
    // carries every field of the seed's example of its type.
    let emitted = app
        .count("SELECT count(*) FROM events WHERE event_type NOT LIKE 'webhook.%'")
        .await;
    let delivered = receiver.wait_for(emitted as usize).await;
    assert_eq!(
        delivered.len() as i64,
        emitted,
        "every emitted event is delivered"
    );
    let examples = seed_outbound_examples();
    let mut shapes = Vec::new();
    let mut types = std::collections::BTreeSet::new();
    for delivery in &delivered {
        let body = delivery.json();
        let event_type = body["event_type"].as_str().unwrap_or("").to_string();
        if let Some((example, not_supplied)) = examples.get(&event_type) {
            types.insert(event_type.clone());
            let mut missing = Vec::new();
            missing_fields(&example["data"], &body["data"], "data", &mut missing);
            missing.retain(|path| !not_supplied.contains(path));
            if !missing.is_empty() {
                shapes.push(format!("{event_type} lacks {missing:?}: {body}"));
            }
        }
    }
    assert!(shapes.is_empty(), "{}", shapes.join("\n"));
    assert_eq!(
        types.len(),
        examples.len(),
        "the fixtures cause an event of every type the seed shows an example of"
    );
}

/// The seed's outbound payload examples (`fixtures/outbound/`), by event type, with the
/// fields of each that no inbound operation can supply.
fn seed_outbound_examples() -> std::collections::HashMap<String, (Value, Vec<String>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/outbound");
    std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|path| {
            let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            let not_supplied = file["not_supplied"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            (name, (file["example"].clone(), not_supplied))
        })
        .collect()
}

/// Fields of the free-form maps (and of `changes`) are the sender's own, not a shape.
const FREE_FORM: &[&str] = &[
    "changes",
    "custom_fields",
    "scheduler_notes",
    "people_skill_requirements",
];

/// Paths of `example`'s fields that `actual` lacks. Inside a field that `actual` has as null
/// (nothing known) or as an empty list there is nothing to compare.
fn missing_fields(example: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
    match (example, actual) {
        (Value::Object(fields), Value::Object(have)) => {
            for (name, value) in fields {
                let here = format!("{path}.{name}");
                match have.get(name) {
                    None => out.push(here),
                    Some(_) if FREE_FORM.contains(&name.as_str()) => {}
                    Some(got) => missing_fields(value, got, &here, out),
                }
            }
        }
        (Value::Array(items), Value::Array(have)) => {
            if let Some(first) = items.first() {
                for got in have {
                    missing_fields(first, got, path, out);
                }
            }
        }
        _ => {}
    }
}
