//! The gateway core: authentication, verification per source, limits, idempotency, errors,
//! the ingest log and the operational endpoints.

use hookgate::crypto;
use hookgate::keys::KeyOptions;
use serde_json::{Value, json};

use crate::helpers::*;

fn test_connection() -> Value {
    json!({"event_type": "test.connection", "timestamp": "2025-01-15T10:00:00Z", "source": "zapier", "data": {"test": true}})
}

#[tokio::test]
async fn signed_test_connection_returns_the_seed_body_and_is_logged() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "erp").await;
    let sent = app.post(&key, &test_connection()).await;
    assert_eq!(sent.status, 200, "{:?}", sent.body);
    assert_eq!(sent.body["success"], true);
    assert_eq!(sent.body["message"], "Webhook processed successfully");
    assert_eq!(sent.body["signature_verified"], true);
    let event_id = sent.body["event_id"].as_str().unwrap();
    assert!(event_id.starts_with("evt_"));
    assert!(sent.body["record_id"].as_str().unwrap().starts_with("rec_"));
    app.settle().await;
    let mut row = app
        .row(&format!(
            "SELECT status, key_id, event_type FROM ingest_log WHERE event_id = '{event_id}'"
        ))
        .await;
    let (status, key_id, event_type) = (
        row.u16(0).unwrap(),
        row.text(1).unwrap(),
        row.text(2).unwrap(),
    );
    assert_eq!(
        (status, key_id.as_str(), event_type.as_str()),
        (200, key.key_id.as_str(), "test.connection")
    );
}

#[tokio::test]
async fn test_connection_needs_only_the_key_but_a_wrong_signature_fails() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "zap").await;
    let body = serde_json::to_vec(&test_connection()).unwrap();
    let unsigned = app
        .send(
            app.client
                .post(format!("{}/webhooks/inbound", app.base))
                .header("X-API-Key", &key.key_id)
                .header("X-Webhook-Source", "zapier")
                .header("Content-Type", "application/json")
                .body(body.clone()),
        )
        .await;
    assert_eq!(unsigned.status, 200, "{:?}", unsigned.body);
    assert_eq!(unsigned.body["signature_verified"], false);

    let wrong = app
        .send(
            app.client
                .post(format!("{}/webhooks/inbound", app.base))
                .header("X-API-Key", &key.key_id)
                .header("Content-Type", "application/json")
                .header("X-Webhook-Timestamp", now().to_string())
                .header("X-Webhook-Signature", "sha256=00ff")
                .body(body.clone()),
        )
        .await;
    assert_eq!((wrong.status, wrong.code()), (403, "signature_mismatch"));
}

#[tokio::test]
async fn authentication_failures_have_distinct_codes() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "erp").await;
    let body = serde_json::to_vec(&test_connection()).unwrap();
    let url = format!("{}/webhooks/inbound", app.base);
    let missing = app
        .send(
            app.client
                .post(&url)
                .header("Content-Type", "application/json")
                .body(body.clone()),
        )
        .await;
    assert_eq!((missing.status, missing.code()), (401, "api_key_missing"));
    let unknown = app
        .send(
            app.client
                .post(&url)
                .header("Content-Type", "application/json")
                .header("X-API-Key", "hk_nope")
                .body(body.clone()),
        )
        .await;
    assert_eq!((unknown.status, unknown.code()), (401, "api_key_invalid"));
    app.state.keys.revoke(&key.key_id).await.unwrap();
    let revoked = app.send(app.signed(&key, &body)).await;
    assert_eq!((revoked.status, revoked.code()), (401, "api_key_revoked"));
}

