//! Employees, vendors, customers, locations and contacts: the company's directory.

use serde_json::{Map, Value, json};

use super::op::{Op, natural_key, opt_text, text};
use super::rejection::{Rejection, RejectionKind};
use super::{Applied, DomainError};
use crate::catalog::Entity;

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
            return Err(Rejection::new(
                RejectionKind::UnknownSkills,
                format!(
                    "these skills are not in the company's skill library: {}; add them first (hookgate skills add, or POST /api/v1/skills)",
                    missing.join(", ")
                ),
            )
            .with_details(missing.into_iter().map(Value::String).collect())
            .into());
        }
    }
    for (field, entity) in [
        ("department_name", Entity::Department),
        ("role_name", Entity::Role),
    ] {
        if let Some(name) = opt_text(data, field) {
            let key = natural_key(&[name]);
            if op
                .tx
                .get_record(op.company(), entity.kind(), &key)?
                .is_none()
            {
                let record = crate::store::Record {
                    record_id: crate::crypto::sortable_id("rec_"),
                    natural_key: key,
                    data: json!({"name": name}),
                    created_at: op.ctx.now_ms,
                    updated_at: op.ctx.now_ms,
                };
                op.tx
                    .insert_record(op.company(), entity.kind(), &record, &op.ctx.key_id)?;
            }
        }
    }
    Ok(())
}

pub(super) fn employee_create(op: &Op, data: &Data) -> Outcome {
    let emp = text(data, "emp_number");
    op.ensure_absent(Entity::Employee, &[emp], &format!("employee {emp}"))?;
    employee_references(op, data)?;
    let record = op.create(
        Entity::Employee,
        &[emp],
        &format!("employee {emp}"),
        data.clone(),
    )?;
    Ok(Applied::new(
        "Webhook processed successfully",
        record.record_id,
    ))
}

pub(super) fn employee_update(op: &Op, data: &Data) -> Outcome {
    let emp = text(data, "emp_number");
    let record = op.target(Entity::Employee, &[emp], &format!("employee {emp}"))?;
    employee_references(op, data)?;
    op.update(Entity::Employee, &record, data, &[emp])?;
    Ok(Applied::new(
        "Employee updated successfully",
        record.record_id,
    ))
}

pub(super) fn employee_delete(op: &Op, data: &Data) -> Outcome {
    let emp = text(data, "emp_number");
    let record = op.target(Entity::Employee, &[emp], &format!("employee {emp}"))?;
    op.delete(Entity::Employee, &record)?;
    Ok(Applied::new(
        "Employee deleted successfully",
        record.record_id,
    ))
}

// --- vendors -----------------------------------------------------------------------------

pub(super) fn vendor_create(op: &Op, data: &Data) -> Outcome {
    let name = text(data, "vendor_name");
    let record = op.create(
        Entity::Vendor,
        &[name],
        &format!("vendor {name:?}"),
        data.clone(),
    )?;
    Ok(Applied::new(
        "Vendor created successfully",
        record.record_id,
    ))
}

pub(super) fn vendor_update(op: &Op, data: &Data) -> Outcome {
    let name = text(data, "vendor_name");
    let record = op.target(Entity::Vendor, &[name], &format!("vendor {name:?}"))?;
    op.update(Entity::Vendor, &record, data, &[name])?;
    Ok(Applied::new(
        "Vendor updated successfully",
        record.record_id,
    ))
}

pub(super) fn vendor_delete(op: &Op, data: &Data) -> Outcome {
    let name = text(data, "vendor_name");
    let record = op.target(Entity::Vendor, &[name], &format!("vendor {name:?}"))?;
    op.delete(Entity::Vendor, &record)?;
    Ok(Applied::new(
        "Vendor deleted successfully",
        record.record_id,
    ))
}

// --- customers ---------------------------------------------------------------------------

pub(super) fn customer_create(op: &Op, data: &Data) -> Outcome {
    let name = text(data, "name");
    op.ensure_absent(Entity::Customer, &[name], &format!("customer {name:?}"))?;
    op.employee_ref(data, "account_manager_emp_number")?;
    let record = op.create(
        Entity::Customer,
        &[name],
        &format!("customer {name:?}"),
        data.clone(),
    )?;
    Ok(Applied::new(
        "Customer created successfully",
        record.record_id,
    ))
}

