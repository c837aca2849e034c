//! The envelope pipeline of `POST /webhooks/inbound`, stage by stage, each rejecting early and
//! cheaply: type/size → authentication → verification → rate limit ([`limit`]) → idempotency
//! ([`crate::idempotency`]) → parse → normalize → validate → apply (one transaction with the
//! ingest-log row and the outbox) → respond. Native intake (`crate::providers`) joins it at
//! [`after_verification`] with each mapped event.
//!
//! [`crate::pipeline`] runs a request through it from the edge; this module sees headers
//! through [`Headers`] and the body as bytes.

pub(crate) mod limit;
mod trace;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::apply::{self, ApplyContext, DomainError, Route};
use crate::catalog::InboundEvent;
use crate::clock;
use crate::crypto;
use crate::envelope;
use crate::error::ApiError;
use crate::idempotency::{self, Ticket};
use crate::keys::ApiKey;
use crate::normalize;
use crate::request::{Reply, payload_too_large};
use crate::state::AppState;
use crate::store::IngestEntry;
use crate::validate::{Schemas, ValidatedEvent};
use crate::verify::{self, Headers, Source, VerifiedRequest};

pub(crate) use trace::{Trace, finish, log};

/// Stages 1-2 that need only the headers: a blocked client, content type, declared size and
/// the API key. Returns the key, or the reply to send without reading the body.
pub(crate) async fn authenticate(
    state: &AppState,
    trace: &mut Trace,
    headers: &impl Headers,
    content_length: Option<u64>,
) -> Result<Arc<ApiKey>, Reply> {
    if let Some(reply) = limit::refuse_blocked_client(state, trace) {
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
    let refused = match key_id.map(str::trim) {
        None | Some("") => {
            ApiError::new(401, "api_key_missing", "the X-API-Key header is required")
        }
        Some(id) => match state.keys.find(id).await {
            Ok(Some(key)) if !key.revoked => return Ok(key),
            Ok(Some(_)) => ApiError::new(401, "api_key_revoked", "this API key has been revoked"),
            Ok(None) => ApiError::new(401, "api_key_invalid", "unknown API key"),
            Err(e) => return Err(trace.internal(&e)),
        },
    };
    Err(limit::refuse_key(state, trace, refused))
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
pub(crate) async fn process(
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
        Err(e) => return limit::refuse_signature(state, trace, &key, e),
    };
    // 4. rate limit, counted only for authenticated, verified requests
    let rate = match limit::count(state, trace, &key).await {
        Ok(rate) => rate,
        Err(reply) => return *reply,
    };
    let mut reply =
        after_verification(state, trace, idempotency::key_from(headers), verified).await;
    if reply.rate.is_none() {
        reply.rate = Some(rate);
    }
    reply
}

/// Stages 5-9 of a verified request under its idempotency key, if it has one (also what a
/// native provider's mapped event and an operator's replay run).
pub(crate) async fn after_verification(
    state: &AppState,
    trace: &mut Trace,
    idem: Option<String>,
    verified: VerifiedRequest,
) -> Reply {
    // 5. idempotency: a copy of an answered request is answered without queueing behind the
    // writer; copies that arrive together are sorted out by the ticket's claim in the write.
    if let Some(key) = &idem {
        match idempotency::answered(state, &verified.key.id, key).await {
            Ok(Some(stored)) => {
                let hash = crypto::sha256_hex(verified.idempotency_basis());
                return trace.replayed(idempotency::replay(state, stored, &hash));
            }
            Ok(None) => {}
            Err(e) => return trace.internal(&e),
        }
    }
    run_event(state, trace, verified, idem).await
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

/// Stages 6-8, on the blocking pool for a large body.
async fn checked(
    state: &AppState,
    verified: VerifiedRequest,
) -> Result<(VerifiedRequest, Checked), tokio::task::JoinError> {
    if verified.body.len() <= INLINE_CHECK_BYTES {
        let checked = check(&state.schemas, &verified);
        return Ok((verified, checked));
    }
    let schemas = state.schemas.clone();
    tokio::task::spawn_blocking(move || {
        let checked = check(&schemas, &verified);
        (verified, checked)
    })
    .await
}

/// Stages 6-9.
async fn run_event(
    state: &AppState,
    trace: &mut Trace,
    verified: VerifiedRequest,
    idem: Option<String>,
) -> Reply {
    let (verified, checked) = match checked(state, verified).await {
        Ok(done) => done,
        Err(e) => return trace.internal(&e),
    };
    trace.event_type = checked.event_type.map(|e| e.name().to_string());
    let event = match checked.result {
        Ok(event) => event,
        Err(Refusal::Unsigned(e)) => return limit::refuse_unsigned(state, trace, e),
        Err(Refusal::Invalid(e)) => return trace.fail(e),
    };
    let key = verified.key.clone();
    let change = match apply::route(event) {
        Route::Change(change) => change,
        Route::Search(search) => return run_search(state, trace, &key, search).await,
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
    // test.connection changes nothing: without an idempotency key its job is the log row alone.
    let single_write = change.event_type() == InboundEvent::TestConnection && idem.is_none();
    let ticket = Ticket::new(state, &key.id, idem, verified.idempotency_basis());
    let request_hash = ticket.request_hash.clone();
    let base_entry = trace.entry(0);
    let started = trace.started;
    let job = move |tx: &crate::store::WriteTx| {
        // The claim comes first: a copy of this request running at the same moment (here or on
        // another node) waits for this transaction, then finds its answer.
        if let Some(stored) = ticket.claim(tx)? {
            return Ok(Outcome::Replay(stored));
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
        tx.insert_ingest_entry(&IngestEntry {
            status,
            record_id: record_id.clone(),
            error_code: error_code.map(str::to_string),
            latency_us: started.elapsed().as_micros() as i64,
            ..base_entry.clone()
        })?;
        ticket.answer(tx, status, &body)?;
        Ok(Outcome::Done(Done {
            status,
            body,
            record_id,
            error_code,
            events,
        }))
    };
    match write(state, single_write, job).await {
        Ok(Outcome::Done(done)) => {
            if done.events > 0 {
                state.outbound.wake.notify_one();
            }
            trace.logged = true;
            trace.record_id = done.record_id;
            trace.error_code = done.error_code;
            Reply::json(done.status, &done.body)
        }
        Ok(Outcome::Replay(stored)) => {
            trace.replayed(idempotency::replay(state, stored, &request_hash))
        }
        Err(e) => trace.internal(&e),
    }
}

/// Stage 9 of a search: run on a read connection, never queued behind the writer.
#[tracing::instrument(skip_all)]
async fn run_search(
    state: &AppState,
    trace: &mut Trace,
    key: &ApiKey,
    search: apply::Search,
) -> Reply {
    let company_id = key.company_id.clone();
    let result = state
        .store
        .read(move |r| Ok(apply::search(r, &company_id, &search)))
        .await;
    match result {
        Ok(Ok(body)) => Reply::json(200, &body),
        Ok(Err(DomainError::Rejected(e))) => trace.fail(e.into()),
        Ok(Err(DomainError::Store(e))) | Err(e) => trace.internal(&e),
    }
}

/// Stage 9's write: a request's change (or pass-through event), its log row and its answer in
/// one job of the group commit (alone, for a job that needs no savepoint).
#[tracing::instrument(skip_all, fields(single_write))]
pub(crate) async fn write<T: Send + 'static>(
    state: &AppState,
    single_write: bool,
    job: impl FnMut(&crate::store::WriteTx) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, crate::store::StoreError> {
    if single_write {
        state.store.write_single(job).await
    } else {
        state.store.write(job).await
    }
}

/// What the apply job did: answered, or found the answer of an earlier copy.
enum Outcome {
    Done(Done),
    Replay(crate::store::StoredResponse),
}

struct Done {
    status: u16,
    body: Value,
    record_id: Option<String>,
    error_code: Option<&'static str>,
    events: usize,
}