#[tokio::test]
async fn custom_signatures_cover_the_timestamp() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "erp").await;
    let body = serde_json::to_vec(&envelope(
        "work_order.created",
        json!({"project_code": "P", "phase_name": "X"}),
    ))
    .unwrap();
    let url = format!("{}/webhooks/inbound", app.base);
    let base = || {
        app.client
            .post(&url)
            .header("X-API-Key", &key.key_id)
            .header("Content-Type", "application/json")
            .body(body.clone())
    };
    let unsigned = app.send(base()).await;
    assert_eq!(
        (unsigned.status, unsigned.code()),
        (403, "signature_missing")
    );

    let ts = now();
    let sig = sign(&key.secret, ts, &body);
    let no_ts = app.send(base().header("X-Webhook-Signature", &sig)).await;
    assert_eq!((no_ts.status, no_ts.code()), (403, "timestamp_missing"));

    let old = now() - 301;
    let stale = app
        .send(
            base()
                .header("X-Webhook-Timestamp", old.to_string())
                .header("X-Webhook-Signature", sign(&key.secret, old, &body)),
        )
        .await;
    assert_eq!(
        (stale.status, stale.code()),
        (403, "timestamp_out_of_window")
    );

    // A body-only signature (the weaker legacy scheme) does not verify for a normal key.
    let body_only = crypto::hmac_hex(key.secret.as_bytes(), &[&body]);
    let legacy = app
        .send(
            base()
                .header("X-Webhook-Timestamp", ts.to_string())
                .header("X-Webhook-Signature", body_only),
        )
        .await;
    assert_eq!((legacy.status, legacy.code()), (403, "signature_mismatch"));

    // Several signatures, one valid, with the sha256= prefix.
    let multi = app
        .send(
            base()
                .header("X-Webhook-Timestamp", ts.to_string())
                .header("X-Webhook-Signature", format!("sha256=abcd sha256={sig}")),
        )
        .await;
    assert_ne!(multi.status, 403, "{:?}", multi.body);

    let unknown_source = app
        .send(
            base()
                .header("X-Webhook-Source", "salesforce")
                .header("X-Webhook-Timestamp", ts.to_string())
                .header("X-Webhook-Signature", &sig),
        )
        .await;
    assert_eq!(
        (unknown_source.status, unknown_source.code()),
        (400, "unknown_source")
    );
}

#[tokio::test]
async fn body_only_signing_is_an_opt_in() {
    let app = spawn_app().await;
    let key = app
        .create_key_with(
            "acme",
            "legacy",
            KeyOptions {
                body_only_signing: true,
                ..Default::default()
            },
        )
        .await;
    let body = serde_json::to_vec(&test_connection()).unwrap();
    let sig = crypto::hmac_hex(key.secret.as_bytes(), &[&body]);
    let sent = app
        .send(
            app.client
                .post(format!("{}/webhooks/inbound", app.base))
                .header("X-API-Key", &key.key_id)
                .header("Content-Type", "application/json")
                .header("X-Webhook-Signature", sig)
                .body(body),
        )
        .await;
    assert_eq!(sent.status, 200, "{:?}", sent.body);
    assert_eq!(sent.body["signature_verified"], true);
}

#[tokio::test]
async fn square_quickbooks_and_dynamics_signatures_as_the_vendors_document() {
    let app = spawn_app().await;
    let key = app
        .create_key_with(
            "acme",
            "vendors",
            KeyOptions {
                square_signature_key: Some("sq_sig_key".into()),
                quickbooks_verifier_token: Some("qb-verifier".into()),
                dynamics_key: Some("d365-shared".into()),
                ..Default::default()
            },
        )
        .await;
    let body = serde_json::to_vec(&test_connection()).unwrap();
    let post = |query: &str| {
        app.client
            .post(format!("{}/webhooks/inbound{query}", app.base))
            .header("X-API-Key", &key.key_id)
            .header("Content-Type", "application/json")
            .body(body.clone())
    };
    // Square: base64 HMAC-SHA256(signature key, notification URL + body); the notification URL
    // is the configured public URL of this endpoint.
    let square_sig = crypto::hmac_base64(
        b"sq_sig_key",
        &[b"https://hooks.example.com/webhooks/inbound", &body],
    );
    let square = app
        .send(
            post("")
                .header("X-Webhook-Source", "square")
                .header("x-square-hmacsha256-signature", &square_sig),
        )
        .await;
    assert_eq!(
        (square.status, &square.body["signature_verified"]),
        (200, &json!(true)),
        "{:?}",
        square.body
    );
    let square_bad = app
        .send(
            post("?x=1")
                .header("X-Webhook-Source", "square")
                .header("x-square-hmacsha256-signature", &square_sig),
        )
        .await;
    assert_eq!(
        (square_bad.status, square_bad.code()),
        (403, "signature_mismatch")
    );

    // QuickBooks: base64 HMAC-SHA256(verifier token, body) in intuit-signature.
    let qb_sig = crypto::hmac_base64(b"qb-verifier", &[&body]);
    let qb = app
        .send(
            post("")
                .header("X-Webhook-Source", "quickbooks")
                .header("intuit-signature", qb_sig),
        )
        .await;
    assert_eq!(qb.status, 200, "{:?}", qb.body);
    assert_eq!(qb.body["signature_verified"], true);

    // Dynamics 365: the shared key in a header or ?code=.
    let d365 = app
        .send(post("?code=d365-shared").header("X-Webhook-Source", "dynamics365"))
        .await;
    assert_eq!(d365.body["signature_verified"], true, "{:?}", d365.body);
    let d365_bad = app
        .send(
            post("")
                .header("X-Webhook-Source", "dynamics365")
                .header("x-dynamics-key", "wrong"),
        )
        .await;
    assert_eq!(
        (d365_bad.status, d365_bad.code()),
        (403, "signature_mismatch")
    );
}

