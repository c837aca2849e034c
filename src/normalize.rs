//! Stage 7: map the many input forms the seed accepts onto one canonical form, driven by the
//! tables below: field aliases per entity, enum spelling, `scope_of_work` item forms, vendor
//! `trade_specialty` and combined addresses, and state/province names. An alias that disagrees
//! with its canonical field is a 400 `alias_conflict`.

use serde_json::{Map, Value, json};

use crate::catalog::InboundEvent;
use crate::envelope::Envelope;
use crate::error::ApiError;

/// `(event type prefix, alias, canonical name)`.
const ALIASES: &[(&str, &str, &str)] = &[
    ("work_order.", "required_headcount", "people_required"),
    ("work_order.", "estimated_hours", "days_hours_required"),
    ("work_order.", "requested_start_date", "expected_start_date"),
    ("work_order.", "requested_end_date", "expected_end_date"),
    ("work_order.", "requested_start_time", "expected_start_time"),
    ("work_order.", "requested_end_time", "expected_end_time"),
    ("customer.", "customer_name", "name"),
    ("location.", "location_name", "name"),
    ("vendor.", "name", "vendor_name"),
    ("vendor.", "address_line_2", "address_line2"),
    ("employee.", "department", "department_name"),
    ("employee.", "role", "role_name"),
    ("report.daily_submitted", "weather", "weather_conditions"),
];

/// Fields whose values are enums: matched case-insensitively, stored in lower snake case.
const ENUM_FIELDS: &[&str] = &[
    "status",
    "priority",
    "employee_type",
    "time_off_type",
    "type",
    "customer_type",
    "customer_status",
    "performed_by",
    "search_field",
    "approval_status",
];

/// Enum spellings the seed uses that mean a canonical value: `(field, spelling, canonical)`.
const ENUM_SYNONYMS: &[(&str, &str, &str)] = &[
    ("priority", "normal", "medium"),
    ("status", "canceled", "cancelled"),
    ("status", "in-progress", "in_progress"),
];

/// Checklist item status → `completed`.
const ITEM_STATUS: &[(&str, bool)] = &[
    ("pending", false),
    ("incomplete", false),
    ("complete", true),
    ("completed", true),
    ("done", true),
];

const STATE_FIELDS: &[&str] = &["state", "province", "location_province"];

/// US states (and DC) and Canadian provinces and territories.
const REGIONS: &[(&str, &str)] = &[
    ("AL", "Alabama"),
    ("AK", "Alaska"),
    ("AZ", "Arizona"),
    ("AR", "Arkansas"),
    ("CA", "California"),
    ("CO", "Colorado"),
    ("CT", "Connecticut"),
    ("DE", "Delaware"),
    ("DC", "District of Columbia"),
    ("FL", "Florida"),
    ("GA", "Georgia"),
    ("HI", "Hawaii"),
    ("ID", "Idaho"),
    ("IL", "Illinois"),
    ("IN", "Indiana"),
    ("IA", "Iowa"),
    ("KS", "Kansas"),
    ("KY", "Kentucky"),
    ("LA", "Louisiana"),
    ("ME", "Maine"),
    ("MD", "Maryland"),
    ("MA", "Massachusetts"),
    ("MI", "Michigan"),
    ("MN", "Minnesota"),
    ("MS", "Mississippi"),
    ("MO", "Missouri"),
    ("MT", "Montana"),
    ("NE", "Nebraska"),
    ("NV", "Nevada"),
    ("NH", "New Hampshire"),
    ("NJ", "New Jersey"),
    ("NM", "New Mexico"),
    ("NY", "New York"),
    ("NC", "North Carolina"),
    ("ND", "North Dakota"),
    ("OH", "Ohio"),
    ("OK", "Oklahoma"),
    ("OR", "Oregon"),
    ("PA", "Pennsylvania"),
    ("RI", "Rhode Island"),
    ("SC", "South Carolina"),
    ("SD", "South Dakota"),
    ("TN", "Tennessee"),
    ("TX", "Texas"),
    ("UT", "Utah"),
    ("VT", "Vermont"),
    ("VA", "Virginia"),
    ("WA", "Washington"),
    ("WV", "West Virginia"),
    ("WI", "Wisconsin"),
    ("WY", "Wyoming"),
    ("PR", "Puerto Rico"),
    ("AB", "Alberta"),
    ("BC", "British Columbia"),
    ("MB", "Manitoba"),
    ("NB", "New Brunswick"),
    ("NL", "Newfoundland and Labrador"),
    ("NS", "Nova Scotia"),
    ("NT", "Northwest Territories"),
    ("NU", "Nunavut"),
    ("ON", "Ontario"),
    ("PE", "Prince Edward Island"),
    ("QC", "Quebec"),
    ("SK", "Saskatchewan"),
    ("YT", "Yukon"),
];

