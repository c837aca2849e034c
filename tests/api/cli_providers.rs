//! The CLI of native intake and kept requests, run as a separate process beside the server:
//! `keys update --provider-secret`, `mappings`, `trigger`, `inspect`, `replay`, `listen`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use hookgate::providers::{catalog, signature};
use serde_json::{Value, json};

use crate::cli::{hookgate, one_json, run, run_ok};
use crate::helpers::*;
use crate::receiver::Receiver;

/// Sends Stripe's example event for `key`, signed now with `secret` by the catalog's signer.
async fn stripe_event(app: &TestApp, key_id: &str, secret: &str, id: &str) -> Sent {
    let stripe = catalog().get("stripe").unwrap();
    let body = json!({"id": id, "type": "customer.created", "data": {"object": {"name": "Acme"}}})
        .to_string();
    let target = format!("/webhooks/inbound/stripe/{key_id}");
    let headers = signature::sign(
        stripe,
        secret.as_bytes(),
        &signature::Request {
            method: "POST",
            target: &target,
            headers: &[],
            body: body.as_bytes(),
            public_url: "https://hooks.example.com",
        },
        now(),
    )
    .unwrap();
    let mut request = app
        .client
        .post(format!("{}{target}", app.base))
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    app.send(request).await
}

/// Retries `check` until it holds or the key cache window passes.
async fn eventually<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "not within the key-cache window"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn keys_update_sets_and_removes_provider_secrets_for_the_running_server() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "billing").await;
    let args = [
        "keys",
        "update",
        &key.key_id,
        "--provider-secret",
        "stripe=whsec_cli_secret",
        "--json",
    ];
    let shown = one_json(&args, &run_ok(&app, &args).await);
    assert_eq!(shown["native"]["providers"], json!(["stripe"]));
    eventually(|| async {
        stripe_event(&app, &key.key_id, "whsec_cli_secret", "evt_1")
            .await
            .status
            == 200
    })
    .await;

    let bad = run(
        &app,
        &[
            "keys",
            "update",
            &key.key_id,
            "--provider-secret",
            "nobody=x",
        ],
    )
    .await;
    assert!(
        !bad.success && bad.stderr.contains("unknown provider"),
        "{}",
        bad.stderr
    );
    run_ok(
        &app,
        &[
            "keys",
            "update",
            &key.key_id,
            "--remove-provider-secret",
            "stripe",
        ],
    )
    .await;
    eventually(|| async {
        stripe_event(&app, &key.key_id, "whsec_cli_secret", "evt_2")
            .await
            .code()
            == "provider_secret_missing"
    })
    .await;
    let listed = run_ok(&app, &["providers", "list", "--key", &key.key_id]).await;
    assert!(
        listed.contains(&format!(
            "/webhooks/inbound/stripe/{} (secret not set)",
            key.key_id
        )),
        "{listed}"
    );
}

