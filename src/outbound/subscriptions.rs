//! Subscription management: validating what a user sends (URL, events, secret, payload mode,
//! filters), URL verification, test sends, manual retries and `recover`. Every operation is
//! scoped to the caller's company.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{AttemptOutcome, Outbound, catalog, sender, signing, ssrf, wants};
use crate::clock;
use crate::crypto;
use crate::error::ApiError;
use crate::keys::ApiKey;
use crate::store::{
    DeliveryRow, DeliveryStatus, NewEvent, StoreError, SubscriptionRow, SubscriptionStatus,
};

/// Every status a subscription can be in (`failing`: active, with failed attempts).
pub(crate) const STATUSES: &[&str] = &["active", "failing", "disabled"];

const MIN_SECRET_LEN: usize = 24;
const VERIFY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BasicAuth {
    pub username: String,
    pub password: String,
}

/// A create or update request. On update, absent fields keep their value.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubscriptionInput {
    pub name: Option<String>,
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// Seed `000_…` calls the event list `actions`.
    pub actions: Option<Vec<String>>,
    pub secret: Option<String>,
    pub payload: Option<String>,
    pub projects: Option<Vec<String>>,
    #[serde(default, deserialize_with = "explicit_null")]
    pub basic_auth: Option<Option<BasicAuth>>,
    pub verify_url: Option<bool>,
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "explicit_null")]
    pub rate_limit: Option<Option<f64>>,
}

/// Distinguishes an absent field (None) from an explicit null (Some(None)).
fn explicit_null<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

pub(crate) fn parse_input(body: &[u8]) -> Result<SubscriptionInput, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("invalid_request", format!("invalid subscription JSON: {e}"))
    })
}

pub(super) fn internal(e: StoreError) -> ApiError {
    ApiError::internal(&e)
}

/// The subscription as the API shows it (never its secrets).
pub(crate) fn view(s: &SubscriptionRow, out: &Outbound) -> Value {
    let basic_auth = s
        .basic_auth_enc
        .as_ref()
        .and_then(|b| out.keys.unseal(b, &s.id))
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .map(|a| json!({"username": a["username"]}));
    json!({
        "id": s.id,
        "name": s.name,
        "url": s.url,
        "events": s.events,
        "payload": s.payload,
        "projects": s.projects,
        "basic_auth": basic_auth,
        "verify_url": s.verify_url,
        "enabled": s.status != SubscriptionStatus::Disabled,
        "status": s.status.as_str(),
        "secret_rotation_overlap_until": s
            .previous_secret_until
            .filter(|until| *until > clock::now_ms())
            .map(clock::rfc3339_from_ms),
        "disabled_reason": s.disabled_reason,
        "consecutive_failures": s.consecutive_failures,
        "rate_limit": s.rate_limit,
        "owner_key_id": s.owner_key_id,
        "created_at": clock::rfc3339_from_ms(s.created_at),
        "updated_at": clock::rfc3339_from_ms(s.updated_at),
    })
}

fn check_url(url: &str, out: &Outbound) -> Result<(), ApiError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| ApiError::bad_request("invalid_url", format!("invalid URL {url:?}: {e}")))?;
    match parsed.scheme() {
        "https" => {}
        "http" if out.config.allow_http_urls => {}
        "http" => {
            return Err(ApiError::bad_request(
                "url_not_https",
                "the URL must use https:// (plain http:// needs allow_http_urls / HOOKGATE_ALLOW_HTTP_URLS=true)",
            ));
        }
        other => {
            return Err(ApiError::bad_request(
                "invalid_url",
                format!("unsupported URL scheme {other:?}"),
            ));
        }
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::bad_request("invalid_url", "the URL has no host"));
    }
    // The URL parser admits characters no DNS name has (`*`, `_`, `!`); such a host could only
    // fail later, at every delivery. (International names arrive here as punycode.)
    if let Some(url::Host::Domain(domain)) = parsed.host()
        && !domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(ApiError::bad_request(
            "invalid_url",
            format!("the URL's host {domain:?} is not a DNS name (letters, digits, '-' and '.')"),
        ));
    }
    ssrf::check_literal_host(&parsed, out.config.allow_private_urls)
        .map_err(|e| ApiError::bad_request("url_not_allowed", e.to_string()))
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request(
            "invalid_name",
            "name must be 1 to 100 characters",
        ));
    }
    // It travels in the X-Webhook-Name header of every delivery.
    if name.chars().any(|c| c.is_ascii_control()) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "name must not contain control characters",
        ));
    }
    Ok(name.to_string())
}

