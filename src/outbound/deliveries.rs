//! The delivery log as operators see it, shared by the REST API and the CLI: the filters (an
//! unknown status or event type is an error naming the allowed values, the same in both), the
//! JSON view of a delivery, and sending again every delivery that matches a filter.

use serde_json::{Value, json};

use super::Outbound;
use super::subscriptions::internal;
use crate::catalog::OutboundEvent;
use crate::clock;
use crate::error::ApiError;
use crate::store::{AttemptRecord, DeliveryFilter, DeliveryRow, DeliveryStatus};

/// Every status a delivery can be in.
pub const STATUSES: &[&str] = &[
    DeliveryStatus::Pending.as_str(),
    DeliveryStatus::InFlight.as_str(),
    DeliveryStatus::Paused.as_str(),
    DeliveryStatus::Succeeded.as_str(),
    DeliveryStatus::Failed.as_str(),
    DeliveryStatus::SkippedEcho.as_str(),
];

/// The statuses a delivery can be sent again from (not while in flight, never an echo).
pub(crate) const RETRYABLE: &[&str] = &[
    DeliveryStatus::Failed.as_str(),
    DeliveryStatus::Succeeded.as_str(),
    DeliveryStatus::Pending.as_str(),
    DeliveryStatus::Paused.as_str(),
];

/// The most deliveries one bulk retry queues.
pub(crate) const BULK_RETRY_LIMIT: usize = 100_000;

/// The test send's event type, delivered like any other.
pub(crate) const TEST_EVENT: &str = "webhook.test";

/// Every event type a delivery can carry: the emitted catalog and the test send.
pub fn event_types() -> Vec<&'static str> {
    OutboundEvent::NAMES
        .iter()
        .copied()
        .chain([TEST_EVENT])
        .collect()
}

/// A checked filter over the delivery log.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub status: Option<&'static str>,
    pub event_type: Option<String>,
    pub since_ms: Option<i64>,
}

impl Filter {
    /// Parses a filter's text forms (query parameters, JSON fields, CLI flags).
    pub(crate) fn parse(
        status: Option<&str>,
        event_type: Option<&str>,
        since: Option<&str>,
    ) -> Result<Filter, ApiError> {
        Ok(Filter {
            status: status.map(|s| one_of("status", s, STATUSES)).transpose()?,
            event_type: event_type
                .map(|t| one_of("event_type", t, &event_types()).map(str::to_string))
                .transpose()?,
            since_ms: since.map(parse_since).transpose()?,
        })
    }

    fn search(&self, scope: &Scope, limit: usize) -> DeliveryFilter {
        DeliveryFilter {
            company_id: scope.company_id.clone(),
            subscription_id: scope.subscription_id.clone(),
            status: self.status.and_then(DeliveryStatus::parse),
            event_type: self.event_type.clone(),
            since_ms: self.since_ms,
            limit,
        }
    }
}

/// `value` if it is one of `allowed`; else a 400 that lists them (in `details` too).
pub(crate) fn one_of<'a>(
    name: &str,
    value: &str,
    allowed: &[&'a str],
) -> Result<&'a str, ApiError> {
    allowed
        .iter()
        .find(|a| **a == value)
        .copied()
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_filter",
                format!("unknown {name} {value:?}; allowed: {}", allowed.join(", ")),
            )
            .with_details(allowed.iter().map(|a| json!(a)).collect())
        })
}

fn parse_since(text: &str) -> Result<i64, ApiError> {
    clock::parse_rfc3339_ms(text).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_since",
            format!("since must be an RFC 3339 time such as 2025-01-15T14:30:00Z, not {text:?}"),
        )
    })
}

/// Whose deliveries: one company's (the REST API), one subscription's, or every one (the CLI).
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    pub company_id: Option<String>,
    pub subscription_id: Option<String>,
}

