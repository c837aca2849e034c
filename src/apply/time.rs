//! Time off requests and daily timesheets (entries, work types, the status workflow
//! draft → submitted → locked → processed, and a manager's unlock).

use serde_json::{Map, Value, json};

use super::op::{Op, merge, opt_text, text, view};
use super::{Applied, DomainError};
use crate::clock;
use crate::error::ApiError;
use crate::store::{Record, WorkType};

type Data = Map<String, Value>;
type Outcome = Result<Applied, DomainError>;

// --- time off ----------------------------------------------------------------------------

fn time_off_key(data: &Data) -> [&str; 3] {
    [
        text(data, "emp_number"),
        text(data, "start_date"),
        text(data, "end_date"),
    ]
}

fn time_off_what(k: &[&str; 3]) -> String {
    format!("time off of employee {} from {} to {}", k[0], k[1], k[2])
}

pub fn time_off_create(op: &Op, data: &Data) -> Outcome {
    let key = time_off_key(data);
    if key[2] < key[1] {
        return Err(
            ApiError::unprocessable("invalid_date_range", "end_date is before start_date").into(),
        );
    }
    op.ensure_absent("time_off", &key, &time_off_what(&key))?;
    op.reference("employee", &[key[0]], &format!("employee {}", key[0]))?;
    let mut record = data.clone();
    record.entry("time_off_type").or_insert(json!("vacation"));
    record.entry("status").or_insert(json!("approved"));
    let created = op.create("time_off", &key, &time_off_what(&key), record)?;
    Ok(Applied::new(
        "Time off request processed successfully",
        created.record_id,
    ))
}

pub fn time_off_update(op: &Op, data: &Data) -> Outcome {
    let key = time_off_key(data);
    let record = op.target("time_off", &key, &time_off_what(&key))?;
    op.update("time_off", &record, data, &key)?;
    Ok(Applied::new(
        "Time off request updated successfully",
        record.record_id,
    ))
}

pub fn time_off_delete(op: &Op, data: &Data) -> Outcome {
    let key = time_off_key(data);
    let record = op.target("time_off", &key, &time_off_what(&key))?;
    op.delete(
        "time_off",
        &record,
        &["emp_number", "start_date", "end_date"],
    )?;
    Ok(Applied::new(
        "Time off request deleted successfully",
        record.record_id,
    ))
}

// --- timesheets --------------------------------------------------------------------------

/// Status changes the workflow allows (besides staying put).
const TRANSITIONS: &[(&str, &str)] = &[
    ("draft", "submitted"),
    ("submitted", "draft"),
    ("submitted", "locked"),
    ("locked", "processed"),
    // A manager's unlock.
    ("locked", "draft"),
    ("locked", "submitted"),
];

const FROZEN: &[&str] = &["locked", "processed"];

fn status_of(record: &Record) -> &str {
    record
        .data
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("draft")
}

fn timesheet_key(data: &Data) -> [&str; 2] {
    [text(data, "emp_number"), text(data, "timesheet_date")]
}

fn timesheet_what(k: &[&str; 2]) -> String {
    format!("timesheet of employee {} for {}", k[0], k[1])
}

/// The work type an entry names: by code when it gives one, else by name, else the company's
/// default (the seed's order).
fn find_work_type(
    op: &Op,
    code: Option<&str>,
    name: Option<&str>,
) -> Result<Option<WorkType>, DomainError> {
    let company = op.company();
    Ok(match (code, name) {
        (Some(code), _) => op.tx.work_type_by_code(company, code)?,
        (None, Some(name)) => op.tx.work_type_by_name(company, name)?,
        (None, None) => op.tx.default_work_type(company)?,
    })
}

/// Checks every entry (date, work type, work order) and returns them as stored, with the
/// resolved work type.
fn resolve_entries(op: &Op, date: &str, entries: &[Value]) -> Result<Vec<Value>, DomainError> {
    let mut resolved = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let Some(entry) = entry.as_object() else {
            continue;
        };
        let entry_date = text(entry, "entry_date");
        if entry_date != date {
            return Err(ApiError::unprocessable(
                "entry_date_mismatch",
                format!("entries[{i}].entry_date {entry_date} is not the timesheet date {date}"),
            )
            .with_details(vec![json!({"path": format!("/data/entries/{i}/entry_date"), "entry_date": entry_date, "timesheet_date": date})])
            .into());
        }
        let (code, name) = (
            opt_text(entry, "work_type_code"),
            opt_text(entry, "work_type_name"),
        );
        let work_type = find_work_type(op, code, name)?.ok_or_else(|| {
            let what = code
                .map(|c| format!("code {c:?}"))
                .or(name.map(|n| format!("name {n:?}")));
            ApiError::unprocessable(
                "unknown_work_type",
                match what {
                    Some(w) => format!("entries[{i}]: no active work type with {w}"),
                    None => "the company has no default work type".to_string(),
                },
            )
        })?;
        let mut stored = entry.clone();
        match opt_text(entry, "work_order_number") {
            Some(number) => {
                op.reference(
                    "work_order",
                    &[number],
                    &format!("work order {number} (entries[{i}])"),
                )?;
            }
            None if work_type.requires_work_order => {
                return Err(ApiError::unprocessable(
                    "work_order_required",
                    format!(
                        "entries[{i}]: work type {} ({}) is billable and requires a work_order_number",
                        work_type.code, work_type.name
                    ),
                )
                .with_details(vec![json!({"path": format!("/data/entries/{i}/work_order_number"), "work_type_code": work_type.code})])
                .into());
            }
            None => {}
        }
        stored.insert("work_type_code".into(), json!(work_type.code));
        stored.insert("work_type_name".into(), json!(work_type.name));
        stored.insert("billable".into(), json!(work_type.billable));
        resolved.push(Value::Object(stored));
    }
    Ok(resolved)
}

