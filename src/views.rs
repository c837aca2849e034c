//! How stored rows look to people and programs: the JSON of the REST API's `data` and of the
//! CLI's `--json` lines, one shape for both. Times become RFC 3339 here, at the edge; storage
//! keeps its own units. (Subscriptions and deliveries have their views beside their operations:
//! `outbound::subscriptions::view`, `outbound::deliveries::view`.)

use serde_json::{Value, json};

use crate::clock;
use crate::store::{IngestEntry, KeySummary, WorkType};

/// One ingest-log entry.
pub(crate) fn ingest_entry(e: &IngestEntry) -> Value {
    json!({
        "id": e.id,
        "received_at": clock::rfc3339_from_ms(e.received_at),
        "request_id": e.request_id,
        "company_id": e.company_id,
        "key_id": e.key_id,
        "client_addr": e.client_addr,
        "source": e.source,
        "event_type": e.event_type,
        "status": e.status,
        "error_code": e.error_code,
        "latency_us": e.latency_us,
        "event_id": e.event_id,
        "record_id": e.record_id,
    })
}

/// An API key without its secrets.
pub(crate) fn key_summary(k: &KeySummary) -> Value {
    json!({
        "key_id": k.key_id,
        "company": k.company,
        "company_id": k.company_id,
        "name": k.name,
        "revoked": k.revoked,
        "per_minute": k.per_minute,
        "per_hour": k.per_hour,
        "created_at": clock::rfc3339_from_secs(k.created_at),
        "previous_secret_valid_until": k.rotation_overlap_until.map(clock::rfc3339_from_secs),
    })
}

/// A skill of the company's library.
pub(crate) fn skill(name: &str) -> Value {
    json!({ "name": name })
}

/// A work type.
pub(crate) fn work_type(w: &WorkType) -> Value {
    serde_json::to_value(w).expect("work types serialize")
}
