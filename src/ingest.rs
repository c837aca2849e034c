//! The `POST /webhooks/inbound` pipeline, stage by stage, each rejecting early and cheaply:
//! type/size → authentication → verification → rate limit → idempotency → parse → normalize →
//! validate → apply (one transaction with the ingest-log row and the outbox) → respond.
//!
//! HTTP specifics (reading the body with a limit, writing headers) stay in `http/`; this module
//! sees headers through [`Headers`] and the body as bytes.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::apply::{self, ApplyContext, DomainError, Route};
use crate::catalog::InboundEvent;
use crate::clock;
use crate::crypto;
use crate::envelope;
use crate::error::ApiError;
use crate::keys::ApiKey;
use crate::normalize;
use crate::ratelimit::RateStatus;
use crate::store::{Claim, IngestEntry, StoredResponse};
use crate::validate::{Schemas, ValidatedEvent};
use crate::verify::{self, Headers, Source, VerifiedRequest};

/// What the HTTP layer sends back.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
    pub rate: Option<RateStatus>,
    pub replayed: bool,
    pub request_id: String,
    /// The `Allow` header of a 405.
    pub allow: Option<String>,
    /// `application/json` unless a provider's handshake asks for another.
    pub content_type: &'static str,
}

impl Reply {
    pub fn json(status: u16, body: &Value, request_id: &str) -> Reply {
        Reply {
            status,
            body: Bytes::from(serde_json::to_vec(body).expect("JSON values serialize")),
            rate: None,
            replayed: false,
            request_id: request_id.to_string(),
            allow: None,
            content_type: "application/json",
        }
    }
}

