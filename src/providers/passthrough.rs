//! A provider event no mapping takes: stored in the event log and fanned out to subscribers
//! as `source.{provider}.{type}` (never to the key it came in on), deduplicated by the
//! provider's event id like an envelope by its idempotency key.

use std::sync::Arc;

use serde_json::{Value, json};

use super::catalog::Provider;
use super::expr::Scope;
use super::intake::EventFacts;
use crate::clock;
use crate::crypto;
use crate::idempotency::{self, Ticket};
use crate::ingest::{self, Trace};
use crate::keys::ApiKey;
use crate::request::Reply;
use crate::state::AppState;
use crate::store::{IngestEntry, NewEvent, StoredResponse};

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
    let ticket = Ticket::new(state, &key.id, idem, event.to_string().as_bytes());
    let request_hash = ticket.request_hash.clone();
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
    let record_id = facts.id.clone().unwrap_or_else(|| inbound_id.clone());
    let (key_id, company_id) = (key.id.clone(), key.company_id.clone());
    let job = move |tx: &crate::store::WriteTx| {
        if let Some(stored) = ticket.claim(tx)? {
            return Ok(Outcome::Replay(stored));
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
        ticket.answer(tx, 200, &answer)?;
        Ok(Outcome::Done(answer.clone()))
    };
    match ingest::write(state, false, job).await {
        Ok(Outcome::Done(answer)) => {
            state.outbound.wake.notify_one();
            trace.logged = true;
            Reply::json(200, &answer)
        }
        Ok(Outcome::Replay(stored)) => {
            trace.replayed(idempotency::replay(state, stored, &request_hash))
        }
        Err(e) => trace.internal(&e),
    }
}