#[tokio::test]
async fn mappings_trigger_inspect_and_replay_from_the_command_line() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "billing").await;
    run_ok(
        &app,
        &[
            "keys",
            "update",
            &key.key_id,
            "--provider-secret",
            "stripe=whsec_cli",
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("mapping.json");
    // `name` is missing from this rule: the mapped customer fails validation.
    std::fs::write(
        &mapping,
        json!({"rules": [{"on": "customer.created", "event_type": "customer.created",
        "data": "{email: event.data.object.email}"}]})
        .to_string(),
    )
    .unwrap();
    let path = mapping.to_str().unwrap();
    run_ok(
        &app,
        &["mappings", "set", &key.key_id, "stripe", "--file", path],
    )
    .await;
    let shown = run_ok(&app, &["mappings", "get", &key.key_id, "stripe"]).await;
    assert!(shown.contains("customer.created"), "{shown}");

    // `trigger` sends Stripe's example to the running gateway, signed with the key's secret.
    let base = app.base.clone();
    let sent = run(
        &app,
        &[
            "trigger",
            "--provider",
            "stripe",
            "customer.created",
            "--url",
            &base,
            "--key",
            &key.key_id,
        ],
    )
    .await;
    assert!(!sent.success, "the mapping refuses it: {}", sent.stdout);
    assert!(sent.stdout.contains("validation_failed"), "{}", sent.stdout);
    app.settle().await;
    let id = app
        .count("SELECT MAX(id) FROM ingest_log")
        .await
        .to_string();
    let inspected = run_ok(&app, &["inspect", &id]).await;
    assert!(
        inspected.contains("stripe-signature: [redacted]"),
        "{inspected}"
    );
    assert!(
        inspected.contains("\"type\": \"customer.created\""),
        "{inspected}"
    );
    assert!(inspected.contains("validation_failed"), "{inspected}");

    std::fs::write(
        &mapping,
        json!({"rules": [{"on": "customer.created", "event_type": "customer.created",
        "data": "{name: event.data.object.name, email: event.data.object.email}"}]})
        .to_string(),
    )
    .unwrap();
    let preview = run_ok(
        &app,
        &[
            "mappings",
            "preview",
            &key.key_id,
            "stripe",
            "--mapping",
            path,
            "--body",
            &write_json(
                &dir,
                "body.json",
                json!({"type": "customer.created", "id": "evt_x",
            "data": {"object": {"name": "Riverside", "email": "a@b.example"}}}),
            ),
        ],
    )
    .await;
    assert!(
        preview.contains("\"becomes\": \"customer.created\""),
        "{preview}"
    );
    run_ok(
        &app,
        &["mappings", "set", &key.key_id, "stripe", "--file", path],
    )
    .await;
    let replayed = run_ok(&app, &["replay", &id]).await;
    assert!(replayed.contains("as 200"), "{replayed}");
    assert!(
        app.record(&key.company_id, "customer", "Riverside Logistics LLC")
            .await
            .is_some()
    );

    // An envelope type, signed with the key's signing secret.
    let sent = run_ok(
        &app,
        &[
            "trigger",
            "test.connection",
            "--url",
            &base,
            "--key",
            &key.key_id,
        ],
    )
    .await;
    assert!(sent.contains("\"signature_verified\":true"), "{sent}");
    let listed = run_ok(&app, &["trigger", "--list"]).await;
    assert!(
        listed.contains("work_order.created") && listed.contains("--provider zoom"),
        "{listed}"
    );
}

fn write_json(dir: &tempfile::TempDir, name: &str, value: Value) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test]
async fn listen_forwards_other_keys_events_signed_as_a_subscription() {
    let app = spawn_app().await;
    let erp = app.create_key("acme", "erp").await;
    let dev = app.create_key("acme", "dev").await;
    let receiver = Receiver::start().await;
    let mut listener = hookgate(&app)
        .args([
            "listen",
            "--forward-to",
            &receiver.url,
            "--key",
            &dev.key_id,
            "--secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for it to start following (it prints its secret on start).
    let stderr = listener.stderr.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stderr));
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("signed as a subscription") {
                break;
            }
        }
    })
    .await
    .expect("listen started");
    assert_eq!(app.post(&dev, &project_created("OWN-1")).await.status, 200);
    assert_eq!(app.post(&erp, &project_created("PRJ-1")).await.status, 200);
    // The other key's project (its customer and location came with the first, own, change).
    let mut got = receiver.wait_for(1).await;
    for _ in 0..200 {
        if got
            .iter()
            .any(|r| r.json()["data"]["project_code"] == "PRJ-1")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        got = receiver.events();
    }
    listener.kill().await.unwrap();
    let types: Vec<String> = got
        .iter()
        .map(|r| r.json()["event_type"].as_str().unwrap().to_string())
        .collect();
    assert!(types.contains(&"project.created".to_string()), "{types:?}");
    assert!(
        got.iter()
            .all(|r| r.json()["data"]["project_code"] != "OWN-1"),
        "the key's own change is not echoed"
    );
    // Standard Webhooks signature with the given secret, as a subscription's.
    let first = &got[0];
    let key = hookgate::crypto::base64_decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let signed = hookgate::crypto::hmac_base64(
        &key,
        &[
            first.header("webhook-id").as_bytes(),
            b".",
            first.header("webhook-timestamp").as_bytes(),
            b".",
            &first.body,
        ],
    );
    assert_eq!(first.header("webhook-signature"), format!("v1,{signed}"));
}
