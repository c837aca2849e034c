//! The operator's CLI beside the REST API: subscriptions managed from the command line, the
//! delivery log shown and retried (one or by filter), provider secrets added to a key, filters
//! that refuse unknown values with exit code 2, `check-config` reporting everything at once,
//! completions, and the same names for a key's parts everywhere.

use std::process::Stdio;
use std::time::{Duration, Instant};

use hookgate::crypto;
use hookgate::keys::KeyOptions;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::cli::*;
use crate::helpers::*;
use crate::receiver::Receiver;

/// Runs `command` (words split at spaces) with `--json`; the one object it printed.
async fn json_of(app: &TestApp, command: &str) -> Value {
    let args: Vec<&str> = command.split_whitespace().chain(["--json"]).collect();
    one_json(&args, &run_ok(app, &args).await)
}

/// Runs `command` with `--json`; the objects it printed, one a line.
async fn lines_of(app: &TestApp, command: &str) -> Vec<Value> {
    let args: Vec<&str> = command.split_whitespace().chain(["--json"]).collect();
    json_lines(&args, &run_ok(app, &args).await)
}

/// Waits until `done` holds for the subscription's delivery log (REST), or 10 s pass.
async fn deliveries_until(
    app: &TestApp,
    token: &str,
    path: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sent = app.rest(token, "GET", path, None).await;
        let items = sent.body["data"].as_array().cloned().unwrap_or_default();
        if done(&items) || Instant::now() > deadline {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn webhooks_are_managed_from_the_cli_as_through_the_api() {
    let app = spawn_app().await;
    let sender = app.create_key("cli-hooks", "erp").await;
    let owner = app.create_key("cli-hooks", "crm").await;
    let receiver = Receiver::start().await;

    let created = json_of(
        &app,
        &format!(
            "webhooks create --key {} --name crm-sync --url {} --event vendor.*",
            owner.key_id, receiver.url
        ),
    )
    .await;
    let id = text(&created, "id");
    let path = format!("/api/v1/webhooks/{id}");
    assert!(text(&created, "secret").starts_with("whsec_"), "{created}");
    assert_eq!(created["owner_key_id"], owner.key_id.as_str());

    // The API shows the same subscription, field for field (less the secret shown once).
    let rest = app.rest(&owner.api_token, "GET", &path, None).await;
    let shown = json_of(&app, &format!("webhooks show {id}")).await;
    assert_eq!(shown, rest.body["data"], "CLI and REST disagree");

    // Changes go through the same checks and reach the running server.
    let updated = json_of(
        &app,
        &format!("webhooks update {id} --name crm-thin --payload thin --rate-limit 50"),
    )
    .await;
    assert_eq!(
        (
            updated["name"].clone(),
            updated["payload"].clone(),
            updated["rate_limit"].clone()
        ),
        (json!("crm-thin"), json!("thin"), json!(50.0))
    );
    let bad = run(
        &app,
        &["webhooks", "update", &id, "--event", "vendor.exploded"],
    )
    .await;
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(bad.stderr.contains("unknown event type"), "{}", bad.stderr);
    assert!(
        bad.stderr.contains("vendor.created"),
        "allowed values listed: {}",
        bad.stderr
    );

    assert_eq!(
        json_of(&app, &format!("webhooks disable {id}")).await["status"],
        "disabled"
    );
    let view = app.rest(&owner.api_token, "GET", &path, None).await;
    assert_eq!(view.body["data"]["enabled"], false);
    assert_eq!(
        json_of(&app, &format!("webhooks enable {id}")).await["status"],
        "active"
    );

    // A test send, delivered by the server.
    let queued = json_of(&app, &format!("webhooks test {id}")).await;
    let delivery_id = text(&queued, "delivery_id");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !receiver
        .received()
        .iter()
        .any(|r| r.header("x-webhook-event") == "webhook.test")
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        receiver
            .received()
            .iter()
            .any(|r| r.header("x-webhook-id").contains("evt_")
                && r.header("x-webhook-event") == "webhook.test"),
        "the test delivery {delivery_id} did not arrive"
    );

    // An event sent while it was disabled is not fanned out to it; recover sends it.
    run_ok(&app, &["webhooks", "disable", &id]).await;
    let missed = app
        .post(
            &sender,
            &envelope("vendor.created", json!({"vendor_name": "Missed"})),
        )
        .await;
    assert_eq!(missed.status, 200, "{}", missed.body);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.events().is_empty(), "delivered while disabled");
    run_ok(&app, &["webhooks", "enable", &id]).await;
    let recovered = json_of(&app, &format!("webhooks recover {id} --since 1h")).await;
    assert_eq!(recovered, json!({"queued": 1}));
    receiver.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = receiver.events();
    assert_eq!(got.len(), 1, "the missed event arrives once");
    // Thin payload, as updated above.
    assert_eq!(
        got[0].json(),
        json!({"entity": "vendor", "id": missed.body["record_id"]})
    );

    let listed = json_lines(
        &["webhooks"],
        &run_ok(&app, &["webhooks", "list", "--json"]).await,
    );
    assert_eq!(listed.len(), 1);
    run_ok(&app, &["webhooks", "delete", &id]).await;
    let gone = app.rest(&owner.api_token, "GET", &path, None).await;
    assert_eq!(gone.status, 404);
    let missing = run(&app, &["webhooks", "enable", &id]).await;
    assert_eq!(missing.code, Some(1));
    assert!(missing.stderr.contains(&id), "{}", missing.stderr);
}