fn events_of(input: &SubscriptionInput) -> Result<Option<Vec<String>>, ApiError> {
    let list = match (&input.events, &input.actions) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "alias_conflict",
                "events and actions are the same field; send one",
            ));
        }
        (Some(e), _) | (None, Some(e)) => e,
        (None, None) => return Ok(None),
    };
    catalog::parse_patterns(list).map(Some)
}

fn check_payload(mode: &str) -> Result<String, ApiError> {
    match mode.to_ascii_lowercase().as_str() {
        m @ ("full" | "thin") => Ok(m.to_string()),
        _ => Err(ApiError::bad_request(
            "invalid_payload",
            "payload must be \"full\" or \"thin\"",
        )),
    }
}

/// The delivery rate a subscription may ask for, in deliveries per second.
pub(crate) const RATE_LIMIT_RANGE: std::ops::RangeInclusive<f64> = 0.001..=10_000.0;

fn check_rate(rate: Option<f64>) -> Result<Option<f64>, ApiError> {
    match rate {
        Some(r) if !RATE_LIMIT_RANGE.contains(&r) => Err(ApiError::bad_request(
            "invalid_rate_limit",
            format!(
                "rate_limit must be from {} to {} deliveries per second",
                RATE_LIMIT_RANGE.start(),
                RATE_LIMIT_RANGE.end()
            ),
        )),
        other => Ok(other),
    }
}

fn seal_basic_auth(out: &Outbound, id: &str, auth: &BasicAuth) -> Vec<u8> {
    out.keys.seal(
        json!({"username": auth.username, "password": auth.password})
            .to_string()
            .as_bytes(),
        id,
    )
}

/// Creates a subscription owned by `key`; returns its view with the secret (shown once).
pub(crate) async fn create(
    out: &Outbound,
    key: &ApiKey,
    input: SubscriptionInput,
) -> Result<Value, ApiError> {
    let name = check_name(
        input
            .name
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("name_required", "name is required"))?,
    )?;
    let url = input
        .url
        .clone()
        .ok_or_else(|| ApiError::bad_request("url_required", "url is required"))?;
    check_url(&url, out)?;
    let events = events_of(&input)?
        .ok_or_else(|| ApiError::bad_request("events_required", "events is required"))?;
    let secret = match &input.secret {
        Some(s) if s.chars().count() < MIN_SECRET_LEN => {
            return Err(ApiError::bad_request(
                "secret_too_short",
                format!("a secret must be at least {MIN_SECRET_LEN} characters"),
            ));
        }
        Some(s) => s.clone(),
        None => new_secret_value(),
    };
    let id = crypto::random_id("wh_", 12);
    let now = clock::now_ms();
    let enabled = input.enabled.unwrap_or(true);
    let sub = SubscriptionRow {
        id: id.clone(),
        company_id: key.company_id.clone(),
        owner_key_id: key.id.clone(),
        name,
        url,
        events,
        secret_enc: out.keys.seal(secret.as_bytes(), &id),
        previous_secret_enc: None,
        previous_secret_until: None,
        payload: check_payload(input.payload.as_deref().unwrap_or("full"))?,
        projects: input.projects.clone().filter(|p| !p.is_empty()),
        basic_auth_enc: input
            .basic_auth
            .clone()
            .flatten()
            .map(|a| seal_basic_auth(out, &id, &a)),
        rate_limit: check_rate(input.rate_limit.flatten())?,
        verify_url: input.verify_url.unwrap_or(false),
        status: if enabled {
            SubscriptionStatus::Active
        } else {
            SubscriptionStatus::Disabled
        },
        disabled_reason: (!enabled).then(|| "created disabled".to_string()),
        consecutive_failures: 0,
        cursor_position: 0,
        created_at: now,
        updated_at: now,
    };
    if sub.verify_url && enabled {
        verify(out, &sub).await?;
    }
    let sub = save_unique(out, sub).await?;
    let mut body = view(&sub, out);
    body["secret"] = json!(secret);
    Ok(body)
}

fn duplicate_name(name: &str) -> ApiError {
    ApiError::conflict(
        "duplicate_name",
        format!("a subscription called {name:?} already exists in this company"),
    )
}

