//! Daily reports, completion reports and their approval (the seed's auto-approval rules:
//! a completion report with `requires_approval: false` and `is_auto_approved: true` completes
//! its work order at once; otherwise it waits for `report.completion_approved`).

use serde_json::{Map, Value, json};

use super::op::{Op, merge, text};
use super::payload;
use super::rejection::{Rejection, RejectionKind};
use super::status::WorkOrderStatus;
use super::work_orders;
use super::{Applied, DomainError};
use crate::catalog::{Entity, OutboundEvent};
use crate::clock;
use crate::store::Record;

type Data = Map<String, Value>;
type Outcome = Result<Applied, DomainError>;

fn work_order_ref(op: &Op, data: &Data) -> Result<Record, DomainError> {
    let number = text(data, "work_order_number");
    op.reference(
        Entity::WorkOrder,
        &[number],
        &format!("work order {number}"),
    )
}

fn flag(data: &Data, field: &str, default: bool) -> bool {
    data.get(field).and_then(Value::as_bool).unwrap_or(default)
}

/// The report as stored: the request, its approval status and its work order's project.
fn report(data: &Data, wo: &Record, approved: bool) -> Data {
    let mut report = data.clone();
    report.insert(
        "status".into(),
        json!(if approved { "approved" } else { "pending" }),
    );
    report.insert("project_code".into(), wo.data["project_code"].clone());
    report
}

fn submitted_now(op: &Op, mut report: Data) -> Data {
    report.insert("submitted_at".into(), json!(op.now()));
    report
}

pub(super) fn daily_submitted(op: &Op, data: &Data) -> Outcome {
    let wo = work_order_ref(op, data)?;
    op.employee_ref(data, "submitted_by")?;
    let report = report(data, &wo, flag(data, "is_auto_approved", false));
    // Several reports may exist per work order and day: each submission is its own record.
    let key = [
        text(data, "work_order_number"),
        text(data, "report_date"),
        op.ctx.event_id.as_str(),
    ];
    let created = op.create(
        Entity::DailyReport,
        &key,
        "daily report",
        submitted_now(op, report),
    )?;
    Ok(Applied::new(
        "Daily report submitted successfully",
        created.record_id,
    ))
}

pub(super) fn completion_submitted(op: &Op, data: &Data) -> Outcome {
    let wo = work_order_ref(op, data)?;
    op.employee_ref(data, "submitted_by")?;
    let number = text(data, "work_order_number");
    let auto = !flag(data, "requires_approval", true) && flag(data, "is_auto_approved", false);
    let mut report = report(data, &wo, auto);
    report
        .entry("report_date")
        .or_insert_with(|| json!(clock::today()));
    let record = match op.get(Entity::CompletionReport, &[number])? {
        Some(existing) if existing.data["status"] == "approved" => {
            return Err(Rejection::new(
                RejectionKind::AlreadyExists,
                format!("work order {number} already has an approved completion report"),
            )
            .into());
        }
        // The same submission again changes nothing (and announces nothing).
        Some(existing) if merge(&existing.data, &report).1.is_empty() => existing,
        // A new submission replaces a pending one.
        Some(existing) => {
            let report = submitted_now(op, report);
            op.update(Entity::CompletionReport, &existing, &report, &[number])?
                .0
        }
        None => op.create_missing(
            Entity::CompletionReport,
            &[number],
            "completion report",
            submitted_now(op, report),
        )?,
    };
    if auto {
        approve(op, &wo, &record, &Data::new())?;
    }
    Ok(Applied::new(
        "Completion report submitted successfully",
        record.record_id,
    ))
}

pub(super) fn completion_approved(op: &Op, data: &Data) -> Outcome {
    let wo = work_order_ref(op, data)?;
    op.employee_ref(data, "approved_by")?;
    let number = text(data, "work_order_number");
    let report = op
        .get(Entity::CompletionReport, &[number])?
        .filter(|r| r.data["status"] == "pending")
        .ok_or_else(|| {
            Rejection::new(
                RejectionKind::NoPendingReport,
                format!("work order {number} has no completion report waiting for approval"),
            )
        })?;
    let mut approval = Data::new();
    for field in ["approved_by", "approval_notes"] {
        if let Some(v) = data.get(field) {
            approval.insert(field.into(), v.clone());
        }
    }
    let approved = approve(op, &wo, &report, &approval)?;
    Ok(Applied::new(
        "Completion report approved successfully",
        approved.record_id,
    ))
}

/// Marks the report approved, completes the work order and announces both.
fn approve(op: &Op, wo: &Record, report: &Record, approval: &Data) -> Result<Record, DomainError> {
    let mut update = approval.clone();
    update.insert("status".into(), json!("approved"));
    update.insert("approved_at".into(), json!(op.now()));
    let number = text(
        report.data.as_object().expect("records are objects"),
        "work_order_number",
    )
    .to_string();
    let (approved, _) =
        op.update_as(Entity::CompletionReport, report, &update, &[&number], None)?;
    if work_orders::is_open(wo) {
        work_orders::set_status(op, wo, WorkOrderStatus::Completed)?;
    }
    let payload = payload::full(op, Entity::CompletionReport, &approved)?;
    op.emit(
        OutboundEvent::ReportCompletionApproved,
        &approved.record_id,
        payload,
    )?;
    Ok(approved)
}
