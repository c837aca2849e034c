//! Metrics at `GET /metrics`, kept and rendered by `prometheus-client` in the OpenMetrics
//! text format (which Prometheus reads): the gateway's counters and histograms, its build, the
//! figures other parts report at scrape time ([`Gauges`]), and the process figures of
//! [`process`].

mod process;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::catalog::InboundEvent;

/// The media type of [`Metrics::render`]'s text.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const LATENCY_BUCKETS_SECS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InboundLabels {
    /// `unknown` for every type the catalog does not know, so clients cannot inflate the set.
    event_type: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    /// The refusal's error code (a fixed set, so the label set is bounded).
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    profile: &'static str,
}

/// The gateway's own metrics. Counters are registered without `_total`, which the encoder adds.
pub(crate) struct Metrics {
    registry: Registry,
    inbound: Family<InboundLabels, Counter>,
    inbound_latency: Histogram,
    rate_limited: Counter,
    auth_failures: Family<ReasonLabels, Counter>,
    idempotent_replays: Counter,
    deliveries: Family<OutcomeLabels, Counter>,
    delivery_latency: Histogram,
    echoes_skipped: Counter,
    subscriptions_disabled: Counter,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS_SECS)
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            registry: Registry::default(),
            inbound: Family::default(),
            inbound_latency: latency_histogram(),
            rate_limited: Counter::default(),
            auth_failures: Family::default(),
            idempotent_replays: Counter::default(),
            deliveries: Family::default(),
            delivery_latency: latency_histogram(),
            echoes_skipped: Counter::default(),
            subscriptions_disabled: Counter::default(),
        };
        // `register` ends each help text with a period.
        let mut registry = Registry::default();
        let build: Family<BuildLabels, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                profile: if cfg!(debug_assertions) {
                    "debug"
                } else {
                    "release"
                },
            })
            .set(1);
        registry.register("hookgate_build_info", "The running build", build);
        registry.register(
            "hookgate_inbound_requests",
            "Inbound requests past authentication, by event type and HTTP status",
            m.inbound.clone(),
        );
        registry.register(
            "hookgate_auth_failures",
            "Inbound requests refused by authentication or verification, by reason (the error code)",
            m.auth_failures.clone(),
        );
        registry.register(
            "hookgate_deliveries",
            "Outbound delivery attempts by outcome",
            m.deliveries.clone(),
        );
        let counters = [
            (
                "hookgate_rate_limited",
                "Requests refused by a rate limit",
                &m.rate_limited,
            ),
            (
                "hookgate_idempotent_replays",
                "Requests answered from the idempotency store",
                &m.idempotent_replays,
            ),
            (
                "hookgate_echoes_skipped",
                "Deliveries skipped because the subscriber caused the event",
                &m.echoes_skipped,
            ),
            (
                "hookgate_subscriptions_disabled",
                "Subscriptions disabled automatically",
                &m.subscriptions_disabled,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        let histograms = [
            (
                "hookgate_inbound_latency_seconds",
                "Time to answer an inbound request",
                &m.inbound_latency,
            ),
            (
                "hookgate_delivery_latency_seconds",
                "Duration of one delivery attempt",
                &m.delivery_latency,
            ),
        ];
        for (name, help, histogram) in histograms {
            registry.register(name, help, histogram.clone());
        }
        registry.register_collector(Box::new(process::ProcessCollector));
        Metrics { registry, ..m }
    }
}

/// Figures read at scrape time from other parts of the program.
#[derive(Debug)]
pub(crate) struct Gauges {
    pub writer_batches: u64,
    pub writer_batched_jobs: u64,
    pub outbox_pending: Option<i64>,
}

impl Collector for Gauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters = [
            (
                "hookgate_writer_batches",
                "Group-commit transactions.",
                self.writer_batches,
            ),
            (
                "hookgate_writer_batched_jobs",
                "Writes committed by group commit (divide by batches for the mean batch size).",
                self.writer_batched_jobs,
            ),
        ];
        for (name, help, value) in counters {
            encode_const(&mut encoder, name, help, ConstCounter::new(value))?;
        }
        if let Some(pending) = self.outbox_pending {
            let help = "Deliveries waiting to be sent.";
            let depth = ConstGauge::new(pending);
            encode_const(&mut encoder, "hookgate_delivery_queue_depth", help, depth)?;
        }
        Ok(())
    }
}

/// Writes one figure read at scrape time (a counter is named without `_total`, which the
/// encoder adds).
fn encode_const(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    let kind = metric.metric_type();
    metric.encode(encoder.encode_descriptor(name, help, None, kind)?)
}

