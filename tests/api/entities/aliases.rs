//! Alias forms the fixtures do not show: names as aliases on every operation, conflicts, vendor
//! addresses, provinces, trades and enum spellings.

use super::*;

#[tokio::test]
async fn customer_and_location_names_are_aliases_on_every_operation() {
    let app = spawn_app().await;
    let key = unlimited_key(&app, "alias-names", "crm").await;
    // customer: create with `name`, update and delete with `customer_name`/`name` swapped
    // relative to the seed's examples.
    let customer = expect(
        &app,
        &key,
        "customer by name",
        envelope(
            "customer.created",
            json!({"name": "Acme Corp", "status": "Active"}),
        ),
        200,
    )
    .await;
    let customer_id = record_id(&customer);
    expect(
        &app,
        &key,
        "customer update by customer_name",
        envelope(
            "customer.updated",
            json!({"customer_name": "Acme Corp", "notes": "via alias"}),
        ),
        200,
    )
    .await;
    let data = stored_data(&app, &customer_id).await;
    assert_eq!(data["notes"], "via alias");
    assert_eq!(data["status"], "active");
    assert!(data.get("customer_name").is_none(), "alias stored: {data}");

    // location: `location_name` on create is in the fixtures; here update and delete by `name`
    // and a create with both forms agreeing.
    let location = expect(
        &app,
        &key,
        "location with both name forms",
        envelope(
            "location.created",
            json!({"customer_name": "Acme Corp", "location_name": "Plant 2", "name": "Plant 2", "province": "Ontario"}),
        ),
        200,
    )
    .await;
    let location_id = record_id(&location);
    let data = stored_data(&app, &location_id).await;
    assert_eq!(
        (data["name"].clone(), data["province"].clone()),
        (json!("Plant 2"), json!("ON"))
    );
    assert!(data.get("location_name").is_none(), "alias stored: {data}");
    expect(
        &app,
        &key,
        "location update by name",
        envelope("location.updated", json!({"customer_name": "Acme Corp", "name": "Plant 2", "province": "british columbia"})),
        200,
    )
    .await;
    assert_eq!(stored_data(&app, &location_id).await["province"], "BC");
    expect(
        &app,
        &key,
        "location delete by name",
        envelope(
            "location.deleted",
            json!({"customer_name": "Acme Corp", "name": "Plant 2"}),
        ),
        200,
    )
    .await;
    assert!(stored(&app, &location_id).await.is_none());

    expect(
        &app,
        &key,
        "customer delete by name",
        envelope("customer.deleted", json!({"name": "acme corp"})),
        200,
    )
    .await;
    assert!(stored(&app, &customer_id).await.is_none());
}

#[tokio::test]
async fn alias_conflicts_are_rejected_with_the_fields_path_in_the_request() {
    let app = spawn_app().await;
    let key = unlimited_key(&app, "alias-conflicts", "crm").await;
    // Alias and canonical name disagreeing: 400 alias_conflict naming the field, nothing stored.
    let conflict = expect(
        &app,
        &key,
        "customer name conflict",
        envelope(
            "customer.created",
            json!({"name": "Beta LLC", "customer_name": "Gamma LLC"}),
        ),
        400,
    )
    .await;
    assert_eq!(conflict.code(), "alias_conflict");
    let paths: Vec<&str> = conflict.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["path"].as_str())
        .collect();
    assert!(
        stored_by_field(&app, &key.company_id, "customer", "name", "Beta LLC")
            .await
            .is_empty()
    );
    assert!(
        stored_by_field(&app, &key.company_id, "customer", "name", "Gamma LLC")
            .await
            .is_empty()
    );
    // The path points into the request like validation errors' paths do (and like the
    // conflicts inside scope_of_work, which are reported at /data/scope_of_work/...).
    assert_eq!(
        paths,
        vec!["/data/name"],
        "the conflict's JSON path: {}",
        conflict.body
    );
}

