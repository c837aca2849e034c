//! The delivery worker: fans new events out into deliveries, claims due deliveries, sends them
//! concurrently (bounded overall and per subscription, so a slow receiver never holds up the
//! others), and records each attempt. Everything it knows is in the database, so pending and
//! in-flight deliveries survive a restart or a crash (an expired lease means "send again").

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::Value;
use tokio::sync::{Semaphore, watch};

use super::{AttemptOutcome, Outbound, catalog, classify, client, next_delay, signing};
use crate::clock;
use crate::crypto;
use crate::store::{Attempt, DueDelivery, EventRow, StoreError, SubscriptionRow};

/// Deliveries one subscription may have in flight at once.
const PER_SUBSCRIPTION_IN_FLIGHT: usize = 16;
const FAN_OUT_BATCH: usize = 500;
const IDLE_POLL: Duration = Duration::from_millis(200);

type Limiters = HashMap<String, (f64, Arc<DefaultDirectRateLimiter>)>;

#[derive(Default)]
struct Throttle {
    in_flight: Mutex<HashMap<String, usize>>,
    limiters: Mutex<Limiters>,
}

impl Throttle {
    /// Whether `sub` may take one more delivery now (counts it as in flight if so).
    fn admit(&self, sub: &SubscriptionRow) -> bool {
        let mut in_flight = self.in_flight.lock().expect("throttle lock");
        let count = in_flight.entry(sub.id.clone()).or_default();
        if *count >= PER_SUBSCRIPTION_IN_FLIGHT {
            return false;
        }
        if let Some(rate) = sub.rate_limit.filter(|r| *r > 0.0) {
            let mut limiters = self.limiters.lock().expect("throttle lock");
            let entry = limiters
                .entry(sub.id.clone())
                .or_insert_with(|| (rate, Arc::new(limiter(rate))));
            if entry.0 != rate {
                *entry = (rate, Arc::new(limiter(rate)));
            }
            if entry.1.check().is_err() {
                return false; // throttled, not failed: it stays pending
            }
        }
        *count += 1;
        true
    }

    fn done(&self, subscription_id: &str) {
        let mut in_flight = self.in_flight.lock().expect("throttle lock");
        if let Some(count) = in_flight.get_mut(subscription_id) {
            *count = count.saturating_sub(1);
        }
    }
}

fn limiter(per_second: f64) -> DefaultDirectRateLimiter {
    // Clamped again here: a panic in this job would stop the writer it runs on.
    let range = super::subscriptions::RATE_LIMIT_RANGE;
    let per_second = per_second.clamp(*range.start(), *range.end());
    let period = Duration::from_secs_f64(1.0 / per_second);
    let burst = NonZeroU32::new(per_second.ceil().max(1.0) as u32).expect("at least 1");
    RateLimiter::direct(
        Quota::with_period(period)
            .expect("positive period")
            .allow_burst(burst),
    )
}