#[tokio::test]
async fn rotated_secret_verifies_during_the_overlap_only() {
    let app = spawn_app().await;
    let mut key = app.create_key("acme", "erp").await;
    let old_secret = key.secret.clone();
    let new_secret = app.state.keys.rotate(&key.key_id, 3600).await.unwrap();
    for secret in [&old_secret, &new_secret] {
        key.secret = secret.clone();
        let sent = app.post(&key, &test_connection()).await;
        assert_eq!(sent.body["signature_verified"], true, "{:?}", sent.body);
    }
    // Rotate again with no overlap: the secret before is refused at once.
    let newest = app.state.keys.rotate(&key.key_id, 0).await.unwrap();
    key.secret = new_secret;
    let refused = app.post(&key, &test_connection()).await;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "signature_mismatch")
    );
    key.secret = newest;
    assert_eq!(app.post(&key, &test_connection()).await.status, 200);
}

#[tokio::test]
async fn size_type_and_envelope_errors() {
    let app = spawn_app_with(&[("HOOKGATE_MAX_BODY_BYTES", "2048")]).await;
    let key = app.create_key("acme", "erp").await;
    let url = format!("{}/webhooks/inbound", app.base);

    let text = app
        .send(
            app.client
                .post(&url)
                .header("X-API-Key", &key.key_id)
                .header("Content-Type", "text/plain")
                .body("{}"),
        )
        .await;
    assert_eq!((text.status, text.code()), (415, "unsupported_media_type"));
    assert!(
        text.header("x-ratelimit-remaining").is_some(),
        "every answer carries the limit headers"
    );

    let big = vec![b' '; 4096];
    let declared = app.send(app.signed(&key, &big)).await;
    assert_eq!(
        (declared.status, declared.code()),
        (413, "payload_too_large")
    );

    // Streamed without Content-Length: the limit is enforced while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|_| Ok(vec![b' '; 1024])).collect();
    let streamed = app
        .send(
            app.client
                .post(&url)
                .header("X-API-Key", &key.key_id)
                .header("Content-Type", "application/json")
                .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks))),
        )
        .await;
    assert_eq!(
        (streamed.status, streamed.code()),
        (413, "payload_too_large")
    );

    let malformed = app
        .send(app.signed(&key, b"{\"event_type\": \"test.connection\", \"data\": {"))
        .await;
    assert_eq!((malformed.status, malformed.code()), (400, "invalid_json"));
    assert!(
        malformed.body["error"]["details"][0]["offset"]
            .as_u64()
            .is_some(),
        "{:?}",
        malformed.body
    );

    let unknown = app
        .post(&key, &envelope("work_order.exploded", json!({})))
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (400, "unknown_event_type")
    );
    let known = unknown.body["error"]["details"].as_array().unwrap();
    assert!(
        known.contains(&json!("timesheet.created")) && known.len() == 34,
        "{known:?}"
    );

    let invalid = app
        .post(
            &key,
            &envelope(
                "timesheet.created",
                json!({"emp_number": 5, "entries": [{"entry_date": "2025-10-03", "hours": 25}]}),
            ),
        )
        .await;
    assert_eq!((invalid.status, invalid.code()), (400, "validation_failed"));
    let paths: Vec<&str> = invalid.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"/data/emp_number"), "{paths:?}");
    assert!(paths.contains(&"/data/entries/0/hours"), "{paths:?}");
    assert!(
        paths.contains(&"/data"),
        "missing timesheet_date is reported at /data: {paths:?}"
    );
}

#[tokio::test]
async fn rate_limit_headers_and_429_with_retry_after() {
    let app = spawn_app().await;
    let key = app
        .create_key_with(
            "acme",
            "erp",
            KeyOptions {
                per_minute: Some(3),
                ..Default::default()
            },
        )
        .await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let sent = app.post(&key, &test_connection()).await;
        assert_eq!(sent.status, 200);
        assert_eq!(sent.header("x-ratelimit-limit"), Some("3"));
        assert!(
            sent.header("x-ratelimit-reset")
                .unwrap()
                .parse::<i64>()
                .unwrap()
                >= now()
        );
        remaining.push(sent.header("x-ratelimit-remaining").unwrap().to_string());
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let limited = app.post(&key, &test_connection()).await;
    assert_eq!((limited.status, limited.code()), (429, "rate_limited"));
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");

    // Another key of the same company is not affected.
    let other = app.create_key("acme", "crm").await;
    let sent = app.post(&other, &test_connection()).await;
    assert_eq!(sent.status, 200);
    assert_eq!(sent.header("x-ratelimit-limit"), Some("50"));
}

