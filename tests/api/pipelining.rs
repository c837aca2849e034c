//! HTTP/1.1 pipelining of deliveries (`outbound.pipeline_depth`, issue 11): when it is on,
//! deliveries go several to a connection and still arrive whole, signed, once per attempt and
//! in order per record; requests a receiver leaves unanswered (closing the connection, or
//! dropping what was pipelined) are sent again, and are not counted as attempts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use hookgate::crypto;
use hookgate::keys::CreatedKey;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;
use crate::receiver::{Receiver, header_value};

/// Pipelining on, and room in the inbound limits for the bursts of creates.
const PIPELINED: &[(&str, &str)] = &[
    ("HOOKGATE_DELIVERY_PIPELINE_DEPTH", "8"),
    ("HOOKGATE_INBOUND_PER_MINUTE", "100000"),
    ("HOOKGATE_INBOUND_PER_HOUR", "100000"),
];

/// Creates `count` projects, `concurrency` at a time, so that deliveries queue up together.
async fn create_projects(app: &TestApp, key: &CreatedKey, count: usize, concurrency: usize) {
    futures::stream::iter(0..count)
        .map(|n| async move {
            let sent = app.post(key, &project_created(&format!("PRJ-{n}"))).await;
            assert_eq!(sent.status, 200, "{}", sent.body);
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
}

/// The subscription's deliveries recorded as succeeded (and, with `first_attempt`, at their
/// first attempt), once there are `expected` of them or 15 s have passed. Answered is not yet
/// recorded: the recorder writes in batches after the answers.
async fn succeeded_deliveries(
    app: &TestApp,
    subscription_id: &str,
    first_attempt: bool,
    expected: usize,
) -> i64 {
    let only_first = if first_attempt {
        " AND attempts = 1"
    } else {
        ""
    };
    let sql = format!(
        "SELECT COUNT(*) FROM deliveries WHERE subscription_id = '{subscription_id}' AND status = 'succeeded'{only_first}"
    );
    for _ in 0..300 {
        if app.count(&sql).await >= expected as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.settle().await;
    app.count(&sql).await
}

/// What the observing receiver saw of one request.
struct Seen {
    id: String,
    body: Vec<u8>,
    timestamp: String,
    signature: String,
    pipelined: bool,
}

#[tokio::test]
async fn pipelined_deliveries_arrive_signed_once_and_in_order() {
    let app = spawn_app_with(PIPELINED).await;
    let a = app.create_key("acme", "erp").await;
    let b = app.create_key("acme", "crm").await;
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let receiver = Receiver::observing(Arc::new(move |arrival| {
        let text =
            |name| String::from_utf8_lossy(arrival.header(name).unwrap_or_default()).into_owned();
        log.lock().unwrap().push(Seen {
            id: text("webhook-id"),
            body: arrival.body.to_vec(),
            timestamp: text("x-webhook-timestamp"),
            signature: text("x-webhook-signature"),
            pipelined: arrival.pipelined,
        });
    }))
    .await;
    let sub = app
        .subscribe(
            &b,
            json!({"name": "crm", "url": receiver.url, "events": ["project.*"]}),
        )
        .await;
    let secret = sub["secret"].as_str().unwrap().to_string();

    // One record changed ten times in sequence, beside many records created at once.
    let updates = async {
        app.post(&a, &project_created("ORDERED")).await;
        for n in 1..=10 {
            let change = envelope(
                "project.updated",
                json!({"project_code": "ORDERED", "description": format!("v{n}")}),
            );
            assert_eq!(app.post(&a, &change).await.status, 200);
        }
    };
    tokio::join!(updates, create_projects(&app, &a, 150, 16));
    let expected = 150 + 11;
    for _ in 0..200 {
        if seen.lock().unwrap().len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.settle().await;

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(seen.len(), expected, "every event once");
    let ids: std::collections::HashSet<&str> = seen.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), expected, "no event twice");
    assert!(
        seen.iter().any(|s| s.pipelined),
        "some requests came before the answer to the one before them"
    );
    for s in seen.iter() {
        let expected =
            crypto::hmac_hex(secret.as_bytes(), &[s.timestamp.as_bytes(), b".", &s.body]);
        assert_eq!(
            s.signature, expected,
            "each pipelined request carries its own signature"
        );
    }
    let versions: Vec<String> = seen
        .iter()
        .map(|s| serde_json::from_slice::<Value>(&s.body).unwrap())
        .filter(|body| body["event_type"] == "project.updated")
        .map(|body| {
            body["data"]["changes"]["description"]["new"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let in_order: Vec<String> = (1..=10).map(|n| format!("v{n}")).collect();
    assert_eq!(versions, in_order, "one record's changes arrive in order");

    let sub_id = sub["id"].as_str().unwrap();
    let succeeded = succeeded_deliveries(&app, sub_id, true, expected).await;
    assert_eq!(
        succeeded, expected as i64,
        "each delivery recorded as one successful attempt"
    );
    let attempts = app
        .count(&format!(
            "SELECT COUNT(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.subscription_id = '{sub_id}' AND a.status_code = 200"
        ))
        .await;
    assert_eq!(attempts, expected as i64);
}

/// A receiver that answers one request per connection and closes it, whatever else was sent
/// on it: the webhook-ids it answered, and how many connections brought more than one request.
async fn one_answer_per_connection() -> (String, Arc<Mutex<Vec<String>>>, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let answered: Arc<Mutex<Vec<String>>> = Arc::default();
    let crowded = Arc::new(AtomicU64::new(0));
    let (log, more) = (answered.clone(), crowded.clone());
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let (log, more) = (log.clone(), more.clone());
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let id = loop {
                    let mut chunk = [0u8; 16 * 1024];
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    let mut slots = [httparse::EMPTY_HEADER; 32];
                    let mut request = httparse::Request::new(&mut slots);
                    if let Ok(httparse::Status::Complete(head)) = request.parse(&buffer) {
                        let header = |name| {
                            let value = header_value(request.headers, name).unwrap();
                            String::from_utf8_lossy(value).into_owned()
                        };
                        let length: usize = header("content-length").parse().unwrap();
                        if buffer.len() > head + length {
                            more.fetch_add(1, Ordering::Relaxed);
                        }
                        if buffer.len() >= head + length {
                            break header("webhook-id");
                        }
                    }
                };
                log.lock().unwrap().push(id);
                let answer = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok";
                let _ = socket.write_all(answer).await;
            });
        }
    });
    (url, answered, crowded)
}

