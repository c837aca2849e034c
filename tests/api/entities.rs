//! Entity rules beyond the fixtures: schema rejections, isolation between companies, skills and work types.
//!
//! - every schema in `schemas/` rejects a missing required field, a wrong type and an
//!   out-of-range value, with the JSON path of the violation (cases built from the schema files,
//!   so they follow the schemas as they evolve);
//! - the same natural key in two companies is two records, and no company's key reaches the
//!   other's records;
//! - every change is stored with the key that made it and its old/new values, beside its
//!   ingest-log row;
//! - skills and work types through the REST API, and the alias forms the fixtures do not show.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use hookgate::keys::{CreatedKey, KeyOptions};
use serde_json::{Map, Value, json};

use crate::helpers::*;

/// A key whose rate limits stay out of the way of tests that send many requests.
async fn unlimited_key(app: &TestApp, company: &str, name: &str) -> CreatedKey {
    app.create_key_with(
        company,
        name,
        KeyOptions {
            per_minute: Some(1_000_000),
            per_hour: Some(1_000_000),
            ..Default::default()
        },
    )
    .await
}

/// Sends `envelope` and asserts the status, with `what` and the body in the failure message.
async fn expect(app: &TestApp, key: &CreatedKey, what: &str, envelope: Value, status: u16) -> Sent {
    let sent = app.post(key, &envelope).await;
    assert_eq!(
        sent.status, status,
        "{what}: {} expected {status}, got {} {}",
        envelope["event_type"], sent.status, sent.body
    );
    sent
}

fn record_id(sent: &Sent) -> String {
    sent.body["record_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no record_id in {}", sent.body))
        .to_string()
}

/// A stored record: (company_id, kind, natural_key, data).
async fn stored(app: &TestApp, record_id: &str) -> Option<(String, String, String, Value)> {
    app.rows(&format!(
        "SELECT company_id, kind, natural_key, data FROM records WHERE record_id = '{record_id}'"
    ))
    .await
    .into_iter()
    .next()
    .map(|mut r| {
        (
            r.text(0).unwrap(),
            r.text(1).unwrap(),
            r.text(2).unwrap(),
            serde_json::from_str(&r.text(3).unwrap()).unwrap(),
        )
    })
}

async fn stored_data(app: &TestApp, record_id: &str) -> Value {
    stored(app, record_id)
        .await
        .unwrap_or_else(|| panic!("record {record_id} is not stored"))
        .3
}

/// Records of `kind` in `company_id` whose data field `field` equals `value`.
async fn stored_by_field(
    app: &TestApp,
    company_id: &str,
    kind: &str,
    field: &str,
    value: &str,
) -> Vec<(String, Value)> {
    let (company, kind, field, value) = (
        company_id.to_string(),
        kind.to_string(),
        field.to_string(),
        value.to_string(),
    );
    let (f, v) = (field.clone(), value.clone());
    app.state
        .store
        .read(move |r| r.list_records(&company, &kind, Some((&f, &v))))
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.data[&field] == Value::String(value.clone()))
        .map(|r| (r.record_id, r.data))
        .collect()
}

// --- schemas -----------------------------------------------------------------------------

fn schemas_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

/// Every `schemas/<event_type>.json` except the envelope's, sorted by event type.
fn event_schemas() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(schemas_dir())
        .expect("schemas/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| {
            let name = p.file_stem()?.to_string_lossy().to_string();
            (name != "envelope").then(|| {
                let text = std::fs::read_to_string(&p).unwrap();
                let schema: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()));
                (name, schema)
            })
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Validates `value` against a schema fragment locally, so the test knows its samples are valid
/// and its bad values really break the keyword under test.
fn locally_valid(schema: &Value, value: &Value) -> bool {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("schema fragment does not compile: {e}: {schema}"))
        .is_valid(value)
}

/// The JSON types a schema fragment allows (empty: any).
fn types_of(schema: &Value) -> Vec<String> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ if schema.get("properties").is_some() => vec!["object".into()],
        _ if schema.get("items").is_some() => vec!["array".into()],
        _ => vec![],
    }
}

fn type_allows(types: &[String], value: &Value) -> bool {
    if types.is_empty() {
        return true;
    }
    let has = |t: &str| types.iter().any(|x| x == t);
    match value {
        Value::Null => has("null"),
        Value::Bool(_) => has("boolean"),
        Value::Number(n) => has("number") || (has("integer") && (n.is_i64() || n.is_u64())),
        Value::String(_) => has("string"),
        Value::Array(_) => has("array"),
        Value::Object(_) => has("object"),
    }
}