pub(crate) async fn get(
    out: &Outbound,
    key: &ApiKey,
    id: &str,
) -> Result<SubscriptionRow, ApiError> {
    let (company, id_owned) = (key.company_id.clone(), id.to_string());
    out.store
        .read(move |r| r.subscription(&company, &id_owned))
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no subscription {id}")))
}

pub(crate) async fn list(out: &Outbound, key: &ApiKey) -> Result<Vec<SubscriptionRow>, ApiError> {
    let company = key.company_id.clone();
    out.store
        .read(move |r| r.list_subscriptions(Some(&company)))
        .await
        .map_err(internal)
}

pub(crate) async fn update(
    out: &Outbound,
    key: &ApiKey,
    id: &str,
    input: SubscriptionInput,
) -> Result<SubscriptionRow, ApiError> {
    let mut sub = get(out, key, id).await?;
    let was_enabled = sub.status != SubscriptionStatus::Disabled;
    if let Some(name) = &input.name {
        sub.name = check_name(name)?;
    }
    if let Some(url) = &input.url {
        check_url(url, out)?;
        sub.url = url.clone();
    }
    if let Some(events) = events_of(&input)? {
        sub.events = events;
    }
    if let Some(secret) = &input.secret {
        if secret.chars().count() < MIN_SECRET_LEN {
            return Err(ApiError::bad_request(
                "secret_too_short",
                format!("a secret must be at least {MIN_SECRET_LEN} characters"),
            ));
        }
        sub.secret_enc = out.keys.seal(secret.as_bytes(), &sub.id);
    }
    if let Some(mode) = &input.payload {
        sub.payload = check_payload(mode)?;
    }
    if let Some(projects) = &input.projects {
        sub.projects = Some(projects.clone()).filter(|p| !p.is_empty());
    }
    if let Some(auth) = &input.basic_auth {
        sub.basic_auth_enc = auth.as_ref().map(|a| seal_basic_auth(out, &sub.id, a));
    }
    if let Some(rate) = input.rate_limit {
        sub.rate_limit = check_rate(rate)?;
    }
    if let Some(v) = input.verify_url {
        sub.verify_url = v;
    }
    match input.enabled {
        Some(true) if !was_enabled => enable_fields(&mut sub),
        Some(false) if was_enabled => disable_fields(&mut sub, "disabled by API"),
        _ => {}
    }
    let now_enabled = sub.status != SubscriptionStatus::Disabled;
    if sub.verify_url && now_enabled && (!was_enabled || input.url.is_some()) {
        verify(out, &sub).await?;
    }
    sub.updated_at = clock::now_ms();
    save_unique(out, sub).await
}

/// Saves the subscription unless another one of the company has its name (409).
async fn save_unique(out: &Outbound, sub: SubscriptionRow) -> Result<SubscriptionRow, ApiError> {
    let saved = sub.clone();
    let taken = out
        .store
        .write(move |tx| {
            if tx.subscription_name_taken(&saved.company_id, &saved.name, &saved.id)? {
                return Ok(true);
            }
            tx.save_subscription(&saved)?;
            Ok(false)
        })
        .await
        .map_err(internal)?;
    if taken {
        return Err(duplicate_name(&sub.name));
    }
    out.subscriptions_changed();
    Ok(sub)
}

fn enable_fields(sub: &mut SubscriptionRow) {
    sub.status = SubscriptionStatus::Active;
    sub.disabled_reason = None;
    sub.consecutive_failures = 0;
}

fn disable_fields(sub: &mut SubscriptionRow, reason: &str) {
    sub.status = SubscriptionStatus::Disabled;
    sub.disabled_reason = Some(reason.into());
}

pub(crate) async fn set_enabled(
    out: &Outbound,
    key: &ApiKey,
    id: &str,
    enabled: bool,
) -> Result<SubscriptionRow, ApiError> {
    update(
        out,
        key,
        id,
        SubscriptionInput {
            enabled: Some(enabled),
            ..Default::default()
        },
    )
    .await
}

pub(crate) async fn delete(out: &Outbound, key: &ApiKey, id: &str) -> Result<(), ApiError> {
    let (company, id_owned) = (key.company_id.clone(), id.to_string());
    let deleted = out
        .store
        .write(move |tx| tx.delete_subscription(&company, &id_owned))
        .await
        .map_err(internal)?;
    if deleted {
        out.subscriptions_changed();
        Ok(())
    } else {
        Err(ApiError::not_found(format!("no subscription {id}")))
    }
}

