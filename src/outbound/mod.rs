//! Outbound delivery, beside the request path: fan-out of the event log into deliveries
//! (skipping, and recording, every subscription owned by the key that caused the event: echo
//! prevention), a worker that sends due deliveries with retries, and subscription management.
//!
//! **Architecture invariant:** the request path never waits for delivery; the only link is the
//! `events` table (the transactional outbox) and a wake-up notification.

pub(crate) mod catalog;
pub(crate) mod client;
pub mod deliveries;
mod health;
mod log_cache;
mod recorder;
pub(crate) mod sender;
pub(crate) mod signing;
mod ssrf;
pub(crate) mod subscriptions;
mod worker;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::sync::Notify;

use crate::config::OutboundConfig;
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::store::{EventRow, Store, SubscriptionRow};

pub(crate) use worker::run;

/// Whether the subscription wants the event: its types and its project filter; never an
/// operational event about itself.
pub(crate) fn wants(sub: &SubscriptionRow, event: &EventRow) -> bool {
    catalog::matches(&sub.events, &event.event_type)
        && event.about_subscription_id.as_deref() != Some(sub.id.as_str())
        && match &sub.projects {
            None => true,
            Some(codes) if codes.is_empty() => true,
            Some(codes) => event
                .project_code
                .as_deref()
                .is_some_and(|code| codes.iter().any(|c| c.eq_ignore_ascii_case(code))),
        }
}

/// What an attempt's answer means for the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AttemptOutcome {
    Succeeded,
    /// Try again (5xx, 408, 429, timeouts, connection errors), after at least `retry_after`.
    Temporary {
        reason: String,
        retry_after: Option<u64>,
    },
    /// Do not try again (other 4xx, 3xx).
    Permanent {
        reason: String,
    },
    /// 410 Gone: the receiver asks to stop; the subscription is disabled.
    Gone,
}

/// Classifies an HTTP answer (or a transport error when `status` is None).
pub(crate) fn classify(
    status: Option<u16>,
    retry_after: Option<u64>,
    error: Option<&str>,
) -> AttemptOutcome {
    match status {
        Some(s) if (200..300).contains(&s) => AttemptOutcome::Succeeded,
        Some(410) => AttemptOutcome::Gone,
        Some(s @ (408 | 429 | 500..=599)) => AttemptOutcome::Temporary {
            reason: format!("HTTP {s}"),
            retry_after,
        },
        Some(s @ 300..=399) => AttemptOutcome::Permanent {
            reason: format!("HTTP {s} (redirects are not followed)"),
        },
        Some(s) => AttemptOutcome::Permanent {
            reason: format!("HTTP {s}"),
        },
        None => AttemptOutcome::Temporary {
            reason: error.unwrap_or("connection failed").to_string(),
            retry_after: None,
        },
    }
}

/// Delay before the next attempt after `attempts_made` attempts, or None when the schedule is
/// used up. A receiver's `Retry-After` can lengthen the wait, up to the schedule's longest delay.
pub(crate) fn next_delay(
    schedule: &[u64],
    attempts_made: u32,
    retry_after: Option<u64>,
) -> Option<Duration> {
    let base = *schedule.get(attempts_made as usize)?;
    let cap = schedule.iter().copied().max().unwrap_or(base);
    let secs = match retry_after {
        Some(wait) => base.max(wait.min(cap)),
        None => base,
    };
    Some(Duration::from_secs(secs))
}

/// Shared by the worker and the management API.
pub(crate) struct Outbound {
    pub store: Store,
    pub keys: Keys,
    pub config: OutboundConfig,
    pub client: client::Client,
    /// Tells the worker there is work (new events, queued deliveries).
    pub wake: Notify,
    /// Set when a subscription was created or changed here, so that the worker re-reads its
    /// leased subscriptions now rather than at the next renewal.
    pub subscriptions_changed: AtomicBool,
    pub metrics: Arc<Metrics>,
    /// This process, as the holder of subscription and delivery leases.
    pub node_id: String,
    /// The clock the retry queue runs on.
    pub retry_clock: RetryClock,
    /// Subscriptions as sending needs them, worked out once per version of each.
    pub prepared: sender::PreparedCache,
}

/// Now, as the retry queue sees it: the wall clock, plus however far tests moved it forward
/// (`AppState::advance_retry_clock`), so that a test passes a retry schedule without sleeping
/// through it, and sees what is pending for as long as it looks.
#[derive(Default)]
pub(crate) struct RetryClock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl RetryClock {
    pub(crate) fn now_ms(&self) -> i64 {
        crate::clock::now_ms() + self.offset_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Outbound {
    /// Tells the worker that subscriptions changed (and wakes it).
    pub(crate) fn subscriptions_changed(&self) {
        self.subscriptions_changed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_one();
    }
}

impl Outbound {
    pub(crate) fn new(
        store: Store,
        keys: Keys,
        config: OutboundConfig,
        metrics: Arc<Metrics>,
    ) -> Outbound {
        let client = client::Client::new(
            Duration::from_secs(config.delivery_timeout_secs),
            config.allow_private_urls,
        );
        Outbound {
            store,
            keys,
            config,
            client,
            wake: Notify::new(),
            subscriptions_changed: AtomicBool::new(true),
            metrics,
            node_id: crate::crypto::random_id("node_", 8),
            retry_clock: RetryClock::default(),
            prepared: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_as_the_seed_and_spec_say() {
        assert_eq!(classify(Some(204), None, None), AttemptOutcome::Succeeded);
        assert_eq!(classify(Some(410), None, None), AttemptOutcome::Gone);
        assert!(matches!(
            classify(Some(503), None, None),
            AttemptOutcome::Temporary { .. }
        ));
        assert!(matches!(
            classify(Some(429), Some(5), None),
            AttemptOutcome::Temporary {
                retry_after: Some(5),
                ..
            }
        ));
        assert!(matches!(
            classify(Some(408), None, None),
            AttemptOutcome::Temporary { .. }
        ));
        assert!(matches!(
            classify(Some(400), None, None),
            AttemptOutcome::Permanent { .. }
        ));
        assert!(matches!(
            classify(Some(301), None, None),
            AttemptOutcome::Permanent { .. }
        ));
        assert!(matches!(
            classify(None, None, Some("timeout")),
            AttemptOutcome::Temporary { .. }
        ));
    }

    #[test]
    fn retry_schedule_and_retry_after_bounds() {
        let seed = [0, 60, 300, 900, 3600, 21600];
        assert_eq!(next_delay(&seed, 0, None), Some(Duration::ZERO));
        assert_eq!(next_delay(&seed, 1, None), Some(Duration::from_secs(60)));
        assert_eq!(next_delay(&seed, 5, None), Some(Duration::from_secs(21600)));
        assert_eq!(next_delay(&seed, 6, None), None);
        assert_eq!(
            next_delay(&seed, 1, Some(120)),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            next_delay(&seed, 1, Some(10)),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            next_delay(&seed, 1, Some(999_999)),
            Some(Duration::from_secs(21600))
        );
    }
}