/// The fields a valid object must carry: `required`, plus the first alternative of an
/// `anyOf`/`oneOf` of `required` lists.
fn sample_required(schema: &Value) -> Vec<String> {
    let mut out: Vec<String> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    for combinator in ["anyOf", "oneOf"] {
        if let Some(first) = schema[combinator].as_array().and_then(|a| a.first()) {
            for r in first["required"].as_array().into_iter().flatten() {
                let r = r.as_str().unwrap().to_string();
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
    }
    out
}

/// Fields named by an `anyOf`/`oneOf` of `required` lists (removing all of them breaks it).
fn alternative_required(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for combinator in ["anyOf", "oneOf"] {
        for branch in schema[combinator].as_array().into_iter().flatten() {
            for r in branch["required"].as_array().into_iter().flatten() {
                let r = r.as_str().unwrap().to_string();
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
    }
    out
}

/// A minimal valid value for a schema fragment (required fields only, in objects).
fn sample(schema: &Value, path: &str) -> Value {
    let value = sample_unchecked(schema, path);
    assert!(
        locally_valid(schema, &value),
        "the test cannot build a valid value for {path} (got {value}); give the schema an `examples` entry: {schema}"
    );
    value
}

fn sample_unchecked(schema: &Value, path: &str) -> Value {
    if let Some(v) = schema.get("const") {
        return v.clone();
    }
    if let Some(v) = schema["examples"].as_array().and_then(|a| a.first()) {
        return v.clone();
    }
    if let Some(v) = schema["enum"].as_array().and_then(|a| a.first()) {
        return v.clone();
    }
    let types = types_of(schema);
    let ty = types
        .iter()
        .find(|t| *t != "null")
        .cloned()
        .unwrap_or_else(|| "string".to_string());
    match ty.as_str() {
        "object" => {
            let mut object = Map::new();
            for field in sample_required(schema) {
                let fragment = &schema["properties"][&field];
                object.insert(field.clone(), sample(fragment, &format!("{path}/{field}")));
            }
            Value::Object(object)
        }
        "array" => {
            let n = schema["minItems"].as_u64().unwrap_or(0);
            let items = &schema["items"];
            Value::Array(
                (0..n)
                    .map(|i| sample(items, &format!("{path}/{i}")))
                    .collect(),
            )
        }
        "integer" | "number" => {
            // 1 when the range allows it, else the nearest bound.
            let number = |k: &str| schema.get(k).and_then(Value::as_f64);
            let low = number("minimum")
                .or(number("exclusiveMinimum").map(|m| m + 1.0))
                .unwrap_or(f64::MIN);
            let high = number("maximum")
                .or(number("exclusiveMaximum").map(|m| m - 1.0))
                .unwrap_or(f64::MAX);
            let value = 1.0_f64.max(low).min(high);
            if ty == "integer" || value.fract() == 0.0 {
                json!(value as i64)
            } else {
                json!(value)
            }
        }
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => {
            let by_format = match schema["format"].as_str() {
                Some("date") => Some("2025-01-15"),
                Some("date-time") => Some("2025-01-15T10:00:00Z"),
                Some("email") => Some("someone@example.com"),
                Some("uri") | Some("url") => Some("https://example.com/file.jpg"),
                Some("time") => Some("10:00:00Z"),
                _ => None,
            };
            let min = schema["minLength"].as_u64().unwrap_or(0) as usize;
            let candidates: Vec<String> =
                by_format.map(|s| vec![s.to_string()]).unwrap_or_else(|| {
                    ["Sample value", "sample", "08:00", "SAMPLE-1", "a"]
                        .iter()
                        .map(|s| format!("{s}{}", "x".repeat(min.saturating_sub(s.len()))))
                        .collect()
                });
            let first = json!(candidates[0]);
            candidates
                .into_iter()
                .map(Value::String)
                .find(|v| locally_valid(schema, v))
                .unwrap_or(first)
        }
    }
}

/// A value of a JSON type the fragment does not allow, or None when it allows every type.
fn wrong_type(schema: &Value) -> Option<Value> {
    let types = types_of(schema);
    if types.is_empty() {
        return None;
    }
    [
        json!(true),
        json!("wrong type"),
        json!(42),
        json!(["wrong", "type"]),
        json!({"wrong": "type"}),
    ]
    .into_iter()
    .find(|v| !type_allows(&types, v))
}

fn number_near(bound: &Value, delta: f64) -> Value {
    match bound.as_i64() {
        Some(i) if delta.fract() == 0.0 => json!(i + delta as i64),
        _ => json!(bound.as_f64().unwrap() + delta),
    }
}

/// Values of an allowed type that break one constraint keyword each: `(keyword, value)`.
/// Values survive normalization unchanged (lower case, no spaces or dashes).
fn bad_values(schema: &Value) -> Vec<(String, Value)> {
    let types = types_of(schema);
    let mut out = Vec::new();
    if let Some(allowed) = schema["enum"].as_array() {
        let bad = [json!("not_a_valid_value_zz"), json!(987_654_321)]
            .into_iter()
            .find(|v| type_allows(&types, v) && !allowed.contains(v));
        if let Some(bad) = bad {
            out.push(("enum".to_string(), bad));
        }
    }
    if let Some(m) = schema.get("minimum") {
        out.push(("minimum".into(), number_near(m, -1.0)));
    }
    if let Some(m) = schema.get("exclusiveMinimum") {
        out.push(("exclusiveMinimum".into(), m.clone()));
    }
    if let Some(m) = schema.get("maximum") {
        out.push(("maximum".into(), number_near(m, 1.0)));
    }
    if let Some(m) = schema.get("exclusiveMaximum") {
        out.push(("exclusiveMaximum".into(), m.clone()));
    }
    if let Some(n) = schema["maxLength"].as_u64() {
        out.push(("maxLength".into(), json!("x".repeat(n as usize + 1))));
    }
    if let Some(n) = schema["minLength"].as_u64().filter(|n| *n > 0) {
        out.push(("minLength".into(), json!("x".repeat(n as usize - 1))));
    }
    if schema.get("pattern").is_some() {
        out.push(("pattern".into(), json!("%%%")));
    }
    if let Some(format) = schema["format"].as_str() {
        out.push((format!("format {format}"), json!("%%%")));
    }
    if let Some(n) = schema["minItems"].as_u64().filter(|n| *n > 0) {
        let item = sample(&schema["items"], "minItems");
        out.push(("minItems".into(), Value::Array(vec![item; n as usize - 1])));
    }
    if let Some(n) = schema["maxItems"].as_u64() {
        let item = sample(&schema["items"], "maxItems");
        out.push(("maxItems".into(), Value::Array(vec![item; n as usize + 1])));
    }
    out
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// `base` with the value at JSON pointer `ptr` (whose parent exists) replaced by `value`.
fn set_at(base: &Value, ptr: &str, value: Value) -> Value {
    if ptr.is_empty() {
        return value;
    }
    let mut out = base.clone();
    let (parent, last) = ptr.rsplit_once('/').unwrap();
    let last = last.replace("~1", "/").replace("~0", "~");
    match out.pointer_mut(parent) {
        Some(Value::Object(object)) => {
            object.insert(last, value);
        }
        Some(Value::Array(array)) => {
            let i: usize = last.parse().unwrap();
            if i < array.len() {
                array[i] = value;
            } else {
                array.push(value);
            }
        }
        other => panic!("no container at {parent} in {base}: {other:?}"),
    }
    out
}

fn remove_at(base: &Value, ptr: &str, fields: &[String]) -> Value {
    let mut out = base.clone();
    let object = out
        .pointer_mut(ptr)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no object at {ptr:?} in {base}"));
    for f in fields {
        object.remove(f);
    }
    out
}

struct SchemaCase {
    label: String,
    data: Value,
    /// `/data/...` path the rejection must name.
    path: String,
    /// For missing fields: the field names the error must mention.
    missing: Vec<String>,
}

/// Cases for the schema node at JSON pointer `ptr` (inside `data`), whose value in `base` is
/// valid.
fn node_cases(schema: &Value, base: &Value, ptr: &str, cases: &mut Vec<SchemaCase>) {
    let path = format!("/data{ptr}");
    if !ptr.is_empty() {
        if let Some(bad) = wrong_type(schema) {
            assert!(
                !locally_valid(schema, &bad),
                "{path}: {bad} should be a wrong type"
            );
            cases.push(SchemaCase {
                label: format!("wrong type {bad} for {path}"),
                data: set_at(base, ptr, bad),
                path: path.clone(),
                missing: vec![],
            });
        }
        for (keyword, bad) in bad_values(schema) {
            assert!(
                !locally_valid(schema, &bad),
                "{path}: {bad} should break `{keyword}` of {schema}"
            );
            cases.push(SchemaCase {
                label: format!("{keyword}-breaking value {bad} for {path}"),
                data: set_at(base, ptr, bad),
                path: path.clone(),
                missing: vec![],
            });
        }
    }
    let types = types_of(schema);
    if types.iter().any(|t| t == "object") {
        for field in schema["required"].as_array().into_iter().flatten() {
            let field = field.as_str().unwrap().to_string();
            cases.push(SchemaCase {
                label: format!("missing required field `{field}` of {path}"),
                data: remove_at(base, ptr, std::slice::from_ref(&field)),
                path: path.clone(),
                missing: vec![field],
            });
        }
        let alternatives = alternative_required(schema);
        if !alternatives.is_empty() {
            cases.push(SchemaCase {
                label: format!(
                    "none of the alternative required fields {alternatives:?} of {path}"
                ),
                data: remove_at(base, ptr, &alternatives),
                path: path.clone(),
                missing: vec![],
            });
        }
        let current = base.pointer(ptr).cloned().unwrap_or(Value::Null);
        for (field, fragment) in schema["properties"].as_object().into_iter().flatten() {
            let child = format!("{ptr}/{}", escape(field));
            let base = match current.get(field) {
                Some(_) => base.clone(),
                None => set_at(base, &child, sample(fragment, &format!("/data{child}"))),
            };
            node_cases(fragment, &base, &child, cases);
        }
        if let Some(fragment) = schema.get("additionalProperties").filter(|a| a.is_object()) {
            let child = format!("{ptr}/Sample Key");
            let base = set_at(base, &child, sample(fragment, &format!("/data{child}")));
            node_cases(fragment, &base, &child, cases);
        }
    }
    if types.iter().any(|t| t == "array")
        && let Some(items) = schema.get("items").filter(|i| i.is_object())
        && base.pointer(ptr).is_some_and(Value::is_array)
    {
        let child = format!("{ptr}/0");
        let base = set_at(base, &child, sample(items, &format!("/data{child}")));
        node_cases(items, &base, &child, cases);
    }
}

#[tokio::test]
async fn every_schema_rejects_missing_fields_wrong_types_and_out_of_range_values() {
    let app = spawn_app().await;
    let key = unlimited_key(&app, "schemas", "erp").await;
    let schemas = event_schemas();

    // Every inbound event type has its schema, and every schema is an inbound event type.
    let on_disk: BTreeSet<&str> = schemas.iter().map(|(n, _)| n.as_str()).collect();
    let known: BTreeSet<&str> = hookgate::catalog::InboundEvent::ALL
        .iter()
        .map(|e| e.name())
        .collect();
    assert_eq!(
        on_disk, known,
        "schemas/ and the inbound event types differ"
    );
    assert!(
        schemas.len() >= 34,
        "expected a schema per inbound event type"
    );

    let mut cases: Vec<(String, SchemaCase)> = Vec::new();
    let mut failures = Vec::new();
    for (event_type, schema) in &schemas {
        assert_eq!(
            types_of(schema),
            vec!["object".to_string()],
            "{event_type}: data must be an object"
        );
        let baseline = sample(schema, &format!("{event_type} /data"));
        // The baseline passes validation (it may still break a business rule), so every
        // rejection below is caused by the one change the case makes.
        let sent = app
            .post(&key, &envelope(event_type, baseline.clone()))
            .await;
        if sent.status == 400 {
            failures.push(format!(
                "{event_type}: the minimal valid data {baseline} was rejected: {}",
                sent.body
            ));
            continue;
        }
        let mut own = Vec::new();
        node_cases(schema, &baseline, "", &mut own);
        let kinds: BTreeSet<bool> = own.iter().map(|c| c.missing.is_empty()).collect();
        if schema["required"].as_array().is_some_and(|r| !r.is_empty()) {
            assert!(
                kinds.contains(&false),
                "{event_type}: no missing-field case"
            );
        }
        assert!(
            own.iter().any(|c| c.label.starts_with("wrong type")),
            "{event_type}: no wrong-type case"
        );
        cases.extend(own.into_iter().map(|c| (event_type.clone(), c)));
    }
    // Every constraint kind the brief names is exercised somewhere.
    for keyword in [
        "minimum",
        "maximum",
        "maxLength",
        "enum",
        "missing required",
    ] {
        assert!(
            cases.iter().any(|(_, c)| c.label.contains(keyword)),
            "no case for {keyword}"
        );
    }

    app.settle().await;
    let company = key.company_id.clone();
    let records_before = app
        .count(&format!(
            "SELECT COUNT(*) FROM records WHERE company_id = '{company}'"
        ))
        .await;
    let events_before = app
        .count(&format!(
            "SELECT COUNT(*) FROM events WHERE company_id = '{company}'"
        ))
        .await;
    let rejected_before = app.count(&format!(
        "SELECT COUNT(*) FROM ingest_log WHERE key_id = '{}' AND status = 400 AND error_code = 'validation_failed'",
        key.key_id
    )).await;

    let total = cases.len();
    eprintln!("{total} schema cases over {} event types", schemas.len());
    let results: Vec<(String, SchemaCase, Sent)> = futures::stream::iter(cases)
        .map(|(event_type, case)| {
            let app = &app;
            let key = &key;
            async move {
                let sent = app
                    .post(key, &envelope(&event_type, case.data.clone()))
                    .await;
                (event_type, case, sent)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;

    for (event_type, case, sent) in &results {
        let what = format!("{event_type}: {}", case.label);
        if sent.status != 400 || sent.code() != "validation_failed" {
            failures.push(format!(
                "{what}: expected 400 validation_failed, got {} {} (data {})",
                sent.status, sent.body, case.data
            ));
            continue;
        }
        let details = sent.body["error"]["details"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let paths: Vec<&str> = details.iter().filter_map(|d| d["path"].as_str()).collect();
        if paths.is_empty() {
            failures.push(format!("{what}: no details[].path in {}", sent.body));
            continue;
        }
        // Only the changed place is wrong: every violation lies at or under it.
        if let Some(stray) = paths
            .iter()
            .find(|p| **p != case.path && !p.starts_with(&format!("{}/", case.path)))
        {
            failures.push(format!(
                "{what}: violation reported at {stray}, expected only at {}: {}",
                case.path, sent.body
            ));
            continue;
        }
        if case.missing.is_empty() {
            if !paths.contains(&case.path.as_str()) {
                failures.push(format!(
                    "{what}: no violation at {}: {}",
                    case.path, sent.body
                ));
            }
        } else {
            // A missing field is named either in the path (/data/field) or, at its parent's
            // path, in the message.
            for field in &case.missing {
                let named = details.iter().any(|d| {
                    let path = d["path"].as_str().unwrap_or("");
                    path == format!("{}/{field}", case.path)
                        || (path == case.path
                            && d["message"].as_str().unwrap_or("").contains(field.as_str()))
                });
                if !named {
                    failures.push(format!(
                        "{what}: the missing field {field} is not named at {}: {}",
                        case.path, sent.body
                    ));
                }
            }
        }
    }

    // Nothing was stored by the rejected requests, and each one is in the ingest log.
    app.settle().await;
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM records WHERE company_id = '{company}'"
        ))
        .await,
        records_before,
        "a rejected request changed records"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM events WHERE company_id = '{company}'"
        ))
        .await,
        events_before,
        "a rejected request emitted events"
    );
    let rejected = app.count(&format!(
        "SELECT COUNT(*) FROM ingest_log WHERE key_id = '{}' AND status = 400 AND error_code = 'validation_failed'",
        key.key_id
    )).await - rejected_before;
    let expected_rejections = results
        .iter()
        .filter(|(_, _, s)| s.status == 400 && s.code() == "validation_failed")
        .count() as i64;
    assert_eq!(
        rejected, expected_rejections,
        "every validation failure is in the ingest log"
    );
    assert!(
        failures.is_empty(),
        "{} of {total} schema cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// --- isolation between companies -----------------------------------------------------------

/// Creates that every company can make with the same natural keys.
fn shared_creates() -> Vec<Value> {
    vec![
        envelope(
            "employee.created",
            json!({"emp_number": "EMP-1", "name": "Ann Lee", "email": "ann@example.com", "employee_type": "site_lead"}),
        ),
        envelope(
            "project.created",
            json!({"project_code": "PRJ-1", "project_name": "Harbor Tower", "customer_name": "Shared Customer", "location_name": "Main Site"}),
        ),
        envelope(
            "work_order.created",
            json!({"work_order_number": "WO-1", "project_code": "PRJ-1", "phase_name": "Foundation"}),
        ),
        envelope(
            "vendor.created",
            json!({"vendor_name": "Shared Vendor", "rating": 3}),
        ),
        envelope("customer.created", json!({"name": "Other Customer"})),
        envelope(
            "location.created",
            json!({"customer_name": "Other Customer", "name": "Depot"}),
        ),
        envelope(
            "contact.created",
            json!({"customer_name": "Other Customer", "first_name": "Jo", "last_name": "Smith"}),
        ),
        envelope(
            "time_off.created",
            json!({"emp_number": "EMP-1", "start_date": "2025-03-01", "end_date": "2025-03-02"}),
        ),
        envelope(
            "timesheet.created",
            json!({"emp_number": "EMP-1", "timesheet_date": "2025-03-03"}),
        ),
    ]
}

#[tokio::test]
async fn the_same_natural_key_in_two_companies_is_two_records() {
    let app = spawn_app().await;
    let a = unlimited_key(&app, "iso-alpha", "erp").await;
    let b = unlimited_key(&app, "iso-beta", "erp").await;
    assert_ne!(a.company_id, b.company_id);

    for create in shared_creates() {
        let what = create["event_type"].as_str().unwrap().to_string();
        let in_a = record_id(&expect(&app, &a, &format!("{what} in A"), create.clone(), 200).await);
        let in_b = record_id(&expect(&app, &b, &format!("{what} in B"), create.clone(), 200).await);
        assert_ne!(in_a, in_b, "{what}: both companies got the same record");
        let (company_a, kind_a, key_a, data_a) = stored(&app, &in_a).await.expect("A's record");
        let (company_b, kind_b, key_b, data_b) = stored(&app, &in_b).await.expect("B's record");
        assert_eq!(
            (company_a.as_str(), company_b.as_str()),
            (a.company_id.as_str(), b.company_id.as_str()),
            "{what}"
        );
        assert_eq!(
            (&kind_a, &key_a),
            (&kind_b, &key_b),
            "{what}: same kind and natural key"
        );
        assert_eq!(data_a, data_b, "{what}: same data");
        let copies = app
            .count(&format!(
                "SELECT COUNT(*) FROM records WHERE kind = '{kind_a}' AND natural_key = '{}'",
                key_a.replace('\'', "''")
            ))
            .await;
        assert_eq!(copies, 2, "{what}: one record per company");
    }

    // A change through B's key changes B's record only.
    let vendor_a = stored_by_field(
        &app,
        &a.company_id,
        "vendor",
        "vendor_name",
        "Shared Vendor",
    )
    .await;
    let vendor_b = stored_by_field(
        &app,
        &b.company_id,
        "vendor",
        "vendor_name",
        "Shared Vendor",
    )
    .await;
    assert_eq!((vendor_a.len(), vendor_b.len()), (1, 1));
    expect(
        &app,
        &b,
        "B updates its vendor",
        envelope(
            "vendor.updated",
            json!({"vendor_name": "Shared Vendor", "rating": 5}),
        ),
        200,
    )
    .await;
    assert_eq!(stored_data(&app, &vendor_b[0].0).await["rating"], 5);
    assert_eq!(
        stored_data(&app, &vendor_a[0].0).await,
        vendor_a[0].1,
        "A's vendor changed"
    );

    // A delete through B's key deletes B's record only.
    expect(
        &app,
        &b,
        "B deletes its contact",
        envelope(
            "contact.deleted",
            json!({"customer_name": "Other Customer", "first_name": "Jo", "last_name": "Smith"}),
        ),
        200,
    )
    .await;
    assert_eq!(
        stored_by_field(&app, &a.company_id, "contact", "first_name", "Jo")
            .await
            .len(),
        1
    );
    assert_eq!(
        stored_by_field(&app, &b.company_id, "contact", "first_name", "Jo")
            .await
            .len(),
        0
    );

    // Each company's search finds its own project only.
    for (key, other) in [(&a, &b), (&b, &a)] {
        let mine = stored_by_field(&app, &key.company_id, "project", "project_code", "PRJ-1").await;
        let theirs =
            stored_by_field(&app, &other.company_id, "project", "project_code", "PRJ-1").await;
        let search = expect(
            &app,
            key,
            "search the shared project",
            envelope("project.search", json!({"search_term": "harbor towr"})),
            200,
        )
        .await;
        let ids: Vec<&str> = search.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["id"].as_str())
            .collect();
        assert_eq!(ids, vec![mine[0].0.as_str()], "{}", search.body);
        assert!(!ids.contains(&theirs[0].0.as_str()));
        assert_eq!(search.body["count"], 1);
    }
}

#[tokio::test]
async fn one_companys_key_cannot_reach_another_companys_records() {
    let app = spawn_app().await;
    let a = unlimited_key(&app, "owner-co", "erp").await;
    let b = unlimited_key(&app, "intruder-co", "erp").await;
    for create in [
        envelope(
            "employee.created",
            json!({"emp_number": "EMP-A", "name": "Alpha Person", "email": "a@example.com", "employee_type": "office"}),
        ),
        envelope(
            "project.created",
            json!({"project_code": "PRJ-ALPHA", "project_name": "Alpha Only Plaza", "customer_name": "Alpha Only Customer", "location_name": "Alpha Yard"}),
        ),
        envelope(
            "work_order.created",
            json!({"work_order_number": "WO-ALPHA", "project_code": "PRJ-ALPHA", "phase_name": "Alpha Framing"}),
        ),
        envelope(
            "vendor.created",
            json!({"vendor_name": "Alpha Only Vendor"}),
        ),
        envelope(
            "contact.created",
            json!({"customer_name": "Alpha Only Customer", "first_name": "Al", "last_name": "Pha"}),
        ),
        envelope(
            "time_off.created",
            json!({"emp_number": "EMP-A", "start_date": "2025-04-01", "end_date": "2025-04-02"}),
        ),
        envelope(
            "timesheet.created",
            json!({"emp_number": "EMP-A", "timesheet_date": "2025-04-03"}),
        ),
    ] {
        let what = format!("A: {}", create["event_type"]);
        expect(&app, &a, &what, create, 200).await;
    }
    app.settle().await;
    let snapshot_sql = format!(
        "SELECT record_id, data, updated_at FROM records WHERE company_id = '{}'",
        a.company_id
    );
    let snapshot = async |app: &TestApp| -> BTreeMap<String, (String, i64)> {
        app.rows(&snapshot_sql)
            .await
            .into_iter()
            .map(|mut r| (r.text(0).unwrap(), (r.text(1).unwrap(), r.i64(2).unwrap())))
            .collect()
    };
    let before = snapshot(&app).await;
    assert!(before.len() >= 9, "A's records: {before:?}");

    // Updates, closes and deletes of A's records through B's key: 404, as if absent.
    let not_found = [
        envelope(
            "project.updated",
            json!({"project_code": "PRJ-ALPHA", "project_name": "Hijacked"}),
        ),
        envelope(
            "project.closed",
            json!({"project_code": "PRJ-ALPHA", "close_work_orders": true}),
        ),
        envelope("project.deleted", json!({"project_code": "PRJ-ALPHA"})),
        envelope(
            "work_order.updated",
            json!({"work_order_number": "WO-ALPHA", "status": "cancelled"}),
        ),
        envelope(
            "work_order.deleted",
            json!({"work_order_number": "WO-ALPHA"}),
        ),
        envelope(
            "work_order.deleted",
            json!({"project_code": "PRJ-ALPHA", "phase_name": "Alpha Framing"}),
        ),
        envelope(
            "employee.updated",
            json!({"emp_number": "EMP-A", "name": "Hijacked"}),
        ),
        envelope("employee.deleted", json!({"emp_number": "EMP-A"})),
        envelope(
            "vendor.updated",
            json!({"vendor_name": "Alpha Only Vendor", "rating": 1}),
        ),
        envelope(
            "vendor.deleted",
            json!({"vendor_name": "Alpha Only Vendor"}),
        ),
        envelope(
            "customer.updated",
            json!({"name": "Alpha Only Customer", "notes": "hijacked"}),
        ),
        envelope(
            "customer.deleted",
            json!({"customer_name": "Alpha Only Customer"}),
        ),
        envelope(
            "location.updated",
            json!({"customer_name": "Alpha Only Customer", "name": "Alpha Yard", "notes": "x"}),
        ),
        envelope(
            "location.deleted",
            json!({"customer_name": "Alpha Only Customer", "location_name": "Alpha Yard"}),
        ),
        envelope(
            "contact.updated",
            json!({"customer_name": "Alpha Only Customer", "first_name": "Al", "last_name": "Pha", "title": "x"}),
        ),
        envelope(
            "contact.deleted",
            json!({"customer_name": "Alpha Only Customer", "first_name": "Al", "last_name": "Pha"}),
        ),
        envelope(
            "time_off.updated",
            json!({"emp_number": "EMP-A", "start_date": "2025-04-01", "end_date": "2025-04-02", "notes": "x"}),
        ),
        envelope(
            "time_off.deleted",
            json!({"emp_number": "EMP-A", "start_date": "2025-04-01", "end_date": "2025-04-02"}),
        ),
        envelope(
            "timesheet.updated",
            json!({"emp_number": "EMP-A", "timesheet_date": "2025-04-03", "status": "submitted"}),
        ),
        envelope(
            "timesheet.deleted",
            json!({"emp_number": "EMP-A", "timesheet_date": "2025-04-03"}),
        ),
        envelope(
            "report.completion_approved",
            json!({"work_order_number": "WO-ALPHA"}),
        ),
    ];
    let mut failures = Vec::new();
    for request in not_found {
        let sent = app.post(&b, &request).await;
        // The completion approval names a work order, so a missing one may also be a 422.
        let ok = sent.status == 404
            || (request["event_type"] == "report.completion_approved" && sent.status == 422);
        if !ok {
            failures.push(format!(
                "B {} {}: expected 404, got {} {}",
                request["event_type"], request["data"], sent.status, sent.body
            ));
        }
    }
    // References to A's records from B's creates: 422, the reference does not exist for B.
    let unprocessable = [
        envelope(
            "work_order.created",
            json!({"project_code": "PRJ-ALPHA", "phase_name": "Intrusion"}),
        ),
        envelope(
            "time_off.created",
            json!({"emp_number": "EMP-A", "start_date": "2025-05-01", "end_date": "2025-05-01"}),
        ),
        envelope(
            "timesheet.created",
            json!({"emp_number": "EMP-A", "timesheet_date": "2025-05-02"}),
        ),
        envelope(
            "location.created",
            json!({"customer_name": "Alpha Only Customer", "name": "Intrusion"}),
        ),
        envelope(
            "contact.created",
            json!({"customer_name": "Alpha Only Customer", "first_name": "In", "last_name": "Truder"}),
        ),
        envelope(
            "customer.created",
            json!({"name": "Intruder Customer", "account_manager_emp_number": "EMP-A"}),
        ),
        envelope(
            "report.daily_submitted",
            json!({"work_order_number": "WO-ALPHA", "report_date": "2025-04-03"}),
        ),
    ];
    for request in unprocessable {
        let sent = app.post(&b, &request).await;
        if sent.status != 422 {
            failures.push(format!(
                "B {} {}: expected 422, got {} {}",
                request["event_type"], request["data"], sent.status, sent.body
            ));
        }
    }
    // Searches through B's key find nothing of A's.
    let searches = [
        envelope(
            "project.search",
            json!({"search_term": "Alpha Only Plaza", "exact_match": true}),
        ),
        envelope("project.search", json!({"search_term": "alpha"})),
        envelope("project.search", json!({"search_term": "Alpha Only Plaz"})),
        envelope(
            "project.search",
            json!({"search_term": "PRJ-ALPHA", "search_field": "project_code", "exact_match": true}),
        ),
        envelope(
            "work_order.search",
            json!({"search_term": "Alpha Framing", "exact_match": true}),
        ),
        envelope("work_order.search", json!({"search_term": "alpha framin"})),
        envelope(
            "work_order.search",
            json!({"search_term": "WO-ALPHA", "search_field": "work_order_number", "exact_match": true}),
        ),
        envelope(
            "work_order.search",
            json!({"search_term": "Framing", "project_code": "PRJ-ALPHA"}),
        ),
    ];
    for request in &searches {
        let sent = app.post(&b, request).await;
        if sent.status != 200 || sent.body["results"] != json!([]) || sent.body["count"] != 0 {
            failures.push(format!(
                "B {} {}: expected 200 with no results, got {} {}",
                request["event_type"], request["data"], sent.status, sent.body
            ));
        }
    }
    // The same searches through A's key do find A's records (so the searches could match).
    for request in &searches {
        let sent = app.post(&a, request).await;
        if sent.status != 200 || sent.body["count"].as_u64().unwrap_or(0) == 0 {
            failures.push(format!(
                "A {} {}: expected A's own record, got {} {}",
                request["event_type"], request["data"], sent.status, sent.body
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // A's rows are untouched and B's key emitted nothing into A's company.
    app.settle().await;
    assert_eq!(
        snapshot(&app).await,
        before,
        "A's records changed through B's key"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM events WHERE company_id = '{}' AND origin_key_id = '{}'",
            a.company_id, b.key_id
        ))
        .await,
        0
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM records WHERE company_id = '{}'",
            b.company_id
        ))
        .await,
        0,
        "B's failed requests left records behind"
    );
}

#[tokio::test]
async fn searches_never_return_another_companys_records() {
    let app = spawn_app().await;
    let a = unlimited_key(&app, "search-alpha", "erp").await;
    let b = unlimited_key(&app, "search-beta", "erp").await;
    // Similar names in both companies, so that fuzzy matching would pick up B's.
    let mut ids: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (key, label, code, name) in [
        (&a, "a", "PRJ-100", "Skyline Tower"),
        (&a, "a", "PRJ-101", "Skyline Annex"),
        (&b, "b", "PRJ-100", "Skyline Tower"),
        (&b, "b", "PRJ-200", "Skyline Towers East"),
    ] {
        let sent = expect(
            &app,
            key,
            "project",
            envelope(
                "project.created",
                json!({"project_code": code, "project_name": name, "customer_name": "Sky Corp", "location_name": "Lot 1"}),
            ),
            200,
        )
        .await;
        ids.entry(label).or_default().push(record_id(&sent));
        let wo = expect(
            &app,
            key,
            "work order",
            envelope(
                "work_order.created",
                json!({"project_code": code, "phase_name": format!("{name} Steel")}),
            ),
            200,
        )
        .await;
        ids.entry(label).or_default().push(record_id(&wo));
    }
    for request in [
        envelope("project.search", json!({"search_term": "skyline"})),
        envelope("project.search", json!({"search_term": "Skylin Towr"})),
        envelope(
            "project.search",
            json!({"search_term": "Skyline Tower", "exact_match": true}),
        ),
        envelope(
            "project.search",
            json!({"search_term": "PRJ-100", "search_field": "project_code"}),
        ),
        envelope("work_order.search", json!({"search_term": "steel"})),
        envelope(
            "work_order.search",
            json!({"search_term": "Skyline Tower Steel", "exact_match": true}),
        ),
        envelope(
            "work_order.search",
            json!({"search_term": "WO-00001", "search_field": "work_order_number"}),
        ),
    ] {
        for (key, mine, theirs) in [(&a, "a", "b"), (&b, "b", "a")] {
            let sent = expect(&app, key, "search", request.clone(), 200).await;
            let results = sent.body["results"].as_array().unwrap();
            assert!(
                !results.is_empty(),
                "{mine} {}: found nothing: {}",
                request["data"],
                sent.body
            );
            assert_eq!(sent.body["count"], results.len());
            for r in results {
                let id = r["id"].as_str().unwrap_or("");
                assert!(
                    ids[mine].iter().any(|x| x == id) && !ids[theirs].iter().any(|x| x == id),
                    "{mine}'s search {} returned {theirs}'s record {r}",
                    request["data"]
                );
                if let Some(project) = r.get("project") {
                    let pid = project["id"].as_str().unwrap_or("");
                    assert!(ids[mine].iter().any(|x| x == pid), "foreign project in {r}");
                }
            }
        }
    }
}

// --- change history ------------------------------------------------------------------------

/// `(event_type, origin_key_id, company_id, record_id, payload)` of the events an inbound
/// event caused.
async fn events_of(
    app: &TestApp,
    inbound_event_id: &str,
) -> Vec<(String, String, String, String, Value)> {
    app.rows(&format!(
        "SELECT event_type, origin_key_id, company_id, record_id, payload FROM events
         WHERE inbound_event_id = '{inbound_event_id}' ORDER BY seq"
    ))
    .await
    .into_iter()
    .map(|mut r| {
        (
            r.text(0).unwrap(),
            r.text(1).unwrap(),
            r.text(2).unwrap(),
            r.text(3).unwrap(),
            serde_json::from_str(&r.text(4).unwrap()).unwrap(),
        )
    })
    .collect()
}

/// The ingest-log row of an event: (status, key_id, record_id, event_type).
async fn ingest_row(
    app: &TestApp,
    event_id: &str,
) -> Option<(u16, String, Option<String>, String)> {
    app.rows(&format!(
        "SELECT status, key_id, record_id, event_type FROM ingest_log WHERE event_id = '{event_id}'"
    ))
    .await
    .into_iter()
    .next()
    .map(|mut r| {
        (
            r.u16(0).unwrap(),
            r.text(1).unwrap(),
            r.opt_text(2).unwrap(),
            r.text(3).unwrap(),
        )
    })
}

fn event_id(sent: &Sent) -> String {
    sent.body["event_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no event_id in {}", sent.body))
        .to_string()
}

#[tokio::test]
async fn every_change_is_stored_with_its_key_and_old_and_new_values() {
    let app = spawn_app().await;
    let crm = unlimited_key(&app, "audit-co", "crm").await;
    let hr = unlimited_key(&app, "audit-co", "hr").await;
    assert_eq!(crm.company_id, hr.company_id, "two keys of one company");

    let created = expect(
        &app,
        &crm,
        "vendor create",
        envelope(
            "vendor.created",
            json!({"vendor_name": "Audit Vendor", "rating": 3, "city": "Chicago", "notes": "first", "regions": ["Midwest"]}),
        ),
        200,
    )
    .await;
    let vendor = record_id(&created);
    // No settle: the ingest-log row and the events are durable before the 200.
    let create_events = events_of(&app, &event_id(&created)).await;
    assert_eq!(create_events.len(), 1, "{create_events:?}");
    assert_eq!(create_events[0].0, "vendor.created");
    assert_eq!(create_events[0].1, crm.key_id);
    assert_eq!(
        ingest_row(&app, &event_id(&created)).await,
        Some((
            200,
            crm.key_id.clone(),
            Some(vendor.clone()),
            "vendor.created".into()
        ))
    );

    // An update through the other key: rating and regions change, city is sent unchanged.
    let updated = expect(
        &app,
        &hr,
        "vendor update",
        envelope(
            "vendor.updated",
            json!({"vendor_name": "Audit Vendor", "rating": 4.5, "city": "Chicago", "notes": "second", "regions": ["Midwest", "Great Lakes"]}),
        ),
        200,
    )
    .await;
    let update_id = event_id(&updated);
    assert_eq!(record_id(&updated), vendor, "stable record id");
    assert_eq!(
        ingest_row(&app, &update_id).await,
        Some((
            200,
            hr.key_id.clone(),
            Some(vendor.clone()),
            "vendor.updated".into()
        )),
        "the ingest-log row is written with the change"
    );
    let events = events_of(&app, &update_id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let (event_type, origin, company, rid, payload) = &events[0];
    assert_eq!(event_type, "vendor.updated");
    assert_eq!(
        origin, &hr.key_id,
        "the change is tagged with the key that made it"
    );
    assert_eq!(company, &hr.company_id);
    assert_eq!(rid, &vendor);
    assert_eq!(payload["event_type"], "vendor.updated");
    assert_eq!(
        payload["data"]["changes"],
        json!({
            "rating": {"old": 3, "new": 4.5},
            "notes": {"old": "first", "new": "second"},
            "regions": {"old": ["Midwest"], "new": ["Midwest", "Great Lakes"]},
        }),
        "exactly the changed fields, with old and new values"
    );
    let mut row = app
        .row(&format!(
            "SELECT created_by, updated_by FROM records WHERE record_id = '{vendor}'"
        ))
        .await;
    let (created_by, updated_by) = (row.text(0).unwrap(), row.text(1).unwrap());
    assert_eq!(
        (created_by, updated_by),
        (crm.key_id.clone(), hr.key_id.clone())
    );
    let data = stored_data(&app, &vendor).await;
    assert_eq!(
        (data["rating"].clone(), data["notes"].clone()),
        (json!(4.5), json!("second"))
    );

    // A work order status change: every event it causes carries the key and the inbound id.
    expect(
        &app,
        &crm,
        "project",
        envelope(
            "project.created",
            json!({"project_code": "PRJ-AUD", "project_name": "Audit", "customer_name": "Audit Customer", "location_name": "Audit Site"}),
        ),
        200,
    )
    .await;
    let wo = expect(
        &app,
        &crm,
        "work order",
        envelope(
            "work_order.created",
            json!({"project_code": "PRJ-AUD", "phase_name": "Audit Phase", "status": "scheduled", "priority": "low"}),
        ),
        200,
    )
    .await;
    let number = wo.body["work_order_number"].as_str().unwrap().to_string();
    let started = expect(
        &app,
        &hr,
        "work order start",
        envelope(
            "work_order.updated",
            json!({"work_order_number": number, "status": "In Progress", "priority": "low", "phase_name": "Audit Phase"}),
        ),
        200,
    )
    .await;
    let events = events_of(&app, &event_id(&started)).await;
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e.1 == hr.key_id),
        "every event is tagged with the updating key: {events:?}"
    );
    let update = events
        .iter()
        .find(|e| e.0 == "work_order.updated")
        .unwrap_or_else(|| panic!("no work_order.updated in {events:?}"));
    assert_eq!(
        update.4["data"]["changes"],
        json!({"status": {"old": "scheduled", "new": "in_progress"}})
    );
    assert!(
        events.iter().any(|e| e.0 == "work_order.status_changed"),
        "{events:?}"
    );
    assert!(ingest_row(&app, &event_id(&started)).await.is_some());

    // An update that changes nothing is logged and stores no event.
    let same = expect(
        &app,
        &hr,
        "no-op update",
        envelope(
            "vendor.updated",
            json!({"vendor_name": "Audit Vendor", "rating": 4.5, "city": "Chicago"}),
        ),
        200,
    )
    .await;
    assert!(events_of(&app, &event_id(&same)).await.is_empty());
    assert_eq!(
        ingest_row(&app, &event_id(&same)).await.map(|r| r.0),
        Some(200)
    );

    // A rejected update is logged with its event id and leaves no event or change.
    let before = stored_data(&app, &vendor).await;
    expect(
        &app,
        &hr,
        "update of a missing vendor",
        envelope(
            "vendor.updated",
            json!({"vendor_name": "No Such Vendor", "rating": 2}),
        ),
        404,
    )
    .await;
    let project_conflict = expect(
        &app,
        &hr,
        "close with open work orders",
        envelope("project.closed", json!({"project_code": "PRJ-AUD"})),
        409,
    )
    .await;
    assert_eq!(project_conflict.code(), "open_work_orders");
    let failed: Vec<String> = app
        .rows(&format!(
            "SELECT event_id FROM ingest_log WHERE key_id = '{}' AND status IN (404, 409) ORDER BY id",
            hr.key_id
        ))
        .await
        .into_iter()
        .map(|mut r| r.text(0).unwrap())
        .collect();
    assert_eq!(failed.len(), 2, "both rejections are in the ingest log");
    for id in failed {
        assert!(
            events_of(&app, &id).await.is_empty(),
            "a rejected request emitted events"
        );
    }
    assert_eq!(stored_data(&app, &vendor).await, before);
}

// --- skills and work types -------------------------------------------------------------------

#[tokio::test]
async fn skills_through_rest_then_employees_that_use_them() {
    let app = spawn_app().await;
    let key = unlimited_key(&app, "skills-co", "hr").await;
    let other = unlimited_key(&app, "skills-other", "hr").await;
    let token = key.api_token.as_str();

    let empty = app.rest(token, "GET", "/api/v1/skills", None).await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert_eq!(
        (empty.body["data"].clone(), empty.body["count"].clone()),
        (json!([]), json!(0))
    );

    let added = app
        .rest(
            token,
            "POST",
            "/api/v1/skills",
            Some(json!({"names": ["Concrete Finisher", "Framing"]})),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    assert_eq!(added.body["data"]["added"], 2);
    let one = app
        .rest(
            token,
            "POST",
            "/api/v1/skills",
            Some(json!({"name": "Welding"})),
        )
        .await;
    assert_eq!(
        (one.status, one.body["data"]["added"].clone()),
        (201, json!(1)),
        "{}",
        one.body
    );
    let again = app
        .rest(
            token,
            "POST",
            "/api/v1/skills",
            Some(json!({"names": ["framing"]})),
        )
        .await;
    assert_eq!(
        again.body["data"]["added"], 0,
        "skill names are unique regardless of case: {}",
        again.body
    );
    let listed = app.rest(token, "GET", "/api/v1/skills", None).await;
    let names: BTreeSet<&str> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["Concrete Finisher", "Framing", "Welding"])
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM skills WHERE company_id = '{}'",
            key.company_id
        ))
        .await,
        3
    );
    let bad = app
        .rest(
            token,
            "POST",
            "/api/v1/skills",
            Some(json!({"names": [""]})),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);

    // An employee with library skills is created and stores them.
    let employee = expect(
        &app,
        &key,
        "employee with known skills",
        envelope(
            "employee.created",
            json!({"emp_number": "EMP-S1", "name": "Sam Skill", "email": "sam@example.com", "employee_type": "site_worker", "employee_skills": ["Concrete Finisher", "Framing", "Welding"]}),
        ),
        200,
    )
    .await;
    assert_eq!(
        stored_data(&app, &record_id(&employee)).await["employee_skills"],
        json!(["Concrete Finisher", "Framing", "Welding"])
    );

    // Unknown skills: 422 listing every missing one, nothing stored.
    let unknown = expect(
        &app,
        &key,
        "employee with unknown skills",
        envelope(
            "employee.created",
            json!({"emp_number": "EMP-S2", "name": "Una Known", "email": "una@example.com", "employee_type": "site_worker", "employee_skills": ["Framing", "Plumbing", "Roofing"]}),
        ),
        422,
    )
    .await;
    assert_eq!(unknown.code(), "unknown_skills");
    let missing: BTreeSet<&str> = unknown.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        missing,
        BTreeSet::from(["Plumbing", "Roofing"]),
        "{}",
        unknown.body
    );
    let message = unknown.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Plumbing") && message.contains("Roofing"),
        "{message}"
    );
    assert!(
        stored_by_field(&app, &key.company_id, "employee", "emp_number", "EMP-S2")
            .await
            .is_empty()
    );

    // The same on update; the employee keeps its skills.
    let update = expect(
        &app,
        &key,
        "update with unknown skills",
        envelope(
            "employee.updated",
            json!({"emp_number": "EMP-S1", "employee_skills": ["Framing", "Scaffolding"]}),
        ),
        422,
    )
    .await;
    assert_eq!(update.code(), "unknown_skills");
    assert_eq!(update.body["error"]["details"], json!(["Scaffolding"]));
    assert_eq!(
        stored_data(&app, &record_id(&employee)).await["employee_skills"],
        json!(["Concrete Finisher", "Framing", "Welding"])
    );

    // Skills belong to one company.
    let theirs = app
        .rest(&other.api_token, "GET", "/api/v1/skills", None)
        .await;
    assert_eq!(theirs.body["data"], json!([]), "{}", theirs.body);
    let foreign = expect(
        &app,
        &other,
        "another company's skill",
        envelope(
            "employee.created",
            json!({"emp_number": "EMP-S1", "name": "Sam Other", "email": "so@example.com", "employee_type": "office", "employee_skills": ["Framing"]}),
        ),
        422,
    )
    .await;
    assert_eq!(foreign.body["error"]["details"], json!(["Framing"]));

    // The REST API wants the key's management token, never its signing secret.
    let secret = app.rest(&key.secret, "GET", "/api/v1/skills", None).await;
    assert_eq!(secret.status, 401, "{}", secret.body);
    let none = app
        .send(app.client.get(format!("{}/api/v1/skills", app.base)))
        .await;
    assert_eq!((none.status, none.code()), (401, "token_missing"));
}