#[tokio::test]
async fn vendor_aliases_provinces_and_trades() {
    let app = spawn_app().await;
    let key = unlimited_key(&app, "alias-vendors", "procurement").await;
    // `name` for vendor_name, address_line_2, a Canadian province by full name in any case,
    // and a comma-separated trade list.
    let created = expect(
        &app,
        &key,
        "vendor with aliases",
        envelope(
            "vendor.created",
            json!({"name": "Northern Mechanical", "type": "Subcontractor", "address": "200 Main St", "address_line_2": "Unit 4",
                   "city": "Vancouver", "state": "british columbia", "zip_code": "V6B 1A1", "trade_specialty": "HVAC,  Plumbing"}),
        ),
        200,
    )
    .await;
    let vendor = record_id(&created);
    let data = stored_data(&app, &vendor).await;
    assert_eq!(data["vendor_name"], "Northern Mechanical");
    assert_eq!(data["type"], "subcontractor");
    assert_eq!(data["address_line2"], "Unit 4");
    assert_eq!(data["state"], "BC");
    assert_eq!(data["trade_specialty"], json!(["HVAC", "Plumbing"]));
    for alias in ["name", "address_line_2"] {
        assert!(data.get(alias).is_none(), "alias {alias} stored: {data}");
    }

    // Update by alias, with a province spelled in full and a trade string.
    expect(
        &app,
        &key,
        "vendor update with aliases",
        envelope(
            "vendor.updated",
            json!({"name": "northern mechanical", "state": "QUEBEC", "trade_specialty": "Electrical", "type": "CONSULTANT"}),
        ),
        200,
    )
    .await;
    let data = stored_data(&app, &vendor).await;
    assert_eq!(
        (
            data["state"].clone(),
            data["trade_specialty"].clone(),
            data["type"].clone()
        ),
        (json!("QC"), json!(["Electrical"]), json!("consultant"))
    );

    // A combined address with a Canadian province and postal code.
    let combined = expect(
        &app,
        &key,
        "combined Canadian address",
        envelope(
            "vendor.created",
            json!({"vendor_name": "Prairie Supply", "type": "supplier", "address": "77 Portage Ave, Winnipeg, Manitoba R3C 4T3, Canada"}),
        ),
        200,
    )
    .await;
    let data = stored_data(&app, &record_id(&combined)).await;
    assert_eq!(
        (
            data["address"].clone(),
            data["city"].clone(),
            data["state"].clone(),
            data["zip_code"].clone(),
            data["country"].clone()
        ),
        (
            json!("77 Portage Ave"),
            json!("Winnipeg"),
            json!("MB"),
            json!("R3C 4T3"),
            json!("Canada")
        )
    );

    // Conflicting alias and canonical vendor name.
    let conflict = expect(
        &app,
        &key,
        "vendor name conflict",
        envelope(
            "vendor.created",
            json!({"vendor_name": "One", "name": "Two"}),
        ),
        400,
    )
    .await;
    assert_eq!(conflict.code(), "alias_conflict");

    expect(
        &app,
        &key,
        "vendor delete by alias",
        envelope("vendor.deleted", json!({"name": "Northern Mechanical"})),
        200,
    )
    .await;
    assert!(stored(&app, &vendor).await.is_none());
}

#[tokio::test]
async fn nested_provinces_are_normalized_too() {
    // The schemas document billing_address.province and a project's location_province as
    // "a full US state or Canadian province name is normalized to its 2-letter code".
    let app = spawn_app().await;
    let key = unlimited_key(&app, "alias-provinces", "crm").await;
    let customer = expect(
        &app,
        &key,
        "customer with a billing province",
        envelope(
            "customer.created",
            json!({"name": "Maple Foods", "billing_address": {"city": "Toronto", "province": "Ontario", "country": "Canada"}}),
        ),
        200,
    )
    .await;
    let project = expect(
        &app,
        &key,
        "project with a location province",
        envelope(
            "project.created",
            json!({"project_code": "PRJ-QC", "project_name": "Quebec Depot", "customer_name": "Maple Foods", "location_name": "Laval", "location_province": "Quebec"}),
        ),
        200,
    )
    .await;
    assert!(!record_id(&project).is_empty());
    let locations = stored_by_field(&app, &key.company_id, "location", "name", "Laval").await;
    assert_eq!(locations.len(), 1);
    assert_eq!(locations[0].1["province"], "QC", "{}", locations[0].1);
    assert_eq!(
        stored_data(&app, &record_id(&customer)).await["billing_address"]["province"],
        "ON",
        "billing_address.province is not normalized"
    );
}

