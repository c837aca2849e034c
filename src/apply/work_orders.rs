//! Work orders: create (assigning a number when none is given), update with status rules and
//! lifecycle events, delete by number or by project code + phase name.

use serde_json::{Map, Value, json};

use super::op::{Changes, Op, opt_text, text};
use super::payload;
use super::rejection::{Rejection, RejectionKind};
use super::status::WorkOrderStatus;
use super::{Applied, DomainError};
use crate::catalog::{Entity, OutboundEvent};
use crate::store::Record;

type Data = Map<String, Value>;
type Outcome = Result<Applied, DomainError>;

/// Fields whose change reschedules a scheduled work order.
const SCHEDULE_FIELDS: &[&str] = &["start_date", "end_date", "start_time", "end_time"];

pub(super) fn is_open(record: &Record) -> bool {
    !WorkOrderStatus::of(record).is_final()
}

fn project_ref(op: &Op, code: &str) -> Result<Record, DomainError> {
    let project = op.reference(Entity::Project, &[code], &format!("project {code}"))?;
    if project.data.get("status").and_then(Value::as_str) == Some("closed") {
        return Err(Rejection::new(
            RejectionKind::ProjectClosed,
            format!("project {code} is closed"),
        )
        .into());
    }
    Ok(project)
}

/// The status a request asks for; the schema has already checked it is one of them.
fn requested_status(data: &Data) -> Option<WorkOrderStatus> {
    opt_text(data, "status").and_then(WorkOrderStatus::parse)
}

pub(super) fn create(op: &Op, data: &Data) -> Outcome {
    let code = text(data, "project_code");
    if let Some(number) = opt_text(data, "work_order_number") {
        op.ensure_absent(
            Entity::WorkOrder,
            &[number],
            &format!("work order {number}"),
        )?;
    }
    project_ref(op, code)?;
    op.employee_ref(data, "site_lead_emp_number")?;
    let number = match opt_text(data, "work_order_number") {
        Some(n) => n.to_string(),
        None => next_number(op)?,
    };
    let status = requested_status(data).unwrap_or(WorkOrderStatus::Draft);
    let mut record = data.clone();
    record.insert("work_order_number".into(), json!(number));
    record.insert("status".into(), json!(status.as_str()));
    record.entry("priority").or_insert(json!("medium"));
    let created = op.create(
        Entity::WorkOrder,
        &[&number],
        &format!("work order {number}"),
        record,
    )?;
    // A new work order announces only its scheduling; the other lifecycle events mark moves.
    if status == WorkOrderStatus::Scheduled {
        lifecycle_event(op, &created, None)?;
    }
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
        let n = op.tx.next_counter(op.company(), Entity::WorkOrder.kind())?;
        let number = format!("WO-{n:05}");
        if op.get(Entity::WorkOrder, &[&number])?.is_none() {
            return Ok(number);
        }
    }
}

pub(super) fn update(op: &Op, data: &Data) -> Outcome {
    let number = text(data, "work_order_number");
    let record = op.target(
        Entity::WorkOrder,
        &[number],
        &format!("work order {number}"),
    )?;
    if let Some(code) = opt_text(data, "project_code")
        && !code.eq_ignore_ascii_case(record.data["project_code"].as_str().unwrap_or(""))
    {
        project_ref(op, code)?;
    }
    op.employee_ref(data, "site_lead_emp_number")?;
    let old_status = WorkOrderStatus::of(&record);
    if let Some(new_status) = requested_status(data)
        && !old_status.allows(new_status)
    {
        let (from, to) = (old_status.as_str(), new_status.as_str());
        return Err(Rejection::new(
            RejectionKind::InvalidStatusTransition,
            format!("work order {number} is {from}; it cannot become {to}"),
        )
        .with_details(vec![json!({"from": from, "to": to})])
        .into());
    }
    let (updated, changes) = op.update(Entity::WorkOrder, &record, data, &[number])?;
    after_update(op, &updated, old_status, &changes)?;
    Ok(
        Applied::new("Work order updated successfully", record.record_id)
            .with("work_order_number", json!(number)),
    )
}

/// Moves a work order to `status` (used when its project is force-closed or its completion
/// report is approved), with the usual events.
pub(super) fn set_status(
    op: &Op,
    record: &Record,
    status: WorkOrderStatus,
) -> Result<Record, DomainError> {
    let old_status = WorkOrderStatus::of(record);
    let mut update = Data::new();
    update.insert("status".into(), json!(status.as_str()));
    if status == WorkOrderStatus::Completed {
        update.insert("completed_at".into(), json!(op.now()));
    }
    let number = text(
        record.data.as_object().expect("records are objects"),
        "work_order_number",
    )
    .to_string();
    let (updated, changes) = op.update(Entity::WorkOrder, record, &update, &[&number])?;
    after_update(op, &updated, old_status, &changes)?;
    Ok(updated)
}

