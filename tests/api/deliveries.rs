//! What integration engineers debug deliveries with: every attempt on record (request headers
//! without secrets, the answer's status, headers and body, the kind of failure), secret
//! rotation with both signatures during the overlap, and operational events telling the
//! company's other subscribers when a subscription is disabled or a delivery given up.

use std::time::Duration;

use hookgate::crypto;
use hookgate::keys::CreatedKey;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::receiver::Receiver;

fn vendor(name: &str) -> Value {
    envelope("vendor.created", json!({"vendor_name": name}))
}

/// Waits until the subscription's deliveries satisfy `done`; returns them.
async fn deliveries_until(
    app: &TestApp,
    token: &str,
    sub_id: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let path = format!("/api/v1/webhooks/{sub_id}/deliveries");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let list = app.rest(token, "GET", &path, None).await;
        let items = list.body["data"].as_array().cloned().unwrap_or_default();
        if done(&items) || std::time::Instant::now() > deadline {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_attempt_is_on_record_without_secrets() {
    let app = spawn_app().await;
    let (erp, crm) = (
        app.create_key("acme", "erp").await,
        app.create_key("acme", "crm").await,
    );
    let receiver = Receiver::start().await;
    receiver.answer(&[500]);
    let sub = app
        .subscribe(
            &crm,
            json!({"name": "crm", "url": receiver.url, "events": ["vendor.created"],
                   "basic_auth": {"username": "hook", "password": "s3cret-pass"}}),
        )
        .await;
    let sub_id = sub["id"].as_str().unwrap();
    assert_eq!(app.post(&erp, &vendor("Bolt")).await.status, 200);
    receiver.wait_retried(&app.state, 2).await;
    let items = deliveries_until(&app, &crm.api_token, sub_id, |d| {
        d.first().is_some_and(|d| d["status"] == "succeeded")
    })
    .await;
    let delivery_id = items[0]["id"].as_str().unwrap();
    let path = format!("/api/v1/webhooks/{sub_id}/deliveries/{delivery_id}/attempts");
    let answer = app.rest(&crm.api_token, "GET", &path, None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["count"], 2);
    assert_eq!(answer.body["delivery"]["status"], "succeeded");
    let attempts = answer.body["data"].as_array().unwrap();
    let (first, second) = (&attempts[0], &attempts[1]);
    assert_eq!(
        (
            first["attempt"].clone(),
            first["outcome"].clone(),
            first["status_code"].clone()
        ),
        (json!(0), json!("failed"), json!(500))
    );
    assert_eq!(first["error_kind"], "http_status");
    assert_eq!(
        (
            second["attempt"].clone(),
            second["outcome"].clone(),
            second["status_code"].clone()
        ),
        (json!(1), json!("succeeded"), json!(200))
    );
    let headers = &first["request_headers"];
    assert_eq!(headers["x-webhook-event"], "vendor.created");
    assert!(headers["x-webhook-signature"].is_string());
    assert_eq!(headers["authorization"], "Basic <redacted>");
    assert!(
        !answer.body.to_string().contains("s3cret-pass"),
        "a secret is in the attempt history"
    );
    assert!(first["response_headers"].is_object());
    assert!(first["response_body"].is_string());
    assert!(first["duration_ms"].as_i64().unwrap() >= 0);

    // The CLI shows the same history.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["deliveries", "show", delivery_id, "--json"])
        .env("HOOKGATE_DATABASE", app.database())
        .env("HOOKGATE_MASTER_KEY", MASTER_KEY)
        .env("HOOKGATE_CONFIG", config_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["history"].as_array().unwrap().len(), 2);

    // A receiver nobody listens on: the kind says so.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}/hook");
    let refused = first_attempt_to(&app, (&erp, &crm), "nobody", &url).await;
    assert_eq!(refused["error_kind"], "connection_refused", "{refused}");
    assert_eq!(refused["status_code"], Value::Null);

    // An https URL whose server answers in plain HTTP: the TLS handshake fails, and says so.
    let url = receiver.url.replacen("http://", "https://", 1);
    let no_tls = first_attempt_to(&app, (&erp, &crm), "no-tls", &url).await;
    assert_eq!(no_tls["error_kind"], "tls", "{no_tls}");
}

#[tokio::test]
async fn a_receiver_that_never_answers_is_a_timeout_on_record() {
    let app = spawn_app_with(&[("HOOKGATE_DELIVERY_TIMEOUT_SECS", "1")]).await;
    let (erp, crm) = (
        app.create_key("acme", "erp").await,
        app.create_key("acme", "crm").await,
    );
    // Accepts connections and reads nothing from them, answers nothing.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let attempt = first_attempt_to(&app, (&erp, &crm), "silent", &url).await;
    held.abort();
    assert_eq!(attempt["error_kind"], "timeout", "{attempt}");
    assert_eq!(attempt["status_code"], Value::Null);
    let took = attempt["duration_ms"].as_i64().unwrap();
    assert!((900..5_000).contains(&took), "{attempt}");
}

/// Subscribes `crm` to vendor creates at `url`, has `erp` create one, and returns the first
/// attempt of its delivery as the attempts endpoint shows it.
async fn first_attempt_to(
    app: &TestApp,
    (erp, crm): (&CreatedKey, &CreatedKey),
    name: &str,
    url: &str,
) -> Value {
    let sub = app
        .subscribe(
            crm,
            json!({"name": name, "url": url, "events": ["vendor.created"]}),
        )
        .await;
    let sub_id = sub["id"].as_str().unwrap();
    assert_eq!(app.post(erp, &vendor(name)).await.status, 200);
    let items = deliveries_until(app, &crm.api_token, sub_id, |d| !d.is_empty()).await;
    let path = format!(
        "/api/v1/webhooks/{sub_id}/deliveries/{}/attempts",
        items[0]["id"].as_str().unwrap()
    );
    let answer = app.rest(&crm.api_token, "GET", &path, None).await;
    answer.body["data"][0].clone()
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_new_one_during_the_overlap() {
    let app = spawn_app().await;
    let (erp, crm) = (
        app.create_key("acme", "erp").await,
        app.create_key("acme", "crm").await,
    );
    let receiver = Receiver::start().await;
    let sub = app
        .subscribe(
            &crm,
            json!({"name": "crm", "url": receiver.url, "events": ["vendor.created"]}),
        )
        .await;
    let sub_id = sub["id"].as_str().unwrap();
    let old = sub["secret"].as_str().unwrap().to_string();
    let path = format!("/api/v1/webhooks/{sub_id}/rotate-secret");
    let rotated = app
        .rest(
            &crm.api_token,
            "POST",
            &path,
            Some(json!({"overlap_secs": 3600})),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new = rotated.body["data"]["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert!(rotated.body["data"]["secret_rotation_overlap_until"].is_string());

    assert_eq!(app.post(&erp, &vendor("Bolt")).await.status, 200);
    let got = receiver.wait_for(1).await;
    let d = &got[0];
    let ts = d.header("x-webhook-timestamp");
    let sign = |secret: &str| crypto::hmac_hex(secret.as_bytes(), &[ts.as_bytes(), b".", &d.body]);
    let signatures: Vec<&str> = d.header("x-webhook-signature").split(' ').collect();
    assert_eq!(
        signatures,
        [sign(&new), sign(&old)],
        "the new secret's first"
    );
    let standard: Vec<&str> = d.header("webhook-signature").split(' ').collect();
    assert_eq!(standard.len(), 2);
    assert!(standard.iter().all(|s| s.starts_with("v1,")));

    // Without an overlap only the new secret signs.
    let rotated = app
        .rest(
            &crm.api_token,
            "POST",
            &path,
            Some(json!({"overlap_secs": 0})),
        )
        .await;
    let newest = rotated.body["data"]["secret"].as_str().unwrap().to_string();
    assert_eq!(app.post(&erp, &vendor("Nut")).await.status, 200);
    let got = receiver.wait_for(2).await;
    let d = &got[1];
    let ts = d.header("x-webhook-timestamp");
    let expected = crypto::hmac_hex(newest.as_bytes(), &[ts.as_bytes(), b".", &d.body]);
    assert_eq!(d.header("x-webhook-signature"), expected);
    let short = app
        .rest(
            &crm.api_token,
            "POST",
            &path,
            Some(json!({"secret": "too-short"})),
        )
        .await;
    assert_eq!((short.status, short.code()), (400, "secret_too_short"));
}

#[tokio::test]
async fn the_company_hears_when_a_subscription_is_disabled_or_a_delivery_given_up() {
    let app = spawn_app_with(&[("HOOKGATE_RETRY_SCHEDULE", "0")]).await;
    let (erp, crm, ops) = (
        app.create_key("acme", "erp").await,
        app.create_key("acme", "crm").await,
        app.create_key("acme", "ops").await,
    );
    let (gone, refusing, watcher) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    gone.answer(&[410]);
    refusing.answer(&[400]);
    let gone_sub = app
        .subscribe(
            &crm,
            json!({"name": "gone", "url": gone.url, "events": ["vendor.created", "webhook.*"]}),
        )
        .await;
    app.subscribe(
        &crm,
        json!({"name": "refusing", "url": refusing.url, "events": ["vendor.created"]}),
    )
    .await;
    app.subscribe(
        &ops,
        json!({"name": "ops", "url": watcher.url,
               "events": ["webhook.disabled", "delivery.exhausted"]}),
    )
    .await;
    assert_eq!(app.post(&erp, &vendor("Bolt")).await.status, 200);
    let told = watcher.wait_for(3).await;
    let by_type = |t: &str| -> Vec<Value> {
        told.iter()
            .map(|r| r.json())
            .filter(|e| e["event_type"] == t)
            .collect()
    };
    let disabled = by_type("webhook.disabled");
    assert_eq!(disabled.len(), 1, "{told:?}");
    assert_eq!(disabled[0]["data"]["subscription_id"], gone_sub["id"]);
    assert!(
        disabled[0]["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("410")
    );
    let exhausted = by_type("delivery.exhausted");
    assert_eq!(exhausted.len(), 2, "the 410 and the 400 were both given up");
    assert!(
        exhausted
            .iter()
            .any(|e| e["data"]["last_status_code"] == 400)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        gone.events().len(),
        1,
        "never told about itself: {:?}",
        gone.events().iter().map(|r| r.json()).collect::<Vec<_>>()
    );
}
