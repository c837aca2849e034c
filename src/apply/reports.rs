//! Daily reports, completion reports and their approval (the seed's auto-approval rules:
//! a completion report with `requires_approval: false` and `is_auto_approved: true` completes
//! its work order at once; otherwise it waits for `report.completion_approved`).

use serde_json::{Map, Value, json};

use super::op::{Op, text, view};
use super::work_orders;
use super::{Applied, DomainError};
use crate::clock;
use crate::error::ApiError;
use crate::store::Record;

type Data = Map<String, Value>;
type Outcome = Result<Applied, DomainError>;

fn work_order_ref(op: &Op, data: &Data) -> Result<Record, DomainError> {
    let number = text(data, "work_order_number");
    op.reference("work_order", &[number], &format!("work order {number}"))
}

fn flag(data: &Data, field: &str, default: bool) -> bool {
    data.get(field).and_then(Value::as_bool).unwrap_or(default)
}

pub fn daily_submitted(op: &Op, data: &Data) -> Outcome {
    let wo = work_order_ref(op, data)?;
    op.employee_ref(data, "submitted_by")?;
    let mut report = data.clone();
    let approved = flag(data, "is_auto_approved", false);
    report.insert(
        "status".into(),
        json!(if approved { "approved" } else { "pending" }),
    );
    report.insert("project_code".into(), wo.data["project_code"].clone());
    // Several reports may exist per work order and day: each submission is its own record.
    let key = [
        text(data, "work_order_number"),
        text(data, "report_date"),
        op.ctx.event_id.as_str(),
    ];
    let created = op.create_as(
        "daily_report",
        &key,
        "daily report",
        report,
        "report.daily_submitted",
    )?;
    Ok(Applied::new(
        "Daily report submitted successfully",
        created.record_id,
    ))
}

pub fn completion_submitted(op: &Op, data: &Data) -> Outcome {
    let wo = work_order_ref(op, data)?;
    op.employee_ref(data, "submitted_by")?;
    let number = text(data, "work_order_number");
    let auto = !flag(data, "requires_approval", true) && flag(data, "is_auto_approved", false);
    let mut report = data.clone();
    report
        .entry("report_date")
        .or_insert_with(|| json!(clock::today()));
    report.insert(
        "status".into(),
        json!(if auto { "approved" } else { "pending" }),
    );
    report.insert("project_code".into(), wo.data["project_code"].clone());
    let record = match op.get("completion_report", &[number])? {
        Some(existing) if existing.data["status"] == "approved" => {
            return Err(ApiError::conflict(
                "already_exists",
                format!("work order {number} already has an approved completion report"),
            )
            .into());
        }
        // A new submission replaces a pending one.
        Some(existing) => {
            op.update_as(
                "completion_report",
                &existing,
                &report,
                &[number],
                Some("report.completion_submitted"),
            )?
            .0
        }
        None => op.create_as(
            "completion_report",
            &[number],
            "completion report",
            report,
            "report.completion_submitted",
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

pub fn completion_approved(op: &Op, data: &Data) -> Outcome {
    let wo = work_order_ref(op, data)?;
    op.employee_ref(data, "approved_by")?;
    let number = text(data, "work_order_number");
    let report = op
        .get("completion_report", &[number])?
        .filter(|r| r.data["status"] == "pending")
        .ok_or_else(|| {
            ApiError::conflict(
                "no_pending_report",
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
    update.insert(
        "approved_at".into(),
        json!(clock::rfc3339_from_ms(op.ctx.now_ms)),
    );
    let number = text(
        report.data.as_object().expect("records are objects"),
        "work_order_number",
    )
    .to_string();
    let (approved, _) = op.update_as("completion_report", report, &update, &[&number], None)?;
    if work_orders::is_open(wo) {
        work_orders::set_status(op, wo, "completed")?;
    }
    let payload = op.decorate("work_order", view(&approved))?;
    op.emit(
        "report.completion_approved",
        "report",
        &approved.record_id,
        payload,
    )?;
    Ok(approved)
}
