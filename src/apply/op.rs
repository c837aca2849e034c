//! The building blocks every entity operation uses: find a record by natural key (404 when
//! the target is missing, 422 when a reference is), create (409 on an existing natural key),
//! merge an update and compute its `changes`, delete, and emit outbound events into the outbox.

use serde_json::{Map, Value, json};

use super::{ApplyContext, DomainError};
use crate::clock;
use crate::crypto;
use crate::error::ApiError;
use crate::store::{NewEvent, Record, StoreError, WriteTx};

/// `changes` of an update: `{field: {"old": ..., "new": ...}}`.
pub type Changes = Map<String, Value>;

pub struct Op<'a> {
    pub tx: &'a WriteTx<'a>,
    pub ctx: &'a ApplyContext,
    /// Outbound events written so far (the delivery worker is woken when there are any).
    pub emitted: std::cell::Cell<usize>,
    /// Records read or written by this operation, by (kind, natural key): one operation often
    /// needs the same project several times (reference check, event payloads).
    pub seen: std::cell::RefCell<std::collections::HashMap<(String, String), Option<Record>>>,
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
pub fn text<'v>(data: &'v Map<String, Value>, field: &str) -> &'v str {
    data.get(field).and_then(Value::as_str).unwrap_or("")
}

pub fn opt_text<'v>(data: &'v Map<String, Value>, field: &str) -> Option<&'v str> {
    data.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// Shallow merge of `update` into `existing`; returns the merged data and what changed.