/// `status_changed` plus the catalog's `scheduled` / `started` / `completed` / `cancelled`
/// after a change, and `employee.assigned` for a new site lead.
fn after_update(
    op: &Op,
    updated: &Record,
    old_status: WorkOrderStatus,
    changes: &Changes,
) -> Result<(), DomainError> {
    let status = WorkOrderStatus::of(updated);
    if status != old_status {
        op.emit(
            OutboundEvent::WorkOrderStatusChanged,
            &updated.record_id,
            status_changed(op, updated, old_status, status)?,
        )?;
        lifecycle_event(op, updated, Some(old_status))?;
    } else if status == WorkOrderStatus::Scheduled
        && SCHEDULE_FIELDS.iter().any(|f| changes.contains_key(*f))
    {
        // Rescheduling a scheduled work order announces it again.
        lifecycle_event(op, updated, Some(old_status))?;
    }
    if let Some(change) = changes.get("site_lead_emp_number")
        && let Some(lead) = change["new"].as_str()
    {
        assigned(op, updated, lead)?;
    }
    Ok(())
}

fn status_changed(
    op: &Op,
    wo: &Record,
    previous: WorkOrderStatus,
    status: WorkOrderStatus,
) -> Result<Data, DomainError> {
    let project = payload::project_ref(op, wo.data["project_code"].as_str().unwrap_or(""))?;
    Ok(json_object(json!({
        "id": wo.record_id,
        "work_order_number": wo.data["work_order_number"],
        "phase_name": wo.data["phase_name"],
        "previous_status": previous.as_str(),
        "new_status": status.as_str(),
        "status_changed_at": op.now(),
        "status_changed_by": op.ctx.key_id,
        "project": project,
    })))
}

/// The catalog's event for the status the work order is in (`scheduled`, `started`,
/// `completed`, `cancelled`; none for the others): the work order as it now is, with when and
/// by whom (`scheduled_at`/`scheduled_by`, ...); a schedule also lists its assigned employees.
fn lifecycle_event(
    op: &Op,
    wo: &Record,
    previous: Option<WorkOrderStatus>,
) -> Result<(), DomainError> {
    let Some((event, verb)) = WorkOrderStatus::of(wo).entered() else {
        return Ok(());
    };
    let mut data = payload::full(op, Entity::WorkOrder, wo)?;
    data.insert(
        "previous_status".into(),
        json!(previous.map(WorkOrderStatus::as_str)),
    );
    if event == OutboundEvent::WorkOrderScheduled {
        data.insert(
            "assigned_employees".into(),
            json!(assigned_employees(op, wo)?),
        );
    }
    data.insert(format!("{verb}_at"), json!(op.now()));
    data.insert(format!("{verb}_by"), json!(op.ctx.key_id));
    op.emit(event, &wo.record_id, data)
}

/// The site lead (inbound operations name no crew).
fn assigned_employees(op: &Op, wo: &Record) -> Result<Vec<Value>, DomainError> {
    let mut out = Vec::new();
    if let Some(lead) = wo.data.get("site_lead_emp_number").and_then(Value::as_str)
        && let Some(emp) = op.get(Entity::Employee, &[lead])?
    {
        out.push(json!({"id": emp.record_id, "emp_number": lead, "name": emp.data["name"], "role": "site_lead"}));
    }
    Ok(out)
}

fn assigned(op: &Op, wo: &Record, emp_number: &str) -> Result<(), DomainError> {
    let Some(emp) = op.get(Entity::Employee, &[emp_number])? else {
        return Ok(());
    };
    let project = payload::project_ref(op, wo.data["project_code"].as_str().unwrap_or(""))?;
    op.emit(
        OutboundEvent::EmployeeAssigned,
        &emp.record_id,
        json_object(json!({
            "id": emp.record_id,
            "emp_number": emp_number,
            "name": emp.data["name"],
            "email": emp.data.get("email"),
            "role": "site_lead",
            "work_order": {
                "id": wo.record_id,
                "work_order_number": wo.data["work_order_number"],
                "phase_name": wo.data["phase_name"],
            },
            "project": project,
            "assigned_at": op.now(),
            "assigned_by": op.ctx.key_id,
        })),
    )
}

fn json_object(value: Value) -> Data {
    match value {
        Value::Object(map) => map,
        _ => Data::new(),
    }
}

pub(super) fn delete(op: &Op, data: &Data) -> Outcome {
    let record = match opt_text(data, "work_order_number") {
        Some(number) => op.target(
            Entity::WorkOrder,
            &[number],
            &format!("work order {number}"),
        )?,
        None => {
            let (code, phase) = (text(data, "project_code"), text(data, "phase_name"));
            let mut matches: Vec<Record> = op
                .tx
                .list_records(
                    op.company(),
                    Entity::WorkOrder.kind(),
                    Some(("project_code", code)),
                )?
                .into_iter()
                .filter(|wo| {
                    wo.data["phase_name"]
                        .as_str()
                        .is_some_and(|p| p.trim().eq_ignore_ascii_case(phase.trim()))
                })
                .collect();
            match matches.len() {
                0 => {
                    return Err(Rejection::new(
                        RejectionKind::NotFound,
                        format!("no work order {phase:?} in project {code}"),
                    )
                    .into());
                }
                1 => matches.remove(0),
                n => {
                    return Err(Rejection::new(
                        RejectionKind::AmbiguousWorkOrder,
                        format!("{n} work orders are called {phase:?} in project {code}; send work_order_number"),
                    )
                    .with_details(matches.iter().map(|wo| wo.data["work_order_number"].clone()).collect())
                    .into());
                }
            }
        }
    };
    op.delete(Entity::WorkOrder, &record)?;
    Ok(
        Applied::new("Work order deleted successfully", record.record_id).with(
            "work_order_number",
            record.data["work_order_number"].clone(),
        ),
    )
}
