//! The receiving end of the outbound phases: subscriptions of a second API key of the company
//! point at a local receiver (the one the API tests use, in its observing mode), which counts
//! the distinct deliveries of each run.

use std::collections::HashSet;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookgate::keys::CreatedKey;

use crate::BoxError;
use crate::client::Conn;
use crate::support::receiver::{Arrival, Receiver};

/// How long, at most, to wait after the last send for the deliveries still expected...
const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);
/// ... and how long without any new delivery before giving up earlier.
const STALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Deliveries counted per run (the first segment of the receiver's path, `/{run}/{sub}`).
#[derive(Default)]
pub struct RunCounts {
    requests: AtomicU64,
    /// Hashes of the distinct (subscription, `X-Webhook-ID`) pairs.
    distinct: Mutex<HashSet<u64>>,
}

/// A local receiver and what it counted.
pub struct Deliveries {
    pub receiver: Receiver,
    runs: Arc<Vec<RunCounts>>,
}

impl Deliveries {
    /// A receiver counting `runs` runs; `also` sees every request too.
    pub async fn start(
        runs: usize,
        also: impl Fn(&Arrival<'_>) + Send + Sync + 'static,
    ) -> Deliveries {
        let counts: Arc<Vec<RunCounts>> =
            Arc::new((0..runs).map(|_| RunCounts::default()).collect());
        let shared = counts.clone();
        let receiver = Receiver::observing(Arc::new(move |arrival: &Arrival<'_>| {
            also(arrival);
            let mut segments = arrival.path.trim_start_matches('/').split('/');
            let run = segments.next().and_then(|s| s.parse::<usize>().ok());
            let sub = segments.next().and_then(|s| s.parse::<u32>().ok());
            let (Some(counts), Some(sub)) = (run.and_then(|r| shared.get(r)), sub) else {
                return;
            };
            let id = arrival.header("x-webhook-id").unwrap_or_default();
            let mut hasher = DefaultHasher::new();
            (sub, id).hash(&mut hasher);
            counts.requests.fetch_add(1, Ordering::Relaxed);
            counts
                .distinct
                .lock()
                .expect("receiver lock")
                .insert(hasher.finish());
        }))
        .await;
        Deliveries {
            receiver,
            runs: counts,
        }
    }

    /// Distinct deliveries received for `run`.
    pub fn distinct(&self, run: usize) -> u64 {
        self.runs[run].distinct.lock().expect("receiver lock").len() as u64
    }

    pub fn requests(&self, run: usize) -> u64 {
        self.runs[run].requests.load(Ordering::Relaxed)
    }

    /// Creates `count` subscriptions of `subscriber` to `events`, each to `/{run}/{i}` of this
    /// receiver; their ids.
    pub async fn subscribe(
        &self,
        rest: &mut Conn,
        subscriber: &CreatedKey,
        run: usize,
        count: usize,
        events: &[&str],
    ) -> Result<Vec<String>, BoxError> {
        let mut ids = Vec::with_capacity(count);
        for i in 0..count {
            let body = serde_json::json!({
                "name": format!("bench-{run}-{i}"),
                "url": format!("{}/{run}/{i}", self.receiver.base()),
                "events": events,
            });
            let (status, created) = rest
                .rest(
                    "POST",
                    "/api/v1/webhooks",
                    &subscriber.api_token,
                    Some(&body),
                )
                .await?;
            let id = created["data"]["id"]
                .as_str()
                .or(created["id"].as_str())
                .filter(|_| status == 201);
            let id =
                id.ok_or_else(|| format!("creating a subscription: HTTP {status} {created}"))?;
            ids.push(id.to_string());
        }
        Ok(ids)
    }

    /// Waits until `run` has `expected` distinct deliveries, or [`DRAIN_TIMEOUT`], or
    /// [`STALL_TIMEOUT`] without progress; whether it stopped for lack of progress.
    pub async fn drain(&self, run: usize, expected: u64) -> bool {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let (mut seen, mut progress_at) = (0, Instant::now());
        loop {
            let now = Instant::now();
            let delivered = self.distinct(run);
            if delivered > seen {
                (seen, progress_at) = (delivered, now);
            }
            let stalled = now.duration_since(progress_at) >= STALL_TIMEOUT;
            if delivered >= expected || now >= deadline || stalled {
                return stalled && delivered < expected;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
