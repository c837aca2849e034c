//! The storage contract: what every backend behind `Store` must do, checked through the
//! interface alone. Runs on SQLite, and on PostgreSQL when `HOOKGATE_TEST_POSTGRES` is set;
//! several writer connections are used where the backend has them, so the concurrency rules
//! (claims, counters, publishing order) are exercised for real.

use std::collections::HashSet;

use hookgate::store::{
    Claim, IngestEntry, IngestFilter, NewEvent, Record, Store, StoreError, StoreOptions,
    StoredResponse, SubscriptionRow, SubscriptionStatus,
};
use serde_json::json;

use crate::test_db::TestDb;

async fn open() -> (Store, TestDb) {
    let db = TestDb::fresh().await;
    let store = Store::open(&StoreOptions {
        database: db.url.clone(),
        max_batch: 64,
        writers: 4,
        wal_restart_bytes: 64 << 20,
        max_database_bytes: 0,
    })
    .expect("open store");
    (store, db)
}

fn record(id: &str, key: &str) -> Record {
    Record {
        record_id: id.to_string(),
        natural_key: key.to_string(),
        data: json!({"name": key}),
        created_at: 1,
        updated_at: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_taken_natural_key_is_a_conflict_and_a_failed_job_undoes_only_itself() {
    let (store, _db) = open().await;
    store
        .write(|tx| tx.insert_record("co", "vendor", &record("rec_1", "acme"), "k"))
        .await
        .unwrap();
    let again = store
        .write(|tx| tx.insert_record("co", "vendor", &record("rec_2", "acme"), "k"))
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");

    // Concurrent creates of one natural key: exactly one wins, the others conflict.
    let mut tasks = Vec::new();
    for n in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("rec_race_{n}");
            store
                .write(move |tx| tx.insert_record("co", "vendor", &record(&id, "race"), "k"))
                .await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(won, 1);

    // A job that fails after writing leaves nothing; `atomically` undoes its part only.
    let failed = store
        .write(|tx| {
            tx.insert_record("co", "vendor", &record("rec_3", "gone"), "k")?;
            Err::<(), _>(StoreError::Query("the job gives up".into()))
        })
        .await;
    assert!(failed.is_err());
    store
        .write(|tx| {
            tx.insert_record("co", "vendor", &record("rec_4", "kept"), "k")?;
            let undone: Result<(), StoreError> = tx.atomically(|| {
                tx.insert_record("co", "vendor", &record("rec_5", "undone"), "k")?;
                Err(StoreError::Query("rejected".into()))
            });
            assert!(undone.is_err());
            Ok(())
        })
        .await
        .unwrap();
    let found = store
        .read(|r| {
            Ok([
                r.get_record("co", "vendor", "gone")?.is_some(),
                r.get_record("co", "vendor", "kept")?.is_some(),
                r.get_record("co", "vendor", "undone")?.is_some(),
            ])
        })
        .await
        .unwrap();
    assert_eq!(found, [false, true, false]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counters_are_unique_under_concurrent_writers() {
    let (store, _db) = open().await;
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .write(|tx| tx.next_counter("co", "work_order"))
                .await
                .unwrap()
        }));
    }
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.push(task.await.unwrap());
    }
    numbers.sort();
    assert_eq!(numbers, (1..=40).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idempotency_key_is_claimed_once_and_then_answers() {
    let (store, _db) = open().await;
    let claim = |hash: &'static str, now: i64| {
        let store = store.clone();
        async move {
            store
                .write(move |tx| {
                    let claim = tx.claim_idempotency_key("hk_1", "idem-1", hash, now, now - 100)?;
                    if matches!(claim, Claim::Claimed) {
                        let answer = StoredResponse {
                            status: 200,
                            body: br#"{"ok":true}"#.to_vec(),
                            request_hash: hash.to_string(),
                        };
                        tx.store_response("hk_1", "idem-1", &answer, now)?;
                    }
                    Ok(claim)
                })
                .await
                .unwrap()
        }
    };
    // Copies at once: one claims, every other finds its answer.
    let copies: Vec<_> = (0..12).map(|_| tokio::spawn(claim("h1", 1_000))).collect();
    let mut claimed = 0;
    for copy in copies {
        match copy.await.unwrap() {
            Claim::Claimed => claimed += 1,
            Claim::Answered(stored) => assert_eq!(stored.status, 200),
        }
    }
    assert_eq!(claimed, 1);
    // Past its window, the key can be claimed again.
    assert!(matches!(claim("h2", 2_000).await, Claim::Claimed));
}