/// What is known about a request as it moves through the pipeline; becomes its ingest-log row.
#[derive(Clone)]
pub struct Trace {
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
    pub fn start(client: IpAddr) -> Trace {
        Trace {
            // Time-ordered: the kept request is stored under this id, and ordered ids append
            // to the end of its index instead of landing on a random page each.
            request_id: crypto::sortable_id("req_"),
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
    pub fn fail(&mut self, error: ApiError) -> Reply {
        self.error_code = Some(error.code);
        Reply::json(error.status, &error.body(), &self.request_id)
    }
}

/// Stages 1-2 that need only the headers: a blocked client, content type, declared size and
/// the API key. Returns the key, or the reply to send without reading the body.
pub async fn authenticate(
    state: &AppState,
    trace: &mut Trace,
    headers: &impl Headers,
    content_length: Option<u64>,
) -> Result<Arc<ApiKey>, Reply> {
    if let Some(reply) = refuse_blocked_client(state, trace) {
        return Err(reply);
    }
    if !is_json_content_type(headers.get("content-type")) {
        return Err(trace.fail(ApiError::new(
            415,
            "unsupported_media_type",
            "Content-Type must be application/json",
        )));
    }
    if content_length.is_some_and(|n| n > state.config.max_body_bytes as u64) {
        return Err(trace.fail(payload_too_large(state.config.max_body_bytes)));
    }
    key_for(state, trace, headers.get("x-api-key")).await
}

/// The active key with this id (stage 2): a missing, unknown or revoked key is a 401 that
/// counts against the client address.
pub(crate) async fn key_for(
    state: &AppState,
    trace: &mut Trace,
    key_id: Option<&str>,
) -> Result<Arc<ApiKey>, Reply> {
    let key = match key_id.map(str::trim) {
        None | Some("") => Err(ApiError::new(
            401,
            "api_key_missing",
            "the X-API-Key header is required",
        )),
        Some(id) => match state.keys.find(id).await {
            Ok(Some(key)) if !key.revoked => Ok(key),
            Ok(Some(_)) => Err(ApiError::new(
                401,
                "api_key_revoked",
                "this API key has been revoked",
            )),
            Ok(None) => Err(ApiError::new(401, "api_key_invalid", "unknown API key")),
            Err(e) => return Err(trace.fail(ApiError::internal(&e, &trace.request_id))),
        },
    };
    key.map_err(|e| {
        let status = state.limits.auth_failed(trace.client);
        let mut reply = trace.fail(e);
        reply.rate = Some(status);
        reply
    })
}

/// The refusal of a client address that failed authentication too often, which is refused
/// before anything else.
pub(crate) fn refuse_blocked_client(state: &AppState, trace: &mut Trace) -> Option<Reply> {
    let status = state.limits.auth_blocked(trace.client)?;
    let mut reply = trace.fail(ApiError::new(
        429,
        "too_many_auth_failures",
        "too many failed authentication attempts from this address; retry later",
    ));
    reply.rate = Some(status);
    Some(reply)
}

pub fn payload_too_large(limit: usize) -> ApiError {
    ApiError::new(
        413,
        "payload_too_large",
        format!("the request body exceeds {limit} bytes"),
    )
}

fn is_json_content_type(value: Option<&str>) -> bool {
    let Some(value) = value else { return false };
    let media = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

/// Stages 3-9 once the body is read.
pub async fn process(
    state: &AppState,
    trace: &mut Trace,
    key: Arc<ApiKey>,
    headers: &impl Headers,
    path_and_query: &str,
    body: Bytes,
) -> Reply {
    trace.key = Some(key.clone());
    trace.body = Some(body.clone());
    // 3. verification
    let source = match Source::parse(headers.get("x-webhook-source")) {
        Ok(s) => s,
        Err(e) => return trace.fail(e),
    };
    trace.source = Some(source);
    let verified = match verify::verify(
        key.clone(),
        source,
        headers,
        path_and_query,
        body,
        clock::now_secs(),
        &state.verify_settings,
    ) {
        Ok(v) => v,
        Err(e) => return refused_signature(state, trace, &key, e),
    };
    // 4. rate limit, counted only for authenticated, verified requests
    let rate = match rate_limit(state, trace, &key).await {
        Ok(rate) => rate,
        Err(reply) => return *reply,
    };
    let mut reply = after_verification(state, trace, headers, verified).await;
    if reply.rate.is_none() {
        reply.rate = Some(rate);
    }
    reply
}

/// The answer to a request whose signature was refused: it counts as a failed authentication,
/// and carries the key's rate-limit status without using any of it.
pub(crate) fn refused_signature(
    state: &AppState,
    trace: &mut Trace,
    key: &ApiKey,
    error: ApiError,
) -> Reply {
    state.limits.auth_failed(trace.client);
    let mut reply = trace.fail(error);
    reply.rate = Some(
        state
            .limits
            .inbound(&key.id, key.per_minute, key.per_hour)
            .peek(),
    );
    reply
}

/// Stage 4: counts the request against the key's inbound limit.
pub(crate) async fn rate_limit(
    state: &AppState,
    trace: &mut Trace,
    key: &ApiKey,
) -> Result<RateStatus, Box<Reply>> {
    let rate = state
        .limits
        .check_inbound(&key.id, key.per_minute, key.per_hour)
        .await;
    if let Some(wait) = rate.retry_after {
        let e = ApiError::new(
            429,
            "rate_limited",
            format!(
                "rate limit of {} requests exceeded for this API key; retry in {wait} s",
                rate.limit
            ),
        );
        let mut reply = trace.fail(e);
        reply.rate = Some(rate);
        return Err(Box::new(reply));
    }
    Ok(rate)
}

/// Stages 5-9 of a verified request (also what an operator's replay runs).
pub(crate) async fn after_verification(
    state: &AppState,
    trace: &mut Trace,
    headers: &impl Headers,
    verified: VerifiedRequest,
) -> Reply {
    let key = verified.key.clone();
    // 5. idempotency
    let idem_key = headers
        .get("idempotency-key")
        .or_else(|| headers.get("x-webhook-id"))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| k.chars().take(255).collect::<String>());
    // A copy of an answered request is replayed without queueing behind the writer; copies
    // that arrive together are sorted out by the claim inside the write (see `run_event`).
    match &idem_key {
        None => run_event(state, trace, verified, None).await,
        Some(idem) => match stored_response(state, &key.id, idem).await {
            Ok(Some(stored)) => replay(state, trace, stored, &crypto::sha256_hex(&verified.body)),
            Ok(None) => run_event(state, trace, verified, idem_key).await,
            Err(e) => trace.fail(ApiError::internal(&e, &trace.request_id)),
        },
    }
}

async fn stored_response(
    state: &AppState,
    key_id: &str,
    idem_key: &str,
) -> Result<Option<StoredResponse>, crate::store::StoreError> {
    let (key_id, idem_key) = (key_id.to_string(), idem_key.to_string());
    let not_before = clock::now_secs() - state.config.idempotency_ttl_secs;
    state
        .store
        .read(move |r| r.stored_response(&key_id, &idem_key, not_before))
        .await
}

/// The stored answer, if the request is the same one (same body); a different request under
/// an idempotency key already used is refused rather than answered with another's result.
pub(crate) fn replay(
    state: &AppState,
    trace: &mut Trace,
    stored: StoredResponse,
    request_hash: &str,
) -> Reply {
    if !crypto::ct_eq(stored.request_hash.as_bytes(), request_hash.as_bytes()) {
        return trace.fail(ApiError::conflict(
            "idempotency_key_reused",
            "this idempotency key was already used for a different request body within the last 24 hours",
        ));
    }
    state.metrics.idempotent_replay();
    if let Ok(body) = serde_json::from_slice::<Value>(&stored.body) {
        trace.event_id = body["event_id"].as_str().map(str::to_string);
        trace.record_id = body["record_id"].as_str().map(str::to_string);
        trace.error_code = match body["error"]["code"].as_str() {
            Some(_) => Some("idempotent_replay"),
            None => None,
        };
    }
    Reply {
        status: stored.status,
        body: Bytes::from(stored.body),
        rate: None,
        replayed: true,
        request_id: trace.request_id.clone(),
        allow: None,
        content_type: "application/json",
    }
}

/// Bodies larger than this are parsed, normalized and validated on the blocking pool: a
/// 1 MiB body can cost 20-40 ms there (measured, release build), which would stall every
/// other request sharing the runtime's thread; 64 KiB costs about a millisecond, not worth a
/// thread hop.
const INLINE_CHECK_BYTES: usize = 64 << 10;

/// Stages 6-8 on the request's bytes: parse, the signature rule that needs the event type,
/// normalize, validate. The event type comes back even when a later stage refused.
struct Checked {
    event_type: Option<InboundEvent>,
    result: Result<ValidatedEvent, Refusal>,
}

enum Refusal {
    /// An unsigned request whose event type needs a signature: counts as failed
    /// authentication.
    Unsigned(ApiError),
    Invalid(ApiError),
}

fn check(schemas: &Schemas, verified: &VerifiedRequest) -> Checked {
    let envelope = match envelope::parse(verified) {
        Ok(e) => e,
        Err(e) => {
            return Checked {
                event_type: None,
                result: Err(Refusal::Invalid(e)),
            };
        }
    };
    let event_type = Some(envelope.event_type());
    let result = match verified.require_signature(event_type == Some(InboundEvent::TestConnection))
    {
        Err(e) => Err(Refusal::Unsigned(e)),
        Ok(()) => normalize::normalize(envelope)
            .and_then(|n| schemas.validate(n))
            .map_err(Refusal::Invalid),
    };
    Checked { event_type, result }
}

/// Stages 6-9.
pub(crate) async fn run_event(
    state: &AppState,
    trace: &mut Trace,
    verified: VerifiedRequest,
    idem_key: Option<String>,
) -> Reply {
    let (verified, checked) = if verified.body.len() <= INLINE_CHECK_BYTES {
        let checked = check(&state.schemas, &verified);
        (verified, checked)
    } else {
        let schemas = state.schemas.clone();
        match tokio::task::spawn_blocking(move || {
            let checked = check(&schemas, &verified);
            (verified, checked)
        })
        .await
        {
            Ok(done) => done,
            Err(e) => return trace.fail(ApiError::internal(&e, &trace.request_id)),
        }
    };
    trace.event_type = checked.event_type.map(|e| e.name().to_string());
    let event = match checked.result {
        Ok(event) => event,
        Err(Refusal::Unsigned(e)) => {
            state.limits.auth_failed(trace.client);
            return trace.fail(e);
        }
        Err(Refusal::Invalid(e)) => return trace.fail(e),
    };
    let key = verified.key.clone();
    let change = match apply::route(event) {
        Route::Change(change) => change,
        Route::Search(search) => {
            let company_id = key.company_id.clone();
            let result = state
                .store
                .read(move |r| Ok(apply::search(r, &company_id, &search)))
                .await;
            return match result {
                Ok(Ok(body)) => Reply::json(200, &body, &trace.request_id),
                Ok(Err(DomainError::Rejected(e))) => trace.fail(e.into()),
                Ok(Err(DomainError::Store(e))) | Err(e) => {
                    trace.fail(ApiError::internal(&e, &trace.request_id))
                }
            };
        }
    };
    let ctx = ApplyContext {
        company_id: key.company_id.clone(),
        key_id: key.id.clone(),
        key_name: key.name.clone(),
        event_id: crypto::sortable_id("evt_"),
        now_ms: clock::now_ms(),
        signature_verified: verified.signature_verified(),
    };
    trace.event_id = Some(ctx.event_id.clone());
    let base_entry = trace.entry(0);
    let started = trace.started;
    let ttl = state.config.idempotency_ttl_secs;
    // test.connection changes nothing: without an idempotency key its job is the log row alone.
    let single_write = change.event_type() == InboundEvent::TestConnection && idem_key.is_none();
    let request_hash = match idem_key {
        Some(_) => crypto::sha256_hex(&verified.body),
        None => String::new(),
    };
    let hash = request_hash.clone();
    let job = move |tx: &crate::store::WriteTx| {
        let now_secs = clock::now_secs();
        if let Some(idem) = &idem_key {
            // The claim comes first: a copy of this request running at the same moment (here
            // or on another node) waits for this transaction, then finds its answer.
            match tx.claim_idempotency_key(&ctx.key_id, idem, &hash, now_secs, now_secs - ttl)? {
                Claim::Claimed => {}
                Claim::Answered(stored) => return Ok(Outcome::Replay(stored)),
            }
        }
        // Nothing of a rejected change remains; its log row and answer are kept. (The single
        // write of a lone test.connection needs no savepoint: `apply` writes nothing for it.)
        let applied = if single_write {
            apply::apply(tx, &ctx, &change)
        } else {
            tx.atomically(|| apply::apply(tx, &ctx, &change))
        };
        let (status, body, record_id, error_code, events) = match applied {
            Ok(applied) => {
                let mut body = json!({
                    "success": true,
                    "message": applied.message,
                    "event_id": ctx.event_id,
                    "record_id": applied.record_id,
                });
                body.as_object_mut().expect("object").extend(applied.extra);
                (200, body, Some(applied.record_id), None, applied.events)
            }
            Err(DomainError::Rejected(rejection)) => {
                let e = ApiError::from(rejection);
                (e.status, e.body(), None, Some(e.code), 0)
            }
            Err(DomainError::Store(e)) => return Err(e),
        };
        let entry = IngestEntry {
            status,
            record_id: record_id.clone(),
            error_code: error_code.map(str::to_string),
            latency_us: started.elapsed().as_micros() as i64,
            ..base_entry.clone()
        };
        tx.insert_ingest_entry(&entry)?;
        if let Some(idem) = &idem_key {
            let stored = StoredResponse {
                status,
                body: serde_json::to_vec(&body).expect("JSON values serialize"),
                request_hash: hash.clone(),
            };
            tx.store_response(&ctx.key_id, idem, &stored, now_secs)?;
        }
        Ok(Outcome::Done {
            status,
            body,
            record_id,
            error_code,
            events,
        })
    };
    let outcome = if single_write {
        state.store.write_single(job).await
    } else {
        state.store.write(job).await
    };
    match outcome {
        Ok(Outcome::Done {
            status,
            body,
            record_id,
            error_code,
            events,
        }) => {
            if events > 0 {
                state.outbound.wake.notify_one();
            }
            trace.logged = true;
            trace.record_id = record_id;
            trace.error_code = error_code;
            Reply::json(status, &body, &trace.request_id)
        }
        Ok(Outcome::Replay(stored)) => replay(state, trace, stored, &request_hash),
        Err(e) => trace.fail(ApiError::internal(&e, &trace.request_id)),
    }
}

enum Outcome {
    Done {
        status: u16,
        body: Value,
        record_id: Option<String>,
        error_code: Option<&'static str>,
        events: usize,
    },
    Replay(StoredResponse),
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
pub fn finish(state: &AppState, trace: &Trace, reply: &mut Reply) {
    if reply.rate.is_none() {
        reply.rate = Some(state.limits.auth_status(trace.client));
    }
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