#[tokio::test]
async fn employee_department_role_and_enum_spellings() {
    let app = spawn_app().await;
    let key = unlimited_key(&app, "alias-employees", "hr").await;
    let employee = expect(
        &app,
        &key,
        "employee with department/role aliases and mixed-case type",
        envelope(
            "employee.created",
            json!({"emp_number": "EMP-E1", "name": "Eve Enum", "email": "eve@example.com", "employee_type": "Site_Lead",
                   "department": "Field Operations", "role": "Foreman"}),
        ),
        200,
    )
    .await;
    let id = record_id(&employee);
    let data = stored_data(&app, &id).await;
    assert_eq!(data["employee_type"], "site_lead");
    assert_eq!(data["department_name"], "Field Operations");
    assert_eq!(data["role_name"], "Foreman");
    assert!(
        data.get("department").is_none() && data.get("role").is_none(),
        "{data}"
    );
    // Departments and roles are created on first use.
    assert_eq!(
        stored_by_field(
            &app,
            &key.company_id,
            "department",
            "name",
            "Field Operations"
        )
        .await
        .len(),
        1
    );
    assert_eq!(
        stored_by_field(&app, &key.company_id, "role", "name", "Foreman")
            .await
            .len(),
        1
    );

    expect(
        &app,
        &key,
        "employee type in upper case with a space",
        envelope(
            "employee.updated",
            json!({"emp_number": "EMP-E1", "employee_type": "PROJECT OWNER"}),
        ),
        200,
    )
    .await;
    assert_eq!(
        stored_data(&app, &id).await["employee_type"],
        "project_owner"
    );

    // Time off and timesheet enums in mixed case; work type code in lower case.
    let time_off = expect(
        &app,
        &key,
        "time off with mixed-case enums",
        envelope(
            "time_off.created",
            json!({"emp_number": "EMP-E1", "start_date": "2025-07-01", "end_date": "2025-07-02", "time_off_type": "Sick Leave", "status": "Pending"}),
        ),
        200,
    )
    .await;
    let data = stored_data(&app, &record_id(&time_off)).await;
    assert_eq!(
        (data["time_off_type"].clone(), data["status"].clone()),
        (json!("sick_leave"), json!("pending"))
    );
    let sheet = expect(
        &app,
        &key,
        "timesheet with mixed-case status and code",
        envelope(
            "timesheet.created",
            json!({"emp_number": "EMP-E1", "timesheet_date": "2025-07-03", "status": "Draft", "entries": [
                {"entry_date": "2025-07-03", "hours": 8, "work_type_code": "vac"}
            ]}),
        ),
        200,
    )
    .await;
    let data = stored_data(&app, &record_id(&sheet)).await;
    assert_eq!(data["status"], "draft");
    assert_eq!(data["entries"][0]["work_type_code"], "VAC");
    expect(
        &app,
        &key,
        "timesheet submitted in upper case",
        envelope(
            "timesheet.updated",
            json!({"emp_number": "EMP-E1", "timesheet_date": "2025-07-03", "status": "SUBMITTED"}),
        ),
        200,
    )
    .await;
    assert_eq!(
        stored_data(&app, &record_id(&sheet)).await["status"],
        "submitted"
    );
}

#[tokio::test]
async fn work_order_enum_spellings_and_aliases_on_update() {
    let app = spawn_app().await;
    let key = unlimited_key(&app, "alias-work-orders", "erp").await;
    expect(
        &app,
        &key,
        "project",
        envelope(
            "project.created",
            json!({"project_code": "PRJ-E", "project_name": "Enum Works", "customer_name": "Enum Co", "location_name": "Yard"}),
        ),
        200,
    )
    .await;
    let created = expect(
        &app,
        &key,
        "work order with mixed-case enums",
        envelope(
            "work_order.created",
            json!({"work_order_number": "WO-E1", "project_code": "PRJ-E", "phase_name": "Enum Phase", "status": "In Progress", "priority": "URGENT", "performed_by": "Vendor"}),
        ),
        200,
    )
    .await;
    let id = record_id(&created);
    let data = stored_data(&app, &id).await;
    assert_eq!(
        (
            data["status"].clone(),
            data["priority"].clone(),
            data["performed_by"].clone()
        ),
        (json!("in_progress"), json!("urgent"), json!("vendor"))
    );

    // Aliases on update, and the checklist input form with every status spelling in mixed case.
    expect(
        &app,
        &key,
        "work order update with aliases",
        envelope(
            "work_order.updated",
            json!({"work_order_number": "WO-E1", "status": "on-hold", "required_headcount": 4, "estimated_hours": 12,
                   "requested_start_date": "2025-08-01", "requested_end_time": "16:30",
                   "scope_of_work": {"checklists": [{"checklist_name": "Close-out", "items": [
                       {"item_name": "Sweep", "status": "Done"},
                       {"item_name": "Photos", "status": "COMPLETE"},
                       {"item_name": "Sign-off", "status": "Completed"},
                       {"item_name": "Invoice", "status": "Pending"}
                   ]}]}}),
        ),
        200,
    )
    .await;
    let data = stored_data(&app, &id).await;
    assert_eq!(data["status"], "on_hold");
    assert_eq!(data["people_required"], 4);
    assert_eq!(data["days_hours_required"], 12);
    assert_eq!(data["expected_start_date"], "2025-08-01");
    assert_eq!(data["expected_end_time"], "16:30");
    for alias in [
        "required_headcount",
        "estimated_hours",
        "requested_start_date",
        "requested_end_time",
    ] {
        assert!(data.get(alias).is_none(), "alias {alias} stored: {data}");
    }
    assert_eq!(
        data["scope_of_work"],
        json!({"checklists": [{"title": "Close-out", "items": [
            {"text": "Sweep", "completed": true},
            {"text": "Photos", "completed": true},
            {"text": "Sign-off", "completed": true},
            {"text": "Invoice", "completed": false}
        ]}]})
    );

    // An item status that disagrees with `completed`: 400 alias_conflict at the item.
    let conflict = expect(
        &app,
        &key,
        "item status conflicting with completed",
        envelope(
            "work_order.updated",
            json!({"work_order_number": "WO-E1", "scope_of_work": {"checklists": [{"title": "X", "items": [
                {"text": "Sweep", "status": "done", "completed": false}
            ]}]}}),
        ),
        400,
    )
    .await;
    assert_eq!(conflict.code(), "alias_conflict");
    assert!(
        conflict.body["error"]["details"][0]["path"]
            .as_str()
            .unwrap_or("")
            .starts_with("/data/scope_of_work/checklists/0/items/0"),
        "{}",
        conflict.body
    );

    // "Canceled" (US spelling) is cancelled.
    expect(
        &app,
        &key,
        "cancel with the US spelling",
        envelope(
            "work_order.updated",
            json!({"work_order_number": "WO-E1", "status": "Canceled"}),
        ),
        200,
    )
    .await;
    assert_eq!(stored_data(&app, &id).await["status"], "cancelled");

    // Search field and project field enums in mixed case.
    let search = expect(
        &app,
        &key,
        "search with a mixed-case search_field",
        envelope("work_order.search", json!({"search_term": "wo-e1", "search_field": "Work_Order_Number", "exact_match": true})),
        200,
    )
    .await;
    assert_eq!(search.body["count"], 1, "{}", search.body);
    let search = expect(
        &app,
        &key,
        "project search by code in mixed case",
        envelope(
            "project.search",
            json!({"search_term": "PRJ-E", "search_field": "Project Code", "exact_match": true}),
        ),
        200,
    )
    .await;
    assert_eq!(search.body["count"], 1, "{}", search.body);
}