/// Arrays and objects are compared as wholes.
pub fn merge(existing: &Value, update: &Map<String, Value>) -> (Map<String, Value>, Changes) {
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

/// The record as delivered and searched: its data with `id` first and timestamps after.
pub fn view(record: &Record) -> Value {
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
    Value::Object(out)
}

impl<'a> Op<'a> {
    pub fn company(&self) -> &str {
        &self.ctx.company_id
    }

    pub fn get(&self, kind: &str, key: &[&str]) -> Result<Option<Record>, DomainError> {
        let cache_key = (kind.to_string(), natural_key(key));
        if let Some(known) = self.seen.borrow().get(&cache_key) {
            return Ok(known.clone());
        }
        let found = self.tx.get_record(self.company(), kind, &cache_key.1)?;
        self.seen.borrow_mut().insert(cache_key, found.clone());
        Ok(found)
    }

    /// The record an update/delete/close targets: 404 when missing.
    pub fn target(&self, kind: &str, key: &[&str], what: &str) -> Result<Record, DomainError> {
        self.get(kind, key)?
            .ok_or_else(|| ApiError::not_found(format!("{what} does not exist")).into())
    }

    /// A record that the request refers to: 422 when missing.
    pub fn reference(&self, kind: &str, key: &[&str], what: &str) -> Result<Record, DomainError> {
        self.get(kind, key)?.ok_or_else(|| {
            ApiError::unprocessable("reference_not_found", format!("{what} does not exist"))
                .with_details(vec![json!({"entity": kind, "key": key.join(" / ")})])
                .into()
        })
    }

    /// Checks an optional employee reference in `field`.
    pub fn employee_ref(
        &self,
        data: &Map<String, Value>,
        field: &str,
    ) -> Result<Option<Record>, DomainError> {
        match opt_text(data, field) {
            None => Ok(None),
            Some(emp) => self
                .reference("employee", &[emp], &format!("employee {emp} ({field})"))
                .map(Some),
        }
    }

    /// 409 when a record with this natural key exists. Creates call it before checking
    /// references, so that a re-sent create is reported as a duplicate first.
    pub fn ensure_absent(&self, kind: &str, key: &[&str], what: &str) -> Result<(), DomainError> {
        if self.get(kind, key)?.is_some() {
            return Err(
                ApiError::conflict("already_exists", format!("{what} already exists"))
                    .with_details(vec![json!({"entity": kind, "key": key.join(" / ")})])
                    .into(),
            );
        }
        Ok(())
    }

    /// Inserts a new record; 409 when the natural key is taken. Emits `<kind>.created`.
    pub fn create(
        &self,
        kind: &str,
        key: &[&str],
        what: &str,
        data: Map<String, Value>,
    ) -> Result<Record, DomainError> {
        self.create_as(kind, key, what, data, &format!("{kind}.created"))
    }

    /// [`Op::create`] announcing the record as `event_type`.
    pub fn create_as(
        &self,
        kind: &str,
        key: &[&str],
        what: &str,
        data: Map<String, Value>,
        event_type: &str,
    ) -> Result<Record, DomainError> {
        self.ensure_absent(kind, key, what)?;
        let record = Record {
            record_id: crypto::sortable_id("rec_"),
            natural_key: natural_key(key),
            data: Value::Object(data),
            created_at: self.ctx.now_ms,
            updated_at: self.ctx.now_ms,
        };
        self.tx
            .insert_record(self.company(), kind, &record, &self.ctx.key_id)
            .map_err(|e| taken_or(e, what))?;
        self.remember(kind, &record.natural_key, Some(&record));
        let payload = self.decorate(kind, view(&record))?;
        self.emit(event_type, kind, &record.record_id, payload)?;
        Ok(record)
    }

    /// Merges `update` into `record`. Writes and emits `<kind>.updated` only when something
    /// changed. `new_key` is the natural key after the update (it may change).
    pub fn update(
        &self,
        kind: &str,
        record: &Record,
        update: &Map<String, Value>,
        new_key: &[&str],
    ) -> Result<(Record, Changes), DomainError> {
        self.update_as(
            kind,
            record,
            update,
            new_key,
            Some(&format!("{kind}.updated")),
        )
    }

    /// [`Op::update`] announcing the change as `event_type` (or not at all).
    pub fn update_as(
        &self,
        kind: &str,
        record: &Record,
        update: &Map<String, Value>,
        new_key: &[&str],
        event_type: Option<&str>,
    ) -> Result<(Record, Changes), DomainError> {
        let (merged, changes) = merge(&record.data, update);
        if changes.is_empty() {
            return Ok((record.clone(), changes));
        }
        let nk = natural_key(new_key);
        if nk != record.natural_key && self.tx.get_record(self.company(), kind, &nk)?.is_some() {
            return Err(ApiError::conflict(
                "already_exists",
                format!("another {kind} already has {}", new_key.join(" / ")),
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
            .update_record(self.company(), kind, &updated, &self.ctx.key_id)
            .map_err(|e| taken_or(e, &format!("another {kind} with {}", new_key.join(" / "))))?;
        self.remember(kind, &record.natural_key, None);
        self.remember(kind, &updated.natural_key, Some(&updated));
        if let Some(event_type) = event_type {
            let mut payload = self.decorate(kind, view(&updated))?;
            payload["changes"] = Value::Object(changes.clone());
            payload["updated_by"] = json!(self.ctx.key_id);
            self.emit(event_type, kind, &updated.record_id, payload)?;
        }
        Ok((updated, changes))
    }

    /// Deletes `record`; emits `<kind>.deleted` with its identifying fields.
    pub fn delete(
        &self,
        kind: &str,
        record: &Record,
        identity: &[&str],
    ) -> Result<(), DomainError> {
        self.tx.delete_record(&record.record_id)?;
        self.remember(kind, &record.natural_key, None);
        let mut payload = Map::new();
        payload.insert("id".into(), json!(record.record_id));
        for field in identity {
            if let Some(v) = record.data.get(*field) {
                payload.insert(field.to_string(), v.clone());
            }
        }
        payload.insert(
            "deleted_at".into(),
            json!(clock::rfc3339_from_ms(self.ctx.now_ms)),
        );
        payload.insert("deleted_by".into(), json!(self.ctx.key_id));
        self.emit(
            &format!("{kind}.deleted"),
            kind,
            &record.record_id,
            Value::Object(payload),
        )
    }

    fn remember(&self, kind: &str, natural_key: &str, record: Option<&Record>) {
        self.seen
            .borrow_mut()
            .insert((kind.to_string(), natural_key.to_string()), record.cloned());
    }

    /// Adds what a subscriber needs beside the record itself: a work order's project.
    pub fn decorate(&self, kind: &str, mut payload: Value) -> Result<Value, DomainError> {
        if kind == "work_order"
            && let Some(summary) =
                self.project_summary(payload["project_code"].as_str().unwrap_or(""))?
        {
            payload["project"] = summary;
        }
        Ok(payload)
    }

    pub fn project_summary(&self, code: &str) -> Result<Option<Value>, DomainError> {
        Ok(self.get("project", &[code])?.map(|p| {
            json!({"id": p.record_id, "project_code": p.data["project_code"], "project_name": p.data["project_name"]})
        }))
    }

    /// Writes one outbound event to the outbox, tagged with the originating key.
    pub fn emit(
        &self,
        event_type: &str,
        entity: &str,
        record_id: &str,
        data: Value,
    ) -> Result<(), DomainError> {
        let event_id = crypto::sortable_id("evt_");
        let mut payload = json!({
            "event_id": event_id,
            "event_type": event_type,
            "timestamp": clock::rfc3339_from_ms(self.ctx.now_ms),
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
            event_type,
            entity,
            record_id,
            project_code: project_code.as_deref(),
            payload: &payload,
            created_at: self.ctx.now_ms,
        })?;
        Ok(())
    }
}

/// A natural key taken by a transaction that committed after this one looked (another node,
/// or another writer connection) is the same conflict as one seen by the lookup.
fn taken_or(e: StoreError, what: &str) -> DomainError {
    match e {
        StoreError::Conflict(_) => {
            ApiError::conflict("already_exists", format!("{what} already exists")).into()
        }
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
