//! Projects: create (auto-creating the customer, location and contacts it names), update
//! (including switching or editing the customer/location), delete and close.

use serde_json::{Map, Value, json};

use super::op::{Op, text};
use super::payload;
use super::rejection::{Rejection, RejectionKind};
use super::status::WorkOrderStatus;
use super::work_orders;
use super::{Applied, DomainError};
use crate::catalog::{Entity, OutboundEvent};
use crate::store::Record;

type Data = Map<String, Value>;
type Outcome = Result<Applied, DomainError>;

/// Project fields that describe its customer: `(project field, customer field)`.
const CUSTOMER_FIELDS: &[(&str, &str)] = &[
    ("customer_type", "type"),
    ("customer_email", "email"),
    ("customer_phone", "phone"),
    ("customer_website", "website"),
    ("customer_status", "status"),
    ("customer_notes", "notes"),
];

/// Project fields that describe its location: `(project field, location field)`.
const LOCATION_FIELDS: &[(&str, &str)] = &[
    ("location_address_line_1", "address_line_1"),
    ("location_address_line_2", "address_line_2"),
    ("location_city", "city"),
    ("location_province", "province"),
    ("location_postal_code", "postal_code"),
    ("location_country", "country"),
    ("location_phone", "phone"),
    ("location_notes", "notes"),
];

pub(super) const MANAGER_FIELDS: &[&str] =
    &["account_manager_emp_number", "internal_manager_emp_number"];

/// Splits a project request into the project's own fields and the customer's and location's.
fn split(data: &Data) -> (Data, Data, Data) {
    let mut project = Data::new();
    let mut customer = Data::new();
    let mut location = Data::new();
    for (field, value) in data {
        if let Some((_, c)) = CUSTOMER_FIELDS.iter().find(|(p, _)| p == field) {
            customer.insert(c.to_string(), value.clone());
        } else if let Some((_, l)) = LOCATION_FIELDS.iter().find(|(p, _)| p == field) {
            location.insert(l.to_string(), value.clone());
        } else {
            project.insert(field.clone(), value.clone());
        }
    }
    (project, customer, location)
}

/// Finds the customer, creating it from `fields` or updating it with them.
fn upsert_customer(op: &Op, name: &str, fields: Data) -> Result<Record, DomainError> {
    match op.get(Entity::Customer, &[name])? {
        Some(existing) => Ok(op.update(Entity::Customer, &existing, &fields, &[name])?.0),
        None => {
            let mut data = Data::new();
            data.insert("name".into(), json!(name));
            data.extend(fields);
            op.create_missing(
                Entity::Customer,
                &[name],
                &format!("customer {name:?}"),
                data,
            )
        }
    }
}

fn upsert_location(
    op: &Op,
    customer: &str,
    name: &str,
    fields: Data,
) -> Result<Record, DomainError> {
    match op.get(Entity::Location, &[customer, name])? {
        Some(existing) => Ok(op
            .update(Entity::Location, &existing, &fields, &[customer, name])?
            .0),
        None => {
            let mut data = Data::new();
            data.insert("customer_name".into(), json!(customer));
            data.insert("name".into(), json!(name));
            data.extend(fields);
            op.create_missing(
                Entity::Location,
                &[customer, name],
                &format!("location {name:?}"),
                data,
            )
        }
    }
}

/// Creates the contacts that do not exist yet and updates the ones that do.
fn upsert_contacts(op: &Op, customer: &str, contacts: &[Value]) -> Result<(), DomainError> {
    for contact in contacts.iter().filter_map(Value::as_object) {
        let (first, last) = (text(contact, "first_name"), text(contact, "last_name"));
        let key = [customer, first, last];
        match op.get(Entity::Contact, &key)? {
            Some(existing) => {
                op.update(Entity::Contact, &existing, contact, &key)?;
            }
            None => {
                let mut data = Data::new();
                data.insert("customer_name".into(), json!(customer));
                data.extend(contact.clone());
                op.create_missing(
                    Entity::Contact,
                    &key,
                    &format!("contact {first} {last}"),
                    data,
                )?;
            }
        }
    }
    Ok(())
}

fn check_managers(op: &Op, data: &Data) -> Result<(), DomainError> {
    for field in MANAGER_FIELDS {
        op.employee_ref(data, field)?;
    }
    Ok(())
}

