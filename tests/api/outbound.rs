//! Outbound notifications: subscriptions, echo-storm prevention, signed deliveries, retries,
//! disabling, recovery, restart, SSRF guard, filters, and tenant isolation.

use std::time::Duration;

use hookgate::crypto;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::receiver::Receiver;

fn project(code: &str) -> Value {
    envelope(
        "project.created",
        json!({"project_code": code, "project_name": format!("Project {code}"), "customer_name": "Acme", "location_name": "HQ"}),
    )
}

#[tokio::test]
async fn changes_reach_other_subscribers_but_never_echo_back() {
    let app = spawn_app().await;
    let a = app.create_key("acme", "erp").await;
    let b = app.create_key("acme", "crm").await;
    let (ra, rb) = (Receiver::start().await, Receiver::start().await);
    let sub_a = app
        .subscribe(
            &a,
            json!({"name": "erp", "url": ra.url, "events": ["project.*"]}),
        )
        .await;
    let sub_b = app
        .subscribe(
            &b,
            json!({"name": "crm", "url": rb.url, "events": ["project.created"]}),
        )
        .await;
    let secret_b = sub_b["secret"].as_str().unwrap().to_string();
    assert!(secret_b.starts_with("whsec_"));

    let sent = app.post(&a, &project("PRJ-1")).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let got = rb.wait_for(1).await;
    assert_eq!(got.len(), 1);
    let delivery = &got[0];
    let body = delivery.json();
    assert_eq!(body["event_type"], "project.created");
    assert_eq!(body["data"]["project_code"], "PRJ-1");
    assert_eq!(body["company_id"], a.company_id);
    assert_eq!(delivery.header("x-webhook-event"), "project.created");
    assert_eq!(delivery.header("x-webhook-action"), "project.created");
    assert_eq!(delivery.header("x-webhook-name"), "crm");
    assert_eq!(delivery.header("x-webhook-retry"), "0");

    // The seed's scheme: hex HMAC-SHA256(secret, "{timestamp}.{body}").
    let ts = delivery.header("x-webhook-timestamp");
    let expected = crypto::hmac_hex(secret_b.as_bytes(), &[ts.as_bytes(), b".", &delivery.body]);
    assert_eq!(delivery.header("x-webhook-signature"), expected);
    // Standard Webhooks: v1,base64(HMAC(base64-decoded whsec_ key, "{id}.{ts}.{body}")).
    let key = crypto::base64_decode(secret_b.strip_prefix("whsec_").unwrap()).unwrap();
    let id = delivery.header("webhook-id");
    assert_eq!(id, delivery.header("x-webhook-id"));
    let standard = crypto::hmac_base64(
        &key,
        &[
            id.as_bytes(),
            b".",
            delivery.header("webhook-timestamp").as_bytes(),
            b".",
            &delivery.body,
        ],
    );
    assert_eq!(
        delivery.header("webhook-signature"),
        format!("v1,{standard}")
    );

    // A never receives its own change; the skip is recorded.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(ra.events().is_empty(), "echo delivered: {:?}", ra.events());
    let path = format!(
        "/api/v1/webhooks/{}/deliveries",
        sub_a["id"].as_str().unwrap()
    );
    let log = app.rest(&a.api_token, "GET", &path, None).await;
    let statuses: Vec<&str> = log.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.contains(&"skipped_echo") && !statuses.contains(&"succeeded"),
        "{statuses:?}"
    );
    // The auto-created customer and location announced themselves too (A subscribed to project.* only).
    let metrics = app.metrics().await;
    assert!(
        !metrics.contains("hookgate_echoes_skipped_total 0"),
        "{metrics}"
    );

    // B's change reaches A.
    app.post(
        &b,
        &envelope(
            "project.updated",
            json!({"project_code": "PRJ-1", "description": "new"}),
        ),
    )
    .await;
    let got = ra.wait_for(1).await;
    assert_eq!(got[0].json()["event_type"], "project.updated");
    assert_eq!(
        got[0].json()["data"]["changes"]["description"],
        json!({"old": null, "new": "new"})
    );
}