#[tokio::test]
async fn work_types_through_rest_and_a_custom_type_without_work_order() {
    let app = spawn_app().await;
    let key = unlimited_key(&app, "worktypes-co", "payroll").await;
    let token = key.api_token.as_str();

    let listed = app.rest(token, "GET", "/api/v1/work-types", None).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let by_code: BTreeMap<String, Value> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["code"].as_str().unwrap().to_string(), w.clone()))
        .collect();
    for code in ["REG", "OT", "VAC", "SICK", "HOL"] {
        assert!(
            by_code.contains_key(code),
            "{code} is not seeded: {}",
            listed.body
        );
    }
    // Billable types need a work order; leave types do not (seed / conventions).
    for (code, billable) in [
        ("REG", true),
        ("OT", true),
        ("VAC", false),
        ("SICK", false),
        ("HOL", false),
    ] {
        assert_eq!(by_code[code]["billable"], billable, "{code}");
        assert_eq!(by_code[code]["requires_work_order"], billable, "{code}");
    }
    assert_eq!(listed.body["count"], by_code.len());

    let added = app
        .rest(
            token,
            "POST",
            "/api/v1/work-types",
            Some(json!({"code": "trv", "name": "Travel", "billable": false, "requires_work_order": false})),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    assert_eq!(added.body["data"]["code"], "TRV");
    let listed = app.rest(token, "GET", "/api/v1/work-types", None).await;
    let travel = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["code"] == "TRV")
        .cloned()
        .unwrap_or_else(|| panic!("TRV not listed: {}", listed.body));
    assert_eq!(
        (
            travel["name"].clone(),
            travel["requires_work_order"].clone()
        ),
        (json!("Travel"), json!(false))
    );
    let mut row = app
        .row(&format!(
            "SELECT name, requires_work_order FROM work_types WHERE company_id = '{}' AND code = 'TRV'",
            key.company_id
        ))
        .await;
    let (name, requires) = (row.text(0).unwrap(), row.bool(1).unwrap());
    assert_eq!((name.as_str(), requires), ("Travel", false));

    let too_long = app
        .rest(
            token,
            "POST",
            "/api/v1/work-types",
            Some(json!({"code": "X".repeat(21), "name": "Too long"})),
        )
        .await;
    assert_eq!(
        (too_long.status, too_long.code()),
        (400, "invalid_work_type"),
        "{}",
        too_long.body
    );

    expect(
        &app,
        &key,
        "employee",
        envelope(
            "employee.created",
            json!({"emp_number": "EMP-T1", "name": "Tess Travel", "email": "tess@example.com", "employee_type": "site_worker"}),
        ),
        200,
    )
    .await;
    // TRV needs no work order; REG does (control), on the same day shape.
    let sheet = expect(
        &app,
        &key,
        "timesheet with a TRV entry",
        envelope(
            "timesheet.created",
            json!({"emp_number": "EMP-T1", "timesheet_date": "2025-06-02", "entries": [
                {"entry_date": "2025-06-02", "hours": 1.5, "work_type_code": "trv", "notes": "drive to site"}
            ]}),
        ),
        200,
    )
    .await;
    let data = stored_data(&app, &record_id(&sheet)).await;
    assert_eq!(data["entries"][0]["work_type_code"], "TRV");
    assert_eq!(data["entries"][0]["billable"], false);
    assert_eq!(data["total_hours"], 1.5);
    let reg = expect(
        &app,
        &key,
        "timesheet with a REG entry and no work order",
        envelope(
            "timesheet.created",
            json!({"emp_number": "EMP-T1", "timesheet_date": "2025-06-03", "entries": [
                {"entry_date": "2025-06-03", "hours": 8, "work_type_code": "REG"}
            ]}),
        ),
        422,
    )
    .await;
    assert_eq!(reg.code(), "work_order_required");

    // Work types belong to one company.
    let other = unlimited_key(&app, "worktypes-other", "payroll").await;
    let theirs = app
        .rest(&other.api_token, "GET", "/api/v1/work-types", None)
        .await;
    assert!(
        theirs.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["code"] != "TRV"),
        "{}",
        theirs.body
    );
}