pub(super) fn create(op: &Op, data: &Data) -> Outcome {
    let code = text(data, "project_code");
    op.ensure_absent(Entity::Project, &[code], &format!("project {code}"))?;
    check_managers(op, data)?;
    let (mut project, customer_fields, location_fields) = split(data);
    let customer = text(data, "customer_name");
    let location = text(data, "location_name");
    if !customer.is_empty() {
        upsert_customer(op, customer, customer_fields)?;
        if !location.is_empty() {
            upsert_location(op, customer, location, location_fields)?;
        }
        if let Some(Value::Array(contacts)) = data.get("contacts") {
            upsert_contacts(op, customer, contacts)?;
        }
    }
    project.entry("status").or_insert(json!("active"));
    let record = op.create(
        Entity::Project,
        &[code],
        &format!("project {code}"),
        project,
    )?;
    Ok(Applied::new(
        "Webhook processed successfully",
        record.record_id,
    ))
}

pub(super) fn update(op: &Op, data: &Data) -> Outcome {
    let code = text(data, "project_code");
    let record = op.target(Entity::Project, &[code], &format!("project {code}"))?;
    check_managers(op, data)?;
    let (project, customer_fields, location_fields) = split(data);
    // The customer/location named in the request, else the project's current ones.
    let current = |field: &str| {
        data.get(field)
            .or_else(|| record.data.get(field))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (customer, location) = (current("customer_name"), current("location_name"));
    if !customer.is_empty() {
        if data.contains_key("customer_name") || !customer_fields.is_empty() {
            upsert_customer(op, &customer, customer_fields)?;
        }
        if !location.is_empty()
            && (data.contains_key("location_name") || !location_fields.is_empty())
        {
            upsert_location(op, &customer, &location, location_fields)?;
        }
        if let Some(Value::Array(contacts)) = data.get("contacts") {
            upsert_contacts(op, &customer, contacts)?;
        }
    }
    op.update(Entity::Project, &record, &project, &[code])?;
    Ok(Applied::new(
        "Project updated successfully",
        record.record_id,
    ))
}

/// Deletes the project and, with it, its work orders.
pub(super) fn delete(op: &Op, data: &Data) -> Outcome {
    let code = text(data, "project_code");
    let record = op.target(Entity::Project, &[code], &format!("project {code}"))?;
    for wo in op.tx.list_records(
        op.company(),
        Entity::WorkOrder.kind(),
        Some(("project_code", code)),
    )? {
        op.delete(Entity::WorkOrder, &wo)?;
    }
    op.delete(Entity::Project, &record)?;
    Ok(Applied::new(
        "Project deleted successfully",
        record.record_id,
    ))
}

/// Refuses while work orders are open, unless `close_work_orders` (then completes them).
pub(super) fn close(op: &Op, data: &Data) -> Outcome {
    let code = text(data, "project_code");
    let record = op.target(Entity::Project, &[code], &format!("project {code}"))?;
    if record.data.get("status").and_then(Value::as_str) == Some("closed") {
        return Ok(Applied::new(
            "Project closed successfully",
            record.record_id,
        )); // nothing changes, nothing is emitted
    }
    let open: Vec<Record> = op
        .tx
        .list_records(
            op.company(),
            Entity::WorkOrder.kind(),
            Some(("project_code", code)),
        )?
        .into_iter()
        .filter(work_orders::is_open)
        .collect();
    let force = data
        .get("close_work_orders")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !open.is_empty() && !force {
        let numbers: Vec<Value> = open
            .iter()
            .map(|wo| wo.data["work_order_number"].clone())
            .collect();
        return Err(Rejection::new(
            RejectionKind::OpenWorkOrders,
            format!(
                "project {code} has {} open work order(s); complete them first or send close_work_orders: true",
                open.len()
            ),
        )
        .with_details(numbers)
        .into());
    }
    for wo in &open {
        work_orders::set_status(op, wo, WorkOrderStatus::Completed)?;
    }
    let mut update = Data::new();
    update.insert("status".into(), json!("closed"));
    update.insert("closed_at".into(), json!(op.now()));
    let (updated, _) = op.update(Entity::Project, &record, &update, &[code])?;
    let mut closed = payload::full(op, Entity::Project, &updated)?;
    closed.insert("closed_by".into(), json!(op.ctx.key_id));
    closed.insert("work_orders_closed".into(), json!(open.len()));
    op.emit(OutboundEvent::ProjectClosed, &record.record_id, closed)?;
    Ok(Applied::new(
        "Project closed successfully",
        record.record_id,
    ))
}