/// Seed `001_…`: the URL must answer a signed `webhook.verification` POST with 2xx within 5 s.
async fn verify(out: &Outbound, sub: &SubscriptionRow) -> Result<(), ApiError> {
    let event_id = crypto::sortable_id("evt_");
    let body = serde_json::to_vec(&json!({
        "event_id": event_id,
        "event_type": "webhook.verification",
        "timestamp": clock::now_rfc3339(),
        "company_id": sub.company_id,
        "data": {"subscription_id": sub.id, "name": sub.name, "challenge": crypto::random_id("", 16)},
    }))
    .expect("JSON values serialize");
    let meta = signing::DeliveryMeta {
        webhook_id: &event_id,
        event_type: "webhook.verification",
        subscription_name: &sub.name,
        attempt: 0,
        timestamp: clock::now_secs(),
    };
    let exchange = sender::send(out, sub, &meta, &body, Some(VERIFY_TIMEOUT)).await;
    match (exchange.outcome, exchange.record.status_code) {
        (AttemptOutcome::Succeeded, _) => Ok(()),
        (_, Some(status)) => Err(ApiError::bad_request(
            "url_verification_failed",
            format!(
                "the URL answered the verification request with HTTP {status}; it must answer 2xx within 5 s"
            ),
        )),
        (_, None) => Err(ApiError::bad_request(
            "url_verification_failed",
            format!(
                "the verification request failed: {}",
                exchange.record.error.unwrap_or_default()
            ),
        )),
    }
}

/// Queues a `webhook.test` event for this subscription only; returns the delivery id.
pub(crate) async fn test_send(out: &Outbound, key: &ApiKey, id: &str) -> Result<Value, ApiError> {
    let sub = get(out, key, id).await?;
    if sub.status == SubscriptionStatus::Disabled {
        return Err(ApiError::conflict(
            "subscription_disabled",
            format!("subscription {id} is disabled; enable it first"),
        ));
    }
    let event_id = crypto::sortable_id("evt_");
    let delivery_id = crypto::sortable_id("dlv_");
    let now = clock::now_ms();
    let payload = json!({
        "event_id": event_id,
        "event_type": "webhook.test",
        "timestamp": clock::rfc3339_from_ms(now),
        "company_id": sub.company_id,
        "data": {"subscription_id": sub.id, "name": sub.name, "message": "This is a test event from hookgate."},
    });
    let (eid, did) = (event_id.clone(), delivery_id.clone());
    out.store
        .write(move |tx| {
            let seq = tx.insert_event(&NewEvent {
                event_id: &eid,
                company_id: &sub.company_id,
                origin_key_id: None,
                inbound_event_id: None,
                about_subscription_id: None,
                event_type: "webhook.test",
                entity: "webhook",
                record_id: &sub.id,
                project_code: None,
                payload: &payload,
                created_at: now,
            })?;
            let delivery = DeliveryRow {
                id: did.clone(),
                subscription_id: sub.id.clone(),
                event_seq: seq,
                event_id: eid.clone(),
                event_type: "webhook.test".into(),
                record_id: sub.id.clone(),
                status: DeliveryStatus::Pending,
                attempts: 0,
                next_attempt_at: Some(now),
                last_status_code: None,
                last_error: None,
                last_response_ms: None,
                created_at: now,
                updated_at: now,
            };
            tx.insert_delivery(&delivery, &sub.company_id)
        })
        .await
        .map_err(internal)?;
    out.wake.notify_one();
    Ok(json!({"event_id": event_id, "delivery_id": delivery_id}))
}

/// Puts a delivery back in the queue at once; returns it as the retry left it (the worker may
/// have taken it up by the time the caller reads it again).
pub(crate) async fn retry(
    out: &Outbound,
    company_id: &str,
    subscription_id: Option<&str>,
    delivery_id: &str,
) -> Result<DeliveryRow, ApiError> {
    let scope = super::deliveries::Scope {
        company_id: Some(company_id.to_string()),
        subscription_id: subscription_id.map(str::to_string),
    };
    let d = super::deliveries::find(out, &scope, delivery_id).await?;
    if matches!(
        d.status,
        DeliveryStatus::SkippedEcho | DeliveryStatus::InFlight
    ) {
        return Err(ApiError::conflict(
            "not_retryable",
            format!("delivery {delivery_id} is {}", d.status.as_str()),
        ));
    }
    let (company, did) = (company_id.to_string(), delivery_id.to_string());
    let requeued = out
        .store
        .write(move |tx| tx.requeue_delivery(&company, &did, clock::now_ms()))
        .await
        .map_err(internal)?;
    out.wake.notify_one();
    // Between the read above and the write, the delivery can only have become in flight.
    requeued.ok_or_else(|| {
        ApiError::conflict(
            "not_retryable",
            format!("delivery {delivery_id} is in_flight"),
        )
    })
}