/// Runs until `shutdown` turns true.
pub async fn run(out: Arc<Outbound>, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(out.config.delivery_concurrency));
    let throttle = Arc::new(Throttle::default());
    loop {
        if *shutdown.borrow() {
            break;
        }
        if let Err(e) = fan_out(&out).await {
            tracing::error!(error = %e, "fan-out failed");
        }
        let free = slots.available_permits();
        if free > 0 {
            match claim(&out, &throttle, free).await {
                Ok(claimed) => {
                    for due in claimed {
                        let permit = slots
                            .clone()
                            .acquire_owned()
                            .await
                            .expect("semaphore is never closed");
                        let (out, throttle) = (out.clone(), throttle.clone());
                        tokio::spawn(async move {
                            let subscription_id = due.subscription.id.clone();
                            if let Err(e) = deliver(&out, due).await {
                                tracing::error!(error = %e, "recording a delivery attempt failed");
                            }
                            throttle.done(&subscription_id);
                            drop(permit);
                            out.wake.notify_one();
                        });
                    }
                }
                Err(e) => tracing::error!(error = %e, "claiming deliveries failed"),
            }
        }
        tokio::select! {
            () = out.wake.notified() => {}
            () = tokio::time::sleep(IDLE_POLL) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Turns new events into deliveries: one per matching subscription, or a `skipped_echo`
/// record for subscriptions owned by the key that caused the event.
async fn fan_out(out: &Outbound) -> Result<(), StoreError> {
    loop {
        let (seen, echoes) = out
            .store
            .write(|tx| {
                let cursor = tx.cursor("fan_out")?;
                let events = tx.events_after(cursor, FAN_OUT_BATCH)?;
                let now = clock::now_ms();
                let mut subscriptions: HashMap<String, Vec<SubscriptionRow>> = HashMap::new();
                let mut echoes = 0u64;
                for event in &events {
                    if event.event_type.starts_with(catalog::INTERNAL_PREFIX) {
                        continue;
                    }
                    if !subscriptions.contains_key(&event.company_id) {
                        let subs = tx.fanout_subscriptions(&event.company_id)?;
                        subscriptions.insert(event.company_id.clone(), subs);
                    }
                    for sub in &subscriptions[&event.company_id] {
                        if !wants(sub, event) {
                            continue;
                        }
                        let echo =
                            event.origin_key_id.as_deref() == Some(sub.owner_key_id.as_str());
                        let status = if echo { "skipped_echo" } else { "pending" };
                        echoes += u64::from(echo);
                        tx.insert_delivery(&crypto::sortable_id("dlv_"), sub, event, status, now)?;
                    }
                }
                if let Some(last) = events.last() {
                    tx.set_cursor("fan_out", last.seq)?;
                }
                Ok((events.len(), echoes))
            })
            .await?;
        out.metrics.echoes_skipped(echoes);
        if seen < FAN_OUT_BATCH {
            return Ok(());
        }
    }
}

/// Whether the subscription wants the event: its types and its project filter.
pub fn wants(sub: &SubscriptionRow, event: &EventRow) -> bool {
    catalog::matches(&sub.events, &event.event_type)
        && match &sub.projects {
            None => true,
            Some(codes) if codes.is_empty() => true,
            Some(codes) => event
                .project_code
                .as_deref()
                .is_some_and(|code| codes.iter().any(|c| c.eq_ignore_ascii_case(code))),
        }
}

async fn claim(
    out: &Outbound,
    throttle: &Arc<Throttle>,
    limit: usize,
) -> Result<Vec<DueDelivery>, StoreError> {
    let throttle = throttle.clone();
    let lease = (out.config.delivery_timeout_secs as i64 + 30) * 1000;
    out.store
        .write(move |tx| tx.claim_due(clock::now_ms(), lease, limit, |sub| throttle.admit(sub)))
        .await
}

/// Sends one delivery and records the attempt.
async fn deliver(out: &Outbound, due: DueDelivery) -> Result<(), StoreError> {
    let DueDelivery {
        delivery,
        subscription: sub,
        event,
    } = due;
    let attempt = delivery.attempts;
    let started = Instant::now();
    let (status, retry_after, error) =
        match send(out, &sub, &event, &delivery.event_id, attempt).await {
            Ok((status, retry_after)) => (Some(status), retry_after, None),
            Err(e) => (None, None, Some(e)),
        };
    let elapsed = started.elapsed();
    let response_ms = elapsed.as_millis() as i64;
    let outcome = classify(status, retry_after, error.as_deref());
    let schedule = &out.config.retry_schedule;
    let threshold = out.config.disable_after_failures;
    let (label, error_text, next) = match &outcome {
        AttemptOutcome::Succeeded => ("succeeded", None, None),
        AttemptOutcome::Temporary {
            reason,
            retry_after,
        } => (
            "failed",
            Some(reason.clone()),
            next_delay(schedule, attempt + 1, *retry_after)
                .map(|d| clock::now_ms() + d.as_millis() as i64),
        ),
        AttemptOutcome::Permanent { reason } => ("failed", Some(reason.clone()), None),
        AttemptOutcome::Gone => ("failed", Some("HTTP 410 Gone".to_string()), None),
    };
    let metric = match (&outcome, next) {
        (AttemptOutcome::Succeeded, _) => "succeeded",
        (_, Some(_)) => "retrying",
        _ => "failed",
    };
    if crate::logs::DELIVERIES.admit() {
        tracing::info!(
            delivery = %delivery.id,
            subscription = %sub.id,
            event_type = %event.event_type,
            attempt = attempt + 1,
            outcome = metric,
            status = status.map(i64::from).unwrap_or(-1),
            response_ms,
            error = error_text.as_deref().unwrap_or("-"),
            "delivery attempt"
        );
    }
    let delivery_id = delivery.id.clone();
    let sub_id = sub.id.clone();
    let disabled = out
        .store
        .write(move |tx| {
            let now = clock::now_ms();
            tx.record_attempt(&Attempt {
                delivery_id: &delivery_id,
                attempt,
                status_code: status,
                response_ms,
                outcome: label,
                error: error_text.as_deref(),
                next,
                now,
            })?;
            match outcome {
                AttemptOutcome::Succeeded => {
                    tx.subscription_succeeded(&sub_id, now)?;
                    Ok(false)
                }
                AttemptOutcome::Gone => {
                    tx.disable_subscription(&sub_id, "the receiver answered 410 Gone", now)
                }
                _ => tx.subscription_failed(
                    &sub_id,
                    threshold,
                    error_text.as_deref().unwrap_or("failed"),
                    now,
                ),
            }
        })
        .await?;
    out.metrics.delivery(metric, elapsed.as_micros() as u64);
    if disabled {
        out.metrics.subscription_disabled();
        tracing::warn!(subscription = %sub.id, name = %sub.name, "subscription disabled");
    }
    Ok(())
}

/// One HTTP attempt: the status and `Retry-After` seconds, or the transport error.
async fn send(
    out: &Outbound,
    sub: &SubscriptionRow,
    event: &EventRow,
    webhook_id: &str,
    attempt: u32,
) -> Result<(u16, Option<u64>), String> {
    let secret = out
        .keys
        .unseal(&sub.secret_enc, &sub.id)
        .and_then(|s| String::from_utf8(s).ok())
        .ok_or("the subscription secret cannot be decrypted")?;
    let body = signing::body(
        &sub.payload,
        &event.payload,
        &event.entity,
        &event.record_id,
    );
    let meta = signing::DeliveryMeta {
        webhook_id,
        event_type: &event.event_type,
        subscription_name: &sub.name,
        attempt,
        timestamp: clock::now_secs(),
    };
    post(out, sub, &secret, &meta, body, None).await
}

/// POSTs a signed body to the subscription's URL (deliveries, tests and URL verification).
pub async fn post(
    out: &Outbound,
    sub: &SubscriptionRow,
    secret: &str,
    meta: &signing::DeliveryMeta<'_>,
    body: Vec<u8>,
    timeout: Option<Duration>,
) -> Result<(u16, Option<u64>), String> {
    let url = reqwest::Url::parse(&sub.url).map_err(|e| format!("invalid URL: {e}"))?;
    client::check_literal_host(&url, out.config.allow_private_urls).map_err(|e| e.to_string())?;
    let mut request = out
        .client
        .post(url)
        .header("content-type", "application/json");
    for (name, value) in signing::headers(secret, meta, &body) {
        request = request.header(name, value);
    }
    if let Some(sealed) = &sub.basic_auth_enc {
        let auth: Option<Value> = out
            .keys
            .unseal(sealed, &sub.id)
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(auth) = auth {
            request = request.basic_auth(
                auth["username"].as_str().unwrap_or(""),
                auth["password"].as_str(),
            );
        }
    }
    if let Some(t) = timeout {
        request = request.timeout(t);
    }
    let response = request.body(body).send().await.map_err(describe)?;
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    Ok((response.status().as_u16(), retry_after))
}

fn describe(e: reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
