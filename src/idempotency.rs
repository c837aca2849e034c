//! Stage 5: idempotency. A request sent again under the same idempotency key
//! (`Idempotency-Key`, else `X-Webhook-Id`; for native intake, the provider's event id) within
//! `idempotency_ttl_secs` gets the first answer again instead of being applied twice; the same
//! key with a different body is refused.
//!
//! A copy of an answered request is answered from a read, without queueing behind the writer
//! ([`answered`]); copies that arrive together are sorted out inside the write: a [`Ticket`]'s
//! claim comes first in the transaction, so a second copy (here or on another node) waits for
//! the first one's COMMIT and then finds its answer.

use bytes::Bytes;
use serde_json::Value;

use crate::clock;
use crate::crypto;
use crate::error::ApiError;
use crate::request::Reply;
use crate::state::AppState;
use crate::store::{Claim, StoreError, StoredResponse, WriteTx};
use crate::verify::Headers;

/// Longest idempotency key kept; longer ones are cut.
const MAX_KEY_CHARS: usize = 255;

/// The request's idempotency key, if it sent one.
pub(crate) fn key_from(headers: &impl Headers) -> Option<String> {
    headers
        .get("idempotency-key")
        .or_else(|| headers.get("x-webhook-id"))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| k.chars().take(MAX_KEY_CHARS).collect())
}

/// The idempotency key of a provider's event: its own id, per provider.
pub(crate) fn provider_key(provider: &str, event_id: &str) -> String {
    format!("{provider}:{event_id}")
        .chars()
        .take(MAX_KEY_CHARS)
        .collect()
}

/// The answer stored under `idem` for key `key_id`, if one is still within the window.
#[tracing::instrument(skip_all)]
pub(crate) async fn answered(
    state: &AppState,
    key_id: &str,
    idem: &str,
) -> Result<Option<StoredResponse>, StoreError> {
    let (key_id, idem) = (key_id.to_string(), idem.to_string());
    let not_before = clock::now_secs() - state.config.idempotency_ttl_secs;
    state
        .store
        .read(move |r| r.stored_response(&key_id, &idem, not_before))
        .await
}

/// Forgets the answer stored under `idem` if it was a failure, so that an operator's replay
/// runs again; a success stays, and answers the replay (nothing is applied twice).
#[tracing::instrument(skip_all)]
pub(crate) async fn forget_failure(
    state: &AppState,
    key_id: &str,
    idem: &str,
) -> Result<(), StoreError> {
    let (k, i) = (key_id.to_string(), idem.to_string());
    state
        .store
        .write_single(move |tx| tx.forget_failed_idempotency_key(&k, &i))
        .await
}

/// A stored answer given again, and what the ingest log records of it.
pub(crate) struct Replayed {
    pub reply: Reply,
    pub event_id: Option<String>,
    pub record_id: Option<String>,
    pub error_code: Option<&'static str>,
}

/// The stored answer, if the request is the same one (same hash); a different request under
/// an idempotency key already used is refused rather than answered with another's result.
pub(crate) fn replay(
    state: &AppState,
    stored: StoredResponse,
    request_hash: &str,
) -> Result<Replayed, ApiError> {
    if !crypto::ct_eq(stored.request_hash.as_bytes(), request_hash.as_bytes()) {
        return Err(ApiError::conflict(
            "idempotency_key_reused",
            "this idempotency key was already used for a different request body within the last 24 hours",
        ));
    }
    state.metrics.idempotent_replay();
    let body = serde_json::from_slice::<Value>(&stored.body).unwrap_or(Value::Null);
    let text = |field: &Value| field.as_str().map(str::to_string);
    Ok(Replayed {
        event_id: text(&body["event_id"]),
        record_id: text(&body["record_id"]),
        error_code: body["error"]["code"]
            .is_string()
            .then_some("idempotent_replay"),
        reply: Reply {
            status: stored.status,
            body: Bytes::from(stored.body),
            replayed: true,
            ..Reply::json(stored.status, &Value::Null)
        },
    })
}

/// One write's use of an idempotency key (or of none): claimed first in the transaction,
/// answered last, in the same transaction as the change it guards.
pub(crate) struct Ticket {
    key_id: String,
    idem: Option<String>,
    /// SHA-256 (hex) of what the key guards (empty without a key).
    pub request_hash: String,
    ttl_secs: i64,
}

impl Ticket {
    /// A ticket for `idem` (if any) of key `key_id`, guarding `guarded` (the body, or a
    /// provider's event).
    pub(crate) fn new(
        state: &AppState,
        key_id: &str,
        idem: Option<String>,
        guarded: &[u8],
    ) -> Ticket {
        Ticket {
            key_id: key_id.to_string(),
            request_hash: match idem {
                Some(_) => crypto::sha256_hex(guarded),
                None => String::new(),
            },
            idem,
            ttl_secs: state.config.idempotency_ttl_secs,
        }
    }

    /// Claims the key (inside the write, before anything else): `Some` answer when another
    /// request already answered under it.
    pub(crate) fn claim(&self, tx: &WriteTx) -> Result<Option<StoredResponse>, StoreError> {
        let Some(idem) = &self.idem else {
            return Ok(None);
        };
        let now = clock::now_secs();
        let claim = tx.claim_idempotency_key(
            &self.key_id,
            idem,
            &self.request_hash,
            now,
            now - self.ttl_secs,
        )?;
        Ok(match claim {
            Claim::Claimed => None,
            Claim::Answered(stored) => Some(stored),
        })
    }

    /// Stores the answer under the key, for the copies that come later.
    pub(crate) fn answer(&self, tx: &WriteTx, status: u16, body: &Value) -> Result<(), StoreError> {
        let Some(idem) = &self.idem else {
            return Ok(());
        };
        let stored = StoredResponse {
            status,
            body: serde_json::to_vec(body).expect("JSON values serialize"),
            request_hash: self.request_hash.clone(),
        };
        tx.store_response(&self.key_id, idem, &stored, clock::now_secs())
    }
}
