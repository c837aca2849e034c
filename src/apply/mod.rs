//! Stage 9: apply a validated event to the company's records, inside the writer's
//! transaction, together with its change records and outbound events (transactional outbox).
//! Searches are the exception: they are reads and run on a read connection.
//!
//! **Architecture invariant:** this module never sees raw request bytes or HTTP types; it gets a
//! [`ValidatedEvent`] and talks to storage only through [`WriteTx`] / [`ReadConn`].

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::store::{ReadConn, StoreError, WriteTx};
use crate::validate::ValidatedEvent;

/// Who is applying the event, and the ids it gets.
#[derive(Debug, Clone)]
pub struct ApplyContext {
    pub company_id: String,
    pub key_id: String,
    pub event_id: String,
    pub now_ms: i64,
    pub signature_verified: bool,
}

/// A successful apply: the success body's message, record id and extra fields.
#[derive(Debug, Clone)]
pub struct Applied {
    pub message: String,
    pub record_id: String,
    pub extra: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{}", .0.message)]
    Rejected(ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ApiError> for DomainError {
    fn from(e: ApiError) -> Self {
        DomainError::Rejected(e)
    }
}

/// Whether the event only reads (searches): those never go through the writer.
pub fn is_read_only(event_type: &str) -> bool {
    event_type.ends_with(".search")
}

/// [`apply`], leaving no partial change behind when it fails.
pub fn apply_in_savepoint(
    tx: &WriteTx,
    ctx: &ApplyContext,
    event: &ValidatedEvent,
) -> Result<Applied, DomainError> {
    tx.atomically(|| apply(tx, ctx, event))
}

pub fn apply(
    tx: &WriteTx,
    ctx: &ApplyContext,
    event: &ValidatedEvent,
) -> Result<Applied, DomainError> {
    let _ = tx;
    match event.event_type {
        "test.connection" => {
            let mut extra = Map::new();
            extra.insert(
                "signature_verified".into(),
                Value::Bool(ctx.signature_verified),
            );
            Ok(Applied {
                message: "Webhook processed successfully".into(),
                record_id: crate::crypto::random_id("rec_", 12),
                extra,
            })
        }
        other => Err(not_implemented(other)),
    }
}

pub fn search(
    conn: &ReadConn,
    company_id: &str,
    event: &ValidatedEvent,
) -> Result<Value, DomainError> {
    let _ = (conn, company_id);
    Err(not_implemented(event.event_type))
}

fn not_implemented(event_type: &str) -> DomainError {
    DomainError::Rejected(ApiError::new(
        501,
        "not_implemented",
        format!("{event_type} is recognised and validated but not applied yet"),
    ))
}
