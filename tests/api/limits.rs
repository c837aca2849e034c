//! Every request is bounded: no body is read before authentication, bodies have deadlines and
//! a shared budget, shutdown is not held by a stalled upload, and failed authentications
//! (REST tokens included) are limited per client address. Driven over raw TCP where a client
//! has to misbehave in ways an HTTP library will not.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Opens a connection and sends a request's headers and the first part of its body.
async fn upload(app: &TestApp, head: &str, body_part: &[u8]) -> TcpStream {
    let addr = app.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body_part).await.unwrap();
    stream
}

/// Request head for `path` with a declared body length and extra header lines.
fn head(method: &str, path: &str, content_length: usize, headers: &[String]) -> String {
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {content_length}\r\n"
    );
    for h in headers {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text
}

/// The head of a signed inbound request for `body`.
fn signed_head(key: &hookgate::keys::CreatedKey, body: &[u8]) -> String {
    let ts = now();
    head(
        "POST",
        "/webhooks/inbound",
        body.len(),
        &[
            format!("x-api-key: {}", key.key_id),
            format!("x-webhook-timestamp: {ts}"),
            format!("x-webhook-signature: {}", sign(&key.secret, ts, body)),
        ],
    )
}

struct RawResponse {
    status: u16,
    headers: String,
    body: Value,
}

impl RawResponse {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// Reads one response (head and a Content-Length body) within `limit`.
async fn response(stream: &mut TcpStream, limit: Duration) -> RawResponse {
    tokio::time::timeout(limit, async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed without an answer");
            buf.extend_from_slice(&chunk[..n]);
        };
        let headers = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let status = headers[9..12].parse().unwrap();
        let length: usize = headers
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed inside the answer");
            buf.extend_from_slice(&chunk[..n]);
        }
        RawResponse {
            status,
            body: serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or(Value::Null),
            headers,
        }
    })
    .await
    .expect("an answer in time")
}

#[tokio::test]
async fn requests_that_fail_authentication_are_answered_without_reading_their_bodies() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "erp").await;
    // Each declares 1 MiB and sends 16 KiB of it, then stalls: the answer must not wait for
    // the rest (REST used to read the whole body before looking at the token).
    let mut streams = Vec::new();
    for i in 0..40 {
        let headers = match i % 4 {
            0 => vec![],
            1 => vec!["authorization: Bearer hkt_unknown".to_string()],
            2 => vec!["x-api-key: hk_unknown".to_string()],
            _ => vec![],
        };
        let path = if i % 4 >= 2 {
            "/webhooks/inbound"
        } else {
            "/api/v1/webhooks"
        };
        let h = head("POST", path, 1 << 20, &headers);
        streams.push(upload(&app, &h, &[b' '; 16 << 10]).await);
    }
    for stream in &mut streams {
        let answer = response(stream, Duration::from_secs(5)).await;
        assert_eq!(answer.status, 401, "{}", answer.body);
        assert!(answer.headers.contains("connection: close"));
    }
    // Meanwhile a real request goes through at once.
    let started = Instant::now();
    let sent = app
        .rest(&key.api_token, "GET", "/api/v1/webhooks", None)
        .await;
    assert_eq!(sent.status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_trickling_body_gets_408_within_the_body_deadline() {
    let app = spawn_app_with(&[("HOOKGATE_BODY_TIMEOUT_SECS", "1")]).await;
    let key = app.create_key("acme", "erp").await;
    let body = serde_json::to_vec(&envelope("test.connection", json!({"test": true}))).unwrap();
    let started = Instant::now();
    let mut inbound = upload(&app, &signed_head(&key, &body), &body[..10]).await;
    let rest_body = br#"{"names": ["Welding"]}"#;
    let mut rest = upload(
        &app,
        &head(
            "POST",
            "/api/v1/skills",
            rest_body.len(),
            &[format!("authorization: Bearer {}", key.api_token)],
        ),
        &rest_body[..3],
    )
    .await;
    // A byte every 200 ms keeps both alive but never finishes them in time.
    let trickle = async {
        for i in 10..body.len().min(30) {
            let _ = inbound.write_all(&body[i..=i]).await;
            let _ = rest.write_all(&rest_body[3..4]).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(1500), trickle).await;
    let inbound_answer = response(&mut inbound, Duration::from_secs(3)).await;
    let rest_answer = response(&mut rest, Duration::from_secs(3)).await;
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(
        (inbound_answer.status, inbound_answer.code()),
        (408, "body_timeout")
    );
    assert_eq!(
        (rest_answer.status, rest_answer.code()),
        (408, "body_timeout")
    );
    app.settle().await;
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM ingest_log WHERE status = 408 AND error_code = 'body_timeout'"
        )
        .await,
        1,
        "the refused request is in the ingest log"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM skills").await,
        0,
        "nothing of it was applied"
    );
}

