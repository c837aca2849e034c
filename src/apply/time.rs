//! Time off requests and daily timesheets (entries, work types, the status workflow
//! draft → submitted → locked → processed, and a manager's unlock).

use serde_json::{Map, Value, json};

use super::op::{Op, merge, opt_text, text};
use super::payload;
use super::rejection::{Rejection, RejectionKind};
use super::status::TimesheetStatus;
use super::{Applied, DomainError};
use crate::catalog::Entity;
use crate::store::WorkType;

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

pub(super) fn time_off_create(op: &Op, data: &Data) -> Outcome {
    let key = time_off_key(data);
    if key[2] < key[1] {
        return Err(Rejection::new(
            RejectionKind::InvalidDateRange,
            "end_date is before start_date",
        )
        .into());
    }
    op.ensure_absent(Entity::TimeOff, &key, &time_off_what(&key))?;
    op.reference(Entity::Employee, &[key[0]], &format!("employee {}", key[0]))?;
    let mut record = data.clone();
    record.entry("time_off_type").or_insert(json!("vacation"));
    record.entry("status").or_insert(json!("approved"));
    let created = op.create(Entity::TimeOff, &key, &time_off_what(&key), record)?;
    Ok(Applied::new(
        "Time off request processed successfully",
        created.record_id,
    ))
}

pub(super) fn time_off_update(op: &Op, data: &Data) -> Outcome {
    let key = time_off_key(data);
    let record = op.target(Entity::TimeOff, &key, &time_off_what(&key))?;
    op.update(Entity::TimeOff, &record, data, &key)?;
    Ok(Applied::new(
        "Time off request updated successfully",
        record.record_id,
    ))
}

pub(super) fn time_off_delete(op: &Op, data: &Data) -> Outcome {
    let key = time_off_key(data);
    let record = op.target(Entity::TimeOff, &key, &time_off_what(&key))?;
    op.delete(Entity::TimeOff, &record)?;
    Ok(Applied::new(
        "Time off request deleted successfully",
        record.record_id,
    ))
}

// --- timesheets --------------------------------------------------------------------------

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
            return Err(Rejection::new(
                RejectionKind::EntryDateMismatch,
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
            Rejection::new(
                RejectionKind::UnknownWorkType,
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
                    Entity::WorkOrder,
                    &[number],
                    &format!("work order {number} (entries[{i}])"),
                )?;
            }
            None if work_type.requires_work_order => {
                return Err(Rejection::new(
                    RejectionKind::WorkOrderRequired,
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

pub(super) fn timesheet_create(op: &Op, data: &Data) -> Outcome {
    let key = timesheet_key(data);
    op.ensure_absent(Entity::Timesheet, &key, &timesheet_what(&key))?;
    let employee = op.reference(Entity::Employee, &[key[0]], &format!("employee {}", key[0]))?;
    let mut record = with_entries(op, key[1], data)?;
    record.entry("status").or_insert(json!("draft"));
    record.entry("entries").or_insert(json!([]));
    record.insert("employee_name".into(), employee.data["name"].clone());
    let created = op.create(Entity::Timesheet, &key, &timesheet_what(&key), record)?;
    Ok(Applied::new(
        "Timesheet created successfully",
        created.record_id,
    ))
}

pub(super) fn timesheet_update(op: &Op, data: &Data) -> Outcome {
    let key = timesheet_key(data);
    let record = op.target(Entity::Timesheet, &key, &timesheet_what(&key))?;
    let current = TimesheetStatus::of(&record);
    let requested = opt_text(data, "status")
        .and_then(TimesheetStatus::parse)
        .unwrap_or(current);
    let update = with_entries(op, key[1], data)?;
    let (from, to) = (current.as_str(), requested.as_str());
    if current.is_frozen() && !current.is_unlock(requested) {
        // Only the status may move on (locked → processed); anything else is an edit.
        let (_, changes) = merge(&record.data, &update);
        let edits: Vec<&str> = changes
            .keys()
            .map(String::as_str)
            .filter(|f| *f != "status")
            .collect();
        if !edits.is_empty() {
            return Err(Rejection::new(
                RejectionKind::TimesheetLocked,
                format!(
                    "the timesheet is {from} and cannot be edited (changed: {}); unlock it first by setting status to draft or submitted",
                    edits.join(", ")
                ),
            )
            .into());
        }
    }
    if !current.allows(requested) {
        let kind = if current == TimesheetStatus::Processed {
            RejectionKind::TimesheetLocked
        } else {
            RejectionKind::InvalidStatusTransition
        };
        return Err(
            Rejection::new(kind, format!("a timesheet cannot go from {from} to {to}"))
                .with_details(vec![json!({"from": from, "to": to})])
                .into(),
        );
    }
    let (updated, _) = op.update(Entity::Timesheet, &record, &update, &key)?;
    if let Some((event, verb)) = current.event_for(requested) {
        let mut payload = payload::full(op, Entity::Timesheet, &updated)?;
        payload.insert("previous_status".into(), json!(from));
        payload.insert(format!("{verb}_at"), json!(op.now()));
        payload.insert(format!("{verb}_by"), json!(op.ctx.key_id));
        payload.insert(format!("{verb}_by_name"), json!(op.ctx.key_name));
        op.emit(event, &updated.record_id, payload)?;
    }
    Ok(Applied::new(
        "Timesheet updated successfully",
        record.record_id,
    ))
}

pub(super) fn timesheet_delete(op: &Op, data: &Data) -> Outcome {
    let key = timesheet_key(data);
    let record = op.target(Entity::Timesheet, &key, &timesheet_what(&key))?;
    let status = TimesheetStatus::of(&record);
    if status.is_frozen() {
        return Err(Rejection::new(
            RejectionKind::TimesheetLocked,
            format!("the timesheet is {} and cannot be deleted", status.as_str()),
        )
        .into());
    }
    op.delete(Entity::Timesheet, &record)?;
    Ok(Applied::new(
        "Timesheet deleted successfully",
        record.record_id,
    ))
}