// --- alias forms the fixtures do not show ----------------------------------------------------

#[tokio::test]
async fn customer_and_location_names_are_aliases_on_every_operation() {
    let app = spawn_app().await;
    let key = unlimited_key(&app, "alias-names", "crm").await;
    // customer: create with `name`, update and delete with `customer_name`/`name` swapped
    // relative to the seed's examples.
    let customer = expect(
        &app,
        &key,
        "customer by name",
        envelope(
            "customer.created",
            json!({"name": "Acme Corp", "status": "Active"}),
        ),
        200,
    )
    .await;
    let customer_id = record_id(&customer);
    expect(
        &app,
        &key,
        "customer update by customer_name",
        envelope(
            "customer.updated",
            json!({"customer_name": "Acme Corp", "notes": "via alias"}),
        ),
        200,
    )
    .await;
    let data = stored_data(&app, &customer_id).await;
    assert_eq!(data["notes"], "via alias");
    assert_eq!(data["status"], "active");
    assert!(data.get("customer_name").is_none(), "alias stored: {data}");

    // location: `location_name` on create is in the fixtures; here update and delete by `name`
    // and a create with both forms agreeing.
    let location = expect(
        &app,
        &key,
        "location with both name forms",
        envelope(
            "location.created",
            json!({"customer_name": "Acme Corp", "location_name": "Plant 2", "name": "Plant 2", "province": "Ontario"}),
        ),
        200,
    )
    .await;
    let location_id = record_id(&location);
    let data = stored_data(&app, &location_id).await;
    assert_eq!(
        (data["name"].clone(), data["province"].clone()),
        (json!("Plant 2"), json!("ON"))
    );
    assert!(data.get("location_name").is_none(), "alias stored: {data}");
    expect(
        &app,
        &key,
        "location update by name",
        envelope("location.updated", json!({"customer_name": "Acme Corp", "name": "Plant 2", "province": "british columbia"})),
        200,
    )
    .await;
    assert_eq!(stored_data(&app, &location_id).await["province"], "BC");
    expect(
        &app,
        &key,
        "location delete by name",
        envelope(
            "location.deleted",
            json!({"customer_name": "Acme Corp", "name": "Plant 2"}),
        ),
        200,
    )
    .await;
    assert!(stored(&app, &location_id).await.is_none());

    expect(
        &app,
        &key,
        "customer delete by name",
        envelope("customer.deleted", json!({"name": "acme corp"})),
        200,
    )
    .await;
    assert!(stored(&app, &customer_id).await.is_none());
}

