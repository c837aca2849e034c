//! Isolation between companies: the same natural key in two companies is two records, and no
//! company's key reaches (or finds) the other's records.

use super::*;

/// Creates that every company can make with the same natural keys.
fn shared_creates() -> Vec<Value> {
    vec![
        envelope(
            "employee.created",
            json!({"emp_number": "EMP-1", "name": "Ann Lee", "email": "ann@example.com", "employee_type": "site_lead"}),
        ),
        envelope(
            "project.created",
            json!({"project_code": "PRJ-1", "project_name": "Harbor Tower", "customer_name": "Shared Customer", "location_name": "Main Site"}),
        ),
        envelope(
            "work_order.created",
            json!({"work_order_number": "WO-1", "project_code": "PRJ-1", "phase_name": "Foundation"}),
        ),
        envelope(
            "vendor.created",
            json!({"vendor_name": "Shared Vendor", "rating": 3}),
        ),
        envelope("customer.created", json!({"name": "Other Customer"})),
        envelope(
            "location.created",
            json!({"customer_name": "Other Customer", "name": "Depot"}),
        ),
        envelope(
            "contact.created",
            json!({"customer_name": "Other Customer", "first_name": "Jo", "last_name": "Smith"}),
        ),
        envelope(
            "time_off.created",
            json!({"emp_number": "EMP-1", "start_date": "2025-03-01", "end_date": "2025-03-02"}),
        ),
        envelope(
            "timesheet.created",
            json!({"emp_number": "EMP-1", "timesheet_date": "2025-03-03"}),
        ),
    ]
}

#[tokio::test]
async fn the_same_natural_key_in_two_companies_is_two_records() {
    let app = spawn_app().await;
    let a = unlimited_key(&app, "iso-alpha", "erp").await;
    let b = unlimited_key(&app, "iso-beta", "erp").await;
    assert_ne!(a.company_id, b.company_id);

    for create in shared_creates() {
        let what = create["event_type"].as_str().unwrap().to_string();
        let in_a = record_id(&expect(&app, &a, &format!("{what} in A"), create.clone(), 200).await);
        let in_b = record_id(&expect(&app, &b, &format!("{what} in B"), create.clone(), 200).await);
        assert_ne!(in_a, in_b, "{what}: both companies got the same record");
        let (company_a, kind_a, key_a, data_a) = stored(&app, &in_a).await.expect("A's record");
        let (company_b, kind_b, key_b, data_b) = stored(&app, &in_b).await.expect("B's record");
        assert_eq!(
            (company_a.as_str(), company_b.as_str()),
            (a.company_id.as_str(), b.company_id.as_str()),
            "{what}"
        );
        assert_eq!(
            (&kind_a, &key_a),
            (&kind_b, &key_b),
            "{what}: same kind and natural key"
        );
        assert_eq!(data_a, data_b, "{what}: same data");
        let copies = app
            .count(&format!(
                "SELECT COUNT(*) FROM records WHERE kind = '{kind_a}' AND natural_key = '{}'",
                key_a.replace('\'', "''")
            ))
            .await;
        assert_eq!(copies, 2, "{what}: one record per company");
    }

    // A change through B's key changes B's record only.
    let vendor_a = stored_by_field(
        &app,
        &a.company_id,
        "vendor",
        "vendor_name",
        "Shared Vendor",
    )
    .await;
    let vendor_b = stored_by_field(
        &app,
        &b.company_id,
        "vendor",
        "vendor_name",
        "Shared Vendor",
    )
    .await;
    assert_eq!((vendor_a.len(), vendor_b.len()), (1, 1));
    expect(
        &app,
        &b,
        "B updates its vendor",
        envelope(
            "vendor.updated",
            json!({"vendor_name": "Shared Vendor", "rating": 5}),
        ),
        200,
    )
    .await;
    assert_eq!(stored_data(&app, &vendor_b[0].0).await["rating"], 5);
    assert_eq!(
        stored_data(&app, &vendor_a[0].0).await,
        vendor_a[0].1,
        "A's vendor changed"
    );

    // A delete through B's key deletes B's record only.
    expect(
        &app,
        &b,
        "B deletes its contact",
        envelope(
            "contact.deleted",
            json!({"customer_name": "Other Customer", "first_name": "Jo", "last_name": "Smith"}),
        ),
        200,
    )
    .await;
    assert_eq!(
        stored_by_field(&app, &a.company_id, "contact", "first_name", "Jo")
            .await
            .len(),
        1
    );
    assert_eq!(
        stored_by_field(&app, &b.company_id, "contact", "first_name", "Jo")
            .await
            .len(),
        0
    );

    // Each company's search finds its own project only.
    for (key, other) in [(&a, &b), (&b, &a)] {
        let mine = stored_by_field(&app, &key.company_id, "project", "project_code", "PRJ-1").await;
        let theirs =
            stored_by_field(&app, &other.company_id, "project", "project_code", "PRJ-1").await;
        let search = expect(
            &app,
            key,
            "search the shared project",
            envelope("project.search", json!({"search_term": "harbor towr"})),
            200,
        )
        .await;
        let ids: Vec<&str> = search.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["id"].as_str())
            .collect();
        assert_eq!(ids, vec![mine[0].0.as_str()], "{}", search.body);
        assert!(!ids.contains(&theirs[0].0.as_str()));
        assert_eq!(search.body["count"], 1);
    }
}

