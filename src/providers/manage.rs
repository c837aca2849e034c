//! Managing native intake, shared by the REST API and the CLI: the catalog as users see it,
//! and each key's mappings.

use std::sync::Arc;

use serde_json::{Value, json};

use super::catalog::{Provider, catalog};
use super::mapping::Mapping;
use crate::clock;
use crate::error::ApiError;
use crate::keys::ApiKey;
use crate::state::AppState;
use crate::store::MappingRow;

/// A provider as `GET /api/v1/providers` and `hookgate providers list` show it.
pub(crate) fn provider_view(state: &AppState, provider: &Provider, key: Option<&ApiKey>) -> Value {
    let mut view = json!({
        "name": provider.name,
        "title": provider.title,
        "docs": provider.docs,
        "secret": provider.secret,
        "signature": provider.scheme_summary(),
        "handshakes": provider.handshakes.len(),
    });
    if let Some(key) = key {
        view["url"] = json!(format!(
            "{}/webhooks/inbound/{}/{}",
            state.config.public_url.trim_end_matches('/'),
            provider.name,
            key.id
        ));
        view["configured"] = json!(key.provider_secret(&provider.name).is_some());
    }
    view
}

pub(crate) fn known(name: &str) -> Result<&'static Provider, ApiError> {
    catalog().get(name).ok_or_else(|| {
        ApiError::not_found(format!(
            "unknown provider {name:?}; see details for the known ones"
        ))
        .with_details(catalog().names().iter().map(|n| json!(n)).collect())
    })
}

fn mapping_view(row: &MappingRow) -> Value {
    json!({
        "key_id": row.key_id,
        "provider": row.provider,
        "mapping": serde_json::from_str::<Value>(&row.mapping).unwrap_or(Value::Null),
        "created_at": clock::rfc3339_from_ms(row.created_at * 1000),
        "updated_at": clock::rfc3339_from_ms(row.updated_at * 1000),
    })
}

fn store_failed(e: crate::store::StoreError) -> ApiError {
    ApiError::internal(&e)
}

/// Checks and stores `key`'s mapping of `provider` events; the running server uses it within
/// seconds.
pub(crate) async fn put_mapping(
    state: &AppState,
    key: &ApiKey,
    provider: &str,
    document: Value,
) -> Result<Value, ApiError> {
    let provider = known(provider)?;
    Mapping::compile(&document)?;
    let (key_id, name, company) = (
        key.id.clone(),
        provider.name.clone(),
        key.company_id.clone(),
    );
    let text = document.to_string();
    state
        .store
        .write(move |tx| tx.put_mapping(&key_id, &name, &company, &text, clock::now_secs()))
        .await
        .map_err(store_failed)?;
    state.providers.mappings.forget(&key.id, &provider.name);
    get_mapping(state, key, &provider.name).await
}

pub(crate) async fn get_mapping(
    state: &AppState,
    key: &ApiKey,
    provider: &str,
) -> Result<Value, ApiError> {
    let provider = known(provider)?;
    let (key_id, name) = (key.id.clone(), provider.name.clone());
    let row = state
        .store
        .read(move |r| r.mapping(&key_id, &name))
        .await
        .map_err(store_failed)?;
    row.as_ref().map(mapping_view).ok_or_else(|| {
        ApiError::not_found(format!(
            "key {} has no {} mapping: its {} events pass through as source.{}.*",
            key.id, provider.name, provider.title, provider.name
        ))
    })
}

pub(crate) async fn delete_mapping(
    state: &AppState,
    key: &ApiKey,
    provider: &str,
) -> Result<(), ApiError> {
    let provider = known(provider)?;
    let (key_id, name) = (key.id.clone(), provider.name.clone());
    let deleted = state
        .store
        .write(move |tx| tx.delete_mapping(&key_id, &name))
        .await
        .map_err(store_failed)?;
    state.providers.mappings.forget(&key.id, &provider.name);
    if deleted {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "key {} has no {} mapping",
            key.id, provider.name
        )))
    }
}

pub(crate) async fn list_mappings(
    state: &AppState,
    company_id: &str,
    key_id: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let (company, key) = (company_id.to_string(), key_id.map(str::to_string));
    let rows = state
        .store
        .read(move |r| r.list_mappings(&company, key.as_deref()))
        .await
        .map_err(store_failed)?;
    Ok(rows.iter().map(mapping_view).collect())
}

/// What a sample request would become: `{"body": …, "headers": {…}, "mapping": {…}}` (the
/// mapping defaults to the key's stored one).
pub(crate) async fn preview_input(
    state: &AppState,
    key: &ApiKey,
    provider: &str,
    input: Value,
) -> Result<Value, ApiError> {
    let provider = known(provider)?;
    let Value::Object(mut input) = input else {
        return Err(ApiError::bad_request(
            "invalid_request",
            "send {\"body\": <the provider's body>, \"headers\": {…}, \"mapping\": {…}}",
        ));
    };
    let body = input.remove("body").unwrap_or(Value::Null);
    let headers: Vec<(String, String)> = match input.remove("headers") {
        Some(Value::Object(h)) => h
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    let mapping = input
        .remove("mapping")
        .map(|m| Mapping::compile(&m))
        .transpose()?;
    super::preview(state, key, provider, &headers, &body, mapping).await
}

/// The key a CLI command names.
pub(crate) async fn key_by_id(state: &AppState, key_id: &str) -> Result<Arc<ApiKey>, ApiError> {
    match state.keys.find(key_id).await {
        Ok(Some(key)) if !key.revoked => Ok(key),
        Ok(_) => Err(ApiError::not_found(format!("no active API key {key_id}"))),
        Err(e) => Err(ApiError::internal(&e)),
    }
}
