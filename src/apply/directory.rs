//! Employees, vendors, customers, locations and contacts: the company's directory.

use serde_json::{Map, Value, json};

use super::op::{Op, natural_key, opt_text, text};
use super::{Applied, DomainError};
use crate::error::ApiError;

type Data = Map<String, Value>;
type Outcome = Result<Applied, DomainError>;

// --- employees ---------------------------------------------------------------------------

/// Every skill must already be in the company's library (422 listing the missing ones);
/// departments and roles are created on first use.
fn employee_references(op: &Op, data: &Data) -> Result<(), DomainError> {
    if let Some(Value::Array(skills)) = data.get("employee_skills") {
        let names: Vec<String> = skills
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        let missing = op.tx.missing_skills(op.company(), &names)?;
        if !missing.is_empty() {
            return Err(ApiError::unprocessable(
                "unknown_skills",
                format!(
                    "these skills are not in the company's skill library: {}; add them first (hookgate skills add, or POST /api/v1/skills)",
                    missing.join(", ")
                ),
            )
            .with_details(missing.into_iter().map(Value::String).collect())
            .into());
        }
    }
    for (field, kind) in [("department_name", "department"), ("role_name", "role")] {
        if let Some(name) = opt_text(data, field) {
            let key = natural_key(&[name]);
            if op.tx.get_record(op.company(), kind, &key)?.is_none() {
                let record = crate::store::Record {
                    record_id: crate::crypto::sortable_id("rec_"),
                    natural_key: key,
                    data: json!({"name": name}),
                    created_at: op.ctx.now_ms,
                    updated_at: op.ctx.now_ms,
                };
                op.tx
                    .insert_record(op.company(), kind, &record, &op.ctx.key_id)?;
            }
        }
    }
    Ok(())
}

pub fn employee_create(op: &Op, data: &Data) -> Outcome {
    let emp = text(data, "emp_number");
    op.ensure_absent("employee", &[emp], &format!("employee {emp}"))?;
    employee_references(op, data)?;
    let record = op.create("employee", &[emp], &format!("employee {emp}"), data.clone())?;
    Ok(Applied::new(
        "Webhook processed successfully",
        record.record_id,
    ))
}

pub fn employee_update(op: &Op, data: &Data) -> Outcome {
    let emp = text(data, "emp_number");
    let record = op.target("employee", &[emp], &format!("employee {emp}"))?;
    employee_references(op, data)?;
    op.update("employee", &record, data, &[emp])?;
    Ok(Applied::new(
        "Employee updated successfully",
        record.record_id,
    ))
}

pub fn employee_delete(op: &Op, data: &Data) -> Outcome {
    let emp = text(data, "emp_number");
    let record = op.target("employee", &[emp], &format!("employee {emp}"))?;
    op.delete("employee", &record, &["emp_number", "name"])?;
    Ok(Applied::new(
        "Employee deleted successfully",
        record.record_id,
    ))
}

// --- vendors -----------------------------------------------------------------------------

pub fn vendor_create(op: &Op, data: &Data) -> Outcome {
    let name = text(data, "vendor_name");
    let record = op.create("vendor", &[name], &format!("vendor {name:?}"), data.clone())?;
    Ok(Applied::new(
        "Vendor created successfully",
        record.record_id,
    ))
}

pub fn vendor_update(op: &Op, data: &Data) -> Outcome {
    let name = text(data, "vendor_name");
    let record = op.target("vendor", &[name], &format!("vendor {name:?}"))?;
    op.update("vendor", &record, data, &[name])?;
    Ok(Applied::new(
        "Vendor updated successfully",
        record.record_id,
    ))
}

pub fn vendor_delete(op: &Op, data: &Data) -> Outcome {
    let name = text(data, "vendor_name");
    let record = op.target("vendor", &[name], &format!("vendor {name:?}"))?;
    op.delete("vendor", &record, &["vendor_name"])?;
    Ok(Applied::new(
        "Vendor deleted successfully",
        record.record_id,
    ))
}

// --- customers ---------------------------------------------------------------------------

pub fn customer_create(op: &Op, data: &Data) -> Outcome {
    let name = text(data, "name");
    op.ensure_absent("customer", &[name], &format!("customer {name:?}"))?;
    op.employee_ref(data, "account_manager_emp_number")?;
    let record = op.create(
        "customer",
        &[name],
        &format!("customer {name:?}"),
        data.clone(),
    )?;
    Ok(Applied::new(
        "Customer created successfully",
        record.record_id,
    ))
}

pub fn customer_update(op: &Op, data: &Data) -> Outcome {
    let name = text(data, "name");
    let record = op.target("customer", &[name], &format!("customer {name:?}"))?;
    op.employee_ref(data, "account_manager_emp_number")?;
    op.update("customer", &record, data, &[name])?;
    Ok(Applied::new(
        "Customer updated successfully",
        record.record_id,
    ))
}

