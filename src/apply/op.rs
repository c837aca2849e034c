//! The building blocks every entity operation uses: find a record by natural key (a
//! `NotFound` rejection when the target is missing, `ReferenceNotFound` when a reference is),
//! create (`AlreadyExists` on a taken natural key), merge an update and compute its `changes`,
//! delete, and emit outbound events into the outbox, each shaped by [`super::payload`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::payload;
use super::rejection::{Rejection, RejectionKind};
use super::{ApplyContext, DomainError};
use crate::catalog::{Entity, OutboundEvent};
use crate::clock;
use crate::crypto;
use crate::store::{NewEvent, Record, StoreError, WriteTx};

/// `changes` of an update: `{field: {"old": ..., "new": ...}}`.
pub(super) type Changes = Map<String, Value>;

pub(super) struct Op<'a> {
    pub tx: &'a WriteTx<'a>,
    pub ctx: &'a ApplyContext,
    /// Outbound events written so far (the delivery worker is woken when there are any).
    pub emitted: Cell<usize>,
    /// Records read or written by this operation, by (entity, natural key): one operation often
    /// needs the same project several times (reference check, event payloads).
    pub seen: RefCell<HashMap<(Entity, String), Option<Record>>>,
}

/// Natural keys compare case-insensitively and ignore surrounding spaces.
pub fn natural_key(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| p.trim().to_lowercase())
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

/// The string value of `field`, or "".
pub(super) fn text<'v>(data: &'v Map<String, Value>, field: &str) -> &'v str {
    data.get(field).and_then(Value::as_str).unwrap_or("")
}

pub(super) fn opt_text<'v>(data: &'v Map<String, Value>, field: &str) -> Option<&'v str> {
    data.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// Shallow merge of `update` into `existing`; returns the merged data and what changed.
/// Arrays and objects are compared as wholes.
pub(super) fn merge(
    existing: &Value,
    update: &Map<String, Value>,
) -> (Map<String, Value>, Changes) {
    let mut merged = existing.as_object().cloned().unwrap_or_default();
    let mut changes = Changes::new();
    for (field, new) in update {
        let old = merged.get(field).cloned().unwrap_or(Value::Null);
        if old != *new {
            changes.insert(field.clone(), json!({"old": old, "new": new}));
            merged.insert(field.clone(), new.clone());
        }
    }
    (merged, changes)
}

/// The record as searched: its data with `id` first and timestamps after.
pub(super) fn view(record: &Record) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("id".into(), json!(record.record_id));
    if let Some(data) = record.data.as_object() {
        out.extend(data.clone());
    }
    out.insert(
        "created_at".into(),
        json!(clock::rfc3339_from_ms(record.created_at)),
    );
    out.insert(
        "updated_at".into(),
        json!(clock::rfc3339_from_ms(record.updated_at)),
    );
    out
}

