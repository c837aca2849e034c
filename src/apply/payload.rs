//! What subscribers receive: the `data` of each outbound event, shaped like the seed's outbound
//! examples. A record's stored fields come first; then what a subscriber needs beside them
//! (the work order's `project` and `site_lead`, a project's `customer`, `location`, `contacts`
//! with their ids and `project_owners`, an employee's `role` and `is_*` flags, a vendor's
//! `address` object, a report's `submitted_by` and checklists, ...), always present (null when
//! there is nothing to show). `schemas/outbound/` documents every field.

use serde_json::{Map, Value, json};

use super::DomainError;
use super::op::{Changes, Op, opt_text, text, view};
use super::projects::MANAGER_FIELDS;
use crate::catalog::Entity;
use crate::store::Record;

type Data = Map<String, Value>;
type Built = Result<Data, DomainError>;

/// A vendor's address: `(stored field, field of the payload's address object)`.
const VENDOR_ADDRESS: &[(&str, &str)] = &[
    ("address", "address_line_1"),
    ("address_line2", "address_line_2"),
    ("city", "city"),
    ("state", "province"),
    ("zip_code", "postal_code"),
    ("country", "country"),
];

/// An employee's fields as stored (the inbound names) and as delivered (the seed's outbound
/// names).
const EMPLOYEE_RENAMES: &[(&str, &str)] =
    &[("role_name", "role"), ("department_name", "department")];

/// The fields that identify a deleted record, besides its `id`.
fn identity(entity: Entity) -> &'static [&'static str] {
    match entity {
        Entity::WorkOrder => &["work_order_number", "phase_name", "project_code", "project"],
        Entity::Project => &["project_code", "project_name"],
        Entity::Employee => &["emp_number", "name", "email"],
        Entity::Vendor => &["vendor_name"],
        Entity::Customer => &["name"],
        Entity::Location => &["customer_id", "customer_name", "name"],
        Entity::Contact => &["customer_id", "customer_name", "first_name", "last_name"],
        Entity::TimeOff => &["emp_number", "employee_name", "start_date", "end_date"],
        Entity::Timesheet => &[
            "timesheet_id",
            "emp_number",
            "employee_name",
            "timesheet_date",
        ],
        Entity::DailyReport
        | Entity::CompletionReport
        | Entity::Department
        | Entity::Role
        | Entity::Webhook
        | Entity::Delivery => &[],
    }
}

/// A new record, and who created it.
pub(super) fn created(op: &Op, entity: Entity, record: &Record) -> Built {
    let mut out = full(op, entity, record)?;
    out.insert("created_by".into(), json!(op.ctx.key_id));
    Ok(out)
}

/// A changed record, what changed (in the payload's field names) and who changed it.
pub(super) fn updated(
    op: &Op,
    entity: Entity,
    old: &Record,
    new: &Record,
    changes: &Changes,
) -> Built {
    let mut out = full(op, entity, new)?;
    out.insert(
        "changes".into(),
        Value::Object(delivered_changes(entity, old, new, changes)),
    );
    out.insert("updated_by".into(), json!(op.ctx.key_id));
    if entity == Entity::Timesheet {
        let (update_type, entry) = timesheet_update(old, new, changes);
        out.insert("update_type".into(), json!(update_type));
        let entry = match entry {
            Some(entry) => timesheet_entry(op, &entry)?,
            None => Value::Null,
        };
        out.insert("entry".into(), entry);
    }
    Ok(out)
}

/// The identifying fields of a deleted record, and who deleted it.
pub(super) fn deleted(op: &Op, entity: Entity, record: &Record) -> Built {
    let full = full(op, entity, record)?;
    let mut out = Data::new();
    for field in std::iter::once(&"id").chain(identity(entity)) {
        if let Some(value) = full.get(*field) {
            out.insert(field.to_string(), value.clone());
        }
    }
    out.insert("deleted_at".into(), json!(op.now()));
    out.insert("deleted_by".into(), json!(op.ctx.key_id));
    Ok(out)
}

