//! The JSON-Schema case generator: for every schema in `schemas/`, a minimal valid `data` and,
//! for each node, the values that break one rule each (a missing required field, a wrong type,
//! an out-of-range value), with the JSON path the rejection must name. Built from the schema
//! files, so the cases follow the schemas as they evolve.

use serde_json::{Map, Value, json};

pub(super) fn schemas_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

/// Every `schemas/<event_type>.json` except the envelope's, sorted by event type.
pub(super) fn event_schemas() -> Vec<(String, Value)> {
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
pub(super) fn locally_valid(schema: &Value, value: &Value) -> bool {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("schema fragment does not compile: {e}: {schema}"))
        .is_valid(value)
}

/// The JSON types a schema fragment allows (empty: any).
pub(super) fn types_of(schema: &Value) -> Vec<String> {
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

pub(super) fn type_allows(types: &[String], value: &Value) -> bool {
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
pub(super) fn sample_required(schema: &Value) -> Vec<String> {
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
pub(super) fn alternative_required(schema: &Value) -> Vec<String> {
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
pub(super) fn sample(schema: &Value, path: &str) -> Value {
    let value = sample_unchecked(schema, path);
    assert!(
        locally_valid(schema, &value),
        "the test cannot build a valid value for {path} (got {value}); give the schema an `examples` entry: {schema}"
    );
    value
}

pub(super) fn sample_unchecked(schema: &Value, path: &str) -> Value {
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
pub(super) fn wrong_type(schema: &Value) -> Option<Value> {
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

pub(super) fn number_near(bound: &Value, delta: f64) -> Value {
    match bound.as_i64() {
        Some(i) if delta.fract() == 0.0 => json!(i + delta as i64),
        _ => json!(bound.as_f64().unwrap() + delta),
    }
}

/// Values of an allowed type that break one constraint keyword each: `(keyword, value)`.
/// Values survive normalization unchanged (lower case, no spaces or dashes).
pub(super) fn bad_values(schema: &Value) -> Vec<(String, Value)> {
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

pub(super) fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// `base` with the value at JSON pointer `ptr` (whose parent exists) replaced by `value`.
pub(super) fn set_at(base: &Value, ptr: &str, value: Value) -> Value {
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

pub(super) fn remove_at(base: &Value, ptr: &str, fields: &[String]) -> Value {
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

pub(super) struct SchemaCase {
    pub(super) label: String,
    pub(super) data: Value,
    /// `/data/...` path the rejection must name.
    pub(super) path: String,
    /// For missing fields: the field names the error must mention.
    pub(super) missing: Vec<String>,
}

/// Cases for the schema node at JSON pointer `ptr` (inside `data`), whose value in `base` is
/// valid.
pub(super) fn node_cases(schema: &Value, base: &Value, ptr: &str, cases: &mut Vec<SchemaCase>) {
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