fn total_hours(entries: &[Value]) -> f64 {
    entries.iter().filter_map(|e| e["hours"].as_f64()).sum()
}

/// Entries resolved and `total_hours` filled in when the request carries entries.
fn with_entries(op: &Op, date: &str, data: &Data) -> Result<Data, DomainError> {
    let mut out = data.clone();
    if let Some(Value::Array(entries)) = data.get("entries") {
        let resolved = resolve_entries(op, date, entries)?;
        if !data.contains_key("total_hours") {
            out.insert("total_hours".into(), json!(total_hours(&resolved)));
        }
        out.insert("entries".into(), Value::Array(resolved));
    }
    Ok(out)
}

pub fn timesheet_create(op: &Op, data: &Data) -> Outcome {
    let key = timesheet_key(data);
    op.ensure_absent("timesheet", &key, &timesheet_what(&key))?;
    let employee = op.reference("employee", &[key[0]], &format!("employee {}", key[0]))?;
    let mut record = with_entries(op, key[1], data)?;
    record.entry("status").or_insert(json!("draft"));
    record.entry("entries").or_insert(json!([]));
    record.insert("employee_name".into(), employee.data["name"].clone());
    let created = op.create("timesheet", &key, &timesheet_what(&key), record)?;
    Ok(Applied::new(
        "Timesheet created successfully",
        created.record_id,
    ))
}

pub fn timesheet_update(op: &Op, data: &Data) -> Outcome {
    let key = timesheet_key(data);
    let record = op.target("timesheet", &key, &timesheet_what(&key))?;
    let current = status_of(&record).to_string();
    let requested = opt_text(data, "status").unwrap_or(&current).to_string();
    let update = with_entries(op, key[1], data)?;
    let unlock = current == "locked" && (requested == "draft" || requested == "submitted");
    if FROZEN.contains(&current.as_str()) && !unlock {
        // Only the status may move on (locked → processed); anything else is an edit.
        let (_, changes) = merge(&record.data, &update);
        let edits: Vec<&String> = changes.keys().filter(|f| *f != "status").collect();
        if !edits.is_empty() {
            return Err(ApiError::conflict(
                "timesheet_locked",
                format!(
                    "the timesheet is {current} and cannot be edited (changed: {}); unlock it first by setting status to draft or submitted",
                    edits.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )
            .into());
        }
    }
    if requested != current && !TRANSITIONS.contains(&(current.as_str(), requested.as_str())) {
        let code = if current == "processed" {
            "timesheet_locked"
        } else {
            "invalid_status_transition"
        };
        return Err(ApiError::conflict(
            code,
            format!("a timesheet cannot go from {current} to {requested}"),
        )
        .with_details(vec![json!({"from": current, "to": requested})])
        .into());
    }
    let (updated, _) = op.update("timesheet", &record, &update, &key)?;
    if requested != current {
        let event_type = match requested.as_str() {
            _ if unlock => "timesheet.unlocked",
            "submitted" => "timesheet.submitted",
            "locked" => "timesheet.locked",
            "processed" => "timesheet.processed",
            _ => "",
        };
        if !event_type.is_empty() {
            let mut payload = view(&updated);
            payload["timesheet_id"] = json!(updated.record_id);
            payload["previous_status"] = json!(current);
            let at = clock::rfc3339_from_ms(op.ctx.now_ms);
            payload[format!("{}_at", event_type.trim_start_matches("timesheet."))] = json!(at);
            op.emit(event_type, "timesheet", &updated.record_id, payload)?;
        }
    }
    Ok(Applied::new(
        "Timesheet updated successfully",
        record.record_id,
    ))
}

pub fn timesheet_delete(op: &Op, data: &Data) -> Outcome {
    let key = timesheet_key(data);
    let record = op.target("timesheet", &key, &timesheet_what(&key))?;
    let status = status_of(&record);
    if FROZEN.contains(&status) {
        return Err(ApiError::conflict(
            "timesheet_locked",
            format!("the timesheet is {status} and cannot be deleted"),
        )
        .into());
    }
    op.delete("timesheet", &record, &["emp_number", "timesheet_date"])?;
    Ok(Applied::new(
        "Timesheet deleted successfully",
        record.record_id,
    ))
}