/// The record as subscribers see it.
pub(super) fn full(op: &Op, entity: Entity, record: &Record) -> Built {
    let mut out = view(record);
    match entity {
        Entity::WorkOrder => work_order(op, &mut out)?,
        Entity::Project => project(op, &mut out)?,
        Entity::Employee => employee(&mut out),
        Entity::Vendor => vendor(&mut out),
        Entity::Location => {
            let customer = op.get(Entity::Customer, &[text(&out, "customer_name")])?;
            out.insert("customer_id".into(), id_of(customer.as_ref()));
            out.insert("customer".into(), summary(customer.as_ref(), &["name"]));
        }
        Entity::Contact => {
            let customer = op.get(Entity::Customer, &[text(&out, "customer_name")])?;
            out.insert("customer_id".into(), id_of(customer.as_ref()));
            // The seed calls a contact's title its role.
            let title = out.get("title").cloned().unwrap_or(Value::Null);
            out.insert("role".into(), title);
        }
        Entity::TimeOff => {
            let name = employee_name(op, &out)?;
            out.insert("employee_name".into(), name);
        }
        Entity::Timesheet => timesheet(op, &mut out)?,
        Entity::DailyReport | Entity::CompletionReport => report(op, entity, &mut out)?,
        Entity::Customer
        | Entity::Department
        | Entity::Role
        | Entity::Webhook
        | Entity::Delivery => {}
    }
    Ok(out)
}

/// The project a work order (or report) belongs to: `{id, project_code, project_name,
/// customer_name, site_address}`, or null when it does not exist.
pub(super) fn project_ref(op: &Op, code: &str) -> Result<Value, DomainError> {
    let Some(project) = op.get(Entity::Project, &[code])? else {
        return Ok(Value::Null);
    };
    let data = project.data.as_object().cloned().unwrap_or_default();
    let location = match (
        opt_text(&data, "customer_name"),
        opt_text(&data, "location_name"),
    ) {
        (Some(customer), Some(location)) => op.get(Entity::Location, &[customer, location])?,
        _ => None,
    };
    let site_address = location.and_then(|l| {
        let lines: Vec<&str> = ["address_line_1", "address_line_2"]
            .iter()
            .filter_map(|f| l.data.get(*f).and_then(Value::as_str))
            .filter(|s| !s.trim().is_empty())
            .collect();
        (!lines.is_empty()).then(|| lines.join(", "))
    });
    Ok(json!({
        "id": project.record_id,
        "project_code": data.get("project_code"),
        "project_name": data.get("project_name"),
        "customer_name": data.get("customer_name"),
        "site_address": site_address,
    }))
}

/// `{id, <fields>}` of `record` (null where it has none), or null without a record.
fn summary(record: Option<&Record>, fields: &[&str]) -> Value {
    let Some(record) = record else {
        return Value::Null;
    };
    let mut out = Data::new();
    out.insert("id".into(), json!(record.record_id));
    for field in fields {
        let value = record.data.get(*field).cloned().unwrap_or(Value::Null);
        out.insert(field.to_string(), value);
    }
    Value::Object(out)
}

fn id_of(record: Option<&Record>) -> Value {
    record.map_or(Value::Null, |r| json!(r.record_id))
}

/// An employee as a report names them: `{employee_id, emp_number, name}` (and `role`).
fn report_person(op: &Op, emp_number: Option<&str>, with_role: bool) -> Result<Value, DomainError> {
    let Some(emp_number) = emp_number else {
        return Ok(Value::Null);
    };
    let employee = op.get(Entity::Employee, &[emp_number])?;
    let field = |name: &str| {
        employee
            .as_ref()
            .and_then(|e| e.data.get(name).cloned())
            .unwrap_or(Value::Null)
    };
    let mut out = json!({
        "employee_id": id_of(employee.as_ref()),
        "emp_number": emp_number,
        "name": field("name"),
    });
    if with_role {
        out["role"] = field("role_name");
    }
    Ok(out)
}

fn employee_name(op: &Op, data: &Data) -> Result<Value, DomainError> {
    let employee = op.get(Entity::Employee, &[text(data, "emp_number")])?;
    Ok(employee
        .and_then(|e| e.data.get("name").cloned())
        .or_else(|| data.get("employee_name").cloned())
        .unwrap_or(Value::Null))
}

/// Renames `from` to `to` where it stands, keeping the field order.
fn rename(map: &mut Data, from: &str, to: &str) {
    if map.contains_key(from) {
        *map = std::mem::take(map)
            .into_iter()
            .map(|(k, v)| {
                if k == from {
                    (to.to_string(), v)
                } else {
                    (k, v)
                }
            })
            .collect();
    }
}

fn work_order(op: &Op, out: &mut Data) -> Result<(), DomainError> {
    let project = project_ref(op, text(out, "project_code"))?;
    out.insert("project".into(), project);
    let lead = match opt_text(out, "site_lead_emp_number") {
        Some(emp) => op.get(Entity::Employee, &[emp])?,
        None => None,
    };
    out.insert(
        "site_lead".into(),
        summary(lead.as_ref(), &["emp_number", "name", "email", "phone"]),
    );
    // The seed's outbound name for the inbound `days_hours_required` (alias `estimated_hours`).
    let hours = out
        .get("days_hours_required")
        .cloned()
        .unwrap_or(Value::Null);
    out.insert("estimated_hours".into(), hours);
    Ok(())
}

