//! Every inbound request inspectable and replayable: each request's headers (secrets and
//! signatures redacted), body and answer are kept (config `[requests]`, a key may opt out),
//! shown beside its ingest-log rows, and can be run again through the pipeline after a fix
//! (an unknown skill added, a secret corrected). A replay skips the signature check only
//! because an authenticated operator asked for it; its kept request names the request it
//! replayed and who asked.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::idempotency;
use crate::ingest::{self, Trace};
use crate::providers::{self, Mode};
use crate::request::{self, HeaderList, Reply};
use crate::state::AppState;
use crate::store::{IngestEntry, KeptFilter, KeptRequest, StoreError};
use crate::verify::{Headers, Source, VerifiedRequest};

/// The request as received, until it is kept with its answer.
#[derive(Debug, Clone)]
pub(crate) struct Capture {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Native intake: the provider.
    pub provider: Option<&'static str>,
    /// Lower-case names, values as sent (redacted when kept).
    pub headers: Vec<(String, String)>,
    pub replay_of: Option<String>,
    pub replayed_by: Option<String>,
}

impl Capture {
    pub(crate) fn new(method: &str, target: &str, headers: Vec<(String, String)>) -> Capture {
        Capture {
            method: method.to_string(),
            target: target.to_string(),
            provider: None,
            headers,
            replay_of: None,
            replayed_by: None,
        }
    }
}

const REDACTED: &str = "[redacted]";

/// Headers that carry secrets or signatures: never kept.
fn is_secret_header(state: &AppState, name: &str) -> bool {
    matches!(
        name,
        "authorization" | "proxy-authorization" | "cookie" | "x-webhook-signature"
    ) || name == state.verify_settings.dynamics_header
        || providers::catalog()
            .all()
            .iter()
            .any(|p| p.secret_header() == Some(name))
}

/// Query parameters that carry secrets (Dynamics 365's `?code=`).
fn is_secret_param(name: &str) -> bool {
    name == "code"
        || providers::catalog()
            .all()
            .iter()
            .any(|p| p.secret_param() == Some(name))
}

fn redact_target(target: &str) -> String {
    let Some((path, query)) = target.split_once('?') else {
        return target.to_string();
    };
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        let v = if is_secret_param(&k) {
            REDACTED.into()
        } else {
            v
        };
        out.append_pair(&k, &v);
    }
    format!("{path}?{}", out.finish())
}

/// Whether requests of `key` are kept (the config's `[requests] keep` and the key's choice).
pub(crate) fn wanted(state: &AppState, key: &crate::keys::ApiKey) -> bool {
    state.config.requests.keep && key.keep_requests
}

/// Keeps the request of `trace` with its answer, unless keeping is off (in the config or for
/// the key) or the request never got to its body (no key, or refused before reading it). A
/// replay is always recorded (what it replayed, who asked), without its body when keeping is off.
pub(crate) fn keep(state: &AppState, trace: &Trace, reply: &Reply) {
    let (Some(capture), Some(key), Some(body)) = (&trace.capture, &trace.key, &trace.body) else {
        return;
    };
    let keep_body = wanted(state, key);
    if !keep_body && capture.replay_of.is_none() {
        return;
    }
    let max = if keep_body {
        state.config.requests.max_body_bytes
    } else {
        0
    };
    let headers: Vec<(String, String)> = capture
        .headers
        .iter()
        .map(|(name, value)| {
            let value = if is_secret_header(state, name) {
                REDACTED.to_string()
            } else {
                value.clone()
            };
            (name.clone(), value)
        })
        .collect();
    let kept = KeptRequest {
        request_id: trace.request_id.clone(),
        received_at: trace.received_at_ms,
        company_id: key.company_id.clone(),
        key_id: key.id.clone(),
        provider: capture.provider.map(str::to_string),
        method: capture.method.clone(),
        target: redact_target(&capture.target),
        headers: serde_json::to_string(&headers).expect("JSON values serialize"),
        body: body[..body.len().min(max)].to_vec(),
        body_bytes: body.len() as i64,
        response_status: reply.status,
        response_body: reply.body[..reply.body.len().min(max)].to_vec(),
        replay_of: capture.replay_of.clone(),
        replayed_by: capture.replayed_by.clone(),
    };
    state
        .store
        .write_detached(move |tx| tx.insert_kept_request(&kept));
}

