//! Work orders: create (assigning a number when none is given), update with status rules and
//! lifecycle events, delete by number or by project code + phase name.

use serde_json::{Map, Value, json};

use super::op::{Changes, Op, opt_text, text, view};
use super::{Applied, DomainError};
use crate::clock;
use crate::error::ApiError;
use crate::store::Record;

type Data = Map<String, Value>;
type Outcome = Result<Applied, DomainError>;

/// Fields that identify a work order in `*.deleted` events.
pub const IDENTITY: &[&str] = &["work_order_number", "project_code", "phase_name"];

/// Statuses a work order never leaves.
const TERMINAL: &[&str] = &["completed", "cancelled"];

/// Fields whose change reschedules a scheduled work order.
const SCHEDULE_FIELDS: &[&str] = &["start_date", "end_date", "start_time", "end_time"];

pub fn is_open(record: &Record) -> bool {
    !TERMINAL.contains(
        &record
            .data
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("draft"),
    )
}

fn project_ref(op: &Op, code: &str) -> Result<Record, DomainError> {
    let project = op.reference("project", &[code], &format!("project {code}"))?;
    if project.data.get("status").and_then(Value::as_str) == Some("closed") {
        return Err(
            ApiError::conflict("project_closed", format!("project {code} is closed")).into(),
        );
    }
    Ok(project)
}

pub fn create(op: &Op, data: &Data) -> Outcome {
    let code = text(data, "project_code");
    if let Some(number) = opt_text(data, "work_order_number") {
        op.ensure_absent("work_order", &[number], &format!("work order {number}"))?;
    }
    project_ref(op, code)?;
    op.employee_ref(data, "site_lead_emp_number")?;
    let number = match opt_text(data, "work_order_number") {
        Some(n) => n.to_string(),
        None => next_number(op)?,
    };
    let mut record = data.clone();
    record.insert("work_order_number".into(), json!(number));
    record.entry("status").or_insert(json!("draft"));
    record.entry("priority").or_insert(json!("medium"));
    let created = op.create(
        "work_order",
        &[&number],
        &format!("work order {number}"),
        record,
    )?;
    let status = created.data["status"]
        .as_str()
        .unwrap_or("draft")
        .to_string();
    lifecycle_events(op, &created, None, &status, &Changes::new(), true)?;
    if let Some(lead) = opt_text(data, "site_lead_emp_number") {
        assigned(op, &created, lead)?;
    }
    Ok(
        Applied::new("Webhook processed successfully", created.record_id)
            .with("work_order_number", json!(number)),
    )
}

/// `WO-00001`, `WO-00002`, ... per company, skipping numbers senders already used.
fn next_number(op: &Op) -> Result<String, DomainError> {
    loop {
        let n = op.tx.next_counter(op.company(), "work_order")?;
        let number = format!("WO-{n:05}");
        if op.get("work_order", &[&number])?.is_none() {
            return Ok(number);
        }
    }
}

pub fn update(op: &Op, data: &Data) -> Outcome {
    let number = text(data, "work_order_number");
    let record = op.target("work_order", &[number], &format!("work order {number}"))?;
    if let Some(code) = opt_text(data, "project_code")
        && !code.eq_ignore_ascii_case(record.data["project_code"].as_str().unwrap_or(""))
    {
        project_ref(op, code)?;
    }
    op.employee_ref(data, "site_lead_emp_number")?;
    let old_status = record
        .data
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("draft")
        .to_string();
    if let Some(new_status) = opt_text(data, "status") {
        check_transition(number, &old_status, new_status)?;
    }
    let (updated, changes) = op.update("work_order", &record, data, &[number])?;
    after_update(op, &updated, &old_status, &changes)?;
    Ok(
        Applied::new("Work order updated successfully", record.record_id)
            .with("work_order_number", json!(number)),
    )
}

fn check_transition(number: &str, old: &str, new: &str) -> Result<(), DomainError> {
    if old != new && TERMINAL.contains(&old) {
        return Err(ApiError::conflict(
            "invalid_status_transition",
            format!("work order {number} is {old}; it cannot become {new}"),
        )
        .with_details(vec![json!({"from": old, "to": new})])
        .into());
    }
    Ok(())
}

