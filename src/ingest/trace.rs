//! What is known about an inbound request as it moves through the pipeline: it becomes the
//! request's ingest-log row, its metrics and its info line ([`finish`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::clock;
use crate::envelope;
use crate::error::ApiError;
use crate::idempotency::Replayed;
use crate::keys::ApiKey;
use crate::request::{self, Reply};
use crate::state::AppState;
use crate::store::IngestEntry;
use crate::verify::Source;

#[derive(Clone)]
pub(crate) struct Trace {
    pub request_id: String,
    pub client: IpAddr,
    pub received_at_ms: i64,
    pub started: Instant,
    pub key: Option<Arc<ApiKey>>,
    pub source: Option<Source>,
    pub event_type: Option<String>,
    pub event_id: Option<String>,
    pub record_id: Option<String>,
    pub error_code: Option<&'static str>,
    /// The row was already written in the apply transaction.
    pub logged: bool,
    /// The body, to name the event type of a request rejected before parsing.
    pub body: Option<Bytes>,
    /// The request as received, kept for `inspect` and `replay` (see [`crate::inspect`]).
    pub capture: Option<crate::inspect::Capture>,
}

impl Trace {
    /// The trace of the request being served (see [`request::run_as`]).
    pub(crate) fn start(client: IpAddr) -> Trace {
        Trace {
            request_id: request::current_id().unwrap_or_else(request::new_id),
            client,
            received_at_ms: clock::now_ms(),
            started: Instant::now(),
            key: None,
            source: None,
            event_type: None,
            event_id: None,
            record_id: None,
            error_code: None,
            logged: false,
            body: None,
            capture: None,
        }
    }

    pub(crate) fn entry(&self, status: u16) -> IngestEntry {
        IngestEntry {
            id: 0,
            received_at: self.received_at_ms,
            request_id: self.request_id.clone(),
            company_id: self.key.as_ref().map(|k| k.company_id.clone()),
            key_id: self.key.as_ref().map(|k| k.id.clone()),
            client_addr: Some(self.client.to_string()),
            source: self.source.map(|s| s.as_str().to_string()),
            event_type: self
                .event_type
                .clone()
                .or_else(|| self.body.as_deref().and_then(envelope::peek_event_type)),
            status,
            error_code: self.error_code.map(str::to_string),
            latency_us: self.started.elapsed().as_micros() as i64,
            event_id: self.event_id.clone(),
            record_id: self.record_id.clone(),
        }
    }

    /// The error reply for `error`, remembering its code for the log.
    pub(crate) fn fail(&mut self, error: ApiError) -> Reply {
        self.error_code = Some(error.code);
        Reply::error(&error)
    }

    /// The opaque answer to an internal failure (logged with the request's span).
    pub(crate) fn internal(&mut self, cause: &dyn crate::error::Cause) -> Reply {
        self.fail(ApiError::internal(cause))
    }

    /// A stored answer given again (or the refusal of a reused key), recorded on the trace.
    pub(crate) fn replayed(&mut self, replayed: Result<Replayed, ApiError>) -> Reply {
        match replayed {
            Ok(r) => {
                self.event_id = r.event_id;
                self.record_id = r.record_id;
                self.error_code = r.error_code;
                r.reply
            }
            Err(e) => self.fail(e),
        }
    }
}

/// Writes the trace's ingest-log row, unless the apply transaction already did.
pub(crate) fn log(state: &AppState, trace: &Trace, status: u16) {
    if !trace.logged {
        let entry = trace.entry(status);
        state
            .store
            .write_detached(move |tx| tx.insert_ingest_entry(&entry));
    }
}

/// Records metrics and, unless the apply transaction already did, the ingest-log row; gives
/// answers that no limiter reached the client address's `X-RateLimit-*` values.
pub(crate) fn finish(state: &AppState, trace: &Trace, reply: &mut Reply) {
    super::limit::fill_in(state, trace, reply);
    let latency = trace.started.elapsed().as_micros() as u64;
    state.metrics.inbound(
        trace.event_type.as_deref(),
        reply.status,
        trace.error_code,
        latency,
    );
    log(state, trace, reply.status);
    if crate::logs::REQUESTS.admit() {
        tracing::info!(
            request_id = %trace.request_id,
            status = reply.status,
            event_type = trace.event_type.as_deref().unwrap_or("-"),
            key_id = trace.key.as_ref().map(|k| k.id.as_str()).unwrap_or("-"),
            client = %trace.client,
            error_code = trace.error_code.unwrap_or("-"),
            latency_us = latency,
            "inbound request"
        );
    }
}
