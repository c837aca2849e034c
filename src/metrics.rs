//! Metrics, rendered in the Prometheus text format at `GET /metrics`: the gateway's own
//! counters and histograms, its build, and the process figures of [`process`].

mod process;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use crate::catalog::InboundEvent;

/// The media type of [`Metrics::render`]'s text.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

const LATENCY_BUCKETS_SECS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            buckets: LATENCY_BUCKETS_SECS
                .iter()
                .map(|_| AtomicU64::new(0))
                .collect(),
            ..Default::default()
        }
    }

    fn observe(&self, micros: u64) {
        let secs = micros as f64 / 1e6;
        for (bound, bucket) in LATENCY_BUCKETS_SECS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, bucket) in LATENCY_BUCKETS_SECS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{braces} {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

pub struct Metrics {
    /// By (event type, or None for an unknown one; status).
    inbound: RwLock<HashMap<(Option<InboundEvent>, u16), AtomicU64>>,
    inbound_latency: Histogram,
    rate_limited: AtomicU64,
    /// By the refusal's error code (a fixed set of `&'static str`s, so the label set is bounded).
    auth_failures: Mutex<BTreeMap<&'static str, u64>>,
    idempotent_replays: AtomicU64,
    deliveries: Mutex<BTreeMap<String, u64>>,
    delivery_latency: Histogram,
    echoes_skipped: AtomicU64,
    subscriptions_disabled: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            inbound: RwLock::default(),
            inbound_latency: Histogram::new(),
            rate_limited: AtomicU64::new(0),
            auth_failures: Mutex::default(),
            idempotent_replays: AtomicU64::new(0),
            deliveries: Mutex::default(),
            delivery_latency: Histogram::new(),
            echoes_skipped: AtomicU64::new(0),
            subscriptions_disabled: AtomicU64::new(0),
        }
    }
}

/// Gauges read at scrape time from other parts of the program.
pub struct Gauges {
    pub writer_batches: u64,
    pub writer_batched_jobs: u64,
    pub outbox_pending: Option<i64>,
}

impl Metrics {
    /// Counts an inbound answer: refused authentications (401, 403) by their reason, every
    /// other answer by event type and status.
    pub fn inbound(
        &self,
        event_type: Option<&str>,
        status: u16,
        error_code: Option<&'static str>,
        latency_micros: u64,
    ) {
        self.inbound_latency.observe(latency_micros);
        if matches!(status, 401 | 403) {
            *self
                .auth_failures
                .lock()
                .expect("metrics lock")
                .entry(error_code.unwrap_or("unknown"))
                .or_default() += 1;
            return;
        }
        if status == 429 {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        // Unknown event types share one label, so clients cannot inflate the label set.
        let key = (event_type.and_then(InboundEvent::parse), status);
        let counted = match self.inbound.read().expect("metrics lock").get(&key) {
            Some(counter) => {
                counter.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        };
        if !counted {
            self.inbound
                .write()
                .expect("metrics lock")
                .entry(key)
                .or_default()
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn idempotent_replay(&self) {
        self.idempotent_replays.fetch_add(1, Ordering::Relaxed);
    }

    pub fn delivery(&self, outcome: &str, latency_micros: u64) {
        *self
            .deliveries
            .lock()
            .expect("metrics lock")
            .entry(outcome.to_string())
            .or_default() += 1;
        self.delivery_latency.observe(latency_micros);
    }

    pub fn echoes_skipped(&self, n: u64) {
        self.echoes_skipped.fetch_add(n, Ordering::Relaxed);
    }

    pub fn subscription_disabled(&self) {
        self.subscriptions_disabled.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP hookgate_build_info The running build.\n# TYPE hookgate_build_info gauge\nhookgate_build_info{{version=\"{}\",profile=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
        );
        out.push_str("# HELP hookgate_inbound_requests_total Inbound requests past authentication, by event type and HTTP status.\n");
        out.push_str("# TYPE hookgate_inbound_requests_total counter\n");
        let counts: BTreeMap<(Option<InboundEvent>, u16), u64> = self
            .inbound
            .read()
            .expect("metrics lock")
            .iter()
            .map(|(k, v)| (*k, v.load(Ordering::Relaxed)))
            .collect();
        for ((event, status), n) in counts {
            let event_type = event.map_or("unknown", InboundEvent::name);
            let _ = writeln!(
                out,
                "hookgate_inbound_requests_total{{event_type=\"{event_type}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP hookgate_inbound_latency_seconds Time to answer an inbound request.\n",
        );
        out.push_str("# TYPE hookgate_inbound_latency_seconds histogram\n");
        self.inbound_latency
            .render(&mut out, "hookgate_inbound_latency_seconds", "");
        let counters = [
            (
                "hookgate_rate_limited_total",
                "Requests refused by a rate limit.",
                &self.rate_limited,
            ),
            (
                "hookgate_idempotent_replays_total",
                "Requests answered from the idempotency store.",
                &self.idempotent_replays,
            ),
            (
                "hookgate_echoes_skipped_total",
                "Deliveries skipped because the subscriber caused the event.",
                &self.echoes_skipped,
            ),
            (
                "hookgate_subscriptions_disabled_total",
                "Subscriptions disabled automatically.",
                &self.subscriptions_disabled,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP hookgate_auth_failures_total Inbound requests refused by authentication or verification, by reason (the error code).\n");
        out.push_str("# TYPE hookgate_auth_failures_total counter\n");
        for (reason, n) in self.auth_failures.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "hookgate_auth_failures_total{{reason=\"{reason}\"}} {n}"
            );
        }
        out.push_str("# HELP hookgate_deliveries_total Outbound delivery attempts by outcome.\n");
        out.push_str("# TYPE hookgate_deliveries_total counter\n");
        for (outcome, n) in self.deliveries.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "hookgate_deliveries_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP hookgate_delivery_latency_seconds Duration of one delivery attempt.\n",
        );
        out.push_str("# TYPE hookgate_delivery_latency_seconds histogram\n");
        self.delivery_latency
            .render(&mut out, "hookgate_delivery_latency_seconds", "");
        let _ = writeln!(
            out,
            "# HELP hookgate_writer_batches_total Group-commit transactions.\n# TYPE hookgate_writer_batches_total counter\nhookgate_writer_batches_total {}",
            gauges.writer_batches
        );
        let _ = writeln!(
            out,
            "# HELP hookgate_writer_batched_jobs_total Writes committed by group commit (divide by batches for the mean batch size).\n# TYPE hookgate_writer_batched_jobs_total counter\nhookgate_writer_batched_jobs_total {}",
            gauges.writer_batched_jobs
        );
        process::render(&mut out);
        if let Some(pending) = gauges.outbox_pending {
            let _ = writeln!(
                out,
                "# HELP hookgate_delivery_queue_depth Deliveries waiting to be sent.\n# TYPE hookgate_delivery_queue_depth gauge\nhookgate_delivery_queue_depth {pending}"
            );
        }
        out
    }
}