#[tokio::test]
async fn report_aliases_and_checklist_status_spellings() {
    let app = spawn_app().await;
    let key = unlimited_key(&app, "alias-reports", "field").await;
    for request in [
        envelope(
            "employee.created",
            json!({"emp_number": "EMP-R1", "name": "Rae Report", "email": "rae@example.com", "employee_type": "site_lead"}),
        ),
        envelope(
            "project.created",
            json!({"project_code": "PRJ-R", "project_name": "Reports", "customer_name": "Report Co", "location_name": "Site R"}),
        ),
        envelope(
            "work_order.created",
            json!({"work_order_number": "WO-R1", "project_code": "PRJ-R", "phase_name": "Report Phase", "status": "in_progress"}),
        ),
    ] {
        let what = format!("setup {}", request["event_type"]);
        expect(&app, &key, &what, request, 200).await;
    }
    // `weather` is an alias of weather_conditions on daily reports.
    let daily = expect(
        &app,
        &key,
        "daily report with weather alias",
        envelope(
            "report.daily_submitted",
            json!({"work_order_number": "WO-R1", "report_date": "2025-09-01", "submitted_by": "EMP-R1", "hours_worked": 8, "weather": "Sunny"}),
        ),
        200,
    )
    .await;
    let data = stored_data(&app, &record_id(&daily)).await;
    assert_eq!(data["weather_conditions"], "Sunny", "{data}");
    assert!(data.get("weather").is_none(), "{data}");

    // Completion checklists accept every status spelling, in any case.
    let completion = expect(
        &app,
        &key,
        "completion report with status spellings",
        envelope(
            "report.completion_submitted",
            json!({"work_order_number": "WO-R1", "report_date": "2025-09-02", "submitted_by": "EMP-R1", "requires_approval": true,
                   "scope_checklist": [
                       {"item_name": "Sweep", "status": "Done"},
                       {"item_name": "Photos", "status": "Complete"},
                       {"item_name": "Sign-off", "status": "COMPLETED"},
                       {"item_name": "Invoice", "status": "pending"}
                   ]}),
        ),
        200,
    )
    .await;
    let data = stored_data(&app, &record_id(&completion)).await;
    let statuses: Vec<Value> = data["scope_checklist"]
        .as_array()
        .unwrap_or_else(|| panic!("no scope_checklist stored: {data}"))
        .iter()
        .map(|i| {
            i.get("status")
                .or_else(|| i.get("completed"))
                .cloned()
                .unwrap_or(Value::Null)
        })
        .collect();
    // Stored either as the lower-case status or as the canonical `completed` flag.
    let done: Vec<bool> = statuses
        .iter()
        .map(|s| match s {
            Value::Bool(b) => *b,
            Value::String(s) => ["done", "complete", "completed"].contains(&s.as_str()),
            other => panic!("unexpected item status {other}"),
        })
        .collect();
    assert_eq!(done, vec![true, true, true, false], "{data}");
    for s in &statuses {
        if let Value::String(s) = s {
            assert_eq!(s, &s.to_lowercase(), "status stored in lower case: {data}");
        }
    }
}