#[tokio::test]
async fn failed_authentication_is_limited_per_client_address() {
    let app = spawn_app_with(&[("HOOKGATE_AUTH_FAILURES_PER_MINUTE", "3")]).await;
    let key = app.create_key("acme", "erp").await;
    let url = format!("{}/webhooks/inbound", app.base);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let sent = app
            .send(
                app.client
                    .post(&url)
                    .header("X-API-Key", "hk_guess")
                    .header("Content-Type", "application/json")
                    .body("{}"),
            )
            .await;
        statuses.push(sent.status);
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    // The blocked address cannot spend a valid key's quota either.
    let blocked = app.post(&key, &test_connection()).await;
    assert_eq!(
        (blocked.status, blocked.code()),
        (429, "too_many_auth_failures")
    );
    assert!(blocked.header("retry-after").is_some());
}

#[tokio::test]
async fn concurrent_duplicates_are_applied_once() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "erp").await;
    let body = serde_json::to_vec(&test_connection()).unwrap();
    let sends = (0..12).map(|_| {
        let request = app
            .signed(&key, &body)
            .header("Idempotency-Key", "same-key-1");
        app.send(request)
    });
    let results = futures::future::join_all(sends).await;
    let event_ids: std::collections::HashSet<String> = results
        .iter()
        .map(|s| s.body["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        event_ids.len(),
        1,
        "every copy answers with the original event"
    );
    let replayed = results
        .iter()
        .filter(|s| s.header("idempotent-replayed") == Some("true"))
        .count();
    assert_eq!(replayed, 11);
    app.settle().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM idempotency").await, 1);
    // X-Webhook-ID works the same way, and a different key id is a different request.
    let first = app
        .send(app.signed(&key, &body).header("X-Webhook-ID", "wh-1"))
        .await;
    let again = app
        .send(app.signed(&key, &body).header("X-Webhook-ID", "wh-1"))
        .await;
    assert_eq!(first.body["event_id"], again.body["event_id"]);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let other = app
        .send(app.signed(&key, &body).header("X-Webhook-ID", "wh-2"))
        .await;
    assert_ne!(first.body["event_id"], other.body["event_id"]);
    // The same key with another body is refused, not answered with the first one's result.
    let other_body =
        serde_json::to_vec(&json!({"event_type": "test.connection", "data": {"test": false}}))
            .unwrap();
    let reused = app
        .send(app.signed(&key, &other_body).header("X-Webhook-ID", "wh-1"))
        .await;
    assert_eq!(
        (reused.status, reused.code()),
        (409, "idempotency_key_reused")
    );
    // A byte-identical re-send without an idempotency key is a new request (SPEC 7).
    let resend = app.signed(&key, &body);
    let a = app.send(resend.try_clone().unwrap()).await;
    let b = app.send(resend).await;
    assert_eq!((a.status, b.status), (200, 200));
    assert_ne!(a.body["event_id"], b.body["event_id"]);
}