#[tokio::test]
async fn one_companys_key_cannot_reach_another_companys_records() {
    let app = spawn_app().await;
    let a = unlimited_key(&app, "owner-co", "erp").await;
    let b = unlimited_key(&app, "intruder-co", "erp").await;
    for create in [
        envelope(
            "employee.created",
            json!({"emp_number": "EMP-A", "name": "Alpha Person", "email": "a@example.com", "employee_type": "office"}),
        ),
        envelope(
            "project.created",
            json!({"project_code": "PRJ-ALPHA", "project_name": "Alpha Only Plaza", "customer_name": "Alpha Only Customer", "location_name": "Alpha Yard"}),
        ),
        envelope(
            "work_order.created",
            json!({"work_order_number": "WO-ALPHA", "project_code": "PRJ-ALPHA", "phase_name": "Alpha Framing"}),
        ),
        envelope(
            "vendor.created",
            json!({"vendor_name": "Alpha Only Vendor"}),
        ),
        envelope(
            "contact.created",
            json!({"customer_name": "Alpha Only Customer", "first_name": "Al", "last_name": "Pha"}),
        ),
        envelope(
            "time_off.created",
            json!({"emp_number": "EMP-A", "start_date": "2025-04-01", "end_date": "2025-04-02"}),
        ),
        envelope(
            "timesheet.created",
            json!({"emp_number": "EMP-A", "timesheet_date": "2025-04-03"}),
        ),
    ] {
        let what = format!("A: {}", create["event_type"]);
        expect(&app, &a, &what, create, 200).await;
    }
    app.settle().await;
    let snapshot_sql = format!(
        "SELECT record_id, data, updated_at FROM records WHERE company_id = '{}'",
        a.company_id
    );
    let snapshot = async |app: &TestApp| -> BTreeMap<String, (String, i64)> {
        app.rows(&snapshot_sql)
            .await
            .into_iter()
            .map(|mut r| (r.text(0).unwrap(), (r.text(1).unwrap(), r.i64(2).unwrap())))
            .collect()
    };
    let before = snapshot(&app).await;
    assert!(before.len() >= 9, "A's records: {before:?}");

    // Updates, closes and deletes of A's records through B's key: 404, as if absent.
    let not_found = [
        envelope(
            "project.updated",
            json!({"project_code": "PRJ-ALPHA", "project_name": "Hijacked"}),
        ),
        envelope(
            "project.closed",
            json!({"project_code": "PRJ-ALPHA", "close_work_orders": true}),
        ),
        envelope("project.deleted", json!({"project_code": "PRJ-ALPHA"})),
        envelope(
            "work_order.updated",
            json!({"work_order_number": "WO-ALPHA", "status": "cancelled"}),
        ),
        envelope(
            "work_order.deleted",
            json!({"work_order_number": "WO-ALPHA"}),
        ),
        envelope(
            "work_order.deleted",
            json!({"project_code": "PRJ-ALPHA", "phase_name": "Alpha Framing"}),
        ),
        envelope(
            "employee.updated",
            json!({"emp_number": "EMP-A", "name": "Hijacked"}),
        ),
        envelope("employee.deleted", json!({"emp_number": "EMP-A"})),
        envelope(
            "vendor.updated",
            json!({"vendor_name": "Alpha Only Vendor", "rating": 1}),
        ),
        envelope(
            "vendor.deleted",
            json!({"vendor_name": "Alpha Only Vendor"}),
        ),
        envelope(
            "customer.updated",
            json!({"name": "Alpha Only Customer", "notes": "hijacked"}),
        ),
        envelope(
            "customer.deleted",
            json!({"customer_name": "Alpha Only Customer"}),
        ),
        envelope(
            "location.updated",
            json!({"customer_name": "Alpha Only Customer", "name": "Alpha Yard", "notes": "x"}),
        ),
        envelope(
            "location.deleted",
            json!({"customer_name": "Alpha Only Customer", "location_name": "Alpha Yard"}),
        ),
        envelope(
            "contact.updated",
            json!({"customer_name": "Alpha Only Customer", "first_name": "Al", "last_name": "Pha", "title": "x"}),
        ),
        envelope(
            "contact.deleted",
            json!({"customer_name": "Alpha Only Customer", "first_name": "Al", "last_name": "Pha"}),
        ),
        envelope(
            "time_off.updated",
            json!({"emp_number": "EMP-A", "start_date": "2025-04-01", "end_date": "2025-04-02", "notes": "x"}),
        ),
        envelope(
            "time_off.deleted",
            json!({"emp_number": "EMP-A", "start_date": "2025-04-01", "end_date": "2025-04-02"}),
        ),
        envelope(
            "timesheet.updated",
            json!({"emp_number": "EMP-A", "timesheet_date": "2025-04-03", "status": "submitted"}),
        ),
        envelope(
            "timesheet.deleted",
            json!({"emp_number": "EMP-A", "timesheet_date": "2025-04-03"}),
        ),
        envelope(
            "report.completion_approved",
            json!({"work_order_number": "WO-ALPHA"}),
        ),
    ];
    let mut failures = Vec::new();
    for request in not_found {
        let sent = app.post(&b, &request).await;
        // The completion approval names a work order, so a missing one may also be a 422.
        let ok = sent.status == 404
            || (request["event_type"] == "report.completion_approved" && sent.status == 422);
        if !ok {
            failures.push(format!(
                "B {} {}: expected 404, got {} {}",
                request["event_type"], request["data"], sent.status, sent.body
            ));
        }
    }
    // References to A's records from B's creates: 422, the reference does not exist for B.
    let unprocessable = [
        envelope(
            "work_order.created",
            json!({"project_code": "PRJ-ALPHA", "phase_name": "Intrusion"}),
        ),
        envelope(
            "time_off.created",
            json!({"emp_number": "EMP-A", "start_date": "2025-05-01", "end_date": "2025-05-01"}),
        ),
        envelope(
            "timesheet.created",
            json!({"emp_number": "EMP-A", "timesheet_date": "2025-05-02"}),
        ),
        envelope(
            "location.created",
            json!({"customer_name": "Alpha Only Customer", "name": "Intrusion"}),
        ),
        envelope(
            "contact.created",
            json!({"customer_name": "Alpha Only Customer", "first_name": "In", "last_name": "Truder"}),
        ),
        envelope(
            "customer.created",
            json!({"name": "Intruder Customer", "account_manager_emp_number": "EMP-A"}),
        ),
        envelope(
            "report.daily_submitted",
            json!({"work_order_number": "WO-ALPHA", "report_date": "2025-04-03"}),
        ),
    ];
    for request in unprocessable {
        let sent = app.post(&b, &request).await;
        if sent.status != 422 {
            failures.push(format!(
                "B {} {}: expected 422, got {} {}",
                request["event_type"], request["data"], sent.status, sent.body
            ));
        }
    }
    // Searches through B's key find nothing of A's.
    let searches = [
        envelope(
            "project.search",
            json!({"search_term": "Alpha Only Plaza", "exact_match": true}),
        ),
        envelope("project.search", json!({"search_term": "alpha"})),
        envelope("project.search", json!({"search_term": "Alpha Only Plaz"})),
        envelope(
            "project.search",
            json!({"search_term": "PRJ-ALPHA", "search_field": "project_code", "exact_match": true}),
        ),
        envelope(
            "work_order.search",
            json!({"search_term": "Alpha Framing", "exact_match": true}),
        ),
        envelope("work_order.search", json!({"search_term": "alpha framin"})),
        envelope(
            "work_order.search",
            json!({"search_term": "WO-ALPHA", "search_field": "work_order_number", "exact_match": true}),
        ),
        envelope(
            "work_order.search",
            json!({"search_term": "Framing", "project_code": "PRJ-ALPHA"}),
        ),
    ];
    for request in &searches {
        let sent = app.post(&b, request).await;
        if sent.status != 200 || sent.body["results"] != json!([]) || sent.body["count"] != 0 {
            failures.push(format!(
                "B {} {}: expected 200 with no results, got {} {}",
                request["event_type"], request["data"], sent.status, sent.body
            ));
        }
    }
    // The same searches through A's key do find A's records (so the searches could match).
    for request in &searches {
        let sent = app.post(&a, request).await;
        if sent.status != 200 || sent.body["count"].as_u64().unwrap_or(0) == 0 {
            failures.push(format!(
                "A {} {}: expected A's own record, got {} {}",
                request["event_type"], request["data"], sent.status, sent.body
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // A's rows are untouched and B's key emitted nothing into A's company.
    app.settle().await;
    assert_eq!(
        snapshot(&app).await,
        before,
        "A's records changed through B's key"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM events WHERE company_id = '{}' AND origin_key_id = '{}'",
            a.company_id, b.key_id
        ))
        .await,
        0
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM records WHERE company_id = '{}'",
            b.company_id
        ))
        .await,
        0,
        "B's failed requests left records behind"
    );
}

