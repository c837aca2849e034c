//! The event catalog from outside: `GET /api/v1/event-types`, and what outbound payloads carry
//! beside the record itself (the inbound event that caused them, related records with their
//! ids, the seed's field names). Every delivery is also checked against its schema by the
//! receiver.

use hookgate::catalog::{InboundEvent, OutboundEvent};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::receiver::Receiver;

#[tokio::test]
async fn event_types_lists_every_inbound_and_outbound_type_with_its_schema() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "erp").await;

    let sent = app
        .rest(&key.api_token, "GET", "/api/v1/event-types", None)
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(sent.body["success"], true);
    let catalog = &sent.body["data"];
    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_type"].as_str().unwrap().to_string())
            .collect()
    };
    let inbound: Vec<&str> = InboundEvent::ALL.iter().map(|e| e.name()).collect();
    let outbound: Vec<&str> = OutboundEvent::ALL.iter().map(|e| e.name()).collect();
    assert_eq!(names(&catalog["inbound"]), inbound);
    assert_eq!(names(&catalog["outbound"]), outbound);
    for event in catalog["inbound"]
        .as_array()
        .unwrap()
        .iter()
        .chain(catalog["outbound"].as_array().unwrap())
    {
        assert!(
            !event["description"].as_str().unwrap_or("").is_empty(),
            "{event}"
        );
        assert_eq!(
            event["schema"]["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{}",
            event["event_type"]
        );
    }
    let created = &catalog["outbound"][0];
    assert_eq!(created["entity"], "work_order");
    assert_eq!(
        created["schema"]["properties"]["event_type"]["const"],
        "work_order.created"
    );
    assert_eq!(
        catalog["thin_payload_schema"]["required"],
        json!(["entity", "id"])
    );
    assert!(
        catalog["not_emitted"]
            .as_array()
            .unwrap()
            .contains(&json!("po.*"))
    );

    // It is part of the authenticated management API.
    let anonymous = app
        .send(app.client.get(format!("{}/api/v1/event-types", app.base)))
        .await;
    assert_eq!(anonymous.status, 401);
    let wrong = app
        .rest(
            &key.api_token,
            "POST",
            "/api/v1/event-types",
            Some(json!({})),
        )
        .await;
    assert_eq!(wrong.status, 405);
}

/// The deliveries received so far, by event type, in order.
fn by_type(receiver: &Receiver, event_type: &str) -> Vec<Value> {
    receiver
        .events()
        .iter()
        .map(|r| r.json())
        .filter(|body| body["event_type"] == event_type)
        .map(|body| body["data"].clone())
        .collect()
}

