//! Entity rules beyond the fixtures: schema rejections, isolation between companies, skills and work types.
//!
//! - every schema in `schemas/` rejects a missing required field, a wrong type and an
//!   out-of-range value, with the JSON path of the violation (cases built from the schema files,
//!   so they follow the schemas as they evolve);
//! - the same natural key in two companies is two records, and no company's key reaches the
//!   other's records;
//! - every change is stored with the key that made it and its old/new values, beside its
//!   ingest-log row;
//! - skills and work types through the REST API, and the alias forms the fixtures do not show.

mod aliases;
mod history;
mod isolation;
mod schema_cases;
mod schemas;
mod skills;

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use hookgate::keys::{CreatedKey, KeyOptions};
use serde_json::{Value, json};

use crate::helpers::*;
/// A key whose rate limits stay out of the way of tests that send many requests.
async fn unlimited_key(app: &TestApp, company: &str, name: &str) -> CreatedKey {
    app.create_key_with(
        company,
        name,
        KeyOptions {
            per_minute: Some(1_000_000),
            per_hour: Some(1_000_000),
            ..Default::default()
        },
    )
    .await
}

/// Sends `envelope` and asserts the status, with `what` and the body in the failure message.
async fn expect(app: &TestApp, key: &CreatedKey, what: &str, envelope: Value, status: u16) -> Sent {
    let sent = app.post(key, &envelope).await;
    assert_eq!(
        sent.status, status,
        "{what}: {} expected {status}, got {} {}",
        envelope["event_type"], sent.status, sent.body
    );
    sent
}

fn record_id(sent: &Sent) -> String {
    sent.body["record_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no record_id in {}", sent.body))
        .to_string()
}

/// A stored record: (company_id, kind, natural_key, data).
async fn stored(app: &TestApp, record_id: &str) -> Option<(String, String, String, Value)> {
    app.rows(&format!(
        "SELECT company_id, kind, natural_key, data FROM records WHERE record_id = '{record_id}'"
    ))
    .await
    .into_iter()
    .next()
    .map(|mut r| {
        (
            r.text(0).unwrap(),
            r.text(1).unwrap(),
            r.text(2).unwrap(),
            serde_json::from_str(&r.text(3).unwrap()).unwrap(),
        )
    })
}

async fn stored_data(app: &TestApp, record_id: &str) -> Value {
    stored(app, record_id)
        .await
        .unwrap_or_else(|| panic!("record {record_id} is not stored"))
        .3
}

/// Records of `kind` in `company_id` whose data field `field` equals `value`.
async fn stored_by_field(
    app: &TestApp,
    company_id: &str,
    kind: &str,
    field: &str,
    value: &str,
) -> Vec<(String, Value)> {
    let (company, kind, field, value) = (
        company_id.to_string(),
        kind.to_string(),
        field.to_string(),
        value.to_string(),
    );
    let (f, v) = (field.clone(), value.clone());
    app.state
        .store
        .read(move |r| r.list_records(&company, &kind, Some((&f, &v))))
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.data[&field] == Value::String(value.clone()))
        .map(|r| (r.record_id, r.data))
        .collect()
}