#[tokio::test]
async fn alias_conflicts_are_rejected_with_the_fields_path_in_the_request() {
    let app = spawn_app().await;
    let key = unlimited_key(&app, "alias-conflicts", "crm").await;
    // Alias and canonical name disagreeing: 400 alias_conflict naming the field, nothing stored.
    let conflict = expect(
        &app,
        &key,
        "customer name conflict",
        envelope(
            "customer.created",
            json!({"name": "Beta LLC", "customer_name": "Gamma LLC"}),
        ),
        400,
    )
    .await;
    assert_eq!(conflict.code(), "alias_conflict");
    let paths: Vec<&str> = conflict.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["path"].as_str())
        .collect();
    assert!(
        stored_by_field(&app, &key.company_id, "customer", "name", "Beta LLC")
            .await
            .is_empty()
    );
    assert!(
        stored_by_field(&app, &key.company_id, "customer", "name", "Gamma LLC")
            .await
            .is_empty()
    );
    // The path points into the request like validation errors' paths do (and like the
    // conflicts inside scope_of_work, which are reported at /data/scope_of_work/...).
    assert_eq!(
        paths,
        vec!["/data/name"],
        "the conflict's JSON path: {}",
        conflict.body
    );
}

#[tokio::test]
async fn vendor_aliases_provinces_and_trades() {
    let app = spawn_app().await;
    let key = unlimited_key(&app, "alias-vendors", "procurement").await;
    // `name` for vendor_name, address_line_2, a Canadian province by full name in any case,
    // and a comma-separated trade list.
    let created = expect(
        &app,
        &key,
        "vendor with aliases",
        envelope(
            "vendor.created",
            json!({"name": "Northern Mechanical", "type": "Subcontractor", "address": "200 Main St", "address_line_2": "Unit 4",
                   "city": "Vancouver", "state": "british columbia", "zip_code": "V6B 1A1", "trade_specialty": "HVAC,  Plumbing"}),
        ),
        200,
    )
    .await;
    let vendor = record_id(&created);
    let data = stored_data(&app, &vendor).await;
    assert_eq!(data["vendor_name"], "Northern Mechanical");
    assert_eq!(data["type"], "subcontractor");
    assert_eq!(data["address_line2"], "Unit 4");
    assert_eq!(data["state"], "BC");
    assert_eq!(data["trade_specialty"], json!(["HVAC", "Plumbing"]));
    for alias in ["name", "address_line_2"] {
        assert!(data.get(alias).is_none(), "alias {alias} stored: {data}");
    }

    // Update by alias, with a province spelled in full and a trade string.
    expect(
        &app,
        &key,
        "vendor update with aliases",
        envelope(
            "vendor.updated",
            json!({"name": "northern mechanical", "state": "QUEBEC", "trade_specialty": "Electrical", "type": "CONSULTANT"}),
        ),
        200,
    )
    .await;
    let data = stored_data(&app, &vendor).await;
    assert_eq!(
        (
            data["state"].clone(),
            data["trade_specialty"].clone(),
            data["type"].clone()
        ),
        (json!("QC"), json!(["Electrical"]), json!("consultant"))
    );

    // A combined address with a Canadian province and postal code.
    let combined = expect(
        &app,
        &key,
        "combined Canadian address",
        envelope(
            "vendor.created",
            json!({"vendor_name": "Prairie Supply", "type": "supplier", "address": "77 Portage Ave, Winnipeg, Manitoba R3C 4T3, Canada"}),
        ),
        200,
    )
    .await;
    let data = stored_data(&app, &record_id(&combined)).await;
    assert_eq!(
        (
            data["address"].clone(),
            data["city"].clone(),
            data["state"].clone(),
            data["zip_code"].clone(),
            data["country"].clone()
        ),
        (
            json!("77 Portage Ave"),
            json!("Winnipeg"),
            json!("MB"),
            json!("R3C 4T3"),
            json!("Canada")
        )
    );

    // Conflicting alias and canonical vendor name.
    let conflict = expect(
        &app,
        &key,
        "vendor name conflict",
        envelope(
            "vendor.created",
            json!({"vendor_name": "One", "name": "Two"}),
        ),
        400,
    )
    .await;
    assert_eq!(conflict.code(), "alias_conflict");

    expect(
        &app,
        &key,
        "vendor delete by alias",
        envelope("vendor.deleted", json!({"name": "Northern Mechanical"})),
        200,
    )
    .await;
    assert!(stored(&app, &vendor).await.is_none());
}