/// Refused while projects use the customer; its locations and contacts go with it.
pub fn customer_delete(op: &Op, data: &Data) -> Outcome {
    let name = text(data, "name");
    let record = op.target("customer", &[name], &format!("customer {name:?}"))?;
    let projects = op
        .tx
        .list_records(op.company(), "project", Some(("customer_name", name)))?;
    if !projects.is_empty() {
        let codes: Vec<Value> = projects
            .iter()
            .map(|p| p.data["project_code"].clone())
            .collect();
        return Err(ApiError::conflict(
            "has_dependents",
            format!(
                "customer {name:?} still has {} project(s); delete or move them first",
                codes.len()
            ),
        )
        .with_details(codes)
        .into());
    }
    for kind in ["contact", "location"] {
        for dependent in op
            .tx
            .list_records(op.company(), kind, Some(("customer_name", name)))?
        {
            let identity: &[&str] = if kind == "contact" {
                &["customer_name", "first_name", "last_name"]
            } else {
                &["customer_name", "name"]
            };
            op.delete(kind, &dependent, identity)?;
        }
    }
    op.delete("customer", &record, &["name"])?;
    Ok(Applied::new(
        "Customer deleted successfully",
        record.record_id,
    ))
}

// --- locations ---------------------------------------------------------------------------

pub fn location_create(op: &Op, data: &Data) -> Outcome {
    let (customer, name) = (text(data, "customer_name"), text(data, "name"));
    op.ensure_absent(
        "location",
        &[customer, name],
        &format!("location {name:?} of customer {customer:?}"),
    )?;
    op.reference("customer", &[customer], &format!("customer {customer:?}"))?;
    let record = op.create(
        "location",
        &[customer, name],
        &format!("location {name:?} of customer {customer:?}"),
        data.clone(),
    )?;
    Ok(Applied::new(
        "Location created successfully",
        record.record_id,
    ))
}

pub fn location_update(op: &Op, data: &Data) -> Outcome {
    let (customer, name) = (text(data, "customer_name"), text(data, "name"));
    let record = op.target(
        "location",
        &[customer, name],
        &format!("location {name:?} of customer {customer:?}"),
    )?;
    op.update("location", &record, data, &[customer, name])?;
    Ok(Applied::new(
        "Location updated successfully",
        record.record_id,
    ))
}

pub fn location_delete(op: &Op, data: &Data) -> Outcome {
    let (customer, name) = (text(data, "customer_name"), text(data, "name"));
    let record = op.target(
        "location",
        &[customer, name],
        &format!("location {name:?} of customer {customer:?}"),
    )?;
    op.delete("location", &record, &["customer_name", "name"])?;
    Ok(Applied::new(
        "Location deleted successfully",
        record.record_id,
    ))
}

// --- contacts ----------------------------------------------------------------------------

fn contact_key(data: &Data) -> [&str; 3] {
    [
        text(data, "customer_name"),
        text(data, "first_name"),
        text(data, "last_name"),
    ]
}

fn contact_what(key: &[&str; 3]) -> String {
    format!("contact {} {} of customer {:?}", key[1], key[2], key[0])
}

pub fn contact_create(op: &Op, data: &Data) -> Outcome {
    let key = contact_key(data);
    op.ensure_absent("contact", &key, &contact_what(&key))?;
    op.reference("customer", &[key[0]], &format!("customer {:?}", key[0]))?;
    if let Some(location) = opt_text(data, "location_name") {
        op.reference(
            "location",
            &[key[0], location],
            &format!("location {location:?} of customer {:?}", key[0]),
        )?;
    }
    let record = op.create("contact", &key, &contact_what(&key), data.clone())?;
    Ok(Applied::new(
        "Contact created successfully",
        record.record_id,
    ))
}

pub fn contact_update(op: &Op, data: &Data) -> Outcome {
    let key = contact_key(data);
    let record = op.target("contact", &key, &contact_what(&key))?;
    if let Some(location) = opt_text(data, "location_name") {
        op.reference(
            "location",
            &[key[0], location],
            &format!("location {location:?} of customer {:?}", key[0]),
        )?;
    }
    op.update("contact", &record, data, &key)?;
    Ok(Applied::new(
        "Contact updated successfully",
        record.record_id,
    ))
}

pub fn contact_delete(op: &Op, data: &Data) -> Outcome {
    let key = contact_key(data);
    let record = op.target("contact", &key, &contact_what(&key))?;
    op.delete(
        "contact",
        &record,
        &["customer_name", "first_name", "last_name"],
    )?;
    Ok(Applied::new(
        "Contact deleted successfully",
        record.record_id,
    ))
}
