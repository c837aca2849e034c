//! Skills and work types through the REST API, and the records that use them.

use super::*;

#[tokio::test]
async fn skills_through_rest_then_employees_that_use_them() {
    let app = spawn_app().await;
    let key = unlimited_key(&app, "skills-co", "hr").await;
    let other = unlimited_key(&app, "skills-other", "hr").await;
    let token = key.api_token.as_str();

    let empty = app.rest(token, "GET", "/api/v1/skills", None).await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert_eq!(
        (empty.body["data"].clone(), empty.body["count"].clone()),
        (json!([]), json!(0))
    );

    let added = app
        .rest(
            token,
            "POST",
            "/api/v1/skills",
            Some(json!({"names": ["Concrete Finisher", "Framing"]})),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    assert_eq!(added.body["data"]["added"], 2);
    let one = app
        .rest(
            token,
            "POST",
            "/api/v1/skills",
            Some(json!({"name": "Welding"})),
        )
        .await;
    assert_eq!(
        (one.status, one.body["data"]["added"].clone()),
        (201, json!(1)),
        "{}",
        one.body
    );
    let again = app
        .rest(
            token,
            "POST",
            "/api/v1/skills",
            Some(json!({"names": ["framing"]})),
        )
        .await;
    assert_eq!(
        again.body["data"]["added"], 0,
        "skill names are unique regardless of case: {}",
        again.body
    );
    let listed = app.rest(token, "GET", "/api/v1/skills", None).await;
    let names: BTreeSet<&str> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["Concrete Finisher", "Framing", "Welding"])
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM skills WHERE company_id = '{}'",
            key.company_id
        ))
        .await,
        3
    );
    let bad = app
        .rest(
            token,
            "POST",
            "/api/v1/skills",
            Some(json!({"names": [""]})),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);

    // An employee with library skills is created and stores them.
    let employee = expect(
        &app,
        &key,
        "employee with known skills",
        envelope(
            "employee.created",
            json!({"emp_number": "EMP-S1", "name": "Sam Skill", "email": "sam@example.com", "employee_type": "site_worker", "employee_skills": ["Concrete Finisher", "Framing", "Welding"]}),
        ),
        200,
    )
    .await;
    assert_eq!(
        stored_data(&app, &record_id(&employee)).await["employee_skills"],
        json!(["Concrete Finisher", "Framing", "Welding"])
    );

    // Unknown skills: 422 listing every missing one, nothing stored.
    let unknown = expect(
        &app,
        &key,
        "employee with unknown skills",
        envelope(
            "employee.created",
            json!({"emp_number": "EMP-S2", "name": "Una Known", "email": "una@example.com", "employee_type": "site_worker", "employee_skills": ["Framing", "Plumbing", "Roofing"]}),
        ),
        422,
    )
    .await;
    assert_eq!(unknown.code(), "unknown_skills");
    let missing: BTreeSet<&str> = unknown.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        missing,
        BTreeSet::from(["Plumbing", "Roofing"]),
        "{}",
        unknown.body
    );
    let message = unknown.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Plumbing") && message.contains("Roofing"),
        "{message}"
    );
    assert!(
        stored_by_field(&app, &key.company_id, "employee", "emp_number", "EMP-S2")
            .await
            .is_empty()
    );

    // The same on update; the employee keeps its skills.
    let update = expect(
        &app,
        &key,
        "update with unknown skills",
        envelope(
            "employee.updated",
            json!({"emp_number": "EMP-S1", "employee_skills": ["Framing", "Scaffolding"]}),
        ),
        422,
    )
    .await;
    assert_eq!(update.code(), "unknown_skills");
    assert_eq!(update.body["error"]["details"], json!(["Scaffolding"]));
    assert_eq!(
        stored_data(&app, &record_id(&employee)).await["employee_skills"],
        json!(["Concrete Finisher", "Framing", "Welding"])
    );

    // Skills belong to one company.
    let theirs = app
        .rest(&other.api_token, "GET", "/api/v1/skills", None)
        .await;
    assert_eq!(theirs.body["data"], json!([]), "{}", theirs.body);
    let foreign = expect(
        &app,
        &other,
        "another company's skill",
        envelope(
            "employee.created",
            json!({"emp_number": "EMP-S1", "name": "Sam Other", "email": "so@example.com", "employee_type": "office", "employee_skills": ["Framing"]}),
        ),
        422,
    )
    .await;
    assert_eq!(foreign.body["error"]["details"], json!(["Framing"]));

    // The REST API wants the key's management token, never its signing secret.
    let secret = app.rest(&key.secret, "GET", "/api/v1/skills", None).await;
    assert_eq!(secret.status, 401, "{}", secret.body);
    let none = app
        .send(app.client.get(format!("{}/api/v1/skills", app.base)))
        .await;
    assert_eq!((none.status, none.code()), (401, "token_missing"));
}