fn project(op: &Op, out: &mut Data) -> Result<(), DomainError> {
    let customer_name = text(out, "customer_name").to_string();
    let customer = op.get(Entity::Customer, &[&customer_name])?;
    out.insert(
        "customer".into(),
        summary(customer.as_ref(), &["name", "type", "email", "phone"]),
    );
    let location = match opt_text(out, "location_name") {
        Some(name) => op.get(Entity::Location, &[&customer_name, name])?,
        None => None,
    };
    out.insert(
        "location".into(),
        summary(
            location.as_ref(),
            &[
                "name",
                "address_line_1",
                "address_line_2",
                "city",
                "province",
                "postal_code",
                "country",
            ],
        ),
    );
    let mut contacts = Vec::new();
    for contact in out
        .get("contacts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
    {
        let key = [
            customer_name.as_str(),
            text(contact, "first_name"),
            text(contact, "last_name"),
        ];
        let stored = op.get(Entity::Contact, &key)?;
        let field = |name: &str| {
            stored
                .as_ref()
                .and_then(|c| c.data.get(name))
                .or_else(|| contact.get(name))
                .cloned()
                .unwrap_or(Value::Null)
        };
        contacts.push(json!({
            "id": id_of(stored.as_ref()),
            "first_name": field("first_name"),
            "last_name": field("last_name"),
            "email": field("email"),
            "phone": field("phone"),
            "title": field("title"),
            "role": field("title"),
            "is_primary": field("is_primary"),
        }));
    }
    out.insert("contacts".into(), Value::Array(contacts));
    let mut owners: Vec<Value> = Vec::new();
    for field in MANAGER_FIELDS {
        let Some(emp) = opt_text(out, field) else {
            continue;
        };
        let employee = op.get(Entity::Employee, &[emp])?;
        let owner = summary(employee.as_ref(), &["name", "email", "emp_number"]);
        if !owner.is_null() && !owners.contains(&owner) {
            owners.push(owner);
        }
    }
    out.insert("project_owners".into(), Value::Array(owners));
    Ok(())
}

fn employee(out: &mut Data) {
    for (from, to) in EMPLOYEE_RENAMES {
        rename(out, from, to);
    }
    let employee_type = text(out, "employee_type").to_string();
    // A site lead also works on site (the seed's employee.updated example says so).
    for (flag, types) in [
        ("is_project_owner", &["project_owner"][..]),
        ("is_site_lead", &["site_lead"][..]),
        ("is_site_worker", &["site_worker", "site_lead"][..]),
    ] {
        out.insert(flag.into(), json!(types.contains(&employee_type.as_str())));
    }
}

/// The vendor's address as one object, or null when it has none.
fn vendor_address(data: &Value) -> Value {
    if !VENDOR_ADDRESS
        .iter()
        .any(|(stored, _)| data.get(*stored).is_some())
    {
        return Value::Null;
    }
    let address: Data = VENDOR_ADDRESS
        .iter()
        .map(|(stored, shown)| {
            let value = data.get(*stored).cloned().unwrap_or(Value::Null);
            (shown.to_string(), value)
        })
        .collect();
    Value::Object(address)
}

fn vendor(out: &mut Data) {
    let address = vendor_address(&Value::Object(out.clone()));
    for (stored, _) in VENDOR_ADDRESS {
        out.remove(*stored);
    }
    out.insert("address".into(), address);
}

fn timesheet(op: &Op, out: &mut Data) -> Result<(), DomainError> {
    let id = out["id"].clone();
    out.insert("timesheet_id".into(), id);
    let name = employee_name(op, out)?;
    out.insert("employee_name".into(), name);
    let mut entries = Vec::new();
    for entry in out
        .get("entries")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        entries.push(timesheet_entry(op, entry)?);
    }
    out.insert("entry_count".into(), json!(entries.len()));
    out.insert("entries".into(), Value::Array(entries));
    Ok(())
}

/// An entry with its work order's id and name (its phase name).
fn timesheet_entry(op: &Op, entry: &Value) -> Result<Value, DomainError> {
    let mut out = entry.as_object().cloned().unwrap_or_default();
    let work_order = match opt_text(&out, "work_order_number") {
        Some(number) => op.get(Entity::WorkOrder, &[number])?,
        None => None,
    };
    out.insert("work_order_id".into(), id_of(work_order.as_ref()));
    let name = work_order
        .and_then(|wo| wo.data.get("phase_name").cloned())
        .unwrap_or(Value::Null);
    out.insert("work_order_name".into(), name);
    Ok(Value::Object(out))
}