/// JSON if it is, else text, else base64.
fn body_view(bytes: &[u8]) -> Value {
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        return json!({"json": v});
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => json!({"text": text}),
        Err(_) => json!({"base64": crate::crypto::base64_encode(bytes)}),
    }
}

/// What `GET /api/v1/ingest-log/{id}` and `hookgate inspect` show: the log rows of the
/// request, and the kept request and answer when there are.
pub(crate) fn view(entry: &IngestEntry, rows: &[IngestEntry], kept: Option<&KeptRequest>) -> Value {
    let mut out = json!({
        "entry": crate::views::ingest_entry(entry),
        "request_id": entry.request_id,
        "kept": kept.is_some(),
    });
    if rows.len() > 1 {
        out["events"] = rows.iter().map(crate::views::ingest_entry).collect();
    }
    match kept {
        None => {
            out["request"] = Value::Null;
            out["why_not_kept"] = json!(
                "requests are kept only when authenticated with a key, read to the end, within retention.requests_days, and keeping is on (config [requests] keep and the key's --keep-requests)"
            );
        }
        Some(k) => {
            let headers: Value = serde_json::from_str(&k.headers).unwrap_or(Value::Null);
            out["request"] = json!({
                "method": k.method,
                "target": k.target,
                "provider": k.provider,
                "headers": headers,
                "body": body_view(&k.body),
                "body_bytes": k.body_bytes,
                "body_truncated": !k.body_complete(),
            });
            out["response"] =
                json!({"status": k.response_status, "body": body_view(&k.response_body)});
            out["replayable"] = json!(k.body_complete());
            if let Some(of) = &k.replay_of {
                out["replay_of"] = json!(of);
                out["replayed_by"] = json!(k.replayed_by);
                out["signature_check"] = json!(format!(
                    "skipped: a replay of {of} asked for by {}",
                    k.replayed_by.as_deref().unwrap_or("an operator")
                ));
            }
        }
    }
    out
}

/// The log row `id` of `company` (every company when `None`: the CLI) and its request.
pub(crate) async fn find(
    state: &AppState,
    company: Option<&str>,
    id: &str,
) -> Result<Value, ApiError> {
    let (entry, rows, kept) = load(state, company, id).await?;
    Ok(view(&entry, &rows, kept.as_ref()))
}

/// A log row by number, or the first row of a request by its `req_…` id.
async fn load(
    state: &AppState,
    company: Option<&str>,
    id: &str,
) -> Result<(IngestEntry, Vec<IngestEntry>, Option<KeptRequest>), ApiError> {
    let not_found = || ApiError::not_found(format!("no ingest-log entry {id}"));
    let (id, company) = (id.trim().to_string(), company.map(str::to_string));
    let found = state
        .store
        .read(move |r| -> Result<_, StoreError> {
            let (entry, kept) = match id.parse::<i64>() {
                Ok(n) => {
                    let Some(entry) = r.ingest_entry(n)? else {
                        return Ok(None);
                    };
                    let kept = r.kept_request(&entry.request_id)?;
                    (entry, kept)
                }
                Err(_) => {
                    let Some(kept) = r.kept_request(&id)? else {
                        return Ok(None);
                    };
                    let rows = r.ingest_entries_of_request(&kept.request_id, kept.received_at)?;
                    let Some(entry) = rows.into_iter().next() else {
                        return Ok(None);
                    };
                    (entry, Some(kept))
                }
            };
            if company.is_some() && entry.company_id != company {
                return Ok(None);
            }
            let rows = r.ingest_entries_of_request(&entry.request_id, entry.received_at)?;
            Ok(Some((entry, rows, kept)))
        })
        .await
        .map_err(|e| ApiError::internal(&e))?;
    found.ok_or_else(not_found)
}

