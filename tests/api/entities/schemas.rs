//! Every schema rejects a missing required field, a wrong type and an out-of-range value,
//! with the JSON path of the violation.

use super::schema_cases::*;
use super::*;

#[tokio::test]
async fn every_schema_rejects_missing_fields_wrong_types_and_out_of_range_values() {
    let app = spawn_app().await;
    let key = unlimited_key(&app, "schemas", "erp").await;
    let schemas = event_schemas();

    // Every inbound event type has its schema, and every schema is an inbound event type.
    let on_disk: BTreeSet<&str> = schemas.iter().map(|(n, _)| n.as_str()).collect();
    let known: BTreeSet<&str> = hookgate::catalog::InboundEvent::ALL
        .iter()
        .map(|e| e.name())
        .collect();
    assert_eq!(
        on_disk, known,
        "schemas/ and the inbound event types differ"
    );
    assert!(
        schemas.len() >= 34,
        "expected a schema per inbound event type"
    );

    let mut cases: Vec<(String, SchemaCase)> = Vec::new();
    let mut failures = Vec::new();
    for (event_type, schema) in &schemas {
        assert_eq!(
            types_of(schema),
            vec!["object".to_string()],
            "{event_type}: data must be an object"
        );
        let baseline = sample(schema, &format!("{event_type} /data"));
        // The baseline passes validation (it may still break a business rule), so every
        // rejection below is caused by the one change the case makes.
        let sent = app
            .post(&key, &envelope(event_type, baseline.clone()))
            .await;
        if sent.status == 400 {
            failures.push(format!(
                "{event_type}: the minimal valid data {baseline} was rejected: {}",
                sent.body
            ));
            continue;
        }
        let mut own = Vec::new();
        node_cases(schema, &baseline, "", &mut own);
        let kinds: BTreeSet<bool> = own.iter().map(|c| c.missing.is_empty()).collect();
        if schema["required"].as_array().is_some_and(|r| !r.is_empty()) {
            assert!(
                kinds.contains(&false),
                "{event_type}: no missing-field case"
            );
        }
        assert!(
            own.iter().any(|c| c.label.starts_with("wrong type")),
            "{event_type}: no wrong-type case"
        );
        cases.extend(own.into_iter().map(|c| (event_type.clone(), c)));
    }
    // Every constraint kind the brief names is exercised somewhere.
    for keyword in [
        "minimum",
        "maximum",
        "maxLength",
        "enum",
        "missing required",
    ] {
        assert!(
            cases.iter().any(|(_, c)| c.label.contains(keyword)),
            "no case for {keyword}"
        );
    }

    app.settle().await;
    let company = key.company_id.clone();
    let records_before = app
        .count(&format!(
            "SELECT COUNT(*) FROM records WHERE company_id = '{company}'"
        ))
        .await;
    let events_before = app
        .count(&format!(
            "SELECT COUNT(*) FROM events WHERE company_id = '{company}'"
        ))
        .await;
    let rejected_before = app.count(&format!(
        "SELECT COUNT(*) FROM ingest_log WHERE key_id = '{}' AND status = 400 AND error_code = 'validation_failed'",
        key.key_id
    )).await;

    let total = cases.len();
    eprintln!("{total} schema cases over {} event types", schemas.len());
    let results: Vec<(String, SchemaCase, Sent)> = futures::stream::iter(cases)
        .map(|(event_type, case)| {
            let app = &app;
            let key = &key;
            async move {
                let sent = app
                    .post(key, &envelope(&event_type, case.data.clone()))
                    .await;
                (event_type, case, sent)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;

    for (event_type, case, sent) in &results {
        let what = format!("{event_type}: {}", case.label);
        if sent.status != 400 || sent.code() != "validation_failed" {
            failures.push(format!(
                "{what}: expected 400 validation_failed, got {} {} (data {})",
                sent.status, sent.body, case.data
            ));
            continue;
        }
        let details = sent.body["error"]["details"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let paths: Vec<&str> = details.iter().filter_map(|d| d["path"].as_str()).collect();
        if paths.is_empty() {
            failures.push(format!("{what}: no details[].path in {}", sent.body));
            continue;
        }
        // Only the changed place is wrong: every violation lies at or under it.
        if let Some(stray) = paths
            .iter()
            .find(|p| **p != case.path && !p.starts_with(&format!("{}/", case.path)))
        {
            failures.push(format!(
                "{what}: violation reported at {stray}, expected only at {}: {}",
                case.path, sent.body
            ));
            continue;
        }
        if case.missing.is_empty() {
            if !paths.contains(&case.path.as_str()) {
                failures.push(format!(
                    "{what}: no violation at {}: {}",
                    case.path, sent.body
                ));
            }
        } else {
            // A missing field is named either in the path (/data/field) or, at its parent's
            // path, in the message.
            for field in &case.missing {
                let named = details.iter().any(|d| {
                    let path = d["path"].as_str().unwrap_or("");
                    path == format!("{}/{field}", case.path)
                        || (path == case.path
                            && d["message"].as_str().unwrap_or("").contains(field.as_str()))
                });
                if !named {
                    failures.push(format!(
                        "{what}: the missing field {field} is not named at {}: {}",
                        case.path, sent.body
                    ));
                }
            }
        }
    }

    // Nothing was stored by the rejected requests, and each one is in the ingest log.
    app.settle().await;
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM records WHERE company_id = '{company}'"
        ))
        .await,
        records_before,
        "a rejected request changed records"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM events WHERE company_id = '{company}'"
        ))
        .await,
        events_before,
        "a rejected request emitted events"
    );
    let rejected = app.count(&format!(
        "SELECT COUNT(*) FROM ingest_log WHERE key_id = '{}' AND status = 400 AND error_code = 'validation_failed'",
        key.key_id
    )).await - rejected_before;
    let expected_rejections = results
        .iter()
        .filter(|(_, _, s)| s.status == 400 && s.code() == "validation_failed")
        .count() as i64;
    assert_eq!(
        rejected, expected_rejections,
        "every validation failure is in the ingest log"
    );
    assert!(
        failures.is_empty(),
        "{} of {total} schema cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