/// On PostgreSQL several writers run side by side: requests that each need the same new
/// customer race to create it, and the losers run again and find it instead of failing.
#[tokio::test]
async fn projects_created_at_once_share_the_new_customer_they_name() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "erp").await;
    let creates = (0..16).map(|n| {
        let project = envelope(
            "project.created",
            json!({"project_code": format!("RACE-{n}"), "project_name": "Race",
                   "customer_name": "Shared Co", "location_name": "Yard"}),
        );
        let key = &key;
        let app = &app;
        async move { app.post(key, &project).await }
    });
    for sent in futures::future::join_all(creates).await {
        assert_eq!(sent.status, 200, "{}", sent.body);
    }
    let customers = app
        .count(&format!(
            "SELECT COUNT(*) FROM records WHERE company_id = '{}' AND kind = 'customer'",
            key.company_id
        ))
        .await;
    assert_eq!(customers, 1, "one customer, named by every project");
    assert!(
        app.record(&key.company_id, "customer", "Shared Co")
            .await
            .is_some()
    );
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "erp").await;
    app.post(&key, &test_connection()).await;
    let health = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            "hookgate_inbound_requests_total{event_type=\"test.connection\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("hookgate_inbound_latency_seconds_bucket"));
    assert!(metrics.contains("hookgate_writer_batches_total"));
    let missing = app
        .client
        .get(format!("{}/nope", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn secrets_are_sealed_at_rest() {
    let app = spawn_app().await;
    let key = app
        .create_key_with(
            "acme",
            "erp",
            KeyOptions {
                quickbooks_verifier_token: Some("qb-plain-token".into()),
                ..Default::default()
            },
        )
        .await;
    app.settle().await;
    let Some(path) = app.db.as_ref().and_then(TestDb::sqlite_path) else {
        return; // the check reads the SQLite files; PostgreSQL stores the same sealed bytes
    };
    let raw = std::fs::read(&path).unwrap();
    let wal = std::fs::read(path.with_extension("db-wal")).unwrap_or_default();
    for haystack in [&raw, &wal] {
        for secret in [
            key.secret.as_bytes(),
            b"qb-plain-token".as_slice(),
            key.api_token.as_bytes(),
        ] {
            assert!(
                !haystack.windows(secret.len()).any(|w| w == secret),
                "a secret is stored in the clear"
            );
        }
    }
}

#[tokio::test]
async fn accepted_events_survive_a_restart() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "erp").await;
    let sent = app.post(&key, &test_connection()).await;
    assert_eq!(sent.status, 200);
    let db = app.stop().await;
    let app = start(db, &[]).await;
    let logged = app
        .count(&format!(
            "SELECT COUNT(*) FROM ingest_log WHERE event_id = '{}' AND status = 200",
            sent.body["event_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(logged, 1);
    // Keys (and their sealed secrets) still work after the restart.
    assert_eq!(app.post(&key, &test_connection()).await.status, 200);
}

#[tokio::test]
async fn admins_page_and_follow_their_companys_ingest_log() {
    let app = spawn_app().await;
    let acme = app.create_key("acme", "erp").await;
    let globex = app.create_key("globex", "erp").await;
    app.post(&acme, &test_connection()).await;
    app.settle().await;
    let page = app
        .rest(&acme.api_token, "GET", "/api/v1/ingest-log", None)
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body["count"], 1);
    assert_eq!(page.body["data"][0]["event_type"], "test.connection");
    assert_eq!(page.body["data"][0]["status"], 200);
    let received_at = page.body["data"][0]["received_at"].as_str().unwrap_or("");
    assert!(
        hookgate::clock::parse_rfc3339_ms(received_at).is_some(),
        "received_at is not RFC 3339: {}",
        page.body
    );
    let theirs = app
        .rest(&globex.api_token, "GET", "/api/v1/ingest-log", None)
        .await;
    assert_eq!(
        theirs.body["count"], 0,
        "another company's log is not visible"
    );

    // Follow: a waiting call returns as soon as the next entry is written.
    let next = page.body["next_after_id"].as_i64().unwrap();
    let path = format!("/api/v1/ingest-log?after_id={next}&wait=10");
    let started = std::time::Instant::now();
    let (followed, _) = tokio::join!(app.rest(&acme.api_token, "GET", &path, None), async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        app.post(&acme, &envelope("nope.unknown", json!({}))).await
    });
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(followed.body["count"], 1, "{}", followed.body);
    assert_eq!(followed.body["data"][0]["error_code"], "unknown_event_type");
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight() {
    let mut app = spawn_app().await;
    let key = app.create_key("acme", "erp").await;
    let body = serde_json::to_vec(&test_connection()).unwrap();
    let (first, rest) = body.split_at(20);
    // The body arrives in two parts; shutdown is signalled between them.
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Vec<u8>, std::io::Error>>();
    tx.unbounded_send(Ok(first.to_vec())).unwrap();
    let request = app.signed(&key, &body).body(reqwest::Body::wrap_stream(rx));
    let in_flight = tokio::spawn(request.send());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    app.begin_shutdown();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    tx.unbounded_send(Ok(rest.to_vec())).unwrap();
    drop(tx);
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(response.status(), 200);
    let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    let event_id = answer["event_id"].as_str().unwrap().to_string();
    let db = app.stop().await;
    let app = start(db, &[]).await;
    let logged = app
        .count(&format!(
            "SELECT COUNT(*) FROM ingest_log WHERE event_id = '{event_id}' AND status = 200"
        ))
        .await;
    assert_eq!(logged, 1, "the accepted event is stored");
}
