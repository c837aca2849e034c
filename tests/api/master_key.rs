//! The master key: a start (or a CLI write) with a key that is not the database's is refused
//! with a message naming `HOOKGATE_MASTER_KEY`; `/readyz` is never ready with a wrong key; and
//! `hookgate master-key rotate` re-seals every stored secret under a new key.

use std::time::Duration;

use hookgate::app::AppState;
use hookgate::crypto::{self, MasterKey};
use hookgate::keys::KeyOptions;
use serde_json::json;

use crate::helpers::*;
use crate::receiver::Receiver;

const OTHER_KEY: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

/// Runs the `hookgate` binary on `db` with `master_key`.
async fn hookgate(db: &TestDb, master_key: &str, args: &[&str]) -> std::process::Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .env("HOOKGATE_DATABASE", &db.url)
        .env("HOOKGATE_MASTER_KEY", master_key)
        .env("HOOKGATE_CONFIG", config_path())
        .env_remove("RUST_LOG")
        .env_remove("HOOKGATE_NEW_MASTER_KEY")
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("hookgate finishes")
        .expect("hookgate runs")
}

fn build_with_key(db: &TestDb, master_key: &str) -> Result<std::sync::Arc<AppState>, String> {
    AppState::build(test_config(&db.url, &[("HOOKGATE_MASTER_KEY", master_key)]))
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_wrong_master_key_is_refused_at_start_and_by_the_cli() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "erp").await;
    let db = app.stop().await;

    let refused = build_with_key(&db, OTHER_KEY).err().expect("refused");
    assert!(refused.contains("HOOKGATE_MASTER_KEY"), "{refused}");
    let cli = hookgate(
        &db,
        OTHER_KEY,
        &["keys", "create", "--company", "acme", "--name", "x"],
    )
    .await;
    assert!(!cli.status.success());
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(stderr.contains("HOOKGATE_MASTER_KEY"), "{stderr}");
    let app = start(db, &[]).await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM api_keys").await,
        1,
        "nothing was sealed under the wrong key"
    );
    assert_eq!(
        app.post(&key, &envelope("test.connection", json!({})))
            .await
            .status,
        200
    );
    let db = app.stop().await;

    // A database from before check values: the stored secrets decide, then a check value is
    // kept.
    if let Some(path) = db.sqlite_path() {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute("DELETE FROM meta", []).unwrap();
        assert!(build_with_key(&db, OTHER_KEY).is_err());
        let app = start(db, &[]).await;
        assert_eq!(app.count("SELECT COUNT(*) FROM meta").await, 1);
    }
}

#[tokio::test]
async fn readyz_is_not_ready_once_the_database_has_another_key() {
    let app = spawn_app().await;
    assert_eq!(app.status_of("/readyz").await, 200);
    // As if `master-key rotate` ran while this server kept the old key.
    let current = MasterKey::from_hex(MASTER_KEY).unwrap();
    let other = MasterKey::from_hex(OTHER_KEY).unwrap();
    hookgate::master_key::rotate(&app.state.store, current, other)
        .await
        .unwrap();
    assert_eq!(app.status_of("/readyz").await, 503);
}

#[tokio::test]
async fn rotation_reseals_every_secret_under_the_new_key() {
    let receiver = Receiver::start().await;
    let app = spawn_app().await;
    let sender = app
        .create_key_with(
            "acme",
            "erp",
            KeyOptions {
                quickbooks_verifier_token: Some("qb-token".into()),
                ..Default::default()
            },
        )
        .await;
    let subscriber = app.create_key("acme", "crm").await;
    let secret = "a-subscription-secret-of-32-chars";
    app.subscribe(
        &subscriber,
        json!({"name": "crm", "url": receiver.url, "events": ["vendor.created"], "secret": secret,
               "basic_auth": {"username": "hook", "password": "s3cret"}}),
    )
    .await;
    app.state
        .keys
        .update_intake(
            &sender.key_id,
            vec![("stripe".into(), Some("whsec_native".into()))],
            None,
        )
        .await
        .unwrap();
    let db = app.stop().await;

    let bad = hookgate(
        &db,
        MASTER_KEY,
        &["master-key", "rotate", "--new-key", "nothex"],
    )
    .await;
    assert!(!bad.status.success());
    let rotated = hookgate(
        &db,
        MASTER_KEY,
        &["master-key", "rotate", "--new-key", OTHER_KEY],
    )
    .await;
    let stdout = String::from_utf8_lossy(&rotated.stdout);
    assert!(
        rotated.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    assert!(stdout.contains("re-sealed 6 secret(s)"), "{stdout}");

    assert!(
        build_with_key(&db, MASTER_KEY).is_err(),
        "the old key is refused"
    );
    let app = start(db, &[("HOOKGATE_MASTER_KEY", OTHER_KEY)]).await;
    let reopened = app.state.keys.find(&sender.key_id).await.unwrap().unwrap();
    assert_eq!(
        reopened.provider_secret("stripe"),
        Some(&b"whsec_native"[..]),
        "a native-intake secret is re-sealed too"
    );
    // The key's signing secret and QuickBooks token, and the subscription's secret and
    // basic-auth password, all open under the new key.
    let sent = app
        .post(
            &sender,
            &envelope("vendor.created", json!({"vendor_name": "Bolt"})),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let body = br#"{"event_type":"test.connection","data":{}}"#;
    let quickbooks = app
        .send(
            app.client
                .post(format!("{}/webhooks/inbound", app.base))
                .header("X-API-Key", &sender.key_id)
                .header("Content-Type", "application/json")
                .header("X-Webhook-Source", "quickbooks")
                .header(
                    "intuit-signature",
                    crypto::hmac_base64(b"qb-token", &[body]),
                )
                .body(body.to_vec()),
        )
        .await;
    assert_eq!(
        quickbooks.body["signature_verified"], true,
        "{}",
        quickbooks.body
    );
    let got = receiver.wait_for(1).await;
    let ts = got[0].header("x-webhook-timestamp");
    assert_eq!(
        got[0].header("x-webhook-signature"),
        crypto::hmac_hex(secret.as_bytes(), &[ts.as_bytes(), b".", &got[0].body])
    );
    let expected = format!("Basic {}", crypto::base64_encode(b"hook:s3cret"));
    assert_eq!(got[0].header("authorization"), expected);
}