#[tokio::test]
async fn work_types_through_rest_and_a_custom_type_without_work_order() {
    let app = spawn_app().await;
    let key = unlimited_key(&app, "worktypes-co", "payroll").await;
    let token = key.api_token.as_str();

    let listed = app.rest(token, "GET", "/api/v1/work-types", None).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let by_code: BTreeMap<String, Value> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["code"].as_str().unwrap().to_string(), w.clone()))
        .collect();
    for code in ["REG", "OT", "VAC", "SICK", "HOL"] {
        assert!(
            by_code.contains_key(code),
            "{code} is not seeded: {}",
            listed.body
        );
    }
    // Billable types need a work order; leave types do not (seed / conventions).
    for (code, billable) in [
        ("REG", true),
        ("OT", true),
        ("VAC", false),
        ("SICK", false),
        ("HOL", false),
    ] {
        assert_eq!(by_code[code]["billable"], billable, "{code}");
        assert_eq!(by_code[code]["requires_work_order"], billable, "{code}");
    }
    assert_eq!(listed.body["count"], by_code.len());

    let added = app
        .rest(
            token,
            "POST",
            "/api/v1/work-types",
            Some(json!({"code": "trv", "name": "Travel", "billable": false, "requires_work_order": false})),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    assert_eq!(added.body["data"]["code"], "TRV");
    let listed = app.rest(token, "GET", "/api/v1/work-types", None).await;
    let travel = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["code"] == "TRV")
        .cloned()
        .unwrap_or_else(|| panic!("TRV not listed: {}", listed.body));
    assert_eq!(
        (
            travel["name"].clone(),
            travel["requires_work_order"].clone()
        ),
        (json!("Travel"), json!(false))
    );
    let mut row = app
        .row(&format!(
            "SELECT name, requires_work_order FROM work_types WHERE company_id = '{}' AND code = 'TRV'",
            key.company_id
        ))
        .await;
    let (name, requires) = (row.text(0).unwrap(), row.bool(1).unwrap());
    assert_eq!((name.as_str(), requires), ("Travel", false));

    let too_long = app
        .rest(
            token,
            "POST",
            "/api/v1/work-types",
            Some(json!({"code": "X".repeat(21), "name": "Too long"})),
        )
        .await;
    assert_eq!(
        (too_long.status, too_long.code()),
        (400, "invalid_work_type"),
        "{}",
        too_long.body
    );

    expect(
        &app,
        &key,
        "employee",
        envelope(
            "employee.created",
            json!({"emp_number": "EMP-T1", "name": "Tess Travel", "email": "tess@example.com", "employee_type": "site_worker"}),
        ),
        200,
    )
    .await;
    // TRV needs no work order; REG does (control), on the same day shape.
    let sheet = expect(
        &app,
        &key,
        "timesheet with a TRV entry",
        envelope(
            "timesheet.created",
            json!({"emp_number": "EMP-T1", "timesheet_date": "2025-06-02", "entries": [
                {"entry_date": "2025-06-02", "hours": 1.5, "work_type_code": "trv", "notes": "drive to site"}
            ]}),
        ),
        200,
    )
    .await;
    let data = stored_data(&app, &record_id(&sheet)).await;
    assert_eq!(data["entries"][0]["work_type_code"], "TRV");
    assert_eq!(data["entries"][0]["billable"], false);
    assert_eq!(data["total_hours"], 1.5);
    let reg = expect(
        &app,
        &key,
        "timesheet with a REG entry and no work order",
        envelope(
            "timesheet.created",
            json!({"emp_number": "EMP-T1", "timesheet_date": "2025-06-03", "entries": [
                {"entry_date": "2025-06-03", "hours": 8, "work_type_code": "REG"}
            ]}),
        ),
        422,
    )
    .await;
    assert_eq!(reg.code(), "work_order_required");

    // Work types belong to one company.
    let other = unlimited_key(&app, "worktypes-other", "payroll").await;
    let theirs = app
        .rest(&other.api_token, "GET", "/api/v1/work-types", None)
        .await;
    assert!(
        theirs.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["code"] != "TRV"),
        "{}",
        theirs.body
    );
}