#[tokio::test]
async fn nested_provinces_are_normalized_too() {
    // The schemas document billing_address.province and a project's location_province as
    // "a full US state or Canadian province name is normalized to its 2-letter code".
    let app = spawn_app().await;
    let key = unlimited_key(&app, "alias-provinces", "crm").await;
    let customer = expect(
        &app,
        &key,
        "customer with a billing province",
        envelope(
            "customer.created",
            json!({"name": "Maple Foods", "billing_address": {"city": "Toronto", "province": "Ontario", "country": "Canada"}}),
        ),
        200,
    )
    .await;
    let project = expect(
        &app,
        &key,
        "project with a location province",
        envelope(
            "project.created",
            json!({"project_code": "PRJ-QC", "project_name": "Quebec Depot", "customer_name": "Maple Foods", "location_name": "Laval", "location_province": "Quebec"}),
        ),
        200,
    )
    .await;
    assert!(!record_id(&project).is_empty());
    let locations = stored_by_field(&app, &key.company_id, "location", "name", "Laval").await;
    assert_eq!(locations.len(), 1);
    assert_eq!(locations[0].1["province"], "QC", "{}", locations[0].1);
    assert_eq!(
        stored_data(&app, &record_id(&customer)).await["billing_address"]["province"],
        "ON",
        "billing_address.province is not normalized"
    );
}