#[tokio::test]
async fn requests_left_unanswered_by_a_closed_connection_go_again_without_an_attempt() {
    let app = spawn_app_with(PIPELINED).await;
    let a = app.create_key("acme", "erp").await;
    let b = app.create_key("acme", "crm").await;
    let (url, answered, crowded) = one_answer_per_connection().await;
    let sub = app
        .subscribe(
            &b,
            json!({"name": "crm", "url": url, "events": ["project.created"]}),
        )
        .await;
    create_projects(&app, &a, 60, 16).await;
    let sub_id = sub["id"].as_str().unwrap();
    let succeeded = succeeded_deliveries(&app, sub_id, false, 60).await;
    assert_eq!(succeeded, 60, "every delivery succeeded");
    let attempts = app
        .count(&format!(
            "SELECT COUNT(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.subscription_id = '{sub_id}'"
        ))
        .await;
    assert_eq!(
        attempts, 60,
        "a request sent again after a close is not another attempt"
    );
    assert!(
        crowded.load(Ordering::Relaxed) > 0,
        "some connections carried requests behind the one answered"
    );
    let answered = answered.lock().unwrap();
    let ids: std::collections::HashSet<&String> = answered.iter().collect();
    assert_eq!(ids.len(), 60, "each event was answered");
    assert_eq!(answered.len(), 60, "and only once");
}

/// A receiver that answers one request for each read and ignores whatever else came with it,
/// keeping the connection open: requests one after another are served, those pipelined behind
/// the first are left unanswered.
async fn one_answer_per_read() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut chunk = [0u8; 64 * 1024];
                while let Ok(n) = socket.read(&mut chunk).await {
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if n == 0 || socket.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn a_receiver_that_drops_pipelined_requests_gets_them_one_by_one_and_stays_enabled() {
    let mut env = PIPELINED.to_vec();
    env.push(("HOOKGATE_DELIVERY_TIMEOUT_SECS", "1"));
    let app = spawn_app_with(&env).await;
    let a = app.create_key("acme", "erp").await;
    let b = app.create_key("acme", "crm").await;
    let url = one_answer_per_read().await;
    let sub = app
        .subscribe(
            &b,
            json!({"name": "crm", "url": url, "events": ["project.*"]}),
        )
        .await;
    create_projects(&app, &a, 40, 16).await;
    let sub_id = sub["id"].as_str().unwrap();
    let succeeded = succeeded_deliveries(&app, sub_id, false, 40).await;
    assert_eq!(succeeded, 40, "every delivery succeeded");
    let failed = app
        .count(&format!(
            "SELECT COUNT(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.subscription_id = '{sub_id}' AND a.outcome <> 'succeeded'"
        ))
        .await;
    assert_eq!(
        failed, 0,
        "what pipelining left unanswered is not a failed attempt"
    );
    let status = app
        .count(&format!(
            "SELECT COUNT(*) FROM subscriptions WHERE id = '{sub_id}' AND status = 'active'"
        ))
        .await;
    assert_eq!(status, 1, "the subscription stays active");
}