#[tokio::test]
async fn the_request_deadline_bounds_a_body_within_its_own_deadline() {
    let app = spawn_app_with(&[
        ("HOOKGATE_BODY_TIMEOUT_SECS", "30"),
        ("HOOKGATE_REQUEST_TIMEOUT_SECS", "1"),
    ])
    .await;
    let key = app.create_key("acme", "erp").await;
    let body = serde_json::to_vec(&envelope("test.connection", json!({}))).unwrap();
    let started = Instant::now();
    let mut stalled = upload(&app, &signed_head(&key, &body), &body[..5]).await;
    let answer = response(&mut stalled, Duration::from_secs(3)).await;
    assert_eq!((answer.status, answer.code()), (408, "request_timeout"));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn shutdown_is_not_held_by_a_stalled_upload() {
    let mut app = spawn_app().await;
    let key = app.create_key("acme", "erp").await;
    let body = serde_json::to_vec(&envelope("test.connection", json!({}))).unwrap();
    let mut stalled = upload(&app, &signed_head(&key, &body), &body[..5]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    app.begin_shutdown();
    let answer = response(&mut stalled, Duration::from_secs(5)).await;
    assert_eq!((answer.status, answer.code()), (503, "shutting_down"));
    assert!(answer.headers.contains("retry-after: 1"));
    // The grace period is 30 s; the stalled upload must not hold it.
    tokio::time::timeout(Duration::from_secs(5), app.stop())
        .await
        .expect("shutdown finishes promptly");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn bodies_in_flight_share_a_budget_and_the_excess_gets_503() {
    let app = spawn_app_with(&[
        ("HOOKGATE_MAX_BODY_BYTES", "4096"),
        ("HOOKGATE_MAX_BODY_BYTES_IN_FLIGHT", "8192"),
    ])
    .await;
    let key = app.create_key("acme", "erp").await;
    let filler = |n: usize| {
        let mut body = serde_json::to_vec(&envelope("test.connection", json!({}))).unwrap();
        body.resize(n, b' ');
        body
    };
    // Two uploads of 4 KiB each hold the whole budget while they stall.
    let big = filler(4096);
    let mut holders = Vec::new();
    for _ in 0..2 {
        holders.push(upload(&app, &signed_head(&key, &big), &big[..100]).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let small = filler(200);
    let busy = app.send(app.signed(&key, &small)).await;
    assert_eq!(
        (busy.status, busy.code()),
        (503, "server_busy"),
        "{}",
        busy.body
    );
    assert_eq!(busy.header("retry-after"), Some("1"));
    // Once one of them finishes, there is room again.
    holders[0].write_all(&big[100..]).await.unwrap();
    let finished = response(&mut holders[0], Duration::from_secs(3)).await;
    assert_eq!(finished.status, 200, "{}", finished.body);
    let sent = app.send(app.signed(&key, &small)).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
}

#[tokio::test]
async fn unknown_rest_tokens_count_as_failed_authentications() {
    let app = spawn_app_with(&[("HOOKGATE_AUTH_FAILURES_PER_MINUTE", "3")]).await;
    let key = app.create_key("acme", "erp").await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let sent = app.rest("hkt_guess", "GET", "/api/v1/webhooks", None).await;
        statuses.push((sent.status, sent.code().to_string()));
    }
    let codes: Vec<(u16, &str)> = statuses.iter().map(|(s, c)| (*s, c.as_str())).collect();
    assert_eq!(
        codes,
        [
            (401, "token_invalid"),
            (401, "token_invalid"),
            (401, "token_invalid"),
            (429, "too_many_auth_failures"),
            (429, "too_many_auth_failures"),
        ]
    );
    // The blocked address cannot use a valid token, or an inbound key, either.
    let blocked = app
        .rest(&key.api_token, "GET", "/api/v1/webhooks", None)
        .await;
    assert_eq!(
        (blocked.status, blocked.code()),
        (429, "too_many_auth_failures")
    );
    let wait: u64 = blocked.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let inbound = app
        .post(&key, &envelope("test.connection", json!({})))
        .await;
    assert_eq!(inbound.status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_vendor_address_is_quick_and_healthz_stays_responsive() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "erp").await;
    // About 100 KB of words in comma-separated parts: joining every word prefix of each part
    // (as the address splitter once did) took seconds of CPU on the runtime's threads.
    let words = "Suite ".repeat(4_000);
    let address =
        format!("1500 Industrial Parkway, {words}, {words}, Chicago, {words}IL 60601, {words}");
    assert!(address.len() > 90_000);
    let envelope = envelope(
        "vendor.created",
        json!({"vendor_name": "Bolt", "address": address}),
    );
    let started = Instant::now();
    let post = app.post(&key, &envelope);
    let probe = async {
        let mut slowest = Duration::ZERO;
        while started.elapsed() < Duration::from_millis(1500) {
            let asked = Instant::now();
            assert_eq!(app.status_of("/healthz").await, 200);
            slowest = slowest.max(asked.elapsed());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        slowest
    };
    let (sent, slowest) = tokio::join!(post, probe);
    assert!(
        [200, 400].contains(&sent.status),
        "{} {}",
        sent.status,
        sent.body
    );
    assert!(
        slowest < Duration::from_millis(500),
        "healthz took {slowest:?}"
    );
    app.settle().await;
    let took = app
        .count("SELECT MAX(latency_us) FROM ingest_log WHERE event_type = 'vendor.created'")
        .await;
    assert!(took < 1_000_000, "the request took {took} µs");
}

#[tokio::test]
async fn a_body_full_of_violations_gets_a_small_answer() {
    let app = spawn_app().await;
    let key = app.create_key("acme", "erp").await;
    // About 480 KB of entries that are each wrong twice, with long values quoted in messages.
    let entries: Vec<Value> = (0..2_000)
        .map(|_| json!({"entry_date": "d".repeat(200), "hours": 99}))
        .collect();
    let body = serde_json::to_vec(&envelope(
        "timesheet.created",
        json!({"emp_number": 5, "entries": entries}),
    ))
    .unwrap();
    assert!(body.len() > 400_000);
    let response = app.signed(&key, &body).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let bytes = response.bytes().await.unwrap();
    assert!(bytes.len() < 64 * 1024, "answer of {} bytes", bytes.len());
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(answer["error"]["code"], "validation_failed");
    let details = answer["error"]["details"].as_array().unwrap();
    assert_eq!(
        details.len(),
        101,
        "100 violations and the count of the rest"
    );
    assert!(details[100]["omitted"].as_u64().unwrap() > 3_000);
    let distinct: std::collections::HashSet<String> =
        details.iter().map(Value::to_string).collect();
    assert_eq!(distinct.len(), details.len(), "no violation listed twice");
}

#[tokio::test]
async fn fuzzy_search_over_huge_names_with_the_longest_term_is_quick() {
    let app = spawn_app().await;
    let key = app
        .create_key_with(
            "acme",
            "erp",
            hookgate::keys::KeyOptions {
                per_minute: Some(1000),
                ..Default::default()
            },
        )
        .await;
    for i in 0..3 {
        let name = format!("Tower {i} {}", "lorem ipsum dolor ".repeat(50_000));
        let sent = app
            .post(
                &key,
                &envelope(
                    "project.created",
                    json!({"project_code": format!("P{i}"), "project_name": name, "customer_name": "Acme", "location_name": "HQ"}),
                ),
            )
            .await;
        assert_eq!(sent.status, 200, "{}", sent.body);
    }
    let term: String = "qwertyuiop ".repeat(24).chars().take(255).collect();
    let started = Instant::now();
    let found = app
        .post(
            &key,
            &envelope("project.search", json!({"search_term": term})),
        )
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.body["count"], 0);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let typo = app
        .post(
            &key,
            &envelope("project.search", json!({"search_term": "Towr 1"})),
        )
        .await;
    assert_eq!(typo.body["count"], 1, "{}", typo.body["count"]);
    let too_long = app
        .post(
            &key,
            &envelope("project.search", json!({"search_term": "x".repeat(256)})),
        )
        .await;
    assert_eq!(
        (too_long.status, too_long.code()),
        (400, "validation_failed")
    );
    assert_eq!(
        too_long.body["error"]["details"][0]["path"],
        "/data/search_term"
    );
}