#[tokio::test]
async fn deliveries_are_shown_and_retried_by_filter_from_the_cli() {
    let app = spawn_app().await;
    let sender = app.create_key("cli-retry", "erp").await;
    let owner = app.create_key("cli-retry", "crm").await;
    let receiver = Receiver::start().await;
    receiver.answer(&[400, 400]);
    let sub = app
        .subscribe(
            &owner,
            json!({"name": "r", "url": receiver.url, "events": ["vendor.*"]}),
        )
        .await;
    let id = sub["id"].as_str().unwrap().to_string();
    for name in ["One", "Two"] {
        let sent = app
            .post(
                &sender,
                &envelope("vendor.created", json!({"vendor_name": name})),
            )
            .await;
        assert_eq!(sent.status, 200, "{}", sent.body);
    }
    let path = format!("/api/v1/webhooks/{id}/deliveries?status=failed");
    let failed = deliveries_until(&app, &owner.api_token, &path, |d| d.len() == 2).await;
    assert_eq!(failed.len(), 2, "{failed:?}");

    // show: the same view as the API's, with the attempt history.
    let one = failed[0]["id"].as_str().unwrap();
    let mut shown = json_of(&app, &format!("deliveries show {one}")).await;
    let history = shown
        .as_object_mut()
        .unwrap()
        .remove("history")
        .expect("deliveries show lists the attempts");
    assert_eq!(history.as_array().unwrap().len(), 1);
    assert_eq!(history[0]["status_code"], 400);
    assert_eq!(shown, failed[0]);
    let rest = app
        .rest(
            &owner.api_token,
            "GET",
            &format!("/api/v1/webhooks/{id}/deliveries/{one}"),
            None,
        )
        .await;
    assert_eq!(rest.body["data"], shown);

    // list filters.
    assert_eq!(
        lines_of(
            &app,
            "deliveries list --status failed --event-type vendor.created --since 1h"
        )
        .await
        .len(),
        2
    );
    assert!(
        lines_of(
            &app,
            "deliveries list --status failed --event-type vendor.deleted"
        )
        .await
        .is_empty()
    );
    assert!(
        lines_of(&app, "deliveries list --since 2999-01-01T00:00:00Z")
            .await
            .is_empty()
    );

    // Bulk retry answers how many were queued, and the server sends them again.
    let queued = json_of(
        &app,
        &format!("deliveries retry --webhook {id} --status failed --since 1h"),
    )
    .await;
    assert_eq!(queued, json!({"queued": 2}));
    let path = format!("/api/v1/webhooks/{id}/deliveries?status=succeeded");
    let sent_again = deliveries_until(&app, &owner.api_token, &path, |d| d.len() == 2).await;
    assert_eq!(sent_again.len(), 2, "{sent_again:?}");
    assert_eq!(receiver.events().len(), 4, "two failures and two retries");

    // One by id; the same through REST's bulk retry.
    assert_eq!(
        json_of(&app, &format!("deliveries retry {one}")).await["id"],
        one
    );
    let bulk = app
        .rest(
            &owner.api_token,
            "POST",
            &format!("/api/v1/webhooks/{id}/retry"),
            Some(json!({"status": "failed"})),
        )
        .await;
    assert_eq!(
        (bulk.status, bulk.body["data"]["queued"].clone()),
        (202, json!(0))
    );

    // Unknown filter values: exit 2 naming the allowed ones; nothing runs.
    for (args, allowed) in [
        (vec!["deliveries", "list", "--status", "done"], "succeeded"),
        (
            vec!["deliveries", "retry", "--event-type", "vendor.exploded"],
            "vendor.created",
        ),
        (
            vec!["deliveries", "retry", "--status", "in_flight"],
            "failed",
        ),
        (
            vec!["deliveries", "list", "--since", "yesterday"],
            "RFC 3339",
        ),
        (vec!["tail", "--status", "42"], "100..=599"),
        (
            vec!["tail", "--event-type", "vendor.exploded"],
            "vendor.created",
        ),
    ] {
        let out = run(&app, &args).await;
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(allowed),
            "{args:?} does not name {allowed:?}: {}",
            out.stderr
        );
    }
    let nothing = run(&app, &["deliveries", "retry"]).await;
    assert_eq!(
        nothing.code,
        Some(2),
        "a bare retry must name a delivery or a filter"
    );
}

