//! A provider event no mapping takes: stored in the event log and fanned out to subscribers
//! as `source.{provider}.{type}` (never to the key it came in on), deduplicated by the
//! provider's event id like an envelope by its idempotency key.

use std::sync::Arc;

use serde_json::{Value, json};

use super::catalog::Provider;
use super::expr::Scope;
use super::intake::EventFacts;
use crate::app::AppState;
use crate::clock;
use crate::crypto;
use crate::error::ApiError;
use crate::ingest::{self, Reply, Trace};
use crate::keys::ApiKey;
use crate::store::{Claim, IngestEntry, NewEvent, StoredResponse};

enum Outcome {
    Done(Value),
    Replay(StoredResponse),
}

pub(super) async fn run(
    state: &AppState,
    trace: &mut Trace,
    key: &Arc<ApiKey>,
    provider: &Provider,
    facts: &EventFacts,
    scope: &Scope,
    idem: Option<String>,
) -> Reply {
    let event_type = super::pass_through_type(&provider.name, facts.type_.as_deref());
    trace.event_type = Some(event_type.clone());
    let inbound_id = crypto::sortable_id("evt_");
    trace.event_id = Some(inbound_id.clone());
    let event = serde_json::to_value(&*scope.event()).unwrap_or(Value::Null);
    let request_hash = crypto::sha256_hex(event.to_string().as_bytes());
    let now_ms = clock::now_ms();
    let outbound_id = crypto::sortable_id("evt_");
    let payload = json!({
        "event_id": outbound_id,
        "event_type": event_type,
        "timestamp": clock::rfc3339_from_ms(now_ms),
        "company_id": key.company_id,
        "data": {
            "provider": provider.name,
            "provider_event_id": facts.id,
            "provider_event_type": facts.type_,
            "event": event,
        },
    });
    let answer = json!({
        "success": true,
        "message": "Event passed through to subscribers",
        "event_id": inbound_id,
        "event_type": event_type,
        "provider_event_id": facts.id,
    });
    let entry: IngestEntry = trace.entry(200);
    let stored_body = serde_json::to_vec(&answer).expect("JSON values serialize");
    let record_id = facts.id.clone().unwrap_or_else(|| inbound_id.clone());
    let (key_id, company_id) = (key.id.clone(), key.company_id.clone());
    let ttl = state.config.idempotency_ttl_secs;
    let hash = request_hash.clone();
    let job = move |tx: &crate::store::WriteTx| {
        let now_secs = clock::now_secs();
        if let Some(idem) = &idem {
            match tx.claim_idempotency_key(&key_id, idem, &hash, now_secs, now_secs - ttl)? {
                Claim::Claimed => {}
                Claim::Answered(stored) => return Ok(Outcome::Replay(stored)),
            }
        }
        tx.insert_event(&NewEvent {
            event_id: &outbound_id,
            company_id: &company_id,
            origin_key_id: Some(&key_id),
            inbound_event_id: Some(&inbound_id),
            about_subscription_id: None,
            event_type: &event_type,
            entity: "source",
            record_id: &record_id,
            project_code: None,
            payload: &payload,
            created_at: now_ms,
        })?;
        tx.insert_ingest_entry(&entry)?;
        if let Some(idem) = &idem {
            let stored = StoredResponse {
                status: 200,
                body: stored_body.clone(),
                request_hash: hash.clone(),
            };
            tx.store_response(&key_id, idem, &stored, now_secs)?;
        }
        Ok(Outcome::Done(answer.clone()))
    };
    match state.store.write(job).await {
        Ok(Outcome::Done(answer)) => {
            state.outbound.wake.notify_one();
            trace.logged = true;
            Reply::json(200, &answer, &trace.request_id)
        }
        Ok(Outcome::Replay(stored)) => ingest::replay(state, trace, stored, &request_hash),
        Err(e) => trace.fail(ApiError::internal(&e, &trace.request_id)),
    }
}