/// An event whose data is in canonical form. Built only by [`normalize`].
#[derive(Debug, Clone)]
pub(crate) struct NormalizedEvent {
    event_type: InboundEvent,
    data: Map<String, Value>,
}

impl NormalizedEvent {
    /// The event type and canonical `data`, for validation.
    pub(crate) fn into_parts(self) -> (InboundEvent, Map<String, Value>) {
        (self.event_type, self.data)
    }
}

pub(crate) fn normalize(envelope: Envelope) -> Result<NormalizedEvent, ApiError> {
    let (event, mut data) = envelope.into_parts();
    let event_type = event.name();
    let mut conflicts = Vec::new();
    for &(prefix, alias, canonical) in ALIASES {
        if event_type.starts_with(prefix) {
            rename(&mut data, alias, canonical, "/data", &mut conflicts);
        }
    }
    for field in ENUM_FIELDS {
        if let Some(Value::String(s)) = data.get_mut(*field) {
            *s = canonical_enum(field, s);
        }
    }
    normalize_regions(&mut data);
    // Addresses nested one level down (e.g. a customer's `billing_address`).
    for value in data.values_mut() {
        if let Value::Object(nested) = value {
            normalize_regions(nested);
        }
    }
    if event_type.starts_with("work_order.")
        && let Some(scope) = data.get_mut("scope_of_work")
    {
        normalize_scope(scope, &mut conflicts);
    }
    if event_type.starts_with("vendor.") {
        if let Some(Value::String(s)) = data.get("trade_specialty") {
            let list: Vec<Value> = s
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| json!(t))
                .collect();
            data.insert("trade_specialty".into(), Value::Array(list));
        }
        split_combined_address(&mut data);
    }
    if event_type.starts_with("report.") {
        for list in ["scope_checklist", "completion_checklist"] {
            if let Some(Value::Array(items)) = data.get_mut(list) {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    if let Some(Value::String(s)) = item.get_mut("status") {
                        *s = canonical_enum("status", s);
                    }
                }
            }
        }
    }
    if let Some(Value::Array(entries)) = data.get_mut("entries") {
        for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(Value::String(code)) = entry.get_mut("work_type_code") {
                *code = code.trim().to_ascii_uppercase();
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(ApiError::bad_request(
            "alias_conflict",
            "an alias and its canonical field were both sent with different values",
        )
        .with_details(conflicts));
    }
    Ok(NormalizedEvent {
        event_type: event,
        data,
    })
}

fn normalize_regions(object: &mut Map<String, Value>) {
    for field in STATE_FIELDS {
        if let Some(Value::String(s)) = object.get_mut(*field) {
            *s = region_code(s);
        }
    }
}

/// Moves `alias` to `canonical`; records a conflict when both are present and differ.
fn rename(
    object: &mut Map<String, Value>,
    alias: &str,
    canonical: &str,
    path: &str,
    conflicts: &mut Vec<Value>,
) {
    let Some(value) = object.remove(alias) else {
        return;
    };
    match object.get(canonical) {
        Some(existing) if *existing != value => conflicts.push(json!({
            "path": format!("{path}/{canonical}"),
            "alias": alias,
            "canonical": canonical,
            "message": format!(
                "{alias} = {} disagrees with {canonical} = {}",
                excerpt(&value),
                excerpt(existing)
            ),
        })),
        Some(_) => {}
        None => {
            object.insert(canonical.to_string(), value);
        }
    }
}