/// Runs the kept request behind log row (or request) `id` of `company` through the pipeline
/// again, as `by` asked; returns what happened. The answer the provider or sender got is not
/// changed; the replay is a request of its own in the log, with an id (and span) of its own.
pub(crate) async fn replay(
    state: &AppState,
    company: Option<&str>,
    id: &str,
    by: &str,
    client: IpAddr,
) -> Result<Value, ApiError> {
    let (entry, _, kept) = load(state, company, id).await?;
    let Some(kept) = kept else {
        return Err(ApiError::conflict(
            "request_not_kept",
            format!(
                "the request of entry {id} was not kept (see GET /api/v1/ingest-log/{id}), so it cannot be replayed"
            ),
        ));
    };
    if !kept.body_complete() {
        return Err(ApiError::conflict(
            "body_not_kept",
            format!(
                "only {} of the body's {} bytes were kept (requests.max_body_bytes), so it cannot be replayed",
                kept.body.len(),
                kept.body_bytes
            ),
        ));
    }
    let key = match state.keys.find(&kept.key_id).await {
        Ok(Some(key)) if !key.revoked => key,
        Ok(_) => {
            return Err(ApiError::conflict(
                "key_revoked",
                format!(
                    "key {} was revoked; its requests are not replayed",
                    kept.key_id
                ),
            ));
        }
        Err(e) => return Err(ApiError::internal(&e)),
    };
    let replay = run_kept(state, &kept, key, by, client);
    let (request_id, reply) = request::run_as(request::new_id(), "replay", replay).await;
    let answer = serde_json::from_slice::<Value>(&reply.body).unwrap_or(Value::Null);
    Ok(json!({
        "replayed": entry.id,
        "replay_of": kept.request_id,
        "request_id": request_id,
        "status": reply.status,
        "answer": answer,
        "signature_check": format!("skipped: replay asked for by {by}"),
    }))
}

/// Runs a kept request again, as a request of its own; returns its id and answer.
async fn run_kept(
    state: &AppState,
    kept: &KeptRequest,
    key: Arc<crate::keys::ApiKey>,
    by: &str,
    client: IpAddr,
) -> (String, Reply) {
    let headers: Vec<(String, String)> = serde_json::from_str(&kept.headers).unwrap_or_default();
    let mut trace = Trace::start(client);
    let mut capture = Capture::new(&kept.method, &kept.target, headers.clone());
    capture.replay_of = Some(kept.request_id.clone());
    capture.replayed_by = Some(by.to_string());
    let body = Bytes::from(kept.body.clone());
    let mut reply = match kept
        .provider
        .as_deref()
        .and_then(|p| providers::catalog().get(p))
    {
        Some(provider) => {
            capture.provider = Some(&provider.name);
            trace.capture = Some(capture);
            let request = providers::NativeRequest {
                method: &kept.method,
                target: &kept.target,
                headers: &headers,
                body,
            };
            providers::process(state, &mut trace, key, provider, request, Mode::Replay).await
        }
        None => {
            trace.capture = Some(capture);
            replay_envelope(state, &mut trace, key, &headers, body).await
        }
    };
    ingest::finish(state, &trace, &mut reply);
    keep(state, &trace, &reply);
    (trace.request_id, reply)
}

/// A `/webhooks/inbound` request again: its source and idempotency key from its headers, a
/// failure's stored answer forgotten so that it runs (a success's stays, and answers).
async fn replay_envelope(
    state: &AppState,
    trace: &mut Trace,
    key: Arc<crate::keys::ApiKey>,
    headers: &[(String, String)],
    body: Bytes,
) -> Reply {
    let list = HeaderList(headers);
    let source = match Source::parse(list.get("x-webhook-source")) {
        Ok(s) => s,
        Err(e) => return trace.fail(e),
    };
    trace.key = Some(key.clone());
    trace.body = Some(body.clone());
    trace.source = Some(source);
    let idem = idempotency::key_from(&list);
    if let Some(idem) = &idem
        && let Err(e) = idempotency::forget_failure(state, &key.id, idem).await
    {
        return trace.internal(&e);
    }
    let verified = VerifiedRequest::authenticated_elsewhere(key, body);
    ingest::after_verification(state, trace, idem, verified).await
}

/// Replays every kept request of the filter's company that matches it and was not yet
/// replayed successfully, oldest first.
pub(crate) async fn replay_matching(
    state: &AppState,
    filter: KeptFilter,
    by: &str,
    client: IpAddr,
) -> Result<Value, ApiError> {
    let company = filter.company_id.clone();
    let ids = state
        .store
        .read(move |r| r.kept_requests_to_replay(&filter))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let mut results = Vec::with_capacity(ids.len());
    for id in &ids {
        let result = match replay(state, Some(&company), id, by, client).await {
            Ok(done) => done,
            Err(e) => json!({"replay_of": id, "error": e.body()["error"]}),
        };
        results.push(result);
    }
    let succeeded = results
        .iter()
        .filter(|r| r["status"].as_u64().is_some_and(|s| s < 300))
        .count();
    Ok(json!({
        "replayed": results.len(),
        "succeeded": succeeded,
        "results": results,
    }))
}
