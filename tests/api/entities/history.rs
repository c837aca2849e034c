//! Change history: every change is stored with the key that made it and its old and new values,
//! beside its ingest-log row.

use super::*;

/// `(event_type, origin_key_id, company_id, record_id, payload)` of the events an inbound
/// event caused.
async fn events_of(
    app: &TestApp,
    inbound_event_id: &str,
) -> Vec<(String, String, String, String, Value)> {
    app.rows(&format!(
        "SELECT event_type, origin_key_id, company_id, record_id, payload FROM events
         WHERE inbound_event_id = '{inbound_event_id}' ORDER BY seq"
    ))
    .await
    .into_iter()
    .map(|mut r| {
        (
            r.text(0).unwrap(),
            r.text(1).unwrap(),
            r.text(2).unwrap(),
            r.text(3).unwrap(),
            serde_json::from_str(&r.text(4).unwrap()).unwrap(),
        )
    })
    .collect()
}

/// The ingest-log row of an event: (status, key_id, record_id, event_type).
async fn ingest_row(
    app: &TestApp,
    event_id: &str,
) -> Option<(u16, String, Option<String>, String)> {
    app.rows(&format!(
        "SELECT status, key_id, record_id, event_type FROM ingest_log WHERE event_id = '{event_id}'"
    ))
    .await
    .into_iter()
    .next()
    .map(|mut r| {
        (
            r.u16(0).unwrap(),
            r.text(1).unwrap(),
            r.opt_text(2).unwrap(),
            r.text(3).unwrap(),
        )
    })
}

fn event_id(sent: &Sent) -> String {
    sent.body["event_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no event_id in {}", sent.body))
        .to_string()
}