/// Moves a work order to `status` (used when its project is force-closed or its completion
/// report is approved), with the usual events.
pub fn set_status(op: &Op, record: &Record, status: &str) -> Result<Record, DomainError> {
    let old_status = record
        .data
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("draft")
        .to_string();
    let mut update = Data::new();
    update.insert("status".into(), json!(status));
    if status == "completed" {
        update.insert(
            "completed_at".into(),
            json!(clock::rfc3339_from_ms(op.ctx.now_ms)),
        );
    }
    let number = record.data["work_order_number"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let (updated, changes) = op.update("work_order", record, &update, &[&number])?;
    after_update(op, &updated, &old_status, &changes)?;
    Ok(updated)
}

fn after_update(
    op: &Op,
    updated: &Record,
    old_status: &str,
    changes: &Changes,
) -> Result<(), DomainError> {
    let new_status = updated
        .data
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("draft");
    let old = (old_status != new_status).then_some(old_status);
    lifecycle_events(op, updated, old, new_status, changes, false)?;
    if let Some(change) = changes.get("site_lead_emp_number")
        && let Some(lead) = change["new"].as_str()
    {
        assigned(op, updated, lead)?;
    }
    Ok(())
}

/// `status_changed` plus the catalog's `scheduled` / `started` / `completed` / `cancelled`.
/// `old` is the previous status when it changed.
fn lifecycle_events(
    op: &Op,
    wo: &Record,
    old: Option<&str>,
    status: &str,
    changes: &Changes,
    created: bool,
) -> Result<(), DomainError> {
    if let Some(previous) = old {
        op.emit(
            "work_order.status_changed",
            "work_order",
            &wo.record_id,
            json!({
                "id": wo.record_id,
                "work_order_number": wo.data["work_order_number"],
                "phase_name": wo.data["phase_name"],
                "previous_status": previous,
                "new_status": status,
                "status_changed_at": clock::rfc3339_from_ms(op.ctx.now_ms),
                "status_changed_by": op.ctx.key_id,
                "project": op.project_summary(wo.data["project_code"].as_str().unwrap_or(""))?,
            }),
        )?;
    }
    let event_type = if created || old.is_some() {
        match status {
            "scheduled" => Some("work_order.scheduled"),
            "in_progress" if !created => Some("work_order.started"),
            "completed" if !created => Some("work_order.completed"),
            "cancelled" if !created => Some("work_order.cancelled"),
            _ => None,
        }
    } else {
        // Rescheduling a scheduled work order announces it again.
        (status == "scheduled" && SCHEDULE_FIELDS.iter().any(|f| changes.contains_key(*f)))
            .then_some("work_order.scheduled")
    };
    if let Some(event_type) = event_type {
        let mut payload = op.decorate("work_order", view(wo))?;
        if event_type == "work_order.scheduled" {
            payload["assigned_employees"] = json!(assigned_employees(op, wo)?);
        }
        op.emit(event_type, "work_order", &wo.record_id, payload)?;
    }
    Ok(())
}

fn assigned_employees(op: &Op, wo: &Record) -> Result<Vec<Value>, DomainError> {
    let mut out = Vec::new();
    if let Some(lead) = wo.data.get("site_lead_emp_number").and_then(Value::as_str)
        && let Some(emp) = op.get("employee", &[lead])?
    {
        out.push(json!({"id": emp.record_id, "emp_number": lead, "name": emp.data["name"], "role": "site_lead"}));
    }
    Ok(out)
}

fn assigned(op: &Op, wo: &Record, emp_number: &str) -> Result<(), DomainError> {
    let Some(emp) = op.get("employee", &[emp_number])? else {
        return Ok(());
    };
    op.emit(
        "employee.assigned",
        "employee",
        &emp.record_id,
        json!({
            "id": emp.record_id,
            "emp_number": emp_number,
            "name": emp.data["name"],
            "role": "site_lead",
            "work_order": {
                "id": wo.record_id,
                "work_order_number": wo.data["work_order_number"],
                "phase_name": wo.data["phase_name"],
            },
            "project": op.project_summary(wo.data["project_code"].as_str().unwrap_or(""))?,
            "assigned_at": clock::rfc3339_from_ms(op.ctx.now_ms),
        }),
    )?;
    Ok(())
}

pub fn delete(op: &Op, data: &Data) -> Outcome {
    let record = match opt_text(data, "work_order_number") {
        Some(number) => op.target("work_order", &[number], &format!("work order {number}"))?,
        None => {
            let (code, phase) = (text(data, "project_code"), text(data, "phase_name"));
            let mut matches: Vec<Record> = op
                .tx
                .list_records(op.company(), "work_order", Some(("project_code", code)))?
                .into_iter()
                .filter(|wo| {
                    wo.data["phase_name"]
                        .as_str()
                        .is_some_and(|p| p.trim().eq_ignore_ascii_case(phase.trim()))
                })
                .collect();
            match matches.len() {
                0 => {
                    return Err(ApiError::not_found(format!(
                        "no work order {phase:?} in project {code}"
                    ))
                    .into());
                }
                1 => matches.remove(0),
                n => {
                    return Err(ApiError::conflict(
                        "ambiguous_work_order",
                        format!("{n} work orders are called {phase:?} in project {code}; send work_order_number"),
                    )
                    .with_details(matches.iter().map(|wo| wo.data["work_order_number"].clone()).collect())
                    .into());
                }
            }
        }
    };
    op.delete("work_order", &record, IDENTITY)?;
    Ok(
        Applied::new("Work order deleted successfully", record.record_id).with(
            "work_order_number",
            record.data["work_order_number"].clone(),
        ),
    )
}
