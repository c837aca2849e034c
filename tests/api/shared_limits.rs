//! Rate limits shared through Redis hold in aggregate across nodes. Needs
//! `HOOKGATE_TEST_REDIS` (e.g. `redis://127.0.0.1:6379`).

use std::time::Duration;

use hookgate::keys::KeyOptions;
use hookgate::shared_limits::SharedLimits;
use serde_json::json;

use crate::helpers::{envelope, spawn_app_with, start};

pub fn redis_url() -> Option<String> {
    std::env::var("HOOKGATE_TEST_REDIS")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_budget() {
    let Some(url) = redis_url() else {
        eprintln!("shared_limits: left out (set HOOKGATE_TEST_REDIS to run it)");
        return;
    };
    let (a, b) = (
        SharedLimits::connect(&url).await.expect("redis answers"),
        SharedLimits::connect(&url).await.expect("redis answers"),
    );
    let subject = format!("test:{}", hookgate::crypto::random_id("", 8));
    let windows = [
        (10, Duration::from_secs(60)),
        (12, Duration::from_secs(3600)),
    ];
    let mut allowed = 0;
    let mut last = None;
    for n in 0..16 {
        let node = if n % 2 == 0 { &a } else { &b };
        let status = node.check(&subject, &windows).await.unwrap();
        if status.retry_after.is_none() {
            allowed += 1;
        }
        last = Some(status);
    }
    assert_eq!(allowed, 10, "10 a minute in all, not 10 per node");
    let last = last.unwrap();
    assert_eq!((last.limit, last.remaining), (10, 0));
    assert!(last.retry_after.unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_limit_holds_across_two_nodes() {
    let Some(url) = redis_url() else {
        eprintln!("shared_limits: left out (set HOOKGATE_TEST_REDIS to run it)");
        return;
    };
    let env = [("HOOKGATE_REDIS_URL", url.as_str())];
    let first = spawn_app_with(&env).await;
    let second = start(first.db.as_ref().unwrap().another_handle(), &env).await;
    let key = first
        .create_key_with(
            "acme",
            "erp",
            KeyOptions {
                per_minute: Some(10),
                per_hour: Some(1000),
                ..KeyOptions::default()
            },
        )
        .await;
    let body = envelope("test.connection", json!({"test": true}));
    let mut accepted = 0;
    for n in 0..16 {
        let node = if n % 2 == 0 { &first } else { &second };
        let sent = node.post(&key, &body).await;
        match sent.status {
            200 => accepted += 1,
            429 => assert!(sent.header("retry-after").is_some()),
            other => panic!("unexpected {other}: {}", sent.body),
        }
    }
    assert_eq!(accepted, 10, "10 a minute across both nodes, not 10 each");
}