#[tokio::test]
async fn every_change_is_stored_with_its_key_and_old_and_new_values() {
    let app = spawn_app().await;
    let crm = unlimited_key(&app, "audit-co", "crm").await;
    let hr = unlimited_key(&app, "audit-co", "hr").await;
    assert_eq!(crm.company_id, hr.company_id, "two keys of one company");

    let created = expect(
        &app,
        &crm,
        "vendor create",
        envelope(
            "vendor.created",
            json!({"vendor_name": "Audit Vendor", "rating": 3, "city": "Chicago", "notes": "first", "regions": ["Midwest"]}),
        ),
        200,
    )
    .await;
    let vendor = record_id(&created);
    // No settle: the ingest-log row and the events are durable before the 200.
    let create_events = events_of(&app, &event_id(&created)).await;
    assert_eq!(create_events.len(), 1, "{create_events:?}");
    assert_eq!(create_events[0].0, "vendor.created");
    assert_eq!(create_events[0].1, crm.key_id);
    assert_eq!(
        ingest_row(&app, &event_id(&created)).await,
        Some((
            200,
            crm.key_id.clone(),
            Some(vendor.clone()),
            "vendor.created".into()
        ))
    );

    // An update through the other key: rating and regions change, city is sent unchanged.
    let updated = expect(
        &app,
        &hr,
        "vendor update",
        envelope(
            "vendor.updated",
            json!({"vendor_name": "Audit Vendor", "rating": 4.5, "city": "Chicago", "notes": "second", "regions": ["Midwest", "Great Lakes"]}),
        ),
        200,
    )
    .await;
    let update_id = event_id(&updated);
    assert_eq!(record_id(&updated), vendor, "stable record id");
    assert_eq!(
        ingest_row(&app, &update_id).await,
        Some((
            200,
            hr.key_id.clone(),
            Some(vendor.clone()),
            "vendor.updated".into()
        )),
        "the ingest-log row is written with the change"
    );
    let events = events_of(&app, &update_id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let (event_type, origin, company, rid, payload) = &events[0];
    assert_eq!(event_type, "vendor.updated");
    assert_eq!(
        origin, &hr.key_id,
        "the change is tagged with the key that made it"
    );
    assert_eq!(company, &hr.company_id);
    assert_eq!(rid, &vendor);
    assert_eq!(payload["event_type"], "vendor.updated");
    assert_eq!(
        payload["data"]["changes"],
        json!({
            "rating": {"old": 3, "new": 4.5},
            "notes": {"old": "first", "new": "second"},
            "regions": {"old": ["Midwest"], "new": ["Midwest", "Great Lakes"]},
        }),
        "exactly the changed fields, with old and new values"
    );
    let mut row = app
        .row(&format!(
            "SELECT created_by, updated_by FROM records WHERE record_id = '{vendor}'"
        ))
        .await;
    let (created_by, updated_by) = (row.text(0).unwrap(), row.text(1).unwrap());
    assert_eq!(
        (created_by, updated_by),
        (crm.key_id.clone(), hr.key_id.clone())
    );
    let data = stored_data(&app, &vendor).await;
    assert_eq!(
        (data["rating"].clone(), data["notes"].clone()),
        (json!(4.5), json!("second"))
    );

    // A work order status change: every event it causes carries the key and the inbound id.
    expect(
        &app,
        &crm,
        "project",
        envelope(
            "project.created",
            json!({"project_code": "PRJ-AUD", "project_name": "Audit", "customer_name": "Audit Customer", "location_name": "Audit Site"}),
        ),
        200,
    )
    .await;
    let wo = expect(
        &app,
        &crm,
        "work order",
        envelope(
            "work_order.created",
            json!({"project_code": "PRJ-AUD", "phase_name": "Audit Phase", "status": "scheduled", "priority": "low"}),
        ),
        200,
    )
    .await;
    let number = wo.body["work_order_number"].as_str().unwrap().to_string();
    let started = expect(
        &app,
        &hr,
        "work order start",
        envelope(
            "work_order.updated",
            json!({"work_order_number": number, "status": "In Progress", "priority": "low", "phase_name": "Audit Phase"}),
        ),
        200,
    )
    .await;
    let events = events_of(&app, &event_id(&started)).await;
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e.1 == hr.key_id),
        "every event is tagged with the updating key: {events:?}"
    );
    let update = events
        .iter()
        .find(|e| e.0 == "work_order.updated")
        .unwrap_or_else(|| panic!("no work_order.updated in {events:?}"));
    assert_eq!(
        update.4["data"]["changes"],
        json!({"status": {"old": "scheduled", "new": "in_progress"}})
    );
    assert!(
        events.iter().any(|e| e.0 == "work_order.status_changed"),
        "{events:?}"
    );
    assert!(ingest_row(&app, &event_id(&started)).await.is_some());

    // An update that changes nothing is logged and stores no event.
    let same = expect(
        &app,
        &hr,
        "no-op update",
        envelope(
            "vendor.updated",
            json!({"vendor_name": "Audit Vendor", "rating": 4.5, "city": "Chicago"}),
        ),
        200,
    )
    .await;
    assert!(events_of(&app, &event_id(&same)).await.is_empty());
    assert_eq!(
        ingest_row(&app, &event_id(&same)).await.map(|r| r.0),
        Some(200)
    );

    // A rejected update is logged with its event id and leaves no event or change.
    let before = stored_data(&app, &vendor).await;
    expect(
        &app,
        &hr,
        "update of a missing vendor",
        envelope(
            "vendor.updated",
            json!({"vendor_name": "No Such Vendor", "rating": 2}),
        ),
        404,
    )
    .await;
    let project_conflict = expect(
        &app,
        &hr,
        "close with open work orders",
        envelope("project.closed", json!({"project_code": "PRJ-AUD"})),
        409,
    )
    .await;
    assert_eq!(project_conflict.code(), "open_work_orders");
    let failed: Vec<String> = app
        .rows(&format!(
            "SELECT event_id FROM ingest_log WHERE key_id = '{}' AND status IN (404, 409) ORDER BY id",
            hr.key_id
        ))
        .await
        .into_iter()
        .map(|mut r| r.text(0).unwrap())
        .collect();
    assert_eq!(failed.len(), 2, "both rejections are in the ingest log");
    for id in failed {
        assert!(
            events_of(&app, &id).await.is_empty(),
            "a rejected request emitted events"
        );
    }
    assert_eq!(stored_data(&app, &vendor).await, before);
}