#[tokio::test]
async fn keys_update_adds_a_square_key_that_the_running_server_verifies() {
    let app = spawn_app().await;
    let key = app
        .create_key_with("cli-update", "pos", KeyOptions::default())
        .await;
    let body = serde_json::to_vec(&test_connection()).unwrap();
    let square_sig = crypto::hmac_base64(
        b"sq_added_later",
        &[b"https://hooks.example.com/webhooks/inbound", &body],
    );
    let square = || {
        app.client
            .post(format!("{}/webhooks/inbound", app.base))
            .header("X-API-Key", &key.key_id)
            .header("Content-Type", "application/json")
            .header("X-Webhook-Source", "square")
            .header("x-square-hmacsha256-signature", &square_sig)
            .body(body.clone())
    };
    let before = app.send(square()).await;
    assert_eq!(before.status, 403, "{}", before.body);

    let updated = json_of(
        &app,
        &format!(
            "keys update {} --square-signature-key sq_added_later",
            key.key_id
        ),
    )
    .await;
    assert_eq!(
        updated["provider_secrets"],
        json!({"square_signature_key": true, "quickbooks_verifier_token": false, "dynamics_key": false})
    );
    let deadline = Instant::now() + CACHE_WINDOW;
    let after = loop {
        let sent = app.send(square()).await;
        if sent.status == 200 || Instant::now() > deadline {
            break sent;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        after.status, 200,
        "the added Square key does not verify: {}",
        after.body
    );
    // Stored sealed, never in the clear.
    let mut stored = app
        .row(&format!(
            "SELECT square_key_enc FROM api_keys WHERE id = '{}'",
            key.key_id
        ))
        .await;
    let sealed = stored.opt_blob(0).unwrap().unwrap();
    assert!(!sealed.windows(14).any(|w| w == b"sq_added_later"));

    let removed = json_of(&app, &format!("keys update {} --remove square", key.key_id)).await;
    assert_eq!(removed["provider_secrets"]["square_signature_key"], false);
    let out = run(&app, &["keys", "update", "hk_nope", "--dynamics-key", "k"]).await;
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("hk_nope"), "{}", out.stderr);
}

#[tokio::test]
async fn check_config_reports_every_bad_setting_with_its_variable_and_value() {
    let app = spawn_app().await;
    let mut bad = hookgate(&app);
    bad.env("HOOKGATE_MASTER_KEY", "abc")
        .env("HOOKGATE_INBOUND_PER_HOUR", "lots")
        .env("HOOKGATE_LISTEN", "nowhere");
    let out = run_with(bad, &["check-config"]).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    for expected in [
        "`master_key` = <hidden, 3 characters> (set by HOOKGATE_MASTER_KEY)",
        "`rate_limit.inbound_per_hour` = \"lots\" (set by HOOKGATE_INBOUND_PER_HOUR)",
        "`listen` = \"nowhere\" (set by HOOKGATE_LISTEN)",
    ] {
        assert!(
            out.stderr.contains(expected),
            "{expected:?} not in {}",
            out.stderr
        );
    }
    assert!(
        out.stderr.contains("3 configuration errors"),
        "{}",
        out.stderr
    );

    let ok = run_ok(&app, &["check-config"]).await;
    assert!(ok.contains("configuration is valid"), "{ok}");
    assert!(ok.contains("\"master_key\":\"<redacted>\""), "{ok}");
    assert!(
        !ok.contains(MASTER_KEY),
        "check-config printed the master key"
    );
}