/// Sends `envelope` and returns the inbound event id the gateway answered.
async fn send(app: &TestApp, key: &hookgate::keys::CreatedKey, event: &str, data: Value) -> String {
    let sent = app.post(key, &envelope(event, data)).await;
    assert_eq!(sent.status, 200, "{event}: {}", sent.body);
    sent.body["event_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn outbound_payloads_name_their_cause_and_related_records() {
    let app = spawn_app().await;
    let erp = app.create_key("acme", "erp").await;
    let crm = app.create_key("acme", "crm").await;
    let field_app = app.create_key("acme", "field").await;
    let (full, thin) = (Receiver::start().await, Receiver::start().await);
    app.subscribe(
        &crm,
        json!({"name": "all", "url": full.url, "events": ["*"]}),
    )
    .await;
    app.subscribe(
        &field_app,
        json!({"name": "reports", "url": thin.url, "events": ["report.*"], "payload": "thin"}),
    )
    .await;

    let employee_event = send(
        &app,
        &erp,
        "employee.created",
        json!({"emp_number": "EMP-1", "name": "Ann Lead", "email": "ann@example.com",
               "employee_type": "site_lead", "role_name": "Foreman", "department_name": "Field"}),
    )
    .await;
    send(
        &app,
        &erp,
        "project.created",
        json!({"project_code": "P-1", "project_name": "Tower", "customer_name": "Acme Corp",
               "customer_email": "ops@acme.example", "location_name": "HQ",
               "location_address_line_1": "1 Main St", "location_address_line_2": "Floor 2",
               "location_city": "Springfield", "internal_manager_emp_number": "EMP-1",
               "contacts": [{"first_name": "Lisa", "last_name": "Ray", "title": "Project Manager"}]}),
    )
    .await;
    send(
        &app,
        &erp,
        "work_order.created",
        json!({"project_code": "P-1", "work_order_number": "WO-1", "phase_name": "Framing",
               "status": "scheduled", "site_lead_emp_number": "EMP-1", "estimated_hours": 45}),
    )
    .await;
    send(
        &app,
        &erp,
        "timesheet.created",
        json!({"emp_number": "EMP-1", "timesheet_date": "2025-03-03",
               "entries": [{"entry_date": "2025-03-03", "work_order_number": "WO-1", "hours": 4}]}),
    )
    .await;
    let entry_added = send(
        &app,
        &erp,
        "timesheet.updated",
        json!({"emp_number": "EMP-1", "timesheet_date": "2025-03-03",
               "entries": [{"entry_date": "2025-03-03", "work_order_number": "WO-1", "hours": 4},
                           {"entry_date": "2025-03-03", "work_order_number": "WO-1", "hours": 2.5,
                            "notes": "Overtime"}]}),
    )
    .await;
    send(
        &app,
        &erp,
        "report.daily_submitted",
        json!({"work_order_number": "WO-1", "report_date": "2025-03-03", "submitted_by": "EMP-1",
               "weather_conditions": "Sunny"}),
    )
    .await;
    send(
        &app,
        &erp,
        "vendor.created",
        json!({"vendor_name": "Cool Air", "address": "9 Side St", "city": "Oakland", "state": "California"}),
    )
    .await;
    send(
        &app,
        &erp,
        "work_order.deleted",
        json!({"work_order_number": "WO-1"}),
    )
    .await;
    // employee, customer, location, contact, project, work order (+ scheduled, assigned),
    // timesheet (+ updated), daily report, vendor, work order deleted.
    full.wait_for(13).await;

    let employee = &by_type(&full, "employee.created")[0];
    assert_eq!(employee["source_event_id"], employee_event.as_str());
    assert_eq!(employee["role"], "Foreman");
    assert_eq!(employee["department"], "Field");
    assert!(employee.get("role_name").is_none() && employee.get("department_name").is_none());
    assert_eq!(
        (
            employee["is_site_lead"].clone(),
            employee["is_site_worker"].clone(),
            employee["is_project_owner"].clone()
        ),
        (json!(true), json!(true), json!(false))
    );
    assert_eq!(employee["created_by"], erp.key_id.as_str());

    let customer = &by_type(&full, "customer.created")[0];
    let location = &by_type(&full, "location.created")[0];
    let contact = &by_type(&full, "contact.created")[0];
    assert_eq!(location["customer_id"], customer["id"]);
    assert_eq!(
        location["customer"],
        json!({"id": customer["id"], "name": "Acme Corp"})
    );
    assert_eq!(contact["customer_id"], customer["id"]);
    assert_eq!(contact["role"], "Project Manager");
    let project = &by_type(&full, "project.created")[0];
    assert_eq!(project["customer"]["id"], customer["id"]);
    assert_eq!(project["customer"]["email"], "ops@acme.example");
    assert_eq!(project["location"]["id"], location["id"]);
    assert_eq!(project["contacts"][0]["id"], contact["id"]);
    assert_eq!(
        project["project_owners"],
        json!([{"id": employee["id"], "name": "Ann Lead", "email": "ann@example.com", "emp_number": "EMP-1"}])
    );

    let work_order = &by_type(&full, "work_order.created")[0];
    assert_eq!(work_order["site_lead"]["id"], employee["id"]);
    assert_eq!(work_order["project"]["id"], project["id"]);
    assert_eq!(work_order["project"]["customer_name"], "Acme Corp");
    assert_eq!(work_order["project"]["site_address"], "1 Main St, Floor 2");
    assert_eq!(work_order["estimated_hours"], 45);
    let scheduled = &by_type(&full, "work_order.scheduled")[0];
    assert_eq!(scheduled["scheduled_by"], erp.key_id.as_str());
    assert!(scheduled["scheduled_at"].is_string());
    assert_eq!(scheduled["assigned_employees"][0]["id"], employee["id"]);
    assert_eq!(
        by_type(&full, "employee.assigned")[0]["work_order"]["id"],
        work_order["id"]
    );

    let created = &by_type(&full, "timesheet.created")[0];
    assert_eq!(created["employee_name"], "Ann Lead");
    assert_eq!(created["entry_count"], 1);
    let updated = &by_type(&full, "timesheet.updated")[0];
    assert_eq!(updated["source_event_id"], entry_added.as_str());
    assert_eq!(updated["timesheet_id"], created["id"]);
    assert_eq!(updated["update_type"], "entry_added");
    assert_eq!(updated["entry"]["hours"], 2.5);
    assert_eq!(updated["entry"]["work_order_id"], work_order["id"]);
    assert_eq!(updated["entry"]["work_order_name"], "Framing");
    assert_eq!(updated["entry_count"], 2);
    assert_eq!(updated["total_hours"], 6.5);

    let report = &by_type(&full, "report.daily_submitted")[0];
    assert_eq!(report["report_id"], report["id"]);
    assert_eq!(report["report_type"], "daily");
    assert_eq!(report["work_order_id"], work_order["id"]);
    assert_eq!(report["project_name"], "Tower");
    assert_eq!(report["weather"], "Sunny");
    assert_eq!(
        report["submitted_by"],
        json!({"employee_id": employee["id"], "emp_number": "EMP-1", "name": "Ann Lead"})
    );

    let vendor = &by_type(&full, "vendor.created")[0];
    assert_eq!(
        vendor["address"],
        json!({"address_line_1": "9 Side St", "address_line_2": null, "city": "Oakland",
               "province": "CA", "postal_code": null, "country": null})
    );

    let deleted = &by_type(&full, "work_order.deleted")[0];
    assert_eq!(deleted["project"]["project_code"], "P-1");
    assert_eq!(deleted["deleted_by"], erp.key_id.as_str());

    // A thin subscription still gets only which record changed.
    let thin_bodies: Vec<Value> = thin.wait_for(1).await.iter().map(|r| r.json()).collect();
    assert_eq!(
        thin_bodies,
        vec![json!({"entity": "daily_report", "id": report["id"]})]
    );
}