#[tokio::test]
async fn employee_department_role_and_enum_spellings() {
    let app = spawn_app().await;
    let key = unlimited_key(&app, "alias-employees", "hr").await;
    let employee = expect(
        &app,
        &key,
        "employee with department/role aliases and mixed-case type",
        envelope(
            "employee.created",
            json!({"emp_number": "EMP-E1", "name": "Eve Enum", "email": "eve@example.com", "employee_type": "Site_Lead",
                   "department": "Field Operations", "role": "Foreman"}),
        ),
        200,
    )
    .await;
    let id = record_id(&employee);
    let data = stored_data(&app, &id).await;
    assert_eq!(data["employee_type"], "site_lead");
    assert_eq!(data["department_name"], "Field Operations");
    assert_eq!(data["role_name"], "Foreman");
    assert!(
        data.get("department").is_none() && data.get("role").is_none(),
        "{data}"
    );
    // Departments and roles are created on first use.
    assert_eq!(
        stored_by_field(
            &app,
            &key.company_id,
            "department",
            "name",
            "Field Operations"
        )
        .await
        .len(),
        1
    );
    assert_eq!(
        stored_by_field(&app, &key.company_id, "role", "name", "Foreman")
            .await
            .len(),
        1
    );

    expect(
        &app,
        &key,
        "employee type in upper case with a space",
        envelope(
            "employee.updated",
            json!({"emp_number": "EMP-E1", "employee_type": "PROJECT OWNER"}),
        ),
        200,
    )
    .await;
    assert_eq!(
        stored_data(&app, &id).await["employee_type"],
        "project_owner"
    );

    // Time off and timesheet enums in mixed case; work type code in lower case.
    let time_off = expect(
        &app,
        &key,
        "time off with mixed-case enums",
        envelope(
            "time_off.created",
            json!({"emp_number": "EMP-E1", "start_date": "2025-07-01", "end_date": "2025-07-02", "time_off_type": "Sick Leave", "status": "Pending"}),
        ),
        200,
    )
    .await;
    let data = stored_data(&app, &record_id(&time_off)).await;
    assert_eq!(
        (data["time_off_type"].clone(), data["status"].clone()),
        (json!("sick_leave"), json!("pending"))
    );
    let sheet = expect(
        &app,
        &key,
        "timesheet with mixed-case status and code",
        envelope(
            "timesheet.created",
            json!({"emp_number": "EMP-E1", "timesheet_date": "2025-07-03", "status": "Draft", "entries": [
                {"entry_date": "2025-07-03", "hours": 8, "work_type_code": "vac"}
            ]}),
        ),
        200,
    )
    .await;
    let data = stored_data(&app, &record_id(&sheet)).await;
    assert_eq!(data["status"], "draft");
    assert_eq!(data["entries"][0]["work_type_code"], "VAC");
    expect(
        &app,
        &key,
        "timesheet submitted in upper case",
        envelope(
            "timesheet.updated",
            json!({"emp_number": "EMP-E1", "timesheet_date": "2025-07-03", "status": "SUBMITTED"}),
        ),
        200,
    )
    .await;
    assert_eq!(
        stored_data(&app, &record_id(&sheet)).await["status"],
        "submitted"
    );
}