/// A delivery as the API (`getDelivery`, lists) and `--json` show it; [`attempts`] adds its
/// history.
pub(crate) fn view(d: &DeliveryRow) -> Value {
    json!({
        "id": d.id,
        "subscription_id": d.subscription_id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "record_id": d.record_id,
        "status": d.status,
        "attempts": d.attempts,
        "response_code": d.last_status_code,
        "response_time_ms": d.last_response_ms,
        "error": d.last_error,
        "next_attempt_at": d.next_attempt_at.map(clock::rfc3339_from_ms),
        "created_at": clock::rfc3339_from_ms(d.created_at),
        "updated_at": clock::rfc3339_from_ms(d.updated_at),
    })
}

/// Newest first, at most `limit`.
pub(crate) async fn list(
    out: &Outbound,
    scope: &Scope,
    filter: &Filter,
    limit: usize,
) -> Result<Vec<DeliveryRow>, ApiError> {
    let search = filter.search(scope, limit);
    out.store
        .read(move |r| r.list_deliveries(&search))
        .await
        .map_err(internal)
}

/// One delivery within `scope` (404 outside it).
pub(crate) async fn find(out: &Outbound, scope: &Scope, id: &str) -> Result<DeliveryRow, ApiError> {
    let owned = id.to_string();
    let found = out
        .store
        .read(move |r| r.delivery(&owned))
        .await
        .map_err(internal)?;
    match found {
        Some((d, company))
            if scope.company_id.as_ref().is_none_or(|c| *c == company)
                && scope
                    .subscription_id
                    .as_ref()
                    .is_none_or(|s| *s == d.subscription_id) =>
        {
            Ok(d)
        }
        _ => Err(ApiError::not_found(format!("no delivery {id}"))),
    }
}

/// Queues again every delivery in `scope` that matches `filter` (status `failed` unless the
/// filter names another retryable one); returns how many.
pub(crate) async fn retry_matching(
    out: &Outbound,
    scope: &Scope,
    filter: &Filter,
) -> Result<usize, ApiError> {
    let status = filter.status.unwrap_or("failed");
    if !RETRYABLE.contains(&status) {
        return Err(ApiError::bad_request(
            "invalid_filter",
            format!(
                "deliveries that are {status} cannot be retried; retryable: {}",
                RETRYABLE.join(", ")
            ),
        )
        .with_details(RETRYABLE.iter().map(|s| json!(s)).collect()));
    }
    let search = Filter {
        status: Some(status),
        ..filter.clone()
    }
    .search(scope, BULK_RETRY_LIMIT);
    let queued = out
        .store
        .write(move |tx| tx.requeue_deliveries(&search, clock::now_ms()))
        .await
        .map_err(internal)?;
    if queued > 0 {
        out.wake.notify_one();
    }
    Ok(queued)
}

/// Every attempt of a delivery, oldest first: when, how long, what was sent (secrets
/// removed), what came back, and what kind of failure it was.
pub(crate) async fn attempts(
    out: &Outbound,
    delivery: &DeliveryRow,
) -> Result<Vec<Value>, ApiError> {
    let id = delivery.id.clone();
    let attempts = out
        .store
        .read(move |r| r.delivery_attempts(&id))
        .await
        .map_err(internal)?;
    Ok(attempts.iter().map(attempt_view).collect())
}

pub(crate) fn attempt_view(a: &AttemptRecord) -> Value {
    let parse = |text: Option<&str>| text.and_then(|t| serde_json::from_str::<Value>(t).ok());
    json!({
        "attempt": a.attempt,
        "at": clock::rfc3339_from_ms(a.at),
        "duration_ms": a.duration_ms,
        "outcome": a.outcome,
        "status_code": a.status_code,
        "error_kind": a.error_kind,
        "error": a.error,
        "request_headers": parse(Some(&a.request_headers)),
        "response_headers": parse(a.response_headers.as_deref()),
        "response_body": a.response_body,
    })
}