/// The seed's `update_type` of a timesheet change, with the entry it concerns: one entry
/// added, updated or deleted, the notes alone, or (beyond the seed's list) several entries
/// replaced, the status, or other details.
fn timesheet_update(
    old: &Record,
    new: &Record,
    changes: &Changes,
) -> (&'static str, Option<Value>) {
    if changes.contains_key("entries") {
        let list = |r: &Record| r.data["entries"].as_array().cloned().unwrap_or_default();
        let (before, after) = (list(old), list(new));
        let differing = |a: &[Value], b: &[Value]| a.iter().zip(b).position(|(x, y)| x != y);
        if after.len() == before.len() + 1 && after.starts_with(&before) {
            return ("entry_added", after.last().cloned());
        }
        if before.len() == after.len() + 1 {
            let i = differing(&before, &after).unwrap_or(after.len());
            if before[i + 1..] == after[i..] {
                return ("entry_deleted", Some(before[i].clone()));
            }
        }
        if before.len() == after.len()
            && let Some(i) = differing(&before, &after)
            && before[i + 1..] == after[i + 1..]
        {
            return ("entry_updated", Some(after[i].clone()));
        }
        return ("entries_replaced", None);
    }
    if changes.len() == 1 && changes.contains_key("notes") {
        ("notes_updated", None)
    } else if changes.contains_key("status") {
        ("status_changed", None)
    } else {
        ("details_updated", None)
    }
}

/// `changes` in the payload's field names: an employee's `role`/`department`, a vendor's
/// `address` as a whole object.
fn delivered_changes(entity: Entity, old: &Record, new: &Record, changes: &Changes) -> Changes {
    let mut out = changes.clone();
    match entity {
        Entity::Employee => {
            for (from, to) in EMPLOYEE_RENAMES {
                rename(&mut out, from, to);
            }
        }
        Entity::Vendor => {
            // Every flat part goes (no short-circuit): the address changes as one object.
            let parts = VENDOR_ADDRESS
                .iter()
                .filter(|(f, _)| out.remove(*f).is_some());
            if parts.count() > 0 {
                out.insert(
                    "address".into(),
                    json!({"old": vendor_address(&old.data), "new": vendor_address(&new.data)}),
                );
            }
        }
        _ => {}
    }
    out
}

fn report(op: &Op, entity: Entity, out: &mut Data) -> Result<(), DomainError> {
    let id = out["id"].clone();
    out.insert("report_id".into(), id);
    let work_order = op.get(Entity::WorkOrder, &[text(out, "work_order_number")])?;
    out.insert("work_order_id".into(), id_of(work_order.as_ref()));
    let phase = work_order
        .as_ref()
        .and_then(|wo| wo.data.get("phase_name").cloned())
        .unwrap_or(Value::Null);
    out.insert("phase_name".into(), phase);
    let project = project_ref(op, text(out, "project_code"))?;
    out.insert("project_name".into(), project["project_name"].clone());
    let submitter = report_person(op, opt_text(out, "submitted_by"), false)?;
    out.insert("submitted_by".into(), submitter);
    // The seed's defaults, where the sender left the flags out.
    out.entry("is_auto_approved").or_insert(json!(false));
    if entity == Entity::DailyReport {
        out.insert("report_type".into(), json!("daily"));
        let weather = out
            .get("weather_conditions")
            .cloned()
            .unwrap_or(Value::Null);
        out.insert("weather".into(), weather);
        return Ok(());
    }
    out.insert("report_type".into(), json!("completion"));
    out.entry("requires_approval").or_insert(json!(true));
    if !out.contains_key("notes") {
        let summary = out
            .get("completion_summary")
            .cloned()
            .unwrap_or(Value::Null);
        out.insert("notes".into(), summary);
    }
    for (list, label) in [
        ("scope_checklist", "title"),
        ("completion_checklist", "item"),
    ] {
        let shaped = checklist(out.get(list), label);
        out.insert(list.into(), shaped);
    }
    let approver = report_person(op, opt_text(out, "approved_by"), true)?;
    out.insert("approved_by".into(), approver);
    Ok(())
}