#[tokio::test]
async fn work_order_enum_spellings_and_aliases_on_update() {
    let app = spawn_app().await;
    let key = unlimited_key(&app, "alias-work-orders", "erp").await;
    expect(
        &app,
        &key,
        "project",
        envelope(
            "project.created",
            json!({"project_code": "PRJ-E", "project_name": "Enum Works", "customer_name": "Enum Co", "location_name": "Yard"}),
        ),
        200,
    )
    .await;
    let created = expect(
        &app,
        &key,
        "work order with mixed-case enums",
        envelope(
            "work_order.created",
            json!({"work_order_number": "WO-E1", "project_code": "PRJ-E", "phase_name": "Enum Phase", "status": "In Progress", "priority": "URGENT", "performed_by": "Vendor"}),
        ),
        200,
    )
    .await;
    let id = record_id(&created);
    let data = stored_data(&app, &id).await;
    assert_eq!(
        (
            data["status"].clone(),
            data["priority"].clone(),
            data["performed_by"].clone()
        ),
        (json!("in_progress"), json!("urgent"), json!("vendor"))
    );

    // Aliases on update, and the checklist input form with every status spelling in mixed case.
    expect(
        &app,
        &key,
        "work order update with aliases",
        envelope(
            "work_order.updated",
            json!({"work_order_number": "WO-E1", "status": "on-hold", "required_headcount": 4, "estimated_hours": 12,
                   "requested_start_date": "2025-08-01", "requested_end_time": "16:30",
                   "scope_of_work": {"checklists": [{"checklist_name": "Close-out", "items": [
                       {"item_name": "Sweep", "status": "Done"},
                       {"item_name": "Photos", "status": "COMPLETE"},
                       {"item_name": "Sign-off", "status": "Completed"},
                       {"item_name": "Invoice", "status": "Pending"}
                   ]}]}}),
        ),
        200,
    )
    .await;
    let data = stored_data(&app, &id).await;
    assert_eq!(data["status"], "on_hold");
    assert_eq!(data["people_required"], 4);
    assert_eq!(data["days_hours_required"], 12);
    assert_eq!(data["expected_start_date"], "2025-08-01");
    assert_eq!(data["expected_end_time"], "16:30");
    for alias in [
        "required_headcount",
        "estimated_hours",
        "requested_start_date",
        "requested_end_time",
    ] {
        assert!(data.get(alias).is_none(), "alias {alias} stored: {data}");
    }
    assert_eq!(
        data["scope_of_work"],
        json!({"checklists": [{"title": "Close-out", "items": [
            {"text": "Sweep", "completed": true},
            {"text": "Photos", "completed": true},
            {"text": "Sign-off", "completed": true},
            {"text": "Invoice", "completed": false}
        ]}]})
    );

    // An item status that disagrees with `completed`: 400 alias_conflict at the item.
    let conflict = expect(
        &app,
        &key,
        "item status conflicting with completed",
        envelope(
            "work_order.updated",
            json!({"work_order_number": "WO-E1", "scope_of_work": {"checklists": [{"title": "X", "items": [
                {"text": "Sweep", "status": "done", "completed": false}
            ]}]}}),
        ),
        400,
    )
    .await;
    assert_eq!(conflict.code(), "alias_conflict");
    assert!(
        conflict.body["error"]["details"][0]["path"]
            .as_str()
            .unwrap_or("")
            .starts_with("/data/scope_of_work/checklists/0/items/0"),
        "{}",
        conflict.body
    );

    // "Canceled" (US spelling) is cancelled.
    expect(
        &app,
        &key,
        "cancel with the US spelling",
        envelope(
            "work_order.updated",
            json!({"work_order_number": "WO-E1", "status": "Canceled"}),
        ),
        200,
    )
    .await;
    assert_eq!(stored_data(&app, &id).await["status"], "cancelled");

    // Search field and project field enums in mixed case.
    let search = expect(
        &app,
        &key,
        "search with a mixed-case search_field",
        envelope("work_order.search", json!({"search_term": "wo-e1", "search_field": "Work_Order_Number", "exact_match": true})),
        200,
    )
    .await;
    assert_eq!(search.body["count"], 1, "{}", search.body);
    let search = expect(
        &app,
        &key,
        "project search by code in mixed case",
        envelope(
            "project.search",
            json!({"search_term": "PRJ-E", "search_field": "Project Code", "exact_match": true}),
        ),
        200,
    )
    .await;
    assert_eq!(search.body["count"], 1, "{}", search.body);
}

#[tokio::test]
async fn report_aliases_and_checklist_status_spellings() {
    let app = spawn_app().await;
    let key = unlimited_key(&app, "alias-reports", "field").await;
    for request in [
        envelope(
            "employee.created",
            json!({"emp_number": "EMP-R1", "name": "Rae Report", "email": "rae@example.com", "employee_type": "site_lead"}),
        ),
        envelope(
            "project.created",
            json!({"project_code": "PRJ-R", "project_name": "Reports", "customer_name": "Report Co", "location_name": "Site R"}),
        ),
        envelope(
            "work_order.created",
            json!({"work_order_number": "WO-R1", "project_code": "PRJ-R", "phase_name": "Report Phase", "status": "in_progress"}),
        ),
    ] {
        let what = format!("setup {}", request["event_type"]);
        expect(&app, &key, &what, request, 200).await;
    }
    // `weather` is an alias of weather_conditions on daily reports.
    let daily = expect(
        &app,
        &key,
        "daily report with weather alias",
        envelope(
            "report.daily_submitted",
            json!({"work_order_number": "WO-R1", "report_date": "2025-09-01", "submitted_by": "EMP-R1", "hours_worked": 8, "weather": "Sunny"}),
        ),
        200,
    )
    .await;
    let data = stored_data(&app, &record_id(&daily)).await;
    assert_eq!(data["weather_conditions"], "Sunny", "{data}");
    assert!(data.get("weather").is_none(), "{data}");

    // Completion checklists accept every status spelling, in any case.
    let completion = expect(
        &app,
        &key,
        "completion report with status spellings",
        envelope(
            "report.completion_submitted",
            json!({"work_order_number": "WO-R1", "report_date": "2025-09-02", "submitted_by": "EMP-R1", "requires_approval": true,
                   "scope_checklist": [
                       {"item_name": "Sweep", "status": "Done"},
                       {"item_name": "Photos", "status": "Complete"},
                       {"item_name": "Sign-off", "status": "COMPLETED"},
                       {"item_name": "Invoice", "status": "pending"}
                   ]}),
        ),
        200,
    )
    .await;
    let data = stored_data(&app, &record_id(&completion)).await;
    let statuses: Vec<Value> = data["scope_checklist"]
        .as_array()
        .unwrap_or_else(|| panic!("no scope_checklist stored: {data}"))
        .iter()
        .map(|i| {
            i.get("status")
                .or_else(|| i.get("completed"))
                .cloned()
                .unwrap_or(Value::Null)
        })
        .collect();
    // Stored either as the lower-case status or as the canonical `completed` flag.
    let done: Vec<bool> = statuses
        .iter()
        .map(|s| match s {
            Value::Bool(b) => *b,
            Value::String(s) => ["done", "complete", "completed"].contains(&s.as_str()),
            other => panic!("unexpected item status {other}"),
        })
        .collect();
    assert_eq!(done, vec![true, true, true, false], "{data}");
    for s in &statuses {
        if let Value::String(s) = s {
            assert_eq!(s, &s.to_lowercase(), "status stored in lower case: {data}");
        }
    }
}