fn event<'a>(id: &'a str, record: &'a str, payload: &'a serde_json::Value) -> NewEvent<'a> {
    NewEvent {
        event_id: id,
        company_id: "co",
        origin_key_id: Some("hk_1"),
        inbound_event_id: None,
        about_subscription_id: None,
        event_type: "vendor.updated",
        entity: "vendor",
        record_id: record,
        project_code: None,
        payload,
        created_at: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_are_published_in_an_order_no_reader_can_pass_an_event_in() {
    let (store, _db) = open().await;
    let mut writers = Vec::new();
    for n in 0..200 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let id = format!("evt_{n}");
            let payload = json!({"n": n});
            store
                .write(move |tx| tx.insert_event(&event(&id, "rec_1", &payload)).map(|_| ()))
                .await
                .unwrap()
        }));
    }
    // A reader follows the published order while the writers are still at it.
    let mut seen: Vec<i64> = Vec::new();
    let mut cursor = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while seen.len() < 200 && std::time::Instant::now() < deadline {
        store.write(|tx| tx.publish_events(50)).await.unwrap();
        let page = store
            .read(move |r| r.events_after("co", cursor, 1000))
            .await
            .unwrap();
        for e in page {
            assert_eq!(e.position, cursor + 1, "positions have no holes");
            cursor = e.position;
            seen.push(e.seq);
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(seen.len(), 200, "every event was read exactly once");
    let distinct: HashSet<_> = seen.iter().collect();
    assert_eq!(distinct.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingest_log_filters_page_from_the_newest_entry() {
    let (store, _db) = open().await;
    store
        .write(|tx| {
            for n in 0..30i64 {
                tx.insert_ingest_entry(&IngestEntry {
                    received_at: n,
                    request_id: format!("req_{n}"),
                    company_id: Some(if n % 2 == 0 { "a" } else { "b" }.into()),
                    key_id: Some(format!("k{}", n % 3)),
                    status: if n % 5 == 0 { 401 } else { 200 },
                    event_type: Some("vendor.created".into()),
                    ..IngestEntry::default()
                })?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let filter = IngestFilter {
        company_id: Some("a".into()),
        status: Some(401),
        limit: 100,
        ..IngestFilter::default()
    };
    let (recent, all) = store
        .read(move |r| {
            Ok((
                r.recent_ingest_entries(&filter, 2)?,
                r.ingest_entries(&filter)?,
            ))
        })
        .await
        .unwrap();
    let ids = |entries: &[IngestEntry]| -> Vec<String> {
        entries.iter().map(|e| e.request_id.clone()).collect()
    };
    assert_eq!(ids(&all), ["req_0", "req_10", "req_20"]);
    assert_eq!(
        ids(&recent),
        ["req_10", "req_20"],
        "the newest two, oldest first"
    );
}

fn subscription(id: &str) -> SubscriptionRow {
    SubscriptionRow {
        id: id.to_string(),
        company_id: "co".into(),
        owner_key_id: "hk_2".into(),
        name: id.to_string(),
        url: "https://example.com/hook".into(),
        events: vec!["*".into()],
        secret_enc: vec![1, 2, 3],
        previous_secret_enc: None,
        previous_secret_until: None,
        payload: "full".into(),
        projects: None,
        basic_auth_enc: None,
        rate_limit: None,
        verify_url: false,
        status: SubscriptionStatus::Active,
        disabled_reason: None,
        consecutive_failures: 0,
        cursor_position: 0,
        created_at: 1,
        updated_at: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscription_is_leased_by_one_node_until_its_lease_runs_out() {
    let (store, _db) = open().await;
    store
        .write(|tx| {
            for id in ["wh_1", "wh_2", "wh_3"] {
                tx.save_subscription(&subscription(id))?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let lease = |node: &'static str, now: i64| {
        let store = store.clone();
        async move {
            store
                .write(move |tx| tx.lease_subscriptions(node, now, now + 10_000))
                .await
                .unwrap()
                .len()
        }
    };
    let (a, b) = tokio::join!(lease("node_a", 1_000), lease("node_b", 1_000));
    assert_eq!(a + b, 3, "each subscription has exactly one holder");
    // The holder renews; the other gets nothing until the lease runs out.
    let holder = if a == 3 { "node_a" } else { "node_b" };
    let other = if a == 3 { "node_b" } else { "node_a" };
    assert_eq!(lease(holder, 5_000).await, 3);
    assert_eq!(lease(other, 14_000).await, 0);
    assert_eq!(lease(other, 15_001).await, 3, "taken over after the lease");
    // The cursor moves only for the node holding the lease now, and only forward.
    let (new_holder, lost) = (other, holder);
    store
        .write(move |tx| {
            tx.advance_cursor("wh_1", new_holder, 7)?;
            tx.advance_cursor("wh_1", lost, 9)?;
            tx.advance_cursor("wh_1", new_holder, 5)
        })
        .await
        .unwrap();
    let cursor = store
        .read(|r| Ok(r.subscription("co", "wh_1")?.unwrap().cursor_position))
        .await
        .unwrap();
    assert_eq!(cursor, 7);
}