#[tokio::test]
async fn completions_need_no_configuration() {
    let app = spawn_app().await;
    for shell in ["bash", "zsh", "fish"] {
        let mut cmd = hookgate(&app);
        cmd.env("HOOKGATE_MASTER_KEY", "not a key");
        let out = run_with(cmd, &["completions", shell]).await;
        assert!(out.success, "{shell}: {}", out.stderr);
        for word in ["deliveries", "webhooks", "event-type"] {
            assert!(out.stdout.contains(word), "{shell} completion lacks {word}");
        }
    }
    let out = run(&app, &["completions", "tcsh"]).await;
    assert_eq!(out.code, Some(2));
}

/// The labels of `label: value` lines.
fn labels(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().split_once(':').map(|(label, _)| label.to_string()))
        .filter(|l| !l.contains(' '))
        .collect()
}

/// The next line of a child's output, within 20 s.
async fn next_line<R: tokio::io::AsyncRead + Unpin>(
    lines: &mut tokio::io::Lines<BufReader<R>>,
) -> String {
    tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("no line within 20 s")
        .unwrap()
        .expect("the output ended")
}

#[tokio::test]
async fn serve_prints_the_key_under_the_names_keys_create_uses_and_logs_its_settings_and_requests()
{
    let app = spawn_app().await;
    let created = run_ok(
        &app,
        &["keys", "create", "--company", "names", "--name", "n"],
    )
    .await;

    // A first start on an empty database prints the dev key under the same names.
    let dir = tempfile::tempdir().unwrap();
    let mut serve = hookgate(&app);
    serve
        .env("HOOKGATE_DATABASE", dir.path().join("fresh.db"))
        .env("HOOKGATE_LISTEN", "127.0.0.1:0")
        .env("HOOKGATE_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .arg("serve");
    let mut child = serve.spawn().expect("spawn serve");
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut printed = String::new();
    while !printed.contains("api_token:") {
        printed.push_str(&next_line(&mut out).await);
        printed.push('\n');
    }
    let from_serve = labels(&printed);
    let from_create: Vec<String> = labels(&created)
        .into_iter()
        .filter(|l| from_serve.contains(l))
        .collect();
    assert_eq!(
        from_serve,
        vec!["key_id", "secret", "api_token"],
        "{printed}"
    );
    assert_eq!(from_create, from_serve, "{created}");
    let json = run_ok(
        &app,
        &[
            "keys",
            "create",
            "--company",
            "names",
            "--name",
            "j",
            "--json",
        ],
    )
    .await;
    let json: Value = serde_json::from_str(json.trim()).unwrap();
    for label in &from_serve {
        assert!(json[label].is_string(), "--json lacks {label}: {json}");
    }

    // Its log: the effective settings (secrets hidden), then one line per request.
    let mut logged = Vec::new();
    let address = loop {
        let line: Value = serde_json::from_str(&next_line(&mut err).await).unwrap();
        logged.push(line.clone());
        if line["fields"]["message"] == "hookgate listening" {
            break line["fields"]["listen"].as_str().unwrap().to_string();
        }
    };
    let settings = logged
        .iter()
        .find(|l| l["fields"]["message"] == "effective settings")
        .unwrap_or_else(|| panic!("no effective settings in {logged:?}"));
    let settings: Value =
        serde_json::from_str(settings["fields"]["settings"].as_str().unwrap()).unwrap();
    assert_eq!(settings["master_key"], "<redacted>");
    assert_eq!(settings["listen"], "127.0.0.1:0");
    assert!(!format!("{logged:?}").contains(MASTER_KEY));
    let answer = reqwest::get(format!("http://{address}/api/v1/webhooks"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let request = loop {
        let line: Value = serde_json::from_str(&next_line(&mut err).await).unwrap();
        if line["fields"]["message"] == "rest request" {
            break line;
        }
    };
    assert_eq!(request["level"], "INFO");
    assert_eq!(
        (
            request["fields"]["path"].clone(),
            request["fields"]["status"].clone()
        ),
        (json!("/api/v1/webhooks"), json!(401))
    );
    child.kill().await.unwrap();
}
