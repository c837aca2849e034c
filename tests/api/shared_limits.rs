//! Rate limits shared through Redis hold in aggregate across nodes. Needs
//! `HOOKGATE_TEST_REDIS` (e.g. `redis://127.0.0.1:6379`).

use std::time::Duration;

use hookgate::shared_limits::SharedLimits;

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
