//! The fan-out phases: subscriptions of a second API key of the company point at a local
//! receiver (the one the API tests use, in its observing mode), the connections send
//! `vendor.created` changes, and the receiver counts deliveries until every expected one has
//! arrived.

use std::collections::HashSet;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookgate::keys::CreatedKey;

use crate::BoxError;
use crate::client::Conn;
use crate::load::{PhaseResult, Window, run_phase};
use crate::server::Server;
use crate::support::receiver::{Arrival, Receiver};
use crate::workloads::{Target, Workload};

/// How long, at most, to wait after the last send for the deliveries still expected...
const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);
/// ... and how long without any new delivery before giving up earlier.
const STALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Deliveries counted per run (the first segment of the receiver's path, `/{run}/{sub}`).
#[derive(Default)]
pub struct RunCounts {
    requests: AtomicU64,
    /// Nanoseconds after the counter's epoch of the last request (0: none yet).
    last_ns: AtomicU64,
    /// Hashes of the distinct (subscription, `X-Webhook-ID`) pairs.
    distinct: Mutex<HashSet<u64>>,
}

/// A local receiver and what it counted.
pub struct Deliveries {
    pub receiver: Receiver,
    epoch: Instant,
    runs: Arc<Vec<RunCounts>>,
}

impl Deliveries {
    /// A receiver counting `runs` runs; `also` sees every request too.
    pub async fn start(
        runs: usize,
        also: impl Fn(&Arrival<'_>) + Send + Sync + 'static,
    ) -> Deliveries {
        let epoch = Instant::now();
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
            let id = arrival
                .headers
                .get("x-webhook-id")
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            let mut hasher = DefaultHasher::new();
            (sub, id).hash(&mut hasher);
            counts.requests.fetch_add(1, Ordering::Relaxed);
            counts
                .distinct
                .lock()
                .expect("receiver lock")
                .insert(hasher.finish());
            let ns = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            counts.last_ns.fetch_max(ns, Ordering::Relaxed);
        }))
        .await;
        Deliveries {
            receiver,
            epoch,
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

    /// When the last request of `run` arrived.
    pub fn last(&self, run: usize) -> Option<Instant> {
        match self.runs[run].last_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(self.epoch + Duration::from_nanos(ns)),
        }
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
    /// [`STALL_TIMEOUT`] without progress.
    pub async fn drain(&self, run: usize, expected: u64) {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let (mut seen, mut progress_at) = (0, Instant::now());
        loop {
            let now = Instant::now();
            let delivered = self.distinct(run);
            if delivered > seen {
                (seen, progress_at) = (delivered, now);
            }
            if delivered >= expected
                || now >= deadline
                || now.duration_since(progress_at) >= STALL_TIMEOUT
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Deletes the subscriptions `ids` of `subscriber`.
pub async fn unsubscribe(
    rest: &mut Conn,
    subscriber: &CreatedKey,
    ids: &[String],
) -> Result<(), BoxError> {
    for id in ids {
        let (status, body) = rest
            .rest(
                "DELETE",
                &format!("/api/v1/webhooks/{id}"),
                &subscriber.api_token,
                None,
            )
            .await?;
        if status != 200 {
            return Err(format!("deleting subscription {id}: HTTP {status} {body}").into());
        }
    }
    Ok(())
}

/// What one fan-out phase measured.
pub struct FanoutResult {
    /// The inbound side: `vendor.created` sent by every connection.
    pub inbound: PhaseResult,
    /// Deliveries expected: changes applied (200 responses) × subscriptions.
    pub expected: u64,
    /// Distinct deliveries received.
    pub delivered: u64,
    /// Requests received beyond the distinct deliveries (re-sends).
    pub duplicates: u64,
    /// From the first send to the last delivery received.
    pub elapsed: Option<Duration>,
    /// Deliveries still pending or in flight in the outbox when the phase gave up waiting.
    pub pending: Option<i64>,
}

impl FanoutResult {
    pub fn deliveries_per_sec(&self) -> f64 {
        match self.elapsed {
            Some(elapsed) if !elapsed.is_zero() => self.delivered as f64 / elapsed.as_secs_f64(),
            _ => f64::NAN,
        }
    }

    pub fn missing(&self) -> u64 {
        self.expected.saturating_sub(self.delivered)
    }
}

/// Subscribes `subscriptions` receivers (owned by `subscriber`) to `vendor.created`, sends
/// changes on every connection for `drive`, waits until the receiver has every expected
/// delivery, then deletes the subscriptions.
pub async fn run_fanout(
    server: &Server,
    target: &Target,
    subscriber: &CreatedKey,
    deliveries: &Deliveries,
    (run, subscriptions, drive): (usize, usize, Duration),
    conns: Vec<Conn>,
) -> Result<(Vec<Conn>, FanoutResult), BoxError> {
    let mut rest = Conn::connect(target.addr).await?;
    let ids = deliveries
        .subscribe(
            &mut rest,
            subscriber,
            run,
            subscriptions,
            &["vendor.created"],
        )
        .await?;
    let (batches_before, jobs_before) = server.batch_stats();
    let started = Instant::now();
    let workload = Workload::VendorCreated { run };
    let (conns, mut inbound) =
        run_phase(&workload, target, conns, Window::new(Duration::ZERO, drive)).await;
    inbound.label = format!("fanout x{subscriptions} (inbound)");
    let expected = inbound.all_ok * subscriptions as u64;
    deliveries.drain(run, expected).await;
    let (batches_after, jobs_after) = server.batch_stats();
    inbound.batches = batches_after - batches_before;
    inbound.jobs = jobs_after - jobs_before;
    let delivered = deliveries.distinct(run);
    let pending = if delivered < expected {
        server
            .state
            .store
            .read(|r| r.pending_deliveries())
            .await
            .ok()
    } else {
        None
    };
    unsubscribe(&mut rest, subscriber, &ids).await?;
    let result = FanoutResult {
        expected,
        delivered,
        duplicates: deliveries.requests(run).saturating_sub(delivered),
        elapsed: deliveries.last(run).map(|last| last - started),
        pending,
        inbound,
    };
    Ok((conns, result))
}