/// A value as shown in an error message: its JSON text, cut short so that an error about a
/// large value is not itself large.
fn excerpt(value: &Value) -> String {
    const MAX_CHARS: usize = 80;
    let text = value.to_string();
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Lower snake case, then the field's synonyms.
pub(crate) fn canonical_enum(field: &str, value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.trim().chars() {
        match c {
            ' ' | '-' => out.push('_'),
            c => out.extend(c.to_lowercase()),
        }
    }
    ENUM_SYNONYMS
        .iter()
        .find(|(f, spelling, _)| *f == field && *spelling == out)
        .map(|(_, _, canonical)| canonical.to_string())
        .unwrap_or(out)
}

/// 2-letter code for a known state or province name (any case); other text unchanged.
pub(crate) fn region_code(value: &str) -> String {
    let trimmed = value.trim();
    REGIONS
        .iter()
        .find(|(code, name)| {
            code.eq_ignore_ascii_case(trimmed) || name.eq_ignore_ascii_case(trimmed)
        })
        .map(|(code, _)| code.to_string())
        .unwrap_or_else(|| trimmed.to_string())
}

fn normalize_scope(scope: &mut Value, conflicts: &mut Vec<Value>) {
    let Some(checklists) = scope.get_mut("checklists").and_then(Value::as_array_mut) else {
        return;
    };
    for (i, checklist) in checklists.iter_mut().enumerate() {
        let Some(checklist) = checklist.as_object_mut() else {
            continue;
        };
        let base = format!("/data/scope_of_work/checklists/{i}");
        rename(checklist, "checklist_name", "title", &base, conflicts);
        let Some(items) = checklist.get_mut("items").and_then(Value::as_array_mut) else {
            continue;
        };
        for (j, item) in items.iter_mut().enumerate() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            let item_path = format!("{base}/items/{j}");
            rename(item, "item_name", "text", &item_path, conflicts);
            if let Some(Value::String(status)) = item.get("status") {
                let status = canonical_enum("status", status);
                if let Some((_, done)) = ITEM_STATUS.iter().find(|(s, _)| *s == status) {
                    item.remove("status");
                    match item.get("completed") {
                        Some(Value::Bool(b)) if b != done => conflicts.push(json!({
                            "path": format!("{item_path}/completed"),
                            "alias": "status",
                            "canonical": "completed",
                            "message": format!("status {status:?} disagrees with completed = {b}"),
                        })),
                        _ => {
                            item.insert("completed".into(), Value::Bool(*done));
                        }
                    }
                }
                // An unknown status stays and is reported by the schema.
            }
        }
    }
}

/// `"1500 Industrial Parkway, Suite 200, Chicago, IL 60601, USA"` → split fields, when the
/// sender gave the vendor address as one string and no separate city/state/zip.
fn split_combined_address(data: &mut Map<String, Value>) {
    if ["city", "state", "zip_code"]
        .iter()
        .any(|f| data.contains_key(*f))
    {
        return;
    }
    let Some(Value::String(address)) = data.get("address") else {
        return;
    };
    let mut parts: Vec<String> = address
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    // Find "<state> <zip>" (or a bare state) from the end.
    let Some(state_at) = parts.iter().rposition(|p| parse_state_zip(p).is_some()) else {
        return;
    };
    if state_at < 2 {
        return; // needs a street and a city before the state
    }
    let (state, zip) = parse_state_zip(&parts[state_at]).expect("found above");
    let country = parts.get(state_at + 1).cloned();
    let city = parts[state_at - 1].clone();
    parts.truncate(state_at - 1);
    if parts.is_empty() {
        return;
    }
    let street = parts.remove(0);
    data.insert("address".into(), json!(street));
    if !parts.is_empty() && !data.contains_key("address_line2") {
        data.insert("address_line2".into(), json!(parts.join(", ")));
    }
    data.insert("city".into(), json!(city));
    data.insert("state".into(), json!(state));
    if let Some(zip) = zip {
        data.insert("zip_code".into(), json!(zip));
    }
    if let Some(country) = country {
        data.entry("country").or_insert(json!(country));
    }
}