/// A report checklist as the seed delivers it: `{items: [{<label>, completed, notes}],
/// completion_percentage}`.
fn checklist(items: Option<&Value>, label: &str) -> Value {
    let Some(items) = items.and_then(Value::as_array) else {
        return Value::Null;
    };
    let shaped: Vec<Value> = items
        .iter()
        .filter_map(Value::as_object)
        .map(|item| {
            let name = item.get("item_name").or_else(|| item.get("text"));
            let done = item
                .get("completed")
                .and_then(Value::as_bool)
                .unwrap_or(matches!(
                    item.get("status").and_then(Value::as_str),
                    Some("complete" | "completed" | "done")
                ));
            json!({label: name, "completed": done, "notes": item.get("notes")})
        })
        .collect();
    let done = shaped.iter().filter(|i| i["completed"] == true).count();
    let percentage = match shaped.len() {
        0 => 0,
        n => (done * 100 + n / 2) / n,
    };
    json!({"items": shaped, "completion_percentage": percentage})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(data: Value) -> Record {
        Record {
            record_id: "rec_1".into(),
            natural_key: String::new(),
            data,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn entries(list: &[&str]) -> Record {
        record(json!({"entries": list.iter().map(|n| json!({"notes": n})).collect::<Vec<_>>()}))
    }

    fn update_type(before: &[&str], after: &[&str]) -> (&'static str, Option<Value>) {
        let changes: Changes = [("entries".to_string(), json!({}))].into_iter().collect();
        timesheet_update(&entries(before), &entries(after), &changes)
    }

    #[test]
    fn timesheet_update_types_name_the_entry() {
        assert_eq!(
            update_type(&["a"], &["a", "b"]),
            ("entry_added", Some(json!({"notes": "b"})))
        );
        assert_eq!(
            update_type(&["a", "b", "c"], &["a", "c"]),
            ("entry_deleted", Some(json!({"notes": "b"})))
        );
        assert_eq!(
            update_type(&["a", "b"], &["a", "x"]),
            ("entry_updated", Some(json!({"notes": "x"})))
        );
        assert_eq!(update_type(&["a", "b"], &["x", "y"]).0, "entries_replaced");
        assert_eq!(update_type(&[], &["x", "y"]).0, "entries_replaced");
        let notes: Changes = [("notes".to_string(), json!({}))].into_iter().collect();
        assert_eq!(
            timesheet_update(&entries(&[]), &entries(&[]), &notes).0,
            "notes_updated"
        );
    }

    #[test]
    fn checklists_count_what_is_done() {
        let items = json!([
            {"item_name": "Install", "status": "completed"},
            {"text": "Test", "completed": false, "notes": "tomorrow"},
            {"item_name": "Clean", "status": "done"}
        ]);
        assert_eq!(
            checklist(Some(&items), "title"),
            json!({"items": [
                {"title": "Install", "completed": true, "notes": null},
                {"title": "Test", "completed": false, "notes": "tomorrow"},
                {"title": "Clean", "completed": true, "notes": null}
            ], "completion_percentage": 67})
        );
        assert_eq!(checklist(None, "item"), Value::Null);
    }

    #[test]
    fn vendor_address_is_one_object_and_changes_as_a_whole() {
        let mut out: Data = serde_json::from_value(
            json!({"vendor_name": "V", "address": "1 Main St", "city": "Chicago", "state": "IL"}),
        )
        .unwrap();
        vendor(&mut out);
        assert_eq!(
            Value::Object(out),
            json!({"vendor_name": "V", "address": {"address_line_1": "1 Main St",
                "address_line_2": null, "city": "Chicago", "province": "IL",
                "postal_code": null, "country": null}})
        );
        let old = record(json!({"city": "Chicago", "state": "IL"}));
        let new = record(json!({"city": "Oakland", "state": "CA"}));
        let changes: Changes = [
            (
                "city".to_string(),
                json!({"old": "Chicago", "new": "Oakland"}),
            ),
            ("state".to_string(), json!({"old": "IL", "new": "CA"})),
        ]
        .into_iter()
        .collect();
        let shown = delivered_changes(Entity::Vendor, &old, &new, &changes);
        assert_eq!(shown["address"]["old"]["city"], "Chicago");
        assert_eq!(shown["address"]["new"]["city"], "Oakland");
        assert!(!shown.contains_key("city") && !shown.contains_key("state"));
    }

    #[test]
    fn employees_carry_role_department_and_flags() {
        let mut out: Data = serde_json::from_value(
            json!({"name": "A", "role_name": "Lead", "department_name": "Field", "employee_type": "site_lead"}),
        )
        .unwrap();
        employee(&mut out);
        assert_eq!(
            Value::Object(out),
            json!({"name": "A", "role": "Lead", "department": "Field", "employee_type": "site_lead",
                "is_project_owner": false, "is_site_lead": true, "is_site_worker": true})
        );
    }
}
