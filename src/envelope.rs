//! Stage 6: parse the body into an [`Envelope`] `{event_type, timestamp, source, data}`.
//! Malformed JSON is reported with its byte offset; unknown event types with the known list.

use serde_json::{Map, Value, json};

use crate::catalog::InboundEvent;
use crate::error::ApiError;
use crate::verify::VerifiedRequest;

/// A parsed envelope whose event type is known. Built only by [`parse`], so a later stage
/// holding one knows the body was JSON, an object, and named a known event type.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    event_type: InboundEvent,
    data: Map<String, Value>,
}

impl Envelope {
    pub(crate) fn event_type(&self) -> InboundEvent {
        self.event_type
    }

    /// The event type and `data`, for the next stage to reshape.
    pub(crate) fn into_parts(self) -> (InboundEvent, Map<String, Value>) {
        (self.event_type, self.data)
    }

    #[cfg(test)]
    pub(crate) fn for_test(event_type: InboundEvent, data: Map<String, Value>) -> Envelope {
        Envelope { event_type, data }
    }
}

/// Reads the event type without building the envelope (for the ingest log of rejected
/// requests); `None` when the body is not an object with a string `event_type`.
pub(crate) fn peek_event_type(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Peek {
        event_type: String,
    }
    serde_json::from_slice::<Peek>(body)
        .ok()
        .map(|p| p.event_type)
}

pub(crate) fn parse(request: &VerifiedRequest) -> Result<Envelope, ApiError> {
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
    let Some(known) = InboundEvent::parse(&event_type) else {
        return Err(ApiError::bad_request(
            "unknown_event_type",
            format!("unknown event_type {event_type:?}; see details for the known event types"),
        )
        .with_details(InboundEvent::ALL.iter().map(|t| json!(t.name())).collect()));
    };
    let data = match object.remove("data") {
        Some(Value::Object(data)) => data,
        None | Some(Value::Null) if known == InboundEvent::TestConnection => Map::new(),
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
    // Checked so that a sender learns of a malformed envelope; nothing later reads them.
    if let Some(ts) = text_field("timestamp")?
        && crate::clock::parse_rfc3339_ms(&ts).is_none()
    {
        return Err(ApiError::bad_request(
            "invalid_envelope",
            format!("timestamp {ts:?} is not an RFC 3339 date-time such as 2025-01-15T14:30:00Z"),
        ));
    }
    text_field("source")?;
    Ok(Envelope {
        event_type: known,
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