/// `"IL 60601"`, `"Illinois 60601"`, `"MB R3C 4T3"` or `"IL"` → (code, zip). Only the first
/// few words can name a region (the longest names have three), so the work is linear in the
/// length of `part` however many words it has.
fn parse_state_zip(part: &str) -> Option<(String, Option<String>)> {
    const LONGEST_REGION_WORDS: usize = 3;
    let words: Vec<&str> = part.split_whitespace().collect();
    for split in (1..=words.len().min(LONGEST_REGION_WORDS)).rev() {
        let name = words[..split].join(" ");
        let code = region_code(&name);
        if code.len() == 2 && REGIONS.iter().any(|(c, _)| *c == code) {
            let zip = words[split..].join(" ");
            let zip_ok = zip.is_empty() || zip.chars().any(|c| c.is_ascii_digit());
            if zip_ok {
                return Some((code, (!zip.is_empty()).then_some(zip)));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(event_type: &'static str, data: Value) -> Result<Value, ApiError> {
        let Value::Object(data) = data else { panic!() };
        let event = InboundEvent::parse(event_type).expect("a known event type");
        normalize(Envelope::for_test(event, data)).map(|e| Value::Object(e.data))
    }

    #[test]
    fn aliases_map_and_conflicts_are_reported() {
        let out = run(
            "work_order.created",
            json!({"required_headcount": 5, "estimated_hours": "40"}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"people_required": 5, "days_hours_required": "40"})
        );
        let same = run(
            "work_order.created",
            json!({"required_headcount": 5, "people_required": 5}),
        )
        .unwrap();
        assert_eq!(same, json!({"people_required": 5}));
        let err = run(
            "work_order.created",
            json!({"required_headcount": 5, "people_required": 6}),
        )
        .unwrap_err();
        assert_eq!(err.code, "alias_conflict");
    }

    #[test]
    fn scope_of_work_input_form_becomes_title_text_completed() {
        let out = run("work_order.created", json!({"scope_of_work": {"checklists": [
            {"checklist_name": "Prep", "items": [{"item_name": "Clear", "status": "pending"}, {"text": "Level", "status": "Done"}]}
        ]}})).unwrap();
        assert_eq!(
            out["scope_of_work"],
            json!({"checklists": [
                {"title": "Prep", "items": [{"text": "Clear", "completed": false}, {"text": "Level", "completed": true}]}
            ]})
        );
    }

    #[test]
    fn enums_states_and_trades() {
        let out = run("vendor.created", json!({"type": "Sub Contractor", "state": "illinois", "trade_specialty": "HVAC, Mechanical ,"})).unwrap();
        assert_eq!(out["type"], "sub_contractor");
        assert_eq!(out["state"], "IL");
        assert_eq!(out["trade_specialty"], json!(["HVAC", "Mechanical"]));
        assert_eq!(canonical_enum("priority", "Normal"), "medium");
        assert_eq!(region_code("Manitoba"), "MB");
    }

    #[test]
    fn region_names_are_checked_against_every_word_count_up_to_three() {
        assert_eq!(
            parse_state_zip("Newfoundland and Labrador A1B 2C3"),
            Some(("NL".to_string(), Some("A1B 2C3".to_string())))
        );
        assert_eq!(
            parse_state_zip("Prince Edward Island"),
            Some(("PE".into(), None))
        );
        assert_eq!(parse_state_zip("Springfield 12345"), None);
    }

    #[test]
    fn a_huge_combined_address_takes_linear_time() {
        // 100 KB of words joined by commas and spaces: every prefix joined, as before, would
        // be quadratic (seconds); bounded, it is milliseconds.
        let words = "word ".repeat(10_000);
        let address = format!("1 Main St, {words}, Springfield, IL 62701, {words}");
        let started = std::time::Instant::now();
        let out = run("vendor.created", json!({"address": address})).unwrap();
        assert!(
            started.elapsed() < std::time::Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(out["city"], "Springfield");
        let long_alias = "x".repeat(100_000);
        let err = run(
            "work_order.created",
            json!({"required_headcount": long_alias, "people_required": 1}),
        )
        .unwrap_err();
        assert!(err.details[0]["message"].as_str().unwrap().len() < 300);
    }

    #[test]
    fn combined_vendor_address_is_split() {
        let out = run(
            "vendor.created",
            json!({"address": "1500 Industrial Parkway, Suite 200, Chicago, Illinois 60601, USA"}),
        )
        .unwrap();
        assert_eq!(out["address"], "1500 Industrial Parkway");
        assert_eq!(out["address_line2"], "Suite 200");
        assert_eq!(out["city"], "Chicago");
        assert_eq!(out["state"], "IL");
        assert_eq!(out["zip_code"], "60601");
        assert_eq!(out["country"], "USA");
    }
}
