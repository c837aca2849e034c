//! Stage 6: parse the body into an [`Envelope`] `{event_type, timestamp, source, data}`.
//! Malformed JSON is reported with its byte offset; unknown event types with the known list.

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::verify::VerifiedRequest;

/// Every inbound event type, in the seed's order.
pub const INBOUND_EVENT_TYPES: &[&str] = &[
    "work_order.created",
    "work_order.updated",
    "work_order.deleted",
    "project.created",
    "project.updated",
    "project.deleted",
    "project.closed",
    "employee.created",
    "employee.updated",
    "employee.deleted",
    "vendor.created",
    "vendor.updated",
    "vendor.deleted",
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "location.created",
    "location.updated",
    "location.deleted",
    "contact.created",
    "contact.updated",
    "contact.deleted",
    "time_off.created",
    "time_off.updated",
    "time_off.deleted",
    "timesheet.created",
    "timesheet.updated",
    "timesheet.deleted",
    "report.daily_submitted",
    "report.completion_submitted",
    "report.completion_approved",
    "project.search",
    "work_order.search",
    "test.connection",
];

pub const TEST_CONNECTION: &str = "test.connection";

/// A parsed envelope whose event type is known. Built only by [`parse`].
#[derive(Debug, Clone)]
pub struct Envelope {
    pub event_type: &'static str,
    pub timestamp: Option<String>,
    pub source: Option<String>,
    pub data: Map<String, Value>,
}

/// Reads the event type without building the envelope (for the ingest log of rejected
/// requests); `None` when the body is not an object with a string `event_type`.
pub fn peek_event_type(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Peek {
        event_type: String,
    }
    serde_json::from_slice::<Peek>(body)
        .ok()
        .map(|p| p.event_type)
}

pub fn parse(request: &VerifiedRequest) -> Result<Envelope, ApiError> {
    let value: Value =
        serde_json::from_slice(&request.body).map_err(|e| json_error(&request.body, &e))?;
    let Value::Object(mut object) = value else {
        return Err(ApiError::bad_request(
            "invalid_envelope",
            "the body must be a JSON object {event_type, timestamp, source, data}",
        ));
    };
    let event_type = match object.get("event_type") {
        Some(Value::String(name)) => name.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_envelope",
                "event_type must be a string",
            ));
        }
        None => {
            return Err(ApiError::bad_request(
                "invalid_envelope",
                "event_type is required",
            ));
        }
    };
    let Some(&known) = INBOUND_EVENT_TYPES.iter().find(|t| **t == event_type) else {
        return Err(ApiError::bad_request(
            "unknown_event_type",
            format!("unknown event_type {event_type:?}; see details for the known event types"),
        )
        .with_details(INBOUND_EVENT_TYPES.iter().map(|t| json!(t)).collect()));
    };
    let data = match object.remove("data") {
        Some(Value::Object(data)) => data,
        None if known == TEST_CONNECTION => Map::new(),
        Some(Value::Null) if known == TEST_CONNECTION => Map::new(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_envelope",
                "data must be a JSON object",
            ));
        }
        None => {
            return Err(ApiError::bad_request(
                "invalid_envelope",
                "data is required",
            ));
        }
    };
    let text_field = |name: &str| -> Result<Option<String>, ApiError> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::bad_request(
                "invalid_envelope",
                format!("{name} must be a string"),
            )),
        }
    };
    let timestamp = text_field("timestamp")?;
    if let Some(ts) = &timestamp
        && crate::clock::parse_rfc3339_ms(ts).is_none()
    {
        return Err(ApiError::bad_request(
            "invalid_envelope",
            format!("timestamp {ts:?} is not an RFC 3339 date-time such as 2025-01-15T14:30:00Z"),
        ));
    }
    Ok(Envelope {
        event_type: known,
        timestamp,
        source: text_field("source")?,
        data,
    })
}

fn json_error(body: &[u8], e: &serde_json::Error) -> ApiError {
    let offset = byte_offset(body, e.line(), e.column());
    ApiError::bad_request(
        "invalid_json",
        format!(
            "malformed JSON at byte {offset} (line {}, column {}): {e}",
            e.line(),
            e.column()
        ),
    )
    .with_details(vec![
        json!({"offset": offset, "line": e.line(), "column": e.column()}),
    ])
}

/// serde_json reports 1-based line and column; turn them into a 0-based byte offset.
fn byte_offset(body: &[u8], line: usize, column: usize) -> usize {
    let line_start: usize = body
        .split(|b| *b == b'\n')
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    (line_start + column.saturating_sub(1)).min(body.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_bytes_across_lines() {
        let body = b"{\n  \"a\": tru\n}";
        let e = serde_json::from_slice::<Value>(body).unwrap_err();
        let offset = byte_offset(body, e.line(), e.column());
        assert!((9..=13).contains(&offset), "{offset}");
    }
}