impl<'a> Op<'a> {
    pub(super) fn new(tx: &'a WriteTx<'a>, ctx: &'a ApplyContext) -> Op<'a> {
        Op {
            tx,
            ctx,
            emitted: Cell::new(0),
            seen: RefCell::default(),
        }
    }

    pub(super) fn company(&self) -> &str {
        &self.ctx.company_id
    }

    /// Now, as the payloads write times.
    pub(super) fn now(&self) -> String {
        clock::rfc3339_from_ms(self.ctx.now_ms)
    }

    pub(super) fn get(&self, entity: Entity, key: &[&str]) -> Result<Option<Record>, DomainError> {
        let cache_key = (entity, natural_key(key));
        if let Some(known) = self.seen.borrow().get(&cache_key) {
            return Ok(known.clone());
        }
        let found = self
            .tx
            .get_record(self.company(), entity.kind(), &cache_key.1)?;
        self.seen.borrow_mut().insert(cache_key, found.clone());
        Ok(found)
    }

    /// The record an update/delete/close targets: `NotFound` when missing.
    pub(super) fn target(
        &self,
        entity: Entity,
        key: &[&str],
        what: &str,
    ) -> Result<Record, DomainError> {
        self.required(entity, key, what, RejectionKind::NotFound, false)
    }

    /// A record that the request refers to: `ReferenceNotFound` when missing.
    pub(super) fn reference(
        &self,
        entity: Entity,
        key: &[&str],
        what: &str,
    ) -> Result<Record, DomainError> {
        self.required(entity, key, what, RejectionKind::ReferenceNotFound, true)
    }

    /// The record, or a `kind` rejection saying `what` does not exist (with the record's kind
    /// and key as details when `detailed`).
    fn required(
        &self,
        entity: Entity,
        key: &[&str],
        what: &str,
        kind: RejectionKind,
        detailed: bool,
    ) -> Result<Record, DomainError> {
        self.get(entity, key)?.ok_or_else(|| {
            let rejection = Rejection::new(kind, format!("{what} does not exist"));
            let details = json!({"entity": entity.kind(), "key": key.join(" / ")});
            match detailed {
                true => rejection.with_details(vec![details]),
                false => rejection,
            }
            .into()
        })
    }

    /// Checks an optional employee reference in `field`.
    pub(super) fn employee_ref(
        &self,
        data: &Map<String, Value>,
        field: &str,
    ) -> Result<Option<Record>, DomainError> {
        match opt_text(data, field) {
            None => Ok(None),
            Some(emp) => self
                .reference(
                    Entity::Employee,
                    &[emp],
                    &format!("employee {emp} ({field})"),
                )
                .map(Some),
        }
    }

    /// `AlreadyExists` when a record with this natural key exists. Creates call it before
    /// checking references, so that a re-sent create is reported as a duplicate first.
    pub(super) fn ensure_absent(
        &self,
        entity: Entity,
        key: &[&str],
        what: &str,
    ) -> Result<(), DomainError> {
        if self.get(entity, key)?.is_some() {
            return Err(Rejection::new(
                RejectionKind::AlreadyExists,
                format!("{what} already exists"),
            )
            .with_details(vec![
                json!({"entity": entity.kind(), "key": key.join(" / ")}),
            ])
            .into());
        }
        Ok(())
    }

    /// Inserts a new record (`AlreadyExists` when the natural key is taken) and announces it
    /// with the entity's created event, if it has one.
    pub(super) fn create(
        &self,
        entity: Entity,
        key: &[&str],
        what: &str,
        data: Map<String, Value>,
    ) -> Result<Record, DomainError> {
        self.insert_new(entity, key, what, data, Race::Rejects)
    }

    /// [`Op::create`] for a record that an upsert found missing (the customer, location or
    /// contacts a project names; a completion report). Another request may be creating it at
    /// the same moment: on PostgreSQL, whose writers run side by side, the loser's insert
    /// meets the winner's row. Its request is then run again, alone, and finds the record,
    /// rather than being refused for a duplicate it did not send.
    pub(super) fn create_missing(
        &self,
        entity: Entity,
        key: &[&str],
        what: &str,
        data: Map<String, Value>,
    ) -> Result<Record, DomainError> {
        self.insert_new(entity, key, what, data, Race::RunsAgain)
    }

    fn insert_new(
        &self,
        entity: Entity,
        key: &[&str],
        what: &str,
        data: Map<String, Value>,
        race: Race,
    ) -> Result<Record, DomainError> {
        self.ensure_absent(entity, key, what)?;
        let record = Record {
            record_id: crypto::sortable_id("rec_"),
            natural_key: natural_key(key),
            data: Value::Object(data),
            created_at: self.ctx.now_ms,
            updated_at: self.ctx.now_ms,
        };
        self.tx
            .insert_record(self.company(), entity.kind(), &record, &self.ctx.key_id)
            .map_err(|e| match (e, race) {
                (StoreError::Conflict(text), Race::RunsAgain) => StoreError::Aborted(format!(
                    "{what} was created by a concurrent request ({text})"
                ))
                .into(),
                (e, _) => taken_or(e, what),
            })?;
        self.remember(entity, &record.natural_key, Some(&record));
        if let Some(event) = entity.created_event() {
            let payload = payload::created(self, entity, &record)?;
            self.emit(event, &record.record_id, payload)?;
        }
        Ok(record)
    }

    /// Merges `update` into `record`. Writes and emits the entity's updated event only when
    /// something changed. `new_key` is the natural key after the update (it may change).
    pub(super) fn update(
        &self,
        entity: Entity,
        record: &Record,
        update: &Map<String, Value>,
        new_key: &[&str],
    ) -> Result<(Record, Changes), DomainError> {
        self.update_as(entity, record, update, new_key, entity.updated_event())
    }

    /// [`Op::update`] announcing the change as `event` (or not at all).
    pub(super) fn update_as(
        &self,
        entity: Entity,
        record: &Record,
        update: &Map<String, Value>,
        new_key: &[&str],
        event: Option<OutboundEvent>,
    ) -> Result<(Record, Changes), DomainError> {
        let (merged, changes) = merge(&record.data, update);
        if changes.is_empty() {
            return Ok((record.clone(), changes));
        }
        let nk = natural_key(new_key);
        if nk != record.natural_key
            && self
                .tx
                .get_record(self.company(), entity.kind(), &nk)?
                .is_some()
        {
            return Err(Rejection::new(
                RejectionKind::AlreadyExists,
                format!(
                    "another {} already has {}",
                    entity.kind(),
                    new_key.join(" / ")
                ),
            )
            .into());
        }
        let updated = Record {
            record_id: record.record_id.clone(),
            natural_key: nk,
            data: Value::Object(merged),
            created_at: record.created_at,
            updated_at: self.ctx.now_ms,
        };
        self.tx
            .update_record(self.company(), entity.kind(), &updated, &self.ctx.key_id)
            .map_err(|e| {
                let what = format!("another {} with {}", entity.kind(), new_key.join(" / "));
                taken_or(e, &what)
            })?;
        self.remember(entity, &record.natural_key, None);
        self.remember(entity, &updated.natural_key, Some(&updated));
        if let Some(event) = event {
            let payload = payload::updated(self, entity, record, &updated, &changes)?;
            self.emit(event, &updated.record_id, payload)?;
        }
        Ok((updated, changes))
    }

    /// Deletes `record`; announces it with the entity's deleted event and identifying fields.
    pub(super) fn delete(&self, entity: Entity, record: &Record) -> Result<(), DomainError> {
        // The payload is built first: it may read records that this delete cascades from.
        let payload = match entity.deleted_event() {
            Some(event) => Some((event, payload::deleted(self, entity, record)?)),
            None => None,
        };
        self.tx.delete_record(&record.record_id)?;
        self.remember(entity, &record.natural_key, None);
        match payload {
            Some((event, payload)) => self.emit(event, &record.record_id, payload),
            None => Ok(()),
        }
    }

    fn remember(&self, entity: Entity, natural_key: &str, record: Option<&Record>) {
        self.seen
            .borrow_mut()
            .insert((entity, natural_key.to_string()), record.cloned());
    }

    /// Writes one outbound event to the outbox, tagged with the originating key. `data` gets
    /// the inbound event that caused it (`source_event_id`) and, as null, any field its schema
    /// says every payload of this type carries but the record lacks.
    pub(super) fn emit(
        &self,
        event: OutboundEvent,
        record_id: &str,
        mut data: Map<String, Value>,
    ) -> Result<(), DomainError> {
        data.insert("source_event_id".into(), json!(self.ctx.event_id));
        for field in event.required_fields() {
            if !data.contains_key(field) {
                data.insert(field.clone(), Value::Null);
            }
        }
        let event_id = crypto::sortable_id("evt_");
        let mut payload = json!({
            "event_id": event_id,
            "event_type": event.name(),
            "timestamp": self.now(),
            "company_id": self.ctx.company_id,
            "data": data,
        });
        integral_floats_as_integers(&mut payload);
        let project_code = data_project_code(&payload["data"]);
        self.emitted.set(self.emitted.get() + 1);
        self.tx.insert_event(&NewEvent {
            event_id: &event_id,
            company_id: &self.ctx.company_id,
            origin_key_id: Some(&self.ctx.key_id),
            inbound_event_id: Some(&self.ctx.event_id),
            about_subscription_id: None,
            event_type: event.name(),
            entity: event.entity().kind(),
            record_id,
            project_code: project_code.as_deref(),
            payload: &payload,
            created_at: self.ctx.now_ms,
        })?;
        Ok(())
    }
}

/// What an insert that meets an existing natural key means (see [`Op::create_missing`]).
#[derive(Clone, Copy)]
enum Race {
    /// The request asked to create it: 409 `already_exists`.
    Rejects,
    /// The request only needed it to exist: run the request again.
    RunsAgain,
}

/// A natural key taken by a transaction that committed after this one looked (another node,
/// or another writer connection) is the same conflict as one seen by the lookup.
fn taken_or(e: StoreError, what: &str) -> DomainError {
    match e {
        StoreError::Conflict(_) => Rejection::new(
            RejectionKind::AlreadyExists,
            format!("{what} already exists"),
        )
        .into(),
        other => other.into(),
    }
}

/// `5.0` → `5`: receivers that verify the seed's signature over `JSON.stringify(req.body)`
/// (the seed's own Node.js snippet) re-serialize numbers that way, so the bytes we sign must too.
fn integral_floats_as_integers(value: &mut Value) {
    match value {
        Value::Number(n) => {
            if let Some(f) = n
                .as_f64()
                .filter(|f| n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15)
            {
                *n = serde_json::Number::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// The project an event concerns, for subscriptions filtered by project.
fn data_project_code(data: &Value) -> Option<String> {
    data.get("project_code")
        .or_else(|| data.get("project").and_then(|p| p.get("project_code")))
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_reports_only_real_changes() {
        let existing = json!({"a": 1, "b": [1, 2], "c": "x"});
        let update: Map<String, Value> =
            serde_json::from_value(json!({"a": 1, "b": [2, 1], "d": true})).unwrap();
        let (merged, changes) = merge(&existing, &update);
        assert_eq!(
            Value::Object(merged),
            json!({"a": 1, "b": [2, 1], "c": "x", "d": true})
        );
        assert_eq!(
            Value::Object(changes),
            json!({"b": {"old": [1, 2], "new": [2, 1]}, "d": {"old": null, "new": true}})
        );
    }

    #[test]
    fn payload_numbers_serialize_as_javascript_would() {
        let mut v = json!({"hours": 5.0, "total": 8.5, "list": [1.0, 2], "big": 1e300});
        integral_floats_as_integers(&mut v);
        assert_eq!(
            v.to_string(),
            r#"{"hours":5,"total":8.5,"list":[1,2],"big":1e+300}"#
        );
    }

    #[test]
    fn natural_keys_ignore_case_and_spaces() {
        assert_eq!(natural_key(&["Acme ", "HQ"]), natural_key(&["acme", " hq"]));
        assert_ne!(natural_key(&["a b", "c"]), natural_key(&["a", "b c"]));
    }
}