impl Metrics {
    /// Counts an inbound answer: refused authentications (401, 403) by their reason, every
    /// other answer by event type and status.
    pub(crate) fn inbound(
        &self,
        event_type: Option<&str>,
        status: u16,
        error_code: Option<&'static str>,
        latency_micros: u64,
    ) {
        self.inbound_latency.observe(latency_micros as f64 / 1e6);
        if matches!(status, 401 | 403) {
            self.auth_failures
                .get_or_create(&ReasonLabels {
                    reason: error_code.unwrap_or("unknown"),
                })
                .inc();
            return;
        }
        if status == 429 {
            self.rate_limited.inc();
        }
        let event_type = event_type
            .and_then(InboundEvent::parse)
            .map_or("unknown", InboundEvent::name);
        self.inbound
            .get_or_create(&InboundLabels { event_type, status })
            .inc();
    }

    pub(crate) fn idempotent_replay(&self) {
        self.idempotent_replays.inc();
    }

    pub(crate) fn delivery(&self, outcome: &str, latency_micros: u64) {
        self.deliveries
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
        self.delivery_latency.observe(latency_micros as f64 / 1e6);
    }

    pub(crate) fn echoes_skipped(&self, n: u64) {
        self.echoes_skipped.inc_by(n);
    }

    pub(crate) fn subscription_disabled(&self) {
        self.subscriptions_disabled.inc();
    }

    /// The scrape's text: every metric, then the figures of `gauges`, then `# EOF`.
    pub(crate) fn render(&self, gauges: Gauges) -> String {
        let mut scrape = Registry::default();
        scrape.register_collector(Box::new(gauges));
        let mut out = String::new();
        encode_registry(&mut out, &self.registry)
            .and_then(|()| encode_registry(&mut out, &scrape))
            .and_then(|()| encode_eof(&mut out))
            .expect("writing to a String does not fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_keeps_its_name_and_labels_and_the_text_is_openmetrics() {
        let m = Metrics::default();
        m.inbound(Some("test.connection"), 200, None, 1_500);
        m.inbound(Some("no.such.type"), 400, Some("unknown_event_type"), 10);
        m.inbound(None, 401, Some("api_key_invalid"), 10);
        m.inbound(Some("test.connection"), 429, Some("rate_limited"), 10);
        m.idempotent_replay();
        m.delivery("success", 2_000);
        m.echoes_skipped(2);
        let text = m.render(Gauges {
            writer_batches: 3,
            writer_batched_jobs: 7,
            outbox_pending: Some(4),
        });
        println!("{text}");
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        let build = format!(
            "hookgate_build_info{{version=\"{}\",profile=\"{profile}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        for line in [
            build.as_str(),
            "hookgate_inbound_requests_total{event_type=\"test.connection\",status=\"200\"} 1",
            "hookgate_inbound_requests_total{event_type=\"unknown\",status=\"400\"} 1",
            "hookgate_inbound_requests_total{event_type=\"test.connection\",status=\"429\"} 1",
            "hookgate_auth_failures_total{reason=\"api_key_invalid\"} 1",
            "hookgate_rate_limited_total 1",
            "hookgate_idempotent_replays_total 1",
            "hookgate_echoes_skipped_total 2",
            "hookgate_subscriptions_disabled_total 0",
            "hookgate_deliveries_total{outcome=\"success\"} 1",
            "hookgate_inbound_latency_seconds_bucket{le=\"0.0025\"} 4",
            "hookgate_inbound_latency_seconds_bucket{le=\"+Inf\"} 4",
            "hookgate_inbound_latency_seconds_count 4",
            "hookgate_delivery_latency_seconds_sum 0.002",
            "hookgate_writer_batches_total 3",
            "hookgate_writer_batched_jobs_total 7",
            "hookgate_delivery_queue_depth 4",
            "# TYPE hookgate_inbound_requests counter",
            "# TYPE hookgate_inbound_latency_seconds histogram",
            "# TYPE hookgate_build_info gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in:\n{text}");
        }
        #[cfg(target_os = "linux")]
        for name in ["process_cpu_seconds_total", "process_resident_memory_bytes"] {
            assert!(text.lines().any(|l| l.starts_with(name)), "{name}: {text}");
        }
        // OpenMetrics: every sample belongs to a family declared before it, once, and the
        // text ends with the EOF marker.
        let mut families: Vec<&str> = Vec::new();
        for line in text.lines() {
            if let Some(declared) = line.strip_prefix("# TYPE ") {
                let family = declared.split(' ').next().unwrap();
                assert!(!families.contains(&family), "{family} declared twice");
                families.push(family);
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(
                    families.iter().any(|f| name == *f
                        || name
                            .strip_prefix(f)
                            .is_some_and(|s| ["_total", "_bucket", "_sum", "_count"].contains(&s))),
                    "{name} has no family"
                );
            }
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
