//! `kill -9` of a gateway with deliveries in flight (issue 11), on the test's database: the
//! binary under test takes creates from eight senders and is killed a third of the way in,
//! then starts again on the same database. Every create it acknowledged is stored, and every
//! event stored reaches the subscriber with its own `webhook-id` (sends that were in flight or
//! not yet recorded go again with the same id), within the delivery timeout and a few seconds.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hookgate::keys::KeyOptions;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::nodes::{open_store, signed, start_node};
use crate::receiver::Receiver;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deliveries_in_flight_at_a_kill_arrive_after_the_restart_with_their_ids() {
    let app = spawn_app().await;
    let unlimited = KeyOptions {
        per_minute: Some(1_000_000),
        per_hour: Some(10_000_000),
        ..KeyOptions::default()
    };
    let erp = Arc::new(app.create_key_with("acme", "erp", unlimited.clone()).await);
    let crm = app.create_key_with("acme", "crm", unlimited).await;
    let receiver = Receiver::start().await;
    app.subscribe(
        &crm,
        // Slower than the creates, so that the kill leaves deliveries not yet sent as well as
        // sends in flight and sends not yet recorded.
        json!({"name": "crm", "url": receiver.url, "events": ["customer.created"], "rate_limit": 20}),
    )
    .await;
    let db = app.stop().await;
    let mut node = start_node(&db.url).await;

    let total = 400;
    let sent = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::new();
    let mut senders = Vec::new();
    for s in 0..8 {
        let (client, base, erp, sent) =
            (client.clone(), node.base.clone(), erp.clone(), sent.clone());
        senders.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for n in 0..total / 8 {
                let body = envelope(
                    "customer.created",
                    json!({"name": format!("Customer {s}-{n}")}),
                );
                if let Ok(r) = signed(&client, &base, &erp, &body).send().await
                    && r.status() == 200
                    && let Ok(bytes) = r.bytes().await
                {
                    let answer: Value = serde_json::from_slice(&bytes).unwrap();
                    acknowledged.push(answer["record_id"].as_str().unwrap().to_string());
                }
                sent.fetch_add(1, Ordering::SeqCst);
            }
            acknowledged
        }));
    }
    while sent.load(Ordering::SeqCst) < total / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    node.child.start_kill().expect("SIGKILL the gateway");
    node.child.wait().await.unwrap();
    let mut acknowledged = Vec::new();
    for s in senders {
        acknowledged.extend(s.await.unwrap());
    }
    assert!(
        !acknowledged.is_empty(),
        "some creates were acknowledged before the kill"
    );

    // What the killed process stored, read with the gateway down.
    let store = open_store(&db.url);
    let rows = store
        .read(|r| {
            r.query_rows(
                "SELECT record_id, event_id FROM events WHERE event_type = 'customer.created'",
            )
        })
        .await
        .unwrap();
    drop(store);
    let (records, stored): (HashSet<String>, HashSet<String>) = rows
        .into_iter()
        .map(|mut row| (row.text(0).unwrap(), row.text(1).unwrap()))
        .unzip();
    for record_id in &acknowledged {
        assert!(
            records.contains(record_id),
            "acknowledged {record_id} is stored"
        );
    }
    let delivered_before = distinct_ids(&receiver);

    let _node = start_node(&db.url).await;
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline && !stored.is_subset(&distinct_ids(&receiver)) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivered = distinct_ids(&receiver);
    let missing: Vec<&String> = stored.difference(&delivered).collect();
    assert!(
        missing.is_empty(),
        "{} of {} stored events never arrived ({} had before the restart), e.g. {:?}",
        missing.len(),
        stored.len(),
        delivered_before.len(),
        missing.first()
    );
    assert!(
        delivered.is_subset(&stored),
        "every webhook-id that arrived is a stored event's"
    );
    assert!(
        delivered_before.len() < stored.len(),
        "the kill left deliveries outstanding ({} stored, {} delivered before the restart)",
        stored.len(),
        delivered_before.len()
    );
}

/// The distinct `webhook-id`s of the deliveries the receiver got.
fn distinct_ids(receiver: &Receiver) -> HashSet<String> {
    receiver
        .events()
        .iter()
        .map(|r| r.header("webhook-id").to_string())
        .collect()
}
