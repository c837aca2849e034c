//! The storage core as a client sees it: a full database never acknowledges what it did not
//! store, readiness follows whether writes are possible, and old history is pruned.

use std::sync::Arc;

use hookgate::keys::KeyOptions;
use serde_json::json;

use crate::helpers::{envelope, on_postgres, spawn_app, spawn_app_with};

/// A database this small fills up after a few dozen large creates.
const SMALL_DATABASE: &str = "1048576";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_database_never_acknowledges_what_it_did_not_store() {
    if on_postgres() {
        return; // the size limit that makes "full" reproducible is SQLite's
    }
    let app = Arc::new(spawn_app_with(&[("HOOKGATE_MAX_DATABASE_BYTES", SMALL_DATABASE)]).await);
    let options = KeyOptions {
        per_minute: Some(100_000),
        per_hour: Some(100_000),
        ..KeyOptions::default()
    };
    let key = Arc::new(app.create_key_with("acme", "erp", options).await);
    let notes = "n".repeat(24 * 1024);

    // 16 concurrent senders of large creates, until the database is full.
    let mut senders = Vec::new();
    for sender in 0..16 {
        let (app, key, notes) = (app.clone(), key.clone(), notes.clone());
        senders.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for n in 0..12 {
                let name = format!("Customer {sender}-{n}");
                let body = envelope("customer.created", json!({"name": name, "notes": notes}));
                let sent = app.post(&key, &body).await;
                answers.push((name, sent));
            }
            answers
        }));
    }
    let mut stored = 0;
    let mut refused = 0;
    for sender in senders {
        for (name, sent) in sender.await.unwrap() {
            let record = app.record(&key.company_id, "customer", &name).await;
            match sent.status {
                200 => {
                    assert!(
                        record.is_some(),
                        "{name} was acknowledged but is not stored"
                    );
                    stored += 1;
                }
                503 => {
                    assert_eq!(sent.code(), "storage_unavailable", "{}", sent.body);
                    assert!(sent.header("retry-after").is_some());
                    assert!(record.is_none(), "{name} was refused but is stored");
                    refused += 1;
                }
                other => panic!("{name}: unexpected {other}: {}", sent.body),
            }
        }
    }
    assert!(stored > 0, "nothing fit in the database");
    assert!(refused > 0, "the database never filled up");

    let ready = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "readiness while the database is full");

    // Room returns: the gateway takes writes again by itself.
    app.state.store.set_max_database_bytes(0).await.unwrap();
    let ready = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "readiness once there is room again");
    let body = envelope("customer.created", json!({"name": "After", "notes": notes}));
    let sent = app.post(&key, &body).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert!(
        app.record(&key.company_id, "customer", "After")
            .await
            .is_some()
    );
}

#[tokio::test]
async fn history_past_its_retention_period_is_pruned() {
    // The server keeps its default periods, so that its own housekeeping (which runs at start)
    // cannot prune before the rows are counted; the prune below keeps the ingest log 0 days.
    let app = spawn_app().await;
    let key = app.create_key("acme", "erp").await;
    for n in 0..3 {
        let sent = app
            .post(
                &key,
                &envelope("customer.created", json!({"name": format!("C{n}")})),
            )
            .await;
        assert_eq!(sent.status, 200, "{}", sent.body);
    }
    app.settle().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM ingest_log").await, 3);
    assert_eq!(app.count("SELECT COUNT(*) FROM events").await, 3);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let mut config = app.state.config.clone();
    config.retention.ingest_log_days = 0;
    let pruned = hookgate::retention::prune(&app.state.store, &config)
        .await
        .unwrap();
    assert_eq!(
        pruned, 3,
        "only the ingest log has a zero-day retention here"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM ingest_log").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM events").await, 3);
    assert_eq!(app.count("SELECT COUNT(*) FROM records").await, 3);
}