#[tokio::test]
async fn a_change_that_changes_nothing_reaches_nobody() {
    let app = spawn_app().await;
    let a = app.create_key("acme", "erp").await;
    let b = app.create_key("acme", "crm").await;
    let rb = Receiver::start().await;
    app.subscribe(&b, json!({"name": "crm", "url": rb.url, "events": ["*"]}))
        .await;
    app.post(
        &a,
        &envelope(
            "vendor.created",
            json!({"vendor_name": "Bolt", "rating": 4}),
        ),
    )
    .await;
    rb.wait_for(1).await;
    let same = app
        .post(
            &a,
            &envelope(
                "vendor.updated",
                json!({"vendor_name": "Bolt", "rating": 4}),
            ),
        )
        .await;
    assert_eq!(same.status, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let types: Vec<String> = rb
        .events()
        .iter()
        .map(|r| r.json()["event_type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, ["vendor.created"]);
}

#[tokio::test]
async fn temporary_failures_retry_with_a_stable_id_and_permanent_ones_do_not() {
    let app = spawn_app().await;
    let a = app.create_key("acme", "erp").await;
    let b = app.create_key("acme", "crm").await;
    let rb = Receiver::start().await;
    rb.answer(&[500]);
    app.subscribe(
        &b,
        json!({"name": "crm", "url": rb.url, "events": ["vendor.created"]}),
    )
    .await;
    app.post(
        &a,
        &envelope("vendor.created", json!({"vendor_name": "Bolt"})),
    )
    .await;
    let got = rb.wait_retried(&app.state, 2).await;
    assert_eq!(got.len(), 2, "500 then 200 gives two attempts");
    assert_eq!(got[0].header("x-webhook-id"), got[1].header("x-webhook-id"));
    assert_eq!(
        (
            got[0].header("x-webhook-retry"),
            got[1].header("x-webhook-retry")
        ),
        ("0", "1")
    );

    let rc = Receiver::start().await;
    rc.answer(&[400]);
    let c = app.create_key("acme", "billing").await;
    let sub = app
        .subscribe(
            &c,
            json!({"name": "billing", "url": rc.url, "events": ["vendor.updated"]}),
        )
        .await;
    app.post(
        &a,
        &envelope(
            "vendor.updated",
            json!({"vendor_name": "Bolt", "notes": "x"}),
        ),
    )
    .await;
    rc.wait_for(1).await;
    let path = format!(
        "/api/v1/webhooks/{}/deliveries?status=failed",
        sub["id"].as_str().unwrap()
    );
    // A 400 is final: recorded as failed with no next attempt, and nothing is sent again once
    // the retry clock has passed the whole schedule.
    let mut failed = app.rest(&c.api_token, "GET", &path, None).await;
    for _ in 0..100 {
        if failed.body["count"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        failed = app.rest(&c.api_token, "GET", &path, None).await;
    }
    assert_eq!(failed.body["count"], 1);
    assert_eq!(failed.body["data"][0]["next_attempt_at"], Value::Null);
    app.state.advance_retry_clock(RETRY_STEP * 3);
    let still = app.rest(&c.api_token, "GET", &path, None).await;
    assert_eq!(still.body["count"], 1, "{}", still.body);
    assert_eq!(rc.events().len(), 1, "a 400 is not retried");
    assert_eq!(failed.body["data"][0]["response_code"], 400);

    // A manual retry sends it again.
    let delivery_id = failed.body["data"][0]["id"].as_str().unwrap();
    let retry = app
        .rest(
            &c.api_token,
            "POST",
            &format!(
                "/api/v1/webhooks/{}/deliveries/{delivery_id}/retry",
                sub["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(retry.status, 202, "{}", retry.body);
    assert_eq!(retry.body["data"]["id"], delivery_id, "{}", retry.body);
    assert_eq!(retry.body["data"]["status"], "pending", "{}", retry.body);
    assert_eq!(rc.wait_for(2).await.len(), 2);
}

#[tokio::test]
async fn gone_disables_and_consecutive_failures_disable_then_recover_resends() {
    let app = spawn_app_with(&[
        ("HOOKGATE_DISABLE_AFTER_FAILURES", "3"),
        ("HOOKGATE_RETRY_SCHEDULE", "0,0,0,0,0"),
    ])
    .await;
    let a = app.create_key("acme", "erp").await;
    let b = app.create_key("acme", "crm").await;
    let gone = Receiver::start().await;
    gone.answer(&[410]);
    let sub = app
        .subscribe(
            &b,
            json!({"name": "gone", "url": gone.url, "events": ["vendor.created"]}),
        )
        .await;
    let id = sub["id"].as_str().unwrap().to_string();
    let since = hookgate::clock::now_rfc3339();
    app.post(
        &a,
        &envelope("vendor.created", json!({"vendor_name": "One"})),
    )
    .await;
    gone.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let view = app
        .rest(&b.api_token, "GET", &format!("/api/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(view.body["data"]["status"], "disabled", "{}", view.body);
    assert!(
        view.body["data"]["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("410")
    );

    // Missed while disabled, then recovered in order.
    app.post(
        &a,
        &envelope("vendor.created", json!({"vendor_name": "Two"})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gone.events().len(), 1);
    let enabled = app
        .rest(
            &b.api_token,
            "POST",
            &format!("/api/v1/webhooks/{id}/enable"),
            None,
        )
        .await;
    assert_eq!(enabled.body["data"]["status"], "active");
    let recovered = app
        .rest(
            &b.api_token,
            "POST",
            &format!("/api/v1/webhooks/{id}/recover"),
            Some(json!({"since": since})),
        )
        .await;
    assert_eq!(
        (recovered.status, &recovered.body["data"]["queued"]),
        (202, &json!(2)),
        "{}",
        recovered.body
    );
    let got = gone.wait_for(3).await;
    let names: Vec<String> = got
        .iter()
        .skip(1)
        .map(|r| {
            r.json()["data"]["vendor_name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["One", "Two"]);

    // Consecutive failures disable with the reason recorded.
    let failing = Receiver::start().await;
    failing.answer(&[500, 500, 500, 500, 500]);
    let sub = app
        .subscribe(
            &b,
            json!({"name": "failing", "url": failing.url, "events": ["vendor.updated"]}),
        )
        .await;
    app.post(
        &a,
        &envelope(
            "vendor.updated",
            json!({"vendor_name": "One", "notes": "x"}),
        ),
    )
    .await;
    failing.wait_retried(&app.state, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let view = app
        .rest(
            &b.api_token,
            "GET",
            &format!("/api/v1/webhooks/{}", sub["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(view.body["data"]["status"], "disabled", "{}", view.body);
    assert!(
        view.body["data"]["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("consecutive"),
        "{}",
        view.body
    );
    assert_eq!(failing.events().len(), 3);
}

#[tokio::test]
async fn pending_deliveries_survive_a_restart() {
    // A port with nobody listening yet: the first attempts fail with connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = [(
        "HOOKGATE_RETRY_SCHEDULE",
        "0,3600,3600,3600,3600,3600,3600,3600",
    )];
    let app = spawn_app_with(&env).await;
    let a = app.create_key("acme", "erp").await;
    let b = app.create_key("acme", "crm").await;
    app.subscribe(&b, json!({"name": "crm", "url": format!("http://127.0.0.1:{port}/hook"), "events": ["vendor.created"]})).await;
    app.post(
        &a,
        &envelope("vendor.created", json!({"vendor_name": "Bolt"})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let db = app.stop().await;
    let receiver = Receiver::start_on(port).await;
    let app = start(db, &env).await;
    let got = receiver.wait_retried(&app.state, 1).await;
    assert_eq!(
        got.len(),
        1,
        "the pending delivery was sent after the restart"
    );
    assert_eq!(got[0].json()["data"]["vendor_name"], "Bolt");
    drop(app);
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let app = spawn_app_with(&[("HOOKGATE_ALLOW_PRIVATE_URLS", "false")]).await;
    let a = app.create_key("acme", "erp").await;
    let b = app.create_key("acme", "crm").await;
    let receiver = Receiver::start().await;
    let literal = app
        .rest(
            &b.api_token,
            "POST",
            "/api/v1/webhooks",
            Some(json!({"name": "x", "url": receiver.url, "events": ["*"]})),
        )
        .await;
    assert_eq!(
        (literal.status, literal.code()),
        (400, "url_not_allowed"),
        "{}",
        literal.body
    );
    // A hostname that resolves to loopback is refused when connecting.
    let url = format!("http://localhost:{}/hook", receiver.port);
    let sub = app
        .subscribe(
            &b,
            json!({"name": "local", "url": url, "events": ["vendor.created"]}),
        )
        .await;
    app.post(
        &a,
        &envelope("vendor.created", json!({"vendor_name": "Bolt"})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(receiver.received().is_empty());
    let log = app
        .rest(
            &b.api_token,
            "GET",
            &format!(
                "/api/v1/webhooks/{}/deliveries",
                sub["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    let error = log.body["data"][0]["error"].as_str().unwrap_or("");
    assert!(error.contains("non-public"), "{}", log.body);
}

#[tokio::test]
async fn project_filter_thin_payload_and_basic_auth() {
    let app = spawn_app().await;
    let a = app.create_key("acme", "erp").await;
    let b = app.create_key("acme", "crm").await;
    let receiver = Receiver::start().await;
    app.subscribe(
        &b,
        json!({"name": "thin", "url": receiver.url, "events": ["workorder.created"], "payload": "thin",
               "projects": ["PRJ-2"], "basic_auth": {"username": "hook", "password": "s3cret"}}),
    )
    .await;
    app.post(&a, &project("PRJ-1")).await;
    app.post(&a, &project("PRJ-2")).await;
    for code in ["PRJ-1", "PRJ-2"] {
        let sent = app
            .post(
                &a,
                &envelope(
                    "work_order.created",
                    json!({"project_code": code, "phase_name": "Dig"}),
                ),
            )
            .await;
        assert_eq!(sent.status, 200, "{}", sent.body);
    }
    let got = receiver.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.events().len(), 1, "only PRJ-2's work order");
    let body = got[0].json();
    assert_eq!(body["entity"], "work_order");
    assert!(body["id"].as_str().unwrap().starts_with("rec_"));
    assert_eq!(body.as_object().unwrap().len(), 2);
    let expected = format!("Basic {}", crypto::base64_encode(b"hook:s3cret"));
    assert_eq!(got[0].header("authorization"), expected);
}

#[tokio::test]
async fn subscriptions_are_validated_and_scoped_to_the_company() {
    let app = spawn_app_with(&[("HOOKGATE_ALLOW_HTTP_URLS", "false")]).await;
    let b = app.create_key("acme", "crm").await;
    let other = app.create_key("globex", "erp").await;
    let post = |body: Value| app.rest(&b.api_token, "POST", "/api/v1/webhooks", Some(body));
    let https = "https://hooks.example.com/in";
    let cases = [
        (
            json!({"name": "a", "url": "http://hooks.example.com/in", "events": ["*"]}),
            400,
            "url_not_https",
        ),
        (
            json!({"name": "a", "url": "not a url", "events": ["*"]}),
            400,
            "invalid_url",
        ),
        (
            json!({"name": "a", "url": "https://hooks*.example.com/in", "events": ["*"]}),
            400,
            "invalid_url",
        ),
        (
            json!({"name": "a", "url": https, "events": ["work_order.exploded"]}),
            400,
            "unknown_event",
        ),
        (
            json!({"name": "a", "url": https, "events": ["project.created", "project.created"]}),
            400,
            "duplicate_event",
        ),
        (
            json!({"name": "a", "url": https, "events": ["po.created"]}),
            400,
            "event_not_emitted",
        ),
        (
            json!({"name": "a", "url": https, "events": ["*"], "secret": "short"}),
            400,
            "secret_too_short",
        ),
        (
            json!({"name": "a", "url": https, "events": ["*"], "payload": "fat"}),
            400,
            "invalid_payload",
        ),
        (json!({"name": "a", "url": https}), 400, "events_required"),
    ];
    for (body, status, code) in cases {
        let sent = post(body.clone()).await;
        assert_eq!(
            (sent.status, sent.code()),
            (status, code),
            "{body} -> {}",
            sent.body
        );
    }
    let created =
        post(json!({"name": "a", "url": https, "actions": ["project.created"], "enabled": false}))
            .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["data"]["status"], "disabled");
    let dup = post(json!({"name": "a", "url": https, "events": ["*"]})).await;
    assert_eq!((dup.status, dup.code()), (409, "duplicate_name"));
    let id = created.body["data"]["id"].as_str().unwrap();

    // Another company neither sees nor changes it.
    let path = format!("/api/v1/webhooks/{id}");
    assert_eq!(
        app.rest(&other.api_token, "GET", &path, None).await.status,
        404
    );
    assert_eq!(
        app.rest(&other.api_token, "DELETE", &path, None)
            .await
            .status,
        404
    );
    assert_eq!(
        app.rest(&other.api_token, "GET", "/api/v1/webhooks", None)
            .await
            .body["count"],
        0
    );
    // The same name is fine in another company.
    let theirs = app
        .rest(
            &other.api_token,
            "POST",
            "/api/v1/webhooks",
            Some(json!({"name": "a", "url": https, "events": ["*"]})),
        )
        .await;
    assert_eq!(theirs.status, 201);

    // The signing secret is not a bearer token; the management token is.
    assert_eq!(
        app.rest(&b.secret, "GET", "/api/v1/webhooks", None)
            .await
            .code(),
        "token_invalid"
    );
    let listed = app
        .rest(&b.api_token, "GET", "/api/v1/webhooks", None)
        .await;
    assert_eq!(listed.body["count"], 1);
    assert!(listed.body["data"][0].get("secret").is_none());
    assert!(listed.header("x-ratelimit-limit").is_some());
    assert_eq!(
        app.rest(&b.api_token, "DELETE", &path, None).await.status,
        200
    );
    assert_eq!(app.rest(&b.api_token, "GET", &path, None).await.status, 404);
}

#[tokio::test]
async fn another_companys_changes_never_arrive() {
    let app = spawn_app().await;
    let acme = app.create_key("acme", "erp").await;
    let globex = app.create_key("globex", "erp").await;
    let receiver = Receiver::start().await;
    app.subscribe(
        &globex,
        json!({"name": "all", "url": receiver.url, "events": ["*"]}),
    )
    .await;
    app.post(
        &acme,
        &envelope("vendor.created", json!({"vendor_name": "Bolt"})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(receiver.events().is_empty());
}

#[tokio::test]
async fn test_send_url_verification_and_rest_rate_limits() {
    let app = spawn_app_with(&[("HOOKGATE_REST_PER_MINUTE", "8")]).await;
    let b = app.create_key("acme", "crm").await;
    let receiver = Receiver::start().await;
    let sub = app
        .subscribe(
            &b,
            json!({"name": "v", "url": receiver.url, "events": ["*"], "verify_url": true}),
        )
        .await;
    let verification = receiver.received();
    assert_eq!(
        verification[0].header("x-webhook-event"),
        "webhook.verification"
    );
    let test = app
        .rest(
            &b.api_token,
            "POST",
            &format!("/api/v1/webhooks/{}/test", sub["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(test.status, 202, "{}", test.body);
    for _ in 0..100 {
        if receiver.received().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(receiver.received()[1].json()["event_type"], "webhook.test");

    let failing = Receiver::start().await;
    failing.answer(&[500]);
    let refused = app
        .rest(
            &b.api_token,
            "POST",
            "/api/v1/webhooks",
            Some(json!({"name": "w", "url": failing.url, "events": ["*"], "verify_url": true})),
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (400, "url_verification_failed")
    );

    let mut last = None;
    for _ in 0..10 {
        last = Some(app.rest(&b.api_token, "GET", "/api/v1/skills", None).await);
        if last.as_ref().unwrap().status == 429 {
            break;
        }
    }
    let limited = last.unwrap();
    assert_eq!((limited.status, limited.code()), (429, "rate_limited"));
    assert!(limited.header("retry-after").is_some());
}

#[tokio::test]
async fn one_records_changes_reach_a_subscriber_in_order_even_across_retries() {
    let app = spawn_app().await;
    let a = app.create_key("acme", "erp").await;
    let b = app.create_key("acme", "crm").await;
    let receiver = Receiver::start().await;
    receiver.answer(&[503]);
    app.subscribe(
        &b,
        json!({"name": "crm", "url": receiver.url, "events": ["vendor.*"]}),
    )
    .await;
    app.post(
        &a,
        &envelope("vendor.created", json!({"vendor_name": "Bolt"})),
    )
    .await;
    for n in 1..=3 {
        let sent = app
            .post(
                &a,
                &envelope(
                    "vendor.updated",
                    json!({"vendor_name": "Bolt", "notes": format!("v{n}")}),
                ),
            )
            .await;
        assert_eq!(sent.status, 200);
    }
    let got = receiver.wait_retried(&app.state, 5).await;
    let seen: Vec<String> = got
        .iter()
        .map(|r| {
            let body = r.json();
            format!(
                "{}:{}",
                body["event_type"].as_str().unwrap(),
                body["data"]["notes"].as_str().unwrap_or("-")
            )
        })
        .collect();
    // The first attempt of the create failed; nothing overtook it.
    assert_eq!(
        seen,
        [
            "vendor.created:-",
            "vendor.created:-",
            "vendor.updated:v1",
            "vendor.updated:v2",
            "vendor.updated:v3"
        ]
    );
}

#[tokio::test]
async fn a_subscription_rate_limit_throttles_without_failing() {
    let app = spawn_app().await;
    let a = app.create_key("acme", "erp").await;
    let b = app.create_key("acme", "crm").await;
    let receiver = Receiver::start().await;
    let sub = app
        .subscribe(&b, json!({"name": "slow", "url": receiver.url, "events": ["vendor.created"], "rate_limit": 2}))
        .await;
    let started = std::time::Instant::now();
    for n in 0..6 {
        app.post(
            &a,
            &envelope("vendor.created", json!({"vendor_name": format!("V{n}")})),
        )
        .await;
    }
    let got = receiver.wait_for(6).await;
    assert_eq!(got.len(), 6);
    // A burst of 2, then 2 per second: the last of six cannot arrive before ~2 s.
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let view = app
        .rest(
            &b.api_token,
            "GET",
            &format!("/api/v1/webhooks/{}", sub["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        (
            view.body["data"]["status"].as_str(),
            view.body["data"]["consecutive_failures"].as_u64()
        ),
        (Some("active"), Some(0))
    );
}

#[tokio::test]
async fn the_overall_delivery_cap_spreads_sends_over_time_across_subscriptions() {
    let app = spawn_app_with(&[("HOOKGATE_MAX_DELIVERIES_PER_SECOND", "2")]).await;
    let a = app.create_key("acme", "erp").await;
    let b = app.create_key("acme", "crm").await;
    let c = app.create_key("acme", "hr").await;
    let (rb, rc) = (Receiver::start().await, Receiver::start().await);
    for (key, receiver, name) in [(&b, &rb, "crm"), (&c, &rc, "hr")] {
        app.subscribe(
            key,
            json!({"name": name, "url": receiver.url, "events": ["vendor.created"]}),
        )
        .await;
    }
    let started = std::time::Instant::now();
    for n in 0..3 {
        app.post(
            &a,
            &envelope("vendor.created", json!({"vendor_name": format!("V{n}")})),
        )
        .await;
    }
    // Six deliveries in all, two subscriptions: a burst of 2, then 2 per second overall, so
    // the last cannot arrive before ~2 s, though neither subscription has a limit of its own.
    assert_eq!(rb.wait_for(3).await.len(), 3);
    assert_eq!(rc.wait_for(3).await.len(), 3);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let failed = app
        .count("SELECT COUNT(*) FROM delivery_attempts WHERE outcome <> 'succeeded'")
        .await;
    assert_eq!(failed, 0, "held back, not failed");
}