#[tokio::test]
async fn searches_never_return_another_companys_records() {
    let app = spawn_app().await;
    let a = unlimited_key(&app, "search-alpha", "erp").await;
    let b = unlimited_key(&app, "search-beta", "erp").await;
    // Similar names in both companies, so that fuzzy matching would pick up B's.
    let mut ids: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (key, label, code, name) in [
        (&a, "a", "PRJ-100", "Skyline Tower"),
        (&a, "a", "PRJ-101", "Skyline Annex"),
        (&b, "b", "PRJ-100", "Skyline Tower"),
        (&b, "b", "PRJ-200", "Skyline Towers East"),
    ] {
        let sent = expect(
            &app,
            key,
            "project",
            envelope(
                "project.created",
                json!({"project_code": code, "project_name": name, "customer_name": "Sky Corp", "location_name": "Lot 1"}),
            ),
            200,
        )
        .await;
        ids.entry(label).or_default().push(record_id(&sent));
        let wo = expect(
            &app,
            key,
            "work order",
            envelope(
                "work_order.created",
                json!({"project_code": code, "phase_name": format!("{name} Steel")}),
            ),
            200,
        )
        .await;
        ids.entry(label).or_default().push(record_id(&wo));
    }
    for request in [
        envelope("project.search", json!({"search_term": "skyline"})),
        envelope("project.search", json!({"search_term": "Skylin Towr"})),
        envelope(
            "project.search",
            json!({"search_term": "Skyline Tower", "exact_match": true}),
        ),
        envelope(
            "project.search",
            json!({"search_term": "PRJ-100", "search_field": "project_code"}),
        ),
        envelope("work_order.search", json!({"search_term": "steel"})),
        envelope(
            "work_order.search",
            json!({"search_term": "Skyline Tower Steel", "exact_match": true}),
        ),
        envelope(
            "work_order.search",
            json!({"search_term": "WO-00001", "search_field": "work_order_number"}),
        ),
    ] {
        for (key, mine, theirs) in [(&a, "a", "b"), (&b, "b", "a")] {
            let sent = expect(&app, key, "search", request.clone(), 200).await;
            let results = sent.body["results"].as_array().unwrap();
            assert!(
                !results.is_empty(),
                "{mine} {}: found nothing: {}",
                request["data"],
                sent.body
            );
            assert_eq!(sent.body["count"], results.len());
            for r in results {
                let id = r["id"].as_str().unwrap_or("");
                assert!(
                    ids[mine].iter().any(|x| x == id) && !ids[theirs].iter().any(|x| x == id),
                    "{mine}'s search {} returned {theirs}'s record {r}",
                    request["data"]
                );
                if let Some(project) = r.get("project") {
                    let pid = project["id"].as_str().unwrap_or("");
                    assert!(ids[mine].iter().any(|x| x == pid), "foreign project in {r}");
                }
            }
        }
    }
}