/// Replaces the subscription's secret, keeping the old one signing beside it for
/// `overlap_secs` so that receivers can switch without missing a delivery. Returns the new
/// secret (shown once).
pub(crate) async fn rotate_secret(
    out: &Outbound,
    key: &ApiKey,
    id: &str,
    new_secret: Option<String>,
    overlap_secs: i64,
) -> Result<Value, ApiError> {
    let mut sub = get(out, key, id).await?;
    let secret = match new_secret {
        Some(s) if s.chars().count() < MIN_SECRET_LEN => {
            return Err(ApiError::bad_request(
                "secret_too_short",
                format!("a secret must be at least {MIN_SECRET_LEN} characters"),
            ));
        }
        Some(s) => s,
        None => new_secret_value(),
    };
    if !(0..=7 * 24 * 3600).contains(&overlap_secs) {
        return Err(ApiError::bad_request(
            "invalid_overlap",
            "overlap_secs must be between 0 and 604800 (7 days)",
        ));
    }
    let now = clock::now_ms();
    sub.previous_secret_enc = Some(sub.secret_enc.clone());
    sub.previous_secret_until = Some(now + overlap_secs * 1000);
    sub.secret_enc = out.keys.seal(secret.as_bytes(), &sub.id);
    sub.updated_at = now;
    let sub = save_unique(out, sub).await?;
    let mut body = view(&sub, out);
    body["secret"] = json!(secret);
    Ok(body)
}

fn new_secret_value() -> String {
    format!(
        "whsec_{}",
        crypto::base64_encode(&crypto::random_bytes::<32>())
    )
}

/// Re-sends, in order, every event since `since` that the subscription wants and did not
/// receive (never delivered, or failed). Returns how many were queued.
pub(crate) async fn recover(
    out: &Outbound,
    key: &ApiKey,
    id: &str,
    since: &str,
) -> Result<Value, ApiError> {
    let since_ms = clock::parse_rfc3339_ms(since).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_since",
            "since must be an RFC 3339 time such as 2025-01-15T14:30:00Z",
        )
    })?;
    let sub = get(out, key, id).await?;
    let queued = out
        .store
        .write(move |tx| {
            let now = clock::now_ms();
            let mut queued = 0;
            for event in tx.company_events_since(&sub.company_id, since_ms)? {
                if catalog::is_internal(&event.event_type)
                    || !wants(&sub, &event)
                    || event.origin_key_id.as_deref() == Some(sub.owner_key_id.as_str())
                {
                    continue;
                }
                match tx.delivery_for_event(&sub.id, event.seq)? {
                    None => {
                        let status = if sub.status == SubscriptionStatus::Disabled {
                            DeliveryStatus::Paused
                        } else {
                            DeliveryStatus::Pending
                        };
                        let delivery = DeliveryRow {
                            id: crypto::sortable_id("dlv_"),
                            subscription_id: sub.id.clone(),
                            event_seq: event.seq,
                            event_id: event.event_id.clone(),
                            event_type: event.event_type.clone(),
                            record_id: event.record_id.clone(),
                            status,
                            attempts: 0,
                            next_attempt_at: Some(now),
                            last_status_code: None,
                            last_error: None,
                            last_response_ms: None,
                            created_at: now,
                            updated_at: now,
                        };
                        tx.insert_delivery(&delivery, &sub.company_id)?;
                        queued += 1;
                    }
                    Some(d) if d.status == DeliveryStatus::Failed => {
                        tx.requeue_delivery(&sub.company_id, &d.id, now)?;
                        queued += 1;
                    }
                    Some(_) => {}
                }
            }
            Ok(queued)
        })
        .await
        .map_err(internal)?;
    out.wake.notify_one();
    Ok(json!({"queued": queued}))
}