pub(super) fn customer_update(op: &Op, data: &Data) -> Outcome {
    let name = text(data, "name");
    let record = op.target(Entity::Customer, &[name], &format!("customer {name:?}"))?;
    op.employee_ref(data, "account_manager_emp_number")?;
    op.update(Entity::Customer, &record, data, &[name])?;
    Ok(Applied::new(
        "Customer updated successfully",
        record.record_id,
    ))
}

/// Refused while projects use the customer; its locations and contacts go with it.
pub(super) fn customer_delete(op: &Op, data: &Data) -> Outcome {
    let name = text(data, "name");
    let record = op.target(Entity::Customer, &[name], &format!("customer {name:?}"))?;
    let projects = op.tx.list_records(
        op.company(),
        Entity::Project.kind(),
        Some(("customer_name", name)),
    )?;
    if !projects.is_empty() {
        let codes: Vec<Value> = projects
            .iter()
            .map(|p| p.data["project_code"].clone())
            .collect();
        return Err(Rejection::new(
            RejectionKind::HasDependents,
            format!(
                "customer {name:?} still has {} project(s); delete or move them first",
                codes.len()
            ),
        )
        .with_details(codes)
        .into());
    }
    for entity in [Entity::Contact, Entity::Location] {
        for dependent in
            op.tx
                .list_records(op.company(), entity.kind(), Some(("customer_name", name)))?
        {
            op.delete(entity, &dependent)?;
        }
    }
    op.delete(Entity::Customer, &record)?;
    Ok(Applied::new(
        "Customer deleted successfully",
        record.record_id,
    ))
}

// --- locations ---------------------------------------------------------------------------

pub(super) fn location_create(op: &Op, data: &Data) -> Outcome {
    let (customer, name) = (text(data, "customer_name"), text(data, "name"));
    op.ensure_absent(
        Entity::Location,
        &[customer, name],
        &format!("location {name:?} of customer {customer:?}"),
    )?;
    op.reference(
        Entity::Customer,
        &[customer],
        &format!("customer {customer:?}"),
    )?;
    let record = op.create(
        Entity::Location,
        &[customer, name],
        &format!("location {name:?} of customer {customer:?}"),
        data.clone(),
    )?;
    Ok(Applied::new(
        "Location created successfully",
        record.record_id,
    ))
}

pub(super) fn location_update(op: &Op, data: &Data) -> Outcome {
    let (customer, name) = (text(data, "customer_name"), text(data, "name"));
    let record = op.target(
        Entity::Location,
        &[customer, name],
        &format!("location {name:?} of customer {customer:?}"),
    )?;
    op.update(Entity::Location, &record, data, &[customer, name])?;
    Ok(Applied::new(
        "Location updated successfully",
        record.record_id,
    ))
}

pub(super) fn location_delete(op: &Op, data: &Data) -> Outcome {
    let (customer, name) = (text(data, "customer_name"), text(data, "name"));
    let record = op.target(
        Entity::Location,
        &[customer, name],
        &format!("location {name:?} of customer {customer:?}"),
    )?;
    op.delete(Entity::Location, &record)?;
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

pub(super) fn contact_create(op: &Op, data: &Data) -> Outcome {
    let key = contact_key(data);
    op.ensure_absent(Entity::Contact, &key, &contact_what(&key))?;
    op.reference(
        Entity::Customer,
        &[key[0]],
        &format!("customer {:?}", key[0]),
    )?;
    if let Some(location) = opt_text(data, "location_name") {
        op.reference(
            Entity::Location,
            &[key[0], location],
            &format!("location {location:?} of customer {:?}", key[0]),
        )?;
    }
    let record = op.create(Entity::Contact, &key, &contact_what(&key), data.clone())?;
    Ok(Applied::new(
        "Contact created successfully",
        record.record_id,
    ))
}

pub(super) fn contact_update(op: &Op, data: &Data) -> Outcome {
    let key = contact_key(data);
    let record = op.target(Entity::Contact, &key, &contact_what(&key))?;
    if let Some(location) = opt_text(data, "location_name") {
        op.reference(
            Entity::Location,
            &[key[0], location],
            &format!("location {location:?} of customer {:?}", key[0]),
        )?;
    }
    op.update(Entity::Contact, &record, data, &key)?;
    Ok(Applied::new(
        "Contact updated successfully",
        record.record_id,
    ))
}

pub(super) fn contact_delete(op: &Op, data: &Data) -> Outcome {
    let key = contact_key(data);
    let record = op.target(Entity::Contact, &key, &contact_what(&key))?;
    op.delete(Entity::Contact, &record)?;
    Ok(Applied::new(
        "Contact deleted successfully",
        record.record_id,
    ))
}
